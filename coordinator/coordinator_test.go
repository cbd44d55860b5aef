package coordinator

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/dataco/clickstream/internal/cluster"
	"github.com/dataco/clickstream/internal/cluster/clustertest"
	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/lake/laketest"
	"github.com/dataco/clickstream/internal/mtls"
	"github.com/dataco/clickstream/internal/obs"
	"github.com/dataco/clickstream/internal/results"
	"github.com/dataco/clickstream/internal/schema"
	pb "github.com/dataco/clickstream/proto/clickstream/v1"
)

func timestampOf(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }

// checkResult compares the committed result with the reference.
func (h *harness) checkResult(j *pb.Job) results.Meta {
	h.t.Helper()
	if j.GetState() != pb.JobState_JOB_STATE_SUCCEEDED {
		h.t.Fatalf("job %s %s: %s", j.GetId(), StateName(j.GetState()), j.GetError())
	}
	got, meta, err := results.ReadResult(context.Background(), h.out)
	if err != nil {
		h.t.Fatal(err)
	}
	want := clustertest.Reference(h.events, tFrom, tTo, 30*time.Minute)
	if !slices.EqualFunc(got, want, schema.EqualMetrics) {
		h.t.Fatalf("result differs from the reference: %d rows, want %d", len(got), len(want))
	}
	// A job submitted by hand knows no watermark: not final.
	for _, r := range got {
		if r.Revision != meta.Revision || r.Revision < 1 || !r.ComputedAt.Equal(meta.ComputedAt) || r.Watermark != nil || r.Final || r.EventsSnapshot != meta.EventsSnapshot {
			h.t.Fatalf("row %+v: provenance other than its result's %+v", r, meta)
		}
	}
	if meta.Job != j.GetId() || meta.Rows != j.GetResult().GetRows() {
		h.t.Errorf("meta job %s rows %d; status job %s rows %d", meta.Job, meta.Rows, j.GetId(), j.GetResult().GetRows())
	}
	return meta
}

func TestJobMatchesReference(t *testing.T) {
	h := newHarness(t, 8, 100, 4000)
	for i := range 3 {
		h.worker([]string{"a", "b", "c"}[i], 2, nil)
	}
	c := h.coordinator(nil)
	cl := h.client(c)
	j := h.run(cl, h.spec())
	meta := h.checkResult(j)
	p := j.GetProgress()
	if p.GetTasksTotal() != 8 || p.GetTasksDone() != 8 || p.GetAttempts() != 8 || p.GetRetries() != 0 || p.GetBackups() != 0 {
		t.Errorf("progress %+v", p)
	}
	if meta.EventsRead != p.GetEventsRead() || meta.EventsRead == 0 {
		t.Errorf("events read: meta %d, progress %d", meta.EventsRead, p.GetEventsRead())
	}
	if !c.IsLeader() || j.GetLeader() != c.Addr() {
		t.Errorf("leader %q, want %q", j.GetLeader(), c.Addr())
	}
	// Finished jobs keep no task or lease keys in etcd.
	for _, prefix := range []string{h.keys.Tasks(j.GetId()), h.keys.Leases(j.GetId())} {
		resp, err := h.cli.Get(context.Background(), prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil || resp.Count != 0 {
			t.Errorf("%s: %d keys left (err %v)", prefix, resp.Count, err)
		}
	}
	// List and Get agree.
	jobs, err := cl.List(context.Background(), 10)
	if err != nil || len(jobs) != 1 || jobs[0].GetId() != j.GetId() {
		t.Fatalf("list: %v %v", jobs, err)
	}
}

func TestSubmitValidation(t *testing.T) {
	h := newHarness(t, 4, 0, 0)
	c := h.coordinator(nil)
	cl := h.client(c)
	ctx := context.Background()
	noLake := laketest.NewFile(t)
	oldLake := laketest.NewFile(t)
	if err := oldLake.Put(ctx, lake.MetaKey, []byte(`{"version":1,"buckets":4,"created":"2026-01-01T00:00:00Z"}`)); err != nil {
		t.Fatal(err)
	}
	blocker := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		spec func(*pb.JobSpec)
		code codes.Code
		want string
	}{
		{"to before from", func(s *pb.JobSpec) { s.From, s.To = s.To, s.From }, codes.InvalidArgument, "to must be after from"},
		{"empty window", func(s *pb.JobSpec) { s.To = s.From }, codes.InvalidArgument, "to must be after from"},
		{"no from", func(s *pb.JobSpec) { s.From = nil }, codes.InvalidArgument, "from and to are required"},
		{"no out", func(s *pb.JobSpec) { s.OutUri = "" }, codes.InvalidArgument, "no output URI"},
		{"bad out", func(s *pb.JobSpec) { s.OutUri = "ftp://x" }, codes.InvalidArgument, "unsupported store URI"},
		{"out is lake", func(s *pb.JobSpec) { s.OutUri = h.src.URI() }, codes.InvalidArgument, "overlaps the lake"},
		{"out inside the lake", func(s *pb.JobSpec) { s.OutUri = h.src.URI() + "/results" }, codes.InvalidArgument, "overlaps the lake"},
		// A store that cannot be opened now (here: a folder under a file)
		// is not an invalid job: it may work later.
		{"out unavailable", func(s *pb.JobSpec) { s.OutUri = "file://" + blocker + "/out" }, codes.Unavailable, "not a directory"},
		{"not a lake", func(s *pb.JobSpec) { s.LakeUri = noLake.URI() }, codes.FailedPrecondition, "has no _lake.json"},
		{"old layout lake", func(s *pb.JobSpec) { s.LakeUri = oldLake.URI() }, codes.FailedPrecondition, "older layout (1: FNV buckets, timestamp_ms files)"},
		{"negative timeout", func(s *pb.JobSpec) { s.SessionTimeout = durationpb.New(-time.Second) }, codes.InvalidArgument, "negative session timeout"},
		{"attempts", func(s *pb.JobSpec) { s.MaxAttempts = 1000 }, codes.InvalidArgument, "max attempts"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := h.spec()
			tc.spec(spec)
			_, err := c.SubmitJob(ctx, &pb.SubmitJobRequest{Spec: spec})
			if status.Code(err) != tc.code || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %v containing %q", err, tc.code, tc.want)
			}
			if _, err := cl.Submit(ctx, spec); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("client err = %v", err)
			}
		})
	}
	if _, err := cl.Get(ctx, "no-such-job"); status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), "no such job") {
		t.Errorf("get unknown job: %v", err)
	}
	if _, err := cl.Get(ctx, "../etc"); err == nil {
		t.Errorf("get bad id: no error")
	}
}

