package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/dataco/clickstream/coordinator"
	"github.com/dataco/clickstream/internal/faultproxy"
	pb "github.com/dataco/clickstream/proto/clickstream/v1"
)

// Class is a fault class: the shape of the cluster it needs and the faults
// it injects in the ingest and job phases of a run. Every random choice is
// drawn from the run's Rand, so a seed replays the same schedule.
type Class struct {
	Name string
	// Doc says what the class does, for the report.
	Doc string
	// Stack marks classes that stop a shared stack service (Kafka,
	// Elasticsearch): only for make chaos, never under make test.
	Stack bool
	// Topology picks the run's cluster; nil is one etcd member, one
	// coordinator, three workers, one ingest.
	Topology func(rng *rand.Rand) Topology
	// Ingest injects faults while ingest runs (it returns when done).
	Ingest func(ctx context.Context, r *Run) error
	// Submit submits the run's jobs; nil submits one job per window.
	Submit func(ctx context.Context, r *Run, cl *coordinator.Client) error
	// Jobs injects faults while the jobs run, concurrently with Submit.
	Jobs func(ctx context.Context, r *Run) error
}

// NoFaults is the fault-free run every other is compared with.
var NoFaults = &Class{Name: "none", Doc: "no faults: the baseline", Topology: standard}

// standard is three workers that are slow enough for faults to land while
// tasks run.
func standard(*rand.Rand) Topology {
	return Topology{Workers: 3, WorkerSlow: 300 * time.Millisecond}
}

// Classes returns every fault class, in report order.
func Classes() []*Class {
	return []*Class{
		{Name: "worker-kill", Doc: "SIGKILL a worker at a random moment of a job; restarted or not", Topology: standard, Jobs: workerKill},
		{Name: "worker-crash-partial", Doc: "worker failpoint: SIGKILL before or after writing the Nth partial (CLICKSTREAM_WORKER_CRASH_AT)", Topology: workerFailpoint, Jobs: restartDead(workerNodes, "worker")},
		{Name: "worker-zombie", Doc: "SIGSTOP a worker past its lease, then SIGCONT", Topology: standard, Jobs: workerZombie},
		{Name: "worker-scale", Doc: "scale workers 1 -> 4 -> 1 mid-job", Topology: func(*rand.Rand) Topology { return Topology{Workers: 1, WorkerSlow: 300 * time.Millisecond} }, Jobs: workerScale},
		{Name: "coordinator-kill", Doc: "SIGKILL the only coordinator mid-job, restart it", Topology: standard, Jobs: coordinatorKill},
		{Name: "coordinator-crash-commit", Doc: "coordinator failpoint: SIGKILL before commit, after _SUCCESS, or after recording success (CLICKSTREAM_COORDINATOR_CRASH_AT); restarted", Topology: coordinatorFailpoint, Jobs: restartDead(coordNodes, "coordinator")},
		{Name: "leader-kill", Doc: "SIGKILL the leader with two standbys", Topology: standbys, Jobs: leaderKill},
		{Name: "leader-stop", Doc: "SIGSTOP the leader past its election TTL, then SIGCONT", Topology: standbys, Jobs: leaderStop},
		{Name: "etcd-kill", Doc: "SIGKILL or SIGSTOP the single etcd mid-job, then restart or resume it", Topology: standard, Jobs: etcdKill},
		{Name: "etcd-commit-boundary", Doc: "SIGKILL etcd when a job reaches merging/committing, restart it", Topology: standard, Jobs: etcdAtCommit},
		{Name: "etcd-member-loss", Doc: "a 3-member etcd cluster loses one member (maybe the leader) mid-job", Topology: func(*rand.Rand) Topology {
			return Topology{EtcdMembers: 3, Workers: 3, WorkerSlow: 300 * time.Millisecond}
		}, Jobs: etcdMemberLoss},
		{Name: "ingest-kill", Doc: "SIGKILL ingest at a random moment of its uploads, restart it", Ingest: ingestKill},
		{Name: "ingest-crash-commit", Doc: "ingest failpoint: SIGKILL before or after the Nth manifest (CLICKSTREAM_INGEST_CRASH_AT)", Topology: ingestFailpoint, Ingest: ingestRestartDead},
		{Name: "ingest-zombie", Doc: "two consumers; one pauses before its manifest until its partitions moved (rebalance), then resumes", Topology: func(*rand.Rand) Topology {
			return Topology{Ingests: 2, Workers: 3, IngestEnv: func(i int) []string {
				if i == 0 {
					return []string{"CLICKSTREAM_INGEST_CRASH_AT=pause-before-manifest:2"}
				}
				return nil
			}}
		}, Ingest: ingestZombie},
		{Name: "versitygw-restart", Doc: "SIGKILL the S3 server during ingest and during a job, restart it", Topology: standard, Ingest: s3Restart, Jobs: s3RestartJobs},
		{Name: "s3-throttle", Doc: "503 SlowDown and 500 InternalError on a share of S3 requests", Topology: standard, Ingest: s3Throttle, Jobs: s3Throttle},
		{Name: "s3-slow", Doc: "S3 latency and dropped connections (before and after the request took effect)", Topology: standard, Ingest: s3Slow, Jobs: s3Slow},
		{Name: "partition-worker-etcd", Doc: "blackhole a worker's etcd links past its lease, heal", Topology: standard, Jobs: partitionWorkerEtcd},
		{Name: "partition-leader-etcd", Doc: "blackhole or refuse the leader's etcd links past its election TTL, with a standby; heal", Topology: func(*rand.Rand) Topology {
			return Topology{Coordinators: 2, Workers: 3, WorkerSlow: 300 * time.Millisecond}
		}, Jobs: partitionLeaderEtcd},
		{Name: "partition-coord-worker", Doc: "refuse, blackhole or delay the coordinator's link to a worker; heal", Topology: standard, Jobs: partitionCoordWorker},
		{Name: "cancel-race", Doc: "cancel a job as it merges or commits, and resubmit its window", Topology: standard, Submit: cancelRace},
		{Name: "duplicate-submit", Doc: "every window submitted twice with one key and once more with another", Topology: standard, Submit: duplicateSubmit},
		{Name: "kafka-restart", Doc: "restart the stack's Kafka broker during ingest", Stack: true, Ingest: kafkaRestart},
		{Name: "es-restart", Doc: "restart the stack's Elasticsearch while results are indexed", Stack: true, Topology: standard, Jobs: esRestart},
	}
}

