package aggregate

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dataco/clickstream/internal/event"
	"github.com/dataco/clickstream/internal/lake"
)

// benchN is the number of events of a benchmark task.
const benchN = 1_000_000

// benchCountries is the country vocabulary of the benchmark data.
var benchCountries = []string{"US", "DE", "FR", "GB", "BR", "IN", "JP", "CN", "ES", "IT", "NL", "PL", "SE", "CA", "MX", "AU", "KR", "TR", "RU", "AR", "unknown"}

// benchEvents returns one task's events shaped like the load generator's
// (and the lake codec benchmark's): 50k users with Zipf-skewed activity,
// 2000 product and category pages (Zipf), one skewed country per user,
// spread over 90 minutes (a 1 h window and its 30 min look-ahead).
//
// commits = 0 returns them in time order; n > 0 cuts the time-ordered
// events into n consecutive slices (ingest commits) and sorts each by
// (user, time, url, country), as ingest sorts each data file; n = 1 is a
// task sorted by user as a whole. Strings are built per event after
// ordering, as a decoder reading the files in order would, so they share no
// memory and lie in input order. The data is rebuilt per benchmark rather
// than cached, so that no large live heap of events burdens the GC of
// other benchmarks.
func benchEvents(commits int) []event.Event {
	const users = 50_000
	type raw struct {
		ts         int64
		user, page uint64
	}
	r := rand.New(rand.NewPCG(1, 2))
	userZipf := rand.NewZipf(r, 1.1, 20, users-1)
	urlZipf := rand.NewZipf(r, 1.2, 1, 1999)
	countryZipf := rand.NewZipf(r, 1.5, 1, uint64(len(benchCountries)-1))
	userCountry := make([]string, users)
	for i := range userCountry {
		userCountry[i] = benchCountries[countryZipf.Uint64()]
	}
	span := (90 * time.Minute).Milliseconds()
	raws := make([]raw, benchN)
	for i := range raws {
		raws[i] = raw{
			ts:   testFrom.UnixMilli() + r.Int64N(span),
			user: (userZipf.Uint64()*2654435761 + 12345) % users,
			page: urlZipf.Uint64(),
		}
	}
	slices.SortFunc(raws, func(a, b raw) int { return cmp.Compare(a.ts, b.ts) })
	if commits > 0 {
		// The commits are cut where benchParts cuts files, so that each
		// file is one commit, sorted by user as ingest writes it.
		for i := range commits {
			c := raws[i*len(raws)/commits : (i+1)*len(raws)/commits]
			// user ids are zero-padded, so numeric order is string order;
			// pages in a tie are ordered by number, close enough for a
			// benchmark (Compute sorts such ties itself).
			slices.SortFunc(c, func(a, b raw) int {
				return cmp.Or(cmp.Compare(a.user, b.user), cmp.Compare(a.ts, b.ts), cmp.Compare(a.page, b.page))
			})
		}
	}
	evs := make([]event.Event, len(raws))
	for i, x := range raws {
		url := fmt.Sprintf("https://shop.example.com/p/%d", x.page)
		if x.page%5 == 0 {
			url = fmt.Sprintf("https://shop.example.com/c/category-%d?page=%d", x.page/5, x.page%7+1)
		}
		evs[i] = event.Event{
			UserID:    fmt.Sprintf("user-%07d", x.user),
			Timestamp: x.ts,
			URL:       url,
			Country:   strings.Clone(userCountry[x.user]),
			City:      "Berlin",
			UserAgent: "Mozilla/5.0",
		}
	}
	return evs
}

// benchOrders are the input layouts: time order; sorted by user as a whole
// (the "pre-sorted by user"); and the lake's layout, six files (one
// per 15 min commit), each sorted by user.
var benchOrders = []struct {
	name    string
	commits int
}{{"time-ordered", 0}, {"user-sorted", 1}, {"lake-6-commits", 6}}