func TestEmptyWindow(t *testing.T) {
	h := newHarness(t, 4, 20, 500)
	h.worker("a", 2, nil)
	cl := h.client(h.coordinator(nil))
	spec := h.spec()
	spec.From, spec.To = timestampOf(tFrom.AddDate(0, 0, -7)), timestampOf(tFrom.AddDate(0, 0, -6))
	j := h.run(cl, spec)
	if j.GetState() != pb.JobState_JOB_STATE_SUCCEEDED || !strings.Contains(j.GetWarning(), "no committed events") {
		t.Fatalf("state %v, warning %q, error %q", j.GetState(), j.GetWarning(), j.GetError())
	}
	rows, meta, err := results.ReadResult(context.Background(), h.out)
	if err != nil || len(rows) != 0 || meta.Warning == "" || len(meta.Files) != 1 {
		t.Fatalf("rows %d meta %+v err %v", len(rows), meta, err)
	}
}

func TestFailingTask(t *testing.T) {
	h := newHarness(t, 4, 50, 1000)
	var calls atomic.Int32
	// Bucket 2 fails the first time only; bucket 3 always.
	behave := func(alwaysFail bool) func(context.Context, *pb.RunTaskRequest) (*pb.RunTaskResponse, error) {
		return func(ctx context.Context, req *pb.RunTaskRequest) (*pb.RunTaskResponse, error) {
			if req.GetBucket() == 3 && alwaysFail {
				return nil, status.Error(codes.DataLoss, "corrupt file "+req.GetFileKeys()[0])
			}
			if req.GetBucket() == 2 && calls.Add(1) == 1 {
				return nil, status.Error(codes.Internal, "transient")
			}
			return computeTask(ctx, req)
		}
	}
	h.worker("a", 2, behave(false))
	h.worker("b", 2, behave(false))
	cl := h.client(h.coordinator(nil))
	j := h.run(cl, h.spec())
	h.checkResult(j)
	if j.GetProgress().GetRetries() != 1 {
		t.Errorf("retries = %d, want 1", j.GetProgress().GetRetries())
	}

	// Now bucket 3 fails every time: the job fails after MaxAttempts.
	h2 := newHarness(t, 4, 50, 1000)
	w := h2.worker("a", 2, behave(true))
	cl2 := h2.client(h2.coordinator(nil))
	spec := h2.spec()
	spec.MaxAttempts = 2
	j = h2.run(cl2, spec)
	if j.GetState() != pb.JobState_JOB_STATE_FAILED || !strings.Contains(j.GetError(), "failed 2 times") ||
		!strings.Contains(j.GetError(), "corrupt file") || !strings.Contains(j.GetError(), "bucket 3") {
		t.Fatalf("state %v, error %q", j.GetState(), j.GetError())
	}
	if _, err := results.ReadMeta(context.Background(), h2.out); !errors.Is(err, results.ErrNoResult) {
		t.Errorf("a failed job left a result: %v", err)
	}
	_ = w
}

// TestWorkerDeath: a worker that dies mid-task loses its lease, and the
// leader re-leases its tasks to the living.
func TestWorkerDeath(t *testing.T) {
	h := newHarness(t, 6, 50, 2000)
	doomed := h.worker("doomed", 2, hang)
	h.worker("ok", 1, slow(20*time.Millisecond))
	c := h.coordinator(nil)
	cl := h.client(c)
	ctx := context.Background()
	j, err := cl.Submit(ctx, h.spec())
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the doomed worker to hold tasks", 10*time.Second, func() bool { return doomed.running.Load() == 2 })
	h.kill(doomed)
	j, err = cl.Wait(ctx, j.GetId(), nil)
	if err != nil {
		t.Fatal(err)
	}
	h.checkResult(j)
	if j.GetProgress().GetRetries() < 2 {
		t.Errorf("retries = %d, want >= 2", j.GetProgress().GetRetries())
	}
}

// TestUnavailableWorker: RunTask failing with Unavailable re-leases the
// task elsewhere without counting it as a failure of the task.
func TestUnavailableWorker(t *testing.T) {
	h := newHarness(t, 4, 50, 1000)
	h.worker("gone", 4, func(context.Context, *pb.RunTaskRequest) (*pb.RunTaskResponse, error) {
		return nil, status.Error(codes.Unavailable, "connection refused")
	})
	h.worker("ok", 1, nil)
	cl := h.client(h.coordinator(func(c *Config) { c.MaxAttempts = 1 }))
	j := h.run(cl, h.spec())
	h.checkResult(j)
}

