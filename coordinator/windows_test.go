package coordinator

import (
	"math"
	"testing"
	"time"

	"github.com/dataco/clickstream/internal/lake"
)

func TestSplitWindows(t *testing.T) {
	at := func(s string) time.Time {
		t.Helper()
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		name     string
		from, to string
		window   time.Duration
		want     []string // "from/to" pairs, HH:MM
	}{
		{"aligned", "2026-11-27T00:00:00Z", "2026-11-27T03:00:00Z", time.Hour, []string{"00:00/01:00", "01:00/02:00", "02:00/03:00"}},
		{"ragged ends", "2026-11-27T00:30:00Z", "2026-11-27T02:15:00Z", time.Hour, []string{"00:30/01:00", "01:00/02:00", "02:00/02:15"}},
		{"inside one window", "2026-11-27T00:10:00Z", "2026-11-27T00:20:00Z", time.Hour, []string{"00:10/00:20"}},
		{"minutes", "2026-11-27T00:00:00Z", "2026-11-27T00:03:00Z", time.Minute, []string{"00:00/00:01", "00:01/00:02", "00:02/00:03"}},
		{"empty", "2026-11-27T01:00:00Z", "2026-11-27T01:00:00Z", time.Hour, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := SplitWindows(at(tt.from), at(tt.to), tt.window)
			if len(got) != len(tt.want) {
				t.Fatalf("got %d windows %v, want %v", len(got), got, tt.want)
			}
			for i, w := range got {
				if s := w[0].Format("15:04") + "/" + w[1].Format("15:04"); s != tt.want[i] {
					t.Fatalf("window %d = %s, want %s", i, s, tt.want[i])
				}
			}
		})
	}
}

func TestWindowOut(t *testing.T) {
	from := time.Date(2026, 11, 27, 1, 0, 0, 0, time.UTC)
	for _, base := range []string{"s3://b/out", "s3://b/out/"} {
		if got, want := WindowOut(base, from), "s3://b/out/window=20261127T010000Z"; got != want {
			t.Fatalf("WindowOut(%q) = %q, want %q", base, got, want)
		}
	}
}

func TestScheduleWatermark(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	m := func(source string, wm time.Time, committedAgo time.Duration) *lake.Manifest {
		return &lake.Manifest{Source: source, Seq: 1, Watermark: wm.UnixMilli(), Committed: now.Add(-committedAgo)}
	}
	noEvents := &lake.Manifest{Source: "garbage", Seq: 1, Watermark: math.MinInt64, Committed: now}
	tests := []struct {
		name string
		ms   []*lake.Manifest
		want time.Time
		ok   bool
	}{
		{"no sources", nil, time.Time{}, false},
		{"lowest active source", []*lake.Manifest{m("a", now.Add(-time.Minute), 0), m("b", now.Add(-3*time.Minute), time.Second)}, now.Add(-3 * time.Minute), true},
		{"idle source ignored", []*lake.Manifest{m("a", now.Add(-time.Minute), 0), m("b", now.Add(-time.Hour), time.Hour)}, now.Add(-time.Minute), true},
		{"all idle: wall clock", []*lake.Manifest{m("a", now.Add(-time.Hour), time.Hour)}, now, true},
		{"source without valid events ignored", []*lake.Manifest{m("a", now.Add(-time.Minute), 0), noEvents}, now.Add(-time.Minute), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := scheduleWatermark((&lake.Snapshot{Manifests: tt.ms}).Watermarks(), now, 2*time.Minute)
			if ok != tt.ok || !got.Equal(tt.want) {
				t.Fatalf("scheduleWatermark = %v, %v; want %v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

// TestTableWindowInputs: with a table, a window's input changes when a
// snapshot after the one it was run with appended a file overlapping the
// window or its look-ahead, and only then.
func TestTableWindowInputs(t *testing.T) {
	first := time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)
	window, ahead := time.Hour, 30*time.Minute
	at := func(d time.Duration) int64 { return first.Add(d).UnixMilli() }
	w := func(k int) time.Time { return first.Add(time.Duration(k) * window) }
	tbl := &lake.TableInputs{Seq: 12, Horizon: 3, Appends: []lake.TableAppend{
		{Seq: 5, Files: []lake.DataFile{{MinTs: at(10 * time.Minute), MaxTs: at(50 * time.Minute), Events: 3}}},           // window 0
		{Seq: 9, Files: []lake.DataFile{{MinTs: at(125 * time.Minute), MaxTs: at(170 * time.Minute), Events: 1}}},         // window 2, and 1's look-ahead
		{Seq: 11, Files: []lake.DataFile{{MinTs: at(4*time.Hour + 31*time.Minute), MaxTs: at(5 * time.Hour), Events: 1}}}, // window 4 only: past 3's look-ahead
	}}
	tbl.Files = []lake.DataFile{tbl.Appends[0].Files[0], tbl.Appends[1].Files[0], tbl.Appends[2].Files[0]}
	in := lakeView{files: func(yield func(lake.DataFile) bool) {
		for _, f := range tbl.Files {
			if !yield(f) {
				return
			}
		}
	}, table: tbl}.inputs(first, window, ahead, w(6))

	if input, events := in.at(w(0)); input != "table-seq=12" || events != 3 {
		t.Errorf("window 0: %q, %d events; want table-seq=12, 3", input, events)
	}
	for _, c := range []struct {
		window int
		ran    string
		want   bool
	}{
		{0, "table-seq=4", true}, {0, "table-seq=5", false}, {0, "table-seq=12", false},
		{1, "table-seq=8", true}, {1, "table-seq=9", false},
		{2, "table-seq=8", true}, {2, "table-seq=10", false},
		{3, "table-seq=1", false}, // nothing appended overlaps it
		{4, "table-seq=10", true},
		{0, "", true},                 // a failed run to retry
		{0, "files=1,events=3", true}, // told the other way
		{0, "table-seq=x", true},      // unreadable
	} {
		if got := in.changed(c.ran, w(c.window)); got != c.want {
			t.Errorf("window %d run with %q: changed = %v, want %v", c.window, c.ran, got, c.want)
		}
	}
}
