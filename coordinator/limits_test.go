package coordinator

import (
	"context"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/dataco/clickstream/proto/clickstream/v1"
)

// wantRefused fails unless err has code and mentions the flag of its limit.
func wantRefused(t *testing.T, what string, err error, code codes.Code, flag string) {
	t.Helper()
	if status.Code(err) != code || !strings.Contains(err.Error(), flag) {
		t.Fatalf("%s: %v (code %v), want %v naming %s", what, err, status.Code(err), code, flag)
	}
}

// TestSpecLimits: a window or a session timeout over the limits, and a
// list page over its limit, are refused as invalid, naming the flag.
func TestSpecLimits(t *testing.T) {
	h := newHarness(t, 4, 50, 1000)
	c := h.coordinator(func(cfg *Config) {
		cfg.Limits.MaxWindow = tTo.Sub(tFrom)
		cfg.Limits.MaxSessionTimeout = 2 * time.Hour
		cfg.Limits.MaxListJobs = 10
	})
	cl := h.client(c)
	ctx := context.Background()

	long := h.spec()
	long.To = timestampOf(tTo.Add(time.Second))
	_, err := cl.Submit(ctx, long)
	wantRefused(t, "a window over --max-window", err, codes.InvalidArgument, "--max-window")

	slow := h.spec()
	slow.SessionTimeout = durationpb.New(2*time.Hour + time.Second)
	_, err = cl.Submit(ctx, slow)
	wantRefused(t, "a session timeout over --max-session-timeout", err, codes.InvalidArgument, "--max-session-timeout")

	_, err = cl.List(ctx, 11)
	wantRefused(t, "a page over --max-list-jobs", err, codes.InvalidArgument, "--max-list-jobs")
	if _, err := cl.List(ctx, 10); err != nil {
		t.Fatalf("a page at the limit: %v", err)
	}

	ok := h.spec()
	ok.SessionTimeout = durationpb.New(2 * time.Hour)
	if _, err := cl.Submit(ctx, ok); err != nil {
		t.Fatalf("a job at the limits: %v", err)
	}
}

// TestActiveJobsLimit: submits past --max-active-jobs are refused with
// ResourceExhausted until a job ends; a retried submit still gets its job.
func TestActiveJobsLimit(t *testing.T) {
	h := newHarness(t, 4, 50, 1000)
	h.worker("a", 4, hang)
	c := h.coordinator(func(cfg *Config) { cfg.Limits.MaxActiveJobs = 2 })
	cl := h.client(c)
	ctx := context.Background()
	spec := func(out string) *pb.JobSpec {
		s := h.spec()
		s.OutUri = h.out.URI() + "/" + out
		return s
	}
	first, err := cl.SubmitWithKey(ctx, spec("a"), "key-a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Submit(ctx, spec("b")); err != nil {
		t.Fatal(err)
	}
	_, err = cl.Submit(ctx, spec("c"))
	wantRefused(t, "a third unfinished job", err, codes.ResourceExhausted, "--max-active-jobs")

	again, err := cl.SubmitWithKey(ctx, spec("a"), "key-a")
	if err != nil || again.GetId() != first.GetId() {
		t.Fatalf("a retried submit while full: %v, %v; want job %s", again.GetId(), err, first.GetId())
	}

	if _, err := cl.Cancel(ctx, first.GetId()); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if j, err := cl.Wait(wctx, first.GetId(), nil); err != nil || j.GetState() != pb.JobState_JOB_STATE_CANCELLED {
		t.Fatalf("cancelled job: %v, %v", j.GetState(), err)
	}
	if _, err := cl.Submit(ctx, spec("c")); err != nil {
		t.Fatalf("a submit once a job ended: %v", err)
	}
}