// TestBackupTasks: a straggling worker's tasks get backup attempts near
// the end of the job, and the first commit wins.
func TestBackupTasks(t *testing.T) {
	h := newHarness(t, 8, 100, 3000)
	straggler := h.worker("straggler", 1, slow(time.Minute))
	h.worker("fast", 4, nil)
	cl := h.client(h.coordinator(func(c *Config) { c.BackupAfter = 200 * time.Millisecond }))
	start := time.Now()
	j := h.run(cl, h.spec())
	h.checkResult(j)
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("job took %v: backups did not help", d)
	}
	if j.GetProgress().GetBackups() < 1 || straggler.calls.Load() < 1 {
		t.Errorf("backups = %d, straggler calls = %d", j.GetProgress().GetBackups(), straggler.calls.Load())
	}
	waitUntil(t, "the straggler's attempt to be cancelled", 5*time.Second, func() bool { return straggler.running.Load() == 0 })
}

// TestTaskTimeout: an attempt on a worker that is alive but stuck fails
// after --task-timeout and the task runs again on another worker; when
// every attempt times out, the job fails saying so, after MaxAttempts.
func TestTaskTimeout(t *testing.T) {
	t.Run("recovers", func(t *testing.T) {
		h := newHarness(t, 4, 50, 1000)
		stuck := h.worker("stuck", 2, hang)
		h.worker("ok", 2, nil)
		// Long enough for a real attempt on a slow machine under -race.
		cl := h.client(h.coordinator(func(c *Config) { c.TaskTimeout = 2 * time.Second }))
		j := h.run(cl, h.spec())
		h.checkResult(j)
		if stuck.calls.Load() == 0 {
			t.Fatal("the stuck worker got no task: nothing was tested")
		}
		waitUntil(t, "the stuck attempts to be cancelled", 5*time.Second, func() bool { return stuck.running.Load() == 0 })
	})
	t.Run("fails", func(t *testing.T) {
		h := newHarness(t, 2, 20, 300)
		stuck := h.worker("stuck", 4, hang)
		cl := h.client(h.coordinator(func(c *Config) { c.TaskTimeout = 200 * time.Millisecond; c.MaxAttempts = 2 }))
		j := h.run(cl, h.spec())
		if j.GetState() != pb.JobState_JOB_STATE_FAILED || !strings.Contains(j.GetError(), "timed out") ||
			!strings.Contains(j.GetError(), "failed 2 times") {
			t.Fatalf("state %v, error %q", j.GetState(), j.GetError())
		}
		waitUntil(t, "the stuck attempts to be cancelled", 5*time.Second, func() bool { return stuck.running.Load() == 0 })
	})
}

func TestCancel(t *testing.T) {
	h := newHarness(t, 4, 50, 1000)
	w := h.worker("a", 4, hang)
	c := h.coordinator(nil)
	cl := h.client(c)
	ctx := context.Background()
	j, err := cl.Submit(ctx, h.spec())
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "tasks to run", 10*time.Second, func() bool { return w.running.Load() == 4 })
	if _, err := cl.Cancel(ctx, j.GetId()); err != nil {
		t.Fatal(err)
	}
	j, err = cl.Wait(ctx, j.GetId(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if j.GetState() != pb.JobState_JOB_STATE_CANCELLED {
		t.Fatalf("state %v", j.GetState())
	}
	waitUntil(t, "attempts to be cancelled", 5*time.Second, func() bool { return w.running.Load() == 0 })
	if _, err := cl.Cancel(ctx, j.GetId()); err == nil || !strings.Contains(err.Error(), "already finished") {
		t.Errorf("second cancel: %v", err)
	}
}

// TestLeaderFailover: the leader goes away mid-job; a standby takes over,
// joins the attempts still running, and finishes the job.
func TestLeaderFailover(t *testing.T) {
	h := newHarness(t, 8, 100, 3000)
	h.worker("a", 2, slow(150*time.Millisecond))
	h.worker("b", 2, slow(150*time.Millisecond))
	first := h.coordinator(nil)
	waitUntil(t, "a leader", 10*time.Second, first.IsLeader)
	standby := h.coordinator(nil)
	clFirst, clStandby := h.client(first), h.client(standby)
	ctx := context.Background()
	// Submit through the standby: it records the job; the leader runs it.
	j, err := clStandby.Submit(ctx, h.spec())
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "some progress", 20*time.Second, func() bool {
		j, err := clFirst.Get(ctx, j.GetId())
		return err == nil && j.GetProgress().GetTasksDone() >= 2
	})
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	j, err = clStandby.Wait(ctx, j.GetId(), nil)
	if err != nil {
		t.Fatal(err)
	}
	h.checkResult(j)
	if !standby.IsLeader() || j.GetLeader() != standby.Addr() {
		t.Errorf("leader %q, standby %q (leading: %v)", j.GetLeader(), standby.Addr(), standby.IsLeader())
	}
}

