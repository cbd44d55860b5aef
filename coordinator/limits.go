package coordinator

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/spf13/pflag"
)

// Limits bound what clients may ask of a coordinator. The first request
// over one is refused with an error that names the limit and its flag:
// InvalidArgument for a job that can never be accepted (a window or a
// session timeout too long, a list page too large), ResourceExhausted for
// one that may be later (too many unfinished jobs, too many watch streams,
// submits too fast; the last says when to retry).
//
// There is no separate bound on queued jobs: a queued job is a pending one
// (submitted, not yet planned), and pending jobs are unfinished jobs, so
// MaxActiveJobs bounds them with the running ones. It also bounds the
// leader's queue of jobs waiting to be planned (Config.PlanningParallelism
// plan at once), whose entries cost a pointer each.
type Limits struct {
	// MaxWindow is the longest window of a job; longer ranges are
	// backfilled one window per job (submit --window).
	MaxWindow time.Duration
	// MaxSessionTimeout is the longest session timeout of a job: a task
	// holds events this long past its window's end.
	MaxSessionTimeout time.Duration
	// MaxActiveJobs bounds the jobs not finished (pending, running,
	// merging, committing) in the cluster. It is checked when a job is
	// submitted, so submits racing each other may pass it together by
	// their number.
	MaxActiveJobs int
	// MaxWatchStreams bounds the WatchJob streams open at once on one
	// coordinator.
	MaxWatchStreams int
	// MaxListJobs is the largest page ListJobs returns.
	MaxListJobs int
	// MaxSubmitRate and MaxSubmitBurst bound the submits of each caller
	// on one coordinator: a token bucket of MaxSubmitBurst submits,
	// refilled at MaxSubmitRate per second. A caller is the identity of
	// its certificate under mutual TLS (its SPIFFE URI), else the IP
	// address it connects from: without TLS, clients behind one address
	// (a NAT, one host) share a bucket. Every SubmitJob call counts,
	// refused ones and idempotent retries included: each costs the
	// coordinator the same reads. Jobs of the coordinator's own schedule
	// do not count.
	MaxSubmitRate  float64
	MaxSubmitBurst int
	// MaxConnections bounds the client connections the API serves at
	// once; further ones wait in the listen backlog until one closes.
	MaxConnections int
}

// Default limits.
const (
	DefaultMaxWindow         = 31 * 24 * time.Hour
	DefaultMaxSessionTimeout = 24 * time.Hour
	DefaultMaxActiveJobs     = 1000
	DefaultMaxWatchStreams   = 256
	DefaultMaxListJobs       = 1000
	DefaultMaxSubmitRate     = 20
	DefaultMaxSubmitBurst    = 100
	DefaultMaxConnections    = 1024
)

// defaultListJobs is the page ListJobs returns when asked for none.
const defaultListJobs = 100

// NewLimits returns the default limits.
func NewLimits() Limits {
	return Limits{
		MaxWindow:         DefaultMaxWindow,
		MaxSessionTimeout: DefaultMaxSessionTimeout,
		MaxActiveJobs:     DefaultMaxActiveJobs,
		MaxWatchStreams:   DefaultMaxWatchStreams,
		MaxListJobs:       DefaultMaxListJobs,
		MaxSubmitRate:     DefaultMaxSubmitRate,
		MaxSubmitBurst:    DefaultMaxSubmitBurst,
		MaxConnections:    DefaultMaxConnections,
	}
}

// AddFlags binds the limits to flags of fs.
func (l *Limits) AddFlags(fs *pflag.FlagSet) {
	fs.DurationVar(&l.MaxWindow, "max-window", l.MaxWindow, "longest window of a job (longer ranges: submit --window)")
	fs.DurationVar(&l.MaxSessionTimeout, "max-session-timeout", l.MaxSessionTimeout, "longest session timeout a job may ask for")
	fs.IntVar(&l.MaxActiveJobs, "max-active-jobs", l.MaxActiveJobs, "most unfinished jobs in the cluster; submits past it are refused (RESOURCE_EXHAUSTED)")
	fs.IntVar(&l.MaxWatchStreams, "max-watch-streams", l.MaxWatchStreams, "most job watch streams open at once on this coordinator")
	fs.IntVar(&l.MaxListJobs, "max-list-jobs", l.MaxListJobs, "largest page of jobs a list may ask for")
	fs.Float64Var(&l.MaxSubmitRate, "max-submit-rate", l.MaxSubmitRate, "submits per second each caller may make on this coordinator (its mTLS identity, else its IP address); past --max-submit-burst, faster ones are refused (RESOURCE_EXHAUSTED, with when to retry)")
	fs.IntVar(&l.MaxSubmitBurst, "max-submit-burst", l.MaxSubmitBurst, "submits a caller may make at once before --max-submit-rate applies")
	fs.IntVar(&l.MaxConnections, "max-connections", l.MaxConnections, "client connections served at once; more wait until one closes")
}

// Validate checks the limits.
func (l *Limits) Validate() error {
	switch {
	case l.MaxWindow <= 0:
		return fmt.Errorf("%w: --max-window %v must be positive", ErrConfig, l.MaxWindow)
	case l.MaxSessionTimeout <= 0:
		return fmt.Errorf("%w: --max-session-timeout %v must be positive", ErrConfig, l.MaxSessionTimeout)
	case l.MaxActiveJobs < 1:
		return fmt.Errorf("%w: --max-active-jobs %d < 1", ErrConfig, l.MaxActiveJobs)
	case l.MaxWatchStreams < 1:
		return fmt.Errorf("%w: --max-watch-streams %d < 1", ErrConfig, l.MaxWatchStreams)
	case l.MaxListJobs < 1:
		return fmt.Errorf("%w: --max-list-jobs %d < 1", ErrConfig, l.MaxListJobs)
	case !(l.MaxSubmitRate > 0) || math.IsInf(l.MaxSubmitRate, 0):
		return fmt.Errorf("%w: --max-submit-rate %v must be positive and finite", ErrConfig, l.MaxSubmitRate)
	case l.MaxSubmitBurst < 1:
		return fmt.Errorf("%w: --max-submit-burst %d < 1", ErrConfig, l.MaxSubmitBurst)
	case l.MaxConnections < 1:
		return fmt.Errorf("%w: --max-connections %d < 1", ErrConfig, l.MaxConnections)
	}
	return nil
}

// ErrLimit is matched by the errors of requests refused for a limit that a
// later request may pass (ResourceExhausted): too many unfinished jobs or
// watch streams, submits too fast.
var ErrLimit = errors.New("coordinator: limit reached")

// retryError is a refusal that may be retried after a known delay; at the
// RPC edge the delay becomes the status's RetryInfo.
type retryError struct {
	err   error
	after time.Duration
}

func (e *retryError) Error() string { return e.err.Error() }
func (e *retryError) Unwrap() error { return e.err }

// checkSpec refuses a job spec over the limits.
func (l *Limits) checkSpec(js jobSpec) error {
	if w := js.To.Sub(js.From); w > l.MaxWindow {
		return fmt.Errorf("%w: window of %v is longer than %v (--max-window); backfill it one window per job (submit --window)", ErrInvalidJob, w, l.MaxWindow)
	}
	if js.SessionTimeout > l.MaxSessionTimeout {
		return fmt.Errorf("%w: session timeout %v is longer than %v (--max-session-timeout)", ErrInvalidJob, js.SessionTimeout, l.MaxSessionTimeout)
	}
	return nil
}
