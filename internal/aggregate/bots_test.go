package aggregate

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/dataco/clickstream/internal/aggregate/aggtest"
	"github.com/dataco/clickstream/internal/event"
	"github.com/dataco/clickstream/internal/lake"
)

// TestBotsSemantics pins the rule for a person's click followed by a bot's
// event of the same user id: set apart, the bot's event is not there, and
// the click is timed against the person's next click; folded in, it is
// the next event like any other.
func TestBotsSemantics(t *testing.T) {
	bot := func(e event.Event) event.Event { e.IsBot = true; return e }
	evs := []event.Event{
		ev("u1", at(1*time.Minute), "/a", "de"),
		bot(ev("u1", at(2*time.Minute), "/b", "de")), // between two clicks of u1
		ev("u1", at(5*time.Minute), "/c", "de"),
		bot(ev("crawler", at(10*time.Minute), "/a", "de")),
		bot(ev("crawler", at(10*time.Minute+time.Second), "/a", "de")),
		bot(ev("crawler", at(61*time.Minute), "/a", "de")), // after the window: look-ahead only
		bot(ev("crawler", at(-time.Minute), "/a", "de")),   // before it
	}
	w := testWindow()
	checkWant(t, Compute(evs, w, 0), map[Key]want{
		{"/a", "de"}: {clicks: 1, users: []string{"u1"}, ms: 4 * 60_000, samples: 1, bots: 2},
		{"/b", "de"}: {bots: 1},
		{"/c", "de"}: {clicks: 1, users: []string{"u1"}},
	}, int64(len(evs)))
	checkWant(t, ComputeWith(evs, w, 0, BotsIncluded), map[Key]want{
		{"/a", "de"}: {clicks: 3, users: []string{"u1", "crawler"}, ms: 60_000 + 1000, samples: 2},
		{"/b", "de"}: {clicks: 1, users: []string{"u1"}, ms: 3 * 60_000, samples: 1},
		{"/c", "de"}: {clicks: 1, users: []string{"u1"}},
	}, int64(len(evs)))
	if p := Compute(evs, w, 0); p.Events != 5 {
		t.Errorf("events in window %d, want 5 (clicks and bot clicks)", p.Events)
	}
	rows := Compute(evs, w, 0).Result(w)
	if rows[1].URL != "/b" || rows[1].Clicks != 0 || rows[1].BotClicks != 1 || rows[1].AvgTimeSpentS != nil {
		t.Errorf("a row of bots only: %+v", rows[1])
	}
}

// parquet1k writes small pages and row groups.
var parquet1k = []parquet.WriterOption{parquet.PageBufferSize(1024), parquet.MaxRowsPerRowGroup(700)}