// TestResumeCommittedTasks: a new leader does not take a partial
// committed but never recorded as done on trust: it joins the task's
// running attempt again (its worker lives), which finds the partial
// committed and answers its digest; each task is called once.
func TestResumeCommittedTasks(t *testing.T) {
	h := newHarness(t, 4, 50, 1000)
	var blocked atomic.Bool
	blocked.Store(true)
	w := h.worker("a", 4, func(ctx context.Context, req *pb.RunTaskRequest) (*pb.RunTaskResponse, error) {
		if blocked.Load() {
			// Commit, then hang as if the leader died before hearing back.
			if _, err := computeTask(ctx, req); err != nil {
				return nil, err
			}
			return hang(ctx, req)
		}
		return computeTask(ctx, req)
	})
	first := h.coordinator(nil)
	cl := h.client(first)
	ctx := context.Background()
	j, err := cl.Submit(ctx, h.spec())
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "partials committed", 10*time.Second, func() bool {
		objs, _ := h.out.List(ctx, results.PartialsPrefix(j.GetId()))
		return len(objs) == 4
	})
	first.Close()
	blocked.Store(false)
	callsBefore := w.calls.Load()
	second := h.coordinator(nil)
	j, err = h.client(second).Wait(ctx, j.GetId(), nil)
	if err != nil {
		t.Fatal(err)
	}
	h.checkResult(j)
	// The attempts' lease keys were still there (the worker lives): the new
	// leader joins them again, each once.
	if n := w.calls.Load() - callsBefore; n > 4 {
		t.Errorf("%d calls after the takeover, want at most 4", n)
	}
}

// TestPublishers: every publisher runs on each succeeded job's result, in
// order; each outcome is recorded apart, and one publisher's error fails
// neither the job nor the other publishers.
func TestPublishers(t *testing.T) {
	h := newHarness(t, 4, 50, 1000)
	h.worker("a", 4, nil)
	var mu sync.Mutex
	var calls []string // publisher:job, in call order
	fail := atomic.Bool{}
	publisher := func(name string, failing bool) Publisher {
		return NewPublisher(name, func(ctx context.Context, out lake.Store, meta results.Meta) error {
			mu.Lock()
			calls = append(calls, name+":"+meta.Job)
			mu.Unlock()
			if failing && fail.Load() {
				return errors.New("elasticsearch said no")
			}
			return nil
		})
	}
	c := h.coordinator(func(c *Config) {
		c.Publishers = []Publisher{publisher("search", true), publisher("archive", false)}
	})
	cl := h.client(c)
	j := h.run(cl, h.spec())
	h.checkResult(j)
	ctx := context.Background()
	waitUntil(t, "publications", 10*time.Second, func() bool {
		j, _ = cl.Get(ctx, j.GetId())
		return j.GetIndexerStatus() == indexOK
	})
	want := []string{"search:" + j.GetId(), "archive:" + j.GetId()}
	mu.Lock()
	if !slices.Equal(calls, want) {
		t.Fatalf("publisher calls %v, want %v", calls, want)
	}
	calls = nil
	mu.Unlock()
	if got := publicationsOf(j); got != "search=ok archive=ok" {
		t.Fatalf("publications %q", got)
	}

	fail.Store(true)
	j = h.run(cl, h.spec())
	waitUntil(t, "a failed publication", 10*time.Second, func() bool {
		j, _ = cl.Get(ctx, j.GetId())
		return j.GetIndexerStatus() != indexPending && j.GetIndexerStatus() != ""
	})
	if got, want := j.GetIndexerStatus(), "error: search: elasticsearch said no"; got != want {
		t.Errorf("summary %q, want %q", got, want)
	}
	if got, want := publicationsOf(j), "search=error: elasticsearch said no archive=ok"; got != want {
		t.Errorf("publications %q, want %q", got, want)
	}
	if j.GetState() != pb.JobState_JOB_STATE_SUCCEEDED {
		t.Errorf("state %v: a publisher's error must not fail the job", j.GetState())
	}
}

// rowsPublisher records the rows it was handed.
type rowsPublisher struct {
	mu   sync.Mutex
	rows []schema.Row
	read int // results read back instead
}

func (p *rowsPublisher) Name() string { return "rows" }

func (p *rowsPublisher) Publish(ctx context.Context, out lake.Store, meta results.Meta) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.read++
	return nil
}

func (p *rowsPublisher) PublishRows(ctx context.Context, out lake.Store, meta results.Meta, rows []schema.Row) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rows = rows
	return nil
}

// TestRowsPublisher: a publisher that takes rows gets the merged result
// from the leader that committed it, equal to the committed rows, without
// reading it back.
func TestRowsPublisher(t *testing.T) {
	h := newHarness(t, 4, 50, 1000)
	h.worker("a", 4, nil)
	p := &rowsPublisher{}
	c := h.coordinator(func(c *Config) { c.Publishers = []Publisher{p} })
	cl := h.client(c)
	j := h.run(cl, h.spec())
	h.checkResult(j)
	waitUntil(t, "the publication", 10*time.Second, func() bool {
		j, _ = cl.Get(context.Background(), j.GetId())
		return j.GetIndexerStatus() == indexOK
	})
	out, err := lake.Open(context.Background(), h.spec().GetOutUri(), lake.S3Options{})
	if err != nil {
		t.Fatal(err)
	}
	committed, _, err := results.ReadResult(context.Background(), out)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.read != 0 || len(committed) == 0 || !slices.EqualFunc(p.rows, committed, schema.Equal) {
		t.Errorf("the publisher read the result back %d times and was handed %d rows; committed %d", p.read, len(p.rows), len(committed))
	}
}

func publicationsOf(j *pb.Job) string {
	var s []string
	for _, p := range j.GetPublications() {
		s = append(s, p.GetPublisher()+"="+p.GetStatus())
	}
	return strings.Join(s, " ")
}

