package chaos

import (
	"fmt"
	"time"

	"github.com/dataco/clickstream/internal/event"
	"github.com/dataco/clickstream/internal/gen"
)

// Input is the click data of every run: what `clickstream gen --seed S
// --events N` produces, the events event.Parse accepts from it, and the
// windows the jobs aggregate.
type Input struct {
	Seed     int64
	Messages int
	Valid    []event.Event
	Windows  []Window
}

// WindowLength is the length of every job's window.
const WindowLength = 30 * time.Minute

// Window is one job's event-time window.
type Window struct{ From, To time.Time }

func (w Window) String() string { return w.From.Format("2006-01-02T1504") }

// NewInput generates the messages the gen command makes for seed and n,
// and picks up to maxWindows consecutive windows from the first event's
// hour, each followed by a full session timeout of data (look-ahead).
func NewInput(seed int64, n, maxWindows int) (*Input, error) {
	cfg := gen.NewConfig()
	cfg.Seed, cfg.Events = seed, n
	g, err := gen.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("chaos: input: %w", err)
	}
	in := &Input{Seed: seed}
	var lo, hi int64
	for {
		m, ok := g.Next()
		if !ok {
			break
		}
		in.Messages++
		e, err := event.Parse(m.Value)
		if err != nil {
			continue
		}
		e.IsBot = m.Bot // the generator's truth, which ingest's classifier must match
		if len(in.Valid) == 0 || e.Timestamp < lo {
			lo = e.Timestamp
		}
		hi = max(hi, e.Timestamp)
		in.Valid = append(in.Valid, e)
	}
	if in.Messages != n || len(in.Valid) == 0 {
		return nil, fmt.Errorf("chaos: input: generated %d messages (%d valid), want %d", in.Messages, len(in.Valid), n)
	}
	from := time.UnixMilli(lo).UTC().Truncate(time.Hour)
	end := time.UnixMilli(hi).UTC().Add(-gen.SessionTimeout)
	for len(in.Windows) < maxWindows && !from.Add(WindowLength).After(end) {
		in.Windows = append(in.Windows, Window{From: from, To: from.Add(WindowLength)})
		from = from.Add(WindowLength)
	}
	if len(in.Windows) == 0 {
		return nil, fmt.Errorf("chaos: input: %d events span less than a window and a session timeout; generate more", len(in.Valid))
	}
	return in, nil
}
