package lake

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// fileTmpDir is the folder, directly under a FileStore's root, that holds
// files being written. It is on the same filesystem as every object, so a
// rename or link from it is atomic, and List never looks into it.
const fileTmpDir = ".tmp"

// staleTmpAge is the age past which NewFileStore removes leftover temp files
// of crashed writers. Other processes may share the folder, so younger temp
// files are left alone.
const staleTmpAge = 24 * time.Hour

// FileStore is a Store on a local folder: key a/b/c is the file dir/a/b/c.
//
// Writes go to a temp file under dir/.tmp/, are fsynced, then renamed (Put)
// or hard-linked (PutIfAbsent) into place, and the parent folder is fsynced,
// so a crash leaves either the old object or the new one. Several processes
// may share one folder. The first key segment ".tmp" is reserved. Unlike S3,
// a key cannot be both an object and a folder: with "a" stored, writing
// "a/b" fails. Empty folders left by Delete are not removed.
type FileStore struct {
	dir string // absolute
	tmp string // dir/.tmp
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
	s := &FileStore{dir: abs, tmp: filepath.Join(abs, fileTmpDir)}
	if err := os.MkdirAll(s.tmp, 0o755); err != nil {
		return nil, fmt.Errorf("lake: file store: %w", err)
	}
	s.removeStaleTemps()
	return s, nil
}

// Dir returns the store's absolute root folder.
func (s *FileStore) Dir() string { return s.dir }

// URI returns "file://" followed by the absolute root folder.
func (s *FileStore) URI() string { return "file://" + filepath.ToSlash(s.dir) }

func (s *FileStore) removeStaleTemps() {
	ents, err := os.ReadDir(s.tmp)
	if err != nil {
		return
	}
	for _, e := range ents {
		if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > staleTmpAge {
			_ = os.Remove(filepath.Join(s.tmp, e.Name()))
		}
	}
}

func (s *FileStore) path(key string) (string, error) {
	if err := checkKey(key); err != nil {
		return "", err
	}
	if key == fileTmpDir || strings.HasPrefix(key, fileTmpDir+"/") {
		return "", fmt.Errorf("lake: key %q: the first segment %q is reserved by the file store", key, fileTmpDir)
	}
	return filepath.Join(s.dir, filepath.FromSlash(key)), nil
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
	if exclusive {
		// Fail fast without writing: the common loser case of a fence.
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("lake: put %s: %w", key, ErrExists)
		}
	}
	tmp, err := s.writeTemp(data)
	if err != nil {
		return fmt.Errorf("lake: put %s: %w", key, err)
	}
	defer os.Remove(tmp) // after a rename this is a no-op; after a link it drops the extra name
	parent := filepath.Dir(p)
	if err := s.mkdirAll(parent); err != nil {
		return fmt.Errorf("lake: put %s: %w", key, err)
	}
	if exclusive {
		err = os.Link(tmp, p)
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("lake: put %s: %w", key, ErrExists)
		}
	} else {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		return fmt.Errorf("lake: put %s: %w", key, err)
	}
	if err := syncDir(parent); err != nil {
		return fmt.Errorf("lake: put %s: %w", key, err)
	}
	return nil
}

// writeTemp writes data to a new fsynced file under the temp folder.
func (s *FileStore) writeTemp(data []byte) (name string, err error) {
	f, err := os.CreateTemp(s.tmp, ".tmp-*")
	if errors.Is(err, fs.ErrNotExist) {
		// Someone removed the temp folder under us; recreate it once.
		if err = os.MkdirAll(s.tmp, 0o755); err == nil {
			f, err = os.CreateTemp(s.tmp, ".tmp-*")
		}
	}
	if err != nil {
		return "", err
	}
	name = f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(name)
		}
	}()
	if err = f.Chmod(0o644); err != nil {
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

// mkdirAll creates dir and any missing parents below the store root,
// fsyncing the parent of each folder it creates so the new entries survive
// a crash.
func (s *FileStore) mkdirAll(dir string) error {
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s is a file, not a folder", dir)
		}
		return nil
	}
	if dir == s.dir || len(dir) <= len(s.dir) {
		return os.MkdirAll(dir, 0o755)
	}
	parent := filepath.Dir(dir)
	if err := s.mkdirAll(parent); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return syncDir(parent)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
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
	p, err := s.path(key)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(p)
	if err != nil {
		// A folder, or a path through a file, is no object either.
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.EISDIR) || errors.Is(err, syscall.ENOTDIR) {
			return nil, fmt.Errorf("lake: get %s: %w", key, ErrNotExist)
		}
		return nil, fmt.Errorf("lake: get %s: %w", key, err)
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
	// Start at the deepest folder named by the prefix.
	start := s.dir
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		start = filepath.Join(s.dir, filepath.FromSlash(prefix[:i]))
	}
	var objs []ObjectInfo
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
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
			if p == s.tmp {
				return filepath.SkipDir
			}
			return nil
		}
		rel, err := filepath.Rel(s.dir, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
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
		return nil, fmt.Errorf("lake: list %q: %w", prefix, err)
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
	fi, err := os.Lstat(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil
		}
		return fmt.Errorf("lake: delete %s: %w", key, err)
	}
	if fi.IsDir() {
		return nil // a folder is not an object
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("lake: delete %s: %w", key, err)
	}
	return syncDir(filepath.Dir(p))
}
