package worker

import "github.com/prometheus/client_golang/prometheus"

// Task outcomes, the values of the "outcome" label.
const (
	outcomeOK        = "ok"
	outcomeCommitted = "already_committed"
	outcomeFailed    = "failed"
	outcomeCancelled = "cancelled"
)

type metrics struct {
	tasks      *prometheus.CounterVec
	duration   prometheus.Histogram
	eventsRead prometheus.Counter
	bytesRead  prometheus.Counter
	running    prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		tasks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "clickstream_worker_tasks_total",
			Help: "Task attempts finished, by outcome (ok, already_committed, failed, cancelled).",
		}, []string{"outcome"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "clickstream_worker_task_duration_seconds",
			Help:    "Wall time of task attempts, from start to commit or failure.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 16),
		}),
		eventsRead: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "clickstream_worker_events_read_total",
			Help: "Events read from the lake by tasks.",
		}),
		bytesRead: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "clickstream_worker_bytes_read_total",
			Help: "Bytes of data files read from the lake by tasks.",
		}),
		running: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "clickstream_worker_tasks_running",
			Help: "Task attempts running now.",
		}),
	}
	for _, o := range []string{outcomeOK, outcomeCommitted, outcomeFailed, outcomeCancelled} {
		m.tasks.WithLabelValues(o)
	}
	if reg != nil {
		reg.MustRegister(m.tasks, m.duration, m.eventsRead, m.bytesRead, m.running)
	}
	return m
}