// SubsetNames are the classes of the in-test subset: a process crash, a
// crash at each commit step, a store outage, throttling and a partition,
// none touching the shared stack.
var SubsetNames = []string{"worker-kill", "worker-crash-partial", "coordinator-crash-commit", "etcd-kill",
	"ingest-crash-commit", "s3-throttle", "partition-worker-etcd"}

// Select returns the classes named (comma-separated; "all" or "" for
// every one).
func Select(names string) ([]*Class, error) {
	all := Classes()
	if names == "" || names == "all" {
		return all, nil
	}
	var out []*Class
	for _, n := range strings.Split(names, ",") {
		n = strings.TrimSpace(n)
		i := slices.IndexFunc(all, func(c *Class) bool { return c.Name == n })
		if i < 0 {
			var known []string
			for _, c := range all {
				known = append(known, c.Name)
			}
			return nil, fmt.Errorf("chaos: unknown fault class %q (known: %s)", n, strings.Join(known, ", "))
		}
		out = append(out, all[i])
	}
	return out, nil
}

func standbys(*rand.Rand) Topology {
	return Topology{Coordinators: 3, Workers: 3, WorkerSlow: 300 * time.Millisecond}
}

func workerKill(ctx context.Context, r *Run) error {
	n := 1 + r.Rand.IntN(2)
	for i := range n {
		frac := 0.1 + 0.6*r.Rand.Float64()
		restart := r.Rand.IntN(2) == 0
		pause := Jitter(r.Rand, 0, 3*time.Second)
		if !r.WaitProgress(ctx, frac*float64(i+1)/float64(n)) {
			return nil
		}
		w := Pick(r.Rand, r.AliveWorkers())
		if w == nil {
			return nil
		}
		r.Inject("worker SIGKILL", "worker", w.Name, "restart", restart)
		if err := w.Proc.Kill(); err != nil {
			return err
		}
		if restart {
			if !Sleep(ctx, pause) {
				return nil
			}
			if err := w.Proc.Restart(); err != nil {
				return err
			}
		}
	}
	return nil
}

