package icetable

import (
	"context"
	"time"

	"github.com/apache/iceberg-go/catalog"

	"github.com/dataco/clickstream/internal/lake"
)

// PublishFollowingWatermarks is a publication of a Publisher between its
// full ones: it finds new commits by the sources' watermark records.
func PublishFollowingWatermarks(ctx context.Context, cat catalog.Catalog, store lake.Store) (Published, error) {
	return publish(ctx, cat, store, EventsTable, dataFiles, followWatermarks)
}

// PlanFiles plans [from, to) from the current snapshot of the events
// table twice: through the cache (planFiles), and through iceberg-go's scan
// (tableFiles).
func PlanFiles(ctx context.Context, cat catalog.Catalog, store lake.Store, from, to time.Time, cache *ManifestCache) (cached, scanned map[int][]lake.DataFile, err error) {
	tbl, err := cat.LoadTable(ctx, Ident(EventsTable))
	if err != nil {
		return nil, nil, err
	}
	snap := tbl.CurrentSnapshot().SnapshotID
	if cached, err = planFiles(ctx, tbl, store, snap, from, to, cache); err != nil {
		return nil, nil, err
	}
	scanned, err = tableFiles(ctx, tbl, store, snap, from, to)
	return cached, scanned, err
}
