package indexer

import (
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/dataco/clickstream/internal/lake/laketest"
)

// TestResultsMetric: every IndexResult call counts once, by outcome.
func TestResultsMetric(t *testing.T) {
	ix := newTestIndexer(t, testConfig(t), hooks{})
	ctx := testCtx(t, 2*time.Minute)
	rows := makeRows(winA, 20)
	if _, err := ix.IndexResult(ctx, rows, metaOf("job-1", winA, rows), laketest.NewFile(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := ix.IndexResult(ctx, rows, metaOf("job-2", winA, rows), nil); err == nil {
		t.Fatal("indexing without a dead-letter store succeeded")
	}
	for outcome, want := range map[string]float64{resultIndexed: 1, resultFailed: 1} {
		var m dto.Metric
		if err := ix.metrics.results.WithLabelValues(outcome).Write(&m); err != nil {
			t.Fatal(err)
		}
		if got := m.GetCounter().GetValue(); got != want {
			t.Errorf("results{outcome=%q} = %v, want %v", outcome, got, want)
		}
	}
}
