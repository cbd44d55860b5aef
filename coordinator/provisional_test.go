package coordinator

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/dataco/clickstream/internal/event"
	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/results"
)

// TestScheduleProvisionalThenFinal: with Schedule.Provisional, a window
// is processed as soon as the watermark passes its end + session timeout,
// and its result and every row say final=false (revision 1); late data
// then re-runs it, still provisional, as revision 2; once the watermark
// passes the allowed lateness too with no new input, the scheduler
// finalizes it without a job: the same rows and revision, final=true, the
// new watermark, published again; late data after that re-runs it as a
// final revision 3. Every step waits on the scheduler's records, never on
// time.
func TestScheduleProvisionalThenFinal(t *testing.T) {
	ctx := context.Background()
	const (
		window   = time.Minute
		timeout  = 30 * time.Second
		lateness = 30 * time.Second
	)
	t0 := time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)
	w1 := t0
	// Window 1 is ready at 1m30s, complete (final) at 2m.
	wmEarly := t0.Add(time.Minute + 40*time.Second)
	wmLate := t0.Add(2*time.Minute + 10*time.Second)

	h := newHarness(t, 4, 0, 0)
	dir := t.TempDir()
	file := filepath.Join(dir, "a.ndjson")
	var evs []event.Event
	for i := range 6 {
		for k := range 10 {
			evs = append(evs, schedEvent(fmt.Sprintf("user-%d", i), t0.Add(time.Duration(i*1000+k*9000)*time.Millisecond), fmt.Sprintf("/p/%d", k%3), "DE"))
		}
	}
	evs = append(evs, schedEvent("user-0", wmEarly, "/home", "DE")) // the watermark, exactly
	schedIngest(t, h.src, file, "a", evs)

	pub := &recordingPublisher{}
	outDir := t.TempDir()
	sched := Schedule{
		Enabled: true, Window: window, Lateness: lateness, Provisional: true,
		Out:      "file://" + filepath.ToSlash(outDir),
		Interval: 50 * time.Millisecond, IdleSource: time.Hour, Format: "csv",
	}
	h.worker("w1", 2, nil)
	c := h.coordinator(func(cfg *Config) {
		cfg.SessionTimeout = timeout
		cfg.Schedule = sched
		cfg.Publishers = []Publisher{pub}
	})
	window1 := func() *windowRecord {
		recs, err := c.windowRecords(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if r := recs[w1.Unix()]; r != nil {
			return r
		}
		return &windowRecord{}
	}
	out, err := lake.Open(ctx, sched.WindowOut(w1), lake.S3Options{})
	if err != nil {
		t.Fatal(err)
	}
	// check reads window 1's result and checks its provenance, on _SUCCESS
	// and on every row, and the last meta published.
	check := func(step string, rev int64, final bool, wm time.Time) results.Meta {
		t.Helper()
		rows, m, err := results.ReadResult(ctx, out)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if m.Revision != rev || m.Final != final || m.Watermark == nil || !m.Watermark.Equal(wm) || len(rows) == 0 {
			t.Fatalf("%s: result revision %d, final %v, watermark %v, %d rows; want %d, %v, %v",
				step, m.Revision, m.Final, m.Watermark, len(rows), rev, final, wm)
		}
		for _, r := range rows {
			if r.Revision != rev || r.Final != final || r.Watermark == nil || !r.Watermark.Equal(wm) || !r.ComputedAt.Equal(m.ComputedAt) {
				t.Fatalf("%s: row %+v of result %+v", step, r, m)
			}
		}
		if p, ok := pub.last(sched.WindowOut(w1)); !ok || p.Run != m.Run || p.Final != final || p.Revision != rev {
			t.Fatalf("%s: last published %+v (%v), committed %+v", step, p, ok, m)
		}
		return m
	}
	jobsOfWindow := func() int {
		n := 0
		for _, j := range schedJobs(t, c) {
			if j.GetSpec().GetFrom().AsTime().Equal(w1) {
				n++
			}
		}
		return n
	}

	// --- 1. The watermark is past window 1's end + session timeout, not
	// past the lateness: a provisional result.
	waitUntil(t, "window 1 done, provisional", 30*time.Second, func() bool {
		r := window1()
		return r.State == windowDone && r.Provisional
	})
	schedAwaitTicks(t, c, wmEarly)
	if r := window1(); r.State != windowDone || !r.Provisional || r.Runs != 1 {
		t.Fatalf("window 1 after more ticks at the same watermark: %+v", r)
	}
	first := check("provisional", 1, false, wmEarly)

	// --- 2. Late data while provisional: a re-run, revision 2, still
	// provisional (the watermark has not moved).
	schedIngest(t, h.src, file, "a", []event.Event{schedEvent("user-9", t0.Add(20*time.Second), "/late", "FR")})
	waitUntil(t, "window 1 re-run", 30*time.Second, func() bool {
		r := window1()
		return r.State == windowDone && r.Runs == 2
	})
	if !window1().Provisional {
		t.Fatal("window 1 re-run at the same watermark is not provisional")
	}
	second := check("provisional re-run", 2, false, wmEarly)
	if !second.ComputedAt.After(first.ComputedAt) {
		t.Errorf("re-run computed at %v, first run at %v", second.ComputedAt, first.ComputedAt)
	}

	// --- 3. The watermark passes the lateness (events of window 2 only,
	// outside window 1's input): window 1 is finalized without a job. The
	// publisher fails the first time: the window stays provisional until
	// a later tick publishes it.
	pub.failing.Store(true)
	schedIngest(t, h.src, file, "a", []event.Event{
		schedEvent("user-1", t0.Add(2*time.Minute), "/home", "DE"),
		schedEvent("user-1", wmLate, "/home", "DE"),
	})
	waitUntil(t, "a failed publication", 30*time.Second, func() bool { return pub.failures.Load() >= 2 })
	if r := window1(); !r.Provisional || r.Runs != 2 {
		t.Fatalf("window 1 after its finalization failed to publish: %+v", r)
	}
	pub.failing.Store(false)
	waitUntil(t, "window 1 finalized", 30*time.Second, func() bool { return !window1().Provisional })
	final := check("finalized", 2, true, wmLate)
	if !final.ComputedAt.Equal(second.ComputedAt) || final.Job != second.Job {
		t.Errorf("finalized result %+v, was %+v: want the same job and computed_at", final, second)
	}
	if n := jobsOfWindow(); n != 2 {
		t.Errorf("%d jobs of window 1 after finalizing, want 2: finalizing recomputes nothing", n)
	}
	if r := window1(); r.Runs != 2 || r.State != windowDone {
		t.Errorf("window 1 after finalizing: %+v", r)
	}
	var m dto.Metric
	if err := c.metrics.scheduleWindows.WithLabelValues("finalized").Write(&m); err != nil || m.GetCounter().GetValue() != 1 {
		t.Errorf("windows finalized: %v (%v), want 1", m.GetCounter().GetValue(), err)
	}

	// --- 4. Late data after that: a re-run, revision 3, final at once.
	schedIngest(t, h.src, file, "a", []event.Event{schedEvent("user-9", t0.Add(25*time.Second), "/late", "FR")})
	waitUntil(t, "window 1 re-run after final", 30*time.Second, func() bool {
		r := window1()
		return r.State == windowDone && r.Runs == 3
	})
	if window1().Provisional {
		t.Error("a late re-run past the lateness is provisional")
	}
	check("late re-run", 3, true, wmLate)
	if n := jobsOfWindow(); n != 3 {
		t.Errorf("%d jobs of window 1, want 3", n)
	}
	// The jobs' statuses: each its revision, final as committed.
	var revs []int64
	var finals []bool
	for _, j := range schedJobs(t, c) {
		if j.GetSpec().GetFrom().AsTime().Equal(w1) {
			revs, finals = append(revs, j.GetResult().GetRevision()), append(finals, j.GetResult().GetFinal())
		}
	}
	if !slices.Equal(revs, []int64{1, 2, 3}) || !slices.Equal(finals, []bool{false, false, true}) {
		t.Errorf("jobs of window 1: revisions %v, final %v; want [1 2 3], [false false true]", revs, finals)
	}
}

// recordingPublisher records the metas it is asked to publish, by output;
// while failing, it fails instead.
type recordingPublisher struct {
	failing  atomic.Bool
	failures atomic.Int64

	mu    sync.Mutex
	metas map[string][]results.Meta
}

func (p *recordingPublisher) Name() string { return "recording" }

func (p *recordingPublisher) Publish(_ context.Context, out lake.Store, m results.Meta) error {
	if p.failing.Load() {
		p.failures.Add(1)
		return errors.New("injected publisher failure")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.metas == nil {
		p.metas = map[string][]results.Meta{}
	}
	p.metas[out.URI()] = append(p.metas[out.URI()], m)
	return nil
}

func (p *recordingPublisher) last(uri string) (results.Meta, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ms := p.metas[uri]
	if len(ms) == 0 {
		return results.Meta{}, false
	}
	return ms[len(ms)-1], true
}
