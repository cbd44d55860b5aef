// Package clustertest helps tests of the cluster (coordinator, workers,
// the CLI): an embedded etcd, random click events, a lake holding them in
// the real layout with committed manifests, and the reference result.
//
//	endpoints := clustertest.StartEtcd(t)
//	store := laketest.NewFile(t)
//	events := clustertest.Events(1, 200, 20000, from, to)
//	clustertest.WriteLake(t, store, 8, 3, events)
//	want := clustertest.Reference(events, from, to, 30*time.Minute)
package clustertest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"github.com/dataco/clickstream/internal/aggregate"
	"github.com/dataco/clickstream/internal/cluster"
	"github.com/dataco/clickstream/internal/event"
	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/schema"
)

// StartEtcd starts an embedded etcd with fast ticks for the test and
// returns its client endpoints. It stops when the test ends.
func StartEtcd(t testing.TB) []string {
	t.Helper()
	srv, err := cluster.StartEmbedded(context.Background(), cluster.EmbeddedConfig{Dir: t.TempDir(), Fast: true, NoFsync: true, LogLevel: "panic"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv.Endpoints()
}

var (
	countries = []string{"US", "DE", "FR", "GB", "JP", "BR", "IN", ""}
	cities    = []string{"Springfield", "Berlin", "Paris", "London", "Tokyo"}
	botAgent  = "curl/8.0"
	agents    = []string{"Mozilla/5.0 (X11; Linux x86_64)", "Mozilla/5.0 (iPhone)", botAgent}
)

// Events returns n random clicks of the given number of users, with
// timestamps from an hour before from to an hour after to (so that some
// fall before the window and some in its look-ahead), deterministic for a
// seed.
func Events(seed uint64, users, n int, from, to time.Time) []event.Event {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	lo := from.Add(-time.Hour).UnixMilli()
	span := to.Add(time.Hour).UnixMilli() - lo
	out := make([]event.Event, n)
	for i := range out {
		out[i] = event.Event{
			UserID:    fmt.Sprintf("user-%d", r.IntN(users)),
			Timestamp: lo + r.Int64N(span),
			URL:       fmt.Sprintf("https://shop.example/p/%d", r.IntN(40)),
			Country:   countries[r.IntN(len(countries))],
			City:      cities[r.IntN(len(cities))],
			UserAgent: agents[r.IntN(len(agents))],
		}
		if out[i].Country == "" {
			out[i].Country = event.UnknownCountry
		}
		// As ingest would flag it (package bots): a script's requests,
		// mixed into users' sessions.
		out[i].IsBot = out[i].UserAgent == botAgent
	}
	return out
}

// WriteLake writes events into store in the lake layout, as `commits`
// commits of one source (so partitions hold several files), each with its
// manifest, in a lake of `buckets` user buckets. It returns the number of
// data files written.
func WriteLake(t testing.TB, store lake.Store, buckets, commits int, events []event.Event) int {
	t.Helper()
	ctx := context.Background()
	meta, err := lake.EnsureMeta(ctx, store, buckets)
	if err != nil {
		t.Fatal(err)
	}
	commits = max(1, commits)
	source := "test.clicks.0"
	seq := uint64(0)
	if last, err := lake.LastManifest(ctx, store, source); err != nil {
		t.Fatal(err)
	} else if last != nil {
		seq = last.Seq
	}
	files := 0
	for c := range commits {
		lo, hi := c*len(events)/commits, (c+1)*len(events)/commits
		part := map[lake.Partition][]event.Event{}
		for _, e := range events[lo:hi] {
			p := lake.Partition{Hour: lake.HourOf(e.Timestamp), Bucket: lake.Bucket(e.UserID, meta.Buckets)}
			part[p] = append(part[p], e)
		}
		seq++
		m := &lake.Manifest{Source: source, Seq: seq, Writer: "clustertest", Start: int64(lo), End: int64(hi), ValidCount: int64(hi - lo)}
		keys := make([]lake.Partition, 0, len(part))
		for p := range part {
			keys = append(keys, p)
		}
		sort.Slice(keys, func(i, j int) bool { return keys[i].Dir() < keys[j].Dir() })
		for _, p := range keys {
			evs := part[p]
			data, err := lake.EncodeParquet(evs)
			if err != nil {
				t.Fatal(err)
			}
			key := lake.DataFileKey(p, source, seq, "clustertest", lake.FormatParquet.Ext())
			if err := store.Put(ctx, key, data); err != nil {
				t.Fatal(err)
			}
			f := lake.DataFile{Key: key, Bucket: p.Bucket, Hour: p.Hour.Format(lake.HourFormat), Events: int64(len(evs)), Bytes: int64(len(data)), MinTs: evs[0].Timestamp, MaxTs: evs[0].Timestamp}
			for _, e := range evs {
				f.MinTs, f.MaxTs = min(f.MinTs, e.Timestamp), max(f.MaxTs, e.Timestamp)
				m.Watermark = max(m.Watermark, e.Timestamp)
			}
			m.Files = append(m.Files, f)
			files++
		}
		if err := lake.Commit(ctx, store, m); err != nil {
			t.Fatal(err)
		}
	}
	return files
}

// Reference is the expected result: aggregate.Compute over all events at
// once.
func Reference(events []event.Event, from, to time.Time, timeout time.Duration) []schema.Row {
	w := aggregate.Window{From: from, To: to}
	return aggregate.Compute(events, w, timeout).Result(w)
}
