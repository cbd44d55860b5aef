package aggregate

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/dataco/clickstream/internal/event"
	"github.com/dataco/clickstream/internal/lake"
)

// want is the expected aggregate of one key.
type want struct {
	clicks  int64
	users   []string
	ms      int64
	samples int64
	bots    int64
}

func TestComputeSemantics(t *testing.T) {
	w := testWindow()
	to := w.To.Sub(w.From)
	const min = time.Minute
	tests := []struct {
		name    string
		events  []event.Event
		timeout time.Duration
		want    map[Key]want
	}{
		{
			name: "ties order by url then country",
			events: []event.Event{
				ev("u", at(0), "/b", "us"),
				ev("u", at(0), "/a", "us"),
				ev("u", at(min), "/c", "us"),
			},
			want: map[Key]want{
				{"/a", "us"}: {clicks: 1, users: []string{"u"}, ms: 0, samples: 1},
				{"/b", "us"}: {clicks: 1, users: []string{"u"}, ms: 60000, samples: 1},
				{"/c", "us"}: {clicks: 1, users: []string{"u"}},
			},
		},
		{
			name: "ties on url order by country",
			events: []event.Event{
				ev("u", at(0), "/a", "us"),
				ev("u", at(0), "/a", "de"),
				ev("u", at(2*time.Second), "/b", "us"),
			},
			want: map[Key]want{
				{"/a", "de"}: {clicks: 1, users: []string{"u"}, ms: 0, samples: 1},
				{"/a", "us"}: {clicks: 1, users: []string{"u"}, ms: 2000, samples: 1},
				{"/b", "us"}: {clicks: 1, users: []string{"u"}},
			},
		},
		{
			name: "gap exactly at the timeout is an exit",
			events: []event.Event{
				ev("u", at(0), "/a", "us"),
				ev("u", at(30*min), "/b", "us"),
			},
			want: map[Key]want{
				{"/a", "us"}: {clicks: 1, users: []string{"u"}},
				{"/b", "us"}: {clicks: 1, users: []string{"u"}},
			},
		},
		{
			name: "gap 1 ms under the timeout is a sample",
			events: []event.Event{
				ev("u", at(0), "/a", "us"),
				ev("u", at(30*min-time.Millisecond), "/b", "us"),
			},
			want: map[Key]want{
				{"/a", "us"}: {clicks: 1, users: []string{"u"}, ms: 30*60000 - 1, samples: 1},
				{"/b", "us"}: {clicks: 1, users: []string{"u"}},
			},
		},
		{
			name:    "custom timeout",
			timeout: 10 * time.Second,
			events: []event.Event{
				ev("u", at(0), "/a", "us"),
				ev("u", at(10*time.Second), "/a", "us"),
				ev("u", at(19*time.Second), "/a", "us"),
			},
			want: map[Key]want{
				{"/a", "us"}: {clicks: 3, users: []string{"u"}, ms: 9000, samples: 1},
			},
		},
		{
			name: "look-ahead across to",
			events: []event.Event{
				ev("u", at(to-10*time.Second), "/a", "us"),
				ev("u", at(to+5*time.Second), "/late", "us"),
				ev("u", at(to+6*time.Second), "/late", "us"),
			},
			want: map[Key]want{
				{"/a", "us"}: {clicks: 1, users: []string{"u"}, ms: 15000, samples: 1},
			},
		},
		{
			name: "event exactly at to is look-ahead, exactly at from counts",
			events: []event.Event{
				ev("u", at(0), "/first", "us"),
				ev("v", at(to-time.Millisecond), "/a", "us"),
				ev("v", at(to), "/b", "us"),
			},
			want: map[Key]want{
				{"/first", "us"}: {clicks: 1, users: []string{"u"}},
				{"/a", "us"}:     {clicks: 1, users: []string{"v"}, ms: 1, samples: 1},
			},
		},
		{
			name: "events before from are ignored",
			events: []event.Event{
				ev("u", at(-time.Millisecond), "/before", "us"),
				ev("u", at(0), "/a", "us"),
				ev("v", at(-10*min), "/before", "us"),
			},
			want: map[Key]want{
				{"/a", "us"}: {clicks: 1, users: []string{"u"}},
			},
		},
		{
			name: "out-of-order input",
			events: []event.Event{
				ev("u", at(3*time.Second), "/c", "us"),
				ev("v", at(5*time.Second), "/a", "us"),
				ev("u", at(1*time.Second), "/a", "us"),
				ev("v", at(1*time.Second), "/b", "us"),
				ev("u", at(2*time.Second), "/b", "us"),
			},
			want: map[Key]want{
				{"/a", "us"}: {clicks: 2, users: []string{"u", "v"}, ms: 1000, samples: 1},
				{"/b", "us"}: {clicks: 2, users: []string{"u", "v"}, ms: 1000 + 4000, samples: 2},
				{"/c", "us"}: {clicks: 1, users: []string{"u"}},
			},
		},
		{
			name: "unknown country is a normal key",
			events: []event.Event{
				ev("u", at(0), "/a", event.UnknownCountry),
				ev("u", at(time.Second), "/a", "us"),
			},
			want: map[Key]want{
				{"/a", "unknown"}: {clicks: 1, users: []string{"u"}, ms: 1000, samples: 1},
				{"/a", "us"}:      {clicks: 1, users: []string{"u"}},
			},
		},
		{
			name: "integer-looking user ids are distinct strings",
			events: []event.Event{
				ev("123", at(0), "/a", "us"),
				ev("0123", at(0), "/a", "us"),
				ev("123", at(time.Second), "/a", "us"),
				ev("42", at(0), "/a", "us"),
			},
			want: map[Key]want{
				{"/a", "us"}: {clicks: 4, users: []string{"123", "0123", "42"}, ms: 1000, samples: 1},
			},
		},
		{
			name:   "single event user is an exit",
			events: []event.Event{ev("solo", at(min), "/a", "us")},
			want: map[Key]want{
				{"/a", "us"}: {clicks: 1, users: []string{"solo"}},
			},
		},
		{
			name: "distinct users per key are exact",
			events: []event.Event{
				ev("a", at(0), "/x", "us"), ev("a", at(time.Millisecond), "/x", "us"), ev("a", at(2*time.Millisecond), "/x", "de"),
				ev("b", at(0), "/x", "us"), ev("c", at(0), "/y", "us"),
			},
			want: map[Key]want{
				{"/x", "us"}: {clicks: 3, users: []string{"a", "b"}, ms: 2, samples: 2},
				{"/x", "de"}: {clicks: 1, users: []string{"a"}},
				{"/y", "us"}: {clicks: 1, users: []string{"c"}},
			},
		},
		{
			name: "look-ahead beyond to+timeout is no successor",
			events: []event.Event{
				ev("u", at(to-time.Minute), "/a", "us"),
				ev("u", at(to+30*min), "/late", "us"),
			},
			want: map[Key]want{
				{"/a", "us"}: {clicks: 1, users: []string{"u"}},
			},
		},
		{
			name: "no events",
			want: map[Key]want{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Compute(tt.events, w, tt.timeout)
			checkWant(t, p, tt.want, int64(len(tt.events)))
			checkSameAs(t, "reference", p, referenceCompute(tt.events, w, tt.timeout))
			// The same through Parquet, and with the input reversed.
			pq, err := ComputeParquet([][]byte{writeParquet(t, tt.events)}, w, tt.timeout)
			if err != nil {
				t.Fatal(err)
			}
			checkSameAs(t, "ComputeParquet", pq, p)
			rev := slices.Clone(tt.events)
			slices.Reverse(rev)
			checkSameAs(t, "reversed input", Compute(rev, w, tt.timeout), p)
		})
	}
}

