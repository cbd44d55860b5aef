package lake_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/lake/laketest"
)

// countingStore counts the manifests read through it.
type countingStore struct {
	lake.Store
	manifestGets atomic.Int32
}

func (s *countingStore) Get(ctx context.Context, key string) ([]byte, error) {
	if strings.HasPrefix(key, lake.ManifestsPrefix) {
		s.manifestGets.Add(1)
	}
	return s.Store.Get(ctx, key)
}

// TestSnapshotReader: a reader polling a lake reads each manifest once,
// and its snapshots are the same as a fresh read's.
func TestSnapshotReader(t *testing.T) {
	ctx := context.Background()
	base := laketest.NewFile(t)
	if _, err := lake.EnsureMeta(ctx, base, 4); err != nil {
		t.Fatal(err)
	}
	commit := func(source string, seq uint64) {
		t.Helper()
		m := &lake.Manifest{Source: source, Seq: seq, Writer: "w", Start: int64(seq-1) * 10, End: int64(seq) * 10, ValidCount: 10}
		if err := lake.Commit(ctx, base, m); err != nil {
			t.Fatal(err)
		}
	}
	s := &countingStore{Store: base}
	r := lake.NewSnapshotReader(s)
	check := func(wantManifests, wantGets int) {
		t.Helper()
		before := s.manifestGets.Load()
		sn, err := r.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got := int(s.manifestGets.Load() - before); got != wantGets {
			t.Errorf("read %d manifests, want %d (only the new ones)", got, wantGets)
		}
		fresh, err := lake.ReadSnapshot(ctx, base)
		if err != nil {
			t.Fatal(err)
		}
		if len(sn.Manifests) != wantManifests || len(fresh.Manifests) != wantManifests {
			t.Fatalf("%d manifests (fresh read: %d), want %d", len(sn.Manifests), len(fresh.Manifests), wantManifests)
		}
		for i := range sn.Manifests {
			a, b := sn.Manifests[i], fresh.Manifests[i]
			if a.Source != b.Source || a.Seq != b.Seq || a.End != b.End {
				t.Fatalf("manifest %d: %s/%d, a fresh read has %s/%d", i, a.Source, a.Seq, b.Source, b.Seq)
			}
		}
	}
	check(0, 0)
	commit("b", 1)
	commit("a", 1)
	commit("a", 2)
	check(3, 3)
	check(3, 0)
	commit("b", 2)
	commit("a", 3)
	check(5, 2)
}

// TestReadWatermarks: each source's latest watermark record, by source
// name, at most limit of them; a record that does not decode is skipped.
func TestReadWatermarks(t *testing.T) {
	ctx := context.Background()
	s := laketest.NewFile(t)
	if wms, more, err := lake.ReadWatermarks(ctx, s, 10); err != nil || len(wms) != 0 || more {
		t.Fatalf("empty lake: %v, more %v, err %v", wms, more, err)
	}
	for _, c := range []struct {
		source string
		seq    uint64
		wm     int64
	}{{"kafka.t.1", 1, 100}, {"kafka.t.0", 1, 50}, {"kafka.t.0", 2, 70}, {"kafka.t.2", 1, 10}} {
		m := &lake.Manifest{Source: c.source, Seq: c.seq, Writer: "w", End: int64(c.seq) * 10, Watermark: c.wm}
		if err := lake.Commit(ctx, s, m); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Put(ctx, lake.WatermarkKey("broken"), []byte("{")); err != nil {
		t.Fatal(err)
	}
	wms, more, err := lake.ReadWatermarks(ctx, s, 10)
	if err != nil || more || len(wms) != 3 {
		t.Fatalf("%+v, more %v, err %v", wms, more, err)
	}
	if w := wms[0]; w.Source != "kafka.t.0" || w.Seq != 2 || w.Watermark != 70 || w.End != 20 {
		t.Errorf("first source %+v", w)
	}
	if wms, more, err := lake.ReadWatermarks(ctx, s, 2); err != nil || !more || len(wms) != 1 {
		// "broken" sorts first and is skipped: two records listed, one read
		t.Errorf("limit 2: %+v, more %v, err %v", wms, more, err)
	}
}
