package lake_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/apache/iceberg-go"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"
	"github.com/twmb/murmur3"

	"github.com/dataco/clickstream/internal/event"
	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/lake/laketest"
)

// TestBucketIsIcebergBucket checks Bucket against iceberg-go's bucket
// transform on random ids of several shapes and bucket counts, and the
// hash against the Iceberg spec's test vector.
func TestBucketIsIcebergBucket(t *testing.T) {
	if got := murmur3.Sum32([]byte("iceberg")); int32(got) != 1210000089 {
		t.Fatalf("murmur3 of %q = %d, want 1210000089 (Iceberg spec)", "iceberg", int32(got))
	}
	if got, want := lake.Bucket("iceberg", 1<<31-1), 1210000089; got != want {
		t.Fatalf(`Bucket("iceberg", MaxInt32) = %d, want %d`, got, want)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	ids := []string{"", "a", "ü", "東京", "user-0000001"}
	for range 5000 {
		switch rng.IntN(3) {
		case 0:
			ids = append(ids, fmt.Sprint(rng.Int64N(1e12)))
		case 1:
			ids = append(ids, fmt.Sprintf("u_%012x", rng.Uint64()>>16))
		default:
			b := make([]rune, rng.IntN(20))
			for i := range b {
				b[i] = rune(rng.IntN(0x3000))
			}
			ids = append(ids, string(b))
		}
	}
	for _, n := range []int{1, 2, 3, 4, 7, 16, 64, 100, 1000, 1 << 20} {
		tr := iceberg.BucketTransform{NumBuckets: n}
		for _, id := range ids {
			out := tr.Apply(iceberg.Optional[iceberg.Literal]{Valid: true, Val: iceberg.StringLiteral(id)})
			if !out.Valid {
				t.Fatalf("iceberg bucket[%d](%q): no value", n, id)
			}
			want := int(out.Val.(iceberg.Int32Literal))
			if got := lake.Bucket(id, n); got != want {
				t.Fatalf("Bucket(%q, %d) = %d, iceberg bucket[%d] = %d", id, n, got, n, want)
			}
		}
	}
}

// TestUserIDPrefixOrder: UserIDPrefix never orders two ids against their
// string order, ids sharing long prefixes and NUL bytes included.
func TestUserIDPrefixOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	alphabet := []string{"\x00", "a", "b", "\xff", "ü"}
	id := func() string {
		var sb strings.Builder
		for range rng.IntN(12) {
			sb.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		return sb.String()
	}
	for range 100_000 {
		a, b := id(), id()
		pa, pb := lake.UserIDPrefix(a), lake.UserIDPrefix(b)
		if (a < b && pa > pb) || (a > b && pa < pb) || (a == b && pa != pb) {
			t.Fatalf("UserIDPrefix(%q) = %x, UserIDPrefix(%q) = %x: against the string order", a, pa, b, pb)
		}
	}
}

// TestParquetIcebergSchema: a data file's columns carry the field ids of
// lake.Columns, are required, and ts is TIMESTAMP(MICROS, UTC) holding
// the events' times in microseconds.
func TestParquetIcebergSchema(t *testing.T) {
	evs := generatedEvents(100, 10, true)
	data, err := lake.EncodeParquet(evs)
	if err != nil {
		t.Fatal(err)
	}
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	fields := f.Schema().Fields()
	if len(fields) != len(lake.Columns) {
		t.Fatalf("%d columns, want %d", len(fields), len(lake.Columns))
	}
	for i, c := range lake.Columns {
		fd := fields[i]
		if fd.Name() != c.Name || fd.ID() != c.FieldID || !fd.Required() {
			t.Errorf("column %d: %s id %d required %v, want %s id %d required", i, fd.Name(), fd.ID(), fd.Required(), c.Name, c.FieldID)
		}
		lt := fd.Type().LogicalType()
		switch c.Type {
		case "string":
			if fd.Type().Kind() != parquet.ByteArray || lt == nil || lt.Value == nil || lt.String() != (&format.StringType{}).String() {
				t.Errorf("column %s: type %s %v, want a UTF-8 string", c.Name, fd.Type().Kind(), lt)
			}
		case "timestamptz":
			ts, ok := lt.Value.(*format.TimestampType)
			if fd.Type().Kind() != parquet.Int64 || !ok || !ts.IsAdjustedToUTC {
				t.Fatalf("column %s: type %s %v, want INT64 TIMESTAMP(MICROS, isAdjustedToUTC)", c.Name, fd.Type().Kind(), lt)
			}
			if _, ok := ts.Unit.Value.(*format.MicroSeconds); !ok {
				t.Errorf("column %s: unit %v, want micros", c.Name, ts.Unit.Value)
			}
		case "boolean":
			if fd.Type().Kind() != parquet.Boolean || lt != nil {
				t.Errorf("column %s: type %s %v, want BOOLEAN", c.Name, fd.Type().Kind(), lt)
			}
		default:
			t.Errorf("column %s: unknown type %s", c.Name, c.Type)
		}
	}
	rows := make([]parquet.Row, len(evs))
	r := f.RowGroups()[0].Rows()
	defer r.Close()
	if n, _ := r.ReadRows(rows); n != len(evs) {
		t.Fatalf("read %d rows, want %d", n, len(evs))
	}
	for i, row := range rows {
		if got, want := row[1].Int64(), evs[i].Timestamp*1000; got != want {
			t.Fatalf("row %d: ts %d, want %d µs", i, got, want)
		}
	}
}

// TestEncodeParquetTimestampRange: an event time that microseconds cannot
// hold (outside the years 0000 to 9999 a parsed event keeps to) is an
// error, not a wrapped-around time.
func TestEncodeParquetTimestampRange(t *testing.T) {
	for _, ts := range []int64{event.MinTimestamp - 1, event.MaxTimestamp + 1, 1 << 62} {
		_, err := lake.EncodeParquet([]event.Event{{UserID: "u", Timestamp: 0}, {UserID: "u", Timestamp: ts}})
		if err == nil || !strings.Contains(err.Error(), "event 1: timestamp") {
			t.Errorf("timestamp %d: err = %v, want an out-of-range error", ts, err)
		}
	}
}

// TestDecodeOldLayoutFile: a data file of layout 1 (timestamp_ms, no field
// ids) is an error naming the missing ts column.
func TestDecodeOldLayoutFile(t *testing.T) {
	old := laketest.LayoutOneFile(t, 1)
	_, err := lake.DecodeFile("events/x/old.parquet", old)
	if err == nil || !strings.Contains(err.Error(), `no column "ts"`) {
		t.Fatalf("err = %v, want one naming the missing ts column", err)
	}
}

// TestOldLayoutLake: a lake whose _lake.json records another layout is
// refused by ReadMeta, EnsureMeta and ReadSnapshot with an error saying
// what it is and what to do.
func TestOldLayoutLake(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		version int
		want    []string
	}{
		{0, []string{"older layout", "re-ingest"}},
		{1, []string{"older layout (1: FNV buckets, timestamp_ms files)", "re-ingest"}},
		{lake.LayoutVersion + 1, []string{"newer layout", "upgrade"}},
	} {
		t.Run(fmt.Sprint(tt.version), func(t *testing.T) {
			s := laketest.NewFile(t)
			meta := fmt.Sprintf(`{"version":%d,"buckets":16,"created":"2026-01-01T00:00:00Z"}`, tt.version)
			if err := s.Put(ctx, lake.MetaKey, []byte(meta)); err != nil {
				t.Fatal(err)
			}
			check := func(name string, err error) {
				t.Helper()
				if !errors.Is(err, lake.ErrLayout) {
					t.Fatalf("%s: err = %v, want ErrLayout", name, err)
				}
				for _, w := range append(tt.want, s.URI()) {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("%s: error %q does not say %q", name, err, w)
					}
				}
			}
			_, err := lake.ReadMeta(ctx, s)
			check("ReadMeta", err)
			_, err = lake.EnsureMeta(ctx, s, 16)
			check("EnsureMeta", err)
			_, err = lake.ReadSnapshot(ctx, s)
			check("ReadSnapshot", err)
		})
	}
	s := laketest.NewFile(t)
	m, err := lake.EnsureMeta(ctx, s, 4)
	if err != nil || m.Version != lake.LayoutVersion {
		t.Fatalf("new lake: meta %+v, err %v; want version %d", m, err, lake.LayoutVersion)
	}
}

