package schema

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func ptr(f float64) *float64 { return &f }

func tptr(t time.Time) *time.Time { return &t }

// testRows covers the forms a field can take: quoting, non-ASCII, null
// and zero averages, sub-second and non-UTC times, extreme numbers.
func testRows() []Row {
	from := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	berlin := time.FixedZone("CET", 3600)
	return []Row{
		{WindowStart: from, WindowEnd: from.Add(time.Hour), URL: "/home", Country: "US",
			Clicks: 3, UniqueUsers: 2, TotalTimeSpentS: 2.001, TimeSpentSamples: 3, AvgTimeSpentS: ptr(0.667),
			Revision: 2, ComputedAt: from.Add(2*time.Hour + 123*time.Millisecond), Watermark: tptr(from.Add(90 * time.Minute).In(berlin)),
			EventsSnapshot: 8_123_456_789_012_345_678, Final: true},
		{WindowStart: from, WindowEnd: from.Add(time.Hour), URL: `/search?q="shoes",red`, Country: "",
			Clicks: 1, UniqueUsers: 1, BotClicks: 7, Grain: GrainDay, Approximate: true},
		{WindowStart: from.Add(1500 * time.Millisecond).In(berlin), WindowEnd: from.Add(time.Hour + time.Nanosecond),
			URL: "/café/ü\nline two", Country: "de", Clicks: math.MaxInt64, UniqueUsers: 1,
			TotalTimeSpentS: 1e21, TimeSpentSamples: 1, AvgTimeSpentS: ptr(1e21)},
		{WindowStart: from, WindowEnd: from.Add(time.Hour), URL: " padded ", Country: "FR",
			Clicks: 0, BotClicks: 12, TotalTimeSpentS: 1e-7, TimeSpentSamples: 1, AvgTimeSpentS: ptr(0)},
	}
}

// Every field of Row has its column, in order, named by its JSON key, and
// the column's Elasticsearch type fits the field's Go type.
func TestColumnsFollowRow(t *testing.T) {
	esTypes := map[reflect.Type]string{
		reflect.TypeFor[time.Time]():  "date",
		reflect.TypeFor[string]():     "keyword",
		reflect.TypeFor[int64]():      "long",
		reflect.TypeFor[float64]():    "double",
		reflect.TypeFor[*float64]():   "double",
		reflect.TypeFor[*time.Time](): "date",
		reflect.TypeFor[bool]():       "boolean",
	}
	fields := reflect.VisibleFields(reflect.TypeFor[Row]())
	if len(fields) != len(Columns) {
		t.Fatalf("Row has %d fields, Columns %d", len(fields), len(Columns))
	}
	r := testRows()[0]
	for i, f := range fields {
		c := Columns[i]
		if tag := strings.Split(f.Tag.Get("json"), ",")[0]; tag != c.Name {
			t.Errorf("field %d (%s) has JSON key %q, column %q", i, f.Name, tag, c.Name)
		}
		if want, ok := esTypes[f.Type]; !ok || c.ESType != want {
			t.Errorf("column %s: Elasticsearch type %q for a %s, want %q", c.Name, c.ESType, f.Type, want)
		}
		if v := c.Value(&r); reflect.TypeOf(v) != f.Type || !reflect.DeepEqual(v, reflect.ValueOf(r).Field(i).Interface()) {
			t.Errorf("column %s: Value = %#v, want field %s", c.Name, v, f.Name)
		}
	}
	if h := Header(); len(slices.Compact(slices.Sorted(slices.Values(h)))) != len(h) {
		t.Errorf("duplicate column names: %v", h)
	}
}

// The CSV header and the keys of an NDJSON object are the columns, in
// order.
func TestFilesFollowColumns(t *testing.T) {
	var names []string
	for _, c := range Columns {
		names = append(names, c.Name)
	}
	if !slices.Equal(Header(), names) {
		t.Errorf("Header() = %v, want %v", Header(), names)
	}
	var buf bytes.Buffer
	if err := WriteCSV(&buf, nil); err != nil {
		t.Fatal(err)
	}
	if got, want := buf.String(), strings.Join(names, ",")+"\n"; got != want {
		t.Errorf("CSV of no rows = %q, want the header %q", got, want)
	}

	buf.Reset()
	if err := WriteNDJSON(&buf, testRows()[:1]); err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(&buf)
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("NDJSON line starts with %v, %v", tok, err)
	}
	var keys []string
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, key.(string))
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(keys, names) {
		t.Errorf("NDJSON keys = %v, want %v", keys, names)
	}
}

