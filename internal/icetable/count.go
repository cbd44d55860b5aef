package icetable

import (
	"context"
	"fmt"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"
)

// EventsCount is what CountEvents found in the events table.
type EventsCount struct {
	// Snapshot is the snapshot counted; 0 if the table has none yet.
	Snapshot int64
	// Events is the number of events with ts in [from, to).
	Events int64
	// Files is the number of data files the scan read.
	Files int
	// Positions is how far the snapshot holds every lake source
	// (PositionsProperty): what it can hold at most.
	Positions map[string]Position
}

// CountEvents counts the events of the events table's current snapshot
// whose ts lies in [from, to), reading only the ts column of the files the
// table's metadata cannot prune, one record batch at a time. It publishes
// nothing: a table behind the lake counts what it holds.
func CountEvents(ctx context.Context, cat catalog.Catalog, from, to time.Time) (EventsCount, error) {
	tbl, err := cat.LoadTable(ctx, Ident(EventsTable))
	if err != nil {
		return EventsCount{}, fmt.Errorf("icetable: count events: %w", err)
	}
	var c EventsCount
	if c.Positions, err = Positions(tbl); err != nil {
		return c, err
	}
	snap := tbl.CurrentSnapshot()
	if snap == nil {
		return c, nil
	}
	c.Snapshot = snap.SnapshotID
	lo, hi := from.UnixMicro(), to.UnixMicro()
	filter := iceberg.NewAnd(
		iceberg.GreaterThanEqual(iceberg.Reference("ts"), iceberg.Timestamp(lo)),
		iceberg.LessThan(iceberg.Reference("ts"), iceberg.Timestamp(hi)))
	scan := tbl.Scan(table.WithSnapshotID(c.Snapshot), table.WithRowFilter(filter), table.WithSelectedFields("ts"))
	tasks, err := scan.PlanFiles(ctx)
	if err != nil {
		return c, fmt.Errorf("icetable: count events: %w", err)
	}
	c.Files = len(tasks)
	_, batches, err := scan.ToArrowRecords(ctx)
	if err != nil {
		return c, fmt.Errorf("icetable: count events: %w", err)
	}
	for rec, err := range batches {
		if err != nil {
			return c, fmt.Errorf("icetable: count events: %w", err)
		}
		ts, ok := rec.Column(0).(*array.Timestamp)
		if !ok || rec.NumCols() != 1 {
			rec.Release()
			return c, fmt.Errorf("icetable: count events: unexpected arrow schema %s", rec.Schema())
		}
		// The row filter is applied by the scan; checking each value
		// again costs little and does not depend on it.
		for i := range ts.Len() {
			if v := int64(ts.Value(i)); ts.IsValid(i) && v >= lo && v < hi {
				c.Events++
			}
		}
		rec.Release()
	}
	return c, nil
}

// PositionOf returns how far positions (Positions of the events table)
// hold source; the zero Position if not at all.
func PositionOf(positions map[string]Position, source string) Position {
	return positions[sourceKey(source)]
}
