package coordinator

import (
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/dataco/clickstream/internal/aggregate"
	"github.com/dataco/clickstream/internal/cluster"
	"github.com/dataco/clickstream/internal/cluster/clustertest"
	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/lake/laketest"
	pb "github.com/dataco/clickstream/proto/clickstream/v1"
)

// Flags of BenchmarkScale.
var (
	scaleTasks       = flag.String("scale.tasks", "16,1024,10000", "BenchmarkScale: tasks per job, comma-separated")
	scaleWorkers     = flag.String("scale.workers", "100,1000", "BenchmarkScale: simulated workers, comma-separated")
	scaleParallelism = flag.Int("scale.parallelism", 4, "BenchmarkScale: task slots per simulated worker")
	scaleTaskCost    = flag.Duration("scale.task-cost", 10*time.Millisecond, "BenchmarkScale: mean modelled duration of a task (uniform in [0.5, 1.5] times it; no CPU)")
	scaleProfile     = flag.String("scale.cpuprofile", "", "BenchmarkScale: write a CPU profile of the dispatch phases (every job's, first task to last task done) to this file")
	scaleEtcd        = flag.String("scale.etcd", "embedded", "BenchmarkScale: 'embedded' (an etcd in the test process) or 'stack' (CLICKSTREAM_ETCD_ENDPOINTS, whose process CPU is read from $CLICKSTREAM_STACK/run/etcd.pid)")
)

// BenchmarkScale measures the leader's dispatch at scale: a real
// coordinator (the leader) and a real etcd, many simulated workers
// registered in etcd and run in this process (a TaskRunner that waits the
// task's modelled duration and answers for an empty partial, written when
// every task is done), and jobs of
// many tasks, planned by a FilePlanner that lists one file per user
// bucket without reading a lake. A second coordinator, a standby, takes
// the submit and serves the client's wait (WatchJob), as `clickstream
// submit --wait` through any coordinator does.
//
// Per job it measures the dispatch phase, from the first task's RunTask
// to every task recorded done (planning before it, merge and commit after
// it excluded), and reports:
//
//	tasks/s           tasks dispatched and recorded done per second
//	cpu-ms/task       CPU of the test process: both coordinators, the
//	                  simulated workers (timers) and, with -scale.etcd=embedded, etcd
//	etcd-cpu-ms/task  CPU of the etcd process (-scale.etcd=stack only)
//	txns/task         etcd transactions of the leader
//	reqs/task         etcd requests of the leader (unary calls and stream messages)
//	etcd-B/task       bytes between the leader and etcd, both ways
//	wait-B/task       bytes between the standby and etcd (the client's wait)
//	plan-ms           submit to the first task (planning), per job
//	job-ms            submit to the job's end, per job
//
// Run it with, for example:
//
//	go test -run '^$' -bench Scale -benchtime 1x -count 3 ./coordinator/ \
//	    -scale.tasks 16,1024,10000 -scale.workers 100,1000
func BenchmarkScale(b *testing.B) {
	tasks, err := intList(*scaleTasks)
	if err != nil {
		b.Fatal(err)
	}
	workers, err := intList(*scaleWorkers)
	if err != nil {
		b.Fatal(err)
	}
	for _, nw := range workers {
		for _, nt := range tasks {
			b.Run(fmt.Sprintf("workers=%d/tasks=%d", nw, nt), func(b *testing.B) {
				s := newScaleRig(b, nw, *scaleParallelism, nt)
				s.run(b)
			})
		}
	}
}

func intList(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%q: want positive integers, comma-separated", s)
		}
		out = append(out, n)
	}
	return out, nil
}

// scaleRig is BenchmarkScale's cluster.
type scaleRig struct {
	tasks   int
	leader  *Coordinator
	standby *Coordinator
	client  *Client
	out     lake.Store
	runner  *scaleRunner
	lm, sm  *etcdMeter // the leader's and the standby's etcd traffic
	etcdPID int        // 0: etcd runs in this process
	// mark is set when the dispatch phase of the running job ends.
	mu   sync.Mutex
	end  *scaleSample
	endc chan struct{}
}

