package aggregate

import (
	"bytes"
	"encoding/csv"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dataco/clickstream/internal/event"
	"github.com/dataco/clickstream/internal/schema"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

func goldenRows() []schema.Row {
	w := testWindow()
	ms := time.Millisecond
	p := Compute([]event.Event{
		ev("u1", at(0), "/home", "us"),
		ev("u1", at(1234*ms), "/cart,checkout", "us"),
		ev("u1", at(2234*ms), "/home", "us"),
		ev("u2", at(0), "/home", "us"),
		ev("u2", at(1*ms), "/home", "us"),
		ev("u2", at(2*ms), "/home", "us"),
		ev("u2", at(1002*ms), `/search?q="shoes"`, "unknown"),
		ev("u3", at(time.Minute), "/café/ü", "de"),
		ev("u3", at(time.Minute+1000*ms), "/café/ü", "de"),
		ev("u3", at(time.Minute+2000*ms), "/café/ü", "de"),
		ev("u3", at(time.Minute+2001*ms), "/home", "de"),
	}, w, 0)
	return p.Result(w)
}

func TestWriteGolden(t *testing.T) {
	rows := goldenRows()
	// As committed (results.Commit): every row says how final its result is.
	computed := time.Date(2026, 11, 27, 11, 36, 0, 123_000_000, time.UTC)
	wm := time.Date(2026, 11, 27, 11, 35, 0, 0, time.UTC)
	for i := range rows {
		rows[i].Revision, rows[i].ComputedAt, rows[i].Watermark, rows[i].EventsSnapshot, rows[i].Final = 2, computed, &wm, 0, true
	}
	for _, tt := range []struct {
		file  string
		write func(*bytes.Buffer, []schema.Row) error
	}{
		{"result.ndjson.golden", func(b *bytes.Buffer, r []schema.Row) error { return schema.WriteNDJSON(b, r) }},
		{"result.csv.golden", func(b *bytes.Buffer, r []schema.Row) error { return schema.WriteCSV(b, r) }},
	} {
		t.Run(tt.file, func(t *testing.T) {
			var buf bytes.Buffer
			if err := tt.write(&buf, rows); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", tt.file)
			if *update {
				if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(buf.Bytes(), want) {
				t.Fatalf("output differs from %s (run with -update if intended):\n got:\n%s\nwant:\n%s", path, buf.Bytes(), want)
			}
		})
	}
}

func TestReadNDJSONRoundTrip(t *testing.T) {
	rows := goldenRows()
	var buf bytes.Buffer
	if err := schema.WriteNDJSON(&buf, rows); err != nil {
		t.Fatal(err)
	}
	got, err := schema.ReadNDJSON(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(rows) {
		t.Fatalf("read %d rows, want %d", len(got), len(rows))
	}
	for i := range rows {
		g, w := got[i], rows[i]
		if !g.WindowStart.Equal(w.WindowStart) || !g.WindowEnd.Equal(w.WindowEnd) {
			t.Errorf("row %d: window %v..%v", i, g.WindowStart, g.WindowEnd)
		}
		if (g.AvgTimeSpentS == nil) != (w.AvgTimeSpentS == nil) || (g.AvgTimeSpentS != nil && *g.AvgTimeSpentS != *w.AvgTimeSpentS) {
			t.Errorf("row %d: avg differs", i)
		}
		g.WindowStart, g.WindowEnd, g.AvgTimeSpentS = w.WindowStart, w.WindowEnd, w.AvgTimeSpentS
		if g != w {
			t.Errorf("row %d: got %+v, want %+v", i, g, w)
		}
	}
	if _, err := schema.ReadNDJSON(strings.NewReader(`{"url":"/a"}` + "\n{bad")); err == nil {
		t.Error("ReadNDJSON accepted malformed input")
	}
	if rows, err := schema.ReadNDJSON(strings.NewReader("")); err != nil || len(rows) != 0 {
		t.Errorf("empty input: %v, %d rows", err, len(rows))
	}
}

func TestWriteCSVParses(t *testing.T) {
	var buf bytes.Buffer
	if err := schema.WriteCSV(&buf, goldenRows()); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != len(goldenRows())+1 || strings.Join(recs[0], ",") != strings.Join(schema.Header(), ",") {
		t.Fatalf("csv: %d records, header %v", len(recs), recs[0])
	}
	for _, r := range recs[1:] {
		if r[7] == "0" && r[8] != "" {
			t.Errorf("row %v: no samples but an average", r)
		}
	}
}
