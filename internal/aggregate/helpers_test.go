package aggregate

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dataco/clickstream/internal/event"
)

var testFrom = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

func testWindow() Window { return Window{From: testFrom, To: testFrom.Add(time.Hour)} }

// at is an epoch-millisecond timestamp d after testFrom.
func at(d time.Duration) int64 { return testFrom.Add(d).UnixMilli() }

func ev(user string, ts int64, url, country string) event.Event {
	return event.Event{UserID: user, Timestamp: ts, URL: url, Country: country, City: "c", UserAgent: "ua"}
}

// referenceCompute is the naive definition: per user, sort all events by
// (timestamp, url, country); each in-window event counts, and its time
// spent is the gap to the next event when under the timeout. Bots are set
// apart.
func referenceCompute(events []event.Event, w Window, timeout time.Duration) *Partial {
	return referenceComputeWith(events, w, timeout, BotsApart)
}

// referenceComputeWith is referenceCompute under a bot policy: set apart,
// the in-window bot events only count in BotClicks and the rest is
// computed without them.
func referenceComputeWith(events []event.Event, w Window, timeout time.Duration, bots BotPolicy) *Partial {
	if timeout <= 0 {
		timeout = DefaultSessionTimeout
	}
	p := NewPartial()
	p.Read = int64(len(events))
	byUser := map[string][]event.Event{}
	for _, e := range events {
		if e.IsBot && bots == BotsApart {
			if t := time.UnixMilli(e.Timestamp); !t.Before(w.From) && t.Before(w.To) {
				k := Key{URL: e.URL, Country: e.Country}
				if p.Rows[k] == nil {
					p.Rows[k] = &Row{}
				}
				p.Rows[k].BotClicks++
				p.Events++
			}
			continue
		}
		byUser[e.UserID] = append(byUser[e.UserID], e)
	}
	users := map[Key]map[uint64]bool{}
	for _, evs := range byUser {
		slices.SortStableFunc(evs, func(a, b event.Event) int {
			return cmp.Or(cmp.Compare(a.Timestamp, b.Timestamp), strings.Compare(a.URL, b.URL), strings.Compare(a.Country, b.Country))
		})
		for i, e := range evs {
			t := time.UnixMilli(e.Timestamp)
			if t.Before(w.From) || !t.Before(w.To) {
				continue
			}
			k := Key{URL: e.URL, Country: e.Country}
			r := p.Rows[k]
			if r == nil {
				r = &Row{}
				p.Rows[k] = r
			}
			if users[k] == nil {
				users[k] = map[uint64]bool{}
			}
			r.Clicks++
			p.Events++
			if h := UserHash(e.UserID); !users[k][h] {
				users[k][h] = true
				r.Users++
				r.UserHashes = append(r.UserHashes, h)
			}
			if i+1 < len(evs) {
				if gap := time.Duration(evs[i+1].Timestamp-e.Timestamp) * time.Millisecond; gap < timeout {
					r.TimeSpentMs += evs[i+1].Timestamp - e.Timestamp
					r.Samples++
				}
			}
		}
	}
	for _, r := range p.Rows {
		slices.Sort(r.UserHashes)
	}
	return p
}

// diffPartials describes the differences between two partials, "" if none.
func diffPartials(got, want *Partial) string {
	var b strings.Builder
	if got.Events != want.Events || got.Read != want.Read {
		fmt.Fprintf(&b, "events/read: got %d/%d, want %d/%d\n", got.Events, got.Read, want.Events, want.Read)
	}
	for _, k := range want.Keys() {
		w, g := want.Rows[k], got.Rows[k]
		switch {
		case g == nil:
			fmt.Fprintf(&b, "%v: missing, want %+v\n", k, *w)
		case g.Clicks != w.Clicks || g.Users != w.Users || g.TimeSpentMs != w.TimeSpentMs || g.Samples != w.Samples || g.BotClicks != w.BotClicks:
			fmt.Fprintf(&b, "%v: got %d clicks %d users %d ms %d samples %d bot clicks, want %d %d %d %d %d\n", k,
				g.Clicks, g.Users, g.TimeSpentMs, g.Samples, g.BotClicks, w.Clicks, w.Users, w.TimeSpentMs, w.Samples, w.BotClicks)
		case !slices.Equal(g.UserHashes, w.UserHashes):
			fmt.Fprintf(&b, "%v: user hashes differ: got %d, want %d\n", k, len(g.UserHashes), len(w.UserHashes))
		}
	}
	for _, k := range got.Keys() {
		if want.Rows[k] == nil {
			fmt.Fprintf(&b, "%v: unexpected row %+v\n", k, *got.Rows[k])
		}
	}
	return b.String()
}

// genConfig shapes random events.
type genConfig struct {
	events, users, urls, countries int
	span                           time.Duration // events spread over [from-span/4, from+span)
	tick                           time.Duration // timestamp granularity (coarse ticks make ties)
	// bots is the share of users that are bots; mixed is the share of a
	// person's events sent by a bot agent from the same user id (a
	// script run from a logged-in account).
	bots, mixed float64
}

func randomEvents(rng *rand.Rand, g genConfig) []event.Event {
	users := make([]string, g.users)
	for i := range users {
		if i%3 == 0 {
			users[i] = fmt.Sprint(i * 7) // integer-looking ids
		} else {
			users[i] = fmt.Sprintf("user-%d", i)
		}
	}
	urls := make([]string, g.urls)
	for i := range urls {
		urls[i] = fmt.Sprintf("https://shop.example/p/%d", i*i)
	}
	countries := []string{"unknown", "de", "fr", "us", "br", "jp", "in", "ng"}
	for i := len(countries); i < g.countries; i++ {
		countries = append(countries, fmt.Sprintf("c%02d", i))
	}
	countries = countries[:g.countries]
	out := make([]event.Event, g.events)
	start := testFrom.Add(-g.span / 4).UnixMilli()
	ticks := int64(g.span/g.tick) * 5 / 4
	botUser := make([]bool, len(users))
	if g.bots > 0 {
		for i := range botUser {
			botUser[i] = rng.Float64() < g.bots
		}
	}
	for i := range out {
		ui := rng.IntN(len(users))
		ts := start + rng.Int64N(ticks)*g.tick.Milliseconds()
		out[i] = ev(users[ui], ts, urls[rng.IntN(len(urls))], countries[rng.IntN(len(countries))])
		if g.bots > 0 || g.mixed > 0 {
			out[i].IsBot = botUser[ui] || rng.Float64() < g.mixed
		}
	}
	return out
}

func sortByTime(evs []event.Event) {
	slices.SortStableFunc(evs, func(a, b event.Event) int { return cmp.Compare(a.Timestamp, b.Timestamp) })
}

func sortByUser(evs []event.Event) {
	slices.SortStableFunc(evs, func(a, b event.Event) int {
		return cmp.Or(strings.Compare(a.UserID, b.UserID), cmp.Compare(a.Timestamp, b.Timestamp),
			strings.Compare(a.URL, b.URL), strings.Compare(a.Country, b.Country))
	})
}

func checkSameAs(t *testing.T, name string, got, want *Partial) {
	t.Helper()
	if d := diffPartials(got, want); d != "" {
		t.Fatalf("%s differs:\n%s", name, d)
	}
}
