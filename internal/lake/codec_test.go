package lake_test

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/klauspost/compress/gzip"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
	"github.com/parquet-go/parquet-go/format"

	"github.com/dataco/clickstream/internal/event"
	"github.com/dataco/clickstream/internal/lake"
)

// randString returns a random valid UTF-8 string of up to max runes, mixing
// ASCII, accented letters, CJK, emoji, quotes, backslashes and control
// characters; empty about one time in eight.
func randString(r *rand.Rand, max int) string {
	if r.IntN(8) == 0 {
		return ""
	}
	pools := []string{
		"abcdefghijklmnopqrstuvwxyz0123456789-_/.?=&%",
		"éèüößñçøåÅÉÜ",
		"東京北京서울ไทย",
		"😀🚀👍🏽",
		"\"\\\n\t\x00\x1f<>",
	}
	var sb strings.Builder
	for range r.IntN(max + 1) {
		p := []rune(pools[r.IntN(len(pools))])
		sb.WriteRune(p[r.IntN(len(p))])
	}
	return sb.String()
}

func randomEvents(r *rand.Rand, n int) []event.Event {
	evs := make([]event.Event, n)
	for i := range evs {
		evs[i] = event.Event{
			UserID:    randString(r, 20),
			Timestamp: event.MinTimestamp + r.Int64N(event.MaxTimestamp-event.MinTimestamp+1),
			URL:       randString(r, 80),
			Country:   randString(r, 3),
			City:      randString(r, 12),
			UserAgent: randString(r, 120),
			IsBot:     r.IntN(10) == 0,
		}
	}
	// Edge values.
	if n >= 3 {
		evs[0].Timestamp, evs[1].Timestamp, evs[2].Timestamp = event.MinTimestamp, event.MaxTimestamp, 0
		evs[0].City, evs[0].UserAgent = "", ""
		evs[1].URL = strings.Repeat("long/", 4000)
	}
	return evs
}

// Vocabulary of generated-like clickstream events.
var (
	genCountries = []string{"US", "DE", "FR", "GB", "BR", "IN", "JP", "CN", "ES", "IT", "NL", "PL", "SE", "CA", "MX", "AU", "KR", "TR", "RU", "AR", "unknown"}
	genCities    = []string{"São Paulo", "Zürich", "東京", "Kraków", "New York", "Berlin", "Paris", "London", "Mumbai", "Madrid", "Milano", "Amsterdam"}
	genAgents    = func() []string {
		var a []string
		for _, sys := range []string{"Windows NT 10.0; Win64; x64", "Macintosh; Intel Mac OS X 14_5", "X11; Linux x86_64", "iPhone; CPU iPhone OS 17_5 like Mac OS X", "Linux; Android 14; Pixel 8"} {
			for _, b := range []string{"Chrome/126.0.0.0 Safari/537.36", "Firefox/127.0", "Version/17.5 Safari/605.1.15", "Edg/126.0.0.0"} {
				a = append(a, "Mozilla/5.0 ("+sys+") AppleWebKit/537.36 (KHTML, like Gecko) "+b)
			}
		}
		return a
	}()
)

// generatedEvents returns n events like the load generator's: users
// "user-%07d" with Zipf-skewed activity over one hour, 2000 product and
// category pages, one skewed country and user agent per user, 3% empty
// cities, 2% empty user agents.
// Sorted by (user_id, timestamp) when byUser, else by timestamp.
func generatedEvents(n, users int, byUser bool) []event.Event {
	r := rand.New(rand.NewPCG(1, 2))
	userZipf := rand.NewZipf(r, 1.1, 20, uint64(users-1))
	urlZipf := rand.NewZipf(r, 1.2, 1, 1999)
	countryZipf := rand.NewZipf(r, 1.5, 1, uint64(len(genCountries)-1))
	userCountry := make([]string, users)
	for i := range userCountry {
		userCountry[i] = genCountries[countryZipf.Uint64()]
	}
	start := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC).UnixMilli()
	evs := make([]event.Event, n)
	for i := range evs {
		// Spread Zipf ranks over ids so heavy users are not all "user-00000xx".
		u := (userZipf.Uint64()*2654435761 + 12345) % uint64(users)
		page := urlZipf.Uint64()
		url := fmt.Sprintf("https://shop.example.com/p/%d", page)
		if page%5 == 0 {
			url = fmt.Sprintf("https://shop.example.com/c/category-%d?page=%d", page/5, page%7+1)
		}
		e := event.Event{
			UserID:    fmt.Sprintf("user-%07d", u),
			Timestamp: start + r.Int64N(3600_000),
			URL:       url,
			Country:   userCountry[u],
			City:      genCities[(u*7+uint64(i%2))%uint64(len(genCities))],
			UserAgent: genAgents[u%uint64(len(genAgents))],
			IsBot:     u%17 == 0,
		}
		if r.IntN(100) < 3 {
			e.City = ""
		}
		if r.IntN(100) < 2 {
			e.UserAgent = ""
		}
		evs[i] = e
	}
	slices.SortFunc(evs, func(a, b event.Event) int {
		if byUser {
			if c := strings.Compare(a.UserID, b.UserID); c != 0 {
				return c
			}
		}
		return cmp.Compare(a.Timestamp, b.Timestamp)
	})
	return evs
}

func TestCodecRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	sets := map[string][]event.Event{
		"empty":     nil,
		"one":       randomEvents(r, 1),
		"random":    randomEvents(r, 3000),
		"generated": generatedEvents(5000, 300, true),
	}
	if !testing.Short() {
		// More than one row group.
		sets["rowgroups"] = generatedEvents(lake.ParquetMaxRowsPerRowGroup+1000, 5000, true)
	}
	for _, f := range []lake.Format{lake.FormatParquet, lake.FormatNDJSONGzip} {
		for name, evs := range sets {
			if name == "rowgroups" && f != lake.FormatParquet {
				continue // slow under -race, and only parquet has row groups
			}
			t.Run(string(f)+"/"+name, func(t *testing.T) {
				data, err := f.Encode(evs)
				if err != nil {
					t.Fatal(err)
				}
				got, err := lake.DecodeFile("events/x/file"+f.Ext(), data)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != len(evs) {
					t.Fatalf("decoded %d events, want %d", len(got), len(evs))
				}
				for i := range evs {
					if got[i] != evs[i] {
						t.Fatalf("event %d:\n got %+v\nwant %+v", i, got[i], evs[i])
					}
				}
			})
		}
	}
}

func TestParquetFileShape(t *testing.T) {
	data, err := lake.EncodeParquet(generatedEvents(1000, 50, true))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(data, []byte("PAR1")) || !bytes.HasSuffix(data, []byte("PAR1")) {
		t.Fatal("no parquet magic")
	}
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]format.Encoding{
		"user_id": format.RLEDictionary, "ts": format.DeltaBinaryPacked, "url": format.RLEDictionary,
		"country": format.RLEDictionary, "city": format.RLEDictionary, "user_agent": format.RLEDictionary,
		"is_bot": format.Plain,
	}
	for _, rg := range f.Metadata().RowGroups {
		if len(rg.Columns) != len(want) {
			t.Fatalf("%d columns, want %d", len(rg.Columns), len(want))
		}
		for _, c := range rg.Columns {
			name := strings.Join(c.MetaData.PathInSchema, ".")
			enc, ok := want[name]
			if !ok {
				t.Errorf("unexpected column %q", name)
			}
			if !slices.Contains(c.MetaData.Encoding, enc) {
				t.Errorf("column %s: encodings %v, want %v among them", name, c.MetaData.Encoding, enc)
			}
			if c.MetaData.Codec != format.Zstd {
				t.Errorf("column %s: codec %v, want zstd", name, c.MetaData.Codec)
			}
		}
	}
}