// TestWatchStreamsLimit: watch streams past --max-watch-streams are
// refused with ResourceExhausted; one closing makes room.
func TestWatchStreamsLimit(t *testing.T) {
	h := newHarness(t, 4, 50, 1000)
	h.worker("a", 4, hang)
	c := h.coordinator(func(cfg *Config) { cfg.Limits.MaxWatchStreams = 2 })
	cl := h.client(c)
	ctx := context.Background()
	j, err := cl.Submit(ctx, h.spec())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(c.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	api := pb.NewCoordinatorServiceClient(conn)
	// open watches a job and waits for its first update: the stream is
	// counted once the server has sent on it.
	open := func() (context.CancelFunc, error) {
		sctx, cancel := context.WithCancel(ctx)
		st, err := api.WatchJob(sctx, &pb.WatchJobRequest{Id: j.GetId()})
		if err == nil {
			_, err = st.Recv()
		}
		if err != nil {
			cancel()
		}
		return cancel, err
	}
	close1, err := open()
	if err != nil {
		t.Fatal(err)
	}
	close2, err := open()
	if err != nil {
		t.Fatal(err)
	}
	defer close2()
	_, err = open()
	wantRefused(t, "a third watch stream", err, codes.ResourceExhausted, "--max-watch-streams")

	// A client refused a stream follows the job by polling it.
	type waited struct {
		j   *pb.Job
		err error
	}
	done := make(chan waited, 1)
	go func() {
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		j, err := cl.Wait(wctx, j.GetId(), nil)
		done <- waited{j, err}
	}()
	if _, err := cl.Cancel(ctx, j.GetId()); err != nil {
		t.Fatal(err)
	}
	if w := <-done; w.err != nil || w.j.GetState() != pb.JobState_JOB_STATE_CANCELLED {
		t.Fatalf("Wait without room for a stream: %v, %v; want the job cancelled", w.j.GetState(), w.err)
	}
	close1()
	waitUntil(t, "room for a watch stream", 10*time.Second, func() bool {
		cancel, err := open()
		if err == nil {
			cancel()
		}
		return err == nil
	})
}

func TestLimitsValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		adjust func(*Limits)
	}{
		{"window", func(l *Limits) { l.MaxWindow = 0 }},
		{"session timeout", func(l *Limits) { l.MaxSessionTimeout = -time.Second }},
		{"active jobs", func(l *Limits) { l.MaxActiveJobs = 0 }},
		{"watch streams", func(l *Limits) { l.MaxWatchStreams = 0 }},
		{"list", func(l *Limits) { l.MaxListJobs = 0 }},
		{"submit rate", func(l *Limits) { l.MaxSubmitRate = 0 }},
		{"submit rate NaN", func(l *Limits) { l.MaxSubmitRate = math.NaN() }},
		{"submit rate infinite", func(l *Limits) { l.MaxSubmitRate = math.Inf(1) }},
		{"submit burst", func(l *Limits) { l.MaxSubmitBurst = 0 }},
	} {
		l := NewLimits()
		if err := l.Validate(); err != nil {
			t.Fatalf("defaults: %v", err)
		}
		tc.adjust(&l)
		if err := l.Validate(); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}

// TestActiveMarkersReconciled: markers of unfinished jobs that no longer
// match a record — left by a record deleted by hand — do not hold the
// --max-active-jobs limit: a new leader deletes them, and so does the
// leader that sees the record go.
func TestActiveMarkersReconciled(t *testing.T) {
	h := newHarness(t, 4, 50, 1000)
	h.worker("a", 4, hang)
	ctx := context.Background()
	if _, err := h.cli.Put(ctx, h.keys.ActiveJob("20260101-000000-deadbeef"), ""); err != nil {
		t.Fatal(err)
	}
	c := h.coordinator(func(cfg *Config) { cfg.Limits.MaxActiveJobs = 1 })
	cl := h.client(c)
	var first *pb.Job
	waitUntil(t, "a submit once the stale marker is gone", 10*time.Second, func() bool {
		j, err := cl.Submit(ctx, h.spec())
		first = j
		return err == nil
	})
	other := h.spec()
	other.OutUri = h.out.URI() + "/other"
	if _, err := cl.Submit(ctx, other); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("a second unfinished job: %v, want ResourceExhausted", err)
	}
	if _, err := h.cli.Delete(ctx, h.keys.Job(first.GetId())); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "a submit once the running job's record is deleted", 10*time.Second, func() bool {
		_, err := cl.Submit(ctx, other)
		return err == nil
	})
}

