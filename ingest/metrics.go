package ingest

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dataco/clickstream/internal/event"
)

// metrics are the ingest's Prometheus metrics, registered once per process.
type metrics struct {
	consumed     prometheus.Counter
	written      prometheus.Counter
	botsWritten  prometheus.Counter
	rejected     *prometheus.CounterVec
	commits      prometheus.Counter
	fenced       prometheus.Counter
	flushSeconds prometheus.Histogram
	lag          *prometheus.GaugeVec
	retentionGap *prometheus.CounterVec

	tableCommits         prometheus.Counter
	tableCommitRetries   prometheus.Counter
	tablePublishFailures prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		consumed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "clickstream_ingest_records_consumed_total",
			Help: "Raw records read from the source (Kafka or file).",
		}),
		written: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "clickstream_ingest_events_written_total",
			Help: "Valid events committed to the lake.",
		}),
		botsWritten: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "clickstream_ingest_bot_events_written_total",
			Help: "Valid events committed to the lake whose user agent is a crawler's or an automation tool's (is_bot).",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "clickstream_ingest_records_rejected_total",
			Help: "Invalid records committed to the dead-letter area, by reason.",
		}, []string{"reason"}),
		commits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "clickstream_ingest_commits_total",
			Help: "Manifests committed to the lake.",
		}),
		fenced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "clickstream_ingest_commits_fenced_total",
			Help: "Commits refused because another writer had committed the same sequence number.",
		}),
		flushSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "clickstream_ingest_flush_duration_seconds",
			Help:    "Time to write one commit's objects and manifest.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
		}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "clickstream_ingest_consumer_lag_records",
			Help: "Records between the partition's high-water mark and the last record consumed.",
		}, []string{"topic", "partition"}),
		retentionGap: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "clickstream_ingest_retention_gap_records_total",
			Help: "Records Kafka deleted (retention) before ingest committed them to the lake: lost upstream.",
		}, []string{"topic", "partition"}),
		tableCommits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "clickstream_ingest_table_commits_total",
			Help: "Commits of the lake's new data files to its Iceberg events table.",
		}),
		tableCommitRetries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "clickstream_ingest_table_commit_retries_total",
			Help: "Iceberg table commits lost to a concurrent publisher and redone.",
		}),
		tablePublishFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "clickstream_ingest_table_publish_failures_total",
			Help: "Publications to the Iceberg events table that failed (retried; the lake keeps the commits).",
		}),
	}
	// Every reason from the start, at 0: a rate over a series that appears
	// with its first increment would miss that increment.
	for _, r := range event.Reasons() {
		m.rejected.WithLabelValues(string(r))
	}
	if reg != nil {
		reg.MustRegister(m.consumed, m.written, m.botsWritten, m.rejected, m.commits, m.fenced, m.flushSeconds, m.lag, m.retentionGap,
			m.tableCommits, m.tableCommitRetries, m.tablePublishFailures)
	}
	return m
}