func newScaleRig(b *testing.B, workers, parallelism, tasks int) *scaleRig {
	b.Helper()
	ctx := context.Background()
	s := &scaleRig{tasks: tasks, lm: &etcdMeter{}, sm: &etcdMeter{}}
	var endpoints []string
	switch *scaleEtcd {
	case "embedded":
		endpoints = clustertest.StartEtcd(b)
	case "stack":
		eps := os.Getenv("CLICKSTREAM_ETCD_ENDPOINTS")
		if eps == "" {
			b.Skip("-scale.etcd=stack needs CLICKSTREAM_ETCD_ENDPOINTS")
		}
		endpoints = strings.Split(eps, ",")
		if data, err := os.ReadFile(filepath.Join(os.Getenv("CLICKSTREAM_STACK"), "run", "etcd.pid")); err == nil {
			if f := strings.Fields(string(data)); len(f) > 0 {
				s.etcdPID, _ = strconv.Atoi(f[0])
			}
		}
	default:
		b.Fatalf("-scale.etcd=%q: want embedded or stack", *scaleEtcd)
	}
	prefix := fmt.Sprintf("/bench/scale-%d-%d", time.Now().UnixNano(), rand.Uint32())
	keys := cluster.Keys{Prefix: prefix}
	admin := s.dial(b, endpoints, nil)
	b.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = admin.Delete(cctx, prefix+"/", clientv3.WithPrefix())
	})

	src := laketest.NewFile(b)
	if _, err := lake.EnsureMeta(ctx, src, tasks); err != nil {
		b.Fatal(err)
	}
	s.out = laketest.NewFile(b)
	empty, err := aggregate.NewPartial().MarshalBinary()
	if err != nil {
		b.Fatal(err)
	}
	s.runner = &scaleRunner{cost: *scaleTaskCost, partial: empty, sum: sha256.Sum256(empty)}

	// The simulated workers share one lease, kept alive here: their
	// keep-alives are not per task, and a thousand of them would only
	// load etcd with what the benchmark does not measure.
	g, err := admin.Grant(ctx, 30)
	if err != nil {
		b.Fatal(err)
	}
	kctx, stop := context.WithCancel(ctx)
	b.Cleanup(stop)
	ka, err := admin.KeepAlive(kctx, g.ID)
	if err != nil {
		b.Fatal(err)
	}
	go func() {
		for range ka {
		}
	}()
	for i := range workers {
		id := fmt.Sprintf("sim-%04d", i)
		info := cluster.WorkerInfo{ID: id, Addr: "sim-" + id + ":1", Parallelism: parallelism, Started: time.Now()}
		if _, err := admin.Put(ctx, keys.Worker(id), encode(info), clientv3.WithLease(g.ID)); err != nil {
			b.Fatal(err)
		}
	}

	start := func(cli *clientv3.Client, hook func(context.Context, string)) *Coordinator {
		cfg := NewConfig()
		cfg.Listen, cfg.Etcd, cfg.EtcdPrefix = "127.0.0.1:0", strings.Join(endpoints, ","), prefix
		cfg.Lake, cfg.S3 = src.URI(), laketest.S3Options()
		cfg.Runner, cfg.Planner = s.runner, scalePlanner{tasks: tasks}
		cfg.BackupAfter = -1
		cfg.JobRetention = 0
		cfg.Limits.MaxSubmitRate, cfg.Limits.MaxSubmitBurst = 1000, 1000 // one client submits job after job
		cfg.testHook = hook
		c, err := New(cfg, cli, slog.New(slog.DiscardHandler), nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Start(ctx); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
		return c
	}
	s.leader = start(s.dial(b, endpoints, s.lm), func(ctx context.Context, point string) {
		if point == pointBeforeMerge {
			s.mark()
			if *scaleProfile != "" {
				pprof.StopCPUProfile() // the dispatch phase is over
			}
			if err := s.runner.commitPartials(ctx, s.out); err != nil {
				b.Error(err)
			}
		}
	})
	waitUntil(b, "leadership", 30*time.Second, s.leader.IsLeader)
	s.standby = start(s.dial(b, endpoints, s.sm), nil)
	cl, err := Dial(s.standby.Addr(), 10*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cl.Close() })
	s.client = cl
	return s
}

