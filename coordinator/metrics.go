package coordinator

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	jobs     *prometheus.CounterVec
	attempts *prometheus.CounterVec
	leader   prometheus.Gauge
	merge    prometheus.Histogram
	jobTime  prometheus.Histogram
	// jobsPruned counts job records deleted after the retention period.
	jobsPruned prometheus.Counter
	// Lake vacuums (--vacuum-every).
	vacuumDeleted  prometheus.Counter
	vacuumFailures prometheus.Counter
	// maintenanceFailures counts failed runs of Config.Maintenance tasks.
	maintenanceFailures *prometheus.CounterVec

	// refused counts requests refused for a limit a later one may pass.
	refused *prometheus.CounterVec

	scheduleWindows   *prometheus.CounterVec
	scheduleReruns    prometheus.Counter
	scheduleRollups   *prometheus.CounterVec
	scheduleLag       prometheus.Gauge
	scheduleWatermark prometheus.Gauge

	// attemptsStarted counts attempts launched, by kind (first, retry,
	// backup).
	attemptsStarted *prometheus.CounterVec
	// suspects counts workers taken out of placement after a call to
	// them failed (suspectWorker).
	suspects prometheus.Counter
	// The cluster as the leader sees it, set by term.observe at most every
	// observeEvery and zeroed when leadership ends: 0 on a standby.
	workers     *prometheus.GaugeVec // by state: ready, draining
	workerSlots prometheus.Gauge     // task slots of ready workers
	tasks       *prometheus.GaugeVec // tasks of running jobs, by state: pending, running, done
	activeJobs  *prometheus.GaugeVec // unfinished jobs, by state
}

// Attempt outcomes, the values of the "outcome" label.
const (
	attemptOK        = "ok"
	attemptDuplicate = "duplicate" // another attempt of the task committed first
	attemptFailed    = "failed"
	attemptLost      = "lost"
	attemptCancelled = "cancelled"
)

// Limits a request may be refused for, the values of the "limit" label.
const (
	limitSubmitRate   = "submit_rate"
	limitActiveJobs   = "active_jobs"
	limitWatchStreams = "watch_streams"
)

// Kinds of attempt, the values of the "kind" label of attempts started.
const (
	kindFirst  = "first"  // a task's first attempt
	kindRetry  = "retry"  // after an attempt failed or was lost
	kindBackup = "backup" // a second attempt of a straggler
)

// Worker and task states, the values of the "state" label of the gauges.
const (
	workerReady    = "ready"
	workerDraining = "draining"
	taskPending    = "pending" // waiting for a worker
)

