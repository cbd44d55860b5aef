package indexer

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Document outcomes, the values of the "outcome" label.
const (
	outcomeIndexed  = "indexed"  // accepted by Elasticsearch
	outcomeRejected = "rejected" // refused for its content (400), dead-lettered
	outcomeRetried  = "retried"  // sent again after a 429, a 5xx or a network error
	outcomeFailed   = "failed"   // not indexed when the call gave up (retries exhausted, refused request)
)

// Result outcomes, the values of the "outcome" label of results.
const (
	resultIndexed = "indexed" // IndexResult returned no error
	resultFailed  = "failed"  // IndexResult returned an error
)

// metrics are the indexer's Prometheus metrics.
type metrics struct {
	documents *prometheus.CounterVec
	retries   *prometheus.CounterVec
	duration  prometheus.Histogram
	stale     prometheus.Counter
	results   *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		documents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "clickstream_indexer_documents_total",
			Help: "Documents sent to Elasticsearch, by outcome: indexed, rejected (dead-lettered), retried, failed.",
		}, []string{"outcome"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "clickstream_indexer_bulk_retries_total",
			Help: "Retries: level=request counts HTTP requests the client retried (network error, 429, 5xx); " +
				"level=document counts documents sent again after their bulk item or request failed.",
		}, []string{"level"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "clickstream_indexer_index_duration_seconds",
			Help:    "Time to index one result: bulk indexing, retries, dead letters, stale cleanup and count check.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 14),
		}),
		stale: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "clickstream_indexer_stale_documents_deleted_total",
			Help: "Documents of a re-indexed window that were not in its new result and were deleted.",
		}),
		results: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "clickstream_indexer_results_total",
			Help: "Results (one window each) indexed, by outcome: indexed, failed (retries exhausted, count mismatch, refused request...).",
		}, []string{"outcome"}),
	}
	for _, o := range []string{outcomeIndexed, outcomeRejected, outcomeRetried, outcomeFailed} {
		m.documents.WithLabelValues(o)
	}
	m.results.WithLabelValues(resultIndexed)
	m.results.WithLabelValues(resultFailed)
	m.retries.WithLabelValues("request")
	m.retries.WithLabelValues("document")
	if reg != nil {
		var done []prometheus.Collector
		for _, c := range []prometheus.Collector{m.documents, m.retries, m.duration, m.stale, m.results} {
			if err := reg.Register(c); err != nil {
				for _, d := range done {
					reg.Unregister(d)
				}
				return nil, fmt.Errorf("indexer: registering metrics: %w", err)
			}
			done = append(done, c)
		}
	}
	return m, nil
}