// TestParquetWriterReuse encodes files of different sizes and contents one
// after the other, as ingest's commits do with pooled writers: each file
// must decode to exactly its own events, and encoding the same events again
// must give the same bytes, whatever was encoded in between.
func TestParquetWriterReuse(t *testing.T) {
	a := generatedEvents(3000, 400, true)
	b := generatedEvents(10, 3, false)
	c := generatedEvents(20000, 5000, true)
	first, err := lake.EncodeParquetFresh(a)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 { // concurrent encodes share the pool
		wg.Go(func() {
			for _, evs := range [][]event.Event{b, c, a, b} {
				data, err := lake.EncodeParquet(evs)
				if err != nil {
					t.Error(err)
					return
				}
				got, err := lake.DecodeParquet(data)
				if err != nil {
					t.Error(err)
					return
				}
				if !slices.Equal(got, evs) {
					t.Errorf("a file of %d events decodes to %d other events", len(evs), len(got))
				}
			}
		})
	}
	wg.Wait()
	again, err := lake.EncodeParquet(a) // by a writer the loops above used
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, again) {
		t.Error("a reused writer encodes the same events to other bytes than a fresh one")
	}
	f, err := parquet.OpenFile(bytes.NewReader(again), int64(len(again)))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range f.Metadata().RowGroups[0].Columns {
		if len(c.MetaData.PathInSchema) != 1 || c.MetaData.PathInSchema[0] == "" {
			t.Errorf("column path %q in the footer of a reused writer's file", c.MetaData.PathInSchema)
		}
	}
}

// TestParquetPageIndex checks the bounds parquet files give readers that
// skip data by them — column chunk statistics and the column index of
// every page, for every column — against the events written. A lookup of
// one user by Spark or Arrow prunes pages with them: a bound that is too
// tight loses rows silently (parquet-go writes ["", ""] for a column it is
// told to skip bounds of).
func TestParquetPageIndex(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for name, evs := range map[string][]event.Event{
		"random":    randomEvents(r, 3000),
		"generated": generatedEvents(5000, 300, true),
		"pages":     generatedEvents(200_000, 20_000, false), // several pages per column chunk
	} {
		t.Run(name, func(t *testing.T) {
			data, err := lake.EncodeParquet(evs)
			if err != nil {
				t.Fatal(err)
			}
			f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
			if err != nil {
				t.Fatal(err)
			}
			checkPageIndex(t, f, evs)
		})
	}
}

// checkPageIndex checks the column indexes' page bounds, and the column
// chunks' statistics, against the events on each page, as the offset
// indexes place them.
func checkPageIndex(t *testing.T, f *parquet.File, evs []event.Event) {
	t.Helper()
	cols := map[string]func(e *event.Event) []byte{
		"user_id":    func(e *event.Event) []byte { return []byte(e.UserID) },
		"ts":         func(e *event.Event) []byte { return binary.LittleEndian.AppendUint64(nil, uint64(e.Timestamp*1000)) },
		"url":        func(e *event.Event) []byte { return []byte(e.URL) },
		"country":    func(e *event.Event) []byte { return []byte(e.Country) },
		"city":       func(e *event.Event) []byte { return []byte(e.City) },
		"user_agent": func(e *event.Event) []byte { return []byte(e.UserAgent) },
		"is_bot": func(e *event.Event) []byte {
			if e.IsBot {
				return []byte{1}
			}
			return []byte{0}
		},
	}
	less := func(name string, a, b []byte) bool {
		if name == "ts" {
			return int64(binary.LittleEndian.Uint64(a)) < int64(binary.LittleEndian.Uint64(b))
		}
		return bytes.Compare(a, b) < 0
	}
	cis, ois := f.ColumnIndexes(), f.OffsetIndexes()
	md := f.Metadata()
	base := 0
	k := 0
	for _, rg := range md.RowGroups {
		for _, c := range rg.Columns {
			name := c.MetaData.PathInSchema[0]
			oi := ois[k]
			val := cols[name]
			ci := cis[k]
			k++
			if len(ci.MinValues) != len(oi.PageLocations) {
				t.Fatalf("column %s: %d page bounds for %d pages", name, len(ci.MinValues), len(oi.PageLocations))
			}
			var clo, chi []byte // the chunk's
			for p, loc := range oi.PageLocations {
				end := int(rg.NumRows)
				if p+1 < len(oi.PageLocations) {
					end = int(oi.PageLocations[p+1].FirstRowIndex)
				}
				lo, hi := val(&evs[base+int(loc.FirstRowIndex)]), val(&evs[base+int(loc.FirstRowIndex)])
				for i := base + int(loc.FirstRowIndex); i < base+end; i++ {
					v := val(&evs[i])
					if less(name, v, lo) {
						lo = v
					}
					if less(name, hi, v) {
						hi = v
					}
				}
				// Bounds may be shorter values than those on the page
				// (parquet-go truncates strings), but must enclose them.
				if less(name, lo, ci.MinValues[p]) || less(name, ci.MaxValues[p], hi) {
					t.Errorf("column %s page %d: bounds [%q, %q] do not enclose its values [%q, %q]", name, p, ci.MinValues[p], ci.MaxValues[p], lo, hi)
				}
				if p == 0 || less(name, lo, clo) {
					clo = lo
				}
				if p == 0 || less(name, chi, hi) {
					chi = hi
				}
			}
			// Statistics may be absent (no bounds), not wrong.
			if st := c.MetaData.Statistics; st.MinValue != nil || st.MaxValue != nil {
				if less(name, clo, st.MinValue) || less(name, st.MaxValue, chi) {
					t.Errorf("column %s: statistics [%q, %q] do not enclose its values [%q, %q]", name, st.MinValue, st.MaxValue, clo, chi)
				}
			}
		}
		base += int(rg.NumRows)
	}
}

