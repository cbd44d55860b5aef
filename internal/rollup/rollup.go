package rollup

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/axiomhq/hyperloglog"

	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/results"
	"github.com/dataco/clickstream/internal/schema"
	"github.com/dataco/clickstream/internal/userset"
)

// Sentinel errors of the package.
var (
	// ErrGrain reports a grain that is not day, week or month.
	ErrGrain = errors.New("rollup: unknown grain")
	// ErrWindows reports windows that cannot be rolled up into a period:
	// overlapping, crossing the period's bounds, of different session
	// timeouts, or without user sets.
	ErrWindows = errors.New("rollup: windows cannot be rolled up")
	// ErrIncomplete reports a period whose windows leave gaps (windows not
	// processed, or without events) while gaps are not allowed.
	ErrIncomplete = errors.New("rollup: windows do not cover the period")
)

// Period returns the period of grain that contains t, in UTC: a day, an
// ISO week (from Monday) or a calendar month.
func Period(grain string, t time.Time) (from, to time.Time, err error) {
	t = t.UTC()
	day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	switch grain {
	case schema.GrainDay:
		return day, day.AddDate(0, 0, 1), nil
	case schema.GrainWeek:
		from = day.AddDate(0, 0, -((int(day.Weekday()) + 6) % 7))
		return from, from.AddDate(0, 0, 7), nil
	case schema.GrainMonth:
		from = time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
		return from, from.AddDate(0, 1, 0), nil
	}
	return time.Time{}, time.Time{}, fmt.Errorf("%w %q (want day, week or month)", ErrGrain, grain)
}

// Periods returns the periods of grain that overlap [from, to), in order.
func Periods(grain string, from, to time.Time) ([][2]time.Time, error) {
	var out [][2]time.Time
	for t := from; t.Before(to); {
		a, b, err := Period(grain, t)
		if err != nil {
			return nil, err
		}
		out = append(out, [2]time.Time{a, b})
		t = b
	}
	return out, nil
}

// Window is one committed window result: its output store and _SUCCESS.
type Window struct {
	Out  lake.Store
	Meta results.Meta
}

// Config bounds a roll-up's work.
type Config struct {
	// Shards is how many key ranges (by a hash of the URL) are merged in
	// parallel.
	Shards int
	// MemoryBudget bounds, in bytes, the hashes the unions buffer, all
	// shards together (<= 0: no bound); beyond it they spill sorted runs
	// to SpillDir.
	MemoryBudget int64
	// SpillDir is where a roll-up makes its temporary folder ("": the
	// system's).
	SpillDir string
	// AllowGaps: a period whose windows leave gaps is rolled up anyway
	// (gaps are listed in Stats.Gaps) instead of failing with
	// ErrIncomplete. A window without events has no result, so a period
	// with quiet hours has gaps.
	AllowGaps bool
	// ExactLimit: a union given more than this many hashes (duplicates
	// across windows and keys included, so every key with more distinct
	// users) is counted by a HyperLogLog++ sketch instead, and its row
	// marked approximate (relative standard error SketchRelError). 0:
	// always exact. The (url, country) rows are always exact: their union
	// is streamed, never held.
	ExactLimit int64
	// KeepSets: ComputeSets also returns the (url, country) sets of the
	// period, so that a longer period can be rolled up from this one's
	// (days into a week). A key's union is then held while it is encoded.
	KeepSets bool
}

// Stats tells what a roll-up of one period did.
type Stats struct {
	Windows         int
	Keys            int64 // (url, country) keys
	HashesRead      int64 // hashes of the windows' sets
	SetBytes        int64 // bytes of the windows' set files
	PeakBufferBytes int64 // the unions' buffers at their peak, shards summed
	Spills          int64 // sorted runs written to disk
	SpilledBytes    int64
	// LargestSet is the row with the most unique users and their number:
	// what the largest union held (8 bytes a hash in memory, or spilled).
	LargestSet      string
	LargestSetUsers int64
	Gaps            [][2]time.Time
	// ApproximateRows are the rows counted by a sketch (ExactLimit).
	ApproximateRows int
	// Inputs are the committed results rolled up, in time order.
	Inputs []Input
}

