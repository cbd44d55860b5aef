package chaos

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/dataco/clickstream/coordinator"
	"github.com/dataco/clickstream/internal/faultproxy"
	"github.com/dataco/clickstream/internal/lake"
	pb "github.com/dataco/clickstream/proto/clickstream/v1"
)

// Buckets is the user-bucket count of every run's lake: the tasks of a job.
const Buckets = 8

// Topology is the shape of a run's cluster.
type Topology struct {
	EtcdMembers  int
	Coordinators int
	Workers      int
	Ingests      int
	// IngestEnv, WorkerEnv and CoordinatorEnv add variables (failpoints)
	// to the first incarnation of a process; restarts run without them.
	IngestEnv      func(i int) []string
	WorkerEnv      func(i int) []string
	CoordinatorEnv func(i int) []string
	// WorkerSlow makes every task of the workers sleep this long first,
	// so that faults land while tasks run.
	WorkerSlow time.Duration
}

func (t *Topology) defaults() {
	t.EtcdMembers = max(t.EtcdMembers, 1)
	t.Coordinators = max(t.Coordinators, 1)
	t.Workers = max(t.Workers, 1)
	t.Ingests = max(t.Ingests, 1)
}

// Run is one pipeline run: its own etcd, versitygw (behind a fault proxy),
// Kafka topic, lake, cluster, output store and Elasticsearch alias.
type Run struct {
	ID   string
	Seed uint64
	// Rand draws the run's topology and the faults of its ingest and job
	// phases, one phase after the other; SubmitRand draws the choices of a
	// class's Submit, which runs alongside the job faults.
	Rand       *rand.Rand
	SubmitRand *rand.Rand
	dir        string
	h          *Harness
	logger     *slog.Logger
	topo       Topology

	Sup   *Supervisor
	Etcd  *Etcd
	S3    *S3
	Proxy *faultproxy.HTTP // every process reaches S3 through it

	Topic, Group, Lake, OutBase, Alias string

	mu      sync.Mutex
	Coords  []*Node
	Workers []*Node
	Ingests []*Proc
	Jobs    []*Job
	proxies []*faultproxy.TCP

	injections atomic.Int64
	notes      []string
}

// Node is a coordinator or worker process with the proxies in front of it:
// one to each etcd member (its own, so that it alone can be cut off), and
// for a worker one in front of its gRPC port (the coordinator's link).
type Node struct {
	Name   string
	Addr   string // gRPC address others dial (a worker's: its proxy)
	Proc   *Proc
	EtcdPx []*faultproxy.TCP
	RPCPx  *faultproxy.TCP
}

// Partition applies mode to every etcd link of the node.
func (n *Node) Partition(m faultproxy.Mode) {
	for _, p := range n.EtcdPx {
		p.Partition(m)
	}
}

// Job is one submitted job and the window and output it is for.
type Job struct {
	ID     string
	Window Window
	Out    string // s3:// URI of its output store
	Key    string // idempotency key
}

// Inject counts one fault injected into the run.
func (r *Run) Inject(what string, args ...any) {
	r.injections.Add(1)
	r.logger.Info("inject "+what, args...)
}

// Note records an observation for the report.
func (r *Run) Note(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.notes = append(r.notes, fmt.Sprintf(format, args...))
	r.logger.Warn("note", "msg", fmt.Sprintf(format, args...))
}

// s3Env is the environment of a child reaching S3 through the proxy.
func (r *Run) s3Env(extra ...string) []string {
	return childEnv(append(r.h.creds.Env(r.Proxy.URL()), extra...)...)
}

// newEtcdProxies puts a TCP proxy in front of every etcd member for one
// process and returns the proxies and the endpoint list through them.
func (r *Run) newEtcdProxies() ([]*faultproxy.TCP, string, error) {
	var pxs []*faultproxy.TCP
	var eps []string
	for _, m := range r.Etcd.Members {
		p, err := faultproxy.NewTCP(m.ClientAddr(), r.logger)
		if err != nil {
			return nil, "", err
		}
		r.mu.Lock()
		r.proxies = append(r.proxies, p)
		r.mu.Unlock()
		pxs = append(pxs, p)
		eps = append(eps, "http://"+p.Addr())
	}
	return pxs, strings.Join(eps, ","), nil
}

// StartCoordinator starts coordinator number i (its name coord-i);
// onceEnv goes to its first incarnation only.
func (r *Run) StartCoordinator(i int, onceEnv ...string) (*Node, error) {
	pxs, eps, err := r.newEtcdProxies()
	if err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	name := fmt.Sprintf("coord-%d", i)
	args := []string{"coordinator", "--etcd", eps, "--etcd-prefix", "/chaos", "--listen", addr,
		"--lake", r.Lake, "--worker-ttl", "2s", "--leader-ttl", "2s", "--backup-after", "3s",
		"--max-lost", "20", "--shutdown-timeout", "2s", "--http-listen", "127.0.0.1:0",
		"--es", r.h.cfg.ESURL, "--es-index", r.Alias, "--es-retry-timeout", "2m"}
	proc, err := r.Sup.StartOnce(r.ID+"-"+name, r.h.cfg.Binary, r.s3Env("CLICKSTREAM_LOG_LEVEL=info"), onceEnv, args...)
	if err != nil {
		return nil, err
	}
	n := &Node{Name: name, Addr: addr, Proc: proc, EtcdPx: pxs}
	r.mu.Lock()
	r.Coords = append(r.Coords, n)
	r.mu.Unlock()
	return n, nil
}

