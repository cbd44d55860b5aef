package coordinator

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/lake/laketest"
	"github.com/dataco/clickstream/internal/results"
	pb "github.com/dataco/clickstream/proto/clickstream/v1"
)

// The tests of this file hold the job state machine to one rule: a job's
// outcome is decided by one conditional transition in etcd, nothing that
// read an older revision of its record overwrites it, and what the
// cluster reports is what is committed.

// testTerm is a leadership term that the test drives by hand, on the
// test goroutine, leading through a key of its own.
func testTerm(t *testing.T, h *harness) *term {
	t.Helper()
	c, err := New(func() Config {
		cfg := NewConfig()
		cfg.Etcd, cfg.EtcdPrefix, cfg.Lake = "unused", h.prefix, h.src.URI()
		cfg.S3 = laketest.S3Options()
		return cfg
	}(), h.cli, testLogger(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	key := h.prefix + "/test-leader"
	resp, err := h.cli.Put(ctx, key, "test")
	if err != nil {
		t.Fatal(err)
	}
	s := newTerm(c, nil, key, resp.Header.Revision)
	s.ctx = ctx
	t.Cleanup(func() {
		cancel()
		s.wg.Wait()
	})
	return s
}

// putRecord writes a job record as another process would, and returns it
// as stored.
func (h *harness) putRecord(rec *jobRecord) (*jobRecord, int64) {
	h.t.Helper()
	resp, err := h.cli.Put(context.Background(), h.keys.Job(rec.ID), encode(rec))
	if err != nil {
		h.t.Fatal(err)
	}
	cp := *rec
	return &cp, resp.Header.Revision
}

func (h *harness) record(id string) *jobRecord {
	h.t.Helper()
	resp, err := h.cli.Get(context.Background(), h.keys.Job(id))
	if err != nil || len(resp.Kvs) != 1 {
		h.t.Fatalf("read job %s: %v %v", id, resp, err)
	}
	rec, err := decode[jobRecord](resp.Kvs[0].Value, "job")
	if err != nil {
		h.t.Fatal(err)
	}
	return rec
}

func (h *harness) testRecord(id, state string) *jobRecord {
	return &jobRecord{ID: id, State: state, Spec: jobSpec{From: tFrom, To: tTo, Out: h.out.URI(), Lake: h.src.URI(), MaxAttempts: 3}}
}

// TestStaleWriteNeverOverwritesOutcome: a leader whose view of a job is
// older than its record (the job succeeded meanwhile) tries to fail it;
// the write is refused, the record stays succeeded, and the leader takes
// the job up again from the record.
func TestStaleWriteNeverOverwritesOutcome(t *testing.T) {
	h := newHarness(t, 4, 0, 0)
	s := testTerm(t, h)
	merging, rev := h.putRecord(h.testRecord("job-a", stateMerging))
	done := *merging
	done.State, done.Result, done.Cleaned = stateSucceeded, &results.Meta{Job: "job-a", Run: "job-a-1"}, true
	h.putRecord(&done)

	j := s.addJob(merging, rev)
	j.rec.State, j.rec.Error = stateFailed, "the plan is missing"
	if s.putJob(j) {
		t.Fatal("a write based on an older revision was accepted")
	}
	if got := h.record("job-a"); got.State != stateSucceeded || got.Error != "" {
		t.Fatalf("record is %s (%q), want succeeded", got.State, got.Error)
	}
	if s.fatal != nil {
		t.Fatalf("the term ended: %v", s.fatal)
	}
	if s.jobs["job-a"] != nil {
		t.Error("the succeeded job is still run by the leader")
	}
}

// TestStaleEventAfterFinishIsIgnored: the jobs watch delivers an older
// revision of a job after the leader finished and forgot it (the backfill
// that reported 78 of 100 succeeded jobs as failed). The leader does not
// take the job up again.
func TestStaleEventAfterFinishIsIgnored(t *testing.T) {
	h := newHarness(t, 4, 0, 0)
	s := testTerm(t, h)
	merging, rev := h.putRecord(h.testRecord("job-b", stateMerging))
	old, err := h.cli.Get(context.Background(), h.keys.Job("job-b"))
	if err != nil {
		t.Fatal(err)
	}
	j := s.addJob(merging, rev)
	j.rec.State = stateSucceeded
	if !s.putJob(j) {
		t.Fatal("write refused")
	}
	s.removeJob(j)

	s.onJobKV(old.Kvs[0]) // the echo of the merging record, late
	if s.jobs["job-b"] != nil {
		t.Fatal("a finished job was taken up again from a stale event")
	}
	if got := h.record("job-b"); got.State != stateSucceeded {
		t.Fatalf("record is %s, want succeeded", got.State)
	}
	s.forgetGone(j.rev)
	if len(s.gone) != 0 {
		t.Errorf("gone still holds %v after its last revision was delivered", s.gone)
	}
}

// TestCancelBeforeCommittingWins: a cancel recorded between the leader's
// read and its move to committing makes that move fail; the job ends
// cancelled, and nothing is committed.
func TestCancelBeforeCommittingWins(t *testing.T) {
	h := newHarness(t, 4, 0, 0)
	s := testTerm(t, h)
	merging, rev := h.putRecord(h.testRecord("job-c", stateMerging))
	cancelled := *merging
	cancelled.CancelRequested = true
	h.putRecord(&cancelled)

	j := s.addJob(merging, rev)
	j.rec.State = stateCommitting
	if s.putJob(j) {
		t.Fatal("moved to committing over a cancel request")
	}
	s.applyCancels()
	if got := h.record("job-c"); got.State != stateCancelled {
		t.Fatalf("record is %s, want cancelled", got.State)
	}
}

// TestCancelRefusedWhileCommitting: once the record says committing, a
// cancel is refused (FAILED_PRECONDITION) and the job ends succeeded with
// its result committed.
func TestCancelRefusedWhileCommitting(t *testing.T) {
	h := newHarness(t, 4, 50, 1000)
	h.worker("a", 4, nil)
	reached, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	c := h.coordinator(func(cfg *Config) {
		cfg.testHook = func(ctx context.Context, point string) {
			if point == pointBeforeCommit {
				once.Do(func() { close(reached) })
				select {
				case <-release:
				case <-ctx.Done():
				}
			}
		}
	})
	cl := h.client(c)
	ctx := context.Background()
	j, err := cl.Submit(ctx, h.spec())
	if err != nil {
		t.Fatal(err)
	}
	<-reached
	if _, err := cl.Cancel(ctx, j.GetId()); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("cancel while committing: %v, want FailedPrecondition", err)
	}
	close(release)
	j, err = cl.Wait(ctx, j.GetId(), nil)
	if err != nil {
		t.Fatal(err)
	}
	h.checkResult(j)
}

// TestCommittedResultRecordedByNextLeader: the leader dies at each step of
// a commit: before writing the result, after writing _SUCCESS but before
// recording success in etcd, and after recording it but before cleaning
// up. The next leader commits, or finds the result committed and records
// the job succeeded (not failed for a cleaned-up plan), and cleans up.
func TestCommittedResultRecordedByNextLeader(t *testing.T) {
	for _, point := range []string{pointBeforeCommit, pointAfterCommit, pointAfterRecord} {
		t.Run(point, func(t *testing.T) {
			h := newHarness(t, 4, 50, 1000)
			h.worker("a", 4, nil)
			var first atomic.Pointer[Coordinator]
			var died atomic.Bool
			first.Store(h.coordinator(func(cfg *Config) {
				cfg.testHook = func(ctx context.Context, p string) {
					if p == point && died.CompareAndSwap(false, true) {
						go first.Load().Close() // dies here: nothing after this step happens
						<-ctx.Done()
					}
				}
			}))
			waitUntil(t, "a leader", 10*time.Second, first.Load().IsLeader)
			standby := h.coordinator(nil)
			cl, err := Dial(first.Load().Addr()+","+standby.Addr(), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			j := h.run(cl, h.spec())
			// After the record, the client may hear of the success before
			// the leader gets to the point.
			waitUntil(t, "the leader to reach "+point, 10*time.Second, died.Load)
			meta := h.checkResult(j)
			if point != pointBeforeCommit && meta.Run != results.RunName(j.GetId(), 1) {
				t.Errorf("committed run %s: the first leader's commit should stand", meta.Run)
			}
			waitUntil(t, "the job's folder to be cleaned up", 10*time.Second, func() bool {
				objs, err := h.out.List(context.Background(), results.JobPrefix(j.GetId()))
				return err == nil && len(objs) == 0 && h.record(j.GetId()).Cleaned
			})
		})
	}
}

// TestBackfillReportsEverySuccess: 100 window jobs in flight at once on
// four workers all end succeeded and are all indexed.
func TestBackfillReportsEverySuccess(t *testing.T) {
	h := newHarness(t, 8, 200, 20000)
	for _, id := range []string{"a", "b", "c", "d"} {
		h.worker(id, 2, nil)
	}
	var indexed sync.Map
	c := h.coordinator(func(cfg *Config) {
		cfg.Publishers = []Publisher{NewPublisher("test", func(_ context.Context, _ lake.Store, m results.Meta) error {
			indexed.Store(m.Job, true)
			return nil
		})}
	})
	cl := h.client(c)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	windows := SplitWindows(tFrom, tTo, (tTo.Sub(tFrom))/100)
	if len(windows) != 100 {
		t.Fatalf("%d windows", len(windows))
	}
	ids := make([]string, len(windows))
	for i, w := range windows {
		spec := &pb.JobSpec{From: timestampOf(w[0]), To: timestampOf(w[1]), OutUri: WindowOut(h.out.URI(), w[0])}
		j, err := cl.Submit(ctx, spec)
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = j.GetId()
	}
	failed := 0
	for i, id := range ids {
		j, err := cl.Wait(ctx, id, nil)
		if err != nil {
			t.Fatal(err)
		}
		if j.GetState() != pb.JobState_JOB_STATE_SUCCEEDED {
			failed++
			t.Errorf("window %d: job %s %s: %s", i, id, StateName(j.GetState()), j.GetError())
			continue
		}
		out, err := lake.Open(ctx, WindowOut(h.out.URI(), windows[i][0]), laketest.S3Options())
		if err != nil {
			t.Fatal(err)
		}
		if m, err := results.ReadMeta(ctx, out); err != nil || m.Job != id {
			t.Errorf("window %d: _SUCCESS names %q (%v), want %s", i, m.Job, err, id)
		}
	}
	if failed > 0 {
		t.Fatalf("%d of 100 jobs not succeeded", failed)
	}
	waitUntil(t, "every job indexed", 30*time.Second, func() bool {
		n := 0
		indexed.Range(func(any, any) bool { n++; return true })
		return n == 100
	})
	for _, id := range ids {
		// Recorded right after indexing.
		waitUntil(t, "indexer status of "+id, 10*time.Second, func() bool { return publicationSummary(h.record(id).Publications) == indexOK })
	}
}

// TestSubmitIdempotencyKey: a submit with a key already recorded returns
// the job that key made; with another spec it is refused.
func TestSubmitIdempotencyKey(t *testing.T) {
	h := newHarness(t, 4, 50, 500)
	c := h.coordinator(nil)
	ctx := context.Background()
	first, err := c.SubmitJob(ctx, &pb.SubmitJobRequest{Spec: h.spec(), IdempotencyKey: "k-1"})
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.SubmitJob(ctx, &pb.SubmitJobRequest{Spec: h.spec(), IdempotencyKey: "k-1"})
	if err != nil {
		t.Fatal(err)
	}
	if again.GetJob().GetId() != first.GetJob().GetId() {
		t.Fatalf("same key, jobs %s and %s", first.GetJob().GetId(), again.GetJob().GetId())
	}
	other := h.spec()
	other.To = timestampOf(tTo.Add(-time.Hour))
	if _, err := c.SubmitJob(ctx, &pb.SubmitJobRequest{Spec: other, IdempotencyKey: "k-1"}); status.Code(err) != codes.AlreadyExists {
		t.Fatalf("same key, other spec: %v, want AlreadyExists", err)
	}
	if _, err := c.SubmitJob(ctx, &pb.SubmitJobRequest{Spec: h.spec(), IdempotencyKey: "no/slash"}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("bad key: %v, want InvalidArgument", err)
	}
	resp, err := h.cli.Get(ctx, h.keys.Jobs(), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || resp.Count != 1 {
		t.Fatalf("%d jobs recorded (%v), want 1", resp.Count, err)
	}
}

// TestSubmitRetriedWhenTheAnswerIsLost: the coordinator records the job
// but its answer never reaches the client (it died mid-call). The client
// submits again with the same key and gets the same job: one job.
func TestSubmitRetriedWhenTheAnswerIsLost(t *testing.T) {
	h := newHarness(t, 4, 50, 500)
	h.worker("a", 4, nil)
	c := h.coordinator(nil)
	var lost atomic.Int32
	lossy := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		resp, err := handler(ctx, req)
		if info.FullMethod == pb.CoordinatorService_SubmitJob_FullMethodName && err == nil && lost.Add(1) == 1 {
			return nil, status.Error(codes.Unavailable, "connection reset")
		}
		return resp, err
	}))
	pb.RegisterCoordinatorServiceServer(lossy, c)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = lossy.Serve(lis) }()
	defer lossy.Stop()
	cl, err := Dial(lis.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	j := h.run(cl, h.spec())
	h.checkResult(j)
	if lost.Load() < 2 {
		t.Fatalf("%d submits reached the coordinator, want a lost one and its retry", lost.Load())
	}
	resp, err := h.cli.Get(context.Background(), h.keys.Jobs(), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || resp.Count != 1 {
		t.Fatalf("%d jobs recorded (%v), want 1", resp.Count, err)
	}
}

// TestClientFollowsFailover: a client given only the leader's address
// learns the standby from the job's status, and follows the job there
// when the leader goes away.
func TestClientFollowsFailover(t *testing.T) {
	h := newHarness(t, 8, 100, 3000)
	h.worker("a", 2, slow(100*time.Millisecond))
	leader := h.coordinator(nil)
	waitUntil(t, "a leader", 10*time.Second, leader.IsLeader)
	standby := h.coordinator(nil)
	cl := h.client(leader)
	ctx := context.Background()
	waitUntil(t, "the standby to campaign", 10*time.Second, func() bool {
		return len(leader.coordinators(ctx)) == 2
	})
	j, err := cl.Submit(ctx, h.spec())
	if err != nil {
		t.Fatal(err)
	}
	if got := j.GetCoordinators(); len(got) != 2 || got[0] != leader.Addr() || got[1] != standby.Addr() {
		t.Fatalf("coordinators %v, want [%s %s]", got, leader.Addr(), standby.Addr())
	}
	if err := leader.Close(); err != nil {
		t.Fatal(err)
	}
	cl.ReconnectWindow = time.Minute
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	j, err = cl.Wait(wctx, j.GetId(), nil)
	if err != nil {
		t.Fatal(err)
	}
	h.checkResult(j)
	if cl.Addr() != standby.Addr() {
		t.Errorf("client calls %s first, want the standby %s", cl.Addr(), standby.Addr())
	}
}

func TestDialAddressList(t *testing.T) {
	cl, err := Dial(" 127.0.0.1:1, 127.0.0.1:2,127.0.0.1:1", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if got := cl.Addrs(); len(got) != 2 || got[0] != "127.0.0.1:1" || got[1] != "127.0.0.1:2" {
		t.Fatalf("addresses %v", got)
	}
	if _, err := Dial("127.0.0.1:1,nonsense", time.Second); err == nil {
		t.Fatal("a bad address was accepted")
	}
	// Nothing listens there: every address is tried, then the call fails.
	if _, err := cl.Get(context.Background(), "job-x"); err == nil || !errors.Is(err, ErrUnreachable) {
		t.Fatalf("Get from nowhere: %v", err)
	}
}
