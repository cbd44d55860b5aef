package lake_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"

	"github.com/dataco/clickstream/internal/lake"
)

// TestIcebergReadsDataFile reads a data file the way iceberg-go does
// (Arrow's Parquet reader, then iceberg-go's schema conversion, which maps
// columns by field id): the schema is the one lake.Columns describes, and
// ts holds the events' times in microseconds, UTC.
func TestIcebergReadsDataFile(t *testing.T) {
	evs := generatedEvents(500, 20, true)
	data, err := lake.EncodeParquet(evs)
	if err != nil {
		t.Fatal(err)
	}
	pf, err := file.NewParquetReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	asc, err := fr.Schema()
	if err != nil {
		t.Fatal(err)
	}
	got, err := table.ArrowSchemaToIceberg(asc, false, nil)
	if err != nil {
		t.Fatalf("iceberg-go cannot take the file's schema: %v", err)
	}
	types := map[string]iceberg.Type{"string": iceberg.PrimitiveTypes.String, "timestamptz": iceberg.PrimitiveTypes.TimestampTz, "boolean": iceberg.PrimitiveTypes.Bool}
	var fields []iceberg.NestedField
	for _, c := range lake.Columns {
		fields = append(fields, iceberg.NestedField{ID: c.FieldID, Name: c.Name, Type: types[c.Type], Required: true})
	}
	if want := iceberg.NewSchema(0, fields...); !got.Equals(want) {
		t.Fatalf("file schema as iceberg-go reads it:\n%s\nwant\n%s", got, want)
	}

	tbl, err := fr.ReadTable(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	col := tbl.Column(1)
	if dt, ok := col.DataType().(*arrow.TimestampType); !ok || dt.Unit != arrow.Microsecond || dt.TimeZone != "UTC" {
		t.Fatalf("ts column of type %s, want timestamp[us, tz=UTC]", col.DataType())
	}
	i := 0
	for _, chunk := range col.Data().Chunks() {
		ts := chunk.(*array.Timestamp)
		for j := range ts.Len() {
			if got, want := int64(ts.Value(j)), evs[i].Timestamp*1000; got != want {
				t.Fatalf("row %d: ts %d, want %d", i, got, want)
			}
			i++
		}
	}
	if i != len(evs) {
		t.Fatalf("read %d rows, want %d", i, len(evs))
	}
}