// Input is a committed result a roll-up read (a window, or a day of a
// week): what the roll-up's provenance is made of (ResultMeta).
type Input struct {
	URI            string     `json:"uri"`
	Run            string     `json:"run"`
	Final          bool       `json:"final,omitempty"`
	Watermark      *time.Time `json:"watermark,omitempty"`
	EventsInWindow int64      `json:"events_in_window"`
	SessionTimeout string     `json:"session_timeout,omitempty"`
	Lake           string     `json:"lake,omitempty"`
}

// Check sorts windows and checks that they can be rolled up into
// [from, to): each inside it, none overlapping, the same session timeout,
// each with user sets; an error matches ErrWindows. It returns the gaps
// they leave.
func Check(windows []Window, from, to time.Time) ([][2]time.Time, error) {
	slices.SortFunc(windows, func(a, b Window) int { return a.Meta.From.Compare(b.Meta.From) })
	var gaps [][2]time.Time
	at := from
	for _, w := range windows {
		m := w.Meta
		switch {
		case m.From.Before(from) || m.To.After(to):
			return nil, fmt.Errorf("%w: window [%s, %s) of %s is not inside [%s, %s)", ErrWindows, fmtT(m.From), fmtT(m.To), w.Out.URI(), fmtT(from), fmtT(to))
		case m.From.Before(at):
			return nil, fmt.Errorf("%w: window [%s, %s) of %s overlaps the one before", ErrWindows, fmtT(m.From), fmtT(m.To), w.Out.URI())
		case len(m.Sets) == 0:
			return nil, fmt.Errorf("%w: %s keeps no user sets (run its window with --user-sets, or the scheduler with --schedule-user-sets)", ErrWindows, w.Out.URI())
		case m.SessionTimeout != windows[0].Meta.SessionTimeout:
			return nil, fmt.Errorf("%w: %s has session timeout %s, %s has %s", ErrWindows, w.Out.URI(), m.SessionTimeout, windows[0].Out.URI(), windows[0].Meta.SessionTimeout)
		}
		if m.From.After(at) {
			gaps = append(gaps, [2]time.Time{at, m.From})
		}
		at = m.To
	}
	if at.Before(to) {
		gaps = append(gaps, [2]time.Time{at, to})
	}
	return gaps, nil
}

