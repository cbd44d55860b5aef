package indexer

import (
	"maps"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/dataco/clickstream/internal/lake/laketest"
	"github.com/dataco/clickstream/internal/results"
	"github.com/dataco/clickstream/internal/schema"
)

// Every document carries its result's revision, computed_at, watermark,
// events snapshot and final flag; publishing the result again once it is
// finalized flips final on every document (same ids, same revision), and a
// recomputation bumps the revision.
func TestDocumentsSayHowFinal(t *testing.T) {
	cfg := testConfig(t)
	ctx := testCtx(t, 3*time.Minute)
	ix := newTestIndexer(t, cfg, hooks{})
	out := laketest.NewFile(t)
	wm := winA.To.Add(35 * time.Minute)
	m, err := results.Commit(ctx, out, makeRows(winA, 25), results.Meta{
		Job: "job-p", Run: "job-p-1", From: winA.From, To: winA.To, EventsSnapshot: 7_000_000_000_123, Watermark: &wm,
	})
	if err != nil {
		t.Fatal(err)
	}
	docs := func(step string, rev int64, final bool, wm time.Time) {
		t.Helper()
		if err := ix.Publish(ctx, out, m); err != nil {
			t.Fatalf("%s: publish: %v", step, err)
		}
		esDo(t, http.MethodPost, "/"+cfg.Alias+"/_refresh", nil)
		res := esDo(t, http.MethodPost, "/"+cfg.Alias+"/_search", map[string]any{"size": 100, "query": windowQuery(winA, schema.GrainWindow)})
		hits := res["hits"].(map[string]any)["hits"].([]any)
		if len(hits) != 25 {
			t.Fatalf("%s: %d documents, want 25", step, len(hits))
		}
		for _, h := range hits {
			src := h.(map[string]any)["_source"].(map[string]any)
			if src["revision"] != float64(rev) || src["final"] != final || src["watermark"] != wm.Format(time.RFC3339Nano) ||
				src["events_snapshot"] != float64(7_000_000_000_123) || src["computed_at"] != m.ComputedAt.Format(time.RFC3339Nano) {
				t.Fatalf("%s: document %v; want revision %d, final %v, watermark %s, computed_at %s",
					step, src, rev, final, wm.Format(time.RFC3339Nano), m.ComputedAt.Format(time.RFC3339Nano))
			}
		}
		// A dashboard's filter: only final documents.
		res = esDo(t, http.MethodPost, "/"+cfg.Alias+"/_count", map[string]any{"query": map[string]any{"bool": map[string]any{
			"filter": []any{windowQuery(winA, schema.GrainWindow), map[string]any{"term": map[string]any{"final": true}}},
		}}})
		if n, want := res["count"].(float64), map[bool]float64{true: 25, false: 0}[final]; n != want {
			t.Fatalf("%s: %v final documents, want %v", step, n, want)
		}
	}
	docs("provisional", 1, false, wm)

	later := wm.Add(10 * time.Minute)
	if m, err = results.Finalize(ctx, out, "job-p", later); err != nil {
		t.Fatal(err)
	}
	before := windowIDs(t, cfg.Alias, winA)
	docs("finalized", 1, true, later)
	if after := windowIDs(t, cfg.Alias, winA); !maps.Equal(before, after) {
		t.Errorf("finalizing changed the document ids")
	}

	m, err = results.Commit(ctx, out, makeRows(winA, 25), results.Meta{
		Job: "job-q", Run: "job-q-1", From: winA.From, To: winA.To, EventsSnapshot: 7_000_000_000_123, Watermark: &later, Final: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	docs("re-run", 2, true, later)
}

// An index made before the provenance columns existed (its strict mapping
// without them) gets them from Setup, and then takes documents with them.
func TestSetupAddsNewColumnsToOlderIndex(t *testing.T) {
	cfg := testConfig(t)
	ctx := testCtx(t, 3*time.Minute)
	old := mapping()
	props := old["properties"].(map[string]any)
	var dropped []string
	for _, c := range schema.Columns {
		if c.Provenance {
			delete(props, c.Name)
			dropped = append(dropped, c.Name)
		}
	}
	old["_meta"] = map[string]any{"schema_version": 1}
	first := cfg.Alias + FirstIndexSuffix
	esDo(t, http.MethodPut, "/"+first, map[string]any{
		"settings": map[string]any{"number_of_shards": 1, "number_of_replicas": 0},
		"mappings": old,
		"aliases":  map[string]any{cfg.Alias: map[string]any{"is_write_index": true}},
	})
	ix := newTestIndexer(t, cfg, hooks{})
	rows := makeRows(winA, 10)
	wm := winA.To.Add(time.Hour)
	for i := range rows {
		rows[i].Revision, rows[i].ComputedAt, rows[i].Watermark, rows[i].Final = 1, wm, &wm, true
	}
	rep, err := ix.IndexResult(ctx, rows, metaOf("job-old", winA, rows), laketest.NewFile(t))
	if err != nil || rep.Rejected != 0 {
		t.Fatalf("indexing into the older index: %+v, %v", rep, err)
	}
	got := esDo(t, http.MethodGet, "/"+first+"/_mapping", nil)
	have := got[first].(map[string]any)["mappings"].(map[string]any)["properties"].(map[string]any)
	for _, name := range dropped {
		if _, ok := have[name]; !ok {
			t.Errorf("field %s not added to %s: %v", name, first, slices.Sorted(maps.Keys(have)))
		}
	}
	if n := windowCount(t, cfg.Alias, winA); n != 10 {
		t.Errorf("%d documents, want 10", n)
	}
}
