package ordered_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dataco/clickstream/internal/leaktest"
	"github.com/dataco/clickstream/internal/ordered"
)

func TestMain(m *testing.M) { leaktest.Main(m) }

var errBoom = errors.New("boom")

// waitLong bounds the waits of a test's fetches, so that a broken Fetch
// fails the test instead of hanging it.
const waitLong = 10 * time.Second

// run calls ordered.Fetch and checks what holds whatever the outcome: no
// fetch is still running when it returns, and use saw a prefix of the
// items, in order. It returns the items used and the error.
func run(t *testing.T, ctx context.Context, n, limit int, fetch func(context.Context, int) (int, error), use func(int) error) ([]int, error) {
	t.Helper()
	var running atomic.Int64
	var used []int
	err := ordered.Fetch(ctx, n, limit,
		func(ctx context.Context, i int) (int, error) {
			running.Add(1)
			defer running.Add(-1)
			return fetch(ctx, i)
		},
		func(i, v int) error {
			if v != 10*i {
				t.Errorf("use(%d, %d): the value of another item", i, v)
			}
			used = append(used, i)
			if use != nil {
				return use(i)
			}
			return nil
		})
	if r := running.Load(); r != 0 {
		t.Errorf("Fetch returned with %d fetches running", r)
	}
	if want := seq(len(used)); !slices.Equal(used, want) {
		t.Errorf("used %v, want %v", used, want)
	}
	return used, err
}

// seq returns 0, 1, ..., n-1.
func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

// TestFetchOrder checks that every item is fetched once and used in order,
// although later items finish their fetch first.
func TestFetchOrder(t *testing.T) {
	tests := []struct {
		name     string
		n, limit int
	}{
		{name: "no items", n: 0, limit: 4},
		{name: "one item", n: 1, limit: 1},
		{name: "one at a time", n: 6, limit: 1},
		{name: "four at a time", n: 50, limit: 4},
		{name: "limit above n", n: 3, limit: 10},
		{name: "zero limit means one", n: 5, limit: 0},
		{name: "negative limit means one", n: 5, limit: -3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			calls := make([]int, tc.n)
			used, err := run(t, t.Context(), tc.n, tc.limit, func(_ context.Context, i int) (int, error) {
				mu.Lock()
				calls[i]++
				mu.Unlock()
				time.Sleep(time.Duration(3-i%4) * 200 * time.Microsecond)
				return 10 * i, nil
			}, nil)
			if err != nil {
				t.Fatalf("Fetch = %v", err)
			}
			if len(used) != tc.n {
				t.Errorf("used %d items, want %d", len(used), tc.n)
			}
			for i, c := range calls {
				if c != 1 {
					t.Errorf("item %d fetched %d times", i, c)
				}
			}
		})
	}
}

// TestFetchBounded checks that no more than limit items are between the
// start of their fetch and the end of their use, and that the first limit
// fetches do run at once: each waits until all of them have started.
func TestFetchBounded(t *testing.T) {
	tests := []struct {
		name     string
		n, limit int
	}{
		{name: "one", n: 8, limit: 1},
		{name: "two", n: 20, limit: 2},
		{name: "five", n: 40, limit: 5},
		{name: "more than the items", n: 3, limit: 8},
		{name: "zero means one", n: 4, limit: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wave := min(max(tc.limit, 1), tc.n)
			var mu sync.Mutex
			active, peak, started := 0, 0, 0
			full := make(chan struct{})
			_, err := run(t, t.Context(), tc.n, tc.limit, func(_ context.Context, i int) (int, error) {
				mu.Lock()
				active++
				peak = max(peak, active)
				if started++; started == wave {
					close(full)
				}
				mu.Unlock()
				if i < wave {
					select {
					case <-full:
					case <-time.After(waitLong):
						t.Errorf("fetch %d: the first %d fetches never ran at once", i, wave)
					}
				}
				return 10 * i, nil
			}, func(int) error {
				time.Sleep(100 * time.Microsecond) // a slow use keeps its slot
				mu.Lock()
				active--
				mu.Unlock()
				return nil
			})
			if err != nil {
				t.Fatalf("Fetch = %v", err)
			}
			if peak != wave {
				t.Errorf("at most %d items in flight, want %d", peak, wave)
			}
		})
	}
}