// StartWorker starts worker number i (id w-i), reached through a proxy;
// onceEnv goes to its first incarnation only.
func (r *Run) StartWorker(i int, onceEnv ...string) (*Node, error) {
	pxs, eps, err := r.newEtcdProxies()
	if err != nil {
		return nil, err
	}
	listen, err := freeAddr()
	if err != nil {
		return nil, err
	}
	rpc, err := faultproxy.NewTCP(listen, r.logger)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.proxies = append(r.proxies, rpc)
	r.mu.Unlock()
	name := fmt.Sprintf("w-%d", i)
	args := []string{"worker", "--etcd", eps, "--etcd-prefix", "/chaos", "--listen", listen, "--advertise", rpc.Addr(),
		"--id", name, "--ttl", "2s", "--parallelism", "2", "--shutdown-timeout", "2s",
		"--lake-root", r.Lake, "--output-root", r.OutBase}
	if r.topo.WorkerSlow > 0 {
		args = append(args, "--slow", r.topo.WorkerSlow.String())
	}
	proc, err := r.Sup.StartOnce(r.ID+"-"+name, r.h.cfg.Binary, r.s3Env("CLICKSTREAM_LOG_LEVEL=info"), onceEnv, args...)
	if err != nil {
		return nil, err
	}
	n := &Node{Name: name, Addr: rpc.Addr(), Proc: proc, EtcdPx: pxs, RPCPx: rpc}
	r.mu.Lock()
	r.Workers = append(r.Workers, n)
	r.mu.Unlock()
	return n, nil
}

// StartIngest starts ingest process number i of the run's consumer group;
// onceEnv goes to its first incarnation only.
func (r *Run) StartIngest(i int, onceEnv ...string) (*Proc, error) {
	args := []string{"ingest", "--brokers", r.h.cfg.Brokers, "--topic", r.Topic, "--group", r.Group,
		"--instance-id", fmt.Sprintf("%s-ingest-%d", r.ID, i), "--kafka-session-timeout", "6s",
		"--lake", r.Lake, "--buckets", strconv.Itoa(Buckets),
		"--flush-records", "4000", "--flush-interval", "1s", "--exit-when-idle", "6s", "--commit-timeout", "30s"}
	p, err := r.Sup.StartOnce(fmt.Sprintf("%s-ingest-%d", r.ID, i), r.h.cfg.Binary, r.s3Env("CLICKSTREAM_LOG_LEVEL=info"), onceEnv, args...)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.Ingests = append(r.Ingests, p)
	r.mu.Unlock()
	return p, nil
}

// Client returns a coordinator client that knows every coordinator.
func (r *Run) Client() (*coordinator.Client, error) {
	r.mu.Lock()
	var addrs []string
	for _, c := range r.Coords {
		addrs = append(addrs, c.Addr)
	}
	r.mu.Unlock()
	return coordinator.Dial(strings.Join(addrs, ","), 5*time.Second)
}

// Spec is the job spec of window w with output out.
func (r *Run) Spec(w Window, out string) *pb.JobSpec {
	return &pb.JobSpec{From: timestamppb.New(w.From), To: timestamppb.New(w.To), OutUri: out}
}

// OutURI is the output store of window w.
func (r *Run) OutURI(w Window) string { return r.OutBase + "/window=" + w.String() }

// Submit submits the job of window w with an idempotency key, retrying
// (with the same key) until a coordinator accepts it or ctx ends.
func (r *Run) Submit(ctx context.Context, cl *coordinator.Client, w Window, key string) (*Job, error) {
	out := r.OutURI(w)
	var last error
	for attempt := 0; attempt < 120; attempt++ {
		j, err := cl.SubmitWithKey(ctx, r.Spec(w, out), key)
		if err == nil {
			job := &Job{ID: j.GetId(), Window: w, Out: out, Key: key}
			r.AddJob(job)
			return job, nil
		}
		last = err
		if !sleepCtx(ctx, 500*time.Millisecond) {
			break
		}
	}
	return nil, fmt.Errorf("chaos: submit %s: %w", w, last)
}

// AddJob records a job whose state and result the run checks.
func (r *Run) AddJob(j *Job) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, o := range r.Jobs {
		if o.ID == j.ID {
			return
		}
	}
	r.Jobs = append(r.Jobs, j)
}

// JobList returns the jobs submitted so far.
func (r *Run) JobList() []*Job {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.Jobs)
}