func checkWant(t *testing.T, p *Partial, wants map[Key]want, read int64) {
	t.Helper()
	var events int64
	for k, w := range wants {
		r := p.Rows[k]
		if r == nil {
			t.Errorf("%v: no row", k)
			continue
		}
		var hs []uint64
		for _, u := range w.users {
			hs = append(hs, UserHash(u))
		}
		slices.Sort(hs)
		got := want{clicks: r.Clicks, ms: r.TimeSpentMs, samples: r.Samples, bots: r.BotClicks}
		if got.clicks != w.clicks || r.Users != int64(len(w.users)) || got.ms != w.ms || got.samples != w.samples || got.bots != w.bots {
			t.Errorf("%v: got clicks %d users %d ms %d samples %d bot clicks %d, want %d %d %d %d %d", k,
				r.Clicks, r.Users, r.TimeSpentMs, r.Samples, r.BotClicks, w.clicks, len(w.users), w.ms, w.samples, w.bots)
		}
		if !slices.Equal(r.UserHashes, hs) {
			t.Errorf("%v: user hashes %x, want %x", k, r.UserHashes, hs)
		}
		events += w.clicks + w.bots
	}
	for k := range p.Rows {
		if _, ok := wants[k]; !ok {
			t.Errorf("%v: unexpected row %+v", k, *p.Rows[k])
		}
	}
	if p.Events != events || p.Read != read {
		t.Errorf("events %d read %d, want %d %d", p.Events, p.Read, events, read)
	}
}

