package lake

import (
	"context"
	"errors"
	"time"
)

var (
	// ErrNotExist is returned by Get and Stat for a key that is not there.
	ErrNotExist = errors.New("lake: object does not exist")
	// ErrExists is returned by PutIfAbsent when the key is already taken.
	ErrExists = errors.New("lake: object already exists")
)

// ObjectInfo describes one stored object.
type ObjectInfo struct {
	Key     string // relative to the store's root, '/'-separated
	Size    int64
	ModTime time.Time
}

// Store is an object store rooted at a prefix. Keys are '/'-separated and
// relative to that root. Every implementation is safe for concurrent use.
type Store interface {
	// Put writes data at key, replacing whatever was there. Readers see
	// either the old or the new object, never a mix.
	Put(ctx context.Context, key string, data []byte) error
	// PutIfAbsent writes data at key only if no object exists there; of
	// several racing writers exactly one succeeds, the others get ErrExists.
	PutIfAbsent(ctx context.Context, key string, data []byte) error
	// Get reads the whole object, or returns ErrNotExist.
	Get(ctx context.Context, key string) ([]byte, error)
	// List returns every object whose key starts with prefix, sorted by key.
	List(ctx context.Context, prefix string) ([]ObjectInfo, error)
	// Delete removes key; deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// URI names the store's root, e.g. "s3://bucket/prefix" or "file:///dir".
	URI() string
}