func TestNDJSONGzipLines(t *testing.T) {
	evs := []event.Event{
		{UserID: "u1", Timestamp: 1, URL: "https://x/?a=1&b=<2>", Country: "DE", City: "Zürich", UserAgent: ""},
		{UserID: "u2", Timestamp: 2, URL: "/", Country: "unknown"},
	}
	data, err := lake.EncodeNDJSONGzip(evs)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	var plain bytes.Buffer
	if _, err := plain.ReadFrom(zr); err != nil {
		t.Fatal(err)
	}
	want := `{"user_id":"u1","timestamp_ms":1,"url":"https://x/?a=1&b=<2>","country":"DE","city":"Zürich","user_agent":""}
{"user_id":"u2","timestamp_ms":2,"url":"/","country":"unknown","city":"","user_agent":""}
`
	if plain.String() != want {
		t.Fatalf("NDJSON =\n%s\nwant\n%s", plain.String(), want)
	}
	// Concatenated gzip members and blank lines are fine.
	two := append(append([]byte{}, data...), gz(t, "\n\n"+`{"user_id":"u3"}`+"\n")...)
	got, err := lake.DecodeNDJSONGzip(two)
	if err != nil || len(got) != 3 || got[2].UserID != "u3" {
		t.Fatalf("decode of two members: %+v, %v", got, err)
	}
}

func gz(t testing.TB, s string) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestDecodeCorrupt(t *testing.T) {
	evs := generatedEvents(100, 10, true)
	pq, err := lake.EncodeParquet(evs)
	if err != nil {
		t.Fatal(err)
	}
	nd, err := lake.EncodeNDJSONGzip(evs)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("truncated", func(t *testing.T) {
		for _, f := range []struct {
			format lake.Format
			data   []byte
		}{{lake.FormatParquet, pq}, {lake.FormatNDJSONGzip, nd}} {
			// Every cut near either end, where the header, footer and
			// gzip trailer are, and every 7th in between.
			for n := 0; n < len(f.data); n++ {
				if n > 256 && n < len(f.data)-256 && n%7 != 0 {
					continue
				}
				if _, err := f.format.Decode(f.data[:n]); err == nil {
					t.Fatalf("%s truncated to %d of %d bytes decoded without error", f.format, n, len(f.data))
				}
			}
		}
	})
	t.Run("garbage", func(t *testing.T) {
		for _, data := range [][]byte{nil, []byte("PAR1"), []byte("PAR1PAR1"), []byte("PAR1\x00\x00\x00\x00PAR1"), []byte("PAR1xxxx\xff\xff\xff\x7fPAR1"), bytes.Repeat([]byte("x"), 1000), nd} {
			if _, err := lake.DecodeParquet(data); err == nil {
				t.Errorf("DecodeParquet(%.20q) succeeded", data)
			}
		}
		if _, err := lake.DecodeNDJSONGzip(pq); err == nil {
			t.Error("DecodeNDJSONGzip of a parquet file succeeded")
		}
		_, err := lake.DecodeNDJSONGzip(gz(t, "{\"user_id\":\"a\"}\n{\"user_id\":\n{}\n"))
		if err == nil || !strings.Contains(err.Error(), "line 2") {
			t.Errorf("bad JSON line error = %v, want one naming line 2", err)
		}
	})
	t.Run("othercodecs", func(t *testing.T) {
		// parquet-go's LZ4 decoder loops forever on a corrupt block: only
		// the codec the lake writes is read.
		for _, codec := range []compress.Codec{&parquet.Lz4Raw, &parquet.Snappy, &parquet.Gzip} {
			var buf bytes.Buffer
			if err := parquet.Write(&buf, evs, parquet.Compression(codec)); err != nil {
				t.Fatal(err)
			}
			if _, err := lake.DecodeParquet(buf.Bytes()); err == nil || !strings.Contains(err.Error(), "not accepted") {
				t.Errorf("%s file: error = %v, want a refused codec", codec, err)
			}
		}
	})
	t.Run("bitflips", func(t *testing.T) {
		// Any single corrupted byte: an error or some events, never a panic.
		r := rand.New(rand.NewPCG(3, 4))
		for range 500 {
			data := bytes.Clone(pq)
			data[r.IntN(len(data))] ^= byte(1 + r.IntN(255))
			lake.DecodeParquet(data)
		}
	})
}