func fmtT(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// counters are the additive part of a row.
type counters struct {
	clicks, ms, samples, bots int64
}

func (c *counters) add(e *userset.Entry) {
	c.clicks += e.Clicks
	c.ms += e.TimeSpentMs
	c.samples += e.Samples
	c.bots += e.BotClicks
}

func (c *counters) addC(o counters) {
	c.clicks += o.clicks
	c.ms += o.ms
	c.samples += o.samples
	c.bots += o.bots
}

// row is the output row of a key, computed as aggregate.Partial.Result
// does (the same float operations, so rows compare equal).
func row(from, to time.Time, grain, url, country string, c counters, users int64, approx bool) schema.Row {
	r := schema.Row{
		WindowStart: from, WindowEnd: to, URL: url, Country: country, Grain: grain, Approximate: approx,
		Clicks: c.clicks, UniqueUsers: users, TotalTimeSpentS: float64(c.ms) / 1000, TimeSpentSamples: c.samples,
		BotClicks: c.bots,
	}
	if c.samples > 0 {
		avg := float64(c.ms) / float64(c.samples) / 1000
		r.AvgTimeSpentS = &avg
	}
	return r
}

// Compute rolls windows up into the period [from, to) of grain: per
// (url, country), per url over all countries (country schema.All), per
// country over all URLs (url schema.All) and overall, clicks, time spent
// and samples summed, and unique users the size of the union of the
// windows' sets. It reads only the windows' set files. Rows are sorted by
// (URL, Country).
func Compute(ctx context.Context, cfg Config, grain string, from, to time.Time, windows []Window) ([]schema.Row, Stats, error) {
	cfg.KeepSets = false
	rows, _, st, err := ComputeSets(ctx, cfg, grain, from, to, windows)
	return rows, st, err
}

// ComputeSets is Compute that, with cfg.KeepSets, also returns the
// period's (url, country) entries with their sets, as one set file per
// key range (each sorted by key; the ranges interleave), for
// results.WriteSetFiles.
func ComputeSets(ctx context.Context, cfg Config, grain string, from, to time.Time, windows []Window) ([]schema.Row, []results.SetFile, Stats, error) {
	rows, sets, st, err := compute(ctx, cfg, grain, from, to, windows)
	return rows, sets, st, err
}

func compute(ctx context.Context, cfg Config, grain string, from, to time.Time, windows []Window) (rows []schema.Row, sets []results.SetFile, st Stats, err error) {
	files, st, err := open(ctx, cfg, grain, from, to, windows)
	if err != nil {
		return nil, nil, st, err
	}
	dir, err := os.MkdirTemp(cfg.SpillDir, "rollup-")
	if err != nil {
		return nil, nil, st, fmt.Errorf("rollup: spill folder: %w", err)
	}
	defer os.RemoveAll(dir)

	shards := max(cfg.Shards, 1)
	// Each shard, and the overall union at the end, has an equal share
	// of the budget.
	var limit int64
	if cfg.MemoryBudget > 0 {
		limit = max(cfg.MemoryBudget/int64(shards+1), 1024)
	}
	outs := make([]*shardOut, shards)
	errs := make([]error, shards)
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for s := range shards {
		sh, err := newShard(cfg, grain, from, to, s, shards, limit, dir)
		if err != nil {
			return nil, nil, st, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[s], errs[s] = sh.run(sctx, files)
			if errs[s] != nil {
				cancel()
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		if ctx.Err() != nil {
			return nil, nil, st, ctx.Err()
		}
		return nil, nil, st, err
	}
	rows, sets, err = merge(ctx, cfg.ExactLimit, limit, dir, grain, from, to, outs, &st)
	return rows, sets, st, err
}

// open checks the windows against the period [from, to) of grain and
// opens their set files.
func open(ctx context.Context, cfg Config, grain string, from, to time.Time, windows []Window) (files [][]*userset.Reader, st Stats, err error) {
	if _, _, err := Period(grain, from); err != nil {
		return nil, st, err
	}
	gaps, err := Check(windows, from, to)
	if err != nil {
		return nil, st, err
	}
	st.Windows, st.Gaps = len(windows), gaps
	if len(gaps) > 0 && !cfg.AllowGaps {
		return nil, st, fmt.Errorf("%w: [%s, %s) has %d gaps, the first [%s, %s)", ErrIncomplete, fmtT(from), fmtT(to), len(gaps), fmtT(gaps[0][0]), fmtT(gaps[0][1]))
	}
	files = make([][]*userset.Reader, len(windows))
	for i, w := range windows {
		if files[i], err = results.ReadSets(ctx, w.Out, w.Meta); err != nil {
			return nil, st, err
		}
		st.SetBytes += w.Meta.SetBytes
		st.HashesRead += w.Meta.SetHashes
		st.Inputs = append(st.Inputs, Input{URI: w.Out.URI(), Run: w.Meta.Run, Final: w.Meta.Final, Watermark: w.Meta.Watermark,
			EventsInWindow: w.Meta.EventsInWindow, SessionTimeout: w.Meta.SessionTimeout, Lake: w.Meta.Lake})
	}
	return files, st, nil
}

// newShard is key range n of of, spilling to its own folder under dir
// beyond limit bytes (<= 0: no limit).
func newShard(cfg Config, grain string, from, to time.Time, n, of int, limit int64, dir string) (*shard, error) {
	sdir := filepath.Join(dir, fmt.Sprintf("shard-%03d", n))
	if err := os.Mkdir(sdir, 0o700); err != nil {
		return nil, fmt.Errorf("rollup: spill folder: %w", err)
	}
	sh := &shard{n: n, of: of, grain: grain, from: from, to: to, b: newBudget(limit, sdir), keepSets: cfg.KeepSets}
	sh.b.exactLimit = cfg.ExactLimit
	return sh, nil
}

// merge completes a roll-up from the outputs of all its key ranges, in
// order: their rows, and per country and overall the union of the
// shards' country unions, counted (the overall union spills to dir
// beyond limit bytes). It adds to st what the shards and itself did.
// The in-process roll-up (compute) and the merge of shard partials
// (MergePartials) both end here.
func merge(ctx context.Context, exactLimit, limit int64, dir, grain string, from, to time.Time, outs []*shardOut, st *Stats) (rows []schema.Row, sets []results.SetFile, err error) {
	for _, o := range outs {
		rows = append(rows, o.rows...)
		switch {
		case o.enc != nil:
			sets = append(sets, results.EncodedSetFile(o.enc))
		case o.setFile != nil:
			sets = append(sets, *o.setFile)
		}
		st.Keys += o.keys
		st.PeakBufferBytes += o.b.peak
		if o.largestUsers > st.LargestSetUsers {
			st.LargestSet, st.LargestSetUsers = o.largest, o.largestUsers
		}
	}
	// All URLs: per country and overall, the union across the shards.
	countries := map[string]counters{}
	var total counters
	for _, o := range outs {
		for c, k := range o.countryCounters {
			x := countries[c]
			x.addC(k)
			countries[c] = x
			total.addC(k)
		}
	}
	names := make([]string, 0, len(countries))
	for c := range countries {
		names = append(names, c)
	}
	slices.Sort(names)
	// Per country over the shards, and everything: the union of the
	// countries' streams (a user's countries are few), fed to one more
	// union under the budget, or, once a country is approximate, to a
	// sketch.
	allB := newBudget(limit, dir)
	allB.exactLimit = exactLimit
	all := newUnion(allB)
	defer all.release()
	var allSk *hyperloglog.Sketch
	for _, c := range names {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		us := make([]*union, 0, len(outs))
		for _, o := range outs {
			us = append(us, o.countries[c])
		}
		n, sk, err := countUnion(us, all.add)
		if err != nil {
			return nil, nil, err
		}
		if sk != nil {
			if allSk == nil {
				allSk = newSketch()
			}
			if err := allSk.Merge(sk); err != nil {
				return nil, nil, fmt.Errorf("rollup: merge sketches: %w", err)
			}
		}
		rows = append(rows, row(from, to, grain, schema.All, c, countries[c], n, sk != nil))
		if n > st.LargestSetUsers {
			st.LargestSet, st.LargestSetUsers = fmt.Sprintf("(all urls, %q)", c), n
		}
	}
	if len(names) > 0 {
		all.seal()
		if allSk != nil {
			if all.sk == nil {
				if err := all.toSketch(); err != nil {
					return nil, nil, err
				}
			}
			if err := allSk.Merge(all.sk); err != nil {
				return nil, nil, fmt.Errorf("rollup: merge sketches: %w", err)
			}
			all.sk = allSk
		}
		n, sk, err := countUnion([]*union{all}, nil)
		if err != nil {
			return nil, nil, err
		}
		rows = append(rows, row(from, to, grain, schema.All, schema.All, total, n, sk != nil))
		if n >= st.LargestSetUsers {
			st.LargestSet, st.LargestSetUsers = "(all urls, all countries)", n
		}
	}
	st.PeakBufferBytes += allB.peak
	st.Spills += allB.spills
	st.SpilledBytes += allB.spilled
	for _, o := range outs {
		st.Spills += o.b.spills
		st.SpilledBytes += o.b.spilled
	}
	for i := range rows {
		if rows[i].Approximate {
			st.ApproximateRows++
		}
	}
	slices.SortFunc(rows, func(a, b schema.Row) int { return userset.CompareKeys(a.URL, a.Country, b.URL, b.Country) })
	return rows, sets, nil
}

// countUnion counts the union of sealed unions: exactly by a k-way merge,
// feeding each distinct hash to feed (if not nil), or, if one of them is
// a sketch, by a sketch of them all, which it returns.
func countUnion(us []*union, feed func(uint64) error) (int64, *hyperloglog.Sketch, error) {
	var srcs []source
	var closers []func()
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	var sk *hyperloglog.Sketch
	for _, u := range us {
		if u != nil && u.sk != nil {
			if sk == nil {
				sk = newSketch()
			}
			if err := sk.Merge(u.sk); err != nil {
				return 0, nil, fmt.Errorf("rollup: merge sketches: %w", err)
			}
		}
	}
	for _, u := range us {
		if u == nil || u.sk != nil {
			continue
		}
		s, c, err := u.sources()
		if err != nil {
			return 0, nil, err
		}
		srcs, closers = append(srcs, s...), append(closers, c)
	}
	if ss, ok := onlySlice(srcs); ok && sk == nil {
		// One sorted buffer, no runs (most URLs): no merge needed.
		if feed != nil {
			for _, h := range ss {
				if err := feed(h); err != nil {
					return 0, nil, err
				}
			}
		}
		return int64(len(ss)), nil, nil
	}
	m, err := newMerger(srcs)
	if err != nil {
		return 0, nil, err
	}
	n := int64(0)
	for {
		h, ok, err := m.next()
		if err != nil {
			return 0, nil, err
		}
		if !ok {
			break
		}
		if sk != nil {
			sk.InsertHash(h)
		} else if feed != nil {
			if err := feed(h); err != nil {
				return 0, nil, err
			}
		}
		n++
	}
	if sk != nil {
		return int64(sk.Estimate()), sk, nil
	}
	return n, nil, nil
}

// shardOf is the key range of a URL.
func shardOf(url string, shards int) int {
	if shards == 1 {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(url))
	return int(h.Sum32() % uint32(shards))
}

// shard merges the keys of one key range.
type shard struct {
	n, of    int
	grain    string
	from, to time.Time
	b        *budget
	keepSets bool
}

type shardOut struct {
	rows            []schema.Row
	rowCounters     []counters // of rows, for a shard partial
	keys            int64
	countries       map[string]*union // sealed
	countryCounters map[string]counters
	enc             *userset.Encoder // KeepSets: the range's (url, country) entries
	setFile         *results.SetFile // a shard partial's encoded entries, read by MergePartials
	b               *budget
	largest         string
	largestUsers    int64
}

// cursor walks a window's set files, over the entries of one shard.
type cursor struct {
	files []*userset.Reader
	i     int
	rec   userset.Record
	n, of int
	last  string // URL of the last entry, and its shard
	lastS int
	seen  bool
}

func (c *cursor) advance() bool {
	for c.i < len(c.files) {
		rec, ok := c.files[c.i].Next()
		if !ok {
			c.i++
			continue
		}
		if !c.seen || rec.URL != c.last {
			c.last, c.lastS, c.seen = rec.URL, shardOf(rec.URL, c.of), true
		}
		if c.lastS != c.n {
			continue
		}
		c.rec = rec
		return true
	}
	return false
}

type cursorHeap []*cursor

func (h cursorHeap) Len() int { return len(h) }
func (h cursorHeap) Less(i, j int) bool {
	return userset.CompareKeys(h[i].rec.URL, h[i].rec.Country, h[j].rec.URL, h[j].rec.Country) < 0
}
func (h cursorHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *cursorHeap) Push(x any)   { *h = append(*h, x.(*cursor)) }
func (h *cursorHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func (sh *shard) run(ctx context.Context, files [][]*userset.Reader) (*shardOut, error) {
	o := &shardOut{countries: map[string]*union{}, countryCounters: map[string]counters{}, b: sh.b}
	var keyHashes []uint64
	if sh.keepSets {
		o.enc = userset.NewEncoder()
	}
	var h cursorHeap
	// A cursor per set file: a window's files hold disjoint keys (one
	// range of keys each, in order, or a roll-up's key ranges), so the
	// cursors at a key are at most one per window.
	for _, fs := range files {
		for _, f := range fs {
			c := &cursor{n: sh.n, of: sh.of, files: []*userset.Reader{f.Clone()}}
			if c.advance() {
				h = append(h, c)
			}
		}
	}
	heap.Init(&h)
	var (
		url     string
		urlSet  = newUnion(sh.b)
		urlC    counters
		haveURL bool
		group   []*cursor
		its     []userset.Iter
	)
	finishURL := func() error {
		if !haveURL {
			return nil
		}
		urlSet.seal()
		n, sk, err := countUnion([]*union{urlSet}, nil)
		if err != nil {
			return err
		}
		approx := sk != nil
		urlSet.release()
		urlSet = newUnion(sh.b)
		o.rows = append(o.rows, row(sh.from, sh.to, sh.grain, url, schema.All, urlC, n, approx))
		o.rowCounters = append(o.rowCounters, urlC)
		if n > o.largestUsers {
			o.largest, o.largestUsers = fmt.Sprintf("(%q, all countries)", url), n
		}
		urlC, haveURL = counters{}, false
		return nil
	}
	for len(h) > 0 {
		if o.keys%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		// The cursors at the smallest key.
		group = group[:0]
		top := h[0].rec
		for len(h) > 0 && h[0].rec.URL == top.URL && h[0].rec.Country == top.Country {
			group = append(group, heap.Pop(&h).(*cursor))
		}
		if !haveURL || top.URL != url {
			if err := finishURL(); err != nil {
				return nil, err
			}
			url, haveURL = top.URL, true
		}
		var c counters
		its = its[:0]
		for _, g := range group {
			c.add(&g.rec.Entry)
			its = append(its, g.rec.Set())
		}
		cu := o.countries[top.Country]
		if cu == nil {
			cu = newUnion(sh.b)
			o.countries[top.Country] = cu
		}
		keyHashes = keyHashes[:0]
		n, err := streamUnion(its, func(x uint64) error {
			if o.enc != nil {
				keyHashes = append(keyHashes, x)
			}
			if err := urlSet.add(x); err != nil {
				return err
			}
			return cu.add(x)
		})
		if err != nil {
			return nil, err
		}
		if o.enc != nil {
			if err := o.enc.Add(userset.Entry{URL: top.URL, Country: top.Country, Clicks: c.clicks, Users: n,
				TimeSpentMs: c.ms, Samples: c.samples, BotClicks: c.bots, Hashes: keyHashes}); err != nil {
				return nil, err
			}
		}
		o.rows = append(o.rows, row(sh.from, sh.to, sh.grain, top.URL, top.Country, c, n, false))
		o.rowCounters = append(o.rowCounters, c)
		o.keys++
		urlC.addC(c)
		cc := o.countryCounters[top.Country]
		cc.addC(c)
		o.countryCounters[top.Country] = cc
		for _, g := range group {
			if g.advance() {
				heap.Push(&h, g)
			}
		}
	}
	if err := finishURL(); err != nil {
		return nil, err
	}
	for _, u := range o.countries {
		u.seal()
	}
	return o, nil
}

// streamUnion emits, in increasing order, each distinct hash of the
// union of a key's sets (one per window), and returns how many. A key is
// in few windows at a time: one set is read through, a few are merged by
// a linear scan of their heads, more by a heap.
func streamUnion(its []userset.Iter, emit func(uint64) error) (int64, error) {
	n := int64(0)
	switch {
	case len(its) == 1:
		for h, ok := its[0].Next(); ok; h, ok = its[0].Next() {
			n++
			if err := emit(h); err != nil {
				return n, err
			}
		}
		return n, nil
	case len(its) <= 8:
		var headsA [8]uint64
		var liveA [8]int
		heads, live := headsA[:0], liveA[:0]
		for i := range its {
			if h, ok := its[i].Next(); ok {
				heads, live = append(heads, h), append(live, i)
			}
		}
		for len(live) > 0 {
			x := heads[0]
			for _, h := range heads[1:] {
				x = min(x, h)
			}
			n++
			if err := emit(x); err != nil {
				return n, err
			}
			for j := 0; j < len(live); {
				if heads[j] != x {
					j++
					continue
				}
				if h, ok := its[live[j]].Next(); ok {
					heads[j] = h
					j++
					continue
				}
				last := len(live) - 1
				heads[j], live[j] = heads[last], live[last]
				heads, live = heads[:last], live[:last]
			}
		}
		return n, nil
	}
	srcs := make([]source, len(its))
	for i := range its {
		srcs[i] = &iterSource{it: its[i]}
	}
	m, err := newMerger(srcs)
	if err != nil {
		return 0, err
	}
	for {
		x, ok, err := m.next()
		if err != nil || !ok {
			return n, err
		}
		n++
		if err := emit(x); err != nil {
			return n, err
		}
	}
}

// onlySlice returns the hashes of srcs if it is a single in-memory run.
func onlySlice(srcs []source) ([]uint64, bool) {
	if len(srcs) != 1 {
		return nil, len(srcs) == 0
	}
	s, ok := srcs[0].(*sliceSource)
	if !ok {
		return nil, false
	}
	return s.s, true
}
