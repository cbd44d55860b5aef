package lake

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// fileTmpDir is the folder, directly under a FileStore's root, that holds
// files being written. It is on the same filesystem as every object, so a
// rename or link from it is atomic, and List never looks into it. It is
// made by the first write: a store only read creates nothing.
const fileTmpDir = ".tmp"

// staleTmpAge is the age past which NewFileStore removes leftover temp files
// of crashed writers. Other processes may share the folder, so younger temp
// files are left alone.
const staleTmpAge = 24 * time.Hour

// FileStore is a Store on a local folder: key a/b/c is the file dir/a/b/c.
//
// Every operation resolves its key inside the folder through an os.Root:
// one folder at a time, following a symbolic link only while it stays
// inside (a relative link; os.Root follows no absolute one). A key that
// leads out of the folder through a link (the folder's own path is taken
// as given) is refused with an error matching ErrOutsideRoot, by every
// operation; nothing is read, written, created, listed or deleted outside. The folder is the one dir names at each call:
// a folder replaced under the same name (a lake rebuilt in place) is
// opened again.
//
// Writes go to a temp file under dir/.tmp/, are fsynced, then renamed (Put)
// or hard-linked (PutIfAbsent) into place, and the parent folder is fsynced,
// so a crash leaves either the old object or the new one. Several processes
// may share one folder. The first key segment ".tmp" is reserved. Unlike S3,
// a key cannot be both an object and a folder: with "a" stored, writing
// "a/b" fails. Empty folders left by Delete are not removed. List shows
// regular files only, not symbolic links; Get follows a link that stays
// inside the folder.
type FileStore struct {
	dir string // absolute
	// under, when set, is the folder of the root the store was opened
	// under (OpenUnder), and rel the store's folder relative to it: the
	// folder is then reopened from there, inside that root, too.
	under, rel string

	mu     sync.Mutex
	root   *os.Root    // dir, as last opened
	rootFI os.FileInfo // of root, to notice that dir names another folder
}

var _ Store = (*FileStore)(nil)

// NewFileStore opens (creating if needed) the folder dir as a store.
func NewFileStore(dir string) (*FileStore, error) {
	if dir == "" {
		return nil, errors.New("lake: file store: empty folder name")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("lake: file store %q: %w", dir, err)
	}
	s := &FileStore{dir: abs}
	if _, err := s.handle(true); err != nil {
		return nil, fmt.Errorf("lake: file store: %w", err)
	}
	s.removeStaleTemps()
	return s, nil
}

// newFileStoreUnder opens the folder rel (not ".") below the folder under
// as a store, creating what is missing of it: from under down, inside
// under (os.Root), so that a symbolic link on the way cannot lead the
// store, or the folders made for it, out of under.
func newFileStoreUnder(under, rel string) (*FileStore, error) {
	s := &FileStore{dir: filepath.Join(under, rel), under: under, rel: rel}
	if _, err := s.handle(true); err != nil {
		return nil, fmt.Errorf("lake: file store: %w", err)
	}
	s.removeStaleTemps()
	return s, nil
}

// handle returns the store's folder, opened. The open folder is kept while
// dir still names it; when dir names another folder, or none, the folder
// is opened again (created first if create). A root replaced here is
// not closed, as calls in flight may use it: the garbage collector closes
// it.
func (s *FileStore) handle(create bool) (*os.Root, error) {
	fi, statErr := os.Stat(s.dir)
	s.mu.Lock()
	defer s.mu.Unlock()
	if statErr == nil && s.root != nil && os.SameFile(fi, s.rootFI) {
		return s.root, nil
	}
	r, err := s.openRoot(create)
	if err != nil {
		return nil, err
	}
	rfi, err := r.Stat(".")
	if err != nil {
		r.Close()
		return nil, err
	}
	s.root, s.rootFI = r, rfi
	return r, nil
}

func (s *FileStore) openRoot(create bool) (*os.Root, error) {
	if s.under == "" {
		if create {
			if err := os.MkdirAll(s.dir, 0o755); err != nil {
				return nil, err
			}
		}
		r, err := os.OpenRoot(s.dir)
		if err == nil {
			noteEscapeError(r)
		}
		return r, err
	}
	if create {
		if err := os.MkdirAll(s.under, 0o755); err != nil {
			return nil, err
		}
	}
	parent, err := os.OpenRoot(s.under)
	if err != nil {
		return nil, err
	}
	defer parent.Close()
	noteEscapeError(parent)
	if create {
		if err := parent.MkdirAll(s.rel, 0o755); err != nil {
			return nil, outside(err)
		}
	}
	r, err := parent.OpenRoot(s.rel)
	return r, outside(err)
}

// errEscape is the error os.Root wraps for a path that leads out of the
// root; package os does not export it, so noteEscapeError takes it from
// an open that must fail that way ("..": os.Root refuses it before any
// system call).
var (
	escapeOnce sync.Once
	errEscape  error
)

