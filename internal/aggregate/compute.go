package aggregate

import (
	"cmp"
	"slices"
	"time"

	"github.com/dataco/clickstream/internal/event"
	"github.com/dataco/clickstream/internal/hashsort"
)

// noID marks an unassigned dense id.
const noID = ^uint32(0)

// rec is one kept event over dense ids: the user and the (url, country) key
// index builder.users and builder.keys.
type rec struct {
	ts   int64
	user uint32
	key  uint32
}

// builder collects the kept events of one task and turns them into a
// Partial. Compute and ComputeParquet differ only in how they fill it.
type builder struct {
	b bounds
	// blocks hold the kept records of people in input order: one block for
	// Compute, one per row group for ColumnReader, so that adding a row
	// group never copies the records before it.
	blocks   [][]rec
	inWindow int      // records before b.to: bounds the (key, user) pairs
	users    []string // user id strings by dense user id
	keys     []Key    // keys by dense key id
	read     int64
	// noSets: the rows get no UserHashes (Users is counted all the same).
	noSets bool
	// bots is what bot events count in; botKeys holds the key of each
	// in-window bot event set apart (BotsApart).
	bots    BotPolicy
	botKeys []uint32
}

// BotPolicy says what the events of bots (event.Event.IsBot, the lake's
// is_bot) count in.
type BotPolicy uint8

const (
	// BotsApart, the default: a bot's event counts in its key's BotClicks
	// only. Clicks, Users and time spent are those of the events of people,
	// computed as if the bots' events were not there: a person's last
	// click before a bot's event of the same user id is timed against
	// that user's next human click, never the bot's.
	BotsApart BotPolicy = iota
	// BotsIncluded folds bots in: their events count in Clicks, Users
	// and time spent like any other, and BotClicks stays zero.
	BotsIncluded
)

// appendBot sets a bot's event of key k at ts apart: counted if in the
// window, and in no case a look-ahead successor of a person's click.
func (c *builder) appendBot(k uint32, ts int64) {
	if ts < c.b.to {
		c.botKeys = append(c.botKeys, k)
	}
}

// Compute aggregates the events of one task over window w. The events may
// come in any order and may include events before w.From (ignored) and
// look-ahead events at or after w.To (not counted, but used as the next
// event of in-window ones). sessionTimeout <= 0 means
// DefaultSessionTimeout.
//
// Compute does not modify events: it copies the fields it needs into
// records over dense ids (about 16 bytes per kept event plus the same again
// when the input is not grouped by user) and sorts those. Input already
// grouped by user, with each user's events in (timestamp, url, country)
// order, is detected and not reordered. An invalid window counts nothing;
// callers check Window.Validate first.
//
// Bot events are set apart (BotsApart); ComputeWith chooses.
func Compute(events []event.Event, w Window, sessionTimeout time.Duration) *Partial {
	return ComputeWith(events, w, sessionTimeout, BotsApart)
}

// ComputeWith is Compute with bot events counted as bots says.
func ComputeWith(events []event.Event, w Window, sessionTimeout time.Duration, bots BotPolicy) *Partial {
	c := builder{b: newBounds(w, sessionTimeout), read: int64(len(events)), bots: bots}
	apart := bots == BotsApart
	recs := make([]rec, 0, len(events))
	userIDs := make(map[string]uint32)
	var urls, countries stringColumn
	var kt keyTable

	// One-entry caches: consecutive events of a user, or on a URL, skip the
	// map lookups (grouped input is mostly runs).
	var prevUser, prevURL, prevCountry string
	prevUID, prevURLID, prevCountryID := noID, noID, noID
	for i := range events {
		e := &events[i]
		if !c.b.keep(e.Timestamp) {
			continue
		}
		if prevUID == noID || e.UserID != prevUser {
			id, ok := userIDs[e.UserID]
			if !ok {
				id = uint32(len(c.users))
				userIDs[e.UserID] = id
				c.users = append(c.users, e.UserID)
			}
			prevUser, prevUID = e.UserID, id
		}
		if prevURLID == noID || e.URL != prevURL {
			prevURL, prevURLID = e.URL, urls.internString(e.URL)
		}
		if prevCountryID == noID || e.Country != prevCountry {
			prevCountry, prevCountryID = e.Country, countries.internString(e.Country)
		}
		k, added := kt.id(prevURLID, prevCountryID, uint32(len(c.keys)))
		if added {
			c.keys = append(c.keys, Key{URL: e.URL, Country: e.Country})
		}
		if e.IsBot && apart {
			c.appendBot(k, e.Timestamp)
			continue
		}
		recs = append(recs, rec{ts: e.Timestamp, user: prevUID, key: k})
		if e.Timestamp < c.b.to {
			c.inWindow++
		}
	}
	c.blocks = [][]rec{recs}
	return c.finish()
}

