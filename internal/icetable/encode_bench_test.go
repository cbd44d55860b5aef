package icetable

import (
	"fmt"
	"testing"
	"time"

	"github.com/apache/iceberg-go"

	"github.com/dataco/clickstream/internal/schema"
)

// BenchmarkEncodeResult encodes a result of 45,000 rows as a data file of
// the aggregates table: for a table whose field ids are the tags' (one
// this package made: the rows are written column by column) and for one
// whose ids differ (each row goes through parquet-go's reflection).
func BenchmarkEncodeResult(b *testing.B) {
	at := time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)
	r := Result{Job: "job", From: at, To: at.Add(time.Hour), ComputedAt: at, Revision: 1, Final: true}
	for i := range 45_000 {
		avg := float64(i%977) / 7
		r.Rows = append(r.Rows, schema.Row{WindowStart: at, WindowEnd: at.Add(time.Hour), URL: fmt.Sprintf("https://shop.example.com/p/%d", i%2000),
			Country: []string{"US", "FR", "DE", "BR", "IN"}[i%5], Clicks: int64(i%100 + 1), UniqueUsers: int64(i%50 + 1),
			TotalTimeSpentS: avg * 3, TimeSpentSamples: 3, AvgTimeSpentS: &avg, Grain: schema.GrainWindow})
	}
	own := AggregatesSchema()
	fields := own.Fields()
	// The same fields numbered from 100: as another catalog may number them.
	for i := range fields {
		fields[i].ID += 100
	}
	renumbered := iceberg.NewSchema(0, fields...)
	for _, c := range []struct {
		name string
		ts   *iceberg.Schema
	}{{"own-ids", own}, {"other-ids", renumbered}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := encodeResult(r, c.ts); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(r.Rows)), "ns/row")
		})
	}
}