// TestBotsProperty: with bot users and people's occasional bot events,
// Compute, ComputeParquet (both bot policies, any order, merged by user
// bucket) agree with the plain references, this package's and aggtest's.
func TestBotsProperty(t *testing.T) {
	w := testWindow()
	configs := []genConfig{
		{events: 3000, users: 60, urls: 10, countries: 4, span: 2 * time.Hour, tick: 10 * time.Second, bots: 0.1, mixed: 0.02},
		{events: 3000, users: 20, urls: 5, countries: 3, span: 90 * time.Minute, tick: 5 * time.Minute, bots: 0.3},
		{events: 2000, users: 100, urls: 20, countries: 20, span: 2 * time.Hour, tick: time.Second, mixed: 0.5},
	}
	for ci, g := range configs {
		for seed := range 3 {
			rng := rand.New(rand.NewPCG(uint64(ci), 100+uint64(seed)))
			evs := randomEvents(rng, g)
			timeout := []time.Duration{0, 10 * time.Minute, time.Minute}[seed%3]
			for _, policy := range []BotPolicy{BotsApart, BotsIncluded} {
				ref := referenceComputeWith(evs, w, timeout, policy)
				if policy == BotsApart {
					bots := int64(0)
					for _, r := range ref.Rows {
						bots += r.BotClicks
					}
					if bots == 0 {
						t.Fatalf("config %d: no bot clicks in the window", ci)
					}
				}
				checkSameAs(t, "random order", ComputeWith(evs, w, timeout, policy), ref)
				sorted := append([]event.Event(nil), evs...)
				sortByUser(sorted)
				checkSameAs(t, "user order", ComputeWith(sorted, w, timeout, policy), ref)

				files := [][]byte{writeParquet(t, sorted[:len(sorted)/2], parquet1k...), writeParquet(t, sorted[len(sorted)/2:])}
				r := NewColumnReader(w, timeout)
				if policy == BotsIncluded {
					r.IncludeBots()
				}
				for _, f := range files {
					if err := r.AddFile(bytesReader(f), int64(len(f))); err != nil {
						t.Fatal(err)
					}
				}
				checkSameAs(t, "ColumnReader", r.Partial(), ref)

				merged := NewPartial()
				parts := make([][]event.Event, 4)
				for _, e := range evs {
					i := lake.Bucket(e.UserID, 4)
					parts[i] = append(parts[i], e)
				}
				for _, part := range parts {
					data, err := ComputeWith(part, w, timeout, policy).MarshalBinary()
					if err != nil {
						t.Fatal(err)
					}
					var q Partial
					if err := q.UnmarshalBinary(data); err != nil {
						t.Fatal(err)
					}
					merged.Merge(&q)
				}
				checkSameAs(t, "merge of encoded buckets", merged, ref)

				eff := timeout
				if eff == 0 {
					eff = DefaultSessionTimeout
				}
				indep := aggtest.ReferenceWith(evs, w.From, w.To, eff, policy == BotsIncluded)
				rows := merged.Result(w)
				if len(rows) != len(indep) {
					t.Fatalf("%d rows, aggtest %d", len(rows), len(indep))
				}
				for _, row := range rows {
					if d := indep[aggtest.Key{URL: row.URL, Country: row.Country}].Diff(row, w.From, w.To); d != "" {
						t.Fatalf("%s %s: %s", row.URL, row.Country, d)
					}
				}
			}
		}
	}
}

// TestColumnReaderFileWithoutIsBot: a data file written before the is_bot
// column holds no bot: its events count as people's, in either policy.
func TestColumnReaderFileWithoutIsBot(t *testing.T) {
	type rowBeforeIsBot struct {
		UserID    string `parquet:"user_id,id(1),dict"`
		Ts        int64  `parquet:"ts,id(2),timestamp(microsecond:utc),delta"`
		URL       string `parquet:"url,id(3),dict"`
		Country   string `parquet:"country,id(4),dict"`
		City      string `parquet:"city,id(5),dict"`
		UserAgent string `parquet:"user_agent,id(6),dict"`
	}
	rng := rand.New(rand.NewPCG(21, 22))
	evs := randomEvents(rng, genConfig{events: 2000, users: 50, urls: 8, countries: 3, span: 2 * time.Hour, tick: time.Second, bots: 0.2})
	sortByUser(evs)
	rows := make([]rowBeforeIsBot, len(evs))
	for i, e := range evs {
		rows[i] = rowBeforeIsBot{e.UserID, e.Timestamp * 1000, e.URL, e.Country, e.City, e.UserAgent}
	}
	old := writeRows(t, rows)
	w := testWindow()
	want := ComputeWith(evs, w, 0, BotsIncluded) // everyone a person
	for _, include := range []bool{false, true} {
		r := NewColumnReader(w, 0)
		if include {
			r.IncludeBots()
		}
		if err := r.AddFile(bytesReader(old), int64(len(old))); err != nil {
			t.Fatal(err)
		}
		checkSameAs(t, fmt.Sprint("old file, include bots ", include), r.Partial(), want)
	}
}
