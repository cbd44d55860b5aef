package worker

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/dataco/clickstream/internal/aggregate"
	"github.com/dataco/clickstream/internal/cluster"
	"github.com/dataco/clickstream/internal/cluster/clustertest"
	"github.com/dataco/clickstream/internal/event"
	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/lake/laketest"
	"github.com/dataco/clickstream/internal/leaktest"
	"github.com/dataco/clickstream/internal/mtls"
	"github.com/dataco/clickstream/internal/pki"
	"github.com/dataco/clickstream/internal/results"
	pb "github.com/dataco/clickstream/proto/clickstream/v1"
)

func TestMain(m *testing.M) { leaktest.Main(m) }

var (
	tFrom = time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	tTo   = time.Date(2026, 11, 27, 2, 0, 0, 0, time.UTC)
)

type fixture struct {
	t         *testing.T
	endpoints []string
	cli       *clientv3.Client
	src, out  lake.Store
	events    []event.Event
	buckets   int
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{t: t, endpoints: clustertest.StartEtcd(t), src: laketest.NewFile(t), out: laketest.NewFile(t), buckets: 4}
	cli, err := cluster.Dial(context.Background(), f.endpoints, cluster.EtcdAuth{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	f.cli = cli
	f.events = clustertest.Events(3, 60, 3000, tFrom, tTo)
	clustertest.WriteLake(t, f.src, f.buckets, 2, f.events)
	return f
}

// start starts a worker; adjust changes its configuration.
func (f *fixture) start(adjust func(*Config)) (*Worker, pb.WorkerServiceClient, *prometheus.Registry) {
	f.t.Helper()
	cfg := NewConfig()
	cfg.Listen, cfg.Etcd, cfg.ID, cfg.Parallelism = "127.0.0.1:0", strings.Join(f.endpoints, ","), "w1", 2
	cfg.S3 = laketest.S3Options()
	cfg.LakeRoots, cfg.OutputRoots = []string{f.src.URI()}, []string{f.out.URI()}
	if adjust != nil {
		adjust(&cfg)
	}
	reg := prometheus.NewRegistry()
	w, err := New(cfg, nil, reg)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := w.Start(context.Background()); err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { w.Close() })
	conn, err := grpc.NewClient(w.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { conn.Close() })
	return w, pb.NewWorkerServiceClient(conn), reg
}

// request is the task of one bucket.
func (f *fixture) request(bucket, attempt int) *pb.RunTaskRequest {
	snap, err := lake.ReadSnapshot(context.Background(), f.src)
	if err != nil {
		f.t.Fatal(err)
	}
	req := &pb.RunTaskRequest{
		JobId: "job-1", TaskId: int32(bucket), Bucket: int32(bucket), Attempt: int32(attempt),
		LakeUri: f.src.URI(), WindowFrom: timestamppb.New(tFrom), WindowTo: timestamppb.New(tTo),
		SessionTimeout: durationpb.New(30 * time.Minute),
		PartialUri:     f.out.URI(), PartialKey: results.PartialKey("job-1", bucket),
	}
	for _, df := range snap.FilesFor(tFrom, tTo.Add(30*time.Minute))[bucket] {
		req.FileKeys = append(req.FileKeys, df.Key)
	}
	// The attempt's lease, as the leader records it before calling.
	if _, err := f.cli.Put(context.Background(), cluster.Keys{}.Lease("job-1", bucket, attempt), "{}"); err != nil {
		f.t.Fatal(err)
	}
	return req
}

// reference is the partial of one bucket computed directly.
func (f *fixture) reference(bucket int) *aggregate.Partial {
	var evs []event.Event
	for _, e := range f.events {
		if lake.Bucket(e.UserID, f.buckets) == bucket {
			evs = append(evs, e)
		}
	}
	return aggregate.Compute(evs, aggregate.Window{From: tFrom, To: tTo}, 30*time.Minute)
}

func TestRunTaskCommitsPartial(t *testing.T) {
	f := newFixture(t)
	w, c, reg := f.start(nil)
	ctx := context.Background()

	// Registered under a lease, with its address.
	resp, err := f.cli.Get(ctx, cluster.Keys{}.Worker("w1"))
	if err != nil || len(resp.Kvs) != 1 || resp.Kvs[0].Lease == 0 {
		t.Fatalf("registration: %v %v", resp, err)
	}
	var info cluster.WorkerInfo
	if err := json.Unmarshal(resp.Kvs[0].Value, &info); err != nil || info.Addr != w.Addr() || info.Parallelism != 2 {
		t.Fatalf("registration %+v, err %v", info, err)
	}

	for b := range f.buckets {
		r, err := c.RunTask(ctx, f.request(b, 1))
		if err != nil {
			t.Fatal(err)
		}
		if r.GetAlreadyCommitted() || r.GetWorkerId() != "w1" || r.GetEventsRead() == 0 || r.GetBytesRead() == 0 {
			t.Errorf("bucket %d: %+v", b, r)
		}
		data, err := f.out.Get(ctx, results.PartialKey("job-1", b))
		if err != nil {
			t.Fatal(err)
		}
		got := aggregate.NewPartial()
		if err := got.UnmarshalBinary(data); err != nil {
			t.Fatal(err)
		}
		want := f.reference(b)
		if !reflect.DeepEqual(got.Result(aggregate.Window{From: tFrom, To: tTo}), want.Result(aggregate.Window{From: tFrom, To: tTo})) || got.Events != want.Events {
			t.Errorf("bucket %d: partial differs from the reference", b)
		}
		// Another attempt (a backup, a retry) succeeds without overwriting.
		r2, err := c.RunTask(ctx, f.request(b, 2))
		if err != nil || !r2.GetAlreadyCommitted() {
			t.Fatalf("second attempt: %+v %v", r2, err)
		}
		if again, _ := f.out.Get(ctx, results.PartialKey("job-1", b)); string(again) != string(data) {
			t.Errorf("bucket %d: partial changed", b)
		}
	}
	if n := value(w.metrics.tasks.WithLabelValues(outcomeOK)); n != float64(f.buckets) {
		t.Errorf("ok tasks metric = %v", n)
	}
	if n := value(w.metrics.tasks.WithLabelValues(outcomeCommitted)); n != float64(f.buckets) {
		t.Errorf("already committed metric = %v", n)
	}
	mfs, err := reg.Gather()
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, n := range []string{"clickstream_worker_tasks_total", "clickstream_worker_task_duration_seconds", "clickstream_worker_events_read_total", "clickstream_worker_bytes_read_total"} {
		if !names[n] {
			t.Errorf("metric %s not registered (err %v)", n, err)
		}
	}
}

// TestRecomputeIsDeterministic: the same task computed twice yields the
// same bytes, so whichever attempt commits, the result is the same.
func TestRecomputeIsDeterministic(t *testing.T) {
	f := newFixture(t)
	_, c, _ := f.start(nil)
	ctx := context.Background()
	req := f.request(1, 1)
	if _, err := c.RunTask(ctx, req); err != nil {
		t.Fatal(err)
	}
	first, _ := f.out.Get(ctx, req.PartialKey)
	if err := f.out.Delete(ctx, req.PartialKey); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RunTask(ctx, f.request(1, 2)); err != nil {
		t.Fatal(err)
	}
	second, _ := f.out.Get(ctx, req.PartialKey)
	if string(first) != string(second) || len(first) == 0 {
		t.Error("recomputed partial differs")
	}
}

// TestAttemptWithoutLeaseIsFenced runs an attempt whose lease key is gone
// (the worker was stopped past its lease, or the job ended meanwhile): the
// worker computes, finds the lease gone right before committing, writes no
// partial and answers Aborted. An attempt whose lease is in place commits.
func TestAttemptWithoutLeaseIsFenced(t *testing.T) {
	f := newFixture(t)
	_, c, _ := f.start(nil)
	ctx := context.Background()
	req := f.request(2, 1)
	if _, err := f.cli.Delete(ctx, cluster.Keys{}.Lease("job-1", 2, 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RunTask(ctx, req); status.Code(err) != codes.Aborted {
		t.Fatalf("RunTask without a lease: %v, want Aborted", err)
	}
	if _, err := f.out.Get(ctx, req.PartialKey); !errors.Is(err, lake.ErrNotExist) {
		t.Fatalf("a fenced attempt left its partial: %v", err)
	}
	if _, err := c.RunTask(ctx, f.request(2, 2)); err != nil {
		t.Fatalf("leased attempt: %v", err)
	}
	if _, err := f.out.Get(ctx, req.PartialKey); err != nil {
		t.Fatalf("the leased attempt committed nothing: %v", err)
	}
}

func TestRunTaskErrors(t *testing.T) {
	f := newFixture(t)
	_, c, _ := f.start(nil)
	ctx := context.Background()
	if err := f.src.Put(ctx, "events/hour=2026-11-27T00/bucket=0000/garbage.parquet", []byte("not parquet")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		adjust func(*pb.RunTaskRequest)
		code   codes.Code
	}{
		{"no job", func(r *pb.RunTaskRequest) { r.JobId = "" }, codes.InvalidArgument},
		{"no attempt", func(r *pb.RunTaskRequest) { r.Attempt = 0 }, codes.InvalidArgument},
		{"bad window", func(r *pb.RunTaskRequest) { r.WindowTo = r.WindowFrom }, codes.InvalidArgument},
		{"bad lake", func(r *pb.RunTaskRequest) { r.LakeUri = "gopher://x" }, codes.InvalidArgument},
		{"missing file", func(r *pb.RunTaskRequest) {
			r.FileKeys = append(r.FileKeys, "events/hour=2026-11-27T00/bucket=0000/gone.parquet")
		}, codes.NotFound},
		{"corrupt file", func(r *pb.RunTaskRequest) {
			r.FileKeys = append(r.FileKeys, "events/hour=2026-11-27T00/bucket=0000/garbage.parquet")
		}, codes.DataLoss},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := f.request(0, 1)
			req.JobId = "job-" + strings.ReplaceAll(tc.name, " ", "-")
			req.PartialKey = results.PartialKey(req.JobId, 0)
			tc.adjust(req)
			_, err := c.RunTask(ctx, req)
			if status.Code(err) != tc.code {
				t.Fatalf("err = %v, want %v", err, tc.code)
			}
		})
	}
}

// TestJoinAndParallelism: calls for the same attempt join one computation;
// different tasks queue for the worker's slots.
func TestJoinAndParallelism(t *testing.T) {
	f := newFixture(t)
	w, c, _ := f.start(func(c *Config) { c.Parallelism, c.Slow = 1, 300*time.Millisecond })
	ctx := context.Background()
	var wg sync.WaitGroup
	start := time.Now()
	errs := make(chan error, 4)
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := 0
			if i >= 2 {
				b = i - 1 // buckets 1 and 2; two calls share bucket 0's attempt
			}
			_, err := c.RunTask(ctx, f.request(b, 1))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Errorf("3 tasks of 300ms on 1 slot took %v", d)
	}
	if n := value(w.metrics.tasks.WithLabelValues(outcomeOK)); n != 3 {
		t.Errorf("computed %v tasks, want 3 (two calls joined)", n)
	}
}

