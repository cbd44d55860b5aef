package aggregate

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// DefaultSessionTimeout ends a session: an event whose next event (same
// user) comes this late or later is an exit and has no time-spent value.
const DefaultSessionTimeout = 30 * time.Minute

// Sentinel errors of the package. Errors returned by this package wrap one
// of them, so callers can test with errors.Is.
var (
	// ErrInvalidWindow reports a window that cannot be aggregated.
	ErrInvalidWindow = errors.New("aggregate: invalid window")
	// ErrCorrupt reports an encoded partial that does not decode.
	ErrCorrupt = errors.New("aggregate: corrupt partial")
	// ErrUnsupportedFile reports a Parquet file whose schema or encoding the
	// fast column reader does not handle.
	ErrUnsupportedFile = errors.New("aggregate: unsupported parquet file")
)

// Window is the event-time range [From, To) of one aggregation job.
type Window struct {
	From, To time.Time
}

// Validate reports whether the window can be aggregated: both ends set,
// To strictly after From, and both within the range of epoch milliseconds
// an int64 holds.
func (w Window) Validate() error {
	switch {
	case w.From.IsZero() || w.To.IsZero():
		return fmt.Errorf("window [%s, %s): both ends must be set: %w", w.From, w.To, ErrInvalidWindow)
	case !w.To.After(w.From):
		return fmt.Errorf("window [%s, %s): to must be after from: %w", w.From, w.To, ErrInvalidWindow)
	case w.From.Year() < 1 || w.To.Year() > 9999:
		return fmt.Errorf("window [%s, %s): outside years 1..9999: %w", w.From, w.To, ErrInvalidWindow)
	}
	return nil
}

func (w Window) String() string {
	return "[" + w.From.UTC().Format(time.RFC3339Nano) + ", " + w.To.UTC().Format(time.RFC3339Nano) + ")"
}

// bounds is a window and a session timeout in integer epoch milliseconds.
// Event timestamps are integers, so for a timestamp ts:
//
//	From <= ts      <=> ts >= from     (from = ceil(From))
//	ts < To         <=> ts < to        (to = ceil(To))
//	gap < timeout   <=> gap < timeout  (timeout = ceil(timeout))
//
// Events at or after limit = to + timeout can never be the next event of an
// in-window event with a gap under the timeout, so they are dropped on input
// like events before from.
type bounds struct {
	from, to, limit, timeout int64
}

func newBounds(w Window, timeout time.Duration) bounds {
	if timeout <= 0 {
		timeout = DefaultSessionTimeout
	}
	b := bounds{
		from:    ceilMillis(w.From),
		to:      ceilMillis(w.To),
		timeout: int64((timeout + time.Millisecond - 1) / time.Millisecond),
	}
	b.limit = b.to + b.timeout
	if b.limit < b.to { // overflow: keep everything after to
		b.limit = math.MaxInt64
	}
	return b
}

// keep reports whether an event at ts can matter to the window: counted, or
// the look-ahead successor of a counted one.
func (b *bounds) keep(ts int64) bool { return ts >= b.from && ts < b.limit }

func ceilMillis(t time.Time) int64 {
	ms := t.UnixMilli()
	if time.UnixMilli(ms).Before(t) {
		ms++
	}
	return ms
}
