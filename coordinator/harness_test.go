package coordinator

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dataco/clickstream/internal/aggregate"
	"github.com/dataco/clickstream/internal/cluster"
	"github.com/dataco/clickstream/internal/cluster/clustertest"
	"github.com/dataco/clickstream/internal/event"
	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/lake/laketest"
	"github.com/dataco/clickstream/internal/leaktest"
	"github.com/dataco/clickstream/internal/mtls"
	"github.com/dataco/clickstream/internal/pki"
	"github.com/dataco/clickstream/internal/rollup"
	pb "github.com/dataco/clickstream/proto/clickstream/v1"
)

func TestMain(m *testing.M) { leaktest.Main(m) }

var (
	tFrom = time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	tTo   = time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)
)

// harness is an etcd, a lake with random events, fake workers registered
// in etcd, and coordinators using a fake TaskRunner that computes tasks in
// this process like a worker would.
type harness struct {
	t         testing.TB
	endpoints []string
	cli       *clientv3.Client
	keys      cluster.Keys
	prefix    string
	src, out  lake.Store
	events    []event.Event
	runner    *fakeRunner
}

func newHarness(t testing.TB, buckets, users, events int) *harness {
	t.Helper()
	h := &harness{t: t, endpoints: clustertest.StartEtcd(t)}
	cli, err := cluster.Dial(context.Background(), h.endpoints, cluster.EtcdAuth{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	h.cli = cli
	h.prefix = "/test/" + strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	h.keys = cluster.Keys{Prefix: h.prefix}
	h.src, h.out = laketest.NewFile(t), laketest.NewFile(t)
	if events > 0 {
		h.events = clustertest.Events(uint64(buckets*1000+users), users, events, tFrom, tTo)
		clustertest.WriteLake(t, h.src, buckets, 2, h.events)
	} else if _, err := lake.EnsureMeta(context.Background(), h.src, buckets); err != nil {
		t.Fatal(err)
	}
	h.runner = &fakeRunner{workers: map[string]*fakeWorker{}}
	return h
}

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// coordinator starts a coordinator; adjust changes its configuration.
func (h *harness) coordinator(adjust func(*Config)) *Coordinator {
	h.t.Helper()
	cfg := NewConfig()
	cfg.Listen, cfg.Etcd, cfg.EtcdPrefix = "127.0.0.1:0", strings.Join(h.endpoints, ","), h.prefix
	cfg.Lake, cfg.S3 = h.src.URI(), laketest.S3Options()
	cfg.Runner = h.runner
	cfg.LeaderTTL = 2 * time.Second
	cfg.BackupAfter = -1
	if adjust != nil {
		adjust(&cfg)
	}
	c, err := New(cfg, h.cli, testLogger().With("coordinator", cfg.Listen), nil)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { c.Close() })
	return c
}

func (h *harness) client(c *Coordinator) *Client {
	h.t.Helper()
	cl, err := Dial(c.Addr(), 5*time.Second)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { cl.Close() })
	return cl
}

func (h *harness) spec() *pb.JobSpec {
	return &pb.JobSpec{From: timestampOf(tFrom), To: timestampOf(tTo), OutUri: h.out.URI()}
}

// run submits a job and waits for its end.
func (h *harness) run(cl *Client, spec *pb.JobSpec) *pb.Job {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	j, err := cl.Submit(ctx, spec)
	if err != nil {
		h.t.Fatal(err)
	}
	j, err = cl.Wait(ctx, j.GetId(), nil)
	if err != nil {
		h.t.Fatal(err)
	}
	return j
}

// fakeWorker is a worker registration in etcd plus the behaviour of its
// tasks.
type fakeWorker struct {
	id, addr string
	lease    clientv3.LeaseID
	stop     context.CancelFunc
	// behave runs a task; nil computes it.
	behave func(ctx context.Context, req *pb.RunTaskRequest) (*pb.RunTaskResponse, error)
	// probe answers the leader's probes of a suspect worker; nil: it
	// answers.
	probe   atomic.Pointer[func(context.Context) error]
	probes  atomic.Int32
	calls   atomic.Int32
	running atomic.Int32
}

