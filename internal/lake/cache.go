package lake

import (
	"context"
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
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.stores[uri]; ok {
		return s, nil
	}
	s, err := Open(ctx, uri, c.opts)
	if err != nil {
		return nil, err
	}
	c.stores[uri] = s
	return s, nil
}
