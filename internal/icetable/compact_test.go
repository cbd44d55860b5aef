package icetable_test

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/apache/iceberg-go/catalog"

	"github.com/dataco/clickstream/internal/icetable"
)

// eventRows reads the events table's rows into a multiset.
func eventRows(t *testing.T, cat catalog.Catalog) map[string]int {
	t.Helper()
	rows, err := icetable.ReadEvents(context.Background(), cat)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]int{}
	for _, e := range rows {
		m[e.UserID+"|"+e.URL+"|"+time.UnixMilli(e.Timestamp).UTC().Format(time.RFC3339Nano)]++
	}
	return m
}

func equalMultisets(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, n := range a {
		if b[k] != n {
			return false
		}
	}
	return true
}

// TestCompactKeepsEveryRow: compaction leaves one file per partition of
// the closed hours, the open hour untouched, and every row.
func TestCompactKeepsEveryRow(t *testing.T) {
	ctx := context.Background()
	l := newTestLake(t)
	rng := rand.New(rand.NewPCG(7, 8))
	for seq := uint64(1); seq <= 6; seq++ {
		l.commit(t, "a", seq, 300, rng) // events over three hours from hour0
	}
	if _, err := icetable.Publish(ctx, l.cat, l.store); err != nil {
		t.Fatal(err)
	}
	before := eventRows(t, l.cat)
	filesBefore := tableFiles(t, l.cat)

	closed := hour0.Add(2 * time.Hour) // hours 0 and 1 closed, hour 2 open
	res, err := icetable.Compact(ctx, l.cat, l.store, icetable.CompactOptions{ClosedBefore: closed})
	if err != nil {
		t.Fatal(err)
	}
	if res.Partitions != 2*testBuckets || res.FilesBefore != 6*2*testBuckets {
		t.Fatalf("compacted %+v; want the %d partitions of two hours, 6 files each", res, 2*testBuckets)
	}
	after := eventRows(t, l.cat)
	if !equalMultisets(before, after) {
		t.Fatalf("compaction changed the rows: %d distinct before, %d after", len(before), len(after))
	}
	filesAfter := tableFiles(t, l.cat)
	if want := len(filesBefore) - res.FilesBefore + res.Partitions; len(filesAfter) != want {
		t.Errorf("%d files after compaction, want %d", len(filesAfter), want)
	}
	// Again: nothing left to do.
	if res, err := icetable.Compact(ctx, l.cat, l.store, icetable.CompactOptions{ClosedBefore: closed}); err != nil || res.Partitions != 0 {
		t.Errorf("second compaction: %+v, %v; want nothing", res, err)
	}
	// The lake keeps its own files: the manifests' files are all there.
	for key := range lakeFiles(t, l.store) {
		if _, err := l.store.Get(ctx, key[len(l.store.URI())+1:]); err != nil {
			t.Errorf("lake file %s: %v", key, err)
		}
	}
}

// TestCompactWithConcurrentIngest: commits published while a compaction
// runs are all in the table after it, and the compacted rows once.
func TestCompactWithConcurrentIngest(t *testing.T) {
	ctx := context.Background()
	l := newTestLake(t)
	rng := rand.New(rand.NewPCG(9, 10))
	for seq := uint64(1); seq <= 4; seq++ {
		l.commit(t, "a", seq, 200, rng)
	}
	if _, err := icetable.Publish(ctx, l.cat, l.store); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	ingestCat := l.open(t) // a process of its own would have its own
	wg.Go(func() {
		// A fixed number of commits, each published at once: however the
		// compactions and these interleave, they all end.
		rng := rand.New(rand.NewPCG(11, 12))
		for seq := uint64(1); seq <= 30; seq++ {
			l.commit(t, "b", seq, 50, rng)
			if _, err := icetable.Publish(ctx, ingestCat, l.store); err != nil {
				t.Error(err)
				return
			}
		}
	})
	for range 3 {
		if _, err := icetable.Compact(ctx, l.cat, l.store, icetable.CompactOptions{ClosedBefore: hour0.Add(3 * time.Hour)}); err != nil {
			t.Error(err)
		}
	}
	wg.Wait()
	if _, err := icetable.Publish(ctx, l.cat, l.store); err != nil {
		t.Fatal(err)
	}
	var want int64
	for _, n := range lakeFiles(t, l.store) {
		want += n
	}
	var got int64
	for _, n := range eventRows(t, l.cat) {
		got += int64(n)
	}
	if got != want {
		t.Fatalf("the table holds %d events after compactions during ingest, the lake %d", got, want)
	}
}
