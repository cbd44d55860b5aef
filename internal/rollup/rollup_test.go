package rollup

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/dataco/clickstream/internal/aggregate"
	"github.com/dataco/clickstream/internal/aggregate/aggtest"
	"github.com/dataco/clickstream/internal/cluster/clustertest"
	"github.com/dataco/clickstream/internal/event"
	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/lake/laketest"
	"github.com/dataco/clickstream/internal/leaktest"
	"github.com/dataco/clickstream/internal/results"
	"github.com/dataco/clickstream/internal/schema"
	"github.com/dataco/clickstream/internal/userset"
)

const timeout = aggregate.DefaultSessionTimeout

// commitWindow commits the job of window [from, to) over events to a new
// output store, with its user sets, as the coordinator does.
func commitWindow(t testing.TB, events []event.Event, from, to time.Time) Window {
	t.Helper()
	return commitWindowTo(t, laketest.NewFile(t), events, from, to)
}

func commitWindowTo(t testing.TB, out lake.Store, events []event.Event, from, to time.Time) Window {
	t.Helper()
	ctx := context.Background()
	w := aggregate.Window{From: from, To: to}
	p := aggregate.Compute(events, w, timeout)
	m := results.Meta{Job: "j", Run: results.RunName("j", 1), From: from, To: to, SessionTimeout: timeout.String()}
	if err := results.WriteSets(ctx, out, &m, p.UserSetEntries()); err != nil {
		t.Fatal(err)
	}
	m, err := results.Commit(ctx, out, p.Result(w), m)
	if err != nil {
		t.Fatal(err)
	}
	return Window{Out: out, Meta: m}
}

// splits cuts [from, to) into windows in several ways: 1h, 3h, uneven
// random cuts, and one window.
func splits(r *rand.Rand, from, to time.Time) map[string][][2]time.Time {
	out := map[string][][2]time.Time{}
	for _, d := range []time.Duration{time.Hour, 3 * time.Hour} {
		var ws [][2]time.Time
		for t := from; t.Before(to); t = t.Add(d) {
			end := t.Add(d)
			if end.After(to) {
				end = to
			}
			ws = append(ws, [2]time.Time{t, end})
		}
		out[d.String()] = ws
	}
	var cuts []time.Time
	for range 5 {
		cuts = append(cuts, from.Add(time.Duration(r.Int64N(int64(to.Sub(from)))).Truncate(time.Millisecond)))
	}
	cuts = append(cuts, from, to)
	slices.SortFunc(cuts, time.Time.Compare)
	cuts = slices.CompactFunc(cuts, time.Time.Equal)
	var ws [][2]time.Time
	for i := 1; i < len(cuts); i++ {
		ws = append(ws, [2]time.Time{cuts[i-1], cuts[i]})
	}
	out["uneven"] = ws
	out["whole"] = [][2]time.Time{{from, to}}
	return out
}

// direct computes the rows over all countries, all URLs and everything
// from the events, the plain way (package aggtest).
func direct(events []event.Event, from, to time.Time) map[[2]string]*aggtest.Row {
	ref := aggtest.Reference(events, from, to, timeout)
	out := map[[2]string]*aggtest.Row{}
	add := func(k [2]string, r *aggtest.Row) {
		a := out[k]
		if a == nil {
			a = &aggtest.Row{Users: map[string]bool{}}
			out[k] = a
		}
		a.Clicks += r.Clicks
		a.Ms += r.Ms
		a.Samples += r.Samples
		a.BotClicks += r.BotClicks
		for u := range r.Users {
			a.Users[u] = true
		}
	}
	for k, r := range ref {
		add([2]string{k.URL, k.Country}, r)
		add([2]string{k.URL, schema.All}, r)
		add([2]string{schema.All, k.Country}, r)
		add([2]string{schema.All, schema.All}, r)
	}
	return out
}