// TestFetchError checks that the first error in item order ends the run:
// it is returned as fetch or use wrapped it, the items before it are used,
// and the fetches still running are cancelled.
func TestFetchError(t *testing.T) {
	tests := []struct {
		name      string
		fetchFail []int // items whose fetch fails, the last one first
		useFail   int   // item whose use fails, or -1
		want      int   // item whose error is returned
	}{
		{name: "fetch fails", fetchFail: []int{3}, useFail: -1, want: 3},
		{name: "first fetch fails", fetchFail: []int{0}, useFail: -1, want: 0},
		{name: "use fails", useFail: 3, want: 3},
		{name: "first use fails", useFail: 0, want: 0},
		{name: "an earlier item's later error wins", fetchFail: []int{2, 5}, useFail: -1, want: 2},
		{name: "a fetch error before a use error", fetchFail: []int{2}, useFail: 4, want: 2},
	}
	const n, limit = 10, 4
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Fetches of failing items fail in reverse order: each waits
			// for the next failing one to have failed.
			failed := map[int]chan struct{}{}
			for _, i := range tc.fetchFail {
				failed[i] = make(chan struct{})
			}
			used, err := run(t, t.Context(), n, limit, func(ctx context.Context, i int) (int, error) {
				if ch, ok := failed[i]; ok {
					if k := slices.Index(tc.fetchFail, i); k+1 < len(tc.fetchFail) {
						<-failed[tc.fetchFail[k+1]]
					}
					defer close(ch)
					return 0, fmt.Errorf("fetch %d: %w", i, errBoom)
				}
				if i > tc.want {
					select { // only cancellation ends it
					case <-ctx.Done():
						return 0, ctx.Err()
					case <-time.After(waitLong):
						t.Errorf("fetch %d was not cancelled", i)
					}
				}
				return 10 * i, nil
			}, func(i int) error {
				if i == tc.useFail {
					return fmt.Errorf("use %d: %w", i, errBoom)
				}
				return nil
			})
			if !errors.Is(err, errBoom) {
				t.Fatalf("Fetch = %v, want an error wrapping %v", err, errBoom)
			}
			what := "use"
			if slices.Contains(tc.fetchFail, tc.want) {
				what = "fetch"
			}
			if want := fmt.Sprintf("%s %d: boom", what, tc.want); err.Error() != want {
				t.Errorf("Fetch = %q, want %q", err, want)
			}
			wantUsed := tc.want
			if what == "use" {
				wantUsed++ // the failing use ran
			}
			if len(used) != wantUsed {
				t.Errorf("used %v, want items 0 to %d", used, wantUsed-1)
			}
		})
	}
}

// TestFetchContext checks that Fetch ends with the context: the fetches
// see it end, the items not started fail with its error, and the items
// before the first failure are used.
func TestFetchContext(t *testing.T) {
	tests := []struct {
		name     string
		ctx      func(t *testing.T) (context.Context, context.CancelFunc)
		cancelAt int // item whose use cancels the context, or -1
		want     error
		wantUsed int
	}{
		{
			name:     "cancelled while running",
			ctx:      func(t *testing.T) (context.Context, context.CancelFunc) { return context.WithCancel(t.Context()) },
			cancelAt: 2, want: context.Canceled, wantUsed: 3,
		},
		{
			name: "cancelled before",
			ctx: func(t *testing.T) (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(t.Context())
				cancel()
				return ctx, cancel
			},
			cancelAt: -1, want: context.Canceled, wantUsed: 0,
		},
		{
			name: "deadline",
			ctx: func(t *testing.T) (context.Context, context.CancelFunc) {
				return context.WithTimeout(t.Context(), 20*time.Millisecond)
			},
			cancelAt: -1, want: context.DeadlineExceeded, wantUsed: 3,
		},
	}
	const n, limit = 10, 3
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := tc.ctx(t)
			defer cancel()
			used, err := run(t, ctx, n, limit, func(ctx context.Context, i int) (int, error) {
				if err := ctx.Err(); err != nil {
					return 0, fmt.Errorf("fetch %d: %w", i, err)
				}
				if i >= tc.wantUsed {
					select {
					case <-ctx.Done():
						return 0, fmt.Errorf("fetch %d: %w", i, ctx.Err())
					case <-time.After(waitLong):
						t.Errorf("fetch %d never saw the context end", i)
					}
				}
				return 10 * i, nil
			}, func(i int) error {
				if i == tc.cancelAt {
					cancel()
				}
				return nil
			})
			if !errors.Is(err, tc.want) {
				t.Fatalf("Fetch = %v, want %v", err, tc.want)
			}
			if len(used) != tc.wantUsed {
				t.Errorf("used %v, want %d items", used, tc.wantUsed)
			}
		})
	}
}

// BenchmarkFetch measures the cost per item of the goroutine, channel and
// slot that Fetch spends on it, with a fetch and a use that do nothing.
func BenchmarkFetch(b *testing.B) {
	const n = 1024
	for _, limit := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("limit=%d", limit), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				err := ordered.Fetch(b.Context(), n, limit,
					func(_ context.Context, i int) (int, error) { return i, nil },
					func(int, int) error { return nil })
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/item")
		})
	}
}
