package worker

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io/fs"
	"net"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"slices"
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
	"github.com/dataco/clickstream/internal/obs"
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
		req.FileSizes = append(req.FileSizes, df.Bytes)
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
		// The answer vouches for the bytes committed.
		if sum := sha256.Sum256(data); !bytes.Equal(r.GetPartialSha256(), sum[:]) || r.GetPartialBytes() != int64(len(data)) {
			t.Errorf("bucket %d: answer's digest %x (%d bytes), committed partial's %x (%d bytes)",
				b, r.GetPartialSha256(), r.GetPartialBytes(), sum, len(data))
		}
		got := aggregate.NewPartial()
		if err := got.UnmarshalBinary(data); err != nil {
			t.Fatal(err)
		}
		want := f.reference(b)
		if !reflect.DeepEqual(got.Result(aggregate.Window{From: tFrom, To: tTo}), want.Result(aggregate.Window{From: tFrom, To: tTo})) || got.Events != want.Events {
			t.Errorf("bucket %d: partial differs from the reference", b)
		}
		for k, row := range got.Rows {
			if row.UserHashes != nil {
				t.Fatalf("bucket %d, key %v: user hashes in a partial of a job without user sets", b, k)
			}
		}
		// Another attempt (a backup, a retry) succeeds without overwriting,
		// vouching for the same bytes.
		r2, err := c.RunTask(ctx, f.request(b, 2))
		if err != nil || !r2.GetAlreadyCommitted() || !bytes.Equal(r2.GetPartialSha256(), r.GetPartialSha256()) {
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

// TestRunTaskUserSets: a task of a job with user sets commits a partial
// whose rows carry each key's set of user hashes, one a user.
func TestRunTaskUserSets(t *testing.T) {
	f := newFixture(t)
	_, c, _ := f.start(nil)
	ctx := context.Background()
	req := f.request(0, 1)
	req.UserSets = true
	if _, err := c.RunTask(ctx, req); err != nil {
		t.Fatal(err)
	}
	data, err := f.out.Get(ctx, results.PartialKey("job-1", 0))
	if err != nil {
		t.Fatal(err)
	}
	got := aggregate.NewPartial()
	if err := got.UnmarshalBinary(data); err != nil {
		t.Fatal(err)
	}
	if len(got.Rows) == 0 {
		t.Fatal("an empty partial proves nothing")
	}
	for k, row := range got.Rows {
		if int64(len(row.UserHashes)) != row.Users {
			t.Errorf("key %v: %d user hashes for %d users", k, len(row.UserHashes), row.Users)
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
			r.FileSizes = append(r.FileSizes, 10)
		}, codes.NotFound},
		{"corrupt file", func(r *pb.RunTaskRequest) {
			r.FileKeys = append(r.FileKeys, "events/hour=2026-11-27T00/bucket=0000/garbage.parquet")
			r.FileSizes = append(r.FileSizes, int64(len("not parquet")))
		}, codes.DataLoss},
		{"file without a size", func(r *pb.RunTaskRequest) { r.FileSizes = r.FileSizes[1:] }, codes.InvalidArgument},
		{"negative size", func(r *pb.RunTaskRequest) { r.FileSizes[0] = -1 }, codes.InvalidArgument},
		{"file twice", func(r *pb.RunTaskRequest) {
			r.FileKeys, r.FileSizes = append(r.FileKeys, r.FileKeys[0]), append(r.FileSizes, r.FileSizes[0])
		}, codes.InvalidArgument},
		{"not a data file", func(r *pb.RunTaskRequest) {
			r.FileKeys, r.FileSizes = append(r.FileKeys, "events/x.json"), append(r.FileSizes, 1)
		}, codes.InvalidArgument},
		{"bad job id", func(r *pb.RunTaskRequest) { r.JobId, r.PartialKey = "..", results.PartialKey("..", 0) }, codes.InvalidArgument},
		{"negative bucket", func(r *pb.RunTaskRequest) { r.Bucket, r.PartialKey = -1, results.PartialKey(r.JobId, -1) }, codes.InvalidArgument},
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
		{"root of another scheme", func(c *Config) { c.LakeRoots = []string{"gs://lake"} }, false},
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

// TestTaskKeysConfinedToTheLake: file keys that are absolute, climb with
// "..", or leave the lake's folder through a symbolic link are refused,
// and the task commits nothing; a link that stays inside is read.
func TestTaskKeysConfinedToTheLake(t *testing.T) {
	f := newFixture(t)
	_, c, _ := f.start(nil)
	ctx := context.Background()
	lakeDir := f.src.(*lake.FileStore).Dir()
	base := f.request(0, 1)
	key, size := base.FileKeys[0], base.FileSizes[0]
	data, err := f.src.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	// A valid data file outside the lake, and links to it from inside.
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, path.Base(key)), data, 0o644); err != nil {
		t.Fatal(err)
	}
	hourDir := filepath.Join(lakeDir, filepath.FromSlash(path.Dir(path.Dir(key))))
	if err := os.Symlink(outside, filepath.Join(hourDir, "bucket=0099")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, path.Base(key)), filepath.Join(lakeDir, filepath.FromSlash(path.Dir(key)), "link.parquet")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(path.Base(key), filepath.Join(lakeDir, filepath.FromSlash(path.Dir(key)), "inside.parquet")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, key string
		code      codes.Code
	}{
		{"absolute", filepath.Join(outside, path.Base(key)), codes.InvalidArgument},
		{"climbing", "events/../../" + path.Base(outside) + "/" + path.Base(key), codes.InvalidArgument},
		{"dot segment", "events/./" + strings.TrimPrefix(key, "events/"), codes.InvalidArgument},
		{"outside the events folder", "_lake.json", codes.InvalidArgument},
		{"linked folder", path.Dir(path.Dir(key)) + "/bucket=0099/" + path.Base(key), codes.PermissionDenied},
		{"linked file", path.Dir(key) + "/link.parquet", codes.PermissionDenied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := f.request(0, 1)
			req.FileKeys, req.FileSizes = []string{tc.key}, []int64{size}
			if _, err := c.RunTask(ctx, req); status.Code(err) != tc.code {
				t.Fatalf("RunTask: %v, want %v", err, tc.code)
			}
			if objs, err := f.out.List(ctx, ""); err != nil || len(objs) != 0 {
				t.Fatalf("a refused task wrote %v (%v)", keysOf(objs), err)
			}
		})
	}
	req := f.request(0, 1)
	req.FileKeys, req.FileSizes = []string{path.Dir(key) + "/inside.parquet"}, []int64{size}
	if _, err := c.RunTask(ctx, req); err != nil {
		t.Fatalf("a key linked inside the lake: %v", err)
	}
}