// WaitProgress waits until some job of the run has done at least frac of
// its tasks (0 < frac ≤ 1), or has merged; false if ctx ended or every job
// ended first.
func (r *Run) WaitProgress(ctx context.Context, frac float64) bool {
	cl, err := r.Client()
	if err != nil {
		return false
	}
	defer cl.Close()
	for {
		allDone := true
		for _, j := range r.JobList() {
			st, err := cl.Get(ctx, j.ID)
			if err != nil {
				allDone = false
				continue
			}
			p := st.GetProgress()
			if p.GetTasksTotal() > 0 && float64(p.GetTasksDone()) >= frac*float64(p.GetTasksTotal()) {
				return true
			}
			if !coordinator.Terminal(st.GetState()) {
				allDone = false
			}
		}
		if allDone && len(r.JobList()) > 0 {
			return false
		}
		if !sleepCtx(ctx, 100*time.Millisecond) {
			return false
		}
	}
}

// Leader returns the coordinator node that is the leader now, as the jobs
// report it, or nil.
func (r *Run) Leader(ctx context.Context) *Node {
	cl, err := r.Client()
	if err != nil {
		return nil
	}
	defer cl.Close()
	for _, j := range r.JobList() {
		st, err := cl.Get(ctx, j.ID)
		if err != nil {
			continue
		}
		r.mu.Lock()
		for _, c := range r.Coords {
			if c.Addr == st.GetLeader() && c.Proc.Alive() {
				r.mu.Unlock()
				return c
			}
		}
		r.mu.Unlock()
	}
	return nil
}

// AliveWorkers returns the workers whose process runs.
func (r *Run) AliveWorkers() []*Node {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*Node
	for _, w := range r.Workers {
		if w.Proc.Alive() {
			out = append(out, w)
		}
	}
	return out
}

// Pick returns a random element of nodes (nil for none).
func Pick[T any](rng *rand.Rand, xs []T) T {
	var zero T
	if len(xs) == 0 {
		return zero
	}
	return xs[rng.IntN(len(xs))]
}

// Jitter returns a duration uniformly in [lo, hi).
func Jitter(rng *rand.Rand, lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(rng.Int64N(int64(hi-lo)))
}

// Sleep waits d or until ctx ends; it reports whether d passed.
func Sleep(ctx context.Context, d time.Duration) bool { return sleepCtx(ctx, d) }

func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// stoppedState reports whether a process is stopped (state T in
// /proc/PID/stat), as a failpoint that paused itself is.
func stoppedState(p *Proc) bool {
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return false
	}
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(cmd.Process.Pid), "stat"))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && (s[i+2] == 'T' || s[i+2] == 't')
}

// WaitStopped waits until p has stopped itself; false if it exited or ctx
// ended first.
func WaitStopped(ctx context.Context, p *Proc) bool {
	for {
		if stoppedState(p) {
			return true
		}
		if !p.Alive() {
			return false
		}
		if !sleepCtx(ctx, 50*time.Millisecond) {
			return false
		}
	}
}

// heal undoes every fault: resumes stopped processes, opens every proxy,
// restarts dead etcd members and versitygw, and makes sure one
// coordinator and one worker run.
func (r *Run) heal(ctx context.Context) error {
	r.Proxy.Reset()
	r.mu.Lock()
	pxs := slices.Clone(r.proxies)
	r.mu.Unlock()
	for _, p := range pxs {
		p.Heal()
		p.SetDelay(0)
	}
	for _, p := range r.Sup.Procs() {
		if p.Alive() {
			_ = p.signal(syscall.SIGCONT)
		}
	}
	var errs []error
	for _, m := range r.Etcd.Members {
		if !m.Proc.Alive() {
			errs = append(errs, m.Restart(ctx))
		}
	}
	if !r.S3.Proc.Alive() {
		errs = append(errs, r.S3.Restart(ctx))
	}
	r.mu.Lock()
	coords, workers := slices.Clone(r.Coords), slices.Clone(r.Workers)
	r.mu.Unlock()
	if len(coords) > 0 && !slices.ContainsFunc(coords, func(n *Node) bool { return n.Proc.Alive() }) {
		r.Note("no coordinator alive after the faults: coord-0 restarted")
		errs = append(errs, coords[0].Proc.Restart())
	}
	if len(workers) > 0 && !slices.ContainsFunc(workers, func(n *Node) bool { return n.Proc.Alive() }) {
		r.Note("no worker alive after the faults: w-0 restarted")
		errs = append(errs, workers[0].Proc.Restart())
	}
	return errors.Join(errs...)
}

// Close kills the run's processes and proxies.
func (r *Run) Close() {
	r.Sup.Close()
	r.mu.Lock()
	pxs := slices.Clone(r.proxies)
	r.mu.Unlock()
	for _, p := range pxs {
		_ = p.Close()
	}
	if r.Proxy != nil {
		_ = r.Proxy.Close()
	}
}

// lakeStore opens the run's lake directly (not through the proxy).
func (r *Run) directStore(ctx context.Context, uri string) (lake.Store, error) {
	return lake.Open(ctx, uri, lake.S3Options{Endpoint: r.S3.URL})
}
