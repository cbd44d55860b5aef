package lake

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
)

// EnvS3Endpoint names the environment variable of the S3 endpoint, e.g.
// "http://127.0.0.1:7070" for a local versitygw: the commands read it as
// their --s3-endpoint flag, tests through laketest. The package itself
// reads no environment but the standard AWS chain's credentials and region
// (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, profiles...).
const EnvS3Endpoint = "CLICKSTREAM_S3_ENDPOINT"

// acceptedURIs is quoted by every URI parsing error.
const acceptedURIs = `accepted forms: "/abs/dir", "file:///abs/dir", "file://./rel/dir", "s3://bucket", "s3://bucket/prefix"`

// Open returns the store named by uri:
//
//	file:///abs/dir          a folder on the local filesystem (created if missing)
//	file://localhost/abs/dir the same
//	/abs/dir                 the same (a bare absolute path)
//	file://./rel/dir         a folder relative to the working directory
//	s3://bucket              the root of an S3 bucket
//	s3://bucket/some/prefix  the objects of a bucket under some/prefix/
//
// File paths are taken literally (no percent-decoding). For s3:// URIs an
// empty opts.Endpoint means AWS's own; the bucket must already exist
// unless opts.CreateBucket (see S3Store.EnsureBucket).
//
// An error about the URI itself (it cannot name a store) matches ErrBadURI;
// other errors (a folder that cannot be created, an unreachable endpoint)
// may be temporary.
func Open(ctx context.Context, uri string, opts S3Options) (Store, error) {
	uri, err := bareAbs(uri)
	if err != nil {
		return nil, err
	}
	switch {
	case strings.HasPrefix(uri, "file://"):
		dir, err := parseFileURI(uri)
		if err != nil {
			return nil, uriError{err}
		}
		return NewFileStore(dir)
	case strings.HasPrefix(uri, "s3://"):
		bucket, prefix, err := parseS3URI(uri)
		if err != nil {
			return nil, uriError{err}
		}
		st, err := NewS3Store(ctx, bucket, prefix, opts)
		if err != nil {
			return nil, err
		}
		if opts.CreateBucket {
			if err := st.EnsureBucket(ctx); err != nil {
				return nil, err
			}
		}
		return st, nil
	}
	return nil, uriError{fmt.Errorf("lake: unsupported store URI %q (%s)", uri, acceptedURIs)}
}

// OpenUnder returns the store uri names, as Open does, if it is one of
// roots or below one (Under; roots in canonical form, see CanonicalRoots).
// A store outside them is refused with an error matching ErrOutsideRoot,
// before anything is opened or created.
//
// A file:// store is opened from the folder of the deepest root it is under,
// one folder at a time and inside that root (os.Root): a symbolic link
// below the root cannot take the store, or the folders created for it,
// out of the root (ErrOutsideRoot). The root's own folder is taken as
// given, and created if missing.
func OpenUnder(ctx context.Context, uri string, roots []string, opts S3Options) (Store, error) {
	c, err := Canonical(uri)
	if err != nil {
		return nil, err
	}
	root, ok := deepestRoot(c, roots)
	if !ok {
		return nil, fmt.Errorf("lake: store %s is not under %s: %w", c, strings.Join(roots, ","), ErrOutsideRoot)
	}
	dir, isFile := strings.CutPrefix(c, "file://")
	if !isFile {
		return Open(ctx, c, opts)
	}
	under := filepath.FromSlash(strings.TrimPrefix(root, "file://"))
	if strings.Trim(under, "/") == "" {
		under = string(filepath.Separator) // the root "file:///"
	}
	rel, err := filepath.Rel(under, filepath.FromSlash(dir))
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return nil, fmt.Errorf("lake: store %s is not under %s: %w", c, root, ErrOutsideRoot)
	}
	if rel == "." {
		return NewFileStore(under)
	}
	return newFileStoreUnder(under, rel)
}

// deepestRoot returns the longest of roots that uri is or is under.
func deepestRoot(uri string, roots []string) (string, bool) {
	best, found := "", false
	for _, r := range roots {
		if Under(uri, []string{r}) && (!found || len(r) > len(best)) {
			best, found = r, true
		}
	}
	return best, found
}

// bareAbs returns the file:// URI of a bare absolute path ("/data/lake"),
// and other URIs as they are. A bare relative path is refused: it is
// resolved where it was typed (ResolveURI), never by a server.
func bareAbs(uri string) (string, error) {
	if uri == "" || strings.Contains(uri, "://") {
		return uri, nil
	}
	if strings.HasPrefix(uri, "/") {
		return "file://" + uri, nil
	}
	if hasScheme(uri) {
		return "", uriError{fmt.Errorf("lake: unsupported store URI %q (%s)", uri, acceptedURIs)}
	}
	return "", uriError{fmt.Errorf("lake: store URI %q is a relative path: give an absolute path, or file://./%s (%s)", uri, uri, acceptedURIs)}
}

