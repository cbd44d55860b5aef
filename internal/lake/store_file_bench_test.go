package lake_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/dataco/clickstream/internal/lake"
)

// BenchmarkFileStore measures the file store's hot paths: reads of data
// files and partials (a worker's and a merge's), writes (ingest's data
// files, a partial's put-if-absent) and listing a partition's folder.
// Besides wall time it reports cpu-ns/op, the process's CPU time (user
// and system) per operation (cpuTime), which a busy machine disturbs less.
func BenchmarkFileStore(b *testing.B) {
	ctx := context.Background()
	const dir = "events/hour=2026-11-27T00/bucket=0007/"
	for _, size := range []int{4 << 10, 1 << 20} {
		read := map[string]func(s *lake.FileStore, key string) error{
			"Get": func(s *lake.FileStore, key string) error {
				_, err := s.Get(ctx, key)
				return err
			},
			"GetSized": func(s *lake.FileStore, key string) error {
				_, err := s.GetSized(ctx, key, int64(size))
				return err
			},
		}
		for _, name := range []string{"Get", "GetSized"} {
			b.Run(fmt.Sprintf("%s/%dKiB", name, size>>10), func(b *testing.B) {
				s := newBenchStore(b)
				key := dir + "kafka.clicks.0-000000000001-w1.parquet"
				if err := s.Put(ctx, key, bytes.Repeat([]byte{'x'}, size)); err != nil {
					b.Fatal(err)
				}
				b.SetBytes(int64(size))
				cpu := cpuTime()
				for b.Loop() {
					if err := read[name](s, key); err != nil {
						b.Fatal(err)
					}
				}
				reportCPU(b, cpu)
			})
		}
	}
	b.Run("Put/4KiB", func(b *testing.B) {
		s := newBenchStore(b)
		data := bytes.Repeat([]byte{'x'}, 4<<10)
		i := 0
		cpu := cpuTime()
		for b.Loop() {
			i++
			if err := s.Put(ctx, fmt.Sprintf("%sf-%09d.parquet", dir, i%64), data); err != nil {
				b.Fatal(err)
			}
		}
		reportCPU(b, cpu)
	})
	b.Run("PutIfAbsent/4KiB", func(b *testing.B) {
		s := newBenchStore(b)
		data := bytes.Repeat([]byte{'x'}, 4<<10)
		i := 0
		cpu := cpuTime()
		for b.Loop() {
			i++
			if err := s.PutIfAbsent(ctx, fmt.Sprintf("_jobs/j/partials/task-%09d.bin", i), data); err != nil {
				b.Fatal(err)
			}
		}
		reportCPU(b, cpu)
	})
	b.Run("List/256", func(b *testing.B) {
		s := newBenchStore(b)
		for i := range 256 {
			if err := s.Put(ctx, fmt.Sprintf("%sf-%09d.parquet", dir, i), []byte("x")); err != nil {
				b.Fatal(err)
			}
		}
		cpu := cpuTime()
		for b.Loop() {
			objs, err := s.List(ctx, dir)
			if err != nil || len(objs) != 256 {
				b.Fatal(len(objs), err)
			}
		}
		reportCPU(b, cpu)
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

// reportCPU reports the CPU time per operation since start.
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
}