func TestPublicationSummary(t *testing.T) {
	for _, tc := range []struct {
		in   []publication
		want string
	}{
		{nil, ""},
		{[]publication{{"a", indexOK}}, indexOK},
		{[]publication{{"a", indexOK}, {"b", indexPending}}, indexPending},
		{[]publication{{"a", "error: x"}, {"b", indexPending}}, indexPending},
		{[]publication{{"a", indexOK}, {"b", "error: x"}, {"c", "error: y"}}, "error: b: x"},
	} {
		if got := publicationSummary(tc.in); got != tc.want {
			t.Errorf("publicationSummary(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestPublisherNamesUnique(t *testing.T) {
	p := NewPublisher("x", func(context.Context, lake.Store, results.Meta) error { return nil })
	cfg := NewConfig()
	cfg.Etcd = "http://127.0.0.1:2379"
	cfg.Publishers = []Publisher{p, p}
	if err := cfg.Validate(); err == nil || !errors.Is(err, ErrConfig) {
		t.Fatalf("two publishers named x: %v", err)
	}
	cfg.Publishers = []Publisher{p}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("one publisher: %v", err)
	}
}

// TestOutputRoots: with --output-root, a job's output must lie at or below
// one of the roots, also once symbolic links are followed; a refused
// output creates nothing. A coordinator listening beyond loopback needs
// roots.
func TestOutputRoots(t *testing.T) {
	h := newHarness(t, 4, 50, 1000)
	h.worker("a", 4, nil)
	outDir := h.out.(*lake.FileStore).Dir()
	elsewhere := t.TempDir()
	if err := os.MkdirAll(filepath.Join(outDir, "allowed"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(elsewhere, filepath.Join(outDir, "allowed", "link")); err != nil {
		t.Fatal(err)
	}
	c := h.coordinator(func(cfg *Config) { cfg.OutputRoots = []string{h.out.URI() + "/allowed"} })
	cl := h.client(c)
	ctx := context.Background()
	for _, out := range []string{
		h.out.URI(), h.out.URI() + "/allowed-not", h.out.URI() + "/allowed/../x", "file:///tmp",
		h.out.URI() + "/allowed/link", h.out.URI() + "/allowed/link/x",
	} {
		s := h.spec()
		s.OutUri = out
		if _, err := cl.Submit(ctx, s); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "--output-root") {
			t.Errorf("output %s: %v, want InvalidArgument naming --output-root", out, err)
		}
	}
	for _, dir := range []string{filepath.Join(outDir, "x"), filepath.Join(outDir, "allowed-not"), filepath.Join(elsewhere, "x")} {
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a refused output created %s (%v)", dir, err)
		}
	}
	s := h.spec()
	s.OutUri = h.out.URI() + "/allowed/hourly"
	if j := h.run(cl, s); j.GetState() != pb.JobState_JOB_STATE_SUCCEEDED {
		t.Fatalf("an output under the root: %v %s", j.GetState(), j.GetError())
	}

	cfg := NewConfig()
	cfg.Etcd, cfg.Listen, cfg.Insecure = "http://e:2379", ":7400", true
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "--output-root") {
		t.Fatalf("a networked coordinator without --output-root: %v", err)
	}
	cfg.OutputRoots = []string{"s3://results"}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestOutputInUse: two jobs may not write the same output at once.
func TestOutputInUse(t *testing.T) {
	h := newHarness(t, 4, 50, 1000)
	w := h.worker("a", 4, hang)
	cl := h.client(h.coordinator(nil))
	ctx := context.Background()
	first, err := cl.Submit(ctx, h.spec())
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the first job to run", 10*time.Second, func() bool { return w.running.Load() > 0 })
	j := h.run(cl, h.spec())
	if j.GetState() != pb.JobState_JOB_STATE_FAILED || !strings.Contains(j.GetError(), "of job "+first.GetId()) {
		t.Fatalf("state %v error %q", j.GetState(), j.GetError())
	}
	// Below the running job's output overlaps it too; beside it does not.
	below := h.spec()
	below.OutUri = h.out.URI() + "/window=1"
	if j := h.run(cl, below); j.GetState() != pb.JobState_JOB_STATE_FAILED || !strings.Contains(j.GetError(), "overlaps the output") {
		t.Fatalf("an output below a running job's: state %v error %q", j.GetState(), j.GetError())
	}
	if _, err := cl.Cancel(ctx, first.GetId()); err != nil {
		t.Fatal(err)
	}
}

func TestRerunReplacesResult(t *testing.T) {
	h := newHarness(t, 4, 50, 1000)
	h.worker("a", 4, nil)
	cl := h.client(h.coordinator(nil))
	first := h.checkResult(h.run(cl, h.spec()))
	spec := h.spec()
	spec.Format = pb.OutputFormat_OUTPUT_FORMAT_CSV
	second := h.checkResult(h.run(cl, spec))
	j := h.run(cl, h.spec())
	third := h.checkResult(j)
	// Superseded runs are pruned after success is recorded.
	waitUntil(t, "the third job cleaned up", 10*time.Second, func() bool { return h.record(j.GetId()).Cleaned })
	if second.Previous != first.Run || third.Previous != second.Run || third.Format != results.NDJSON {
		t.Errorf("runs: %s <- %s <- %s; previous %q %q", first.Run, second.Run, third.Run, second.Previous, third.Previous)
	}
	// Each job that writes the output is the next revision (a CSV one
	// between them included).
	if first.Revision != 1 || second.Revision != 2 || third.Revision != 3 {
		t.Errorf("revisions %d, %d, %d; want 1, 2, 3", first.Revision, second.Revision, third.Revision)
	}
	// Its status says so; a job submitted by hand is not final.
	if r := j.GetResult(); r.GetRevision() != 3 || r.GetFinal() {
		t.Errorf("status result: revision %d, final %v", r.GetRevision(), r.GetFinal())
	}
	var status bytes.Buffer
	FormatStatus(&status, j)
	if !strings.Contains(status.String(), "revision 3 (provisional)") {
		t.Errorf("status:\n%s", status.String())
	}
	objs, err := h.out.List(context.Background(), results.RunsPrefix)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if strings.HasPrefix(o.Key, results.RunsPrefix+first.Run+"/") {
			t.Errorf("run %s not pruned: %s", first.Run, o.Key)
		}
	}
}

// TestJobRetention: the leader deletes the records of jobs finished longer
// ago than JobRetention, and only those.
func TestJobRetention(t *testing.T) {
	h := newHarness(t, 4, 50, 1000)
	ok := h.worker("ok", 2, nil)
	c := h.coordinator(func(c *Config) {
		c.JobRetention = 1500 * time.Millisecond
		c.pruneInterval = 100 * time.Millisecond
	})
	cl := h.client(c)
	ctx := context.Background()
	done := h.run(cl, h.spec())
	h.checkResult(done)
	if _, err := cl.Get(ctx, done.GetId()); err != nil {
		t.Fatalf("a job just finished is gone already: %v", err)
	}
	// A job that does not finish: its record stays whatever its age.
	hanger := h.worker("hanger", 4, hang)
	h.kill(ok)
	running, err := cl.Submit(ctx, h.spec())
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the second job's tasks to run", 10*time.Second, func() bool { return hanger.running.Load() > 0 })
	waitUntil(t, "the finished job's record to expire", 15*time.Second, func() bool {
		_, err := cl.Get(ctx, done.GetId())
		return status.Code(err) == codes.NotFound
	})
	time.Sleep(2 * time.Second) // older than the retention now, but running
	if j, err := cl.Get(ctx, running.GetId()); err != nil || j.GetState() != pb.JobState_JOB_STATE_RUNNING {
		t.Fatalf("running job: %v, %v", j.GetState(), err)
	}
	var m dto.Metric
	if err := c.metrics.jobsPruned.Write(&m); err != nil || m.GetCounter().GetValue() != 1 {
		t.Fatalf("jobs pruned: %v (%v), want 1", m.GetCounter().GetValue(), err)
	}
}

// TestPeriodicVacuum: with --vacuum-every the leader deletes lake files no
// manifest names once older than --vacuum-min-age, and nothing else: a
// younger orphan stays, and so does every committed file however old.
func TestPeriodicVacuum(t *testing.T) {
	h := newHarness(t, 4, 50, 1000)
	h.worker("ok", 2, nil)
	ctx := context.Background()
	fs := h.src.(*lake.FileStore)
	p := lake.Partition{Hour: tFrom, Bucket: 1}
	old := lake.DataFileKey(p, "test.clicks.0", 99, "w9.1", ".parquet")
	young := lake.DataFileKey(p, "test.clicks.0", 99, "w9.2", ".parquet")
	for _, k := range []string{old, young} {
		if err := h.src.Put(ctx, k, []byte("left by a failed commit")); err != nil {
			t.Fatal(err)
		}
	}
	// Everything but the young orphan is a day old.
	dayAgo := time.Now().Add(-24 * time.Hour)
	objs, err := h.src.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if o.Key != young {
			if err := os.Chtimes(filepath.Join(fs.Dir(), filepath.FromSlash(o.Key)), dayAgo, dayAgo); err != nil {
				t.Fatal(err)
			}
		}
	}
	c := h.coordinator(func(c *Config) {
		c.VacuumEvery = 100 * time.Millisecond
		c.VacuumMinAge = time.Hour
	})
	waitUntil(t, "the old orphan to be vacuumed", 15*time.Second, func() bool {
		_, err := h.src.Get(ctx, old)
		return errors.Is(err, lake.ErrNotExist)
	})
	if _, err := h.src.Get(ctx, young); err != nil {
		t.Fatalf("the young orphan: %v", err)
	}
	deleted := func() float64 {
		var m dto.Metric
		if err := c.metrics.vacuumDeleted.Write(&m); err != nil {
			t.Fatal(err)
		}
		return m.GetCounter().GetValue()
	}
	// The count follows the deletion.
	waitUntil(t, "the deletion counted", 5*time.Second, func() bool { return deleted() >= 1 })
	time.Sleep(300 * time.Millisecond) // a few more vacuums
	if n := deleted(); n != 1 {
		t.Fatalf("files vacuumed: %v, want 1", n)
	}
	h.checkResult(h.run(h.client(c), h.spec())) // every committed file is still there
}

