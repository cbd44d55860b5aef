package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/dataco/clickstream/coordinator"
	"github.com/dataco/clickstream/internal/aggregate"
	"github.com/dataco/clickstream/internal/cluster/clustertest"
	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/lake/laketest"
	"github.com/dataco/clickstream/internal/results"
	"github.com/dataco/clickstream/internal/rollup"
	"github.com/dataco/clickstream/internal/schema"
	pb "github.com/dataco/clickstream/proto/clickstream/v1"
)

// TestRollupCommand: clickstream rollup over a bare path of hourly
// windows (as the scheduler lays them out) commits the day and reports
// it; a bad grain is a usage error; a day with a missing window fails
// unless --allow-gaps.
func TestRollupCommand(t *testing.T) {
	ctx := context.Background()
	base := filepath.Join(t.TempDir(), "hourly")
	day := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	events := clustertest.Events(4, 80, 2_000, day, day.Add(24*time.Hour))
	for hr := range 24 {
		if hr == 13 {
			continue // not processed
		}
		w := aggregate.Window{From: day.Add(time.Duration(hr) * time.Hour), To: day.Add(time.Duration(hr+1) * time.Hour)}
		out, err := lake.Open(ctx, coordinator.WindowOut("file://"+base, w.From), lake.S3Options{})
		if err != nil {
			t.Fatal(err)
		}
		p := aggregate.Compute(events, w, 0)
		m := results.Meta{Job: "j", Run: "j-1", From: w.From, To: w.To, SessionTimeout: aggregate.DefaultSessionTimeout.String()}
		if err := results.WriteSets(ctx, out, &m, p.UserSetEntries()); err != nil {
			t.Fatal(err)
		}
		if _, err := results.Commit(ctx, out, p.Result(w), m); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"rollup", "--out", base, "--from", "2026-01-05T10:00:00Z", "--grain", "day"}
	if code, _, stderr := runArgs(t, append(args, "--grain", "fortnight")...); code != 2 || !strings.Contains(stderr, "grain") {
		t.Fatalf("bad grain: exit %d, %s", code, stderr)
	}
	if code, _, stderr := runArgs(t, args...); code != 1 || !strings.Contains(stderr, "do not cover") {
		t.Fatalf("a missing window: exit %d, %s", code, stderr)
	}
	code, stdout, stderr := runArgs(t, append(args, "--allow-gaps", "--memory-budget", "4096", "--shards", "2")...)
	if code != 0 || !strings.Contains(stdout, "rollup day 2026-01-05: 23 windows") || !strings.Contains(stdout, "1 gaps") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	out, err := lake.Open(ctx, rollup.OutURI("file://"+base+"/rollup", schema.GrainDay, day), lake.S3Options{})
	if err != nil {
		t.Fatal(err)
	}
	rows, m, err := results.ReadResult(ctx, out)
	if err != nil || m.Grain != schema.GrainDay || m.Warning == "" || len(rows) == 0 {
		t.Fatalf("committed day: %d rows, meta %+v, %v", len(rows), m, err)
	}
	if last := rows[0]; last.URL != schema.All || last.Country != schema.All || last.Grain != schema.GrainDay {
		t.Fatalf("first row %+v: want everything's", last)
	}
}

// failAfterCommit is a TaskRunner that runs attempts on the workers over
// gRPC, and loses the answer of the first attempt of one key range after
// its worker committed the partial, as if the connection broke: the task
// is retried, and the retry finds its partial stored already.
type failAfterCommit struct {
	bucket int32
	mu     sync.Mutex
	conns  map[string]*grpc.ClientConn
	failed bool
	ran    map[string]int // worker id → attempts answered
}

