package aggregate

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/dataco/clickstream/internal/event"
	"github.com/dataco/clickstream/internal/lake"
)

// lakeWriterOptions are the lake codec's writer settings (see
// lake.EncodeParquet), on top of zstd: delta-encoded timestamps, row groups
// of at most 128k rows, 256 KiB pages.
var lakeWriterOptions = []parquet.WriterOption{
	parquet.DefaultEncodingFor(parquet.Int64, &parquet.DeltaBinaryPacked),
	parquet.MaxRowsPerRowGroup(128 << 10),
	parquet.PageBufferSize(256 << 10),
}

// writeParquet writes events the way the lake codec does, plus options
// (small pages, row groups, dictionary limits) to exercise the reader.
func writeParquet(tb testing.TB, events []event.Event, opts ...parquet.WriterOption) []byte {
	tb.Helper()
	var buf bytes.Buffer
	opts = append([]parquet.WriterOption{parquet.Compression(&parquet.Zstd)}, opts...)
	w := parquet.NewGenericWriter[lake.Row](&buf, opts...)
	if len(events) > 0 {
		if _, err := w.Write(lakeRows(events)); err != nil {
			tb.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// lakeRows returns the file rows of events.
func lakeRows(events []event.Event) []lake.Row {
	rows := make([]lake.Row, len(events))
	for i := range events {
		rows[i] = lake.RowOf(&events[i])
	}
	return rows
}

// writeRows writes rows of any schema as a zstd Parquet file.
func writeRows[T any](tb testing.TB, rows []T) []byte {
	tb.Helper()
	var buf bytes.Buffer
	w := parquet.NewGenericWriter[T](&buf, parquet.Compression(&parquet.Zstd))
	if _, err := w.Write(rows); err != nil {
		tb.Fatal(err)
	}
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// millisRow has a ts column of milliseconds, not the lake's microseconds.
type millisRow struct {
	UserID    string `parquet:"user_id"`
	Timestamp int64  `parquet:"ts,timestamp(millisecond)"`
	URL       string `parquet:"url"`
	Country   string `parquet:"country"`
}

// rowGroupsAndPages counts the row groups and data pages of a file's
// user_id column.
func rowGroupsAndPages(tb testing.TB, data []byte) (groups, pages int) {
	tb.Helper()
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		tb.Fatal(err)
	}
	leaf, _ := f.Schema().Lookup(columnUserID)
	for _, rg := range f.RowGroups() {
		groups++
		err := forEachPage(rg.ColumnChunks()[leaf.ColumnIndex], func(parquet.Page) error { pages++; return nil })
		if err != nil {
			tb.Fatal(err)
		}
	}
	return groups, pages
}

func TestComputeParquetProperty(t *testing.T) {
	layouts := []struct {
		name string
		opts []parquet.WriterOption
	}{
		{"default", nil},
		{"lake settings", lakeWriterOptions},
		{"small pages and row groups", []parquet.WriterOption{parquet.PageBufferSize(512), parquet.MaxRowsPerRowGroup(700)}},
		{"plain fallback", []parquet.WriterOption{parquet.DictionaryMaxBytes(64), parquet.PageBufferSize(1024), parquet.MaxRowsPerRowGroup(1000)}},
		{"data page v2", []parquet.WriterOption{parquet.DataPageVersion(2), parquet.PageBufferSize(2048), parquet.MaxRowsPerRowGroup(1500)}},
	}
	g := genConfig{events: 4000, users: 120, urls: 25, countries: 30, span: 3 * time.Hour, tick: time.Second}
	seeds := 4
	if testing.Short() {
		seeds = 1
	}
	for _, l := range layouts {
		t.Run(l.name, func(t *testing.T) {
			for seed := range seeds {
				rng := rand.New(rand.NewPCG(7, uint64(seed)))
				evs := randomEvents(rng, g)
				w := testWindow()
				if seed%2 == 1 { // a window cutting through the data
					w = Window{From: testFrom.Add(40 * time.Minute), To: testFrom.Add(70 * time.Minute)}
				}
				for _, order := range []func([]event.Event){nil, sortByTime, sortByUser} {
					if order != nil {
						order(evs)
					}
					// Split into three files, as a partition with several commits.
					n := len(evs)
					files := [][]byte{
						writeParquet(t, evs[:n/3], l.opts...),
						writeParquet(t, evs[n/3:n/2], l.opts...),
						writeParquet(t, evs[n/2:], l.opts...),
					}
					got, err := ComputeParquet(files, w, 10*time.Minute)
					if err != nil {
						t.Fatal(err)
					}
					checkSameAs(t, "ComputeParquet", got, Compute(evs, w, 10*time.Minute))
				}
			}
		})
	}
}

// TestComputeParquetSortedThenNot reads files sorted by user (whose user
// dictionaries are merged in order) followed by files that are not, and a
// sorted one again: the user ids interned so far carry over to the hash map.
func TestComputeParquetSortedThenNot(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	evs := randomEvents(rng, genConfig{events: 4000, users: 150, urls: 20, countries: 5, span: 2 * time.Hour, tick: time.Second})
	n := len(evs)
	parts := [][]event.Event{evs[:n/4], evs[n/4 : n/2], evs[n/2 : 3*n/4], evs[3*n/4:]}
	sortByUser(parts[0])
	sortByUser(parts[1])
	sortByTime(parts[2])
	sortByUser(parts[3])
	r := NewColumnReader(testWindow(), 10*time.Minute)
	for i, p := range parts {
		data := writeParquet(t, p, parquet.MaxRowsPerRowGroup(300))
		if err := r.AddFile(bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatal(err)
		}
		if merging := r.users.ids == nil; merging != (i < 2) {
			t.Fatalf("after file %d: user dictionaries merged %v", i, merging)
		}
	}
	checkSameAs(t, "ColumnReader", r.Partial(), Compute(evs, testWindow(), 10*time.Minute))
}

// TestComputeParquetSmallDictionaryAfterMany: a sorted file of few users
// after files of many more turns the user column to the hash map (a merge
// would rewrite the whole order for a handful of values), with the same
// partial.
func TestComputeParquetSmallDictionaryAfterMany(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	many := randomEvents(rng, genConfig{events: 30_000, users: 8_000, urls: 20, countries: 5, span: 2 * time.Hour, tick: time.Second})
	few := randomEvents(rng, genConfig{events: 200, users: 10, urls: 20, countries: 5, span: 2 * time.Hour, tick: time.Second})
	sortByUser(many)
	sortByUser(few)
	r := NewColumnReader(testWindow(), 10*time.Minute)
	for i, p := range [][]event.Event{many, few} {
		data := writeParquet(t, p)
		if err := r.AddFile(bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatal(err)
		}
		if merging := r.users.ids == nil; merging != (i == 0) {
			t.Fatalf("after file %d: user dictionaries merged %v", i, merging)
		}
	}
	checkSameAs(t, "ColumnReader", r.Partial(), Compute(append(slices.Clone(many), few...), testWindow(), 10*time.Minute))
}

func TestComputeParquetLayoutCoverage(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	evs := randomEvents(rng, genConfig{events: 3000, users: 50, urls: 10, countries: 3, span: time.Hour, tick: time.Second})
	data := writeParquet(t, evs, parquet.PageBufferSize(512), parquet.MaxRowsPerRowGroup(700))
	if groups, pages := rowGroupsAndPages(t, data); groups < 3 || pages <= groups {
		t.Fatalf("test file has %d row groups and %d pages; want several of each", groups, pages)
	}
}

func TestComputeParquetSkipsRowGroups(t *testing.T) {
	// A time-ordered file whose early row groups are before the window: the
	// result must not change when they are skipped by their statistics.
	rng := rand.New(rand.NewPCG(3, 4))
	evs := randomEvents(rng, genConfig{events: 5000, users: 80, urls: 10, countries: 3, span: 4 * time.Hour, tick: time.Second})
	sortByTime(evs)
	data := writeParquet(t, evs, parquet.MaxRowsPerRowGroup(500))
	w := Window{From: testFrom.Add(2 * time.Hour), To: testFrom.Add(150 * time.Minute)}
	r := NewColumnReader(w, 0)
	if err := r.AddFile(bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	got := r.Partial()
	checkSameAs(t, "ColumnReader", got, Compute(evs, w, 0))
	if got.Events == 0 || r.skipped == 0 {
		t.Fatalf("%d events, %d row groups skipped: test data is off", got.Events, r.skipped)
	}
}

func TestComputeParquetErrors(t *testing.T) {
	good := writeParquet(t, []event.Event{ev("u", at(0), "/a", "us")})

	type other struct {
		UserID string `parquet:"user_id"`
		Other  int64  `parquet:"other"`
	}
	var buf bytes.Buffer
	ow := parquet.NewGenericWriter[other](&buf)
	if _, err := ow.Write([]other{{"u", 1}}); err != nil {
		t.Fatal(err)
	}
	if err := ow.Close(); err != nil {
		t.Fatal(err)
	}

	type optional struct {
		UserID    *string `parquet:"user_id,optional"`
		Timestamp int64   `parquet:"ts,timestamp(microsecond)"`
		URL       string  `parquet:"url"`
		Country   string  `parquet:"country"`
	}
	var obuf bytes.Buffer
	opw := parquet.NewGenericWriter[optional](&obuf)
	if _, err := opw.Write([]optional{{nil, 1, "/a", "us"}}); err != nil {
		t.Fatal(err)
	}
	if err := opw.Close(); err != nil {
		t.Fatal(err)
	}

	var sbuf bytes.Buffer
	sw := parquet.NewGenericWriter[lake.Row](&sbuf, parquet.Compression(&parquet.Snappy))
	if _, err := sw.Write(lakeRows([]event.Event{ev("u", at(0), "/a", "us")})); err != nil {
		t.Fatal(err)
	}
	if err := sw.Close(); err != nil {
		t.Fatal(err)
	}
	hugeFooter := bytes.Clone(good)
	binary.LittleEndian.PutUint32(hugeFooter[len(hugeFooter)-8:], 1<<31)

	tests := []struct {
		name        string
		data        []byte
		unsupported bool
	}{
		{"not parquet", []byte("hello, world"), false},
		{"tiny", []byte("PAR1"), false},
		{"truncated", good[:len(good)/2], false},
		{"huge footer length", hugeFooter, false},
		{"snappy", sbuf.Bytes(), true},
		{"missing columns", buf.Bytes(), true},
		{"optional column", obuf.Bytes(), true},
		{"timestamp in milliseconds", writeRows(t, []millisRow{{"u", at(0), "/a", "us"}}), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ComputeParquet([][]byte{good, tt.data}, testWindow(), 0)
			if err == nil {
				t.Fatal("no error")
			}
			if tt.unsupported != errors.Is(err, ErrUnsupportedFile) {
				t.Fatalf("error %v: unsupported=%v", err, errors.Is(err, ErrUnsupportedFile))
			}
		})
	}
}

// TestComputeParquetCorruptPages flips bytes inside a file: the reader must
// return an error or a result, never panic.
func TestComputeParquetCorruptPages(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	evs := randomEvents(rng, genConfig{events: 500, users: 20, urls: 5, countries: 3, span: time.Hour, tick: time.Second})
	good := writeParquet(t, evs, parquet.PageBufferSize(256))
	for i := range 200 {
		data := bytes.Clone(good)
		for range 1 + i%4 {
			data[4+rng.IntN(len(data)-12)] ^= byte(1 + rng.IntN(255))
		}
		_, _ = ComputeParquet([][]byte{data}, testWindow(), 0)
	}
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

// TestComputeParquetLakeFiles reads files written by the lake codec itself.
func TestComputeParquetLakeFiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	evs := randomEvents(rng, genConfig{events: 6000, users: 200, urls: 30, countries: 6, span: 3 * time.Hour, tick: time.Millisecond})
	var files [][]byte
	for i := range 3 { // three commits, each sorted by user as ingest does
		part := slices.Clone(evs[i*2000 : (i+1)*2000])
		sortByUser(part)
		data, err := lake.EncodeParquet(part)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, data)
	}
	w := testWindow()
	got, err := ComputeParquet(files, w, 0)
	if err != nil {
		t.Fatal(err)
	}
	checkSameAs(t, "ComputeParquet", got, Compute(evs, w, 0))
}

// FuzzColumnReader: a corrupt file is an error, never a panic or a hang.
func FuzzColumnReader(f *testing.F) {
	rng := rand.New(rand.NewPCG(10, 10))
	evs := randomEvents(rng, genConfig{events: 60, users: 5, urls: 4, countries: 2, span: time.Hour, tick: time.Second})
	f.Add(writeParquet(f, evs))
	f.Add(writeParquet(f, evs, parquet.PageBufferSize(128), parquet.MaxRowsPerRowGroup(20)))
	f.Add(writeParquet(f, evs, lakeWriterOptions...))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = ComputeParquet([][]byte{data}, testWindow(), 0)
	})
}