// TestTaskStoresConfinedThroughLinks: a lake or an output below the
// worker's roots, reached through a symbolic link that leads out of them,
// is refused, and nothing is created outside the roots.
func TestTaskStoresConfinedThroughLinks(t *testing.T) {
	f := newFixture(t)
	// The roots are the fixture's lake and output folders; lakes and
	// outputs below them are allowed.
	lakeRoot, outRoot := f.src.(*lake.FileStore).Dir(), f.out.(*lake.FileStore).Dir()
	// Another lake with the same files, outside the roots.
	elsewhere := t.TempDir()
	if err := os.CopyFS(filepath.Join(elsewhere, "lake"), os.DirFS(f.src.(*lake.FileStore).Dir())); err != nil {
		t.Fatal(err)
	}
	for _, root := range []string{lakeRoot, outRoot} {
		if err := os.Symlink(elsewhere, filepath.Join(root, "link")); err != nil {
			t.Fatal(err)
		}
	}
	_, c, _ := f.start(func(c *Config) {
		c.LakeRoots, c.OutputRoots = []string{"file://" + lakeRoot}, []string{"file://" + outRoot}
	})
	ctx := context.Background()
	before := treeOf(t, elsewhere)
	for _, tc := range []struct {
		name   string
		adjust func(*pb.RunTaskRequest)
	}{
		{"lake through a link", func(r *pb.RunTaskRequest) { r.LakeUri = "file://" + lakeRoot + "/link/lake" }},
		{"output through a link", func(r *pb.RunTaskRequest) { r.PartialUri = "file://" + outRoot + "/link/out" }},
		{"output is the link", func(r *pb.RunTaskRequest) { r.PartialUri = "file://" + outRoot + "/link" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := f.request(0, 1)
			tc.adjust(req)
			if _, err := c.RunTask(ctx, req); status.Code(err) != codes.PermissionDenied {
				t.Fatalf("RunTask: %v, want PermissionDenied", err)
			}
		})
	}
	if got := treeOf(t, elsewhere); !slices.Equal(got, before) {
		t.Fatalf("refused tasks changed the folder outside the roots: %q, was %q", got, before)
	}
	if _, err := c.RunTask(ctx, f.request(0, 1)); err != nil {
		t.Fatalf("a task inside the roots: %v", err)
	}
}

