package icetable

import (
	"fmt"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"
)

// Namespace is the Iceberg namespace of clickstream's tables.
const Namespace = "clickstream"

// EventsTable names the table of the lake's events.
const EventsTable = "events"

// Field ids of the events table. They are the Parquet field ids of the
// lake's data files, so that every engine maps columns by id.
const (
	FieldUserID    = 1
	FieldTs        = 2
	FieldURL       = 3
	FieldCountry   = 4
	FieldCity      = 5
	FieldUserAgent = 6
	FieldIsBot     = 7
)

// Partition field ids of the events table's spec.
const (
	fieldTsHour     = 1000
	fieldUserBucket = 1001
)

// EventsSchema is the schema of the events table. City and user agent are
// optional in the event contract (a missing one is stored empty). is_bot
// (ingest's verdict on the user agent) is optional: added after the first
// data files, which lack it; null reads as false. A table created before
// it gains it by schema evolution (adding the optional fields of this
// schema that the table lacks).
func EventsSchema() *iceberg.Schema {
	return iceberg.NewSchema(0,
		iceberg.NestedField{ID: FieldUserID, Name: "user_id", Type: iceberg.PrimitiveTypes.String, Required: true},
		iceberg.NestedField{ID: FieldTs, Name: "ts", Type: iceberg.PrimitiveTypes.TimestampTz, Required: true},
		iceberg.NestedField{ID: FieldURL, Name: "url", Type: iceberg.PrimitiveTypes.String, Required: true},
		iceberg.NestedField{ID: FieldCountry, Name: "country", Type: iceberg.PrimitiveTypes.String, Required: true},
		iceberg.NestedField{ID: FieldCity, Name: "city", Type: iceberg.PrimitiveTypes.String},
		iceberg.NestedField{ID: FieldUserAgent, Name: "user_agent", Type: iceberg.PrimitiveTypes.String},
		iceberg.NestedField{ID: FieldIsBot, Name: "is_bot", Type: iceberg.PrimitiveTypes.Bool},
	)
}

// EventsSpec partitions events by event-time hour and user bucket, with
// Iceberg's own transforms: hour(ts), bucket(buckets, user_id).
func EventsSpec(buckets int) iceberg.PartitionSpec {
	return iceberg.NewPartitionSpec(
		iceberg.PartitionField{SourceIDs: []int{FieldTs}, FieldID: fieldTsHour, Name: "ts_hour", Transform: iceberg.HourTransform{}},
		iceberg.PartitionField{SourceIDs: []int{FieldUserID}, FieldID: fieldUserBucket, Name: "user_id_bucket", Transform: iceberg.BucketTransform{NumBuckets: buckets}},
	)
}

// EventsSortOrder is the order of the events within a data file: by user,
// then event time, as the aggregation reads them.
func EventsSortOrder() (table.SortOrder, error) {
	so, err := table.NewSortOrder(1, []table.SortField{
		{SourceIDs: []int{FieldUserID}, Transform: iceberg.IdentityTransform{}, Direction: table.SortASC, NullOrder: table.NullsFirst},
		{SourceIDs: []int{FieldTs}, Transform: iceberg.IdentityTransform{}, Direction: table.SortASC, NullOrder: table.NullsFirst},
	})
	if err != nil {
		return table.SortOrder{}, fmt.Errorf("icetable: events sort order: %w", err)
	}
	return so, nil
}
