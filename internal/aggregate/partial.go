package aggregate

import (
	"cmp"
	"slices"

	"github.com/dataco/clickstream/internal/schema"
	"github.com/dataco/clickstream/internal/userset"
)

// Key groups the aggregate: one row per (URL, country).
type Key struct {
	URL, Country string
}

func compareKeys(a, b Key) int {
	if c := cmp.Compare(a.URL, b.URL); c != 0 {
		return c
	}
	return cmp.Compare(a.Country, b.Country)
}

// Row is the partial aggregate of one key.
type Row struct {
	Clicks int64 // in-window events
	// Users is the exact number of distinct users in this partial. Partials
	// of disjoint user sets add up (see the package documentation).
	Users int64
	// UserHashes is the set of distinct UserHash values of those users,
	// sorted ascending without duplicates: the mergeable set for roll-ups
	// over partials that may share users, and a cross-check of Users
	// (len(UserHashes) == Users unless two users' hashes collide).
	UserHashes  []uint64
	TimeSpentMs int64 // sum of time-spent values, in milliseconds
	Samples     int64 // events with a time-spent value (clicks - exits)
	// BotClicks is the in-window events of bots set apart (BotsApart);
	// zero when bots are folded into the counters above (BotsIncluded).
	BotClicks int64
}

// Partial is the aggregate of one task, or of several merged tasks.
type Partial struct {
	Rows   map[Key]*Row
	Events int64 // events counted in the window: the sum of Clicks and BotClicks
	Read   int64 // events given to the task, including look-ahead and pre-window ones
}

// NewPartial returns an empty partial.
func NewPartial() *Partial { return &Partial{Rows: make(map[Key]*Row)} }

// Merge adds q into p. q must cover users disjoint from p's, as tasks over
// different user buckets do: Users then add up exactly. UserHashes are
// united (a sorted merge), the other counters add. q is not modified and p
// shares no memory with q afterwards. A nil q is a no-op.
//
// The hash sets of the rows q touches are rebuilt in one allocation, and
// rows new to p are allocated together: a merge costs one map lookup a row
// of q plus the size of the sets, not an allocation a row.
func (p *Partial) Merge(q *Partial) {
	if q == nil {
		return
	}
	if p.Rows == nil {
		p.Rows = make(map[Key]*Row, len(q.Rows))
	}
	p.Events += q.Events
	p.Read += q.Read

	type pair struct {
		k      Key
		pr, qr *Row // pr nil: a key new to p
	}
	pairs := make([]pair, 0, len(q.Rows))
	hashes, fresh := 0, 0
	for k, qr := range q.Rows {
		pr := p.Rows[k]
		if pr != nil {
			hashes += len(pr.UserHashes)
		} else {
			fresh++
		}
		hashes += len(qr.UserHashes)
		pairs = append(pairs, pair{k, pr, qr})
	}
	backing := make([]uint64, 0, hashes)
	rows := make([]Row, 0, fresh)
	for _, x := range pairs {
		start := len(backing)
		if x.pr == nil {
			backing = append(backing, x.qr.UserHashes...)
			rows = append(rows, *x.qr)
			r := &rows[len(rows)-1]
			r.UserHashes = backing[start:len(backing):len(backing)]
			if len(r.UserHashes) == 0 {
				r.UserHashes = nil
			}
			p.Rows[x.k] = r
			continue
		}
		backing = unionSortedAppend(backing, x.pr.UserHashes, x.qr.UserHashes)
		pr, qr := x.pr, x.qr
		pr.Clicks += qr.Clicks
		pr.Users += qr.Users
		pr.TimeSpentMs += qr.TimeSpentMs
		pr.Samples += qr.Samples
		pr.BotClicks += qr.BotClicks
		pr.UserHashes = backing[start:len(backing):len(backing)]
		if len(pr.UserHashes) == 0 {
			pr.UserHashes = nil
		}
	}
}

// unionSortedAppend appends the sorted union of two sorted duplicate-free
// sets to dst.
func unionSortedAppend(dst, a, b []uint64) []uint64 {
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		switch x, y := a[i], b[j]; {
		case x < y:
			dst = append(dst, x)
			i++
		case y < x:
			dst = append(dst, y)
			j++
		default:
			dst = append(dst, x)
			i++
			j++
		}
	}
	dst = append(dst, a[i:]...)
	return append(dst, b[j:]...)
}

// DropUserSets removes the rows' UserHashes (ColumnReader.WithoutUserSets).
func (p *Partial) DropUserSets() {
	for _, r := range p.Rows {
		r.UserHashes = nil
	}
}

// Keys returns the keys of p sorted by (URL, Country).
func (p *Partial) Keys() []Key {
	keys := make([]Key, 0, len(p.Rows))
	for k := range p.Rows {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compareKeys)
	return keys
}

// Result turns p, the aggregate of window w, into output rows sorted by
// (URL, Country). Window times are in UTC.
func (p *Partial) Result(w Window) []schema.Row {
	keys := p.Keys()
	out := make([]schema.Row, len(keys))
	from, to := w.From.UTC(), w.To.UTC()
	for i, k := range keys {
		r := p.Rows[k]
		total := float64(r.TimeSpentMs) / 1000
		out[i] = schema.Row{
			WindowStart:      from,
			WindowEnd:        to,
			URL:              k.URL,
			Country:          k.Country,
			Clicks:           r.Clicks,
			UniqueUsers:      r.Users,
			TotalTimeSpentS:  total,
			TimeSpentSamples: r.Samples,
			BotClicks:        r.BotClicks,
			Grain:            schema.GrainWindow,
		}
		if r.Samples > 0 {
			// total/samples, computed in milliseconds first: the same value up
			// to rounding, and 2001 ms / 3 prints as 0.667, not 0.6669999999999999.
			avg := float64(r.TimeSpentMs) / float64(r.Samples) / 1000
			out[i].AvgTimeSpentS = &avg
		}
	}
	return out
}

// UserSetEntries returns the partial's keys, in order, with their counters
// and user sets, as a result keeps them for roll-ups (package userset), or
// nil if the partial does not carry the sets (a key's set smaller than its
// users by more than hash collisions would explain, which happen with
// probability about n²/2⁶⁵).
func (p *Partial) UserSetEntries() []userset.Entry {
	keys := p.Keys()
	out := make([]userset.Entry, len(keys))
	for i, k := range keys {
		r := p.Rows[k]
		if int64(len(r.UserHashes)) < r.Users-1 || len(r.UserHashes) == 0 && r.Users > 0 {
			return nil
		}
		out[i] = userset.Entry{
			URL: k.URL, Country: k.Country,
			Clicks: r.Clicks, Users: r.Users, TimeSpentMs: r.TimeSpentMs, Samples: r.Samples, BotClicks: r.BotClicks,
			Hashes: r.UserHashes,
		}
	}
	return out
}
