package ingest

import (
	"os"

	"context"
	"testing"

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
	var cpu float64 // in the timed parts
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
		strs := s.newParseCache()
		if os.Getenv("NOINTERN") != "" {
			strs.strs = nil
		}
		b.StartTimer()
		cpu0 := processCPU(b)
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
		cpu += processCPU(b) - cpu0
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(msgs)), "ns/event")
	b.ReportMetric(cpu*1e9/float64(b.N*len(msgs)), "cpu-ns/event")
}

// discardStore drops what is put into it.
type discardStore struct{ lake.Store }

func (discardStore) Put(context.Context, string, []byte) error { return nil }

// BenchmarkWriteFile measures what a commit spends per event on its data
// files: sorting each partition's events into the lake's order and
// encoding them as Parquet (into a store that discards them). One batch of
// DefaultFlushRecords generated events, spread over the lake's 4 buckets
// and a few hours; cpu-ns/event is the figure to compare on a shared
// machine.
//
//	go test -run '^$' -bench WriteFile -cpu 1 ./ingest/
func BenchmarkWriteFile(b *testing.B) {
	cfg := gen.NewConfig()
	cfg.Events, cfg.Users, cfg.Seed = DefaultFlushRecords, 50_000, 7
	g, err := gen.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	store, err := lake.NewFileStore(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	s := newTestSink(b, store, "bench")
	s.store = discardStore{store}
	st, err := s.recover(context.Background(), "bench.0")
	if err != nil {
		b.Fatal(err)
	}
	bt := &batch{}
	bt.reset(0)
	strs := s.newParseCache()
	for i := 0; ; i++ {
		m, ok := g.Next()
		if !ok {
			break
		}
		bt.add(s.parse(int64(i), m.Value, strs), len(m.Value))
	}
	pl, err := s.plan(&st, bt, &lake.Manifest{Hours: map[string]lake.HourMark{}})
	if err != nil {
		b.Fatal(err)
	}
	keys := make([]sortKey, len(pl.keys))
	ctx := context.Background()
	b.ReportAllocs()
	cpu0 := processCPU(b)
	for b.Loop() {
		copy(keys, pl.keys)
		for _, grp := range pl.groups {
			if _, err := s.writeFile(ctx, grp, "bench.0", 1, "a", bt, keys[grp.start:grp.start+grp.n]); err != nil {
				b.Fatal(err)
			}
		}
	}
	events := float64(b.N * len(pl.keys))
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/events, "ns/event")
	b.ReportMetric((processCPU(b)-cpu0)*1e9/events, "cpu-ns/event")
	b.ReportMetric(float64(len(pl.keys))/float64(len(pl.groups)), "events/file")
}