// TestLeaderEnforcesOutputRoots: a job submitted through a coordinator
// without --output-root is refused by a leader with it.
func TestLeaderEnforcesOutputRoots(t *testing.T) {
	h := newHarness(t, 4, 50, 1000)
	h.worker("a", 4, nil)
	leader := h.coordinator(func(cfg *Config) { cfg.OutputRoots = []string{h.out.URI() + "/allowed"} })
	waitUntil(t, "a leader", 10*time.Second, leader.IsLeader)
	standby := h.coordinator(nil)
	j := h.run(h.client(standby), h.spec())
	if j.GetState() != pb.JobState_JOB_STATE_FAILED || !strings.Contains(j.GetError(), "--output-root") {
		t.Fatalf("state %v, error %q; want failed naming --output-root", j.GetState(), j.GetError())
	}
}

// TestReconcileActiveAtRevision: the markers of unfinished jobs are
// reconciled with the job records of one revision: a job submitted after
// it keeps its marker, a marker without a record at it goes, a job
// unfinished at it gets one unless its record changed since.
func TestReconcileActiveAtRevision(t *testing.T) {
	h := newHarness(t, 4, 50, 1000)
	tm := testTerm(t, h)
	ctx := context.Background()
	spec := jobSpec{From: tFrom, To: tTo, Out: h.out.URI(), Lake: h.src.URI()}
	legacy, _ := h.putRecord(&jobRecord{ID: "20260101-000000-00000001", Spec: spec, State: statePending})
	done, _ := h.putRecord(&jobRecord{ID: "20260101-000000-00000002", Spec: spec, State: stateRunning})
	if _, err := h.cli.Put(ctx, h.keys.ActiveJob("20260101-000000-0000dead"), ""); err != nil {
		t.Fatal(err)
	}
	read, err := h.cli.Get(ctx, h.keys.Jobs(), clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	// After the read: a submit (record and marker together), and a job
	// that finishes.
	fresh := &jobRecord{ID: "20260101-000000-00000003", Spec: spec, State: statePending}
	if _, err := h.cli.Txn(ctx).Then(clientv3.OpPut(h.keys.Job(fresh.ID), encode(fresh)), clientv3.OpPut(h.keys.ActiveJob(fresh.ID), "")).Commit(); err != nil {
		t.Fatal(err)
	}
	done.State = stateSucceeded
	h.putRecord(done)

	if err := tm.reconcileActive(read.Kvs, read.Header.Revision); err != nil {
		t.Fatal(err)
	}
	resp, err := h.cli.Get(ctx, h.keys.Active(), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, kv := range resp.Kvs {
		got = append(got, strings.TrimPrefix(string(kv.Key), h.keys.Active()))
	}
	if want := []string{legacy.ID, fresh.ID}; !slices.Equal(got, want) {
		t.Fatalf("markers %v, want %v", got, want)
	}
}

// TestPlanningQueued: jobs submitted at once are planned by at most
// --planning-parallelism planners; the others wait their turn, and one
// cancelled while it waits is never planned. Every other job succeeds.
func TestPlanningQueued(t *testing.T) {
	const planners, jobs = 2, 8
	h := newHarness(t, 4, 50, 1000)
	h.worker("a", 4, nil)
	var running, most, loads atomic.Int32
	entered := make(chan struct{}, jobs)
	release := make(chan struct{})
	c := h.coordinator(func(cfg *Config) {
		cfg.PlanningParallelism = planners
		cfg.testHook = func(ctx context.Context, point string) {
			if point != pointLoad {
				return
			}
			n := running.Add(1)
			defer running.Add(-1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			loads.Add(1)
			entered <- struct{}{}
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
	})
	cl := h.client(c)
	ctx := context.Background()
	var ids []string
	for i := range jobs {
		s := h.spec()
		s.OutUri = h.out.URI() + "/" + strconv.Itoa(i)
		j, err := cl.Submit(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, j.GetId())
	}
	for range planners {
		<-entered // every planner holds a job
	}
	last := ids[jobs-1]
	if _, err := cl.Cancel(ctx, last); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the waiting job cancelled", 10*time.Second, func() bool {
		j, err := cl.Get(ctx, last)
		return err == nil && j.GetState() == pb.JobState_JOB_STATE_CANCELLED
	})
	if n := loads.Load(); n != planners {
		t.Fatalf("%d loads started while %d planners were held, want %d", n, planners, planners)
	}
	close(release)
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for _, id := range ids[:jobs-1] {
		if j, err := cl.Wait(wctx, id, nil); err != nil || j.GetState() != pb.JobState_JOB_STATE_SUCCEEDED {
			t.Fatalf("job %s: %v, %v (%s)", id, j.GetState(), err, j.GetError())
		}
	}
	if m := most.Load(); m != planners {
		t.Errorf("at most %d loads at once, want %d", m, planners)
	}
	if n := loads.Load(); n != jobs-1 {
		t.Errorf("%d loads, want %d: the job cancelled while waiting is not planned", n, jobs-1)
	}
}

// TestLoadQueueOrder: jobs are handed to planners in the order they were
// queued, skipping those that ended or were dropped while they waited.
func TestLoadQueueOrder(t *testing.T) {
	h := newHarness(t, 4, 0, 0)
	s := testTerm(t, h)
	var js []*jobRun
	for i := range 5 {
		rec, rev := h.putRecord(h.testRecord("job-"+strconv.Itoa(i), statePending))
		j := s.addJob(rec, rev)
		s.load(j)
		js = append(js, j)
	}
	next := func() string {
		t.Helper()
		r, ok := s.nextLoad()
		if !ok {
			return ""
		}
		if r.ctx != r.j.ctx || r.rec.ID != r.j.rec.ID {
			t.Fatalf("request of %s does not carry its job's record and context", r.j.rec.ID)
		}
		s.loads = s.loads[1:] // handed over, as the term's loop does
		return r.rec.ID
	}
	got := []string{next()}
	s.load(js[0])                                // its load failed: retried, last
	s.removeJob(js[1])                           // its record changed: taken up again
	s.endJob(js[3], stateCancelled, "cancelled") // cancelled while it waits
	for id := next(); id != ""; id = next() {
		got = append(got, id)
	}
	if want := []string{"job-0", "job-2", "job-4", "job-0"}; !slices.Equal(got, want) {
		t.Fatalf("loads %v, want %v", got, want)
	}
	if s.fatal != nil {
		t.Fatal(s.fatal)
	}
}

// TestConnectionsLimit: past --max-connections, a new client is not served
// until a served one leaves.
func TestConnectionsLimit(t *testing.T) {
	h := newHarness(t, 2, 10, 100)
	c := h.coordinator(func(cfg *Config) { cfg.Limits.MaxConnections = 1 })
	ctx := context.Background()
	dial := func() (*grpc.ClientConn, pb.CoordinatorServiceClient) {
		conn, err := grpc.NewClient(c.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		return conn, pb.NewCoordinatorServiceClient(conn)
	}
	first, api1 := dial()
	if _, err := api1.ListJobs(ctx, &pb.ListJobsRequest{}); err != nil {
		t.Fatal(err)
	}
	second, api2 := dial()
	defer second.Close()
	wctx, cancel := context.WithTimeout(ctx, time.Second)
	_, err := api2.ListJobs(wctx, &pb.ListJobsRequest{})
	cancel()
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("a second connection while the first is open: %v, want it kept waiting", err)
	}
	first.Close()
	if _, err := api2.ListJobs(ctx, &pb.ListJobsRequest{}, grpc.WaitForReady(true)); err != nil {
		t.Fatalf("after the first left: %v", err)
	}
}