// TestTaskReadsRecordedSizes: a data file whose size is not the one its
// manifest recorded (replaced by a larger or a shorter one) fails the task
// with DataLoss and commits nothing; nothing is read past the size.
func TestTaskReadsRecordedSizes(t *testing.T) {
	f := newFixture(t)
	_, c, _ := f.start(nil)
	ctx := context.Background()
	req := f.request(0, 1)
	key := req.FileKeys[0]
	data, err := f.src.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		object []byte
	}{
		{"larger", append(bytes.Clone(data), make([]byte, 1<<20)...)},
		{"one byte more", append(bytes.Clone(data), 0)},
		{"shorter", data[:len(data)-1]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := f.src.Put(ctx, key, tc.object); err != nil {
				t.Fatal(err)
			}
			_, err := c.RunTask(ctx, f.request(0, 1))
			if status.Code(err) != codes.DataLoss || !strings.Contains(err.Error(), "recorded") {
				t.Fatalf("RunTask: %v, want DataLoss about the recorded size", err)
			}
			if _, err := f.out.Get(ctx, req.PartialKey); !errors.Is(err, lake.ErrNotExist) {
				t.Fatalf("a task reading a resized file committed: %v", err)
			}
		})
	}
	if err := f.src.Put(ctx, key, data); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RunTask(ctx, f.request(0, 2)); err != nil {
		t.Fatalf("the file at its recorded size: %v", err)
	}
}

// TestTaskStoredPartialForged: an attempt that finds its task's partial
// stored with other bytes than it computes (not written by an attempt of
// the task) does not vouch for it: DataLoss, not already_committed.
func TestTaskStoredPartialForged(t *testing.T) {
	f := newFixture(t)
	_, c, _ := f.start(nil)
	ctx := context.Background()
	req := f.request(1, 1)
	if _, err := c.RunTask(ctx, req); err != nil {
		t.Fatal(err)
	}
	good, _ := f.out.Get(ctx, req.PartialKey)
	forged := aggregate.NewPartial()
	forgedData, err := forged.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	for _, data := range [][]byte{forgedData, append(bytes.Clone(good), 0), good[:len(good)-1]} {
		if err := f.out.Put(ctx, req.PartialKey, data); err != nil {
			t.Fatal(err)
		}
		r, err := c.RunTask(ctx, f.request(1, 2))
		if status.Code(err) != codes.DataLoss {
			t.Fatalf("RunTask over a forged partial: %+v, %v; want DataLoss", r, err)
		}
	}
}

func keysOf(objs []lake.ObjectInfo) []string {
	var keys []string
	for _, o := range objs {
		keys = append(keys, o.Key)
	}
	return keys
}

