package indexer

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dataco/clickstream/internal/aggregate"
	"github.com/dataco/clickstream/internal/leaktest"
	"github.com/dataco/clickstream/internal/results"
	"github.com/dataco/clickstream/internal/schema"
)

// TestMain fails the tests if goroutines of this module or the workers of
// a bulk indexer outlive them (an Indexer that was not closed).
func TestMain(m *testing.M) { leaktest.Main(m, "esutil.(*worker)") }

// esURL is the local stack's Elasticsearch; integration tests skip under
// -short and fail without it.
func esURL(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: needs Elasticsearch (make dev-up)")
	}
	u := os.Getenv(EnvURL)
	if u == "" {
		t.Fatalf("$%s is not set: start the local stack with `make dev-up` and source its env file "+
			"(set -a; . ~/.local/state/clickstream/env; set +a), or run `make test`; go test -short skips this test", EnvURL)
	}
	return strings.Split(u, ",")[0]
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// testConfig is a Config for the local Elasticsearch with a fresh alias;
// the alias's indices and template are deleted when the test ends.
func testConfig(t testing.TB) Config {
	t.Helper()
	cfg := NewConfig()
	cfg.Addresses = []string{esURL(t)}
	cfg.Alias = "cs-test-" + randHex(5)
	cfg.Replicas = 0
	cfg.FlushInterval = time.Second
	cfg.RetryTimeout = 2 * time.Minute
	t.Cleanup(func() {
		esDo(t, http.MethodDelete, "/"+cfg.Alias+"-*?expand_wildcards=all", nil, 200, 404)
		esDo(t, http.MethodDelete, "/_index_template/"+cfg.Alias, nil, 200, 404)
	})
	return cfg
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// newTestIndexer builds an Indexer (own metrics registry) closed at the
// end of the test.
func newTestIndexer(t testing.TB, cfg Config, h hooks) *Indexer {
	t.Helper()
	ix, err := newIndexer(cfg, testLogger(t), prometheus.NewRegistry(), h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := ix.Close(ctx); err != nil && !errors.Is(err, ErrClosed) {
			t.Errorf("close: %v", err)
		}
	})
	return ix
}

// esDo sends a request to the test Elasticsearch and returns the decoded
// JSON answer; a status not in want fails the test.
func esDo(t testing.TB, method, path string, body any, want ...int) map[string]any {
	t.Helper()
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, strings.TrimRight(esURL(t), "/")+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	if len(want) == 0 {
		want = []int{200}
	}
	ok := false
	for _, w := range want {
		ok = ok || res.StatusCode == w
	}
	if !ok {
		t.Fatalf("%s %s: status %d: %s", method, path, res.StatusCode, data)
	}
	var out map[string]any
	_ = json.Unmarshal(data, &out)
	return out
}

// windowCount counts the documents of win in index (alias or concrete).
func windowCount(t testing.TB, index string, win aggregate.Window) int64 {
	t.Helper()
	esDo(t, http.MethodPost, "/"+index+"/_refresh", nil)
	out := esDo(t, http.MethodPost, "/"+index+"/_count", map[string]any{"query": windowQuery(win, "")})
	return int64(out["count"].(float64))
}

// windowClicks sums the clicks of win in index.
func windowClicks(t testing.TB, index string, win aggregate.Window) int64 {
	t.Helper()
	out := esDo(t, http.MethodPost, "/"+index+"/_search", map[string]any{
		"size": 0, "query": windowQuery(win, ""),
		"aggs": map[string]any{"clicks": map[string]any{"sum": map[string]any{"field": "clicks"}}},
	})
	return int64(out["aggregations"].(map[string]any)["clicks"].(map[string]any)["value"].(float64))
}

// windowIDs returns the ids of win's documents in index (at most 10,000).
func windowIDs(t testing.TB, index string, win aggregate.Window) map[string]bool {
	t.Helper()
	out := esDo(t, http.MethodPost, "/"+index+"/_search", map[string]any{
		"size": 10000, "_source": false, "query": windowQuery(win, ""),
	})
	ids := map[string]bool{}
	for _, h := range out["hits"].(map[string]any)["hits"].([]any) {
		ids[h.(map[string]any)["_id"].(string)] = true
	}
	return ids
}

var (
	winA = aggregate.Window{From: time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 11, 27, 1, 0, 0, 0, time.UTC)}
	winB = aggregate.Window{From: time.Date(2026, 11, 27, 1, 0, 0, 0, time.UTC), To: time.Date(2026, 11, 27, 2, 0, 0, 0, time.UTC)}
	winC = aggregate.Window{From: time.Date(2026, 11, 27, 2, 0, 0, 0, time.UTC), To: time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)}
)

var countries = []string{"US", "DE", "FR", "JP", "BR"}

// makeRows returns n distinct result rows of win.
func makeRows(win aggregate.Window, n int) []schema.Row {
	rows := make([]schema.Row, n)
	for i := range rows {
		samples := int64(i % 4)
		total := float64(samples) * 12.5
		r := schema.Row{
			WindowStart: win.From, WindowEnd: win.To,
			URL:     fmt.Sprintf("https://shop.example/product/%d?ref=%d", i/len(countries), i%7),
			Country: countries[i%len(countries)],
			Clicks:  int64(1 + (i*7919)%97), UniqueUsers: int64(1 + i%13),
			TotalTimeSpentS: total, TimeSpentSamples: samples,
		}
		if samples > 0 {
			avg := total / float64(samples)
			r.AvgTimeSpentS = &avg
		}
		rows[i] = r
	}
	return rows
}

func sumClicks(rows []schema.Row) int64 {
	var s int64
	for _, r := range rows {
		s += r.Clicks
	}
	return s
}

func metaOf(job string, win aggregate.Window, rows []schema.Row) results.Meta {
	return results.Meta{Version: results.MetaVersion, Job: job, Run: job + "-1", From: win.From, To: win.To, Rows: int64(len(rows))}
}

func testCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}