// TestCancelledCallStopsTask: when the caller gives up, the computation
// stops (the slow sleep is interrupted).
func TestCancelledCallStopsTask(t *testing.T) {
	f := newFixture(t)
	w, c, _ := f.start(func(c *Config) { c.Slow = time.Minute })
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := c.RunTask(ctx, f.request(0, 1)); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("err = %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for value(w.metrics.tasks.WithLabelValues(outcomeCancelled)) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("task not cancelled")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestCloseDrainsAndDeregisters: Close lets a running task finish, refuses
// new ones, and removes the registration at once.
func TestCloseDrainsAndDeregisters(t *testing.T) {
	f := newFixture(t)
	w, c, _ := f.start(func(c *Config) { c.Slow = 300 * time.Millisecond })
	ctx := context.Background()
	done := make(chan error, 1)
	go func() {
		_, err := c.RunTask(ctx, f.request(0, 1))
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("running task: %v", err)
	}
	if _, err := f.out.Get(ctx, results.PartialKey("job-1", 0)); err != nil {
		t.Fatalf("partial of the drained task: %v", err)
	}
	resp, err := f.cli.Get(ctx, cluster.Keys{}.Worker("w1"))
	if err != nil || len(resp.Kvs) != 0 {
		t.Fatalf("registration still there: %v %v", resp.Kvs, err)
	}
	if _, err := w.RunTask(ctx, f.request(1, 1)); status.Code(err) != codes.Unavailable {
		t.Fatalf("task after close: %v", err)
	}
}

// TestRegistersAgain: a worker whose lease is lost registers again.
func TestRegistersAgain(t *testing.T) {
	f := newFixture(t)
	f.start(nil)
	ctx := context.Background()
	key := cluster.Keys{}.Worker("w1")
	resp, err := f.cli.Get(ctx, key)
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatal(resp, err)
	}
	if _, err := f.cli.Revoke(ctx, clientv3.LeaseID(resp.Kvs[0].Lease)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, err := f.cli.Get(ctx, key)
		if err == nil && len(r.Kvs) == 1 && r.Kvs[0].Lease != resp.Kvs[0].Lease {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("worker did not register again")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestClusterTTL: without its own TTL a worker uses the cluster's setting.
func TestClusterTTL(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.cli.Put(ctx, cluster.Keys{}.Settings(), `{"worker_ttl_seconds":7}`); err != nil {
		t.Fatal(err)
	}
	f.start(nil)
	resp, err := f.cli.Get(ctx, cluster.Keys{}.Worker("w1"))
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatal(resp, err)
	}
	ttl, err := f.cli.TimeToLive(ctx, clientv3.LeaseID(resp.Kvs[0].Lease))
	if err != nil || ttl.GrantedTTL != 7 {
		t.Fatalf("granted TTL %d, err %v", ttl.GrantedTTL, err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		adjust func(*Config)
		ok     bool
	}{
		{"defaults with etcd", func(c *Config) {}, true},
		{"no etcd", func(c *Config) { c.Etcd = "" }, false},
		{"short ttl", func(c *Config) { c.LeaseTTL = time.Second }, false},
		{"bad id", func(c *Config) { c.ID = "a/b" }, false},
		{"bad prefix", func(c *Config) { c.EtcdPrefix = "clickstream" }, false},
		{"negative parallelism", func(c *Config) { c.Parallelism = -1 }, false},
		{"listen beyond loopback", func(c *Config) { c.Listen = ":7401" }, false},
		{"metrics beyond loopback", func(c *Config) { c.MetricsListen = "10.0.0.1:9101" }, false},
		{"beyond loopback with --insecure", func(c *Config) { c.Listen, c.MetricsListen, c.Insecure = ":7401", ":9101", true }, true},
		{"no lake root", func(c *Config) { c.LakeRoots = nil }, false},
		{"no output root", func(c *Config) { c.OutputRoots = nil }, false},
		{"bare root", func(c *Config) { c.OutputRoots = []string{"s3://"} }, false},
		{"root with an uppercase bucket", func(c *Config) { c.OutputRoots = []string{"s3://Results"} }, false},
		{"root of another scheme", func(c *Config) { c.LakeRoots = []string{"/lake"} }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := NewConfig()
			c.Etcd = "127.0.0.1:2379"
			c.LakeRoots, c.OutputRoots = []string{"s3://lake"}, []string{"file:///out"}
			tc.adjust(&c)
			if err := c.Validate(); (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v", err)
			}
		})
	}
}

// value reads a counter.
func value(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

// TestTaskConfinedToRoots: a task naming a lake or an output outside the
// worker's roots, or a partial key not its own, is refused and writes
// nothing; one inside them runs.
func TestTaskConfinedToRoots(t *testing.T) {
	f := newFixture(t)
	elsewhere := laketest.NewFile(t)
	// Roots given in another form than the coordinator's (localhost, a
	// trailing slash) confine the same stores.
	_, client, _ := f.start(func(c *Config) {
		c.LakeRoots = []string{strings.Replace(f.src.URI(), "file://", "file://localhost", 1) + "/"}
	})
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		adjust func(*pb.RunTaskRequest)
	}{
		{"lake outside", func(r *pb.RunTaskRequest) { r.LakeUri = "file:///" }},
		{"lake beside the root", func(r *pb.RunTaskRequest) { r.LakeUri = f.src.URI() + "-x" }},
		{"lake through ..", func(r *pb.RunTaskRequest) { r.LakeUri = f.src.URI() + "/../x" }},
		{"lake through .. back in", func(r *pb.RunTaskRequest) { r.LakeUri = f.src.URI() + "/../" + filepath.Base(f.out.URI()) }},
		{"output outside", func(r *pb.RunTaskRequest) { r.PartialUri = elsewhere.URI() }},
		{"output through ..", func(r *pb.RunTaskRequest) { r.PartialUri = f.out.URI() + "/../" }},
		{"another partial key", func(r *pb.RunTaskRequest) { r.PartialKey = ".ssh/authorized_keys" }},
		{"another job's partial", func(r *pb.RunTaskRequest) { r.PartialKey = results.PartialKey("job-2", 0) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := f.request(0, 1)
			tc.adjust(req)
			_, err := client.RunTask(ctx, req)
			if status.Code(err) != codes.PermissionDenied {
				t.Fatalf("RunTask: %v, want PermissionDenied", err)
			}
		})
	}
	for _, s := range []lake.Store{f.out, elsewhere} {
		keys, err := s.List(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) != 0 {
			t.Fatalf("refused tasks wrote %v into %s", keys, s.URI())
		}
	}
	sub := f.request(0, 1)
	if _, err := client.RunTask(ctx, sub); err != nil {
		t.Fatalf("a task inside the roots: %v", err)
	}
}

// TestTLSIdentity: with mutual TLS, the worker serves coordinators only,
// and its id is the one its certificate names.
func TestTLSIdentity(t *testing.T) {
	f := newFixture(t)
	ca, err := pki.NewCA("test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	source := func(role mtls.Role, name string) *mtls.Source {
		src, err := mtls.Issue(ca, mtls.Identity{Role: role, Name: name})
		if err != nil {
			t.Fatal(err)
		}
		return src
	}
	for _, tc := range []struct {
		name string
		id   string
		src  *mtls.Source
		want string
	}{
		{"viewer certificate", "", source(mtls.RoleViewer, "w1"), "a worker needs role worker"},
		{"another id", "w2", source(mtls.RoleWorker, "w1"), `--id "w2" differs from the certificate's identity spiffe://clickstream/worker/w1`},
	} {
		cfg := NewConfig()
		cfg.Etcd, cfg.ID, cfg.TLSSource = strings.Join(f.endpoints, ","), tc.id, tc.src
		cfg.LakeRoots, cfg.OutputRoots = []string{f.src.URI()}, []string{f.out.URI()}
		if _, err := New(cfg, nil, nil); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
	}

	w, _, _ := f.start(func(c *Config) { c.ID, c.TLSSource = "", source(mtls.RoleWorker, "w1") })
	if w.ID() != "w1" {
		t.Fatalf("id %q, want the certificate's w1", w.ID())
	}
	call := func(role mtls.Role) error {
		conn, err := grpc.NewClient(w.Addr(), mtls.DialOption(source(role, "c"), mtls.Expect(mtls.Identity{Role: mtls.RoleWorker, Name: "w1"})))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_, err = pb.NewWorkerServiceClient(conn).RunTask(context.Background(), f.request(0, 1))
		return err
	}
	if err := call(mtls.RoleCoordinator); err != nil {
		t.Fatalf("coordinator: %v", err)
	}
	for _, r := range []mtls.Role{mtls.RoleOperator, mtls.RoleViewer, mtls.RoleWorker} {
		if err := call(r); status.Code(err) != codes.PermissionDenied {
			t.Errorf("%s: got %v, want PermissionDenied", r, err)
		}
	}
	// Plain text is not served at all.
	conn, err := grpc.NewClient(w.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := pb.NewWorkerServiceClient(conn).RunTask(context.Background(), f.request(1, 1)); err == nil {
		t.Fatal("plain-text call served")
	}
}