// TestRollupEqualsOneJob is the roll-up property: for any split of a
// period into windows, the roll-up of the windows is, row for row, the
// job over the whole period for each (url, country), and the plain
// computation for all countries, all URLs and everything.
func TestRollupEqualsOneJob(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		seed          uint64
		users, events int
		day           time.Time
	}{
		{1, 300, 20_000, time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)},
		{2, 40, 5_000, time.Date(2026, 3, 29, 0, 0, 0, 0, time.UTC)},
		{3, 2_000, 30_000, time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC)},
	} {
		from, to, err := Period(schema.GrainDay, c.day.Add(13*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		events := clustertest.Events(c.seed, c.users, c.events, from, to)
		job := aggregate.Compute(events, aggregate.Window{From: from, To: to}, timeout).Result(aggregate.Window{From: from, To: to})
		want := map[[2]string]schema.Row{}
		for _, r := range job {
			want[[2]string{r.URL, r.Country}] = r
		}
		plain := direct(events, from, to)
		r := rand.New(rand.NewPCG(c.seed, 9))
		for name, ws := range splits(r, from, to) {
			windows := make([]Window, len(ws))
			for i, w := range ws {
				windows[i] = commitWindow(t, events, w[0], w[1])
			}
			for _, cfg := range []Config{{Shards: 1}, {Shards: 3}, {Shards: 2, MemoryBudget: 4096}} {
				t.Run(fmt.Sprintf("seed%d/%s/shards%d/budget%d", c.seed, name, cfg.Shards, cfg.MemoryBudget), func(t *testing.T) {
					cfg.SpillDir = t.TempDir()
					rows, st, err := Compute(ctx, cfg, schema.GrainDay, from, to, windows)
					if err != nil {
						t.Fatal(err)
					}
					checkRows(t, schema.GrainDay, rows, want, plain, from, to)
					if cfg.MemoryBudget > 0 && st.Spills == 0 {
						t.Errorf("a budget of %d bytes spilled nothing (largest set %d users)", cfg.MemoryBudget, st.LargestSetUsers)
					}
					if st.Windows != len(ws) || st.Keys != int64(len(want)) {
						t.Errorf("stats %+v: want %d windows, %d keys", st, len(ws), len(want))
					}
				})
			}
		}
	}
}

func checkRows(t *testing.T, grain string, rows []schema.Row, want map[[2]string]schema.Row, plain map[[2]string]*aggtest.Row, from, to time.Time) {
	t.Helper()
	if len(rows) != len(plain) {
		t.Errorf("%d rows, want %d", len(rows), len(plain))
	}
	if !slices.IsSortedFunc(rows, func(a, b schema.Row) int { return userset.CompareKeys(a.URL, a.Country, b.URL, b.Country) }) {
		t.Error("rows not sorted by (url, country)")
	}
	for _, got := range rows {
		k := [2]string{got.URL, got.Country}
		if got.Grain != grain || !got.WindowStart.Equal(from) || !got.WindowEnd.Equal(to) {
			t.Fatalf("row %+v: want grain %s over [%s, %s)", got, grain, from, to)
		}
		if k[0] != schema.All && k[1] != schema.All {
			w, ok := want[k]
			if !ok {
				t.Fatalf("row %q: not in the job's result", k)
			}
			w.Grain = grain
			if !schema.Equal(got, w) {
				t.Errorf("row %q:\n got %+v\nwant %+v (the job over the whole period)", k, got, w)
			}
		}
		p := plain[k]
		if p == nil {
			t.Fatalf("row %q: no such key in the events", k)
		}
		if d := p.Diff(got, from, to); d != "" {
			t.Errorf("row %q: %s", k, d)
		}
	}
}

// TestSpillUnderTinyBudget: under a budget of a few kilobytes the unions
// spill many sorted runs (and merge them when they pile up) and the rows
// are those computed in memory.
func TestSpillUnderTinyBudget(t *testing.T) {
	ctx := context.Background()
	from, to, _ := Period(schema.GrainDay, time.Date(2026, 11, 27, 5, 0, 0, 0, time.UTC))
	events := clustertest.Events(11, 5_000, 40_000, from, to)
	var windows []Window
	for h := from; h.Before(to); h = h.Add(time.Hour) {
		windows = append(windows, commitWindow(t, events, h, h.Add(time.Hour)))
	}
	inMemory, st0, err := Compute(ctx, Config{Shards: 2}, schema.GrainDay, from, to, windows)
	if err != nil {
		t.Fatal(err)
	}
	if st0.Spills != 0 {
		t.Fatalf("no budget, yet %d spills", st0.Spills)
	}
	rows, st, err := Compute(ctx, Config{Shards: 2, MemoryBudget: 2048, SpillDir: t.TempDir()}, schema.GrainDay, from, to, windows)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("in memory: peak %d bytes; budget 2048: peak %d bytes, %d spills, %d bytes spilled; largest set %s: %d users",
		st0.PeakBufferBytes, st.PeakBufferBytes, st.Spills, st.SpilledBytes, st.LargestSet, st.LargestSetUsers)
	if st.Spills <= maxFileRuns || st.SpilledBytes == 0 {
		t.Errorf("%d spills (%d bytes): want more than %d, so that runs are merged", st.Spills, st.SpilledBytes, maxFileRuns)
	}
	if st.PeakBufferBytes > 2048+2*1024 || st.PeakBufferBytes >= st0.PeakBufferBytes {
		t.Errorf("peak %d bytes under a budget of 2048 (in memory: %d)", st.PeakBufferBytes, st0.PeakBufferBytes)
	}
	if st.LargestSetUsers != 5_000 && st.LargestSetUsers < 4_900 {
		t.Errorf("largest set %d users, want about 5000 (everyone)", st.LargestSetUsers)
	}
	if len(rows) != len(inMemory) {
		t.Fatalf("%d rows, in memory %d", len(rows), len(inMemory))
	}
	for i := range rows {
		if !schema.Equal(rows[i], inMemory[i]) {
			t.Fatalf("row %d: %+v, in memory %+v", i, rows[i], inMemory[i])
		}
	}
}

func TestPeriod(t *testing.T) {
	at := time.Date(2026, 12, 2, 15, 4, 5, 0, time.FixedZone("X", 3600)) // a Wednesday
	for _, c := range []struct {
		grain    string
		from, to time.Time
	}{
		{schema.GrainDay, time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC), time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)},
		{schema.GrainWeek, time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC), time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)},
		{schema.GrainMonth, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		from, to, err := Period(c.grain, at)
		if err != nil || !from.Equal(c.from) || !to.Equal(c.to) {
			t.Errorf("%s of %s: [%s, %s) %v, want [%s, %s)", c.grain, at, from, to, err, c.from, c.to)
		}
	}
	// A Sunday belongs to the week that started the Monday before.
	if from, _, _ := Period(schema.GrainWeek, time.Date(2026, 12, 6, 23, 0, 0, 0, time.UTC)); !from.Equal(time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("week of a Sunday starts %s", from)
	}
	if _, _, err := Period("hour", at); !errors.Is(err, ErrGrain) {
		t.Errorf("grain hour: %v", err)
	}
	ps, err := Periods(schema.GrainDay, time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC), time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC))
	if err != nil || len(ps) != 3 {
		t.Errorf("days of [27th noon, 30th): %v %v", ps, err)
	}
}

