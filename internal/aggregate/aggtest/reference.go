// Package aggtest holds a deliberately plain implementation of the
// aggregation semantics, written independently of package aggregate, for
// tests across the project to check results against.
package aggtest

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/dataco/clickstream/internal/event"
	"github.com/dataco/clickstream/internal/schema"
)

// Key is one (url, country) of a result.
type Key struct{ URL, Country string }

// Row is the reference aggregate of one key.
type Row struct {
	Clicks, Ms, Samples int64
	Users               map[string]bool
	BotClicks           int64
}

// Reference computes the window [from, to) the plain way: per user, the
// events at or after from in (timestamp, url, country) order; an event
// before to is a click, and its time spent is the gap to the user's next
// event (wherever that is) when the gap is under the timeout.
//
// Bots are set apart: a bot's event (IsBot) in [from, to) counts in its
// key's BotClicks and nowhere else, and the rest is computed over the other
// events alone, as if the bots' were not there.
func Reference(events []event.Event, from, to time.Time, timeout time.Duration) map[Key]*Row {
	return ReferenceWith(events, from, to, timeout, false)
}

// ReferenceWith is Reference, with bots counted like anyone when
// includeBots is set (BotClicks is then zero).
func ReferenceWith(events []event.Event, from, to time.Time, timeout time.Duration, includeBots bool) map[Key]*Row {
	out := map[Key]*Row{}
	row := func(k Key) *Row {
		a := out[k]
		if a == nil {
			a = &Row{Users: map[string]bool{}}
			out[k] = a
		}
		return a
	}
	byUser := map[string][]event.Event{}
	for _, e := range events {
		if e.Timestamp < from.UnixMilli() {
			continue
		}
		if e.IsBot && !includeBots {
			if e.Timestamp < to.UnixMilli() {
				row(Key{e.URL, e.Country}).BotClicks++
			}
			continue
		}
		byUser[e.UserID] = append(byUser[e.UserID], e)
	}
	for user, evs := range byUser {
		slices.SortFunc(evs, func(a, b event.Event) int {
			switch {
			case a.Timestamp < b.Timestamp:
				return -1
			case a.Timestamp > b.Timestamp:
				return 1
			case a.URL != b.URL:
				return strings.Compare(a.URL, b.URL)
			}
			return strings.Compare(a.Country, b.Country)
		})
		for i, e := range evs {
			if e.Timestamp >= to.UnixMilli() {
				break
			}
			a := row(Key{e.URL, e.Country})
			a.Clicks++
			a.Users[user] = true
			if i+1 < len(evs) {
				if gap := evs[i+1].Timestamp - e.Timestamp; gap < timeout.Milliseconds() {
					a.Ms += gap
					a.Samples++
				}
			}
		}
	}
	return out
}

// Diff compares one result row with the reference row of its key: counts
// exactly, time spent and its average within 1e-9 relative. It returns ""
// when they agree, else what differs.
func (r *Row) Diff(got schema.Row, from, to time.Time) string {
	var errs []string
	if !got.WindowStart.Equal(from) || !got.WindowEnd.Equal(to) {
		errs = append(errs, fmt.Sprintf("window [%s, %s), want [%s, %s)", got.WindowStart, got.WindowEnd, from, to))
	}
	if got.Clicks != r.Clicks || got.UniqueUsers != int64(len(r.Users)) || got.TimeSpentSamples != r.Samples || got.BotClicks != r.BotClicks {
		errs = append(errs, fmt.Sprintf("clicks/users/samples/bot clicks %d/%d/%d/%d, want %d/%d/%d/%d",
			got.Clicks, got.UniqueUsers, got.TimeSpentSamples, got.BotClicks, r.Clicks, len(r.Users), r.Samples, r.BotClicks))
	}
	total := float64(r.Ms) / 1000
	if !Close(got.TotalTimeSpentS, total) {
		errs = append(errs, fmt.Sprintf("total time spent %v s, want %v", got.TotalTimeSpentS, total))
	}
	switch {
	case r.Samples == 0 && got.AvgTimeSpentS != nil:
		errs = append(errs, fmt.Sprintf("average %v, want none (no samples)", *got.AvgTimeSpentS))
	case r.Samples > 0 && got.AvgTimeSpentS == nil:
		errs = append(errs, "no average")
	case r.Samples > 0 && !Close(*got.AvgTimeSpentS, total/float64(r.Samples)):
		errs = append(errs, fmt.Sprintf("average %v s, want %v", *got.AvgTimeSpentS, total/float64(r.Samples)))
	}
	return strings.Join(errs, "; ")
}

// Close reports whether got equals want within 1e-9 relative.
func Close(got, want float64) bool {
	return got == want || math.Abs(got-want) <= 1e-9*math.Max(math.Abs(got), math.Abs(want))
}