func TestCSVRoundTrip(t *testing.T) {
	rows := testRows()
	var buf bytes.Buffer
	if err := WriteCSV(&buf, rows); err != nil {
		t.Fatal(err)
	}
	written := bytes.Clone(buf.Bytes())
	got, err := ReadCSV(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(rows) {
		t.Fatalf("read %d rows, want %d", len(got), len(rows))
	}
	for i := range rows {
		if !Equal(got[i], rows[i]) {
			t.Errorf("row %d: read %+v, wrote %+v", i, got[i], rows[i])
		}
		if got[i].WindowStart.Location() != time.UTC || got[i].WindowEnd.Location() != time.UTC {
			t.Errorf("row %d: times not in UTC: %v %v", i, got[i].WindowStart, got[i].WindowEnd)
		}
	}
	// What is read writes the same bytes again.
	buf.Reset()
	if err := WriteCSV(&buf, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), written) {
		t.Errorf("rewritten CSV differs:\n%s\nwant\n%s", buf.Bytes(), written)
	}
	// A null average is an empty field, a zero one is "0".
	recs, err := csv.NewReader(bytes.NewReader(written)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	avg, wm, final := slices.Index(Header(), "avg_time_spent_s"), slices.Index(Header(), "watermark"), slices.Index(Header(), "final")
	if recs[2][avg] != "" || recs[4][avg] != "0" || recs[3][6] != "1000000000000000000000" {
		t.Errorf("records: %q", recs)
	}
	// A null watermark is an empty field; a known one is UTC.
	if recs[1][wm] != "2026-11-27T01:30:00Z" || recs[2][wm] != "" || recs[1][final] != "true" || recs[2][final] != "false" {
		t.Errorf("records: %q", recs)
	}
}

func TestNDJSONRoundTrip(t *testing.T) {
	rows := testRows()
	var buf bytes.Buffer
	if err := WriteNDJSON(&buf, rows); err != nil {
		t.Fatal(err)
	}
	got, err := ReadNDJSON(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(rows) {
		t.Fatalf("read %d rows, want %d", len(got), len(rows))
	}
	for i := range rows {
		if !Equal(got[i], rows[i]) {
			t.Errorf("row %d: read %+v, wrote %+v", i, got[i], rows[i])
		}
	}
}

func TestReadCSVErrors(t *testing.T) {
	header := strings.Join(Header(), ",") + "\n"
	row := "2026-11-27T00:00:00Z,2026-11-27T01:00:00Z,/a,US,1,1,0,0,,0,window,false,3,2026-11-27T02:00:00Z,,0,false\n"
	if rows, err := ReadCSV(strings.NewReader("")); err != nil || rows != nil {
		t.Errorf("empty input: %v, %v", rows, err)
	}
	if rows, err := ReadCSV(strings.NewReader(header + row)); err != nil || len(rows) != 1 {
		t.Fatalf("a valid row: %v, %v", rows, err)
	}
	for name, in := range map[string]string{
		"other header":     strings.Replace(header, "clicks", "hits", 1) + row,
		"extra column":     strings.TrimSuffix(header, "\n") + ",bonus\n",
		"short record":     "window_start,window_end\n2026-11-27T00:00:00Z\n",
		"missing field":    header + strings.TrimSuffix(row, ",false\n") + "\n",
		"bad time":         header + strings.Replace(row, "2026-11-27T00:00:00Z", "yesterday", 1),
		"bad int":          header + strings.Replace(row, ",1,1,", ",1,x,", 1),
		"bad float":        header + strings.Replace(row, ",0,0,", ",0.0.1,0,", 1),
		"bad average":      header + strings.Replace(row, ",0,0,,", ",0,0,n/a,", 1),
		"bad bool":         header + strings.Replace(row, ",false", ",maybe", 1),
		"bad watermark":    header + strings.Replace(row, "Z,,0,false", "Z,later,0,false", 1),
		"bad bot clicks":   header + strings.Replace(row, ",,0,window,", ",,-,window,", 1),
		"int out of range": header + strings.Replace(row, ",1,1,", ",1,99999999999999999999,", 1),
	} {
		if rows, err := ReadCSV(strings.NewReader(in)); err == nil {
			t.Errorf("%s: no error, rows %+v", name, rows)
		}
	}
}

func TestEqual(t *testing.T) {
	a := testRows()[0]
	b := a
	b.WindowStart = a.WindowStart.In(time.FixedZone("X", 7200))
	b.AvgTimeSpentS = ptr(*a.AvgTimeSpentS)
	if !Equal(a, b) {
		t.Errorf("the same instants and values: not equal")
	}
	for name, change := range map[string]func(*Row){
		"window":         func(r *Row) { r.WindowEnd = r.WindowEnd.Add(time.Millisecond) },
		"url":            func(r *Row) { r.URL += "/" },
		"clicks":         func(r *Row) { r.Clicks++ },
		"total":          func(r *Row) { r.TotalTimeSpentS += 1e-9 },
		"null average":   func(r *Row) { r.AvgTimeSpentS = nil },
		"other average":  func(r *Row) { r.AvgTimeSpentS = ptr(1) },
		"revision":       func(r *Row) { r.Revision++ },
		"computed at":    func(r *Row) { r.ComputedAt = r.ComputedAt.Add(time.Second) },
		"null watermark": func(r *Row) { r.Watermark = nil },
		"snapshot":       func(r *Row) { r.EventsSnapshot = 1 },
		"final":          func(r *Row) { r.Final = false },
	} {
		c := a
		change(&c)
		if Equal(a, c) || Equal(c, a) {
			t.Errorf("%s changed: still equal", name)
		}
		provenance := slices.Contains([]string{"revision", "computed at", "null watermark", "snapshot", "final"}, name)
		if EqualMetrics(a, c) != provenance {
			t.Errorf("%s changed: EqualMetrics = %v", name, !provenance)
		}
	}
}

// A CSV result written before the provenance columns existed (its header
// a prefix of Header) reads with their zero values: revision 0, no
// watermark, not final. Columns are only ever appended.
func TestReadCSVOlderHeader(t *testing.T) {
	old := "window_start,window_end,url,country,clicks,unique_users,total_time_spent_s,time_spent_samples,avg_time_spent_s\n" +
		"2026-11-27T00:00:00Z,2026-11-27T01:00:00Z,/a,US,3,2,1.5,3,0.5\n" +
		"2026-11-27T00:00:00Z,2026-11-27T01:00:00Z,/b,,1,1,0,0,\n"
	rows, err := ReadCSV(strings.NewReader(old))
	if err != nil {
		t.Fatal(err)
	}
	from := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	want := []Row{
		{WindowStart: from, WindowEnd: from.Add(time.Hour), URL: "/a", Country: "US", Clicks: 3, UniqueUsers: 2,
			TotalTimeSpentS: 1.5, TimeSpentSamples: 3, AvgTimeSpentS: ptr(0.5)},
		{WindowStart: from, WindowEnd: from.Add(time.Hour), URL: "/b", Clicks: 1, UniqueUsers: 1},
	}
	if !slices.EqualFunc(rows, want, Equal) {
		t.Errorf("read %+v, want %+v", rows, want)
	}
	for _, r := range rows {
		if r.Revision != 0 || !r.ComputedAt.IsZero() || r.Watermark != nil || r.EventsSnapshot != 0 || r.Final {
			t.Errorf("missing columns not zero: %+v", r)
		}
	}
	// The oldest prefix that still names a window reads too.
	if rows, err := ReadCSV(strings.NewReader("window_start\n2026-11-27T00:00:00Z\n")); err != nil || len(rows) != 1 || !rows[0].WindowStart.Equal(from) {
		t.Errorf("one column: %+v, %v", rows, err)
	}
	// A record with the old header's field count but under the new header
	// is still an error: every record has its header's fields.
	full := strings.Join(Header(), ",") + "\n" + strings.SplitN(old, "\n", 3)[1] + "\n"
	if rows, err := ReadCSV(strings.NewReader(full)); err == nil {
		t.Errorf("short record under the full header: no error, %+v", rows)
	}
}

// TestMetrics: Metrics clears exactly the provenance columns.
func TestMetrics(t *testing.T) {
	r := testRows()[0]
	m := r.Metrics()
	var zero Row
	for _, c := range Columns {
		got, orig, z := fmt.Sprint(c.Value(&m)), fmt.Sprint(c.Value(&r)), fmt.Sprint(c.Value(&zero))
		switch {
		case c.Provenance && got != z:
			t.Errorf("%s: %s after Metrics, want the zero value %s", c.Name, got, z)
		case !c.Provenance && got != orig:
			t.Errorf("%s: %s after Metrics, want %s", c.Name, got, orig)
		}
	}
	if !EqualMetrics(r, m) || Equal(r, m) {
		t.Errorf("Metrics(r) should equal r in metrics only")
	}
}