// treeOf lists the paths under dir, sorted, without following links.
func treeOf(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		out = append(out, p)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// TestRegistrationCounts: the registration carries the attempts finished
// and failed, updated as they change.
func TestRegistrationCounts(t *testing.T) {
	f := newFixture(t)
	_, c, _ := f.start(func(cfg *Config) { cfg.LeaseTTL = 2 * time.Second })
	ctx := context.Background()
	if err := f.src.Put(ctx, "events/hour=2026-11-27T00/bucket=0000/garbage.parquet", []byte("not parquet")); err != nil {
		t.Fatal(err)
	}
	for b := range 2 {
		if _, err := c.RunTask(ctx, f.request(b, 1)); err != nil {
			t.Fatal(err)
		}
	}
	bad := f.request(2, 1)
	bad.FileKeys = append(bad.FileKeys, "events/hour=2026-11-27T00/bucket=0000/garbage.parquet")
	bad.FileSizes = append(bad.FileSizes, int64(len("not parquet")))
	if _, err := c.RunTask(ctx, bad); status.Code(err) != codes.DataLoss {
		t.Fatalf("corrupt file: %v", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := f.cli.Get(ctx, cluster.Keys{}.Worker("w1"))
		var info cluster.WorkerInfo
		if err == nil && len(resp.Kvs) == 1 && json.Unmarshal(resp.Kvs[0].Value, &info) == nil &&
			info.TasksDone == 2 && info.TasksFailed == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("registration %+v (err %v), want 2 tasks done and 1 failed", info, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRunBindsItsAddressFirst: Run binds the worker's own address before
// the metrics one, so that a metrics address of port 0 is never handed
// the port the worker was told to serve on: given the same address for
// both, it is the metrics server that cannot bind.
func TestRunBindsItsAddressFirst(t *testing.T) {
	f := newFixture(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	cfg := NewConfig()
	cfg.Listen, cfg.MetricsListen, cfg.Etcd, cfg.ID = addr, addr, strings.Join(f.endpoints, ","), "w-bind"
	cfg.LakeRoots, cfg.OutputRoots = []string{f.src.URI()}, []string{f.out.URI()}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = Run(ctx, cfg, obs.Runtime{Registerer: prometheus.NewRegistry()})
	if err == nil || !strings.Contains(err.Error(), "address already in use") || strings.Contains(err.Error(), "worker: listen") {
		t.Fatalf("Run: %v; want the metrics server's bind to fail, not the worker's", err)
	}
}

// TestRunTaskBots: a task sets bots' events apart into bot clicks by
// default, and counts them like anyone's when the job includes bots, by
// the column reader as by decoded rows.
func TestRunTaskBots(t *testing.T) {
	f := newFixture(t)
	_, c, _ := f.start(nil)
	ctx := context.Background()
	var evs []event.Event
	for _, e := range f.events {
		if lake.Bucket(e.UserID, f.buckets) == 2 {
			evs = append(evs, e)
		}
	}
	w := aggregate.Window{From: tFrom, To: tTo}
	for i, include := range []bool{false, true} {
		req := f.request(2, i+1)
		req.IncludeBots = include
		if _, err := c.RunTask(ctx, req); err != nil {
			t.Fatal(err)
		}
		data, err := f.out.Get(ctx, req.PartialKey)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.out.Delete(ctx, req.PartialKey); err != nil {
			t.Fatal(err)
		}
		got := aggregate.NewPartial()
		if err := got.UnmarshalBinary(data); err != nil {
			t.Fatal(err)
		}
		policy := aggregate.BotsApart
		if include {
			policy = aggregate.BotsIncluded
		}
		want := aggregate.ComputeWith(evs, w, 30*time.Minute, policy)
		var bots int64
		for k, r := range want.Rows {
			g := got.Rows[k]
			if g == nil || g.Clicks != r.Clicks || g.Users != r.Users || g.TimeSpentMs != r.TimeSpentMs || g.BotClicks != r.BotClicks {
				t.Fatalf("include bots %v: key %v: got %+v, want %+v", include, k, g, r)
			}
			bots += g.BotClicks
		}
		if len(got.Rows) != len(want.Rows) || (bots == 0) != include {
			t.Fatalf("include bots %v: %d rows (want %d), %d bot clicks", include, len(got.Rows), len(want.Rows), bots)
		}
	}
}