func workerZombie(ctx context.Context, r *Run) error {
	frac := 0.1 + 0.6*r.Rand.Float64()
	hold := Jitter(r.Rand, 3*time.Second, 7*time.Second) // lease TTL 2 s
	if !r.WaitProgress(ctx, frac) {
		return nil
	}
	w := Pick(r.Rand, r.AliveWorkers())
	r.Inject("worker SIGSTOP", "worker", w.Name, "for", hold)
	if err := w.Proc.Stop(); err != nil {
		return err
	}
	Sleep(ctx, hold)
	return w.Proc.Cont()
}

func workerScale(ctx context.Context, r *Run) error {
	up := 0.05 + 0.2*r.Rand.Float64()
	down := up + 0.1 + 0.3*r.Rand.Float64()
	kill := r.Rand.IntN(2) == 0
	if !r.WaitProgress(ctx, up) {
		return nil
	}
	r.Inject("scale 1 -> 4")
	var added []*Node
	for i := 1; i <= 3; i++ {
		n, err := r.StartWorker(i)
		if err != nil {
			return err
		}
		added = append(added, n)
	}
	if !r.WaitProgress(ctx, down) {
		return nil
	}
	r.Inject("scale 4 -> 1", "kill", kill)
	for _, n := range added {
		var err error
		if kill {
			err = n.Proc.Kill()
		} else {
			err = n.Proc.Terminate(5 * time.Second)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func coordinatorKill(ctx context.Context, r *Run) error {
	frac := 0.1 + 0.7*r.Rand.Float64()
	pause := Jitter(r.Rand, 0, 4*time.Second)
	if !r.WaitProgress(ctx, frac) {
		return nil
	}
	c := r.Coords[0]
	r.Inject("coordinator SIGKILL", "down", pause)
	if err := c.Proc.Kill(); err != nil {
		return err
	}
	Sleep(ctx, pause)
	return c.Proc.Restart()
}

func leaderKill(ctx context.Context, r *Run) error {
	frac := 0.1 + 0.7*r.Rand.Float64()
	if !r.WaitProgress(ctx, frac) {
		return nil
	}
	l := r.Leader(ctx)
	if l == nil {
		return nil
	}
	r.Inject("leader SIGKILL", "leader", l.Name)
	return l.Proc.Kill()
}

func leaderStop(ctx context.Context, r *Run) error {
	frac := 0.1 + 0.7*r.Rand.Float64()
	hold := Jitter(r.Rand, 3*time.Second, 8*time.Second) // leader TTL 2 s
	if !r.WaitProgress(ctx, frac) {
		return nil
	}
	l := r.Leader(ctx)
	if l == nil {
		return nil
	}
	r.Inject("leader SIGSTOP", "leader", l.Name, "for", hold)
	if err := l.Proc.Stop(); err != nil {
		return err
	}
	Sleep(ctx, hold)
	return l.Proc.Cont()
}

func etcdKill(ctx context.Context, r *Run) error {
	frac := 0.1 + 0.7*r.Rand.Float64()
	stop := r.Rand.IntN(2) == 0
	hold := Jitter(r.Rand, time.Second, 6*time.Second)
	if !r.WaitProgress(ctx, frac) {
		return nil
	}
	m := r.Etcd.Members[0]
	if stop {
		r.Inject("etcd SIGSTOP", "for", hold)
		if err := m.Proc.Stop(); err != nil {
			return err
		}
		Sleep(ctx, hold)
		return m.Proc.Cont()
	}
	r.Inject("etcd SIGKILL", "down", hold)
	if err := m.Proc.Kill(); err != nil {
		return err
	}
	Sleep(ctx, hold)
	return m.Restart(context.WithoutCancel(ctx))
}

// etcdAtCommit kills etcd once a job is merging or committing: its result
// is being written and its success not yet recorded.
func etcdAtCommit(ctx context.Context, r *Run) error {
	hold := Jitter(r.Rand, time.Second, 5*time.Second)
	cl, err := r.Client()
	if err != nil {
		return err
	}
	defer cl.Close()
	for {
		hit := false
		for _, j := range r.JobList() {
			st, err := cl.Get(ctx, j.ID)
			if err == nil && (st.GetState() == pb.JobState_JOB_STATE_MERGING || st.GetState() == pb.JobState_JOB_STATE_COMMITTING) {
				hit = true
			}
		}
		if hit {
			break
		}
		if !Sleep(ctx, 20*time.Millisecond) {
			return nil
		}
	}
	m := r.Etcd.Members[0]
	r.Inject("etcd SIGKILL at commit", "down", hold)
	if err := m.Proc.Kill(); err != nil {
		return err
	}
	Sleep(ctx, hold)
	return m.Restart(context.WithoutCancel(ctx))
}

func etcdMemberLoss(ctx context.Context, r *Run) error {
	frac := 0.1 + 0.7*r.Rand.Float64()
	m := Pick(r.Rand, r.Etcd.Members)
	if !r.WaitProgress(ctx, frac) {
		return nil
	}
	r.Inject("etcd member SIGKILL", "member", m.Name)
	return m.Proc.Kill() // restarted when the run heals
}

func workerFailpoint(rng *rand.Rand) Topology {
	point := Pick(rng, []string{"before-partial", "after-partial"})
	n := 1 + rng.IntN(3)
	t := standard(rng)
	t.WorkerEnv = func(i int) []string {
		if i == 0 {
			return []string{fmt.Sprintf("CLICKSTREAM_WORKER_CRASH_AT=%s:%d", point, n)}
		}
		return nil
	}
	return t
}

func coordinatorFailpoint(rng *rand.Rand) Topology {
	point := Pick(rng, []string{"before-commit", "after-commit", "after-record"})
	n := 1 + rng.IntN(2)
	t := standard(rng)
	t.Coordinators = 1 + rng.IntN(2)
	t.CoordinatorEnv = func(i int) []string {
		if i == 0 {
			return []string{fmt.Sprintf("CLICKSTREAM_COORDINATOR_CRASH_AT=%s:%d", point, n)}
		}
		return nil
	}
	return t
}

func workerNodes(r *Run) []*Node {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.Workers)
}

func coordNodes(r *Run) []*Node {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.Coords)
}

// restartDead watches the nodes: each that dies (a failpoint fired)
// counts as an injection and is restarted after a pause, without its
// failpoint.
func restartDead(nodes func(*Run) []*Node, what string) func(ctx context.Context, r *Run) error {
	return func(ctx context.Context, r *Run) error {
		pause := Jitter(r.Rand, 0, 3*time.Second)
		for {
			for _, n := range nodes(r) {
				if !n.Proc.Alive() {
					r.Inject(what+" failpoint fired", "node", n.Name)
					Sleep(ctx, pause)
					if err := n.Proc.Restart(); err != nil {
						return err
					}
				}
			}
			if !Sleep(ctx, 50*time.Millisecond) {
				return nil
			}
		}
	}
}

func ingestKill(ctx context.Context, r *Run) error {
	n := 1 + r.Rand.IntN(2)
	for range n {
		at := Jitter(r.Rand, 300*time.Millisecond, 4*time.Second)
		if !Sleep(ctx, at) {
			return nil
		}
		p := r.Ingests[0]
		if !p.Alive() {
			return nil
		}
		r.Inject("ingest SIGKILL", "after", at)
		if err := p.Restart(); err != nil {
			return err
		}
	}
	return nil
}

func ingestFailpoint(rng *rand.Rand) Topology {
	point := Pick(rng, []string{"before-manifest", "after-manifest"})
	n := 1 + rng.IntN(4)
	t := standard(rng)
	t.IngestEnv = func(int) []string { return []string{fmt.Sprintf("CLICKSTREAM_INGEST_CRASH_AT=%s:%d", point, n)} }
	return t
}

// ingestRestartDead restarts the first ingest if a failpoint killed it.
func ingestRestartDead(ctx context.Context, r *Run) error {
	p := r.Ingests[0]
	if err := p.Wait(ctx); err != nil {
		return nil
	}
	if p.ExitCode() != 0 {
		r.Inject("ingest failpoint fired")
		return p.Restart()
	}
	return nil
}

func ingestZombie(ctx context.Context, r *Run) error {
	hold := Jitter(r.Rand, 10*time.Second, 16*time.Second) // session timeout 6 s
	p := r.Ingests[0]
	if !WaitStopped(ctx, p) {
		return nil
	}
	r.Inject("ingest paused before its manifest", "for", hold)
	Sleep(ctx, hold)
	return p.Cont()
}

func s3Restart(ctx context.Context, r *Run) error {
	at := Jitter(r.Rand, 300*time.Millisecond, 4*time.Second)
	down := Jitter(r.Rand, 500*time.Millisecond, 4*time.Second)
	if !Sleep(ctx, at) {
		return nil
	}
	r.Inject("versitygw SIGKILL during ingest", "down", down)
	if err := r.S3.Proc.Kill(); err != nil {
		return err
	}
	Sleep(ctx, down)
	return r.S3.Restart(context.WithoutCancel(ctx))
}

func s3RestartJobs(ctx context.Context, r *Run) error {
	frac := 0.1 + 0.8*r.Rand.Float64()
	down := Jitter(r.Rand, 500*time.Millisecond, 4*time.Second)
	if !r.WaitProgress(ctx, frac) {
		return nil
	}
	r.Inject("versitygw SIGKILL during a job", "down", down)
	if err := r.S3.Proc.Kill(); err != nil {
		return err
	}
	Sleep(ctx, down)
	return r.S3.Restart(context.WithoutCancel(ctx))
}

func s3Throttle(_ context.Context, r *Run) error {
	rates := faultproxy.Rates{SlowDown: 0.05 + 0.15*r.Rand.Float64(), InternalError: 0.05 * r.Rand.Float64()}
	r.logger.Info("s3 throttling", "rates", fmt.Sprintf("%+v", rates))
	r.Proxy.SetRates(rates)
	return nil
}

func s3Slow(_ context.Context, r *Run) error {
	rates := faultproxy.Rates{Latency: 0.1 + 0.3*r.Rand.Float64(), Delay: Jitter(r.Rand, 50*time.Millisecond, 800*time.Millisecond),
		Drop: 0.02 * r.Rand.Float64(), DropAfter: 0.02 * r.Rand.Float64()}
	r.logger.Info("s3 latency", "rates", fmt.Sprintf("%+v", rates))
	r.Proxy.SetRates(rates)
	return nil
}

func partitionWorkerEtcd(ctx context.Context, r *Run) error {
	frac := 0.1 + 0.6*r.Rand.Float64()
	hold := Jitter(r.Rand, 3*time.Second, 7*time.Second)
	if !r.WaitProgress(ctx, frac) {
		return nil
	}
	w := Pick(r.Rand, r.AliveWorkers())
	r.Inject("partition worker from etcd", "worker", w.Name, "for", hold)
	w.Partition(faultproxy.Blackhole)
	Sleep(ctx, hold)
	w.Partition(faultproxy.Open)
	return nil
}

func partitionLeaderEtcd(ctx context.Context, r *Run) error {
	frac := 0.1 + 0.6*r.Rand.Float64()
	hold := Jitter(r.Rand, 3*time.Second, 8*time.Second)
	mode := Pick(r.Rand, []faultproxy.Mode{faultproxy.Blackhole, faultproxy.Refuse})
	if !r.WaitProgress(ctx, frac) {
		return nil
	}
	l := r.Leader(ctx)
	if l == nil {
		return nil
	}
	r.Inject("partition leader from etcd", "leader", l.Name, "mode", mode, "for", hold)
	l.Partition(mode)
	Sleep(ctx, hold)
	l.Partition(faultproxy.Open)
	return nil
}

func partitionCoordWorker(ctx context.Context, r *Run) error {
	frac := 0.1 + 0.6*r.Rand.Float64()
	hold := Jitter(r.Rand, 2*time.Second, 8*time.Second)
	mode := Pick(r.Rand, []string{"refuse", "blackhole", "delay"})
	if !r.WaitProgress(ctx, frac) {
		return nil
	}
	w := Pick(r.Rand, r.AliveWorkers())
	r.Inject("partition coordinator from worker", "worker", w.Name, "mode", mode, "for", hold)
	switch mode {
	case "refuse":
		w.RPCPx.Partition(faultproxy.Refuse)
	case "blackhole":
		w.RPCPx.Partition(faultproxy.Blackhole)
	default:
		w.RPCPx.SetDelay(300 * time.Millisecond)
	}
	Sleep(ctx, hold)
	w.RPCPx.SetDelay(0)
	w.RPCPx.Heal()
	return nil
}

// cancelRace submits every window, cancels one job as it merges or
// commits, and resubmits its window.
func cancelRace(ctx context.Context, r *Run, cl *coordinator.Client) error {
	if err := SubmitAll(ctx, r, cl); err != nil {
		return err
	}
	jobs := r.JobList()
	victim := Pick(r.SubmitRand, jobs)
	late := r.SubmitRand.IntN(2) == 0 // cancel at committing rather than merging
	for {
		st, err := cl.Get(ctx, victim.ID)
		if err == nil {
			s := st.GetState()
			if s == pb.JobState_JOB_STATE_COMMITTING || (!late && s == pb.JobState_JOB_STATE_MERGING) || coordinator.Terminal(s) {
				break
			}
		}
		if !Sleep(ctx, 5*time.Millisecond) {
			return nil
		}
	}
	r.Inject("cancel racing the commit", "job", victim.ID)
	if _, err := cl.Cancel(ctx, victim.ID); err != nil {
		r.logger.Info("cancel", "err", err)
	}
	_, err := r.Submit(ctx, cl, victim.Window, r.ID+"-resubmit-"+victim.Window.String())
	return err
}

// duplicateSubmit submits every window twice under one idempotency key
// (one job must come of it) and once more under another (a second job
// writing the same store).
func duplicateSubmit(ctx context.Context, r *Run, cl *coordinator.Client) error {
	for _, w := range r.h.input.Windows {
		key := r.ID + "-" + w.String()
		a, err := r.Submit(ctx, cl, w, key)
		if err != nil {
			return err
		}
		b, err := r.Submit(ctx, cl, w, key)
		if err != nil {
			return err
		}
		r.Inject("duplicate submit", "window", w.String())
		if a.ID != b.ID {
			r.Note("%s: one idempotency key gave two jobs, %s and %s", w, a.ID, b.ID)
		}
		if _, err := r.Submit(ctx, cl, w, key+"-again"); err != nil {
			return err
		}
	}
	return nil
}

// stack runs deploy/local/stack.sh with args.
func stack(ctx context.Context, r *Run, args ...string) error {
	cmd := exec.CommandContext(ctx, r.h.cfg.StackScript, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("chaos: stack.sh %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

func kafkaRestart(ctx context.Context, r *Run) error {
	at := Jitter(r.Rand, 300*time.Millisecond, 3*time.Second)
	down := Jitter(r.Rand, 2*time.Second, 8*time.Second)
	if !Sleep(ctx, at) {
		return nil
	}
	r.Inject("kafka broker restart", "down", down)
	bg := context.WithoutCancel(ctx)
	if err := stack(bg, r, "stop", "kafka"); err != nil {
		return err
	}
	Sleep(ctx, down)
	return stack(bg, r, "start", "kafka")
}

func esRestart(ctx context.Context, r *Run) error {
	frac := 0.5 + 0.5*r.Rand.Float64()
	down := Jitter(r.Rand, 3*time.Second, 15*time.Second)
	if !r.WaitProgress(ctx, frac) {
		return nil
	}
	r.Inject("elasticsearch restart", "down", down)
	bg := context.WithoutCancel(ctx)
	if err := stack(bg, r, "stop", "es"); err != nil {
		return err
	}
	Sleep(ctx, down)
	return stack(bg, r, "start", "es")
}