func TestFormats(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want lake.Format
		ext  string
	}{
		{"parquet", lake.FormatParquet, ".parquet"},
		{"PARQUET", lake.FormatParquet, ".parquet"},
		{".ndjson.gz", lake.FormatNDJSONGzip, ".ndjson.gz"},
		{"ndjson.gz", lake.FormatNDJSONGzip, ".ndjson.gz"},
	} {
		got, err := lake.ParseFormat(tc.in)
		if err != nil || got != tc.want || got.Ext() != tc.ext {
			t.Errorf("ParseFormat(%q) = %q (ext %q), %v; want %q", tc.in, got, got.Ext(), err, tc.want)
		}
	}
	for _, bad := range []string{"", "json", "ndjson", "csv", "parquet.gz"} {
		if _, err := lake.ParseFormat(bad); err == nil {
			t.Errorf("ParseFormat(%q) succeeded", bad)
		}
	}
	// flag.TextVar binding.
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var f lake.Format
	fs.TextVar(&f, "format", lake.FormatParquet, "data file format")
	if err := fs.Parse([]string{"-format", "ndjson.gz"}); err != nil || f != lake.FormatNDJSONGzip {
		t.Errorf("flag: %q, %v", f, err)
	}
	if err := fs.Parse([]string{"-format", "avro"}); err == nil {
		t.Error("flag accepted avro")
	}
	for _, key := range []string{"a/b.json", "a/b.parquet.tmp", "a/b.ndjson", "parquet"} {
		if _, err := lake.DecodeFile(key, nil); err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("DecodeFile(%q) error = %v, want one naming the key", key, err)
		}
	}
}

func FuzzDecodeParquet(f *testing.F) {
	small, err := lake.EncodeParquet(generatedEvents(20, 5, true))
	if err != nil {
		f.Fatal(err)
	}
	empty, err := lake.EncodeParquet(nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(small)
	f.Add(empty)
	f.Add(small[:len(small)/2])
	f.Add([]byte("PAR1PAR1"))
	f.Fuzz(func(t *testing.T, data []byte) {
		evs, err := lake.DecodeParquet(data)
		if err != nil {
			return
		}
		for _, e := range evs {
			if e.Timestamp < event.MinTimestamp || e.Timestamp > event.MaxTimestamp {
				return // a valid file, but not of events the lake writes
			}
		}
		again, err := lake.EncodeParquet(evs)
		if err != nil {
			t.Fatal(err)
		}
		back, err := lake.DecodeParquet(again)
		if err != nil || !slices.Equal(back, evs) {
			t.Fatalf("re-encoded events do not round-trip: %v", err)
		}
	})
}

func FuzzDecodeNDJSONGzip(f *testing.F) {
	small, err := lake.EncodeNDJSONGzip(generatedEvents(20, 5, true))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(small)
	f.Add(small[:len(small)/2])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		evs, err := lake.DecodeNDJSONGzip(data)
		if err != nil {
			return
		}
		for _, e := range evs {
			if !utf8.ValidString(e.UserID + e.URL + e.Country + e.City + e.UserAgent) {
				t.Fatalf("invalid UTF-8 decoded: %+v", e)
			}
		}
	})
}

// benchEvents caches the benchmark inputs: 1M generated-like events from
// 50k users, sorted by (user_id, timestamp) or by timestamp.
var benchEvents = sync.OnceValue(func() map[string][]event.Event {
	return map[string][]event.Event{
		"byUser": generatedEvents(1_000_000, 50_000, true),
		"byTime": generatedEvents(1_000_000, 50_000, false),
	}
})

