package ingest

import (
	"os"

	"context"
	"testing"

	"github.com/dataco/clickstream/internal/event"

	"github.com/dataco/clickstream/internal/gen"
	"github.com/dataco/clickstream/internal/lake"
)

// BenchmarkSinkPath measures ingest's own work per event, without a
// broker: parsing generated messages into batches and committing them to a
// file:// lake (sort, encode, write, manifest), on one goroutine. It is the
// figure to watch when changing the parser or the commit path; the
// Kafka-to-lake ratio is BenchmarkKafkaToLake's.
//
//	go test -run '^$' -bench SinkPath -cpu 1 ./ingest/
func BenchmarkSinkPath(b *testing.B) {
	const events = 400_000
	cfg := gen.NewConfig()
	cfg.Events, cfg.Users, cfg.Seed = events, 300_000, 5
	g, err := gen.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	msgs := make([][]byte, 0, events)
	for {
		m, ok := g.Next()
		if !ok {
			break
		}
		msgs = append(msgs, m.Value)
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		store, err := lake.NewFileStore(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		s := newTestSink(b, store, "bench")
		s.uploads = 1
		st, err := s.recover(ctx, "bench.0")
		if err != nil {
			b.Fatal(err)
		}
		bt := &batch{}
		bt.reset(0)
		var strs *event.Interner
		if os.Getenv("NOINTERN") == "" {
			strs = event.NewInterner(0)
		}
		b.StartTimer()
		for i, m := range msgs {
			bt.add(s.parse(int64(i), m, strs), len(m))
			if bt.len() >= DefaultFlushRecords {
				if _, err := s.flush(ctx, &st, bt); err != nil {
					b.Fatal(err)
				}
			}
		}
		if _, err := s.flush(ctx, &st, bt); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(msgs)), "ns/event")
}