// TestHourIsIcebergHour: the partition hour of an event is Iceberg's
// hour(ts) of its ts column, before the epoch included.
func TestHourIsIcebergHour(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	tss := []int64{0, -1, 1, -3_600_000, 3_599_999, event.MinTimestamp, event.MaxTimestamp}
	for range 10_000 {
		tss = append(tss, event.MinTimestamp+rng.Int64N(event.MaxTimestamp-event.MinTimestamp+1))
	}
	for _, ts := range tss {
		e := event.Event{Timestamp: ts}
		row := lake.RowOf(&e)
		out := iceberg.HourTransform{}.Apply(iceberg.Optional[iceberg.Literal]{Valid: true, Val: iceberg.TimestampLiteral(row.Ts)})
		if got, want := lake.HourOf(ts).Unix()/3600, int64(out.Val.(iceberg.Int32Literal)); got != want {
			t.Fatalf("ts %d ms: partition hour %d, iceberg hour(ts) %d", ts, got, want)
		}
	}
}

func TestFloorDiv(t *testing.T) {
	for _, tc := range []struct{ a, b, want int64 }{
		{7, 2, 3}, {6, 2, 3}, {0, 5, 0}, {-1, 3_600_000, -1}, {-3_600_000, 3_600_000, -1},
		{-3_600_001, 3_600_000, -2}, {-7, 2, -4},
	} {
		if got := lake.FloorDiv(tc.a, tc.b); got != tc.want {
			t.Errorf("FloorDiv(%d, %d) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}
