package icetable

import (
	"context"

	"github.com/apache/iceberg-go/catalog"

	"github.com/dataco/clickstream/internal/lake"
)

// PublishFollowingWatermarks is a publication of a Publisher between its
// full ones: it finds new commits by the sources' watermark records.
func PublishFollowingWatermarks(ctx context.Context, cat catalog.Catalog, store lake.Store) (Published, error) {
	return publish(ctx, cat, store, EventsTable, dataFiles, followWatermarks)
}