// TestMaintenanceRunsOnTheLeader: a maintenance task runs periodically
// on the leader, and a failing run is counted and tried again.
func TestMaintenanceRunsOnTheLeader(t *testing.T) {
	h := newHarness(t, 2, 10, 100)
	var runs atomic.Int64
	c := h.coordinator(func(c *Config) {
		c.Maintenance = []Maintenance{{Name: "test-task", Every: 50 * time.Millisecond, Run: func(context.Context, *slog.Logger) error {
			if runs.Add(1)%2 == 1 {
				return errors.New("odd runs fail")
			}
			return nil
		}}}
	})
	waitUntil(t, "the leader to run its maintenance four times", 15*time.Second, func() bool { return runs.Load() >= 4 })
	var m dto.Metric
	if err := c.metrics.maintenanceFailures.WithLabelValues("test-task").Write(&m); err != nil {
		t.Fatal(err)
	}
	if f := m.GetCounter().GetValue(); f < 2 {
		t.Errorf("%v failures counted after %d runs, half of them failing", f, runs.Load())
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		adjust func(*Config)
		want   string // in the error; "" for valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"vacuum", func(c *Config) { c.VacuumEvery, c.Lake = 24*time.Hour, "file:///lake" }, ""},
		{"vacuum without lake", func(c *Config) { c.VacuumEvery = time.Hour }, "--vacuum-every needs --lake"},
		{"maintenance without interval", func(c *Config) {
			c.Maintenance = []Maintenance{{Name: "x", Run: func(context.Context, *slog.Logger) error { return nil }}}
		}, "maintenance task"},
		{"vacuum too eager", func(c *Config) { c.VacuumEvery, c.VacuumMinAge, c.Lake = time.Hour, time.Minute, "file:///lake" }, "--vacuum-min-age"},
		{"negative task timeout", func(c *Config) { c.TaskTimeout = -time.Second }, "task timeout"},
		{"listen beyond loopback", func(c *Config) { c.Etcd, c.Listen = "http://e:2379", ":7400" }, "--listen :7400"},
		{"metrics beyond loopback", func(c *Config) { c.Etcd, c.MetricsListen = "http://e:2379", "0.0.0.0:9100" }, "--metrics-listen 0.0.0.0:9100"},
		{"UI beyond loopback", func(c *Config) { c.Etcd, c.HTTPListen = "http://e:2379", ":7480" }, "--http-listen :7480"},
		{"UI beyond loopback over TLS", func(c *Config) {
			c.Etcd, c.HTTPListen, c.TLS = "http://e:2379", ":7480", mtls.Files{CA: "/ca.pem", Cert: "/c.pem", Key: "/k.pem"}
		}, ""},
		{"no UI", func(c *Config) { c.HTTPListen = "" }, ""},
		{"profiles on the UI beyond loopback", func(c *Config) {
			c.Etcd, c.HTTPListen, c.Pprof, c.TLS = "http://e:2379", ":7480", true, mtls.Files{CA: "/ca.pem", Cert: "/c.pem", Key: "/k.pem"}
		}, "--pprof"},
		{"beyond loopback with --insecure", func(c *Config) {
			c.Etcd, c.Listen, c.MetricsListen, c.Insecure, c.OutputRoots = "http://e:2379", ":7400", ":9100", true, []string{"s3://results"}
		}, ""},
		{"default session timeout over the limit", func(c *Config) { c.SessionTimeout = 48 * time.Hour }, "--max-session-timeout"},
		{"periodic window over the limit", func(c *Config) {
			c.Schedule = NewSchedule()
			c.Schedule.Enabled, c.Schedule.Out, c.Schedule.Window, c.Lake = true, "file:///out", 32*24*time.Hour, "file:///lake"
		}, "--max-window"},
		{"periodic output outside the roots", func(c *Config) {
			c.Schedule = NewSchedule()
			c.Schedule.Enabled, c.Schedule.Out, c.Lake, c.OutputRoots = true, "file:///out", "file:///lake", []string{"file:///results"}
		}, "--output-root"},
		{"periodic output in the lake", func(c *Config) {
			c.Schedule = NewSchedule()
			c.Schedule.Enabled, c.Schedule.Out, c.Lake = true, "file:///lake/out", "file:///lake"
		}, "overlaps the lake"},
		{"embedded etcd beyond loopback", func(c *Config) { c.EtcdListen, c.Insecure = "0.0.0.0:2379", true }, "--etcd-listen"},
		{"embedded etcd with TLS", func(c *Config) { c.EtcdAuth.TLS.CA = "/ca.pem" }, "need --etcd"},
		{"etcd over TLS", func(c *Config) {
			c.Etcd, c.EtcdAuth.TLS = "https://e:2379", cluster.EtcdTLS{CA: "/ca.pem", Cert: "/c.pem", Key: "/k.pem"}
		}, ""},
		{"https etcd without its CA", func(c *Config) { c.Etcd = "https://e:2379" }, "--etcd-ca"},
		{"negative retention", func(c *Config) { c.JobRetention = -time.Second }, "job retention"},
		{"no planners", func(c *Config) { c.PlanningParallelism = 0 }, "--planning-parallelism"},
		{"negative retry", func(c *Config) {
			c.Schedule = NewSchedule()
			c.Schedule.Enabled, c.Schedule.Out, c.Schedule.RetryFailed, c.Lake = true, "file:///out", -time.Second, "file:///lake"
		}, "--schedule-retry-failed"},
	} {
		cfg := NewConfig()
		tc.adjust(&cfg)
		err := cfg.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want ErrConfig mentioning %q", tc.name, err, tc.want)
		}
	}
}

