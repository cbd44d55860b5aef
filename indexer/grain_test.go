package indexer

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/dataco/clickstream/internal/lake/laketest"
	"github.com/dataco/clickstream/internal/schema"
)

// TestGrainsDoNotCollide: a day's roll-up and a window job over the same
// span are different documents; re-indexing one (fewer rows: stale
// deletion) leaves the other alone, and a roll-up's (url, all countries)
// row has its own id.
func TestGrainsDoNotCollide(t *testing.T) {
	cfg := testConfig(t)
	ix := newTestIndexer(t, cfg, hooks{})
	ctx := testCtx(t, 3*time.Minute)
	dl := laketest.NewFile(t)
	win := winA
	windowRows := makeRows(win, 40)
	dayRows := makeRows(win, 30)
	for i := range dayRows {
		dayRows[i].Grain = schema.GrainDay
	}
	dayRows = append(dayRows, schema.Row{WindowStart: win.From, WindowEnd: win.To, URL: schema.All, Country: schema.All, Clicks: 5, UniqueUsers: 3, Grain: schema.GrainDay})
	dayMeta := metaOf("rollup-day", win, dayRows)
	dayMeta.Grain = schema.GrainDay
	if _, err := ix.IndexResult(ctx, windowRows, metaOf("job-w", win, windowRows), dl); err != nil {
		t.Fatal(err)
	}
	rep, err := ix.IndexResult(ctx, dayRows, dayMeta, dl)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Count != 31 || rep.Stale != 0 {
		t.Fatalf("day roll-up: %s (count %d)", rep, rep.Count)
	}
	if n := windowCount(t, cfg.Alias, win); n != 40 {
		t.Fatalf("%d window documents after the roll-up, want 40", n)
	}
	if RowDocID(&dayRows[0]) == RowDocID(&windowRows[0]) {
		t.Fatal("a day row and a window row of the same key share an id")
	}
	// The window again with fewer rows: its stale documents go, the
	// roll-up's stay.
	rep, err = ix.IndexResult(ctx, windowRows[:35], metaOf("job-w2", win, windowRows[:35]), dl)
	if err != nil || rep.Stale != 5 || rep.Count != 35 {
		t.Fatalf("window re-indexed: %s (count %d), %v", rep, rep.Count, err)
	}
	out := esDo(t, http.MethodPost, "/"+cfg.Alias+"/_count", map[string]any{"query": windowQuery(win, schema.GrainDay)})
	if n := int64(out["count"].(float64)); n != 31 {
		t.Fatalf("%d day documents after the window's re-run, want 31", n)
	}
	// The daily uniques query of the README: the (all urls, all
	// countries) row of the day.
	q := map[string]any{"query": map[string]any{"bool": map[string]any{"filter": []any{
		map[string]any{"term": map[string]any{"grain": "day"}},
		map[string]any{"term": map[string]any{"url": ""}},
		map[string]any{"term": map[string]any{"country": ""}},
	}}}}
	hits := esDo(t, http.MethodPost, "/"+cfg.Alias+"/_search", q)["hits"].(map[string]any)["hits"].([]any)
	if len(hits) != 1 || hits[0].(map[string]any)["_source"].(map[string]any)["unique_users"].(float64) != 3 {
		t.Fatalf("daily uniques query: %v", hits)
	}
	// Top URLs count window documents only.
	tops, err := TopURLs(ctx, ix.client, cfg.Alias, &win, 100)
	if err != nil {
		t.Fatal(err)
	}
	var clicks int64
	for _, c := range tops {
		clicks += c.Clicks
	}
	if want := sumClicks(windowRows[:35]); clicks != want || slices.ContainsFunc(tops, func(c CountryTop) bool { return c.Country == "" }) {
		t.Fatalf("top URLs count %d clicks, want the window's %d", clicks, want)
	}
}