// dial returns an etcd client whose traffic m counts (nil: none).
func (s *scaleRig) dial(b *testing.B, endpoints []string, m *etcdMeter) *clientv3.Client {
	b.Helper()
	cfg := clientv3.Config{Endpoints: endpoints, DialTimeout: 10 * time.Second, Logger: zap.NewNop()}
	if m != nil {
		cfg.DialOptions = m.dialOptions()
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cli.Close() })
	return cli
}

// scaleSample is what the rig's counters read at one moment.
type scaleSample struct {
	at                      time.Time
	cpu, etcdCPU            time.Duration
	txns, reqs, bytes, wait int64
}

func (s *scaleRig) sample() *scaleSample {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return &scaleSample{
		at:      time.Now(),
		cpu:     time.Duration(ru.Utime.Nano() + ru.Stime.Nano()),
		etcdCPU: procCPU(s.etcdPID),
		txns:    s.lm.txns.Load(),
		reqs:    s.lm.reqs.Load(),
		bytes:   s.lm.bytes.Load(),
		wait:    s.sm.bytes.Load(),
	}
}

// mark records the end of the dispatch phase of the running job.
func (s *scaleRig) mark() {
	smp := s.sample()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.end == nil && s.endc != nil {
		s.end = smp
		close(s.endc)
	}
}

func (s *scaleRig) run(b *testing.B) {
	var dispatch, cpu, etcdCPU time.Duration
	var txns, reqs, bytes, wait int64
	var plan, job time.Duration
	spec := &pb.JobSpec{From: timestampOf(tFrom), To: timestampOf(tTo), OutUri: s.out.URI()}
	var prof *os.File
	if *scaleProfile != "" {
		var err error
		if prof, err = os.Create(*scaleProfile); err != nil {
			b.Fatal(err)
		}
		defer prof.Close()
	}
	b.ResetTimer()
	for range b.N {
		s.mu.Lock()
		s.end, s.endc = nil, make(chan struct{})
		endc := s.endc
		s.mu.Unlock()
		first := make(chan *scaleSample, 1)
		s.runner.arm(func() {
			if prof != nil {
				_ = pprof.StartCPUProfile(prof)
			}
			first <- s.sample()
		})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		submitted := time.Now()
		j, err := s.client.Submit(ctx, spec)
		if err != nil {
			b.Fatal(err)
		}
		j, err = s.client.Wait(ctx, j.GetId(), nil)
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		if j.GetState() != pb.JobState_JOB_STATE_SUCCEEDED {
			b.Fatalf("job %s: %s", j.GetState(), j.GetError())
		}
		ended := time.Now()
		<-endc
		start := <-first
		end := s.end
		dispatch += end.at.Sub(start.at)
		cpu += end.cpu - start.cpu
		etcdCPU += end.etcdCPU - start.etcdCPU
		txns += end.txns - start.txns
		reqs += end.reqs - start.reqs
		bytes += end.bytes - start.bytes
		wait += end.wait - start.wait
		plan += start.at.Sub(submitted)
		job += ended.Sub(submitted)
	}
	b.StopTimer()
	n := float64(b.N * s.tasks)
	b.ReportMetric(n/dispatch.Seconds(), "tasks/s")
	b.ReportMetric(float64(cpu.Microseconds())/1000/n, "cpu-ms/task")
	if s.etcdPID != 0 {
		b.ReportMetric(float64(etcdCPU.Microseconds())/1000/n, "etcd-cpu-ms/task")
	}
	b.ReportMetric(float64(txns)/n, "txns/task")
	b.ReportMetric(float64(reqs)/n, "reqs/task")
	b.ReportMetric(float64(bytes)/n, "etcd-B/task")
	b.ReportMetric(float64(wait)/n, "wait-B/task")
	b.ReportMetric(float64(plan.Milliseconds())/float64(b.N), "plan-ms")
	b.ReportMetric(float64(job.Milliseconds())/float64(b.N), "job-ms")
}

// procCPU is the CPU time process pid has used (0 for pid 0, or if it
// cannot be read).
func procCPU(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The fields after the command name, which is in parentheses.
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	const ticks = 100 // USER_HZ
	return time.Duration(utime+stime) * time.Second / ticks
}

