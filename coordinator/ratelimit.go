// Submit rates: a token bucket per caller, in a table of bounded size.

package coordinator

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/grpc/peer"

	"github.com/dataco/clickstream/internal/mtls"
)

const (
	// maxSubmitters bounds the callers whose buckets a coordinator keeps
	// (about 200 bytes each). Callers past it share one bucket until
	// idle callers are forgotten.
	maxSubmitters = 10000
	// submitterSweepEvery is the least time between two sweeps of the
	// table for idle callers.
	submitterSweepEvery = time.Second
)

// submitLimiter holds a token bucket (rate.Limiter) per caller. A bucket
// that has refilled to its burst is the same as a new one, so callers idle
// that long are forgotten, at most once per submitterSweepEvery, when a
// caller not in the table arrives. The table holds at most max callers;
// while it is full, callers not in it share the overflow bucket: however
// many identities a client cycles through, together they get one
// caller's rate.
type submitLimiter struct {
	limit rate.Limit
	burst int
	max   int
	now   func() time.Time

	mu        sync.Mutex
	callers   map[string]*rate.Limiter
	overflow  *rate.Limiter
	nextSweep time.Time
}

func newSubmitLimiter(perSecond float64, burst, maxCallers int, now func() time.Time) *submitLimiter {
	if now == nil {
		now = time.Now
	}
	return &submitLimiter{
		limit:    rate.Limit(perSecond),
		burst:    burst,
		max:      maxCallers,
		now:      now,
		callers:  make(map[string]*rate.Limiter),
		overflow: rate.NewLimiter(rate.Limit(perSecond), burst),
	}
}

// allow takes one submit from caller's bucket. When the bucket is empty it
// returns false and the wait until it holds a submit again, rounded up to
// the millisecond, and whether the bucket is the overflow one.
func (s *submitLimiter) allow(caller string) (ok bool, wait time.Duration, shared bool) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	lim := s.callers[caller]
	if lim == nil {
		if !now.Before(s.nextSweep) {
			s.sweep(now)
		}
		if len(s.callers) < s.max {
			lim = rate.NewLimiter(s.limit, s.burst)
			s.callers[caller] = lim
		} else {
			lim, shared = s.overflow, true
		}
	}
	if lim.AllowN(now, 1) {
		return true, 0, shared
	}
	missing := 1 - lim.TokensAt(now)
	wait = time.Duration(missing / float64(s.limit) * float64(time.Second))
	return false, (wait + time.Millisecond - 1).Truncate(time.Millisecond), shared
}

// sweep forgets the callers whose buckets are full again.
func (s *submitLimiter) sweep(now time.Time) {
	for k, lim := range s.callers {
		if lim.TokensAt(now) >= float64(s.burst) {
			delete(s.callers, k)
		}
	}
	s.nextSweep = now.Add(submitterSweepEvery)
}

// tracked returns the number of callers in the table.
func (s *submitLimiter) tracked() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.callers)
}

// submitter names the caller of an RPC for its submit rate: the SPIFFE URI
// of its certificate under mutual TLS, else the IP address it connects
// from (without its port: one client, however many connections).
func submitter(ctx context.Context) string {
	if id, ok := mtls.FromContext(ctx); ok {
		return id.URI()
	}
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return "unknown"
	}
	if tcp, ok := p.Addr.(*net.TCPAddr); ok {
		return "ip:" + tcp.IP.String()
	}
	if host, _, err := net.SplitHostPort(p.Addr.String()); err == nil {
		return "ip:" + host
	}
	return p.Addr.Network() + ":" + p.Addr.String()
}

// checkSubmitRate takes a submit from the bucket of ctx's caller, or
// returns the ResourceExhausted error that says when to retry.
func (c *Coordinator) checkSubmitRate(ctx context.Context) error {
	who := submitter(ctx)
	ok, wait, shared := c.submits.allow(who)
	if ok {
		return nil
	}
	if shared {
		who += fmt.Sprintf(" (with every caller past the %d this coordinator tracks)", maxSubmitters)
	}
	c.metrics.refused.WithLabelValues(limitSubmitRate).Inc()
	l := c.cfg.Limits
	return &retryError{
		err: fmt.Errorf("%w: %s submits faster than %g jobs per second after a burst of %d (--max-submit-rate, --max-submit-burst); retry in %v",
			ErrLimit, who, l.MaxSubmitRate, l.MaxSubmitBurst, wait),
		after: wait,
	}
}
