package lake

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/parquet-go/parquet-go"

	"github.com/dataco/clickstream/internal/event"
)

// Lakes of layout 1 are read only to be migrated (clickstream migrate):
// their manifests are those of today's layout, their Parquet files have a
// timestamp_ms column (int64 milliseconds) and no field ids, and their
// buckets are not Iceberg's.

// ReadLayoutOneSnapshot reads the committed snapshot of a lake of layout 1.
func ReadLayoutOneSnapshot(ctx context.Context, s Store) (*Snapshot, error) {
	r := NewSnapshotReader(s)
	r.layout = 1
	return r.Read(ctx)
}

// layoutOneRow is a row of a layout-1 Parquet file.
type layoutOneRow struct {
	UserID    string `parquet:"user_id"`
	Timestamp int64  `parquet:"timestamp_ms"`
	URL       string `parquet:"url"`
	Country   string `parquet:"country"`
	City      string `parquet:"city"`
	UserAgent string `parquet:"user_agent"`
}

// layoutOneMaxRows bounds the rows DecodeLayoutOneFile reads from a file.
const layoutOneMaxRows = 1 << 24

// DecodeLayoutOneFile decodes a data file of a layout-1 lake, by its key's
// extension: Parquet, or gzipped NDJSON (unchanged since).
func DecodeLayoutOneFile(key string, data []byte) ([]event.Event, error) {
	f, err := FormatOfKey(key)
	if err != nil {
		return nil, err
	}
	if f != FormatParquet {
		return DecodeFile(key, data)
	}
	r := parquet.NewGenericReader[layoutOneRow](bytes.NewReader(data))
	defer r.Close()
	if n := r.NumRows(); n > layoutOneMaxRows {
		return nil, fmt.Errorf("lake: layout-1 file %s: %d rows, more than %d", key, n, layoutOneMaxRows)
	}
	rows := make([]layoutOneRow, r.NumRows())
	n, err := r.Read(rows)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("lake: layout-1 file %s: %w", key, err)
	}
	if n != len(rows) {
		return nil, fmt.Errorf("lake: layout-1 file %s: read %d of %d rows", key, n, len(rows))
	}
	events := make([]event.Event, n)
	for i, row := range rows {
		events[i] = event.Event{UserID: row.UserID, Timestamp: row.Timestamp, URL: row.URL,
			Country: row.Country, City: row.City, UserAgent: row.UserAgent}
	}
	return events, nil
}