// TestComputeParquetOtherSchema reads a file holding only the four needed
// columns, with dictionary-encoded timestamps and in another column order.
func TestComputeParquetOtherSchema(t *testing.T) {
	type minimal struct {
		Country   string `parquet:"country,dict"`
		URL       string `parquet:"url"`
		Timestamp int64  `parquet:"ts,dict,timestamp(microsecond)"`
		UserID    string `parquet:"user_id,dict"`
	}
	rng := rand.New(rand.NewPCG(12, 12))
	evs := randomEvents(rng, genConfig{events: 3000, users: 40, urls: 8, countries: 4, span: 2 * time.Hour, tick: time.Minute})
	rows := make([]minimal, len(evs))
	for i, e := range evs {
		rows[i] = minimal{Country: e.Country, URL: e.URL, Timestamp: e.Timestamp * 1000, UserID: e.UserID}
	}
	var buf bytes.Buffer
	w := parquet.NewGenericWriter[minimal](&buf, parquet.Compression(&parquet.Zstd), parquet.PageBufferSize(1024))
	if _, err := w.Write(rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := ComputeParquet([][]byte{buf.Bytes()}, testWindow(), 0)
	if err != nil {
		t.Fatal(err)
	}
	checkSameAs(t, "ComputeParquet", got, Compute(evs, testWindow(), 0))
}

// TestComputeParquetOldLayout: a data file of lake layout 1 (epoch
// milliseconds in a timestamp_ms column) is an error naming the missing
// ts column, not an unsupported file to decode by rows, and never garbage.
func TestComputeParquetOldLayout(t *testing.T) {
	type oldRow struct {
		UserID    string `parquet:"user_id,dict"`
		Timestamp int64  `parquet:"timestamp_ms"`
		URL       string `parquet:"url,dict"`
		Country   string `parquet:"country,dict"`
	}
	old := writeRows(t, []oldRow{{"u", at(0), "/a", "us"}})
	_, err := ComputeParquet([][]byte{old}, testWindow(), 0)
	if err == nil || errors.Is(err, ErrUnsupportedFile) || !strings.Contains(err.Error(), `no column "ts"`) {
		t.Fatalf("err = %v, want one naming the missing ts column, not ErrUnsupportedFile", err)
	}
}

// TestComputeParquetMicros: timestamps that are not whole milliseconds,
// before and after the epoch, count in the millisecond they fall in.
func TestComputeParquetMicros(t *testing.T) {
	w := testWindow()
	base := w.From.UnixMilli()
	rows := []lake.Row{
		{UserID: "u", Ts: base*1000 - 1, URL: "/early", Country: "us"}, // just before the window
		{UserID: "u", Ts: base * 1000, URL: "/a", Country: "us"},
		{UserID: "u", Ts: (base+60_000)*1000 + 999, URL: "/b", Country: "us"},
		{UserID: "v", Ts: (base+1)*1000 + 1, URL: "/a", Country: "de"},
	}
	evs := make([]event.Event, len(rows))
	for i := range rows {
		evs[i] = rows[i].Event()
	}
	if evs[0].Timestamp != base-1 || evs[2].Timestamp != base+60_000 {
		t.Fatalf("Row.Event: %d, %d; want %d, %d", evs[0].Timestamp, evs[2].Timestamp, base-1, base+60_000)
	}
	got, err := ComputeParquet([][]byte{writeRows(t, rows)}, w, 0)
	if err != nil {
		t.Fatal(err)
	}
	checkSameAs(t, "ComputeParquet", got, Compute(evs, w, 0))
	if microsToMillis(-1) != -1 || microsToMillis(-1000) != -1 || microsToMillis(-1001) != -2 || microsToMillis(1999) != 1 {
		t.Error("microsToMillis does not round toward negative infinity")
	}
}

// TestColumnReaderWithoutUserSets: without user sets, every counter of
// every row is what it is with them (Users included), the rows carry no
// hashes, and the partial encodes smaller; DropUserSets on a computed
// partial gives the same.
func TestColumnReaderWithoutUserSets(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	evs := randomEvents(rng, genConfig{events: 6000, users: 400, urls: 30, countries: 12, span: 3 * time.Hour, tick: time.Second})
	w := testWindow()
	file := writeParquet(t, evs, lakeWriterOptions...)
	read := func(sets bool) *Partial {
		r := NewColumnReader(w, 10*time.Minute)
		if !sets {
			r.WithoutUserSets()
		}
		if err := r.AddFile(bytes.NewReader(file), int64(len(file))); err != nil {
			t.Fatal(err)
		}
		return r.Partial()
	}
	with, without := read(true), read(false)
	computed := Compute(evs, w, 10*time.Minute)
	computed.DropUserSets()
	for _, p := range []*Partial{without, computed} {
		if p.Events != with.Events || len(p.Rows) != len(with.Rows) {
			t.Fatalf("%d events in %d rows, want %d in %d", p.Events, len(p.Rows), with.Events, len(with.Rows))
		}
		for k, r := range p.Rows {
			wr := with.Rows[k]
			if wr == nil || r.Clicks != wr.Clicks || r.Users != wr.Users || r.TimeSpentMs != wr.TimeSpentMs || r.Samples != wr.Samples {
				t.Fatalf("key %v: %+v, with sets %+v", k, r, wr)
			}
			if r.UserHashes != nil {
				t.Fatalf("key %v carries %d user hashes", k, len(r.UserHashes))
			}
			if int64(len(wr.UserHashes)) != wr.Users {
				t.Fatalf("key %v with sets: %d hashes for %d users", k, len(wr.UserHashes), wr.Users)
			}
		}
	}
	a, err := with.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	b, err := without.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) >= len(a) {
		t.Errorf("the partial without sets encodes to %d bytes, with them %d", len(b), len(a))
	}
}
