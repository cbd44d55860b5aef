package lake

import (
	"context"
	"errors"
	"fmt"
	"time"
)

var (
	// ErrNotExist is returned by Get and Stat for a key that is not there.
	ErrNotExist = errors.New("lake: object does not exist")
	// ErrExists is returned by PutIfAbsent when the key is already taken.
	ErrExists = errors.New("lake: object already exists")
	// ErrSize is matched by the error of GetSized for an object whose
	// size is not the one its reader was told (a manifest's record): it
	// was replaced or altered since it was recorded.
	ErrSize = errors.New("lake: object size differs from the recorded size")
	// ErrOutsideRoot is matched by the errors of a file store's operations
	// on a key that a symbolic link leads out of the store's folder, and of
	// OpenUnder for a store outside the roots it was given.
	ErrOutsideRoot = errors.New("lake: outside the root")
)

// sizeError is the error of GetSized for an object of got bytes, or of
// more than want bytes if got < 0.
func sizeError(got, want int64) error {
	if got < 0 {
		return fmt.Errorf("%w: more than the %d bytes recorded", ErrSize, want)
	}
	return fmt.Errorf("%w: %d bytes, not the %d recorded", ErrSize, got, want)
}

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
	// GetSized reads the object, which must hold exactly size bytes, as a
	// manifest recorded: it reads at most size bytes (and one more to see
	// the end), and an object of another size is an error matching ErrSize,
	// never a truncated read. A missing object is ErrNotExist.
	GetSized(ctx context.Context, key string, size int64) ([]byte, error)
	// List returns every object whose key starts with prefix, sorted by key.
	List(ctx context.Context, prefix string) ([]ObjectInfo, error)
	// Delete removes key; deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// URI names the store's root, e.g. "s3://bucket/prefix" or "file:///dir".
	URI() string
}
