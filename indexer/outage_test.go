package indexer

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dataco/clickstream/internal/lake/laketest"
)

// outageFor is how long Elasticsearch stays stopped.
const outageFor = 30 * time.Second

// stackScript returns deploy/local/stack.sh if it manages the running
// Elasticsearch; the test is skipped when Elasticsearch is someone else's.
func stackScript(t *testing.T) string {
	t.Helper()
	script, err := filepath.Abs(filepath.Join("..", "deploy", "local", "stack.sh"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(script); err != nil {
		t.Fatalf("stack script: %v", err)
	}
	out, err := exec.Command(script, "status").CombinedOutput()
	if err != nil {
		t.Fatalf("%s status: %v\n%s", script, err, out)
	}
	if !regexp.MustCompile(`(?m)^es\s+healthy\s`).Match(out) {
		t.Skipf("Elasticsearch at %s is not run by %s (status:\n%s): cannot stop it", esURL(t), script, out)
	}
	return script
}

func stack(ctx context.Context, t *testing.T, script string, args ...string) error {
	start := time.Now()
	out, err := exec.CommandContext(ctx, script, args...).CombinedOutput()
	t.Logf("stack.sh %v: %s (%v)\n%s", args, time.Since(start).Round(100*time.Millisecond), err, out)
	return err
}

// Elasticsearch is stopped for 30 s in the middle of indexing, then
// started again: every document lands, none twice.
func TestIndexingSurvivesElasticsearchRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: stops and restarts Elasticsearch")
	}
	cfg := testConfig(t)
	script := stackScript(t)
	// Whatever happens, Elasticsearch is running again when the test ends.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if err := stack(ctx, t, script, "start", "es"); err != nil {
			t.Errorf("restarting Elasticsearch: %v", err)
		}
	})

	// Small bulk requests from one worker, no timed flushes: indexing is a
	// long series of requests, and the 5th one waits until Elasticsearch
	// is down before it goes.
	cfg.FlushBytes = 32 << 10
	cfg.Workers = 1
	cfg.FlushInterval = time.Hour
	cfg.MaxRetries = 3
	cfg.RetryTimeout = 5 * time.Minute
	stopNow, stopped := make(chan struct{}), make(chan struct{})
	var flushes atomic.Int64
	ix := newTestIndexer(t, cfg, hooks{flushStart: func() {
		if flushes.Add(1) == 5 {
			close(stopNow)
			select {
			case <-stopped:
			case <-time.After(2 * time.Minute):
			}
		}
	}})
	ctx := testCtx(t, 8*time.Minute)
	if err := ix.Setup(ctx); err != nil {
		t.Fatal(err)
	}

	var wg sync.WaitGroup
	var down, up time.Time
	defer wg.Wait()
	wg.Go(func() {
		var once sync.Once
		defer once.Do(func() { close(stopped) })
		select {
		case <-stopNow:
		case <-ctx.Done():
			return
		}
		if err := stack(ctx, t, script, "stop", "es"); err != nil {
			t.Errorf("stopping Elasticsearch: %v", err)
			return
		}
		down = time.Now()
		once.Do(func() { close(stopped) })
		if err := sleep(ctx, outageFor); err != nil {
			return
		}
		if err := stack(ctx, t, script, "start", "es"); err != nil {
			t.Errorf("starting Elasticsearch: %v", err)
		}
		up = time.Now()
	})

	rows := makeRows(winA, 20000)
	dl := laketest.NewFile(t)
	start := time.Now()
	rep, err := ix.IndexResult(ctx, rows, metaOf("job-outage", winA, rows), dl)
	wg.Wait()
	t.Logf("indexing took %s; Elasticsearch down %s after the start, up again %s after; %s; %d flushes",
		time.Since(start).Round(time.Millisecond), down.Sub(start).Round(time.Millisecond), up.Sub(start).Round(time.Millisecond), rep, flushes.Load())
	if err != nil {
		t.Fatal(err)
	}
	if down.IsZero() || up.IsZero() {
		t.Fatal("Elasticsearch was not stopped and started during indexing")
	}
	if rep.Indexed != len(rows) || rep.Rejected != 0 || rep.Count != int64(len(rows)) {
		t.Errorf("report %s (count %d), want all %d indexed", rep, rep.Count, len(rows))
	}
	if rep.Retried == 0 {
		t.Error("no document was retried: the outage did not hit indexing")
	}
	// None twice: the window holds exactly the rows, with their clicks.
	if got := windowCount(t, cfg.Alias, winA); got != int64(len(rows)) {
		t.Errorf("%d documents in the window, want %d", got, len(rows))
	}
	if got, want := windowClicks(t, cfg.Alias, winA), sumClicks(rows); got != want {
		t.Errorf("clicks = %d, want %d", got, want)
	}
	stats := esDo(t, "GET", "/"+cfg.Alias+"/_stats/docs", nil)
	docs := stats["_all"].(map[string]any)["primaries"].(map[string]any)["docs"].(map[string]any)["count"].(float64)
	if int(docs) != len(rows) {
		t.Errorf("index holds %v documents, want %d", docs, len(rows))
	}
	reqRetries := counterValue(t, ix.metrics.retries, "request")
	docRetries := counterValue(t, ix.metrics.retries, "document")
	t.Logf("retries: %v requests, %v documents", reqRetries, docRetries)
	if reqRetries == 0 || docRetries == 0 {
		t.Errorf("retry metrics: request %v, document %v; want both > 0", reqRetries, docRetries)
	}
}

// counterValue reads the child of a counter vector whose label is value.
func counterValue(t *testing.T, c prometheus.Collector, value string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no metric with label value %q", value)
	return 0
}