// TestWindowsThatCannotRollUp: overlapping windows, a window crossing
// the period, a window without sets, different session timeouts, and
// gaps unless allowed.
func TestWindowsThatCannotRollUp(t *testing.T) {
	ctx := context.Background()
	from, to, _ := Period(schema.GrainDay, time.Date(2026, 11, 27, 5, 0, 0, 0, time.UTC))
	events := clustertest.Events(5, 50, 2_000, from, to)
	h := func(a, b int) Window {
		return commitWindow(t, events, from.Add(time.Duration(a)*time.Hour), from.Add(time.Duration(b)*time.Hour))
	}
	noSets := h(12, 24)
	noSets.Meta.Sets = nil
	otherTimeout := h(12, 24)
	otherTimeout.Meta.SessionTimeout = "10m0s"
	for name, c := range map[string]struct {
		windows []Window
		want    error
	}{
		"overlap":       {[]Window{h(0, 13), h(12, 24)}, ErrWindows},
		"crossing":      {[]Window{h(0, 12), h(12, 25)}, ErrWindows},
		"no sets":       {[]Window{h(0, 12), noSets}, ErrWindows},
		"other timeout": {[]Window{h(0, 12), otherTimeout}, ErrWindows},
		"gap":           {[]Window{h(0, 11), h(12, 24)}, ErrIncomplete},
		"none":          {nil, ErrIncomplete},
	} {
		t.Run(name, func(t *testing.T) {
			if _, _, err := Compute(ctx, Config{}, schema.GrainDay, from, to, c.windows); !errors.Is(err, c.want) {
				t.Fatalf("%v, want %v", err, c.want)
			}
		})
	}
	_, st, err := Compute(ctx, Config{AllowGaps: true}, schema.GrainDay, from, to, []Window{h(1, 11), h(12, 23)})
	if err != nil || len(st.Gaps) != 3 {
		t.Fatalf("gaps allowed: %v, gaps %v", err, st.Gaps)
	}
}

func TestMain(m *testing.M) { leaktest.Main(m) }