func noteEscapeError(r *os.Root) {
	escapeOnce.Do(func() {
		_, err := r.Open("..")
		var pe *fs.PathError
		if errors.As(err, &pe) {
			errEscape = pe.Err
		}
	})
}

// outside makes an error of os.Root for a path leading out of the root
// match ErrOutsideRoot; other errors are returned as they are.
func outside(err error) error {
	if err != nil && errEscape != nil && errors.Is(err, errEscape) {
		return fmt.Errorf("%w: %w", ErrOutsideRoot, err)
	}
	return err
}

// Dir returns the store's absolute root folder.
func (s *FileStore) Dir() string { return s.dir }

// URI returns "file://" followed by the absolute root folder.
func (s *FileStore) URI() string { return "file://" + filepath.ToSlash(s.dir) }

func (s *FileStore) removeStaleTemps() {
	r, err := s.handle(false)
	if err != nil {
		return
	}
	ents, err := fs.ReadDir(r.FS(), fileTmpDir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > staleTmpAge {
			_ = r.Remove(path.Join(fileTmpDir, e.Name()))
		}
	}
}

// path validates key and returns it as a path relative to the root.
func (s *FileStore) path(key string) (string, error) {
	if err := checkKey(key); err != nil {
		return "", err
	}
	if key == fileTmpDir || strings.HasPrefix(key, fileTmpDir+"/") {
		return "", fmt.Errorf("lake: key %q: the first segment %q is reserved by the file store", key, fileTmpDir)
	}
	return filepath.FromSlash(key), nil
}

// Put writes data at key atomically (temp file, fsync, rename).
func (s *FileStore) Put(ctx context.Context, key string, data []byte) error {
	return s.put(ctx, key, data, false)
}

// PutIfAbsent writes data at key unless it exists (temp file, fsync, link):
// of several racing writers, processes included, exactly one wins.
func (s *FileStore) PutIfAbsent(ctx context.Context, key string, data []byte) error {
	return s.put(ctx, key, data, true)
}

func (s *FileStore) put(ctx context.Context, key string, data []byte, exclusive bool) error {
	p, err := s.path(key)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	r, err := s.handle(true)
	if err != nil {
		return fmt.Errorf("lake: put %s: %w", key, err)
	}
	switch fi, err := r.Lstat(p); {
	case err == nil:
		if err := checkLink(r, p, fi); err != nil {
			return fmt.Errorf("lake: put %s: %w", key, err)
		}
		if exclusive {
			// Fail fast without writing: the common loser case of a fence.
			return fmt.Errorf("lake: put %s: %w", key, ErrExists)
		}
	case errors.Is(outside(err), ErrOutsideRoot):
		return fmt.Errorf("lake: put %s: %w", key, outside(err))
	}
	parent := filepath.Dir(p)
	// The parent first: a key leading out of the root fails here, before
	// anything is written.
	if err := mkdirAll(r, parent); err != nil {
		return fmt.Errorf("lake: put %s: %w", key, outside(err))
	}
	tmp, err := writeTemp(r, data)
	if err != nil {
		return fmt.Errorf("lake: put %s: %w", key, outside(err))
	}
	defer r.Remove(tmp) // after a rename this is a no-op; after a link it drops the extra name
	if exclusive {
		err = r.Link(tmp, p)
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("lake: put %s: %w", key, ErrExists)
		}
	} else {
		err = r.Rename(tmp, p)
	}
	if err != nil {
		return fmt.Errorf("lake: put %s: %w", key, outside(err))
	}
	if err := syncDir(r, parent); err != nil {
		return fmt.Errorf("lake: put %s: %w", key, outside(err))
	}
	return nil
}

// writeTemp writes data to a new fsynced file under the temp folder of r
// and returns its name in r.
func writeTemp(r *os.Root, data []byte) (name string, err error) {
	var rnd [12]byte
	_, _ = rand.Read(rnd[:])
	name = filepath.Join(fileTmpDir, ".tmp-"+hex.EncodeToString(rnd[:]))
	const flags = os.O_RDWR | os.O_CREATE | os.O_EXCL
	f, err := r.OpenFile(name, flags, 0o644)
	if errors.Is(err, fs.ErrNotExist) {
		// The first write, or someone removed the temp folder under us.
		if err = r.Mkdir(fileTmpDir, 0o755); err == nil || errors.Is(err, fs.ErrExist) {
			f, err = r.OpenFile(name, flags, 0o644)
		}
	}
	if err != nil {
		return "", err
	}
	defer func() {
		if err != nil {
			f.Close()
			r.Remove(name)
		}
	}()
	if err = f.Chmod(0o644); err != nil { // whatever the umask
		return "", err
	}
	if _, err = f.Write(data); err != nil {
		return "", err
	}
	if err = f.Sync(); err != nil {
		return "", err
	}
	if err = f.Close(); err != nil {
		return "", err
	}
	return name, nil
}