// keyTable maps (url id, country id) to a dense key id. URLs are far fewer
// than keys and countries fewer still, so two small string maps and this
// table stay in cache where one map of (url, country) strings would not.
// Each URL has a dense row for the first denseCountries country ids (in
// order of first appearance, so mostly the common countries); the rest go
// to a map, which bounds the table at 64 bytes a URL however many rare
// countries the long tail of URLs sees.
type keyTable struct {
	rows  [][denseCountries]uint32 // by url id: key id + 1 by country id, 0 if none yet
	other map[uint64]uint32        // url id<<32 | country id -> key id + 1, for the rest
}

const denseCountries = 16

// id returns the key id of (u, c). If (u, c) has none yet, it gets next
// and added is true.
func (t *keyTable) id(u, c, next uint32) (id uint32, added bool) {
	if int(u) >= len(t.rows) {
		t.rows = append(t.rows, make([][denseCountries]uint32, int(u)+1-len(t.rows))...)
	}
	if c < denseCountries {
		p := &t.rows[u][c]
		if *p == 0 {
			*p = next + 1
			return next, true
		}
		return *p - 1, false
	}
	k := uint64(u)<<32 | uint64(c)
	if id, ok := t.other[k]; ok {
		return id - 1, false
	}
	if t.other == nil {
		t.other = make(map[uint64]uint32)
	}
	t.other[k] = next + 1
	return next, true
}

// acc accumulates one key during the scan.
type acc struct {
	clicks, users, ms, samples int64
	last                       uint32 // stamp of the last user counted
}

// userSeg is the slice [start, end) of block blk holding one user's
// records, and the user's hash.
type userSeg struct {
	hash       uint64
	blk        int
	start, end int
}

// finish groups the records by user, orders each user's events, computes
// time spent and exact distinct users per key, and builds the Partial.
//
// Users are processed in UserHash order, so the hashes appended to each
// key's set come out sorted and need no per-key sort. Exact distinct
// counting uses a per-key stamp of the last user counted: O(1) per event.
func (c *builder) finish() *Partial {
	segs, blocks := c.group()

	accs := make([]acc, len(c.keys))
	to, timeout := c.b.to, c.b.timeout
	pairKeys := make([]uint32, 0, c.inWindow) // (key, user hash) in hash order
	pairHashes := make([]uint64, 0, c.inWindow)
	var events int64
	for n, s := range segs {
		seg := blocks[s.blk][s.start:s.end]
		if !c.sorted(seg) {
			slices.SortFunc(seg, c.compareRecs)
		}
		stamp := uint32(n) + 1
		// The segment is in time order: in-window records are a prefix and
		// the rest is look-ahead (every record is >= from already).
		for i := range seg {
			r := &seg[i]
			if r.ts >= to {
				break
			}
			a := &accs[r.key]
			a.clicks++
			if a.last != stamp {
				a.last = stamp
				a.users++
				if !c.noSets {
					pairKeys = append(pairKeys, r.key)
					pairHashes = append(pairHashes, s.hash)
				}
			}
			if i+1 < len(seg) {
				if gap := seg[i+1].ts - r.ts; gap < timeout {
					a.ms += gap
					a.samples++
				}
			}
		}
	}

	var botClicks []int64 // by key, if any bot event was set apart
	if len(c.botKeys) > 0 {
		botClicks = make([]int64, len(c.keys))
		for _, k := range c.botKeys {
			botClicks[k]++
		}
	}

	// Lay the hash sets out key by key in one backing array (a stable
	// counting sort of the pairs by key keeps each set sorted).
	start := make([]int, len(c.keys)+1)
	nrows := 0
	for k := range accs {
		if !c.noSets {
			start[k+1] = start[k] + int(accs[k].users)
		}
		if accs[k].clicks > 0 || (botClicks != nil && botClicks[k] > 0) {
			nrows++
		}
	}
	backing := make([]uint64, len(pairHashes))
	fill := slices.Clone(start[:len(c.keys)])
	for i, k := range pairKeys {
		h := pairHashes[i]
		// Distinct users with equal hashes (a 64-bit collision) are adjacent
		// in hash order: keep the set duplicate-free.
		if p := fill[k]; p == start[k] || backing[p-1] != h {
			backing[p] = h
			fill[k] = p + 1
		}
	}

	p := &Partial{Rows: make(map[Key]*Row, nrows), Read: c.read}
	rows := make([]Row, 0, nrows)
	for k := range accs {
		a := &accs[k]
		var bots int64
		if botClicks != nil {
			bots = botClicks[k]
		}
		if a.clicks == 0 && bots == 0 {
			continue
		}
		events += a.clicks + bots
		row := Row{Clicks: a.clicks, Users: a.users, TimeSpentMs: a.ms, Samples: a.samples, BotClicks: bots}
		if !c.noSets {
			row.UserHashes = backing[start[k]:fill[k]:fill[k]]
		}
		rows = append(rows, row)
		p.Rows[c.keys[k]] = &rows[len(rows)-1]
	}
	p.Events = events
	return p
}