// TestExactLimit: beyond --exact-limit a union becomes a sketch: its row
// is marked approximate and within 4 standard errors of the exact count;
// rows whose unions stay under the limit are exact; (url, country) rows
// are always exact.
func TestExactLimit(t *testing.T) {
	ctx := context.Background()
	from, to, _ := Period(schema.GrainDay, time.Date(2026, 11, 27, 5, 0, 0, 0, time.UTC))
	events := clustertest.Events(12, 20_000, 60_000, from, to)
	var windows []Window
	for h := from; h.Before(to); h = h.Add(2 * time.Hour) {
		windows = append(windows, commitWindow(t, events, h, h.Add(2*time.Hour)))
	}
	exact, _, err := Compute(ctx, Config{Shards: 2}, schema.GrainDay, from, to, windows)
	if err != nil {
		t.Fatal(err)
	}
	const limit = 1_000
	rows, st, err := Compute(ctx, Config{Shards: 2, ExactLimit: limit, MemoryBudget: 64 << 10, SpillDir: t.TempDir()}, schema.GrainDay, from, to, windows)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(exact) {
		t.Fatalf("%d rows, want %d", len(rows), len(exact))
	}
	approx, worst := 0, 0.0
	for i, r := range rows {
		e := exact[i]
		if r.URL != e.URL || r.Country != e.Country || r.Clicks != e.Clicks || r.TotalTimeSpentS != e.TotalTimeSpentS {
			t.Fatalf("row %d: %+v, exact %+v", i, r, e)
		}
		switch {
		case r.URL != schema.All && r.Country != schema.All && r.Approximate:
			t.Errorf("(url, country) row %q/%q is approximate", r.URL, r.Country)
		case e.UniqueUsers > limit && !r.Approximate:
			t.Errorf("row %q/%q: %d users, beyond the limit %d, counted exactly", r.URL, r.Country, e.UniqueUsers, limit)
		case !r.Approximate && r.UniqueUsers != e.UniqueUsers:
			t.Errorf("exact row %q/%q: %d users, want %d", r.URL, r.Country, r.UniqueUsers, e.UniqueUsers)
		case r.Approximate:
			approx++
			rel := float64(r.UniqueUsers-e.UniqueUsers) / float64(e.UniqueUsers)
			worst = max(worst, rel, -rel)
			if rel > 4*SketchRelError || rel < -4*SketchRelError {
				t.Errorf("row %q/%q: estimate %d, exact %d: error %.2f%%, beyond 4 standard errors", r.URL, r.Country, r.UniqueUsers, e.UniqueUsers, 100*rel)
			}
		}
	}
	t.Logf("%d approximate rows of %d, worst relative error %.3f%% (standard error %.2f%%)", approx, len(rows), 100*worst, 100*SketchRelError)
	if approx == 0 || approx != st.ApproximateRows {
		t.Fatalf("%d approximate rows, stats say %d", approx, st.ApproximateRows)
	}
}

// TestWeekAndMonthEqualOneJob: the property over an ISO week of daily and
// 6-hour windows, and over a month of daily windows.
func TestWeekAndMonthEqualOneJob(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		grain string
		at    time.Time
		step  time.Duration
	}{
		{schema.GrainWeek, time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC), 24 * time.Hour},
		{schema.GrainWeek, time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC), 6 * time.Hour},
		{schema.GrainMonth, time.Date(2026, 2, 14, 0, 0, 0, 0, time.UTC), 24 * time.Hour},
	} {
		t.Run(c.grain+"/"+c.step.String(), func(t *testing.T) {
			from, to, err := Period(c.grain, c.at)
			if err != nil {
				t.Fatal(err)
			}
			events := clustertest.Events(uint64(c.step), 500, 30_000, from, to)
			w := aggregate.Window{From: from, To: to}
			want := map[[2]string]schema.Row{}
			for _, r := range aggregate.Compute(events, w, timeout).Result(w) {
				want[[2]string{r.URL, r.Country}] = r
			}
			var windows []Window
			for t0 := from; t0.Before(to); t0 = t0.Add(c.step) {
				windows = append(windows, commitWindow(t, events, t0, t0.Add(c.step)))
			}
			rows, _, err := Compute(ctx, Config{Shards: 2}, c.grain, from, to, windows)
			if err != nil {
				t.Fatal(err)
			}
			checkRows(t, c.grain, rows, want, direct(events, from, to), from, to)
		})
	}
}
