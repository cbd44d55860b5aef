package aggregate

import (
	"cmp"
	"fmt"
	"strings"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/dataco/clickstream/internal/event"
	"github.com/dataco/clickstream/internal/lake"
)

// benchEvents is the benchmark data set: one task's events, a 1 h window
// plus 30 min of look-ahead, 100k users, Zipf-distributed URLs (5k) and
// countries (30), in time order.
const benchN = 1_000_000

var benchData = sync.OnceValue(func() []event.Event {
	rng := rand.New(rand.NewPCG(2026, 11))
	users := make([]string, 100_000)
	for i := range users {
		users[i] = fmt.Sprintf("u-%08d", rng.Uint32())
	}
	urls := make([]string, 5000)
	for i := range urls {
		urls[i] = fmt.Sprintf("https://shop.example.com/product/%d/view", i)
	}
	countries := make([]string, 30)
	for i := range countries {
		countries[i] = fmt.Sprintf("c%02d", i)
	}
	countries[0] = event.UnknownCountry
	zu := rand.NewZipf(rng, 1.1, 4, uint64(len(urls)-1))
	zc := rand.NewZipf(rng, 1.5, 2, uint64(len(countries)-1))
	span := (90 * time.Minute).Milliseconds()
	evs := make([]event.Event, benchN)
	for i := range evs {
		u := rng.IntN(len(users))
		evs[i] = event.Event{
			UserID:    users[u],
			Timestamp: testFrom.UnixMilli() + rng.Int64N(span),
			URL:       urls[zu.Uint64()],
			Country:   countries[(int(zc.Uint64())+u)%len(countries)],
			City:      "city",
			UserAgent: "Mozilla/5.0",
		}
	}
	// Unstable sorts with total orders: SortStableFunc takes seconds here.
	slices.SortFunc(evs, func(a, b event.Event) int {
		return cmp.Or(cmp.Compare(a.Timestamp, b.Timestamp), strings.Compare(a.UserID, b.UserID), strings.Compare(a.URL, b.URL), strings.Compare(a.Country, b.Country))
	})
	return evs
})

var benchByUser = sync.OnceValue(func() []event.Event {
	evs := slices.Clone(benchData())
	slices.SortFunc(evs, func(a, b event.Event) int {
		return cmp.Or(strings.Compare(a.UserID, b.UserID), cmp.Compare(a.Timestamp, b.Timestamp), strings.Compare(a.URL, b.URL), strings.Compare(a.Country, b.Country))
	})
	return evs
})

func reportEventsPerSecond(b *testing.B, n int) {
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(0, "ns/op") // per-op time of a whole task is noise next to events/s
}

func BenchmarkCompute(b *testing.B) {
	w := testWindow()
	for _, bc := range []struct {
		name string
		evs  func() []event.Event
	}{
		{"time-ordered", benchData},
		{"user-sorted", benchByUser},
	} {
		b.Run(bc.name, func(b *testing.B) {
			evs := bc.evs()
			b.ReportAllocs()
			for b.Loop() {
				Compute(evs, w, 0)
			}
			reportEventsPerSecond(b, len(evs))
		})
	}
}

func benchFiles(b *testing.B, evs []event.Event, files int) [][]byte {
	b.Helper()
	out := make([][]byte, files)
	per := (len(evs) + files - 1) / files
	for i := range out {
		lo, hi := min(i*per, len(evs)), min((i+1)*per, len(evs))
		out[i] = writeParquet(b, evs[lo:hi], parquet.MaxRowsPerRowGroup(128<<10))
	}
	return out
}

func BenchmarkComputeParquet(b *testing.B) {
	w := testWindow()
	for _, bc := range []struct {
		name string
		evs  func() []event.Event
	}{
		{"time-ordered", benchData},
		{"user-sorted", benchByUser},
	} {
		files := benchFiles(b, bc.evs(), 4)
		size := 0
		for _, f := range files {
			size += len(f)
		}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ComputeParquet(files, w, 0); err != nil {
					b.Fatal(err)
				}
			}
			reportEventsPerSecond(b, benchN)
			b.ReportMetric(float64(size)/benchN, "file-bytes/event")
		})
		b.Run(bc.name+"/decode-only", func(b *testing.B) {
			for b.Loop() {
				r := NewColumnReader(w, 0)
				for _, f := range files {
					if err := r.AddFile(bytesReader(f), int64(len(f))); err != nil {
						b.Fatal(err)
					}
				}
			}
			reportEventsPerSecond(b, benchN)
		})
	}
}

// BenchmarkMerge merges the partials of 16 bucket tasks into one, as a
// coordinator does; ns/merge is the cost of one Partial.Merge.
func BenchmarkMerge(b *testing.B) {
	const buckets = 16
	w := testWindow()
	parts := make([][]event.Event, buckets)
	for _, e := range benchData() {
		i := lake.Bucket(e.UserID, buckets)
		parts[i] = append(parts[i], e)
	}
	partials := make([]*Partial, buckets)
	rows, hashes := 0, 0
	for i, part := range parts {
		partials[i] = Compute(part, w, 0)
		rows += len(partials[i].Rows)
		for _, r := range partials[i].Rows {
			hashes += len(r.UserHashes)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		p := NewPartial()
		for _, q := range partials {
			p.Merge(q)
		}
	}
	perMerge := float64(b.Elapsed().Nanoseconds()) / float64(b.N*buckets)
	b.ReportMetric(perMerge, "ns/merge")
	b.ReportMetric(float64(rows)/buckets, "rows/partial")
	b.ReportMetric(float64(hashes)/buckets, "hashes/partial")
	b.ReportMetric(0, "ns/op")
}

func BenchmarkMarshal(b *testing.B) {
	p := Compute(benchData(), testWindow(), 0)
	data, err := p.MarshalBinary()
	if err != nil {
		b.Fatal(err)
	}
	b.Run("encode", func(b *testing.B) {
		for b.Loop() {
			if _, err := p.MarshalBinary(); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(data)), "bytes")
	})
	b.Run("decode", func(b *testing.B) {
		for b.Loop() {
			var q Partial
			if err := q.UnmarshalBinary(data); err != nil {
				b.Fatal(err)
			}
		}
	})
}
