package indexer

import (
	"net/http"
	"testing"
	"time"

	"github.com/dataco/clickstream/internal/lake/laketest"
)

// TestIndexingAcrossRollover: the rollover and retention procedure of
// deploy/elasticsearch/README.md. After the alias rolls over to a new
// write index, re-indexing a window moves all of its documents there (the
// old index's copies are of another generation: deleted as stale), so no
// window is ever split or duplicated across backing indices, and deleting
// an old backing index removes only windows last indexed before the
// rollover. A new Indexer writes through the rolled-over alias as is.
func TestIndexingAcrossRollover(t *testing.T) {
	cfg := testConfig(t)
	ix := newTestIndexer(t, cfg, hooks{})
	ctx := testCtx(t, 4*time.Minute)
	dl := laketest.NewFile(t)
	rowsA, rowsB := makeRows(winA, 200), makeRows(winB, 30)
	if _, err := ix.IndexResult(ctx, rowsA, metaOf("job-a1", winA, rowsA), dl); err != nil {
		t.Fatal(err)
	}
	if _, err := ix.IndexResult(ctx, rowsB, metaOf("job-b1", winB, rowsB), dl); err != nil {
		t.Fatal(err)
	}

	// The first rollover names the new index: "<alias>-v1" does not end in
	// a number that Elasticsearch could increment.
	first, next := cfg.Alias+FirstIndexSuffix, cfg.Alias+FirstIndexSuffix+"-000002"
	out := esDo(t, http.MethodPost, "/"+cfg.Alias+"/_rollover/"+next, map[string]any{
		"conditions": map[string]any{"max_docs": 1},
	})
	if out["rolled_over"] != true || out["old_index"] != first || out["new_index"] != next {
		t.Fatalf("rollover: %v", out)
	}
	// Later rollovers need no name: the suffix is incremented.
	out = esDo(t, http.MethodPost, "/"+cfg.Alias+"/_rollover?dry_run=true", nil)
	if out["new_index"] != cfg.Alias+FirstIndexSuffix+"-000003" {
		t.Fatalf("dry-run rollover: %v", out)
	}

	// Window A again, with fewer rows: all of it now in the write index.
	rowsA2 := rowsA[:150]
	rep, err := ix.IndexResult(ctx, rowsA2, metaOf("job-a2", winA, rowsA2), dl)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Indexed != 150 || rep.Stale != 200 || rep.Count != 150 {
		t.Fatalf("re-index after rollover: %s (count %d)", rep, rep.Count)
	}
	if ids := windowIDs(t, cfg.Alias, winA); len(ids) != 150 {
		t.Fatalf("window A has %d documents through the alias, want 150", len(ids))
	}
	if n := windowCount(t, first, winA); n != 0 {
		t.Fatalf("window A has %d documents left in the old index %s", n, first)
	}
	if n := windowCount(t, next, winA); n != 150 {
		t.Fatalf("window A has %d documents in the write index %s, want 150", n, next)
	}

	// Retention: deleting the old backing index drops window B, last
	// indexed before the rollover, and nothing else.
	esDo(t, http.MethodDelete, "/"+first, nil)
	if n := windowCount(t, cfg.Alias, winB); n != 0 {
		t.Fatalf("window B has %d documents after its index was deleted", n)
	}
	if n := windowCount(t, cfg.Alias, winA); n != 150 {
		t.Fatalf("window A has %d documents after the old index was deleted, want 150", n)
	}

	// Another process finds the alias and writes through it.
	ix2 := newTestIndexer(t, cfg, hooks{})
	rep, err = ix2.IndexResult(ctx, rowsB, metaOf("job-b2", winB, rowsB), dl)
	if err != nil || rep.Count != 30 {
		t.Fatalf("window B again from a new indexer: %s (count %d), %v", rep, rep.Count, err)
	}
	if n := windowCount(t, next, winB); n != 30 {
		t.Fatalf("window B has %d documents in the write index, want 30", n)
	}
}
