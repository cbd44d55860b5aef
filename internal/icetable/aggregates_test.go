package icetable_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"

	"github.com/dataco/clickstream/internal/icetable"
	"github.com/dataco/clickstream/internal/lake/laketest"
	"github.com/dataco/clickstream/internal/schema"
)

func resultRows(from, to time.Time, n int, clicks int64) []schema.Row {
	rows := make([]schema.Row, n)
	for i := range rows {
		avg := 1.5
		rows[i] = schema.Row{WindowStart: from, WindowEnd: to, URL: fmt.Sprintf("/p/%d", i), Country: "NL",
			Clicks: clicks, UniqueUsers: 1, TotalTimeSpentS: 3, TimeSpentSamples: 2, AvgTimeSpentS: &avg, BotClicks: int64(i % 3)}
	}
	return rows
}

// aggregatesView reads the aggregates table: rows and total clicks per
// job id, and the number of snapshots.
func aggregatesView(t *testing.T, cat catalog.Catalog) (clicksByJob map[string]int64, rows int64, snapshots int) {
	t.Helper()
	ctx := context.Background()
	got, err := icetable.ReadAggregates(ctx, cat)
	if err != nil {
		t.Fatal(err)
	}
	clicksByJob = map[string]int64{}
	for _, r := range got {
		clicksByJob[r.Job] += r.Clicks
		var i int
		fmt.Sscanf(r.URL, "/p/%d", &i)
		if r.AvgTimeSpentS == nil || *r.AvgTimeSpentS != 1.5 || r.WindowEnd.Sub(r.WindowStart) != time.Hour || r.BotClicks != int64(i%3) {
			t.Errorf("row %+v: not as published", r)
		}
	}
	tbl, err := cat.LoadTable(ctx, icetable.Ident(icetable.AggregatesTable))
	if err != nil {
		t.Fatal(err)
	}
	return clicksByJob, int64(len(got)), len(tbl.Metadata().Snapshots())
}

// TestPublishResultReplacesItsWindow: a window's result replaces the
// window's earlier one and no other; publishing the same run again
// changes nothing.
func TestPublishResultReplacesItsWindow(t *testing.T) {
	forEachCatalog(t, testPublishResultReplacesItsWindow)
}

func testPublishResultReplacesItsWindow(t *testing.T, kind string) {
	ctx := context.Background()
	l := newTestLakeOn(t, laketest.NewFile(t), kind)
	if _, err := icetable.EnsureAggregates(ctx, l.cat, l.store); err != nil {
		t.Fatal(err)
	}
	w1, w2 := hour0, hour0.Add(time.Hour)
	publish := func(job, run string, from time.Time, n int, clicks int64) {
		t.Helper()
		r := icetable.Result{Job: job, Run: run, From: from, To: from.Add(time.Hour), Rows: resultRows(from, from.Add(time.Hour), n, clicks)}
		if err := icetable.PublishResult(ctx, l.cat, l.store, r); err != nil {
			t.Fatal(err)
		}
	}
	publish("job-a", "run-1", w1, 3, 10)
	publish("job-a", "run-1", w1, 3, 10) // again: nothing changes
	byJob, rows, snaps := aggregatesView(t, l.cat)
	if rows != 3 || byJob["job-a"] != 30 || snaps != 1 {
		t.Fatalf("after one result: %d rows, clicks %v, %d snapshots; want 3 rows, 30 clicks, 1 snapshot", rows, byJob, snaps)
	}
	publish("job-b", "run-1", w2, 2, 5)
	publish("job-c", "run-1", w1, 4, 7) // a re-run of window 1
	byJob, rows, _ = aggregatesView(t, l.cat)
	if rows != 6 || byJob["job-a"] != 0 || byJob["job-b"] != 10 || byJob["job-c"] != 28 {
		t.Fatalf("after a re-run: %d rows, clicks %v; want window 1 from job-c only (28), window 2 from job-b (10)", rows, byJob)
	}
	// A roll-up of the same span (a grain other than window) neither
	// replaces the window's rows nor is replaced by the window's next run.
	day := resultRows(w1, w1.Add(time.Hour), 2, 100)
	for i := range day {
		day[i].Grain = schema.GrainDay
	}
	day[1].Approximate = true
	if err := icetable.PublishResult(ctx, l.cat, l.store, icetable.Result{Job: "rollup-1", Run: "r1", From: w1, To: w1.Add(time.Hour), Grain: schema.GrainDay, Rows: day}); err != nil {
		t.Fatal(err)
	}
	publish("job-d", "run-1", w1, 1, 1)
	byJob, rows, _ = aggregatesView(t, l.cat)
	if rows != 5 || byJob["job-c"] != 0 || byJob["job-d"] != 1 || byJob["rollup-1"] != 200 || byJob["job-b"] != 10 {
		t.Fatalf("after a roll-up and a re-run: %d rows, clicks %v; want job-d 1, rollup-1 200, job-b 10", rows, byJob)
	}
	got, err := icetable.ReadAggregates(ctx, l.cat)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range got {
		if (r.Job == "rollup-1") != (r.Grain == schema.GrainDay) {
			t.Errorf("row of %s has grain %q", r.Job, r.Grain)
		}
		if r.Approximate != (r.Job == "rollup-1" && r.URL == day[1].URL) {
			t.Errorf("row %s %s: approximate %v", r.Job, r.URL, r.Approximate)
		}
	}
}