// suspectWorker adds the worker "a-flaky" to h: its first call fails as
// if it were gone, and it answers no probe until its probe is reset.
func suspectWorker(h *harness) *fakeWorker {
	var flaky *fakeWorker
	flaky = h.worker("a-flaky", 1, func(ctx context.Context, req *pb.RunTaskRequest) (*pb.RunTaskResponse, error) {
		if flaky.calls.Load() == 1 {
			return nil, status.Error(codes.Unavailable, "connection refused")
		}
		return computeTask(ctx, req)
	})
	deaf := func(context.Context) error { return status.Error(codes.Unavailable, "connection refused") }
	flaky.probe.Store(&deaf)
	return flaky
}

// TestSuspectWorkerGetsNoTask: a worker whose call failed as if it were
// gone gets no further task, however long it keeps its registration,
// while it does not answer the leader's probes; once it answers, it gets
// tasks again. The other worker's tasks wait for those probes, not for
// a time.
func TestSuspectWorkerGetsNoTask(t *testing.T) {
	h := newHarness(t, 8, 50, 1000)
	flaky := suspectWorker(h)
	var gate atomic.Pointer[func() bool]
	until := func(cond func() bool) { gate.Store(&cond) }
	until(func() bool { return flaky.probes.Load() >= 3 })
	h.worker("b-ok", 1, func(ctx context.Context, req *pb.RunTaskRequest) (*pb.RunTaskResponse, error) {
		for !(*gate.Load())() {
			select {
			case <-ctx.Done():
				return nil, status.FromContextError(ctx.Err()).Err()
			case <-time.After(10 * time.Millisecond):
			}
		}
		return computeTask(ctx, req)
	})
	cl := h.client(h.coordinator(nil))
	h.checkResult(h.run(cl, h.spec()))
	if n := flaky.calls.Load(); n != 1 {
		t.Fatalf("the suspect worker got %d calls, want 1 (the one that failed)", n)
	}
	// It answers now: it gets tasks again.
	flaky.probe.Store(nil)
	until(func() bool { return flaky.calls.Load() >= 2 })
	h.checkResult(h.run(cl, h.spec()))
}

