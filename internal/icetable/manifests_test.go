package icetable_test

import (
	"context"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/dataco/clickstream/internal/icetable"
)

// TestPlanFromCachedManifests: planning through the manifest cache lists
// exactly the files iceberg-go's scan does, for windows inside, across and
// outside the data, before and after a compaction (whose manifests hold
// deleted and existing entries), with a cache too small to keep everything.
func TestPlanFromCachedManifests(t *testing.T) {
	ctx := context.Background()
	l := newTestLake(t)
	rng := rand.New(rand.NewPCG(9, 10))
	for seq := uint64(1); seq <= 8; seq++ {
		l.commit(t, "a", seq, 150, rng)
		if seq%3 == 0 {
			if _, err := icetable.Publish(ctx, l.cat, l.store); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := icetable.Publish(ctx, l.cat, l.store); err != nil {
		t.Fatal(err)
	}
	windows := [][2]time.Duration{
		{0, time.Hour}, {30 * time.Minute, 90 * time.Minute}, {time.Hour, 2 * time.Hour},
		{2*time.Hour + 59*time.Minute, 4 * time.Hour}, {-2 * time.Hour, -time.Hour}, {5 * time.Hour, 6 * time.Hour},
		{17 * time.Minute, 17*time.Minute + time.Millisecond}, {0, 3 * time.Hour},
	}
	for i, cache := range []*icetable.ManifestCache{nil, icetable.NewManifestCache(1 << 20), icetable.NewManifestCache(40)} {
		check := func(stage string) {
			t.Helper()
			for round := range 2 { // the second round reads through the cache
				for _, w := range windows {
					from, to := hour0.Add(w[0]), hour0.Add(w[1])
					cached, scanned, err := icetable.PlanFiles(ctx, l.cat, l.store, from, to, cache)
					if err != nil {
						t.Fatal(err)
					}
					if len(cached) == 0 && len(scanned) == 0 {
						continue
					}
					if !reflect.DeepEqual(cached, scanned) {
						t.Fatalf("%s, round %d, window %v..%v: planned\n%v\nthe scan\n%v", stage, round, w[0], w[1], cached, scanned)
					}
				}
			}
		}
		check("appends")
		if _, err := icetable.Compact(ctx, l.cat, l.store, icetable.CompactOptions{ClosedBefore: hour0.Add(2 * time.Hour)}); err != nil {
			t.Fatal(err)
		}
		check("after a compaction")
		l.commit(t, "b", uint64(i+1), 100, rng) // late events after the compaction
		if _, err := icetable.Publish(ctx, l.cat, l.store); err != nil {
			t.Fatal(err)
		}
		check("after late appends")
	}
}
