package icetable

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"

	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/lake/laketest"
)

// BenchmarkPlanFromTable measures planning a one-hour job from an events
// table of 100,000 files (iceberg-go's scan; TablePlanner's own reading,
// without and with its manifest cache) (100 commits of 1,000 files, spread over 1,000
// hours × 16 buckets): the table's metadata prunes manifests by hour, so
// the work follows the files of the window, not the table. No data file
// exists: planning reads only metadata.
func BenchmarkPlanFromTable(b *testing.B) {
	ctx := context.Background()
	store := laketest.NewFile(b)
	if _, err := lake.EnsureMeta(ctx, store, 16); err != nil {
		b.Fatal(err)
	}
	uri, err := DefaultCatalogURI(store.URI())
	if err != nil {
		b.Fatal(err)
	}
	cat, err := OpenCatalog(ctx, uri, CatalogOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer Close(cat)
	tbl, err := EnsureEvents(ctx, cat, store, 16)
	if err != nil {
		b.Fatal(err)
	}
	const commits, perCommit = 100, 1000
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for c := range commits {
		var files []lake.DataFile
		for i := range perCommit {
			n := c*perCommit + i
			h := t0.Add(time.Duration(n/16%1000) * time.Hour)
			files = append(files, lake.DataFile{Key: fmt.Sprintf("events/hour=%s/bucket=%04d/f-%d.parquet", h.Format(lake.HourFormat), n%16, n),
				Bucket: n % 16, Hour: h.Format(lake.HourFormat), Events: 1000, Bytes: 10000, MinTs: h.UnixMilli(), MaxTs: h.Add(59 * time.Minute).UnixMilli()})
		}
		m := &lake.Manifest{Source: "s", Seq: uint64(c + 1), Start: int64(c), End: int64(c + 1), Files: files}
		if err := lake.Commit(ctx, store, m); err != nil {
			b.Fatal(err)
		}
		dfs, _, err := dataFiles(ctx, tbl, store, []*lake.Manifest{m})
		if err != nil {
			b.Fatal(err)
		}
		tx := tbl.NewTransaction()
		if err := tx.AddDataFiles(ctx, dfs, iceberg.Properties{}, table.WithoutDuplicateCheck()); err != nil {
			b.Fatal(err)
		}
		if tbl, err = tx.Commit(ctx); err != nil {
			b.Fatal(err)
		}
	}
	from := t0.Add(500 * time.Hour)
	count := func(files map[int][]lake.DataFile) (n int) {
		for _, fs := range files {
			n += len(fs)
		}
		return n
	}
	b.Run("table", func(b *testing.B) {
		var got int
		for range b.N {
			files, err := tableFiles(ctx, tbl, store, tbl.CurrentSnapshot().SnapshotID, from, from.Add(time.Hour))
			if err != nil {
				b.Fatal(err)
			}
			got = count(files)
		}
		b.ReportMetric(float64(got), "files-planned")
	})
	// The same plan as TablePlanner makes it: from the manifests that
	// overlap the window, read once and then kept (ManifestCache).
	for _, c := range []struct {
		name  string
		cache *ManifestCache
	}{{"planner-uncached", nil}, {"planner-cached", NewManifestCache(DefaultManifestCacheFiles)}} {
		b.Run(c.name, func(b *testing.B) {
			var got int
			for range b.N {
				files, err := planFiles(ctx, tbl, store, tbl.CurrentSnapshot().SnapshotID, from, from.Add(time.Hour), c.cache)
				if err != nil {
					b.Fatal(err)
				}
				got = count(files)
			}
			b.ReportMetric(float64(got), "files-planned")
		})
	}
	// The same plan from the lake's manifests, which it reads all of.
	b.Run("manifests", func(b *testing.B) {
		var got int
		for range b.N {
			snap, err := lake.ReadSnapshot(ctx, store)
			if err != nil {
				b.Fatal(err)
			}
			got = count(snap.FilesFor(from, from.Add(time.Hour)))
		}
		b.ReportMetric(float64(got), "files-planned")
	})
}
