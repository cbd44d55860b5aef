package icetable_test

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/dataco/clickstream/internal/icetable"
	"github.com/dataco/clickstream/internal/lake"
)

// TestInputTracker: a tracker that follows the events table snapshot by
// snapshot reports what one reading the table afresh does — every append
// with its files, the table's events — through appends it publishes
// itself, a compaction (which appends nothing and changes no count) and
// the expiry of old snapshots (which moves its horizon).
func TestInputTracker(t *testing.T) {
	ctx := context.Background()
	l := newTestLake(t)
	rng := rand.New(rand.NewPCG(5, 6))
	var tr icetable.InputTracker
	var committed int64
	seq := uint64(0)
	commit := func() {
		seq++
		committed += l.commit(t, "a", seq, 100, rng)
	}
	inputs := func(tr *icetable.InputTracker) lake.TableInputs {
		t.Helper()
		in, ok, err := tr.TableInputs(ctx, l.store.URI(), l.store)
		if err != nil || !ok {
			t.Fatalf("table inputs: ok %v, %v", ok, err)
		}
		return in
	}
	check := func(step string, in lake.TableInputs, appends int) {
		t.Helper()
		var events, appended int64
		for _, f := range in.Files {
			events += f.Events
			if f.MinTs > f.MaxTs || f.MinTs < hour0.UnixMilli() || f.MaxTs >= hour0.Add(3*time.Hour).UnixMilli() {
				t.Errorf("%s: file %s has ts bounds [%d, %d] outside the events'", step, f.Key, f.MinTs, f.MaxTs)
			}
		}
		for i, a := range in.Appends {
			for _, f := range a.Files {
				appended += f.Events
			}
			if i > 0 && a.Seq <= in.Appends[i-1].Seq || a.Seq > in.Seq || a.Seq < in.Horizon {
				t.Errorf("%s: append %d has sequence number %d (table %d, horizon %d)", step, i, a.Seq, in.Seq, in.Horizon)
			}
		}
		if events != committed {
			t.Errorf("%s: the table's files hold %d events, %d committed", step, events, committed)
		}
		if len(in.Appends) != appends {
			t.Errorf("%s: %d appends, want %d", step, len(in.Appends), appends)
		}
		fresh := inputs(&icetable.InputTracker{})
		if fresh.Seq != in.Seq || fresh.Horizon != in.Horizon || !slices.EqualFunc(fresh.Appends, in.Appends, func(a, b lake.TableAppend) bool {
			return a.Seq == b.Seq && slices.Equal(a.Files, b.Files)
		}) {
			t.Errorf("%s: the tracker and a fresh one disagree on the appends", step)
		}
	}

	for range 3 { // three appends
		commit()
		if _, err := icetable.Publish(ctx, l.cat, l.store); err != nil {
			t.Fatal(err)
		}
	}
	check("first reading", inputs(&tr), 3)
	commit()
	commit() // published by the tracker: one append
	in := inputs(&tr)
	check("after two more commits", in, 4)
	keys := fileKeys(in.Files)

	if _, err := icetable.Compact(ctx, l.cat, l.store, icetable.CompactOptions{ClosedBefore: hour0.Add(2 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	in = inputs(&tr)
	check("after a compaction", in, 4)
	if !slices.Equal(fileKeys(in.Files), keys) {
		t.Error("after a compaction, the tracker's files changed: the compacted files should stand in for their rewrite")
	}

	for range 12 {
		commit()
		if _, err := icetable.Publish(ctx, l.cat, l.store); err != nil {
			t.Fatal(err)
		}
	}
	if err := icetable.ExpireSnapshots(ctx, l.cat, icetable.EventsTable, time.Nanosecond); err != nil {
		t.Fatal(err)
	}
	before := in.Horizon
	in = inputs(&tr)
	check("after expiry", in, 10) // the last 10 snapshots are kept: appends all
	if in.Horizon <= before {
		t.Errorf("after expiry the horizon is %d, was %d", in.Horizon, before)
	}
}

func fileKeys(files []lake.DataFile) []string {
	var out []string
	for _, f := range files {
		out = append(out, f.Key)
	}
	slices.Sort(out)
	return out
}
