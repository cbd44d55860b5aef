package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dataco/clickstream/internal/event"
	"github.com/dataco/clickstream/internal/icetable"
	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/lake/laketest"
)

// TestMigrate: `clickstream migrate` copies the committed events of a lake
// of layout 1 (timestamp_ms Parquet files, Parquet and gzipped NDJSON)
// into a new lake of today's layout and its Iceberg events table, each
// event once; a second run adds nothing; and the new lake is what the old
// one is refused as.
func TestMigrate(t *testing.T) {
	oldReg := prometheus.DefaultRegisterer // ingest registers its metrics there
	prometheus.DefaultRegisterer = prometheus.NewRegistry()
	t.Cleanup(func() { prometheus.DefaultRegisterer = oldReg })
	ctx := context.Background()
	dir := t.TempDir()
	oldURI, newURI := "file://"+filepath.Join(dir, "old"), "file://"+filepath.Join(dir, "new")
	old, err := lake.Open(ctx, oldURI, lake.S3Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := old.Put(ctx, lake.MetaKey, []byte(`{"version":1,"buckets":4,"created":"2026-02-01T00:00:00Z"}`)); err != nil {
		t.Fatal(err)
	}
	want := map[string]int{} // the old lake's committed events
	rng := rand.New(rand.NewPCG(1, 2))
	hour := time.Date(2026, 1, 10, 8, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		source string
		seq    uint64
	}{{"kafka.clicks.0", 1}, {"kafka.clicks.0", 2}, {"kafka.clicks.1", 1}} {
		m := &lake.Manifest{Source: c.source, Seq: c.seq, Writer: "w", Start: int64(c.seq-1) * 100, End: int64(c.seq) * 100}
		for b := range 3 {
			var evs []event.Event
			for range 20 + rng.IntN(20) {
				e := event.Event{UserID: fmt.Sprintf("u%d", rng.IntN(30)), Timestamp: hour.Add(time.Duration(rng.Int64N(int64(time.Hour)))).UnixMilli(),
					URL: fmt.Sprintf("/p/%d", rng.IntN(5)), Country: "DE", City: "Berlin", UserAgent: "ua"}
				evs = append(evs, e)
				want[string(event.Encode(e))]++
			}
			ext, data := ".parquet", laketest.LayoutOneEvents(t, evs)
			if b == 2 { // gzipped NDJSON, unchanged since layout 1
				ext = ".ndjson.gz"
				if data, err = lake.FormatNDJSONGzip.Encode(evs); err != nil {
					t.Fatal(err)
				}
			}
			key := lake.DataFileKey(lake.Partition{Hour: hour, Bucket: b}, c.source, c.seq, "w", ext)
			if err := old.Put(ctx, key, data); err != nil {
				t.Fatal(err)
			}
			m.Files = append(m.Files, lake.DataFile{Key: key, Bucket: b, Hour: hour.Format(lake.HourFormat), Events: int64(len(evs)), Bytes: int64(len(data))})
			m.ValidCount += int64(len(evs))
		}
		if err := lake.Commit(ctx, old, m); err != nil {
			t.Fatal(err)
		}
	}
	total := 0
	for _, n := range want {
		total += n
	}

	out := string(pipeRun(t, "migrate", "--from", oldURI, "--lake", newURI))
	if !strings.Contains(out, fmt.Sprintf("read 3 commits, 9 files, %d events", total)) {
		t.Fatalf("migrate printed:\n%s\nwant 3 commits, 9 files and %d events read", out, total)
	}
	got, manifests := lakeEvents(t, newURI)
	if !equalCounts(got, want) {
		t.Fatalf("the new lake holds %d distinct events, the old one %d (or the counts differ)", len(got), len(want))
	}
	cat, err := icetable.OpenCatalog(ctx, "sqlite://"+filepath.Join(dir, "new", "_catalog.db"), icetable.CatalogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer icetable.Close(cat)
	if evs, err := icetable.ReadEvents(ctx, cat); err != nil || len(evs) != total {
		t.Fatalf("the new lake's events table: %d events, %v; want %d", len(evs), err, total)
	}

	prometheus.DefaultRegisterer = prometheus.NewRegistry()   // a new process
	pipeRun(t, "migrate", "--from", oldURI, "--lake", newURI) // resumes: nothing left
	if again, m := lakeEvents(t, newURI); !equalCounts(again, want) || m != manifests {
		t.Errorf("a second migrate changed the new lake: %d commits, %d before", m, manifests)
	}

	// The old lake is refused by everything else, saying what to do; the
	// new one cannot be migrated again.
	var stdout, stderr bytes.Buffer
	if code := run(ctx, []string{"run", "--lake", oldURI, "--from", "2026-01-10T08:00:00Z", "--to", "2026-01-10T09:00:00Z", "--out", "file://" + filepath.Join(dir, "out")}, &stdout, &stderr); code == 0 || !strings.Contains(stderr.String(), "re-ingest") {
		t.Errorf("run on the old lake: exit %d, %s", code, stderr.String())
	}
	stderr.Reset()
	if code := run(ctx, []string{"migrate", "--from", newURI, "--lake", "file://" + filepath.Join(dir, "newer")}, &stdout, &stderr); code == 0 || !strings.Contains(stderr.String(), "layout 2, not 1") {
		t.Errorf("migrate from a new lake: exit %d, %s", code, stderr.String())
	}
}

// lakeEvents reads the committed events of a lake of today's layout, as
// encoded events with their counts, and its number of commits.
func lakeEvents(t *testing.T, uri string) (map[string]int, int) {
	t.Helper()
	ctx := context.Background()
	s, err := lake.Open(ctx, uri, lake.S3Options{})
	if err != nil {
		t.Fatal(err)
	}
	sn, err := lake.ReadSnapshot(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, m := range sn.Manifests {
		for _, f := range m.Files {
			data, err := s.Get(ctx, f.Key)
			if err != nil {
				t.Fatal(err)
			}
			evs, err := lake.DecodeFile(f.Key, data)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range evs {
				out[string(event.Encode(e))]++
			}
		}
	}
	return out, len(sn.Manifests)
}

func equalCounts(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, n := range a {
		if b[k] != n {
			return false
		}
	}
	return true
}
