// Package aggtest holds a deliberately plain implementation of the
// aggregation semantics, written independently of package aggregate, for
// tests across the project to check results against.
package aggtest

import (
	"slices"
	"strings"
	"time"

	"github.com/dataco/clickstream/internal/event"
)

// Key is one (url, country) of a result.
type Key struct{ URL, Country string }

// Row is the reference aggregate of one key.
type Row struct {
	Clicks, Ms, Samples int64
	Users               map[string]bool
}

// Reference computes the window [from, to) the plain way: per user, the
// events at or after from in (timestamp, url, country) order; an event
// before to is a click, and its time spent is the gap to the user's next
// event (wherever that is) when the gap is under the timeout.
func Reference(events []event.Event, from, to time.Time, timeout time.Duration) map[Key]*Row {
	byUser := map[string][]event.Event{}
	for _, e := range events {
		if e.Timestamp >= from.UnixMilli() {
			byUser[e.UserID] = append(byUser[e.UserID], e)
		}
	}
	out := map[Key]*Row{}
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
			k := Key{e.URL, e.Country}
			a := out[k]
			if a == nil {
				a = &Row{Users: map[string]bool{}}
				out[k] = a
			}
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