func TestResultAverages(t *testing.T) {
	w := testWindow()
	p := Compute([]event.Event{
		ev("u", at(0), "/a", "us"),
		ev("u", at(1500*time.Millisecond), "/a", "us"),
		ev("u", at(2*time.Second), "/b", "us"),
		ev("v", at(0), "/a", "us"),
		ev("v", at(time.Second), "/c", "us"),
	}, w, 0)
	rows := p.Result(w)
	if len(rows) != 3 {
		t.Fatalf("got %d rows, want 3", len(rows))
	}
	a, b, c := rows[0], rows[1], rows[2]
	if a.URL != "/a" || b.URL != "/b" || c.URL != "/c" {
		t.Fatalf("rows not sorted by url: %q %q %q", a.URL, b.URL, c.URL)
	}
	if a.Clicks != 3 || a.UniqueUsers != 2 || a.TimeSpentSamples != 3 || a.TotalTimeSpentS != 3 || a.AvgTimeSpentS == nil || *a.AvgTimeSpentS != 1 {
		t.Errorf("row /a = %+v", a)
	}
	if b.AvgTimeSpentS != nil || b.TimeSpentSamples != 0 || b.TotalTimeSpentS != 0 {
		t.Errorf("row /b has no samples, avg must be nil: %+v", b)
	}
	if !a.WindowStart.Equal(w.From) || !a.WindowEnd.Equal(w.To) || a.WindowStart.Location() != time.UTC {
		t.Errorf("window %v..%v", a.WindowStart, a.WindowEnd)
	}
}

func TestWindowValidate(t *testing.T) {
	tests := []struct {
		name string
		w    Window
		ok   bool
	}{
		{"hour", testWindow(), true},
		{"one ms", Window{From: testFrom, To: testFrom.Add(time.Millisecond)}, true},
		{"empty", Window{From: testFrom, To: testFrom}, false},
		{"reversed", Window{From: testFrom, To: testFrom.Add(-time.Hour)}, false},
		{"zero from", Window{To: testFrom}, false},
		{"zero to", Window{From: testFrom}, false},
		{"year 10000", Window{From: testFrom, To: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.w.Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidWindow) {
				t.Fatalf("error %v does not wrap ErrInvalidWindow", err)
			}
		})
	}
}

func TestSubMillisecondBounds(t *testing.T) {
	// A window edge inside a millisecond: ts counts iff From <= ts < To.
	from := testFrom.Add(500 * time.Microsecond)
	w := Window{From: from, To: from.Add(time.Second)}
	evs := []event.Event{
		ev("u", testFrom.UnixMilli(), "/before", "us"),     // ts < From
		ev("u", testFrom.UnixMilli()+1, "/first", "us"),    // first ms >= From
		ev("u", testFrom.UnixMilli()+1000, "/last", "us"),  // < To
		ev("u", testFrom.UnixMilli()+1001, "/after", "us"), // >= To
	}
	p := Compute(evs, w, 0)
	checkSameAs(t, "reference", p, referenceCompute(evs, w, 0))
	if len(p.Rows) != 2 || p.Rows[Key{"/first", "us"}] == nil || p.Rows[Key{"/last", "us"}] == nil {
		t.Fatalf("rows %v", p.Keys())
	}
}

