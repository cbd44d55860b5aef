package coordinator

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/dataco/clickstream/internal/aggregate"
	"github.com/dataco/clickstream/internal/cluster/clustertest"
	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/lake/laketest"
	"github.com/dataco/clickstream/internal/results"
	"github.com/dataco/clickstream/internal/rollup"
	"github.com/dataco/clickstream/internal/schema"
)

func TestClosedDays(t *testing.T) {
	day := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	recs := map[int64]*windowRecord{}
	put := func(from time.Time, state string, invalid bool) {
		recs[from.Unix()] = &windowRecord{From: from, To: from.Add(time.Hour), State: state, Job: "job-" + from.Format("150405"), Invalid: invalid}
	}
	put(day, windowDone, false)
	put(day.Add(5*time.Hour), windowFailed, true) // cannot be aggregated: does not hold the day
	put(day.Add(23*time.Hour), windowDone, false)
	put(day.Add(24*time.Hour), windowDone, false)    // day 2...
	put(day.Add(30*time.Hour), windowRunning, false) // ... still running
	put(day.Add(48*time.Hour), windowDone, false)    // day 3: not complete
	complete := func(from time.Time) bool { return from.Before(day.Add(60 * time.Hour)) }
	got := closedDays(recs, time.Hour, complete)
	if len(got) != 1 || !got[0].from.Equal(day) {
		t.Fatalf("closed days %v, want the first only", got)
	}
	fp := got[0].fingerprint
	recs[day.Add(23*time.Hour).Unix()].Job = "job-rerun"
	if again := closedDays(recs, time.Hour, complete); again[0].fingerprint == fp {
		t.Fatal("a window run again did not change the day's fingerprint")
	}
	recs[day.Add(30*time.Hour).Unix()].State = windowDone
	if n := len(closedDays(recs, time.Hour, complete)); n != 2 {
		t.Fatalf("%d closed days once day 2 is done, want 2", n)
	}
}

// TestScheduleRollsUpClosedDays: the scheduler's turn rolls up a closed
// day from its committed windows, once; a window run again rolls it up
// again.
func TestScheduleRollsUpClosedDays(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, 4, 0, 0)
	base := laketest.NewFile(t)
	day := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	c := h.coordinator(func(cfg *Config) {
		cfg.Schedule.Out = base.URI()
		cfg.Schedule.Rollups = true
	})
	s := c.cfg.Schedule
	events := clustertest.Events(3, 100, 3_000, day, day.Add(24*time.Hour))
	recs := map[int64]*windowRecord{}
	commit := func(from time.Time, job string) {
		t.Helper()
		out, err := lake.Open(ctx, WindowOut(base.URI(), from), lake.S3Options{})
		if err != nil {
			t.Fatal(err)
		}
		w := aggregate.Window{From: from, To: from.Add(time.Hour)}
		p := aggregate.Compute(events, w, aggregate.DefaultSessionTimeout)
		m := results.Meta{Job: job, Run: results.RunName(job, 1), From: w.From, To: w.To, SessionTimeout: aggregate.DefaultSessionTimeout.String()}
		if err := results.WriteSets(ctx, out, &m, p.UserSetEntries()); err != nil {
			t.Fatal(err)
		}
		if _, err := results.Commit(ctx, out, p.Result(w), m); err != nil {
			t.Fatal(err)
		}
		recs[from.Unix()] = &windowRecord{From: from, To: w.To, State: windowDone, Job: job}
	}
	for hr := range 24 {
		commit(day.Add(time.Duration(hr)*time.Hour), "job-a")
	}
	complete := func(time.Time) bool { return true }
	readDay := func() (results.Meta, []schema.Row) {
		t.Helper()
		out, err := lake.Open(ctx, rollup.OutURI(base.URI()+"/rollup", schema.GrainDay, day), lake.S3Options{})
		if err != nil {
			t.Fatal(err)
		}
		rows, m, err := results.ReadResult(ctx, out)
		if err != nil {
			t.Fatal(err)
		}
		return m, rows
	}
	if did, err := c.rollupTick(ctx, s, recs, complete); err != nil || !did {
		t.Fatalf("first tick: rolled up %v, %v", did, err)
	}
	m1, rows := readDay()
	if m1.Grain != schema.GrainDay || len(m1.RollupOf) != 24 || len(rows) == 0 {
		t.Fatalf("day roll-up %+v with %d rows", m1, len(rows))
	}
	if did, err := c.rollupTick(ctx, s, recs, complete); err != nil || did {
		t.Fatalf("second tick, nothing changed: rolled up %v, %v", did, err)
	}
	commit(day.Add(7*time.Hour), "job-b") // late data ran window 7 again
	if did, err := c.rollupTick(ctx, s, recs, complete); err != nil || !did {
		t.Fatalf("after a window's re-run: rolled up %v, %v", did, err)
	}
	if m2, _ := readDay(); m2.Run == m1.Run {
		t.Fatal("the day's roll-up was not replaced")
	}
	// A window run without user sets: the day cannot be rolled up, and is
	// not tried again until its windows change, whatever RetryFailed says.
	out, err := lake.Open(ctx, WindowOut(base.URI(), day.Add(9*time.Hour)), lake.S3Options{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := results.ReadMeta(ctx, out)
	if err != nil {
		t.Fatal(err)
	}
	m.Sets, m.Run = nil, "job-c-1"
	if _, err := results.Commit(ctx, out, nil, m); err != nil {
		t.Fatal(err)
	}
	recs[day.Add(9*time.Hour).Unix()].Job = "job-c"
	s.RetryFailed = time.Nanosecond
	if did, err := c.rollupTick(ctx, s, recs, complete); err != nil || !did {
		t.Fatalf("a window without sets: rolled up %v, %v", did, err)
	}
	got, err := c.rollupRecords(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r := got[day.Unix()]; r == nil || r.State != windowFailed || !r.Invalid || !strings.Contains(r.Error, "no user sets") {
		t.Fatalf("record %+v: want failed, invalid, naming the missing sets", r)
	}
	if did, err := c.rollupTick(ctx, s, recs, complete); err != nil || did {
		t.Fatalf("an invalid day tried again: %v, %v", did, err)
	}
}
