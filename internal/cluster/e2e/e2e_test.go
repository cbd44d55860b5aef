package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/dataco/clickstream/coordinator"
	"github.com/dataco/clickstream/internal/cluster"
	"github.com/dataco/clickstream/internal/cluster/clustertest"
	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/lake/laketest"
	"github.com/dataco/clickstream/internal/results"
	"github.com/dataco/clickstream/internal/schema"
	pb "github.com/dataco/clickstream/proto/clickstream/v1"
	"github.com/dataco/clickstream/worker"
)

// binary is the clickstream binary built by TestMain.
var binary string

func TestMain(m *testing.M) {
	flag.Parse()
	code := func() int {
		if !testing.Short() {
			dir, err := os.MkdirTemp("", "clickstream-e2e-")
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			defer os.RemoveAll(dir)
			binary = filepath.Join(dir, "clickstream")
			out, err := exec.Command("go", "build", "-o", binary, "github.com/dataco/clickstream/cmd/clickstream").CombinedOutput()
			if err != nil {
				fmt.Fprintf(os.Stderr, "build clickstream: %v\n%s", err, out)
				return 1
			}
		}
		defer func() {
			if shared.dir != "" {
				os.RemoveAll(shared.dir)
			}
		}()
		return m.Run()
	}()
	os.Exit(code)
}

var (
	from = time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	to   = time.Date(2026, 11, 27, 4, 0, 0, 0, time.UTC)
)

// shared is the lake every test reads, and the fault-free result.
var shared struct {
	once    sync.Once
	dir     string
	lake    string
	want    []schema.Row // the fault-free result's rows, without provenance
	wantErr error
}

const buckets = 16

// testCluster is one test's processes, under its own etcd prefix.
type testCluster struct {
	t      *testing.T
	etcd   string
	auth   cluster.EtcdAuth // the test's own etcd credentials (zero: none)
	prefix string
	dir    string
	procs  []*proc
	// owner stops the processes: c itself, or for a copy made by in, the
	// cluster it was made from.
	owner *testCluster
}

type proc struct {
	name string
	cmd  *exec.Cmd
	log  *bytes.Buffer
	mu   *sync.Mutex
	done chan struct{}
}

func newCluster(t *testing.T) *testCluster {
	t.Helper()
	if testing.Short() {
		t.Skip("multi-process test; skipped with -short")
	}
	etcd := os.Getenv("CLICKSTREAM_ETCD_ENDPOINTS")
	if etcd == "" {
		t.Fatal("CLICKSTREAM_ETCD_ENDPOINTS is empty: run `make dev-up` (deploy/local/stack.sh up etcd) and source its env, or use -short")
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	c := &testCluster{t: t, etcd: etcd, prefix: "/e2e/" + t.Name() + "-" + hex.EncodeToString(b[:]), dir: t.TempDir()}
	c.owner = c
	t.Cleanup(c.stopAll)
	t.Cleanup(func() { // after stopAll: drop the test's keys from the shared etcd
		cli, err := cluster.Dial(context.Background(), cluster.ParseEndpoints(etcd), cluster.EtcdAuth{})
		if err != nil {
			t.Log(err)
			return
		}
		defer cli.Close()
		if _, err := cli.Delete(context.Background(), c.prefix+"/", clientv3.WithPrefix()); err != nil {
			t.Log(err)
		}
	})
	return c
}

// lakeURI returns the shared lake, written on first use.
func lakeURI(t *testing.T) string {
	t.Helper()
	shared.once.Do(func() {
		dir, err := os.MkdirTemp("", "clickstream-e2e-lake-")
		if err != nil {
			shared.wantErr = err
			return
		}
		shared.dir = dir
		s, err := lake.NewFileStore(dir)
		if err != nil {
			shared.wantErr = err
			return
		}
		events := clustertest.Events(11, 500, 40000, from, to)
		clustertest.WriteLake(t, s, buckets, 2, events)
		shared.lake = s.URI()
		shared.want = clustertest.Reference(events, from, to, 30*time.Minute)
	})
	if shared.wantErr != nil {
		t.Fatal(shared.wantErr)
	}
	return shared.lake
}

// freeAddr returns a loopback address that was free a moment ago, for a
// process to listen on. Its port is below the ephemeral range, from which
// the kernel picks the ports of listeners on port 0 (workers): one of
// those could take it before the process it is meant for listens.
func freeAddr(t *testing.T) string {
	t.Helper()
	low := ephemeralLow()
	for range 100 {
		port := 10000 + mrand.IntN(low-10000)
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue
		}
		addr := l.Addr().String()
		l.Close()
		return addr
	}
	t.Fatal("no free loopback port below the ephemeral range")
	return ""
}