// TestPublishResultToATableWithoutGrain: a table created before the
// grain and approximate fields still takes results (their files leave the
// columns out), as before; the schema evolution adds the fields.
func TestPublishResultToATableWithoutGrain(t *testing.T) {
	ctx := context.Background()
	l := newTestLakeOn(t, laketest.NewFile(t), "sqlite")
	var old []iceberg.NestedField
	for _, f := range icetable.AggregatesSchema().Fields() {
		if f.ID <= 11 {
			old = append(old, f)
		}
	}
	if err := l.cat.CreateNamespace(ctx, table.Identifier{icetable.Namespace}, iceberg.Properties{}); err != nil && !errors.Is(err, catalog.ErrNamespaceAlreadyExists) {
		t.Fatal(err)
	}
	spec := iceberg.NewPartitionSpec(iceberg.PartitionField{SourceIDs: []int{1}, FieldID: 1000, Name: "window_start_day", Transform: iceberg.DayTransform{}})
	if _, err := l.cat.CreateTable(ctx, icetable.Ident(icetable.AggregatesTable), iceberg.NewSchema(0, old...),
		catalog.WithLocation(strings.TrimSuffix(l.store.URI(), "/")+"/aggregates"), catalog.WithPartitionSpec(&spec)); err != nil {
		t.Fatal(err)
	}
	rows := resultRows(hour0, hour0.Add(time.Hour), 3, 10)
	rows[0].Grain = schema.GrainWindow
	if err := icetable.PublishResult(ctx, l.cat, l.store, icetable.Result{Job: "job-a", Run: "run-1", From: hour0, To: hour0.Add(time.Hour), Rows: rows}); err != nil {
		t.Fatal(err)
	}
	// The table has none of the appended columns (EnsureAggregates would
	// add them): the file leaves them out, and they read as zero.
	got, err := icetable.ReadAggregates(ctx, l.cat)
	if err != nil {
		t.Fatal(err)
	}
	var clicks int64
	for _, r := range got {
		clicks += r.Clicks
		if r.Job != "job-a" || r.Grain != "" || r.BotClicks != 0 || r.Revision != 0 {
			t.Errorf("row %+v: want job-a's, without the appended columns", r)
		}
	}
	if len(got) != 3 || clicks != 30 {
		t.Fatalf("%d rows, %d clicks; want 3 rows, 30 clicks", len(got), clicks)
	}
}