// BenchmarkCodec reports events/s of wall time and, because the machine
// is shared, events per second of this process's CPU time (user+sys, GC
// included), which other load disturbs much less.
func BenchmarkCodec(b *testing.B) {
	for _, f := range []lake.Format{lake.FormatParquet, lake.FormatNDJSONGzip} {
		for _, order := range []string{"byUser", "byTime"} {
			evs := benchEvents()[order]
			data, err := f.Encode(evs)
			if err != nil {
				b.Fatal(err)
			}
			ops := map[string]func() error{
				"encode": func() error { _, err := f.Encode(evs); return err },
				"decode": func() error { _, err := f.Decode(data); return err },
			}
			for _, op := range []string{"encode", "decode"} {
				b.Run(fmt.Sprintf("format=%s/order=%s/op=%s", f, order, op), func(b *testing.B) {
					cpu0 := cpuTime()
					for b.Loop() {
						if err := ops[op](); err != nil {
							b.Fatal(err)
						}
					}
					n := float64(len(evs)) * float64(b.N)
					b.ReportMetric(n/b.Elapsed().Seconds(), "events/s")
					b.ReportMetric(n/(cpuTime()-cpu0).Seconds(), "events/cpu-s")
					b.ReportMetric(float64(len(data))/float64(len(evs)), "B/event")
				})
			}
		}
	}
}

// cpuTime returns the CPU time used by this process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rowBeforeIsBot is a data file row as the lake wrote it before the is_bot
// column was added.
type rowBeforeIsBot struct {
	UserID    string `parquet:"user_id,id(1),dict"`
	Ts        int64  `parquet:"ts,id(2),timestamp(microsecond:utc),delta"`
	URL       string `parquet:"url,id(3),dict"`
	Country   string `parquet:"country,id(4),dict"`
	City      string `parquet:"city,id(5),dict"`
	UserAgent string `parquet:"user_agent,id(6),dict"`
}

// TestIsBotRoundTrip: is_bot survives both formats, and files written
// before the column existed (Parquet without it, NDJSON without the key)
// still decode, their events human.
func TestIsBotRoundTrip(t *testing.T) {
	evs := generatedEvents(3000, 200, true)
	bots := 0
	for _, e := range evs {
		if e.IsBot {
			bots++
		}
	}
	if bots == 0 || bots == len(evs) {
		t.Fatalf("%d bot events of %d: want some of each", bots, len(evs))
	}
	for _, f := range []lake.Format{lake.FormatParquet, lake.FormatNDJSONGzip} {
		data, err := f.Encode(evs)
		if err != nil {
			t.Fatal(err)
		}
		got, err := f.Decode(data)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if !slices.Equal(got, evs) {
			t.Errorf("%s: is_bot lost in a round trip", f)
		}
	}

	human := slices.Clone(evs)
	old := make([]rowBeforeIsBot, len(evs))
	for i := range human {
		human[i].IsBot = false
		r := lake.RowOf(&human[i])
		old[i] = rowBeforeIsBot{r.UserID, r.Ts, r.URL, r.Country, r.City, r.UserAgent}
	}
	var buf bytes.Buffer
	w := parquet.NewGenericWriter[rowBeforeIsBot](&buf, parquet.Compression(&parquet.Zstd))
	if _, err := w.Write(old); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := lake.DecodeParquet(buf.Bytes())
	if err != nil {
		t.Fatalf("a data file without is_bot: %v", err)
	}
	if !slices.Equal(got, human) {
		t.Error("a data file without is_bot decodes to other events")
	}

	var nd bytes.Buffer
	zw := gzip.NewWriter(&nd)
	for _, e := range human[:10] {
		fmt.Fprintf(zw, `{"user_id":%q,"timestamp_ms":%d,"url":%q,"country":%q,"city":%q,"user_agent":%q}`+"\n", e.UserID, e.Timestamp, e.URL, e.Country, e.City, e.UserAgent)
	}
	zw.Close()
	got, err = lake.DecodeNDJSONGzip(nd.Bytes())
	if err != nil || !slices.Equal(got, human[:10]) {
		t.Errorf("an NDJSON file without is_bot: %v", err)
	}
}
