package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCompareRows(t *testing.T) {
	base := []Row{
		{URL: "/a", Country: "DE", Clicks: 3, UniqueUsers: 2, TotalTimeSpentS: 12.5, TimeSpentSamples: 2},
		{URL: "/b", Country: "FR", Clicks: 1, UniqueUsers: 1, TotalTimeSpentS: 0, TimeSpentSamples: 0},
		{URL: "/c", Country: "DE", Clicks: 7, UniqueUsers: 4, TotalTimeSpentS: 1234567.891, TimeSpentSamples: 5},
	}
	edit := func(f func(rows []Row) []Row) []Row {
		rows := append([]Row(nil), base...)
		return f(rows)
	}
	for _, tc := range []struct {
		name string
		got  []Row
		want rowDiff // counts only
	}{
		{"same", base, rowDiff{}},
		{"other order", []Row{base[2], base[0], base[1]}, rowDiff{}},
		{"float within tolerance", edit(func(r []Row) []Row { r[2].TotalTimeSpentS += 1e-6; return r }), rowDiff{}},
		{"float rounding of a small total", edit(func(r []Row) []Row { r[0].TotalTimeSpentS = 12.500000000001; return r }), rowDiff{}},
		{"float off", edit(func(r []Row) []Row { r[2].TotalTimeSpentS += 0.01; return r }), rowDiff{Different: 1}},
		{"clicks", edit(func(r []Row) []Row { r[0].Clicks++; return r }), rowDiff{Different: 1}},
		{"unique users", edit(func(r []Row) []Row { r[1].UniqueUsers = 2; return r }), rowDiff{Different: 1}},
		{"samples", edit(func(r []Row) []Row { r[2].TimeSpentSamples--; return r }), rowDiff{Different: 1}},
		{"missing", base[:2], rowDiff{Missing: 1}},
		{"extra", append(append([]Row(nil), base...), Row{URL: "/d", Country: "US", Clicks: 1}), rowDiff{Extra: 1}},
		{"country is part of the key", edit(func(r []Row) []Row { r[1].Country = "DE"; return r }), rowDiff{Missing: 1, Extra: 1}},
		{"duplicate key", append(append([]Row(nil), base...), base[0]), rowDiff{Duplicate: 1}},
		{"none", nil, rowDiff{Missing: 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := compareRows(base, tc.got)
			if d.Missing != tc.want.Missing || d.Extra != tc.want.Extra || d.Different != tc.want.Different || d.Duplicate != tc.want.Duplicate {
				t.Fatalf("compareRows = %s, want %+v", d, tc.want)
			}
			if d.Equal() != tc.want.Equal() {
				t.Fatalf("Equal() = %v, want %v", d.Equal(), tc.want.Equal())
			}
			if !d.Equal() && len(d.Examples) == 0 {
				t.Fatal("a difference without an example")
			}
		})
	}
}

func TestReadResult(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// As clickstream writes a result: _SUCCESS names the run's files, whose
	// rows carry the window and the average too.
	write("_SUCCESS", `{"version":1,"files":["_runs/r1/part-00000.ndjson","_runs/r1/part-00001.ndjson"],"rows":3}`)
	write("_runs/r1/part-00000.ndjson", `{"window_start":"2026-01-05T00:00:00Z","window_end":"2026-01-05T16:00:00Z","url":"/a","country":"DE","clicks":3,"unique_users":2,"total_time_spent_s":12.5,"time_spent_samples":2,"avg_time_spent_s":6.25}
{"window_start":"2026-01-05T00:00:00Z","window_end":"2026-01-05T16:00:00Z","url":"/b","country":"FR","clicks":1,"unique_users":1,"total_time_spent_s":0,"time_spent_samples":0,"avg_time_spent_s":null}
`)
	write("_runs/r1/part-00001.ndjson", `{"url":"/c","country":"DE","clicks":7,"unique_users":4,"total_time_spent_s":1.5,"time_spent_samples":5}`+"\n")
	rows, err := readResult(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []Row{
		{URL: "/a", Country: "DE", Clicks: 3, UniqueUsers: 2, TotalTimeSpentS: 12.5, TimeSpentSamples: 2},
		{URL: "/b", Country: "FR", Clicks: 1, UniqueUsers: 1},
		{URL: "/c", Country: "DE", Clicks: 7, UniqueUsers: 4, TotalTimeSpentS: 1.5, TimeSpentSamples: 5},
	}
	if d := compareRows(want, rows); !d.Equal() || len(rows) != 3 {
		t.Fatalf("readResult: %d rows, %s", len(rows), d)
	}

	write("bad.ndjson", "{\"url\":\"/a\"}\nnot json\n")
	if _, err := readRows(filepath.Join(dir, "bad.ndjson")); err == nil || !strings.Contains(err.Error(), "bad.ndjson:2") {
		t.Fatalf("readRows of a bad line: %v, want an error naming line 2", err)
	}
}