// group returns the user segments in UserHash order and the blocks of
// records they index. Records already grouped by user (each user one
// contiguous run) are used in place, a run that continues into the next
// block being copied into a block of its own; otherwise a counting sort by
// user copies them into one block, laid out in hash order.
func (c *builder) group() ([]userSeg, [][]rec) {
	if segs, blocks, ok := c.groupedRuns(); ok {
		for i := range segs {
			segs[i].hash = UserHash(c.users[segs[i].hash])
		}
		sortSegs(segs)
		return segs, blocks
	}

	counts := make([]int, len(c.users)) // records per user, then each user's next slot
	n := 0
	for _, blk := range c.blocks {
		n += len(blk)
		for i := range blk {
			counts[blk[i].user]++
		}
	}
	segs := make([]userSeg, 0, len(c.users))
	for u, n := range counts {
		if n != 0 {
			segs = append(segs, userSeg{hash: UserHash(c.users[u]), start: u}) // start holds the user id until laid out
		}
	}
	sortSegs(segs)
	// Offsets in hash order.
	off := 0
	for i := range segs {
		u := segs[i].start
		n := counts[u]
		segs[i].start, segs[i].end = off, off+n
		counts[u] = off
		off += n
	}
	out := make([]rec, n)
	for _, blk := range c.blocks {
		for _, r := range blk {
			p := counts[r.user]
			out[p] = r
			counts[r.user] = p + 1
		}
	}
	return segs, [][]rec{out}
}

// groupedRuns returns one segment per user, in input order, with the user
// id in place of the hash, if the records are grouped by user. A run that
// starts in one block and ends in a later one is copied into a block
// appended to the returned ones.
func (c *builder) groupedRuns() ([]userSeg, [][]rec, bool) {
	seen := make([]bool, len(c.users))
	segs := make([]userSeg, 0, len(c.users))
	prev := noID
	for b, blk := range c.blocks {
		for i := range blk {
			u := blk[i].user
			if u == prev {
				continue
			}
			if seen[u] {
				return nil, nil, false
			}
			seen[u] = true
			segs = append(segs, userSeg{hash: uint64(u), blk: b, start: i})
			prev = u
		}
	}
	blocks := c.blocks
	var copied []rec
	for i := range segs {
		s := &segs[i]
		next := userSeg{blk: len(c.blocks)} // the end of the input
		if i+1 < len(segs) {
			next = segs[i+1]
		}
		if next.blk == s.blk {
			s.end = next.start
			continue
		}
		if next.blk == s.blk+1 && next.start == 0 || next.blk == len(c.blocks) && s.blk == len(c.blocks)-1 {
			s.end = len(c.blocks[s.blk])
			continue
		}
		start := len(copied)
		copied = append(copied, c.blocks[s.blk][s.start:]...)
		for b := s.blk + 1; b < next.blk; b++ {
			copied = append(copied, c.blocks[b]...)
		}
		if next.blk < len(c.blocks) {
			copied = append(copied, c.blocks[next.blk][:next.start]...)
		}
		s.blk, s.start, s.end = len(c.blocks), start, len(copied)
	}
	if copied != nil {
		blocks = append(blocks[:len(blocks):len(blocks)], copied)
	}
	return segs, blocks, true
}

// sortSegs sorts segments by user hash (see hashsort: linear time, the
// hashes being uniform).
func sortSegs(segs []userSeg) {
	copy(segs, hashsort.Sort(segs, func(s *userSeg) uint64 { return s.hash }, compareSegs))
}

func compareSegs(a, b userSeg) int { return cmp.Compare(a.hash, b.hash) }

// sorted reports whether a user's records are in (ts, url, country) order.
func (c *builder) sorted(seg []rec) bool {
	for i := 1; i < len(seg); i++ {
		if a, b := &seg[i-1], &seg[i]; a.ts > b.ts || (a.ts == b.ts && a.key != b.key && compareKeys(c.keys[a.key], c.keys[b.key]) > 0) {
			return false
		}
	}
	return true
}

// compareRecs orders a user's records by (timestamp, url, country).
func (c *builder) compareRecs(a, b rec) int {
	if a.ts != b.ts {
		return cmp.Compare(a.ts, b.ts)
	}
	if a.key == b.key {
		return 0
	}
	return compareKeys(c.keys[a.key], c.keys[b.key])
}
