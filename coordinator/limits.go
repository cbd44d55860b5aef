package coordinator

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/pflag"
)

// Limits bound what clients may ask of a coordinator. The first request
// over one is refused with an error that names the limit and its flag:
// InvalidArgument for a job that can never be accepted (a window or a
// session timeout too long, a list page too large), ResourceExhausted for
// one that may be later (too many unfinished jobs, too many watch streams).
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
}

// Default limits.
const (
	DefaultMaxWindow         = 31 * 24 * time.Hour
	DefaultMaxSessionTimeout = 24 * time.Hour
	DefaultMaxActiveJobs     = 1000
	DefaultMaxWatchStreams   = 256
	DefaultMaxListJobs       = 1000
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
	}
}

// AddFlags binds the limits to flags of fs.
func (l *Limits) AddFlags(fs *pflag.FlagSet) {
	fs.DurationVar(&l.MaxWindow, "max-window", l.MaxWindow, "longest window of a job (longer ranges: submit --window)")
	fs.DurationVar(&l.MaxSessionTimeout, "max-session-timeout", l.MaxSessionTimeout, "longest session timeout a job may ask for")
	fs.IntVar(&l.MaxActiveJobs, "max-active-jobs", l.MaxActiveJobs, "most unfinished jobs in the cluster; submits past it are refused (RESOURCE_EXHAUSTED)")
	fs.IntVar(&l.MaxWatchStreams, "max-watch-streams", l.MaxWatchStreams, "most job watch streams open at once on this coordinator")
	fs.IntVar(&l.MaxListJobs, "max-list-jobs", l.MaxListJobs, "largest page of jobs a list may ask for")
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
	}
	return nil
}

// ErrLimit is matched by the errors of requests refused for a limit that a
// later request may pass (ResourceExhausted): too many unfinished jobs or
// watch streams.
var ErrLimit = errors.New("coordinator: limit reached")

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