// worker registers a fake worker with a 2 s lease.
func (h *harness) worker(id string, parallelism int, behave func(context.Context, *pb.RunTaskRequest) (*pb.RunTaskResponse, error)) *fakeWorker {
	h.t.Helper()
	ctx := context.Background()
	g, err := h.cli.Grant(ctx, 2)
	if err != nil {
		h.t.Fatal(err)
	}
	w := &fakeWorker{id: id, addr: "fake-" + id + ":1", lease: g.ID, behave: behave}
	kctx, stop := context.WithCancel(ctx)
	w.stop = stop
	ka, err := h.cli.KeepAlive(kctx, g.ID)
	if err != nil {
		h.t.Fatal(err)
	}
	go func() {
		for range ka {
		}
	}()
	info := cluster.WorkerInfo{ID: id, Addr: w.addr, Parallelism: parallelism, Started: time.Now()}
	if _, err := h.cli.Put(ctx, h.keys.Worker(id), encode(info), clientv3.WithLease(g.ID)); err != nil {
		h.t.Fatal(err)
	}
	h.runner.add(w)
	h.t.Cleanup(stop)
	return w
}

// kill makes the worker die: its lease is revoked, as if it had expired.
func (h *harness) kill(w *fakeWorker) {
	w.stop()
	if _, err := h.cli.Revoke(context.Background(), w.lease); err != nil {
		h.t.Fatal(err)
	}
}

type fakeRunner struct {
	mu      sync.Mutex
	workers map[string]*fakeWorker
}

func (r *fakeRunner) add(w *fakeWorker) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.workers[w.addr] = w
}

func (r *fakeRunner) RunTask(ctx context.Context, _, addr string, req *pb.RunTaskRequest) (*pb.RunTaskResponse, error) {
	r.mu.Lock()
	w := r.workers[addr]
	r.mu.Unlock()
	if w == nil {
		return nil, status.Error(codes.Unavailable, "no such worker")
	}
	w.calls.Add(1)
	w.running.Add(1)
	defer w.running.Add(-1)
	if w.behave != nil {
		return w.behave(ctx, req)
	}
	return computeTask(ctx, req)
}

// ProbeWorker answers as the worker's probe says.
func (r *fakeRunner) ProbeWorker(ctx context.Context, _, addr string) error {
	r.mu.Lock()
	w := r.workers[addr]
	r.mu.Unlock()
	if w == nil {
		return status.Error(codes.Unavailable, "no such worker")
	}
	w.probes.Add(1)
	if p := w.probe.Load(); p != nil {
		return (*p)(ctx)
	}
	return nil
}

// computeTask does what a worker does, without gRPC.
func computeTask(ctx context.Context, req *pb.RunTaskRequest) (*pb.RunTaskResponse, error) {
	if req.GetRollup() != nil {
		return computeRollupTask(ctx, req)
	}
	src, err := lake.Open(ctx, req.GetLakeUri(), laketest.S3Options())
	if err != nil {
		return nil, err
	}
	out, err := lake.Open(ctx, req.GetPartialUri(), laketest.S3Options())
	if err != nil {
		return nil, err
	}
	if len(req.GetFileSizes()) != len(req.GetFileKeys()) {
		return nil, status.Errorf(codes.InvalidArgument, "%d file keys, %d sizes", len(req.GetFileKeys()), len(req.GetFileSizes()))
	}
	var events []event.Event
	for i, k := range req.GetFileKeys() {
		data, err := src.GetSized(ctx, k, req.GetFileSizes()[i])
		if errors.Is(err, lake.ErrSize) {
			return nil, status.Error(codes.DataLoss, err.Error())
		}
		if err != nil {
			return nil, status.Error(codes.NotFound, err.Error())
		}
		evs, err := lake.DecodeFile(k, data)
		if err != nil {
			return nil, status.Error(codes.DataLoss, err.Error())
		}
		events = append(events, evs...)
	}
	w := aggregate.Window{From: req.GetWindowFrom().AsTime(), To: req.GetWindowTo().AsTime()}
	bots := aggregate.BotsApart
	if req.GetIncludeBots() {
		bots = aggregate.BotsIncluded
	}
	p := aggregate.ComputeWith(events, w, req.GetSessionTimeout().AsDuration(), bots)
	data, err := p.MarshalBinary()
	if err != nil {
		return nil, err
	}
	return putPartial(ctx, out, req, data, &pb.RunTaskResponse{EventsRead: p.Read, EventsInWindow: p.Events})
}

