package lake_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/dataco/clickstream/internal/lake"
)

// BenchmarkFileStore measures the file store's hot paths: reads of data
// files and partials (a worker's and a merge's), writes (ingest's data
// files, a partial's put-if-absent) and listing a partition's folder.
func BenchmarkFileStore(b *testing.B) {
	ctx := context.Background()
	const dir = "events/hour=2026-11-27T00/bucket=0007/"
	for _, size := range []int{4 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("Get/%dKiB", size>>10), func(b *testing.B) {
			s := newBenchStore(b)
			key := dir + "kafka.clicks.0-000000000001-w1.parquet"
			data := bytes.Repeat([]byte{'x'}, size)
			if err := s.Put(ctx, key, data); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(size))
			for b.Loop() {
				if _, err := s.Get(ctx, key); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("GetSized/%dKiB", size>>10), func(b *testing.B) {
			s := newBenchStore(b)
			key := dir + "kafka.clicks.0-000000000001-w1.parquet"
			data := bytes.Repeat([]byte{'x'}, size)
			if err := s.Put(ctx, key, data); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(size))
			for b.Loop() {
				if _, err := s.GetSized(ctx, key, int64(size)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("Put/4KiB", func(b *testing.B) {
		s := newBenchStore(b)
		data := bytes.Repeat([]byte{'x'}, 4<<10)
		i := 0
		for b.Loop() {
			i++
			if err := s.Put(ctx, fmt.Sprintf("%sf-%09d.parquet", dir, i%64), data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("PutIfAbsent/4KiB", func(b *testing.B) {
		s := newBenchStore(b)
		data := bytes.Repeat([]byte{'x'}, 4<<10)
		i := 0
		for b.Loop() {
			i++
			if err := s.PutIfAbsent(ctx, fmt.Sprintf("_jobs/j/partials/task-%09d.bin", i), data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("List/256", func(b *testing.B) {
		s := newBenchStore(b)
		for i := range 256 {
			if err := s.Put(ctx, fmt.Sprintf("%sf-%09d.parquet", dir, i), []byte("x")); err != nil {
				b.Fatal(err)
			}
		}
		for b.Loop() {
			objs, err := s.List(ctx, dir)
			if err != nil || len(objs) != 256 {
				b.Fatal(len(objs), err)
			}
		}
	})
}

func newBenchStore(b *testing.B) *lake.FileStore {
	b.Helper()
	s, err := lake.NewFileStore(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	return s
}
