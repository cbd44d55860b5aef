package coordinator

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dataco/clickstream/internal/aggregate"
	"github.com/dataco/clickstream/internal/cluster/clustertest"
	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/lake/laketest"
	"github.com/dataco/clickstream/internal/results"
	"github.com/dataco/clickstream/internal/rollup"
	"github.com/dataco/clickstream/internal/schema"
	pb "github.com/dataco/clickstream/proto/clickstream/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
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
	// A provisional window finalized: the day is rolled up again, as final.
	recs[day.Add(23*time.Hour).Unix()].Provisional = true
	prov := closedDays(recs, time.Hour, complete)[0].fingerprint
	recs[day.Add(23*time.Hour).Unix()].Provisional = false
	if final := closedDays(recs, time.Hour, complete)[0].fingerprint; final == prov {
		t.Fatal("finalizing a window did not change the day's fingerprint")
	}
}

// TestScheduleRollsUpClosedDays: the scheduler's turn submits a roll-up
// job of a closed day, and its next turn follows the job to its end: the
// day's result is rollup.Compute's, keeps its sets and is published. A
// window run again rolls the day up again (the next revision); a window
// without user sets makes the day invalid, no job submitted, until its
// windows change; a failed roll-up job is tried again after RetryFailed.
func TestScheduleRollsUpClosedDays(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, 4, 0, 0)
	base := laketest.NewFile(t)
	day := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	var published atomic.Int32
	c := h.coordinator(func(cfg *Config) {
		cfg.Schedule.Out = base.URI()
		cfg.Schedule.Rollups, cfg.Schedule.RollupShards = true, 3
		cfg.Publishers = append(cfg.Publishers, NewPublisher("probe", func(_ context.Context, _ lake.Store, m results.Meta) error {
			if m.Grain == schema.GrainDay {
				published.Add(1)
			}
			return nil
		}))
	})
	var broken atomic.Bool
	h.worker("w1", 2, func(ctx context.Context, req *pb.RunTaskRequest) (*pb.RunTaskResponse, error) {
		if broken.Load() {
			return nil, status.Error(codes.Internal, "disk full")
		}
		return computeTask(ctx, req)
	})
	waitUntil(t, "leader", 10*time.Second, c.IsLeader)
	s := c.cfg.Schedule
	events := clustertest.Events(3, 100, 3_000, day, day.Add(24*time.Hour))
	recs := map[int64]*windowRecord{}
	commit := func(from time.Time, job string, sets bool) {
		t.Helper()
		out, err := lake.Open(ctx, WindowOut(base.URI(), from), lake.S3Options{})
		if err != nil {
			t.Fatal(err)
		}
		w := aggregate.Window{From: from, To: from.Add(time.Hour)}
		p := aggregate.Compute(events, w, aggregate.DefaultSessionTimeout)
		m := results.Meta{Job: job, Run: results.RunName(job, 1), From: w.From, To: w.To, SessionTimeout: aggregate.DefaultSessionTimeout.String()}
		if sets {
			if err := results.WriteSets(ctx, out, &m, p.UserSetEntries()); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := results.Commit(ctx, out, p.Result(w), m); err != nil {
			t.Fatal(err)
		}
		recs[from.Unix()] = &windowRecord{From: from, To: w.To, State: windowDone, Job: job}
	}
	for hr := range 24 {
		commit(day.Add(time.Duration(hr)*time.Hour), "job-a", true)
	}
	complete := func(time.Time) bool { return true }
	tick := func(want bool) {
		t.Helper()
		if did, err := c.rollupTick(ctx, s, recs, complete); err != nil || did != want {
			t.Fatalf("tick: changed something %v, %v; want %v", did, err, want)
		}
	}
	record := func() *rollupRecord {
		t.Helper()
		got, err := c.rollupRecords(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return got[period{schema.GrainDay, day.Unix()}]
	}
	readDay := func() (results.Meta, []schema.Row) { return readRollup(t, base, schema.GrainDay, day) }
	tick(true) // submits the day's roll-up job
	if r := record(); r == nil || r.State != windowRunning || r.Job == "" {
		t.Fatalf("record %+v: want running, with its job", r)
	}
	tick(true) // follows it to its end
	r := record()
	if r.State != windowDone || r.Out != rollup.OutURI(base.URI()+"/rollup", schema.GrainDay, day) {
		t.Fatalf("record %+v: want done, with the day's output", r)
	}
	j, err := c.GetJob(ctx, &pb.GetJobRequest{Id: r.Job})
	if err != nil || j.GetJob().GetSpec().GetRollup().GetShards() != 3 || j.GetJob().GetProgress().GetTasksTotal() != 3 {
		t.Fatalf("the roll-up job %+v, %v: want a roll-up of 3 tasks", j.GetJob(), err)
	}
	m1, rows := readDay()
	windows, err := rollup.Windows(ctx, base, lake.S3Options{}, day, day.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	want, _, err := rollup.Compute(ctx, rollup.Config{Shards: 1}, schema.GrainDay, day, day.Add(24*time.Hour), windows)
	if err != nil {
		t.Fatal(err)
	}
	if m1.Grain != schema.GrainDay || len(m1.RollupOf) != 24 || len(m1.Sets) != 3 || len(rows) != len(want) {
		t.Fatalf("day roll-up %+v with %d rows, want %d, and 3 set files", m1, len(rows), len(want))
	}
	for i := range rows {
		if !schema.EqualMetrics(rows[i], want[i]) {
			t.Fatalf("row %d: %+v, rollup.Compute %+v", i, rows[i], want[i])
		}
	}
	if n := published.Load(); n != 1 {
		t.Fatalf("the day published %d times, want once", n)
	}
	tick(false) // nothing changed

	commit(day.Add(7*time.Hour), "job-b", true) // late data ran window 7 again
	tick(true)
	tick(true)
	if m2, _ := readDay(); m2.Run == m1.Run || m2.Revision != m1.Revision+1 {
		t.Fatalf("the day's roll-up run %s revision %d, before %s %d: want the next revision", m2.Run, m2.Revision, m1.Run, m1.Revision)
	}

	// A window run without user sets: the day cannot be rolled up, no job
	// is submitted, and it is not tried again until its windows change,
	// whatever RetryFailed says.
	commit(day.Add(9*time.Hour), "job-c", false)
	s.RetryFailed = time.Nanosecond
	tick(true)
	if r := record(); r == nil || r.State != windowFailed || !r.Invalid || r.Job != "" || !strings.Contains(r.Error, "no user sets") {
		t.Fatalf("record %+v: want failed, invalid, no job, naming the missing sets", r)
	}
	tick(false)

	// A roll-up job that fails is recorded so, and submitted again once
	// RetryFailed has passed.
	commit(day.Add(9*time.Hour), "job-d", true)
	broken.Store(true)
	s.RetryFailed = time.Hour
	tick(true)
	tick(true)
	if r := record(); r.State != windowFailed || r.Invalid || !strings.Contains(r.Error, "disk full") {
		t.Fatalf("record %+v: want failed (not invalid), naming the cause", r)
	}
	tick(false)
	broken.Store(false)
	s.RetryFailed = time.Nanosecond
	tick(true)
	tick(true)
	if r := record(); r.State != windowDone {
		t.Fatalf("record %+v after the retry: want done", r)
	}
}

// TestScheduleRollsUpWeeks: with week among the grains, once a complete
// week's days are rolled up, the scheduler submits the week's roll-up job
// from the days' sets: its rows are those of the week's windows rolled up
// (rollup.Compute), it waits for a day rolled up again, and then rolls
// the week up again (the next revision). Grains without day are refused.
func TestScheduleRollsUpWeeks(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, 4, 0, 0)
	base := laketest.NewFile(t)
	monday := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	c := h.coordinator(func(cfg *Config) {
		cfg.Schedule.Out = base.URI()
		cfg.Schedule.Rollups, cfg.Schedule.RollupShards = true, 2
		cfg.Schedule.RollupGrains = []string{schema.GrainDay, schema.GrainWeek}
	})
	h.worker("w1", 2, nil)
	waitUntil(t, "leader", 10*time.Second, c.IsLeader)
	s := c.cfg.Schedule
	events := clustertest.Events(4, 60, 4_000, monday, monday.Add(48*time.Hour))
	recs := map[int64]*windowRecord{}
	commit := func(from time.Time, job string) {
		t.Helper()
		out, err := lake.Open(ctx, WindowOut(base.URI(), from), lake.S3Options{})
		if err != nil {
			t.Fatal(err)
		}
		w := aggregate.Window{From: from, To: from.Add(6 * time.Hour)}
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
	s.Window = 6 * time.Hour
	for hr := 0; hr < 48; hr += 6 { // Monday and Tuesday
		commit(monday.Add(time.Duration(hr)*time.Hour), "job-a")
	}
	complete := func(time.Time) bool { return true }
	// Ticks until nothing changes: each submits a job, or follows one.
	settle := func() {
		t.Helper()
		for range 20 {
			did, err := c.rollupTick(ctx, s, recs, complete)
			if err != nil {
				t.Fatal(err)
			}
			if !did {
				return
			}
		}
		t.Fatal("the roll-ups never settle")
	}
	readWeek := func() (results.Meta, []schema.Row) { return readRollup(t, base, schema.GrainWeek, monday) }
	settle()
	m1, rows := readWeek()
	windows, err := rollup.Windows(ctx, base, lake.S3Options{}, monday, monday.Add(7*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	want, _, err := rollup.Compute(ctx, rollup.Config{Shards: 1, AllowGaps: true}, schema.GrainWeek, monday, monday.Add(7*24*time.Hour), windows)
	if err != nil {
		t.Fatal(err)
	}
	if len(m1.RollupOf) != 2 || !strings.Contains(m1.RollupOf[0], "grain=day/period=20260105") || len(rows) != len(want) {
		t.Fatalf("week rolled up from %v with %d rows, want the two days and %d rows", m1.RollupOf, len(rows), len(want))
	}
	for i := range rows {
		if !schema.EqualMetrics(rows[i], want[i]) || rows[i].Grain != schema.GrainWeek {
			t.Fatalf("row %d: %+v, rollup.Compute %+v", i, rows[i], want[i])
		}
	}
	// Late data on Tuesday: the day, then the week, are rolled up again.
	commit(monday.Add(30*time.Hour), "job-b")
	settle()
	if m2, _ := readWeek(); m2.Revision != m1.Revision+1 {
		t.Fatalf("week revision %d after a day's re-run, before %d", m2.Revision, m1.Revision)
	}
	got, err := c.rollupRecords(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r := got[period{schema.GrainWeek, monday.Unix()}]; r == nil || r.State != windowDone || r.Grain != schema.GrainWeek {
		t.Fatalf("week record %+v: want done", r)
	}

	bad := NewSchedule()
	bad.Enabled, bad.Out, bad.Rollups, bad.RollupGrains = true, base.URI(), true, []string{schema.GrainWeek}
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "include day") {
		t.Errorf("grains without day: %v", err)
	}
	bad.RollupGrains = []string{schema.GrainDay, "fortnight"}
	if err := bad.Validate(); err == nil {
		t.Error("grain fortnight accepted")
	}
}

// readRollup reads the committed roll-up of grain's period starting at
// from, under the scheduler's output base.
func readRollup(t *testing.T, base lake.Store, grain string, from time.Time) (results.Meta, []schema.Row) {
	t.Helper()
	ctx := context.Background()
	out, err := lake.Open(ctx, rollup.OutURI(base.URI()+"/rollup", grain, from), lake.S3Options{})
	if err != nil {
		t.Fatal(err)
	}
	rows, m, err := results.ReadResult(ctx, out)
	if err != nil {
		t.Fatal(err)
	}
	return m, rows
}
