package rollup

import (
	"context"
	"testing"
	"time"

	"github.com/dataco/clickstream/internal/cluster/clustertest"
	"github.com/dataco/clickstream/internal/schema"
)

// BenchmarkRollupDay rolls up a day of 24 hourly windows (20 000 users,
// 300 000 events; file stores), reporting the cost per hash read.
//
//	go test -run '^$' -bench RollupDay -benchtime 5x ./internal/rollup
func BenchmarkRollupDay(b *testing.B) {
	ctx := context.Background()
	from, to, _ := Period(schema.GrainDay, time.Date(2026, 11, 27, 5, 0, 0, 0, time.UTC))
	events := clustertest.Events(31, 20_000, 300_000, from, to)
	var windows []Window
	var hashes int64
	for h := from; h.Before(to); h = h.Add(time.Hour) {
		w := commitWindow(b, events, h, h.Add(time.Hour))
		windows = append(windows, w)
		hashes += w.Meta.SetHashes
	}
	for _, shards := range []int{1, 2} {
		b.Run("shards="+string(rune('0'+shards)), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := Compute(ctx, Config{Shards: shards, MemoryBudget: DefaultMemoryBudget}, schema.GrainDay, from, to, windows); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(hashes), "ns/hash")
		})
	}
}