// TestSuspectWorkerBackOnRegistration: a suspect worker that never answers
// a probe gets tasks again once it writes its registration again (a
// worker does when its task counts change): it is alive.
func TestSuspectWorkerBackOnRegistration(t *testing.T) {
	h := newHarness(t, 8, 50, 1000)
	flaky := suspectWorker(h)
	var registered atomic.Bool
	h.worker("b-ok", 1, func(ctx context.Context, req *pb.RunTaskRequest) (*pb.RunTaskResponse, error) {
		// Hold the job until the suspect was probed, then registered
		// again, and got a task since.
		for flaky.probes.Load() < 2 || flaky.calls.Load() < 2 {
			if flaky.probes.Load() >= 2 && registered.CompareAndSwap(false, true) {
				info := cluster.WorkerInfo{ID: flaky.id, Addr: flaky.addr, Parallelism: 1, TasksFailed: 1}
				if _, err := h.cli.Put(ctx, h.keys.Worker(flaky.id), encode(info), clientv3.WithLease(flaky.lease)); err != nil {
					return nil, err
				}
			}
			select {
			case <-ctx.Done():
				return nil, status.FromContextError(ctx.Err()).Err()
			case <-time.After(10 * time.Millisecond):
			}
		}
		return computeTask(ctx, req)
	})
	cl := h.client(h.coordinator(nil))
	h.checkResult(h.run(cl, h.spec()))
	if !registered.Load() || flaky.calls.Load() < 2 {
		t.Fatalf("registered again: %v; calls to the suspect worker: %d", registered.Load(), flaky.calls.Load())
	}
}

// TestRetryBackoff: a task whose attempt failed runs again only after the
// backoff, doubling with each failure (a store restarting within seconds
// costs time, not the job); the doubling stops at its cap.
func TestRetryBackoff(t *testing.T) {
	const backoff = 300 * time.Millisecond
	h := newHarness(t, 2, 20, 200)
	var mu sync.Mutex
	var calls []time.Time // bucket 1's attempts
	h.worker("a", 2, func(ctx context.Context, req *pb.RunTaskRequest) (*pb.RunTaskResponse, error) {
		if req.GetBucket() == 1 {
			mu.Lock()
			calls = append(calls, time.Now())
			n := len(calls)
			mu.Unlock()
			if n <= 2 {
				return nil, status.Error(codes.Unknown, "store restarting")
			}
		}
		return computeTask(ctx, req)
	})
	cl := h.client(h.coordinator(func(cfg *Config) { cfg.RetryBackoff = backoff }))
	j := h.run(cl, h.spec())
	h.checkResult(j)
	mu.Lock()
	defer mu.Unlock()
	if len(calls) != 3 {
		t.Fatalf("%d attempts of bucket 1, want 3", len(calls))
	}
	if gap := calls[1].Sub(calls[0]); gap < backoff {
		t.Errorf("second attempt %v after the first, want at least %v", gap, backoff)
	}
	if gap := calls[2].Sub(calls[1]); gap < 2*backoff {
		t.Errorf("third attempt %v after the second, want at least %v", gap, 2*backoff)
	}
	for _, c := range []struct {
		failures int
		want     time.Duration
	}{{1, time.Second}, {2, 2 * time.Second}, {3, 4 * time.Second}, {6, 30 * time.Second}, {60, 30 * time.Second}} {
		if got := retryBackoff(time.Second, c.failures); got != c.want {
			t.Errorf("retryBackoff(1s, %d) = %v, want %v", c.failures, got, c.want)
		}
	}
	if got := retryBackoff(0, 3); got != 0 {
		t.Errorf("retryBackoff(0, 3) = %v, want 0", got)
	}
}

// TestRunBindsTheAPIFirst: Run binds the coordinator's API address before
// its HTTP one, so that an HTTP address of port 0 is never handed the
// port the API was told to serve on: given the same address for both, it
// is the HTTP server that cannot bind.
func TestRunBindsTheAPIFirst(t *testing.T) {
	h := newHarness(t, 1, 0, 0)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	cfg := NewConfig()
	cfg.Listen, cfg.HTTPListen = addr, addr
	cfg.Etcd, cfg.EtcdPrefix, cfg.Lake = strings.Join(h.endpoints, ","), h.prefix, h.src.URI()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = Run(ctx, cfg, obs.Runtime{Logger: testLogger(), Registerer: prometheus.NewRegistry()})
	if err == nil || strings.Contains(err.Error(), "coordinator: listen") || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("Run: %v; want the HTTP server's bind to fail, not the API's", err)
	}
}
