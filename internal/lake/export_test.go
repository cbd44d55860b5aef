package lake

import (
	"github.com/parquet-go/parquet-go"

	"github.com/dataco/clickstream/internal/event"
)

// EncodeParquetFresh encodes events with a writer never used before, the
// reference for files written by pooled writers.
func EncodeParquetFresh(events []event.Event) ([]byte, error) {
	w := parquetWriters.New().(*parquet.GenericWriter[Row])
	return encodeParquetWith(w, len(events), func(i int) *event.Event { return &events[i] })
}
