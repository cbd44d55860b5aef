package lake

import (
	"context"
	"strings"
	"sync"
)

// Stores opens stores by URI once and keeps them: a process that reads many
// lakes and outputs (a coordinator, a worker) shares one client per store.
// The zero value is not ready: use NewStores.
type Stores struct {
	opts   S3Options
	mu     sync.Mutex
	stores map[string]Store
}

// NewStores returns an empty cache opening stores with opts.
func NewStores(opts S3Options) *Stores {
	return &Stores{opts: opts, stores: make(map[string]Store)}
}

// Open returns the store at uri, opening it on first use.
func (c *Stores) Open(ctx context.Context, uri string) (Store, error) {
	return c.open(uri, func() (Store, error) { return Open(ctx, uri, c.opts) })
}

// OpenUnder returns the store at uri, opened on first use by OpenUnder
// with roots: one under none of them is refused (ErrOutsideRoot) every
// time.
func (c *Stores) OpenUnder(ctx context.Context, uri string, roots []string) (Store, error) {
	key := uri + "\x00" + strings.Join(roots, "\x00")
	return c.open(key, func() (Store, error) { return OpenUnder(ctx, uri, roots, c.opts) })
}

func (c *Stores) open(key string, open func() (Store, error)) (Store, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.stores[key]; ok {
		return s, nil
	}
	s, err := open()
	if err != nil {
		return nil, err
	}
	c.stores[key] = s
	return s, nil
}