// scalePlanner plans one task per bucket, each reading one file, without
// reading a lake.
type scalePlanner struct{ tasks int }

func (p scalePlanner) PlanFiles(context.Context, string, lake.Store, time.Time, time.Time, int64) (map[int][]lake.DataFile, int64, bool, error) {
	files := make(map[int][]lake.DataFile, p.tasks)
	for k := range p.tasks {
		files[k] = []lake.DataFile{{Key: fmt.Sprintf("data/sim/bucket=%05d/part-0.parquet", k), Bucket: k, Events: 1000, Bytes: 64 << 10}}
	}
	return files, 1, true, nil
}

// scaleRunner is the simulated workers: a task waits its modelled
// duration and answers the digest of an empty partial. The partials are
// written when the job's dispatch phase has ended (commitPartials), for
// the leader's merge: the workers' I/O is no part of what is measured.
type scaleRunner struct {
	cost    time.Duration
	partial []byte
	sum     [sha256.Size]byte

	mu        sync.Mutex
	first     func()          // called by the next call, once
	committed map[string]bool // partial keys answered
}

// commitPartials writes the partials the tasks answered for.
func (r *scaleRunner) commitPartials(ctx context.Context, out lake.Store) error {
	r.mu.Lock()
	keys := r.committed
	r.committed = nil
	r.mu.Unlock()
	for k := range keys {
		if err := out.PutIfAbsent(ctx, k, r.partial); err != nil && !errors.Is(err, lake.ErrExists) {
			return err
		}
	}
	return nil
}

func (r *scaleRunner) arm(first func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.first = first
}

func (r *scaleRunner) RunTask(ctx context.Context, _, _ string, req *pb.RunTaskRequest) (*pb.RunTaskResponse, error) {
	r.mu.Lock()
	first := r.first
	r.first = nil
	r.mu.Unlock()
	if first != nil {
		first()
	}
	if r.cost > 0 {
		// Deterministic per task: the same job costs the same.
		d := r.cost/2 + time.Duration(uint64(req.GetTaskId())*2654435761%1000)*r.cost/1000
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
	}
	resp := &pb.RunTaskResponse{PartialBytes: int64(len(r.partial)), PartialSha256: r.sum[:]}
	r.mu.Lock()
	if r.committed == nil {
		r.committed = map[string]bool{}
	}
	resp.AlreadyCommitted = r.committed[req.GetPartialKey()]
	r.committed[req.GetPartialKey()] = true
	r.mu.Unlock()
	return resp, nil
}

// etcdMeter counts an etcd client's requests and the bytes of its
// messages, both ways.
type etcdMeter struct {
	txns, reqs, bytes atomic.Int64
}

const txnMethod = "/etcdserverpb.KV/Txn"

func (m *etcdMeter) dialOptions() []grpc.DialOption {
	unary := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		m.reqs.Add(1)
		if method == txnMethod {
			m.txns.Add(1)
		}
		m.bytes.Add(int64(msgSize(req)))
		err := invoker(ctx, method, req, reply, cc, opts...)
		m.bytes.Add(int64(msgSize(reply)))
		return err
	}
	stream := func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		cs, err := streamer(ctx, desc, cc, method, opts...)
		if err != nil {
			return nil, err
		}
		return &meteredStream{ClientStream: cs, m: m}, nil
	}
	return []grpc.DialOption{grpc.WithChainUnaryInterceptor(unary), grpc.WithChainStreamInterceptor(stream)}
}

func msgSize(v any) int {
	if p, ok := v.(proto.Message); ok {
		return proto.Size(p)
	}
	return 0
}

type meteredStream struct {
	grpc.ClientStream
	m *etcdMeter
}

func (s *meteredStream) SendMsg(v any) error {
	s.m.reqs.Add(1)
	s.m.bytes.Add(int64(msgSize(v)))
	return s.ClientStream.SendMsg(v)
}

func (s *meteredStream) RecvMsg(v any) error {
	err := s.ClientStream.RecvMsg(v)
	if err == nil {
		s.m.bytes.Add(int64(msgSize(v)))
	}
	return err
}