// benchParts cuts evs into n consecutive parts (files).
func benchParts(evs []event.Event, n int) [][]event.Event {
	var parts [][]event.Event
	for i := range n {
		parts = append(parts, evs[i*len(evs)/n:(i+1)*len(evs)/n])
	}
	return parts
}

// cpuTime is the CPU time of this process so far (all threads, GC
// included). The benchmark machines are shared: events per CPU second is
// the stable measure, events per wall second the one a dedicated core sees.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// measure runs body in a b.Loop and reports events/s (wall) and
// events/cpu-s for n events an iteration.
func measure(b *testing.B, n int, body func()) {
	b.Helper()
	var cpu0 time.Duration
	first := true
	for b.Loop() {
		if first {
			cpu0, first = cpuTime(), false
		}
		body()
	}
	cpu := cpuTime() - cpu0
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(n)*float64(b.N)/cpu.Seconds(), "events/cpu-s")
	b.ReportMetric(0, "ns/op") // per-op time of a whole task is noise next to events/s
}

func BenchmarkCompute(b *testing.B) {
	w := testWindow()
	for _, bc := range benchOrders {
		b.Run(bc.name, func(b *testing.B) {
			evs := benchEvents(bc.commits)
			b.ReportAllocs()
			measure(b, len(evs), func() { Compute(evs, w, 0) })
		})
	}
}

// benchFiles encodes each slice as a data file the way the lake does.
func benchFiles(b *testing.B, parts [][]event.Event) [][]byte {
	b.Helper()
	out := make([][]byte, len(parts))
	for i, p := range parts {
		out[i] = writeParquet(b, p, lakeWriterOptions...)
	}
	return out
}

func BenchmarkComputeParquet(b *testing.B) {
	w := testWindow()
	for _, bc := range benchOrders {
		// Six files per task (one file for the task sorted as a whole).
		files := benchFiles(b, benchParts(benchEvents(bc.commits), max(bc.commits, 1)))
		if bc.commits == 0 {
			files = benchFiles(b, benchParts(benchEvents(0), 6))
		}
		size := 0
		for _, f := range files {
			size += len(f)
		}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			measure(b, benchN, func() {
				if _, err := ComputeParquet(files, w, 0); err != nil {
					b.Fatal(err)
				}
			})
			b.ReportMetric(float64(size)/benchN, "file-bytes/event")
		})
		b.Run(bc.name+"/no-user-sets", func(b *testing.B) {
			b.ReportAllocs()
			measure(b, benchN, func() {
				r := NewColumnReader(w, 0)
				r.WithoutUserSets()
				for _, f := range files {
					if err := r.AddFile(bytesReader(f), int64(len(f))); err != nil {
						b.Fatal(err)
					}
				}
				r.Partial()
			})
		})
		if bc.commits == 6 {
			// The same events, a tenth of the users being bots: their
			// events are set apart (read from is_bot, counted by key).
			evs := benchEvents(bc.commits)
			for i := range evs {
				evs[i].IsBot = evs[i].UserID[len(evs[i].UserID)-1] == '7'
			}
			botFiles := benchFiles(b, benchParts(evs, bc.commits))
			b.Run(bc.name+"/bots-apart", func(b *testing.B) {
				b.ReportAllocs()
				measure(b, benchN, func() {
					if _, err := ComputeParquet(botFiles, w, 0); err != nil {
						b.Fatal(err)
					}
				})
			})
		}
		b.Run(bc.name+"/decode-only", func(b *testing.B) {
			measure(b, benchN, func() {
				r := NewColumnReader(w, 0)
				for _, f := range files {
					if err := r.AddFile(bytesReader(f), int64(len(f))); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// BenchmarkMerge merges the partials of 16 bucket tasks into one, as a
// coordinator does; ns/merge is the cost of one Partial.Merge.
func BenchmarkMerge(b *testing.B) {
	const buckets = 16
	w := testWindow()
	parts := make([][]event.Event, buckets)
	for _, e := range benchEvents(0) {
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
	p := Compute(benchEvents(0), testWindow(), 0)
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
