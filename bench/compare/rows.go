package main

import (
	"bufio"
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
)

// Row is one result row as every contender writes it: the aggregate's key
// and values (clickstream's schema.Row without the window and the average,
// which follow from them).
type Row struct {
	URL              string  `json:"url"`
	Country          string  `json:"country"`
	Clicks           int64   `json:"clicks"`
	UniqueUsers      int64   `json:"unique_users"`
	TotalTimeSpentS  float64 `json:"total_time_spent_s"`
	TimeSpentSamples int64   `json:"time_spent_samples"`
}

func (r Row) key() string { return r.URL + "\x00" + r.Country }

// readRows reads NDJSON rows from files (extra fields are ignored).
func readRows(files ...string) ([]Row, error) {
	var rows []Row
	for _, path := range files {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<26)
		for n := 1; sc.Scan(); n++ {
			var r Row
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				f.Close()
				return nil, fmt.Errorf("%s:%d: %w", path, n, err)
			}
			rows = append(rows, r)
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	return rows, nil
}

// success is the part of a result's _SUCCESS file that names its rows.
type success struct {
	Files []string `json:"files"`
}

// readResult reads the rows of a committed clickstream result folder.
func readResult(dir string) ([]Row, error) {
	data, err := os.ReadFile(filepath.Join(dir, "_SUCCESS"))
	if err != nil {
		return nil, err
	}
	var s success
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("%s/_SUCCESS: %w", dir, err)
	}
	files := make([]string, len(s.Files))
	for i, f := range s.Files {
		files[i] = filepath.Join(dir, f)
	}
	return readRows(files...)
}

// FloatTolerance is the relative difference allowed between two time-spent
// totals (engines sum milliseconds in different orders and types).
const FloatTolerance = 1e-9

// rowDiff is how two results differ.
type rowDiff struct {
	Missing, Extra, Different, Duplicate int
	Examples                             []string // a few, for the log
}

func (d rowDiff) Equal() bool { return d.Missing+d.Extra+d.Different+d.Duplicate == 0 }

func (d rowDiff) String() string {
	if d.Equal() {
		return "equal"
	}
	return fmt.Sprintf("%d missing, %d extra, %d different, %d duplicate keys; e.g. %v", d.Missing, d.Extra, d.Different, d.Duplicate, d.Examples)
}

// compareRows compares got with want by key: the same keys, equal counts,
// and time-spent totals within FloatTolerance (relative, or absolute below
// one second).
func compareRows(want, got []Row) rowDiff {
	var d rowDiff
	example := func(format string, a ...any) {
		if len(d.Examples) < 3 {
			d.Examples = append(d.Examples, fmt.Sprintf(format, a...))
		}
	}
	index := func(rows []Row) map[string]Row {
		m := make(map[string]Row, len(rows))
		for _, r := range rows {
			if _, dup := m[r.key()]; dup {
				d.Duplicate++
				example("duplicate key %q/%q", r.URL, r.Country)
			}
			m[r.key()] = r
		}
		return m
	}
	w, g := index(want), index(got)
	keys := make([]string, 0, len(w))
	for k := range w {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		a := w[k]
		b, ok := g[k]
		if !ok {
			d.Missing++
			example("missing %q/%q", a.URL, a.Country)
			continue
		}
		if a.Clicks != b.Clicks || a.UniqueUsers != b.UniqueUsers || a.TimeSpentSamples != b.TimeSpentSamples ||
			!closeEnough(a.TotalTimeSpentS, b.TotalTimeSpentS) {
			d.Different++
			example("%q/%q: want %+v, got %+v", a.URL, a.Country, a, b)
		}
	}
	extra := make([]Row, 0)
	for k, r := range g {
		if _, ok := w[k]; !ok {
			extra = append(extra, r)
		}
	}
	slices.SortFunc(extra, func(a, b Row) int { return cmp.Compare(a.key(), b.key()) })
	for _, r := range extra {
		d.Extra++
		example("extra %q/%q", r.URL, r.Country)
	}
	return d
}

func closeEnough(a, b float64) bool {
	return math.Abs(a-b) <= FloatTolerance*max(1, math.Abs(a), math.Abs(b))
}