// hasScheme reports whether s starts like a URI with a scheme ("s3:",
// "http:"): letters, digits, '+', '-' or '.' after a letter, then ':'.
func hasScheme(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
		case i > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.'):
		case i > 0 && c == ':':
			return true
		default:
			return false
		}
	}
	return false
}

// ResolveURI turns a store location as a user typed it into a URI that
// means the same anywhere: a bare path, absolute or relative to the working
// directory ("data/lake", "./lake", "/data/lake"), and a file://./rel URI
// become an absolute file:///path, as DuckDB and Spark take paths;
// s3:// and absolute file:// URIs are returned as they are. Anything else
// (another scheme, an empty path) is refused with an error matching
// ErrBadURI. Command-line clients call it on every store flag, so no
// relative path reaches a server.
func ResolveURI(uri string) (string, error) {
	switch {
	case uri == "":
		return "", uriError{fmt.Errorf("lake: empty store URI (%s)", acceptedURIs)}
	case strings.HasPrefix(uri, "s3://"):
		return uri, nil
	case strings.HasPrefix(uri, "file://"):
		if _, err := parseFileURI(uri); err != nil {
			return "", uriError{err}
		}
		return Canonical(uri)
	case strings.Contains(uri, "://") || hasScheme(uri):
		return "", uriError{fmt.Errorf("lake: unsupported store URI %q (%s)", uri, acceptedURIs)}
	}
	abs, err := filepath.Abs(filepath.FromSlash(uri))
	if err != nil {
		return "", uriError{fmt.Errorf("lake: store path %q: %w", uri, err)}
	}
	return "file://" + filepath.ToSlash(abs), nil
}

// ErrBadURI is matched by the errors of Open for a URI that cannot name a
// store: no retry will help.
var ErrBadURI = errors.New("lake: bad store URI")

// uriError is an error about a store URI; its message is err's.
type uriError struct{ err error }

func (e uriError) Error() string   { return e.err.Error() }
func (e uriError) Unwrap() []error { return []error{e.err, ErrBadURI} }

func parseFileURI(uri string) (string, error) {
	rest := strings.TrimPrefix(uri, "file://")
	if r, ok := strings.CutPrefix(rest, "localhost/"); ok {
		rest = "/" + r
	}
	switch {
	case strings.HasPrefix(rest, "/"):
		return filepath.FromSlash(rest), nil
	case rest == "." || rest == ".." || strings.HasPrefix(rest, "./") || strings.HasPrefix(rest, "../"):
		abs, err := filepath.Abs(filepath.FromSlash(rest))
		if err != nil {
			return "", fmt.Errorf("lake: store URI %q: %w", uri, err)
		}
		return abs, nil
	}
	return "", fmt.Errorf("lake: store URI %q: file URIs need an absolute path or one starting with ./ (%s)", uri, acceptedURIs)
}

func parseS3URI(uri string) (bucket, prefix string, err error) {
	rest := strings.TrimPrefix(uri, "s3://")
	bucket, prefix, _ = strings.Cut(rest, "/")
	if err := checkBucket(bucket); err != nil {
		return "", "", fmt.Errorf("lake: store URI %q: %w (%s)", uri, err, acceptedURIs)
	}
	prefix = strings.Trim(prefix, "/")
	if prefix != "" {
		if err := checkKey(prefix); err != nil {
			return "", "", fmt.Errorf("lake: store URI %q: prefix: %w", uri, err)
		}
	}
	return bucket, prefix, nil
}

// checkBucket applies the S3 bucket naming rules that matter here:
// 3 to 63 lowercase letters, digits, dots and hyphens, starting and ending
// with a letter or digit.
func checkBucket(b string) error {
	if len(b) < 3 || len(b) > 63 {
		return fmt.Errorf("bucket name %q must be 3 to 63 characters long", b)
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if !alnum && (c != '.' && c != '-' || i == 0 || i == len(b)-1) {
			return fmt.Errorf("bucket name %q: only lowercase letters, digits, '.' and '-' allowed, starting and ending with a letter or digit", b)
		}
	}
	return nil
}

// CheckKey returns an error for a key that no store accepts (see checkKey):
// for callers that validate keys before they reach a store.
func CheckKey(key string) error { return checkKey(key) }

// checkKey rejects keys that would escape a store's root or name different
// objects on different stores: empty keys, absolute keys, backslashes, NUL
// bytes, and empty, "." or ".." segments (so no leading, trailing or
// doubled '/').
func checkKey(key string) error {
	if key == "" {
		return fmt.Errorf("lake: empty key")
	}
	if strings.HasPrefix(key, "/") {
		return fmt.Errorf("lake: key %q is absolute; keys are relative to the store root", key)
	}
	if strings.ContainsAny(key, "\\\x00") {
		return fmt.Errorf("lake: key %q contains a backslash or NUL byte", key)
	}
	for seg := range strings.SplitSeq(key, "/") {
		switch seg {
		case "":
			return fmt.Errorf("lake: key %q has an empty segment (leading, trailing or doubled '/')", key)
		case ".", "..":
			return fmt.Errorf("lake: key %q has a %q segment", key, seg)
		}
	}
	return nil
}