// observeEvery is how often the leader refreshes its gauges of the cluster.
const observeEvery = time.Second

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "clickstream_coordinator_jobs_total",
			Help: "Jobs finished by this coordinator as leader, by final state.",
		}, []string{"state"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "clickstream_coordinator_task_attempts_total",
			Help: "Task attempts ended, by outcome (ok, duplicate, failed, lost, cancelled).",
		}, []string{"outcome"}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "clickstream_coordinator_leader",
			Help: "1 while this coordinator leads the cluster.",
		}),
		merge: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "clickstream_coordinator_merge_seconds",
			Help:    "Time to merge a job's partials and commit its result.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 16),
		}),
		jobTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "clickstream_coordinator_job_duration_seconds",
			Help:    "Wall time of succeeded jobs, from start to commit.",
			Buckets: prometheus.ExponentialBuckets(0.1, 2, 16),
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "clickstream_coordinator_requests_refused_total",
			Help: "Requests refused with RESOURCE_EXHAUSTED, by limit (submit_rate, active_jobs, watch_streams).",
		}, []string{"limit"}),
		scheduleWindows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "clickstream_coordinator_schedule_windows_total",
			Help: "Scheduled window jobs finished, by outcome (succeeded, failed), and provisional window results finalized (finalized).",
		}, []string{"outcome"}),
		vacuumDeleted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "clickstream_coordinator_vacuum_deleted_files_total",
			Help: "Lake files no manifest names deleted by the periodic vacuum.",
		}),
		maintenanceFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "clickstream_coordinator_maintenance_failures_total",
			Help: "Failed runs of the leader's periodic maintenance, by task (e.g. iceberg-maintenance).",
		}, []string{"task"}),
		vacuumFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "clickstream_coordinator_vacuum_failures_total",
			Help: "Periodic lake vacuums that failed.",
		}),
		jobsPruned: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "clickstream_coordinator_jobs_pruned_total",
			Help: "Records of finished jobs deleted from etcd after --job-retention.",
		}),
		scheduleReruns: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "clickstream_coordinator_schedule_reruns_total",
			Help: "Windows processed again because their input changed (late data).",
		}),
		scheduleRollups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "clickstream_coordinator_schedule_rollups_total",
			Help: "Days rolled up by the scheduler (--schedule-rollups), by outcome (done, failed).",
		}, []string{"state"}),
		scheduleLag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "clickstream_coordinator_schedule_watermark_lag_seconds",
			Help: "Wall clock minus the lake's event-time watermark, as the scheduler last saw it.",
		}),
		scheduleWatermark: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "clickstream_coordinator_schedule_watermark_timestamp_seconds",
			Help: "The lake's event-time watermark (Unix seconds) as the scheduler last saw it; 0 before it has seen one.",
		}),
		attemptsStarted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "clickstream_coordinator_task_attempts_started_total",
			Help: "Task attempts launched by this coordinator as leader, by kind (first, retry, backup).",
		}, []string{"kind"}),
		suspects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "clickstream_coordinator_workers_suspected_total",
			Help: "Workers given no new task after a call to them failed, until they answered again or left.",
		}),
		workers: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "clickstream_coordinator_workers",
			Help: "Workers registered in etcd as the leader sees them, by state (ready, draining); 0 on a standby.",
		}, []string{"state"}),
		workerSlots: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "clickstream_coordinator_worker_slots",
			Help: "Task slots (parallelism) of the ready workers as the leader sees them; 0 on a standby.",
		}),
		tasks: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "clickstream_coordinator_tasks",
			Help: "Tasks of the jobs the leader runs, by state: pending (waiting for a worker), running, done; 0 on a standby.",
		}, []string{"state"}),
		activeJobs: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "clickstream_coordinator_jobs_active",
			Help: "Unfinished jobs the leader manages, by state (pending, running, merging, committing); 0 on a standby.",
		}, []string{"state"}),
	}
	for _, s := range []string{"succeeded", "failed", "cancelled"} {
		m.jobs.WithLabelValues(s)
	}
	for _, o := range []string{attemptOK, attemptDuplicate, attemptFailed, attemptLost, attemptCancelled} {
		m.attempts.WithLabelValues(o)
	}
	for _, l := range []string{limitSubmitRate, limitActiveJobs, limitWatchStreams} {
		m.refused.WithLabelValues(l)
	}
	for _, o := range []string{"succeeded", "failed", "finalized"} {
		m.scheduleWindows.WithLabelValues(o)
	}
	for _, k := range []string{kindFirst, kindRetry, kindBackup} {
		m.attemptsStarted.WithLabelValues(k)
	}
	m.clearCluster()
	if reg != nil {
		reg.MustRegister(m.refused, m.jobs, m.attempts, m.leader, m.merge, m.jobTime, m.jobsPruned, m.vacuumDeleted, m.vacuumFailures, m.maintenanceFailures,
			m.scheduleWindows, m.scheduleReruns, m.scheduleRollups, m.scheduleLag, m.scheduleWatermark,
			m.attemptsStarted, m.suspects, m.workers, m.workerSlots, m.tasks, m.activeJobs)
	}
	return m
}

// attemptStarted counts attempt n of a task, launched as a backup or not.
func (m *metrics) attemptStarted(n int, backup bool) {
	kind := kindFirst
	switch {
	case backup:
		kind = kindBackup
	case n > 1:
		kind = kindRetry
	}
	m.attemptsStarted.WithLabelValues(kind).Inc()
}

// clearCluster zeroes the gauges of the cluster: this coordinator does not
// lead (any more).
func (m *metrics) clearCluster() {
	for _, s := range []string{workerReady, workerDraining} {
		m.workers.WithLabelValues(s).Set(0)
	}
	m.workerSlots.Set(0)
	for _, s := range []string{taskPending, taskRunning, taskDone} {
		m.tasks.WithLabelValues(s).Set(0)
	}
	for _, s := range []string{statePending, stateRunning, stateMerging, stateCommitting} {
		m.activeJobs.WithLabelValues(s).Set(0)
	}
}

// observe sets the gauges of the cluster from the term's state, at most
// every observeEvery. It runs on the term's goroutine.
func (tm *term) observe(now time.Time) {
	if now.Sub(tm.observed) < observeEvery {
		return
	}
	tm.observed = now
	m := tm.c.metrics
	var ready, draining, slots int
	for _, w := range tm.workers {
		if w.info.Draining {
			draining++
			continue
		}
		ready++
		slots += max(1, w.info.Parallelism)
	}
	var pending, running, done int
	jobs := map[string]int{statePending: 0, stateRunning: 0, stateMerging: 0, stateCommitting: 0}
	for _, j := range tm.jobs {
		if terminal(j.rec.State) {
			continue
		}
		if _, ok := jobs[j.rec.State]; ok {
			jobs[j.rec.State]++
		}
		if j.phase != phaseRunning {
			continue
		}
		for _, t := range j.tasks {
			switch {
			case t.rec.State == taskDone:
				done++
			case len(t.attempts) > 0:
				running++
			default:
				pending++
			}
		}
	}
	m.workers.WithLabelValues(workerReady).Set(float64(ready))
	m.workers.WithLabelValues(workerDraining).Set(float64(draining))
	m.workerSlots.Set(float64(slots))
	m.tasks.WithLabelValues(taskPending).Set(float64(pending))
	m.tasks.WithLabelValues(taskRunning).Set(float64(running))
	m.tasks.WithLabelValues(taskDone).Set(float64(done))
	for s, n := range jobs {
		m.activeJobs.WithLabelValues(s).Set(float64(n))
	}
}