func (f *failAfterCommit) RunTask(ctx context.Context, workerID, addr string, req *pb.RunTaskRequest) (*pb.RunTaskResponse, error) {
	f.mu.Lock()
	conn := f.conns[addr]
	if conn == nil {
		var err error
		if conn, err = grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials())); err != nil {
			f.mu.Unlock()
			return nil, err
		}
		f.conns[addr] = conn
	}
	f.mu.Unlock()
	resp, err := pb.NewWorkerServiceClient(conn).RunTask(ctx, req)
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		f.ran[workerID]++
	}
	if err == nil && req.GetBucket() == f.bucket && !f.failed {
		f.failed = true
		return nil, status.Error(codes.Unavailable, "connection lost after the partial was committed")
	}
	return resp, err
}

func (f *failAfterCommit) close() {
	for _, c := range f.conns {
		c.Close()
	}
}

// TestRollupOnCluster: a roll-up job of a day of hourly windows
// committed to S3, run on a coordinator and three workers over gRPC (one
// task per key range; output roots the test's bucket), commits exactly
// the rows of rollup.Compute (all four kinds of rows, exact unique
// users) with the meta of a roll-up, its tasks spread over several
// workers, though one task's first attempt is lost after its partial was
// committed; `clickstream rollup --coordinator` does the same for two
// days, keeping their sets (the set files of the roll-up in one
// process), and rolls their week up from the days' sets (--input-grain
// day), equal to rollup.Compute over the week's windows; bad roll-up
// specs are refused.
func TestRollupOnCluster(t *testing.T) {
	ctx := context.Background()
	s3 := laketest.S3Options()
	bucket := laketest.NewS3(t)
	base := bucket.URI() + "/hourly"
	day := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC) // a Monday
	events := clustertest.Events(5, 400, 20_000, day, day.Add(48*time.Hour))
	for hr := range 48 {
		w := aggregate.Window{From: day.Add(time.Duration(hr) * time.Hour), To: day.Add(time.Duration(hr+1) * time.Hour)}
		out, err := lake.Open(ctx, coordinator.WindowOut(base, w.From), s3)
		if err != nil {
			t.Fatal(err)
		}
		p := aggregate.Compute(events, w, 0)
		m := results.Meta{Job: "j", Run: "j-1", From: w.From, To: w.To, SessionTimeout: aggregate.DefaultSessionTimeout.String(), Final: true}
		if err := results.WriteSets(ctx, out, &m, p.UserSetEntries()); err != nil {
			t.Fatal(err)
		}
		if _, err := results.Commit(ctx, out, p.Result(w), m); err != nil {
			t.Fatal(err)
		}
	}
	bs, err := lake.Open(ctx, base, s3)
	if err != nil {
		t.Fatal(err)
	}
	windows, err := rollup.Windows(ctx, bs, s3, day, day.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	const shards = 4
	want, _, err := rollup.Compute(ctx, rollup.Config{Shards: shards}, schema.GrainDay, day, day.Add(24*time.Hour), windows)
	if err != nil {
		t.Fatal(err)
	}

	var published struct {
		sync.Mutex
		metas []results.Meta
	}
	runner := &failAfterCommit{bucket: 2, conns: map[string]*grpc.ClientConn{}, ran: map[string]int{}}
	t.Cleanup(runner.close)
	roots := []string{bucket.URI()}
	lc, err := startLocalCluster(ctx, localClusterConfig{Workers: 3, Parallelism: 1, Logger: testLogger(t), S3: s3, LakeRoots: anyFile, OutputRoots: roots,
		Coordinator: func(c *coordinator.Config) {
			c.Runner, c.OutputRoots = runner, roots
			c.Publishers = append(c.Publishers, coordinator.NewPublisher("probe", func(_ context.Context, out lake.Store, m results.Meta) error {
				published.Lock()
				defer published.Unlock()
				published.metas = append(published.metas, m)
				return nil
			}))
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(lc.Close)
	c := dialCluster(t, lc)

	outURI := rollup.OutURI(base+"/rollup", schema.GrainDay, day)
	spec := &pb.JobSpec{From: timestamppb.New(day), To: timestamppb.New(day.Add(24 * time.Hour)), OutUri: outURI,
		Rollup: &pb.RollupSpec{Grain: schema.GrainDay, WindowsUri: base, Shards: shards, MemoryBudget: 4096}}
	j := submitAndWait(t, c, spec)
	if j.GetState() != pb.JobState_JOB_STATE_SUCCEEDED {
		t.Fatalf("job %s: %s", coordinator.StateName(j.GetState()), j.GetError())
	}
	out, err := lake.Open(ctx, outURI, s3)
	if err != nil {
		t.Fatal(err)
	}
	got, meta, err := results.ReadResult(ctx, out)
	if err != nil {
		t.Fatal(err)
	}
	checkSameRows(t, got, want, schema.GrainDay)
	if meta.LargestSet == "" || meta.LargestSetUsers == 0 {
		t.Errorf("meta: largest set %q of %d users", meta.LargestSet, meta.LargestSetUsers)
	}
	if meta.Grain != schema.GrainDay || meta.Partitions != shards || len(meta.RollupOf) != 24 || !meta.Final || meta.Retries < 1 {
		t.Errorf("meta: grain %q, %d partitions, rolls up %d windows, final %v, %d retries; want day, %d, 24, final, a retry",
			meta.Grain, meta.Partitions, len(meta.RollupOf), meta.Final, meta.Retries, shards)
	}
	var pm results.Meta
	waitFor(t, "the roll-up published", func() bool {
		published.Lock()
		defer published.Unlock()
		if len(published.metas) > 0 {
			pm = published.metas[0]
		}
		return len(published.metas) == 1
	})
	if m := pm; m.Grain != schema.GrainDay || m.Run != meta.Run {
		t.Errorf("published %s run %s, committed %s", m.Grain, m.Run, meta.Run)
	}
	runner.mu.Lock()
	if !runner.failed || len(runner.ran) < 2 {
		t.Errorf("attempts answered per worker %v (an answer lost: %v): want tasks on 2 workers or more", runner.ran, runner.failed)
	}
	runner.mu.Unlock()

	// The command submits the same job and follows it.
	addr := lc.Coordinator.Addr()
	code, stdout, stderr := runArgs(t, "rollup", "--coordinator", addr, "--out", base, "--from", "2026-01-05T10:00:00Z", "--shards", "3")
	if code != 0 {
		t.Fatalf("rollup --coordinator: exit %d, %s %s", code, stdout, stderr)
	}
	// Its summary tells the exact/approximate split and the largest set.
	if !strings.Contains(stdout, "roll-up:     day; ") || !strings.Contains(stdout, " 0 approximate rows; largest set (all urls, all countries): ") ||
		!strings.Contains(stdout, "3 (key ranges)") {
		t.Errorf("rollup --coordinator printed %q", stdout)
	}
	got, meta2, err := results.ReadResult(ctx, out)
	if err != nil || meta2.Revision != meta.Revision+1 {
		t.Fatalf("after the command: revision %d (before %d), %v", meta2.Revision, meta.Revision, err)
	}
	checkSameRows(t, got, want, schema.GrainDay)
	if len(meta.Sets) != 0 {
		t.Errorf("the job without keep_sets kept %d set files", len(meta.Sets))
	}
	// The command keeps the day's sets (--keep-sets is the default):
	// those of the roll-up in one process, file for file.
	_, wantSets, _, err := rollup.ComputeSets(ctx, rollup.Config{Shards: 3, KeepSets: true}, schema.GrainDay, day, day.Add(24*time.Hour), windows)
	if err != nil {
		t.Fatal(err)
	}
	sets, err := results.ReadSets(ctx, out, meta2)
	if err != nil {
		t.Fatal(err)
	}
	if len(sets) != len(wantSets) || meta2.SetHashes == 0 {
		t.Fatalf("%d set files with %d hashes, in one process %d", len(sets), meta2.SetHashes, len(wantSets))
	}
	for i, key := range meta2.Sets {
		data, err := out.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(data, wantSets[i].Data) {
			t.Fatalf("set file %s differs from the roll-up's in one process", key)
		}
	}

	// The next day, then the week from the two days' sets: the rows of
	// the week rolled up from the windows.
	if code, stdout, stderr := runArgs(t, "rollup", "--coordinator", addr, "--out", base, "--from", "2026-01-06T00:00:00Z", "--shards", "2"); code != 0 {
		t.Fatalf("rollup --coordinator of the next day: exit %d, %s %s", code, stdout, stderr)
	}
	week := day.Add(7 * 24 * time.Hour)
	if code, stdout, stderr := runArgs(t, "rollup", "--coordinator", addr, "--out", base, "--grain", "week", "--input-grain", "day",
		"--from", "2026-01-07T00:00:00Z", "--allow-gaps", "--shards", "3", "--memory-budget", "4096"); code != 0 {
		t.Fatalf("rollup --coordinator of the week from its days: exit %d, %s %s", code, stdout, stderr)
	}
	weekWindows, err := rollup.Windows(ctx, bs, s3, day, week)
	if err != nil {
		t.Fatal(err)
	}
	wantWeek, _, err := rollup.Compute(ctx, rollup.Config{Shards: 1, AllowGaps: true}, schema.GrainWeek, day, week, weekWindows)
	if err != nil {
		t.Fatal(err)
	}
	wout, err := lake.Open(ctx, rollup.OutURI(base+"/rollup", schema.GrainWeek, day), s3)
	if err != nil {
		t.Fatal(err)
	}
	gotWeek, wmeta, err := results.ReadResult(ctx, wout)
	if err != nil {
		t.Fatal(err)
	}
	checkSameRows(t, gotWeek, wantWeek, schema.GrainWeek)
	if len(wmeta.RollupOf) != 2 || !strings.Contains(wmeta.RollupOf[0], "grain=day/period=20260105") || len(wmeta.Sets) == 0 {
		t.Errorf("the week rolls up %v, keeps %d set files: want the two days, and sets", wmeta.RollupOf, len(wmeta.Sets))
	}

	// Bad roll-up specs.
	for name, bad := range map[string]func(*pb.JobSpec){
		"grain":         func(s *pb.JobSpec) { s.Rollup.Grain = "fortnight" },
		"not a period":  func(s *pb.JobSpec) { s.To = timestamppb.New(day.Add(2 * time.Hour)) },
		"no shards":     func(s *pb.JobSpec) { s.Rollup.Shards = 0 },
		"shards":        func(s *pb.JobSpec) { s.Rollup.Shards = 5000 },
		"budget":        func(s *pb.JobSpec) { s.Rollup.MemoryBudget = -1 },
		"lake":          func(s *pb.JobSpec) { s.LakeUri = base },
		"no windows":    func(s *pb.JobSpec) { s.Rollup.WindowsUri = "" },
		"windows in it": func(s *pb.JobSpec) { s.Rollup.WindowsUri = outURI + "/x" },
		"windows out":   func(s *pb.JobSpec) { s.Rollup.WindowsUri = "file:///etc" },
		"input grain":   func(s *pb.JobSpec) { s.Rollup.InputGrain = "hour" },
		"days into day": func(s *pb.JobSpec) { s.Rollup.InputGrain = schema.GrainDay },
	} {
		s := proto.Clone(spec).(*pb.JobSpec)
		bad(s)
		if _, err := c.Submit(ctx, s); status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s: err %v, want InvalidArgument", name, err)
		}
	}
}

func checkSameRows(t *testing.T, got, want []schema.Row, grain string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d rows, rollup.Compute %d", len(got), len(want))
	}
	kinds := map[[2]bool]bool{}
	for i := range got {
		if !schema.EqualMetrics(got[i], want[i]) || got[i].Grain != grain || got[i].Approximate {
			t.Fatalf("row %d: %+v, rollup.Compute %+v", i, got[i], want[i])
		}
		kinds[[2]bool{got[i].URL == schema.All, got[i].Country == schema.All}] = true
	}
	if len(kinds) != 4 {
		t.Fatalf("rows of %d kinds, want 4", len(kinds))
	}
}