// checkPrefix accepts "" and any prefix of a valid key, such as "events/"
// or "events/hour=2026-".
func checkPrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	// A prefix ending in '/' is the prefix of the key prefix+"x"; a partial
	// last segment such as "." or ".." could still grow into a valid one.
	k := prefix + "x"
	if err := checkKey(k); err != nil {
		return fmt.Errorf("lake: bad list prefix %q: %w", prefix, err)
	}
	return nil
}

// Sub returns a view of s rooted at prefix: key k of the view is key
// prefix+"/"+k of s. A blank prefix returns s itself. Sub panics if prefix
// is not a valid key (it is meant for constant or validated prefixes).
func Sub(s Store, prefix string) Store {
	prefix = strings.Trim(prefix, "/")
	if prefix == "" {
		return s
	}
	if err := checkKey(prefix); err != nil {
		panic(fmt.Sprintf("lake.Sub: %v", err))
	}
	if sub, ok := s.(*subStore); ok {
		return &subStore{parent: sub.parent, prefix: sub.prefix + prefix + "/"}
	}
	return &subStore{parent: s, prefix: prefix + "/"}
}

type subStore struct {
	parent Store
	prefix string // ends in '/'
}

func (s *subStore) Put(ctx context.Context, key string, data []byte) error {
	if err := checkKey(key); err != nil {
		return err
	}
	return s.parent.Put(ctx, s.prefix+key, data)
}

func (s *subStore) PutIfAbsent(ctx context.Context, key string, data []byte) error {
	if err := checkKey(key); err != nil {
		return err
	}
	return s.parent.PutIfAbsent(ctx, s.prefix+key, data)
}

func (s *subStore) Get(ctx context.Context, key string) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	return s.parent.Get(ctx, s.prefix+key)
}

func (s *subStore) GetSized(ctx context.Context, key string, size int64) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	return s.parent.GetSized(ctx, s.prefix+key, size)
}

func (s *subStore) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	if err := checkPrefix(prefix); err != nil {
		return nil, err
	}
	objs, err := s.parent.List(ctx, s.prefix+prefix)
	if err != nil {
		return nil, err
	}
	for i := range objs {
		objs[i].Key = strings.TrimPrefix(objs[i].Key, s.prefix)
	}
	return objs, nil
}

func (s *subStore) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	return s.parent.Delete(ctx, s.prefix+key)
}

func (s *subStore) URI() string {
	return strings.TrimSuffix(s.parent.URI(), "/") + "/" + strings.TrimSuffix(s.prefix, "/")
}

// Canonical returns the URI of the store uri names as Open's store reports
// it (Store.URI) — an absolute, clean file:///path, or s3://bucket[/prefix]
// — without opening anything. Roots and the stores they confine are
// compared in this form (Under).
func Canonical(uri string) (string, error) {
	uri, err := bareAbs(uri)
	if err != nil {
		return "", err
	}
	switch {
	case strings.HasPrefix(uri, "file://"):
		dir, err := parseFileURI(uri)
		if err != nil {
			return "", uriError{err}
		}
		abs, err := filepath.Abs(dir)
		if err != nil {
			return "", uriError{fmt.Errorf("lake: store URI %q: %w", uri, err)}
		}
		return "file://" + filepath.ToSlash(abs), nil
	case strings.HasPrefix(uri, "s3://"):
		bucket, prefix, err := parseS3URI(uri)
		if err != nil {
			return "", uriError{err}
		}
		if prefix == "" {
			return "s3://" + bucket, nil
		}
		return "s3://" + bucket + "/" + prefix, nil
	}
	return "", uriError{fmt.Errorf("lake: unsupported store URI %q (%s)", uri, acceptedURIs)}
}

// CanonicalRoots returns roots in canonical form (Canonical), or the
// first one that cannot name a store.
func CanonicalRoots(roots []string) ([]string, error) {
	out := make([]string, 0, len(roots))
	for _, r := range roots {
		c, err := Canonical(r)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// Under reports whether the store URI uri is one of roots or below one:
// the same scheme and location, and a path that continues the root's at a
// "/". Both are meant in canonical form (Canonical); a URI with a "." or
// ".." segment is under no root.
func Under(uri string, roots []string) bool {
	if dotSegment(uri) {
		return false
	}
	u := strings.TrimRight(uri, "/")
	for _, r := range roots {
		r = strings.TrimRight(r, "/")
		if u == r || strings.HasPrefix(u, r+"/") {
			return true
		}
	}
	return false
}

// dotSegment reports whether the path of uri has a "." or ".." segment.
func dotSegment(uri string) bool {
	_, rest, _ := strings.Cut(uri, "://")
	for seg := range strings.SplitSeq(rest, "/") {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}
