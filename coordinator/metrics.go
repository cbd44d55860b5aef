package coordinator

import "github.com/prometheus/client_golang/prometheus"

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

	// refused counts requests refused for a limit a later one may pass.
	refused *prometheus.CounterVec

	scheduleWindows *prometheus.CounterVec
	scheduleReruns  prometheus.Counter
	scheduleLag     prometheus.Gauge
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
			Help: "Scheduled window jobs finished, by outcome (succeeded, failed).",
		}, []string{"outcome"}),
		vacuumDeleted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "clickstream_coordinator_vacuum_deleted_files_total",
			Help: "Lake files no manifest names deleted by the periodic vacuum.",
		}),
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
		scheduleLag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "clickstream_coordinator_schedule_watermark_lag_seconds",
			Help: "Wall clock minus the lake's event-time watermark, as the scheduler last saw it.",
		}),
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
	if reg != nil {
		reg.MustRegister(m.refused, m.jobs, m.attempts, m.leader, m.merge, m.jobTime, m.jobsPruned, m.vacuumDeleted, m.vacuumFailures, m.scheduleWindows, m.scheduleReruns, m.scheduleLag)
	}
	return m
}