// ephemeralLow is the lowest port of the kernel's ephemeral range (Linux:
// /proc/sys/net/ipv4/ip_local_port_range; 32768 if unknown).
func ephemeralLow() int {
	if data, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(data)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 11000 {
				return n
			}
		}
	}
	return 32768
}

// start runs `clickstream args...` with its output kept for failures.
func (c *testCluster) start(name string, args ...string) *proc {
	c.t.Helper()
	return c.startEnv(name, nil, args...)
}

// startEnv is start with more environment variables.
func (c *testCluster) startEnv(name string, env []string, args ...string) *proc {
	c.t.Helper()
	p := &proc{name: name, log: &bytes.Buffer{}, mu: &sync.Mutex{}, done: make(chan struct{})}
	p.cmd = exec.Command(binary, args...)
	w := &lockedWriter{mu: p.mu, w: p.log}
	p.cmd.Stdout, p.cmd.Stderr = w, w
	p.cmd.Env = append(append(os.Environ(), "CLICKSTREAM_LOG_LEVEL=info"), env...)
	// Each in its own process group, as the chaos harness does: a process
	// paused by its failpoint (SIGSTOP) stays paused even if the test's
	// group is orphaned, when the kernel continues the group's stopped
	// processes with SIGHUP and SIGCONT. It dies with the test.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	c.owner.procs = append(c.owner.procs, p)
	return p
}

// in returns c for the subtest t: its helpers fail t, and the processes
// it starts run until the test of c ends (subtests share one cluster).
func (c *testCluster) in(t *testing.T) *testCluster {
	sub := *c
	sub.t = t
	return &sub
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// kill sends SIGKILL and waits for the process to die.
func (p *proc) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.done
}