// mkdirAll creates the folder dir of r and any missing parents, fsyncing
// the parent of each folder it creates so the new entries survive a crash.
func mkdirAll(r *os.Root, dir string) error {
	if dir == "." {
		return nil
	}
	if fi, err := r.Stat(dir); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s is a file, not a folder", filepath.ToSlash(dir))
		}
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	parent := filepath.Dir(dir)
	if err := mkdirAll(r, parent); err != nil {
		return err
	}
	if err := r.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return syncDir(r, parent)
}

// checkLink refuses a key that is a symbolic link leading out of r, fi
// being its Lstat: the calls that act on a key's last link itself rather
// than its target (Rename, Link, Remove) would otherwise treat a key
// that names something outside as an object of the store.
func checkLink(r *os.Root, p string, fi fs.FileInfo) error {
	if fi.Mode()&fs.ModeSymlink == 0 {
		return nil
	}
	if _, err := r.Stat(p); err != nil && errors.Is(outside(err), ErrOutsideRoot) {
		return outside(err)
	}
	return nil
}

func syncDir(r *os.Root, dir string) error {
	d, err := r.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Get reads the file at key.
func (s *FileStore) Get(ctx context.Context, key string) ([]byte, error) {
	return s.get(ctx, key, -1)
}

// GetSized reads the file at key, which must hold exactly size bytes: a
// file of another size is an error matching ErrSize, found by its size
// before any read, and checked again at the end of the read in case it
// grew meanwhile.
func (s *FileStore) GetSized(ctx context.Context, key string, size int64) ([]byte, error) {
	if size < 0 {
		return nil, fmt.Errorf("lake: get %s: negative size %d", key, size)
	}
	return s.get(ctx, key, size)
}

// get reads the file at key; size < 0 reads it whole, whatever its size.
func (s *FileStore) get(ctx context.Context, key string, size int64) ([]byte, error) {
	p, err := s.path(key)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r, err := s.handle(false)
	if err == nil {
		var data []byte
		if data, err = readFile(r, p, size); err == nil {
			return data, nil
		}
	}
	// A folder, or a path through a file, is no object either.
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.EISDIR) || errors.Is(err, syscall.ENOTDIR) {
		return nil, fmt.Errorf("lake: get %s: %w", key, ErrNotExist)
	}
	return nil, fmt.Errorf("lake: get %s: %w", key, outside(err))
}

func readFile(r *os.Root, name string, size int64) ([]byte, error) {
	if size < 0 {
		return r.ReadFile(name)
	}
	f, err := r.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		return nil, syscall.EISDIR
	}
	if fi.Size() != size {
		return nil, sizeError(fi.Size(), size)
	}
	data := make([]byte, size)
	n, err := io.ReadFull(f, data)
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		return nil, sizeError(int64(n), size) // shrank while read
	case err != nil:
		return nil, err
	}
	var one [1]byte
	if k, _ := f.Read(one[:]); k > 0 {
		return nil, sizeError(-1, size) // grew while read
	}
	return data, nil
}

// List walks the folders under the store root that can hold keys starting
// with prefix and returns those keys sorted.
func (s *FileStore) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	if err := checkPrefix(prefix); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r, err := s.handle(false)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("lake: list %q: %w", prefix, err)
	}
	// Start at the deepest folder named by the prefix.
	start := "."
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		start = prefix[:i]
	}
	var objs []ObjectInfo
	err = fs.WalkDir(r.FS(), start, func(key string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
				return nil // missing start folder, or removed while walking
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() {
			if key == fileTmpDir {
				return fs.SkipDir
			}
			return nil
		}
		if !strings.HasPrefix(key, prefix) || !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // deleted while walking
			}
			return err
		}
		objs = append(objs, ObjectInfo{Key: key, Size: info.Size(), ModTime: info.ModTime()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("lake: list %q: %w", prefix, outside(err))
	}
	// WalkDir orders each folder by name, which is not key order ("a/b"
	// sorts after "a-c" as a key but walks before it).
	slices.SortFunc(objs, func(a, b ObjectInfo) int { return strings.Compare(a.Key, b.Key) })
	return objs, nil
}

// Delete removes the file at key; a missing key is not an error.
func (s *FileStore) Delete(ctx context.Context, key string) error {
	p, err := s.path(key)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	r, err := s.handle(false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("lake: delete %s: %w", key, err)
	}
	fi, err := r.Lstat(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil
		}
		return fmt.Errorf("lake: delete %s: %w", key, outside(err))
	}
	if fi.IsDir() {
		return nil // a folder is not an object
	}
	if err := checkLink(r, p, fi); err != nil {
		return fmt.Errorf("lake: delete %s: %w", key, err)
	}
	if err := r.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("lake: delete %s: %w", key, outside(err))
	}
	if err := syncDir(r, filepath.Dir(p)); err != nil {
		return fmt.Errorf("lake: delete %s: %w", key, outside(err))
	}
	return nil
}
