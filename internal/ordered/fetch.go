package ordered

import (
	"context"
	"sync"
)

// Fetch calls fetch(ctx, i) for every i in [0, n), at most limit at a time
// (limit < 1 means 1), starting them in order of i; and it calls use(i, v)
// with each result, in order of i, on the calling goroutine. A fetch's slot
// frees only when use returns, so at most limit results exist at once,
// being fetched, waiting or in use.
//
// The first error in order of i, from fetch or use, ends the run: the
// context of the fetches still running is cancelled, Fetch waits for them
// and returns that error as it is (errors of later items are dropped, even
// if they came first). When ctx ends, the items whose fetch has not started
// fail with ctx.Err(). Fetch returns only once every fetch it started has
// returned.
func Fetch[T any](ctx context.Context, n, limit int, fetch func(ctx context.Context, i int) (T, error), use func(i int, v T) error) error {
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel: no fetch is left running
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		v   T
		err error
	}
	slots := make([]chan result, n)
	for i := range slots {
		slots[i] = make(chan result, 1)
	}
	sem := make(chan struct{}, max(1, limit))
	wg.Add(1)
	go func() { // starts the fetches, in order
		defer wg.Done()
		for i := range n {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				slots[i] <- result{err: ctx.Err()}
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				v, err := fetch(ctx, i)
				slots[i] <- result{v: v, err: err}
			}()
		}
	}()
	for i := range n {
		r := <-slots[i]
		if r.err != nil {
			return r.err
		}
		err := use(i, r.v)
		<-sem // only now: the result is done with
		if err != nil {
			return err
		}
	}
	return nil
}