// stopAll stops every process (SIGTERM, then SIGKILL after 10 s) and
// shows their logs if the test failed or $CLICKSTREAM_E2E_LOGS is set.
func (c *testCluster) stopAll() {
	for _, p := range c.procs {
		select {
		case <-p.done:
			continue
		default:
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, p := range c.procs {
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if c.t.Failed() || os.Getenv("CLICKSTREAM_E2E_LOGS") != "" {
			c.t.Logf("---- %s:\n%s", p.name, p.output())
		}
	}
}

func (c *testCluster) coordinator(extra ...string) (*proc, string) {
	return c.coordinatorEnv(nil, extra...)
}

func (c *testCluster) coordinatorEnv(env []string, extra ...string) (*proc, string) {
	addr := freeAddr(c.t)
	args := append([]string{"coordinator", "--etcd", c.etcd, "--etcd-prefix", c.prefix, "--listen", addr,
		"--lake", lakeURI(c.t), "--worker-ttl", "2s", "--leader-ttl", "2s", "--http-listen", "127.0.0.1:0"}, extra...)
	return c.startEnv("coordinator "+addr, env, args...), addr
}

func (c *testCluster) worker(id string, extra ...string) *proc {
	return c.workerEnv(id, nil, extra...)
}

func (c *testCluster) workerEnv(id string, env []string, extra ...string) *proc {
	args := append([]string{"worker", "--etcd", c.etcd, "--etcd-prefix", c.prefix, "--listen", "127.0.0.1:0",
		"--id", id, "--ttl", "2s", "--parallelism", "2", "--shutdown-timeout", "2s",
		"--lake-root", lakeURI(c.t), "--output-root", "file://" + c.dir}, extra...)
	return c.startEnv("worker "+id, env, args...)
}

func (c *testCluster) client(addr string, opts ...coordinator.DialOption) *coordinator.Client {
	cl, err := coordinator.Dial(addr, 5*time.Second, opts...)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { cl.Close() })
	return cl
}

func (c *testCluster) spec(out string) *pb.JobSpec {
	return &pb.JobSpec{From: timestamppb.New(from), To: timestamppb.New(to), OutUri: out}
}

// ready waits until the coordinator answers.
func (c *testCluster) ready(cl *coordinator.Client) {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := cl.List(context.Background(), 1)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("coordinator at %s not ready: %v", cl.Addr(), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitWorkers waits until n workers are registered in etcd.
func (c *testCluster) waitWorkers(n int) {
	c.t.Helper()
	cli, err := cluster.Dial(context.Background(), cluster.ParseEndpoints(c.etcd), c.auth)
	if err != nil {
		c.t.Fatal(err)
	}
	defer cli.Close()
	keys := cluster.Keys{Prefix: c.prefix}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := cli.Get(context.Background(), keys.Workers(), clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err == nil && resp.Count == int64(n) {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%d workers registered, want %d (err %v)", resp.Count, n, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// submit submits a job, retrying while the coordinator starts.
func (c *testCluster) submit(cl *coordinator.Client, spec *pb.JobSpec) *pb.Job {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		j, err := cl.Submit(context.Background(), spec)
		if err == nil {
			return j
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("submit: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (c *testCluster) waitProgress(cl *coordinator.Client, id string, what string, cond func(*pb.Job) bool) *pb.Job {
	c.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		j, err := cl.Get(context.Background(), id)
		if err == nil && cond(j) {
			return j
		}
		if err == nil && coordinator.Terminal(j.GetState()) {
			c.t.Fatalf("job ended (%s: %s) before %s", coordinator.StateName(j.GetState()), j.GetError(), what)
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out waiting for %s (last err %v)", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *testCluster) wait(cl *coordinator.Client, id string) *pb.Job {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	j, err := cl.Wait(ctx, id, nil)
	if err != nil {
		c.t.Fatalf("wait for %s: %v", id, err)
	}
	return j
}

// checkResult asserts that the job succeeded and its result is byte for
// byte the fault-free one.
func (c *testCluster) checkResult(j *pb.Job, out string) {
	c.t.Helper()
	if j.GetState() != pb.JobState_JOB_STATE_SUCCEEDED {
		c.t.Fatalf("job %s %s: %s", j.GetId(), coordinator.StateName(j.GetState()), j.GetError())
	}
	store, err := lake.Open(context.Background(), out, laketest.S3Options())
	if err != nil {
		c.t.Fatal(err)
	}
	meta, err := results.ReadMeta(context.Background(), store)
	if err != nil {
		c.t.Fatal(err)
	}
	var got []byte
	for _, f := range meta.Files {
		data, err := store.Get(context.Background(), f)
		if err != nil {
			c.t.Fatal(err)
		}
		got = append(got, data...)
	}
	// The fault-free rows, with this result's provenance (its revision,
	// when it was computed, …).
	want := slices.Clone(shared.want)
	results.Stamp(want, meta)
	var buf bytes.Buffer
	if err := schema.WriteNDJSON(&buf, want); err != nil {
		c.t.Fatal(err)
	}
	if !bytes.Equal(got, buf.Bytes()) {
		c.t.Fatalf("result differs from the fault-free one: %d bytes, want %d", len(got), buf.Len())
	}
}

func (c *testCluster) outURI() string { return "file://" + filepath.Join(c.dir, "out") }

// TestKillWorker: a worker killed mid-job loses its tasks to the others;
// the result is the fault-free one. The job is submitted with the CLI.
func TestKillWorker(t *testing.T) {
	c := newCluster(t)
	_, addr := c.coordinator()
	victim := c.worker("w1", "--slow", "500ms")
	c.worker("w2", "--slow", "500ms")
	c.worker("w3", "--slow", "500ms")
	cl := c.client(addr)
	c.ready(cl)
	c.waitWorkers(3)
	out := c.outURI()
	submit := c.start("submit", "submit", "--coordinator", addr, "--from", from.Format(time.RFC3339),
		"--to", to.Format(time.RFC3339), "--out", out, "--wait")
	var id string
	deadline := time.Now().Add(30 * time.Second)
	for id == "" {
		jobs, err := cl.List(context.Background(), 1)
		if err == nil && len(jobs) == 1 {
			id = jobs[0].GetId()
		} else if time.Now().After(deadline) {
			t.Fatalf("no job submitted: %v\n%s", err, submit.output())
		} else {
			time.Sleep(50 * time.Millisecond)
		}
	}
	c.waitProgress(cl, id, "tasks running on every worker", func(j *pb.Job) bool {
		return j.GetProgress().GetTasksDone() >= 1 && j.GetProgress().GetWorkers() == 3
	})
	victim.kill(t)
	submit.succeeds(t, 90*time.Second)
	if !strings.Contains(submit.output(), "succeeded") {
		t.Errorf("submit output:\n%s", submit.output())
	}
	j := c.wait(cl, id)
	c.checkResult(j, out)
	if j.GetProgress().GetRetries() < 1 {
		t.Errorf("retries = %d: the victim's tasks were not re-leased?", j.GetProgress().GetRetries())
	}
}

// TestKillCoordinator: the coordinator is killed mid-job; another one
// started afterwards resumes the job from etcd and the lake.
func TestKillCoordinator(t *testing.T) {
	c := newCluster(t)
	first, addr := c.coordinator()
	for _, id := range []string{"w1", "w2", "w3"} {
		c.worker(id, "--slow", "400ms")
	}
	cl := c.client(addr)
	c.ready(cl)
	c.waitWorkers(3)
	out := c.outURI()
	j := c.submit(cl, c.spec(out))
	c.waitProgress(cl, j.GetId(), "some tasks done", func(j *pb.Job) bool {
		p := j.GetProgress()
		return p.GetTasksDone() >= 3 && p.GetTasksDone() < p.GetTasksTotal()-3
	})
	first.kill(t)
	_, addr2 := c.coordinator()
	cl2 := c.client(addr2)
	j = c.wait(cl2, j.GetId())
	c.checkResult(j, out)
	if j.GetLeader() != addr2 {
		t.Errorf("leader %q, want the new coordinator %q", j.GetLeader(), addr2)
	}
}

// TestKilledAtEachCommitStep kills a process with SIGKILL, through its
// failpoint, at each step of committing: a worker before and after writing
// its partial; the leading coordinator before writing the result, between
// _SUCCESS and recording success in etcd, and between recording it and
// cleaning up, with a standby to take over. Every job ends succeeded with
// the fault-free result, its status says so, and its folder is cleaned up.
func TestKilledAtEachCommitStep(t *testing.T) {
	for _, tc := range []struct{ who, point string }{
		{"worker", "before-partial"}, {"worker", "after-partial"},
		{"coordinator", "before-commit"}, {"coordinator", "after-commit"}, {"coordinator", "after-record"},
	} {
		t.Run(tc.who+"-"+tc.point, func(t *testing.T) {
			c := newCluster(t)
			var victim *proc
			var addrs []string
			workers := 2
			if tc.who == "coordinator" {
				p, addr := c.coordinatorEnv([]string{coordinator.EnvCrashAt + "=" + tc.point + ":1"})
				victim, addrs = p, append(addrs, addr)
				c.ready(c.client(addr))
			}
			_, addr := c.coordinator()
			addrs = append(addrs, addr)
			if tc.who == "worker" {
				victim = c.workerEnv("w0", []string{worker.EnvCrashAt + "=" + tc.point + ":1"})
				workers++
			}
			c.worker("w1")
			c.worker("w2")
			cl := c.client(strings.Join(addrs, ","))
			c.ready(cl)
			c.waitWorkers(workers)
			out := c.outURI()
			j := c.submit(cl, c.spec(out))
			j = c.wait(cl, j.GetId())
			c.checkResult(j, out)
			select {
			case <-victim.done:
			case <-time.After(30 * time.Second):
				t.Fatalf("the %s never reached %s", tc.who, tc.point)
			}
			if ws, ok := victim.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
				t.Fatalf("the %s ended without SIGKILL: %v", tc.who, victim.cmd.ProcessState)
			}
			store, err := lake.Open(context.Background(), out, laketest.S3Options())
			if err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(30 * time.Second)
			for {
				objs, err := store.List(context.Background(), results.JobPrefix(j.GetId()))
				if err == nil && len(objs) == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the job's folder still holds %d objects (%v)", len(objs), err)
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
}

// TestBackfillIndexesEveryWindow: `submit --window` backfills 100 windows
// at once through a coordinator that indexes into Elasticsearch, on four
// workers. Every job reports succeeded (submit --wait exits 0), and
// Elasticsearch holds every window's rows.
func TestBackfillIndexesEveryWindow(t *testing.T) {
	c := newCluster(t)
	es := os.Getenv("CLICKSTREAM_ES_URL")
	if es == "" {
		t.Fatal("CLICKSTREAM_ES_URL is empty: run `make dev-up` and source its env, or use -short")
	}
	alias := "e2e-backfill-" + c.prefix[len(c.prefix)-8:]
	t.Cleanup(func() {
		if req, err := http.NewRequest(http.MethodDelete, es+"/"+alias+"-*", nil); err == nil {
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}
	})
	_, addr := c.coordinator("--es", es, "--es-index", alias)
	for _, id := range []string{"w1", "w2", "w3", "w4"} {
		c.worker(id)
	}
	cl := c.client(addr)
	c.ready(cl)
	c.waitWorkers(4)
	out := c.outURI()
	window := to.Sub(from) / 100
	submit := c.start("submit", "submit", "--coordinator", addr, "--from", from.Format(time.RFC3339),
		"--to", to.Format(time.RFC3339), "--window", window.String(), "--out", out, "--wait")
	submit.succeeds(t, 5*time.Minute)
	jobs, err := cl.List(context.Background(), 200)
	if err != nil {
		t.Fatal(err)
	}
	var rows int64
	for _, j := range jobs {
		if j.GetState() != pb.JobState_JOB_STATE_SUCCEEDED {
			t.Errorf("job %s %s: %s", j.GetId(), coordinator.StateName(j.GetState()), j.GetError())
		}
		rows += j.GetResult().GetRows()
	}
	if len(jobs) != 100 {
		t.Fatalf("%d jobs, want 100", len(jobs))
	}
	// Indexed after each commit: wait for the last ones.
	deadline := time.Now().Add(60 * time.Second)
	for {
		windows, docs := esWindows(t, es, alias)
		if windows == 100 && docs == rows {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Elasticsearch holds %d documents of %d windows, want %d of 100", docs, windows, rows)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// esWindows counts the documents under alias and their distinct windows.
func esWindows(t *testing.T, es, alias string) (windows int, docs int64) {
	t.Helper()
	if resp, err := http.Post(es+"/"+alias+"/_refresh", "application/json", nil); err == nil {
		resp.Body.Close()
	}
	body := `{"size":0,"track_total_hits":true,"aggs":{"w":{"cardinality":{"field":"window_start","precision_threshold":1000}}}}`
	resp, err := http.Post(es+"/"+alias+"/_search", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return 0, 0
	}
	var r struct {
		Hits struct {
			Total struct {
				Value int64 `json:"value"`
			} `json:"total"`
		} `json:"hits"`
		Aggregations struct {
			W struct {
				Value int `json:"value"`
			} `json:"w"`
		} `json:"aggregations"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	return r.Aggregations.W.Value, r.Hits.Total.Value
}

// TestStraggler: one worker is very slow; backup attempts of its tasks on
// the other workers finish the job.
func TestStraggler(t *testing.T) {
	c := newCluster(t)
	_, addr := c.coordinator("--backup-after", "1s")
	c.worker("w1")
	c.worker("w2")
	c.worker("slow", "--slow", "5m", "--parallelism", "2")
	cl := c.client(addr)
	c.ready(cl)
	out := c.outURI()
	c.waitWorkers(3) // so that the slow one gets tasks
	start := time.Now()
	j := c.submit(cl, c.spec(out))
	j = c.wait(cl, j.GetId())
	c.checkResult(j, out)
	if j.GetProgress().GetBackups() < 1 {
		t.Errorf("backups = %d, want > 0", j.GetProgress().GetBackups())
	}
	if d := time.Since(start); d > 60*time.Second {
		t.Errorf("job took %v", d)
	}
}

// TestSubmitUnreachable: the CLI fails fast and clearly without a
// coordinator.
func TestSubmitUnreachable(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test; skipped with -short")
	}
	start := time.Now()
	cmd := exec.Command(binary, "submit", "--coordinator", freeAddr(t), "--from", from.Format(time.RFC3339),
		"--to", to.Format(time.RFC3339), "--out", "file:///tmp/unused", "--wait")
	out, err := cmd.CombinedOutput()
	if err == nil || cmd.ProcessState.ExitCode() != 1 {
		t.Fatalf("exit %v:\n%s", err, out)
	}
	if !strings.Contains(string(out), "coordinator unreachable") {
		t.Errorf("output:\n%s", out)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
}

// TestBackfillWithinActiveJobsLimit: a backfill of more windows than the
// cluster takes unfinished jobs (--max-active-jobs) is flow-controlled by
// submit --wait: every window runs once and succeeds.
func TestBackfillWithinActiveJobsLimit(t *testing.T) {
	c := newCluster(t)
	_, addr := c.coordinator("--max-active-jobs", "3")
	for _, id := range []string{"w1", "w2"} {
		c.worker(id)
	}
	cl := c.client(addr)
	c.ready(cl)
	c.waitWorkers(2)
	const windows = 12
	window := to.Sub(from) / windows
	submit := c.start("submit", "submit", "--coordinator", addr, "--from", from.Format(time.RFC3339),
		"--to", to.Format(time.RFC3339), "--window", window.String(), "--out", c.outURI(), "--wait")
	submit.succeeds(t, 5*time.Minute)
	if !strings.Contains(submit.output(), "the cluster is full") {
		t.Errorf("submit never met the limit:\n%s", submit.output())
	}
	jobs, err := cl.List(context.Background(), 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != windows {
		t.Fatalf("%d jobs, want %d", len(jobs), windows)
	}
	seen := map[int64]bool{}
	for _, j := range jobs {
		if j.GetState() != pb.JobState_JOB_STATE_SUCCEEDED {
			t.Errorf("job %s %s: %s", j.GetId(), coordinator.StateName(j.GetState()), j.GetError())
		}
		seen[j.GetSpec().GetFrom().AsTime().Unix()] = true
	}
	if len(seen) != windows {
		t.Fatalf("%d distinct windows, want %d", len(seen), windows)
	}
}

// TestBackfillWithinSubmitRate: a backfill through a coordinator that
// takes one submit per second from a caller, and two unfinished jobs, is
// paced by submit --wait: refused submits are sent again after the delay
// the coordinator names, and every window runs once and succeeds.
func TestBackfillWithinSubmitRate(t *testing.T) {
	c := newCluster(t)
	metrics := freeAddr(t)
	_, addr := c.coordinator("--max-submit-rate", "1", "--max-submit-burst", "1", "--max-active-jobs", "2", "--metrics-listen", metrics)
	c.worker("w1")
	cl := c.client(addr)
	c.ready(cl)
	c.waitWorkers(1)
	const windows = 6
	window := to.Sub(from) / windows
	submit := c.start("submit", "submit", "--coordinator", addr, "--from", from.Format(time.RFC3339),
		"--to", to.Format(time.RFC3339), "--window", window.String(), "--out", c.outURI(), "--wait")
	submit.succeeds(t, 5*time.Minute)
	jobs, err := cl.List(context.Background(), 100)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int64]bool{}
	for _, j := range jobs {
		if j.GetState() != pb.JobState_JOB_STATE_SUCCEEDED {
			t.Errorf("job %s %s: %s", j.GetId(), coordinator.StateName(j.GetState()), j.GetError())
		}
		seen[j.GetSpec().GetFrom().AsTime().Unix()] = true
	}
	if len(jobs) != windows || len(seen) != windows {
		t.Fatalf("%d jobs of %d distinct windows, want %d", len(jobs), len(seen), windows)
	}
	resp, err := http.Get("http://" + metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	// Six submits a second apart at best, each right after the last
	// returned: all but the first are refused once unless a submit took
	// more than a second.
	const refused = `clickstream_coordinator_requests_refused_total{limit="submit_rate"} `
	i := strings.Index(string(body), refused)
	if i < 0 || strings.HasPrefix(string(body[i+len(refused):]), "0\n") {
		t.Errorf("no submit was refused for its rate:\n%s", body)
	}
}

// TestJobWithEtcdAuth runs the cluster on an etcd process with
// authentication on: the coordinator and a worker, each with the user of
// its role (a password file, and $CLICKSTREAM_ETCD_PASSWORD), run a job to
// its exact result; a worker without credentials is refused at start and
// says why; no log holds a password.
func TestJobWithEtcdAuth(t *testing.T) {
	c := newCluster(t)
	e := clustertest.StartAuthEtcd(t, c.prefix)
	c.etcd, c.auth = e.Endpoint, e.Root()
	coord, addr := c.coordinator("--etcd-user", e.Users.Coordinator,
		"--etcd-password-file", clustertest.PasswordFile(t, e.Users.CoordinatorPW))
	w := c.workerEnv("w1", []string{cluster.EnvEtcdPassword + "=" + e.Users.WorkerPW}, "--etcd-user", e.Users.Worker)
	anon := c.worker("w2")
	select {
	case <-anon.done:
	case <-time.After(30 * time.Second):
		t.Fatal("a worker without credentials is still running")
	}
	if code := anon.cmd.ProcessState.ExitCode(); code == 0 || !strings.Contains(anon.output(), "refused the credentials") {
		t.Fatalf("a worker without credentials exited %d:\n%s", code, anon.output())
	}
	cl := c.client(addr)
	c.ready(cl)
	c.waitWorkers(1)
	out := c.outURI()
	j := c.wait(cl, c.submit(cl, c.spec(out)).GetId())
	c.checkResult(j, out)
	for _, p := range []*proc{coord, w, anon} {
		for _, pw := range []string{e.Users.RootPW, e.Users.CoordinatorPW, e.Users.WorkerPW} {
			if strings.Contains(p.output(), pw) {
				t.Errorf("the log of %s holds a password", p.name)
			}
		}
	}
}

// TestJobWithEtcdTLS runs the cluster on an etcd process that serves TLS
// and requires client certificates (--client-cert-auth), with
// authentication on: the coordinator (flags) and a worker ($CLICKSTREAM_ETCD_CA,
// _CERT, _KEY) log in with certificates naming their users, no password,
// and run a job to its exact result; a worker without a client
// certificate is refused at start and told to give one.
func TestJobWithEtcdTLS(t *testing.T) {
	c := newCluster(t)
	e := clustertest.StartAuthEtcd(t, c.prefix, clustertest.WithClientCertAuth())
	c.etcd, c.auth = e.Endpoint, e.Root()
	coordTLS, workerTLS := e.ClientCert(t, e.Users.Coordinator), e.ClientCert(t, e.Users.Worker)
	_, addr := c.coordinator("--etcd-ca", coordTLS.CA, "--etcd-cert", coordTLS.Cert, "--etcd-key", coordTLS.Key)
	c.workerEnv("w1", []string{"CLICKSTREAM_ETCD_CA=" + workerTLS.CA, "CLICKSTREAM_ETCD_CERT=" + workerTLS.Cert, "CLICKSTREAM_ETCD_KEY=" + workerTLS.Key})
	noCert := c.worker("w2", "--etcd-ca", e.CAFile)
	select {
	case <-noCert.done:
	case <-time.After(30 * time.Second):
		t.Fatal("a worker without a client certificate is still running")
	}
	if code := noCert.cmd.ProcessState.ExitCode(); code == 0 || !strings.Contains(noCert.output(), "--etcd-cert") {
		t.Fatalf("a worker without a client certificate exited %d:\n%s", code, noCert.output())
	}
	cl := c.client(addr)
	c.ready(cl)
	c.waitWorkers(1)
	out := c.outURI()
	j := c.wait(cl, c.submit(cl, c.spec(out)).GetId())
	c.checkResult(j, out)
}

// succeeds waits up to timeout for a command to exit, and fails the test
// unless it exited 0.
func (p *proc) succeeds(t *testing.T, timeout time.Duration) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("%s did not return", p.name)
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("%s exited %d:\n%s", p.name, code, p.output())
	}
}
