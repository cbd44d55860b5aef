package schema

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"testing"
	"time"
)

// referenceNDJSON writes rows through encoding/json's Encoder, as
// WriteNDJSON did before it appended fields itself: WriteNDJSON must
// write the same bytes.
func referenceNDJSON(w io.Writer, rows []Row) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for i := range rows {
		r := rows[i]
		r.WindowStart, r.WindowEnd, r.ComputedAt = r.WindowStart.UTC(), r.WindowEnd.UTC(), r.ComputedAt.UTC()
		if r.Watermark != nil {
			wm := r.Watermark.UTC()
			r.Watermark = &wm
		}
		if err := enc.Encode(&r); err != nil {
			return err
		}
	}
	return bw.Flush()
}

func checkSameNDJSON(t *testing.T, rows []Row) {
	t.Helper()
	var got, want bytes.Buffer
	gerr := WriteNDJSON(&got, rows)
	werr := referenceNDJSON(&want, rows)
	if (gerr != nil) != (werr != nil) {
		t.Fatalf("WriteNDJSON error %v, encoding/json's %v", gerr, werr)
	}
	if werr == nil && !bytes.Equal(got.Bytes(), want.Bytes()) {
		t.Fatalf("WriteNDJSON wrote\n%s\nencoding/json writes\n%s", got.Bytes(), want.Bytes())
	}
	appended, aerr := AppendNDJSON([]byte("x"), rows)
	if (aerr != nil) != (werr != nil) || werr == nil && !bytes.Equal(appended[1:], want.Bytes()) {
		t.Fatalf("AppendNDJSON appended %s (%v), encoding/json writes %s (%v)", appended, aerr, want.Bytes(), werr)
	}
}

// TestWriteNDJSONIsEncodingJSON: the rows of the tests, and rows with
// every kind of string, float and time that needs care, are written byte
// for byte as encoding/json writes them.
func TestWriteNDJSONIsEncodingJSON(t *testing.T) {
	checkSameNDJSON(t, testRows())
	base := testRows()[0]
	paris := time.FixedZone("Paris", 3600)
	for _, s := range []string{"", "plain/path?q=1&b=<2>", "quote \" backslash \\ slash /", "\x00\x01\x1f\x7f tab\t nl\n cr\r bs\b ff\f",
		"é ü 中文 🙂", "bad \xff utf-8 \xc3", "sep \u2028 \u2029 end", "\xe2\x80"} {
		r := base
		r.URL, r.Country, r.Grain = s, s, s
		checkSameNDJSON(t, []Row{r})
	}
	for _, f := range []float64{0, math.Copysign(0, -1), 1, -1.5, 0.1, 1e-6, 9.99e-7, 1e-7, 123456789.123, 1e20, 1e21, 1.5e300, 5e-324, math.MaxFloat64, -2.5e-8} {
		r := base
		r.TotalTimeSpentS, r.AvgTimeSpentS = f, &f
		checkSameNDJSON(t, []Row{r})
	}
	for _, tm := range []time.Time{time.Date(2026, 1, 5, 0, 0, 0, 0, paris), time.Date(2026, 1, 5, 10, 0, 0, 123456789, time.UTC), time.Date(2026, 1, 5, 10, 0, 0, 120000000, time.UTC), {}} {
		r := base
		r.WindowStart, r.ComputedAt, r.Watermark = tm, tm, &tm
		checkSameNDJSON(t, []Row{r})
	}
	r := base
	r.AvgTimeSpentS, r.Watermark, r.Approximate, r.Final = nil, nil, true, true
	checkSameNDJSON(t, []Row{r})
	for _, bad := range []Row{{TotalTimeSpentS: math.NaN()}, {TotalTimeSpentS: math.Inf(1)}, {WindowStart: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}} {
		if err := WriteNDJSON(io.Discard, []Row{bad}); err == nil {
			t.Errorf("row %+v written", bad)
		}
	}
}

// FuzzAppendJSON: whatever the strings, numbers and times of a row,
// WriteNDJSON writes what encoding/json writes, or fails where it fails.
func FuzzAppendJSON(f *testing.F) {
	f.Add("https://example.com/a", "FR", "window", int64(3), 12.5, int64(1767571200000000000), true, false)
	f.Add("\x00\"\\\u2028\xff", "", "day", int64(-1), 1e-9, int64(-62135596800000000000/1000), false, true)
	f.Add("é", "中", "", int64(math.MaxInt64), 1e21, int64(math.MaxInt64), true, true)
	f.Fuzz(func(t *testing.T, url, country, grain string, n int64, x float64, nanos int64, haveAvg, haveWM bool) {
		tm := time.Unix(0, nanos)
		r := Row{WindowStart: tm, WindowEnd: tm.Add(time.Hour), URL: url, Country: country, Clicks: n, UniqueUsers: -n,
			TotalTimeSpentS: x, TimeSpentSamples: n / 3, BotClicks: n, Grain: grain, Approximate: haveAvg,
			Revision: n, ComputedAt: tm, EventsSnapshot: n, Final: haveWM}
		if haveAvg {
			r.AvgTimeSpentS = &x
		}
		if haveWM {
			r.Watermark = &tm
		}
		checkSameNDJSON(t, []Row{r, r})
	})
}

// benchRows are n result rows as a job writes them.
func benchRows(n int) []Row {
	now := time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)
	rows := make([]Row, n)
	for i := range rows {
		avg := float64(i%977) / 7
		rows[i] = Row{WindowStart: now, WindowEnd: now.Add(time.Hour), URL: fmt.Sprintf("https://shop.example.com/products/%d", i%2000),
			Country: []string{"US", "FR", "DE", "BR", "IN"}[i%5], Clicks: int64(i%100 + 1), UniqueUsers: int64(i%50 + 1),
			TotalTimeSpentS: avg * 3, TimeSpentSamples: 3, AvgTimeSpentS: &avg, Grain: GrainWindow, Revision: 1, ComputedAt: now, Final: true}
	}
	return rows
}

// BenchmarkWriteNDJSON: a result's rows written by WriteNDJSON against
// encoding/json's reflection, the reason WriteNDJSON appends the fields
// itself.
func BenchmarkWriteNDJSON(b *testing.B) {
	rows := benchRows(45_000)
	for _, c := range []struct {
		name  string
		write func(io.Writer, []Row) error
	}{
		{"append", WriteNDJSON},
		{"encoding-json", referenceNDJSON},
		// Into memory, as a result file is made: a buffer growing by
		// doubling, and AppendNDJSON (what results.Commit does).
		{"buffer", func(_ io.Writer, rows []Row) error { var b bytes.Buffer; return WriteNDJSON(&b, rows) }},
		{"append-memory", func(_ io.Writer, rows []Row) error {
			_, err := AppendNDJSON(nil, rows)
			return err
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := c.write(io.Discard, rows); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(rows)), "ns/row")
		})
	}
}
