package coordinator

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/dataco/clickstream/internal/cluster"
	pb "github.com/dataco/clickstream/proto/clickstream/v1"
)

// gauge reads the value of a gauge or counter.
func gauge(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		t.Fatal(err)
	}
	if d.Gauge != nil {
		return d.GetGauge().GetValue()
	}
	return d.GetCounter().GetValue()
}

// clusterView is what the leader's gauges of the cluster say.
type clusterView struct {
	ready, draining, slots               float64
	pending, running, done               float64
	jobsRunning, jobsPending, jobsMerged float64 // jobsMerged: merging + committing
	first, retry, backup                 float64 // attempts started
}

func viewOf(t *testing.T, m *metrics) clusterView {
	t.Helper()
	return clusterView{
		ready:       gauge(t, m.workers.WithLabelValues(workerReady)),
		draining:    gauge(t, m.workers.WithLabelValues(workerDraining)),
		slots:       gauge(t, m.workerSlots),
		pending:     gauge(t, m.tasks.WithLabelValues(taskPending)),
		running:     gauge(t, m.tasks.WithLabelValues(taskRunning)),
		done:        gauge(t, m.tasks.WithLabelValues(taskDone)),
		jobsRunning: gauge(t, m.activeJobs.WithLabelValues(stateRunning)),
		jobsPending: gauge(t, m.activeJobs.WithLabelValues(statePending)),
		jobsMerged:  gauge(t, m.activeJobs.WithLabelValues(stateMerging)) + gauge(t, m.activeJobs.WithLabelValues(stateCommitting)),
		first:       gauge(t, m.attemptsStarted.WithLabelValues(kindFirst)),
		retry:       gauge(t, m.attemptsStarted.WithLabelValues(kindRetry)),
		backup:      gauge(t, m.attemptsStarted.WithLabelValues(kindBackup)),
	}
}

// TestClusterGauges: the leader's gauges follow its workers, the tasks of
// a job as they wait, run and finish, and the attempts it starts; they are
// zero once it no longer leads.
func TestClusterGauges(t *testing.T) {
	h := newHarness(t, 4, 50, 1000)
	hanger := h.worker("hanger", 2, hang)
	drainer := h.worker("drainer", 3, nil)
	info := cluster.WorkerInfo{ID: "drainer", Addr: drainer.addr, Parallelism: 3, Started: time.Now(), Draining: true}
	if _, err := h.cli.Put(context.Background(), h.keys.Worker("drainer"), encode(info), clientv3.WithLease(drainer.lease)); err != nil {
		t.Fatal(err)
	}
	c := h.coordinator(nil)
	cl := h.client(c)
	// Retries are not compared: on a loaded machine an attempt may be lost
	// (and retried) beyond the ones the test causes; they are checked
	// below as bounds.
	noRetries := func(v clusterView) clusterView {
		v.retry = 0
		return v
	}
	expect := func(what string, want clusterView) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			got := viewOf(t, c.metrics)
			if noRetries(got) == noRetries(want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("waiting for %s: the gauges say %+v, want %+v", what, got, want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	expect("the workers counted", clusterView{ready: 1, draining: 1, slots: 2})

	// Four tasks, two slots: two run (and hang), two wait.
	j, err := cl.Submit(context.Background(), h.spec())
	if err != nil {
		t.Fatal(err)
	}
	expect("two tasks running, two pending", clusterView{ready: 1, draining: 1, slots: 2,
		pending: 2, running: 2, jobsRunning: 1, first: 2})

	// A worker with room takes the two waiting tasks and finishes them.
	h.worker("ok", 4, nil)
	expect("two tasks done", clusterView{ready: 2, draining: 1, slots: 6,
		running: 2, done: 2, jobsRunning: 1, first: 4})

	// The hanging worker dies: its two tasks are retried elsewhere, the job
	// succeeds and leaves the gauges.
	h.kill(hanger)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done, err := cl.Wait(ctx, j.GetId(), nil)
	if err != nil || done.GetState() != pb.JobState_JOB_STATE_SUCCEEDED {
		t.Fatalf("job: %v, %v", done.GetState(), err)
	}
	expect("the job gone from the gauges", clusterView{ready: 1, draining: 1, slots: 4, first: 4})
	retries := viewOf(t, c.metrics).retry
	if retries < 2 {
		t.Fatalf("%v retries counted; want at least the hanging worker's 2 tasks", retries)
	}
	if n := gauge(t, c.metrics.leader); n != 1 {
		t.Fatalf("leader gauge = %v, want 1", n)
	}

	// No longer the leader: nothing to report but the counters.
	c.Close()
	if got, want := viewOf(t, c.metrics), (clusterView{first: 4, retry: retries}); got != want {
		t.Fatalf("after Close: %+v, want %+v", got, want)
	}
	if n := gauge(t, c.metrics.leader); n != 0 {
		t.Fatalf("leader gauge after Close = %v, want 0", n)
	}
}

func TestAttemptStartedKind(t *testing.T) {
	for _, tc := range []struct {
		n      int
		backup bool
		kind   string
	}{
		{1, false, kindFirst},
		{2, false, kindRetry},
		{2, true, kindBackup},
		{5, true, kindBackup},
	} {
		t.Run(fmt.Sprintf("%d/%v", tc.n, tc.backup), func(t *testing.T) {
			m := newMetrics(nil)
			m.attemptStarted(tc.n, tc.backup)
			for _, k := range []string{kindFirst, kindRetry, kindBackup} {
				want := 0.0
				if k == tc.kind {
					want = 1
				}
				if got := gauge(t, m.attemptsStarted.WithLabelValues(k)); got != want {
					t.Errorf("%s = %v, want %v", k, got, want)
				}
			}
		})
	}
}

// TestMetricsRegistered: every metric of the coordinator is registered
// under its name (the dashboards and alerts in deploy/ query them).
func TestMetricsRegistered(t *testing.T) {
	reg := prometheus.NewRegistry()
	newMetrics(reg)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, mf := range mfs {
		got[mf.GetName()] = true
	}
	for _, name := range []string{
		"clickstream_coordinator_leader",
		"clickstream_coordinator_workers",
		"clickstream_coordinator_worker_slots",
		"clickstream_coordinator_tasks",
		"clickstream_coordinator_jobs_active",
		"clickstream_coordinator_task_attempts_started_total",
		"clickstream_coordinator_schedule_watermark_timestamp_seconds",
	} {
		if !got[name] {
			t.Errorf("%s is not registered", name)
		}
	}
}