// computeRollupTask computes a roll-up's key range as a worker does
// (rollup.ComputeShard), without gRPC.
func computeRollupTask(ctx context.Context, req *pb.RunTaskRequest) (*pb.RunTaskResponse, error) {
	r := req.GetRollup()
	open := func(ctx context.Context, uri string) (lake.Store, error) {
		return lake.Open(ctx, uri, laketest.S3Options())
	}
	base, err := open(ctx, r.GetWindowsUri())
	if err != nil {
		return nil, err
	}
	out, err := open(ctx, req.GetPartialUri())
	if err != nil {
		return nil, err
	}
	from, to := req.GetWindowFrom().AsTime(), req.GetWindowTo().AsTime()
	windows, err := rollup.Inputs(ctx, base, open, r.GetInputGrain(), from, to)
	if err != nil {
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	}
	cfg := rollup.Config{MemoryBudget: r.GetMemoryBudget(), ExactLimit: r.GetExactLimit(), AllowGaps: r.GetAllowGaps(), KeepSets: r.GetKeepSets()}
	var buf bytes.Buffer
	if err := rollup.ComputeShard(ctx, cfg, r.GetGrain(), from, to, windows, int(req.GetBucket()), int(r.GetShards()), &buf); err != nil {
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	}
	return putPartial(ctx, out, req, buf.Bytes(), &pb.RunTaskResponse{})
}

// putPartial stores a task's partial, unless stored already, and
// completes the answer with its digest.
func putPartial(ctx context.Context, out lake.Store, req *pb.RunTaskRequest, data []byte, resp *pb.RunTaskResponse) (*pb.RunTaskResponse, error) {
	sum := sha256.Sum256(data)
	resp.PartialBytes, resp.PartialSha256 = int64(len(data)), sum[:]
	if err := out.PutIfAbsent(ctx, req.GetPartialKey(), data); errors.Is(err, lake.ErrExists) {
		// As a worker does: vouch only for the bytes it computed.
		if stored, err := out.Get(ctx, req.GetPartialKey()); err != nil || !bytes.Equal(stored, data) {
			return nil, status.Errorf(codes.DataLoss, "stored partial %s is not the one computed (%v)", req.GetPartialKey(), err)
		}
		resp.AlreadyCommitted = true
	} else if err != nil {
		return nil, err
	}
	return resp, nil
}

// slow returns a behaviour that computes the task after d, unless
// cancelled first.
func slow(d time.Duration) func(context.Context, *pb.RunTaskRequest) (*pb.RunTaskResponse, error) {
	return func(ctx context.Context, req *pb.RunTaskRequest) (*pb.RunTaskResponse, error) {
		select {
		case <-time.After(d):
			return computeTask(ctx, req)
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}
}

// hang never finishes a task until cancelled.
func hang(ctx context.Context, _ *pb.RunTaskRequest) (*pb.RunTaskResponse, error) {
	<-ctx.Done()
	return nil, status.FromContextError(ctx.Err()).Err()
}

func waitUntil(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// testCA returns a new CA for a test's certificates.
func testCA(t testing.TB) *pki.CA {
	t.Helper()
	ca, err := pki.NewCA("test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// issue returns the TLS material of role and name, signed by ca.
func issue(t testing.TB, ca *pki.CA, role mtls.Role, name string) *mtls.Source {
	t.Helper()
	src, err := mtls.Issue(ca, mtls.Identity{Role: role, Name: name}, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	return src
}
