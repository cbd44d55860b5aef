package icetable

import (
	"context"
	"time"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"

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

// EnsureAggregatesWith creates the aggregates table with schema s, as an
// older version of EnsureAggregates did with its schema, without evolving it.
func EnsureAggregatesWith(ctx context.Context, cat catalog.Catalog, store lake.Store, s *iceberg.Schema) (*table.Table, error) {
	return ensureDayTable(ctx, cat, store, AggregatesTable, s, 1, "window_start_day", aggregatesPrefix)
}

// aggRowV1 is a row of the aggregates table as the first version wrote it,
// before the provenance columns.
type aggRowV1 struct {
	WindowStart      int64    `parquet:"window_start,timestamp(microsecond),id(1)"`
	WindowEnd        int64    `parquet:"window_end,timestamp(microsecond),id(2)"`
	URL              string   `parquet:"url,dict,id(3)"`
	Country          string   `parquet:"country,dict,id(4)"`
	Clicks           int64    `parquet:"clicks,id(5)"`
	UniqueUsers      int64    `parquet:"unique_users,id(6)"`
	TotalTimeSpentS  float64  `parquet:"total_time_spent_s,id(7)"`
	TimeSpentSamples int64    `parquet:"time_spent_samples,id(8)"`
	AvgTimeSpentS    *float64 `parquet:"avg_time_spent_s,optional,id(9)"`
	Job              string   `parquet:"job_id,dict,id(10)"`
	EventsSnapshot   *int64   `parquet:"events_snapshot,optional,id(11)"`
}

// PublishResultV1 publishes r as the first version did: data files
// without the provenance columns.
func PublishResultV1(ctx context.Context, cat catalog.Catalog, store lake.Store, r Result) error {
	rows := make([]aggRowV1, len(r.Rows))
	for i, x := range r.Rows {
		rows[i] = aggRowV1{
			WindowStart: x.WindowStart.UnixMicro(), WindowEnd: x.WindowEnd.UnixMicro(), URL: x.URL, Country: x.Country,
			Clicks: x.Clicks, UniqueUsers: x.UniqueUsers, TotalTimeSpentS: x.TotalTimeSpentS,
			TimeSpentSamples: x.TimeSpentSamples, AvgTimeSpentS: x.AvgTimeSpentS, Job: r.Job,
		}
	}
	data, err := encodeRows(rows, "result")
	if err != nil {
		return err
	}
	return publishEncoded(ctx, cat, store, r, data)
}
