package icetable_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/apache/iceberg-go"

	"github.com/dataco/clickstream/internal/icetable"
	"github.com/dataco/clickstream/internal/icetable/icetabletest"
	"github.com/dataco/clickstream/internal/lake/laketest"
)

// aggregatesSchemaV1 is the aggregates table's schema before the
// provenance columns (fields 1 to 11).
func aggregatesSchemaV1() *iceberg.Schema {
	var fields []iceberg.NestedField
	for _, f := range icetable.AggregatesSchema().Fields() {
		if f.ID <= 11 {
			fields = append(fields, f)
		}
	}
	return iceberg.NewSchema(0, fields...)
}

// TestAggregatesEvolve: an aggregates table made before the provenance
// columns, holding rows, gets them from EnsureAggregates (one schema
// update, ids 12 to 15, optional); its old rows read null (zero) in them,
// new results carry them, and outside readers read both; ensuring it again
// changes nothing.
func TestAggregatesEvolve(t *testing.T) {
	forEachCatalog(t, testAggregatesEvolve)
}

func testAggregatesEvolve(t *testing.T, kind string) {
	ctx := context.Background()
	l := newTestLakeOn(t, laketest.NewFile(t), kind)
	old, err := icetable.EnsureAggregatesWith(ctx, l.cat, l.store, aggregatesSchemaV1())
	if err != nil {
		t.Fatal(err)
	}
	if n := len(old.Schema().Fields()); n != 11 {
		t.Fatalf("old table has %d fields", n)
	}
	w1, w2 := hour0, hour0.Add(time.Hour)
	if err := icetable.PublishResultV1(ctx, l.cat, l.store, icetable.Result{Job: "job-old", Run: "job-old-1", From: w1, To: w1.Add(time.Hour),
		Rows: resultRows(w1, w1.Add(time.Hour), 3, 10)}); err != nil {
		t.Fatal(err)
	}

	tbl, err := icetable.EnsureAggregates(ctx, l.cat, l.store)
	if err != nil {
		t.Fatal(err)
	}
	s := tbl.Schema()
	for _, want := range icetable.AggregatesSchema().Fields() {
		got, ok := s.FindFieldByID(want.ID)
		if !ok || got.Name != want.Name || !got.Type.Equals(want.Type) || got.Required != want.Required {
			t.Errorf("field %d: %+v (found %v), want %+v", want.ID, got, ok, want)
		}
	}
	if s.ID == old.Schema().ID || len(tbl.Metadata().Schemas()) != 2 {
		t.Errorf("schema %d after evolving (was %d), %d schemas", s.ID, old.Schema().ID, len(tbl.Metadata().Schemas()))
	}

	wm := w2.Add(2 * time.Hour)
	computed := wm.Add(time.Minute)
	if err := icetable.PublishResult(ctx, l.cat, l.store, icetable.Result{Job: "job-new", Run: "job-new-1", From: w2, To: w2.Add(time.Hour),
		Revision: 3, ComputedAt: computed, Watermark: &wm, Final: true, EventsSnapshot: 99,
		Rows: resultRows(w2, w2.Add(time.Hour), 2, 5)}); err != nil {
		t.Fatal(err)
	}
	rows, err := icetable.ReadAggregates(ctx, l.cat)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 5 {
		t.Fatalf("%d rows, want 5", len(rows))
	}
	for _, r := range rows {
		switch r.Job {
		case "job-old":
			if r.Revision != 0 || !r.ComputedAt.IsZero() || r.Watermark != nil || r.Final || r.EventsSnapshot != 0 {
				t.Errorf("old row %+v: provenance not null", r)
			}
		case "job-new":
			if r.Revision != 3 || !r.ComputedAt.Equal(computed) || r.Watermark == nil || !r.Watermark.Equal(wm) || !r.Final || r.EventsSnapshot != 99 {
				t.Errorf("new row %+v: not as published", r)
			}
		default:
			t.Errorf("row of job %q", r.Job)
		}
	}

	again, err := icetable.EnsureAggregates(ctx, l.cat, l.store)
	if err != nil || again.Schema().ID != s.ID || len(again.Metadata().Schemas()) != 2 {
		t.Errorf("ensuring an evolved table again: schema %v, %v", again.Schema(), err)
	}

	if kind == "sqlite" {
		// Outside readers see old and new rows through the evolved schema.
		py, duck := icetabletest.Read(t, l.uri, icetable.Namespace+"."+icetable.AggregatesTable, "url", "window_start", "revision", "final", "watermark")
		if py.Rows != 5 || duck.Rows != 5 || py.Checksum != duck.Checksum {
			t.Errorf("outside readers: pyiceberg %+v, duckdb %+v; want 5 rows each, the same checksum", py, duck)
		}
	}
}

// TestEvolveSchemaConflicts: EvolveSchema adds only optional fields whose
// ids the table would assign; a table whose next id is taken (a column
// another version appended), a required missing field, or a field of
// another type is an error, and the table is left as it was.
func TestEvolveSchemaConflicts(t *testing.T) {
	ctx := context.Background()
	l := newTestLakeOn(t, laketest.NewFile(t), "sqlite")
	v1 := aggregatesSchemaV1().Fields()
	other := iceberg.NewSchema(0, append(v1, iceberg.NestedField{ID: 12, Name: "bot_clicks", Type: iceberg.PrimitiveTypes.Int64})...)
	if _, err := icetable.EnsureAggregatesWith(ctx, l.cat, l.store, other); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]*iceberg.Schema{
		"the next id taken": icetable.AggregatesSchema(),
		"required field":    iceberg.NewSchema(0, append(v1, iceberg.NestedField{ID: 13, Name: "grain", Type: iceberg.PrimitiveTypes.String, Required: true})...),
		"another type":      iceberg.NewSchema(0, append(v1, iceberg.NestedField{ID: 12, Name: "bot_clicks", Type: iceberg.PrimitiveTypes.String})...),
		"another id":        iceberg.NewSchema(0, append(v1, iceberg.NestedField{ID: 13, Name: "bot_clicks", Type: iceberg.PrimitiveTypes.Int64})...),
	} {
		if _, err := icetable.EvolveSchema(ctx, l.cat, icetable.AggregatesTable, want); !errors.Is(err, icetable.ErrSchemaConflict) {
			t.Errorf("%s: %v, want ErrSchemaConflict", name, err)
		}
	}
	// Both versions' columns: the missing one is added after the other's.
	both := iceberg.NewSchema(0, append(other.Fields(), iceberg.NestedField{ID: 13, Name: "grain", Type: iceberg.PrimitiveTypes.String})...)
	tbl, err := icetable.EvolveSchema(ctx, l.cat, icetable.AggregatesTable, both)
	if err != nil {
		t.Fatal(err)
	}
	if f, ok := tbl.Schema().FindFieldByName("grain"); !ok || f.ID != 13 || f.Required {
		t.Errorf("grain: %+v, %v", f, ok)
	}
}