// TestComputeProperty compares Compute with the naive reference on random
// events, in every input order, and with the merge of per-bucket partials.
func TestComputeProperty(t *testing.T) {
	w := testWindow()
	configs := []genConfig{
		{events: 200, users: 5, urls: 3, countries: 2, span: 2 * time.Hour, tick: time.Minute},
		{events: 2000, users: 40, urls: 12, countries: 4, span: 2 * time.Hour, tick: 10 * time.Second},
		{events: 5000, users: 300, urls: 30, countries: 8, span: 3 * time.Hour, tick: time.Millisecond},
		{events: 3000, users: 10, urls: 5, countries: 3, span: 90 * time.Minute, tick: 5 * time.Minute},
		{events: 4000, users: 100, urls: 20, countries: 40, span: 2 * time.Hour, tick: time.Second}, // beyond keyTable's dense rows
	}
	seeds := 8
	if testing.Short() {
		seeds = 2
	}
	for ci, g := range configs {
		for seed := range seeds {
			rng := rand.New(rand.NewPCG(uint64(ci), uint64(seed)))
			evs := randomEvents(rng, g)
			timeout := []time.Duration{0, 10 * time.Minute, time.Minute}[seed%3]
			ref := referenceCompute(evs, w, timeout)
			checkSameAs(t, "random order", Compute(evs, w, timeout), ref)
			sortByTime(evs)
			checkSameAs(t, "time order", Compute(evs, w, timeout), ref)
			sortByUser(evs)
			checkSameAs(t, "user order", Compute(evs, w, timeout), ref)
			for _, b := range []int{1, 3, 8} {
				parts := make([][]event.Event, b)
				for _, e := range evs {
					i := lake.Bucket(e.UserID, b)
					parts[i] = append(parts[i], e)
				}
				merged := NewPartial()
				for _, part := range parts {
					merged.Merge(Compute(part, w, timeout))
				}
				checkSameAs(t, "merge of buckets", merged, ref)
			}
		}
	}
}

func TestMergeDoesNotAlias(t *testing.T) {
	w := testWindow()
	a := Compute([]event.Event{ev("a", at(0), "/x", "us")}, w, 0)
	b := Compute([]event.Event{ev("b", at(0), "/x", "us"), ev("b", at(1), "/y", "us")}, w, 0)
	bBefore, _ := b.MarshalBinary()
	p := NewPartial()
	p.Merge(b)
	p.Merge(a)
	p.Merge(nil)
	if got, _ := b.MarshalBinary(); string(got) != string(bBefore) {
		t.Fatal("Merge modified its argument")
	}
	p.Rows[Key{"/y", "us"}].UserHashes[0] = 0
	if b.Rows[Key{"/y", "us"}].UserHashes[0] == 0 {
		t.Fatal("merged partial shares hash sets with its argument")
	}
	x := p.Rows[Key{"/x", "us"}]
	if x.Users != 2 || x.Clicks != 2 || len(x.UserHashes) != 2 || !slices.IsSorted(x.UserHashes) {
		t.Fatalf("merged row %+v", *x)
	}
}

func TestSortSegs(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	for _, n := range []int{0, 1, 5, 63, 64, 65, 1000, 4097} {
		segs := make([]userSeg, n)
		for i := range segs {
			segs[i] = userSeg{hash: rng.Uint64(), start: i}
			if i%7 == 3 { // clustered and equal hashes too
				segs[i].hash = segs[i-1].hash
			}
		}
		sortSegs(segs)
		if !slices.IsSortedFunc(segs, compareSegs) {
			t.Fatalf("n=%d: not sorted", n)
		}
		seen := make([]bool, n)
		for _, s := range segs {
			seen[s.start] = true
		}
		if slices.Contains(seen, false) {
			t.Fatalf("n=%d: lost a segment", n)
		}
	}
}
