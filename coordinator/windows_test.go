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
			got, ok := scheduleWatermark(&lake.Snapshot{Manifests: tt.ms}, now, 2*time.Minute)
			if ok != tt.ok || !got.Equal(tt.want) {
				t.Fatalf("scheduleWatermark = %v, %v; want %v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}
