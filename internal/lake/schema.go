package lake

import (
	"fmt"

	"github.com/parquet-go/parquet-go"

	"github.com/dataco/clickstream/internal/event"
)

// Field ids of the columns of a Parquet data file: the Parquet field_id of
// each column, and the id of the matching field of the lake's Apache
// Iceberg schema.
const (
	FieldUserID    = 1
	FieldTimestamp = 2
	FieldURL       = 3
	FieldCountry   = 4
	FieldCity      = 5
	FieldUserAgent = 6
	FieldIsBot     = 7
)

// Column names of a Parquet data file.
const (
	ColumnUserID    = "user_id"
	ColumnTimestamp = "ts"
	ColumnURL       = "url"
	ColumnCountry   = "country"
	ColumnCity      = "city"
	ColumnUserAgent = "user_agent"
	ColumnIsBot     = "is_bot"
)

// Column is one column of a Parquet data file as the Iceberg schema
// declares it. Every column is required (never null) in the files that
// have it.
type Column struct {
	FieldID int
	Name    string
	// Type is the Iceberg primitive type: "string", "boolean", or
	// "timestamptz" for ts (Parquet INT64 TIMESTAMP(MICROS,
	// isAdjustedToUTC=true)).
	Type string
	// Added marks a column added to the layout after its first files: a
	// file without it is still a data file of the layout, and reads the
	// column's zero value (is_bot: false). The Iceberg field is optional.
	Added bool
}

// Columns lists the columns of a Parquet data file, in file order.
var Columns = []Column{
	{FieldUserID, ColumnUserID, "string", false},
	{FieldTimestamp, ColumnTimestamp, "timestamptz", false},
	{FieldURL, ColumnURL, "string", false},
	{FieldCountry, ColumnCountry, "string", false},
	{FieldCity, ColumnCity, "string", false},
	{FieldUserAgent, ColumnUserAgent, "string", false},
	{FieldIsBot, ColumnIsBot, "boolean", true},
}

// SortOrder is the order of the rows of every data file, in the terms of an
// Iceberg sort order: each column ascending (nulls first; no column is
// ever null), user_id by its UTF-8 bytes, then ts. A user's events are
// contiguous and in time order. Rows equal on both are further ordered by
// url and country, which the declared order leaves free.
var SortOrder = []string{ColumnUserID, ColumnTimestamp}

// Row is a row of a Parquet data file. Its ts is microseconds since the
// epoch, UTC, where event.Event.Timestamp is milliseconds.
type Row struct {
	UserID    string `parquet:"user_id,id(1),dict"`
	Ts        int64  `parquet:"ts,id(2),timestamp(microsecond:utc),delta"`
	URL       string `parquet:"url,id(3),dict"`
	Country   string `parquet:"country,id(4),dict"`
	City      string `parquet:"city,id(5),dict"`
	UserAgent string `parquet:"user_agent,id(6),dict"`
	// IsBot is ingest's verdict on the user agent (package bots).
	IsBot bool `parquet:"is_bot,id(7)"`
}

// RowOf returns the file row of e.
func RowOf(e *event.Event) Row {
	return Row{UserID: e.UserID, Ts: e.Timestamp * 1000, URL: e.URL, Country: e.Country, City: e.City, UserAgent: e.UserAgent, IsBot: e.IsBot}
}

// Event returns the event of the row, its time truncated to milliseconds
// (toward negative infinity: a row at -1µs is at -1ms).
func (r *Row) Event() event.Event {
	return event.Event{UserID: r.UserID, Timestamp: FloorDiv(r.Ts, 1000), URL: r.URL, Country: r.Country, City: r.City, UserAgent: r.UserAgent, IsBot: r.IsBot}
}

// rowSchema is the Parquet schema of Row.
var rowSchema = parquet.SchemaOf(Row{})

// checkSchema reports the first column of Columns that schema lacks (but
// for added ones) or declares otherwise (type, logical type, field id,
// optional or repeated).
func checkSchema(schema *parquet.Schema) error {
	for _, c := range Columns {
		if _, ok := schema.Lookup(c.Name); !ok && !c.Added {
			return fmt.Errorf("no column %q (field id %d, %s): not a data file of lake layout %d", c.Name, c.FieldID, c.Type, LayoutVersion)
		}
	}
	for _, c := range Columns {
		want, _ := rowSchema.Lookup(c.Name)
		got, ok := schema.Lookup(c.Name)
		if !ok {
			continue // an added column, absent from an older file
		}
		wt, gt := want.Node.Type(), got.Node.Type()
		switch {
		case got.MaxDefinitionLevel != 0 || got.MaxRepetitionLevel != 0:
			return fmt.Errorf("column %q is optional or repeated, want required", c.Name)
		case gt.Kind() != wt.Kind() || logicalType(gt) != logicalType(wt):
			return fmt.Errorf("column %q has type %s %s, want %s %s", c.Name, gt.Kind(), logicalType(gt), wt.Kind(), logicalType(wt))
		case got.Node.ID() != c.FieldID:
			return fmt.Errorf("column %q has field id %d, want %d", c.Name, got.Node.ID(), c.FieldID)
		}
	}
	return nil
}

func logicalType(t parquet.Type) string {
	if lt := t.LogicalType(); lt != nil {
		return lt.String()
	}
	return ""
}
