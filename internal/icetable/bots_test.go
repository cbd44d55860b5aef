package icetable_test

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"

	"github.com/dataco/clickstream/internal/icetable"
	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/lake/laketest"
)

// TestEventsTableIsBot: the events table carries is_bot (field 7,
// optional), read back by ReadEvents; a table created before the field
// gains it by schema evolution in EnsureEvents.
func TestEventsTableIsBot(t *testing.T) {
	ctx := context.Background()
	count := func(t *testing.T, cat catalog.Catalog) (events, bots int) {
		t.Helper()
		evs, err := icetable.ReadEvents(ctx, cat)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			if e.IsBot {
				bots++
			}
		}
		return len(evs), bots
	}

	t.Run("new table", func(t *testing.T) {
		l := newTestLake(t)
		f, ok := icetable.EventsSchema().FindFieldByName("is_bot")
		if !ok || f.ID != lake.FieldIsBot || f.Required || !f.Type.Equals(iceberg.PrimitiveTypes.Bool) {
			t.Fatalf("is_bot field %+v, want optional boolean id %d", f, lake.FieldIsBot)
		}
		n := l.commit(t, "clicks-0", 1, 500, rand.New(rand.NewPCG(5, 6)))
		if _, err := icetable.Publish(ctx, l.cat, l.store); err != nil {
			t.Fatal(err)
		}
		events, bots := count(t, l.cat)
		if int64(events) != n || bots == 0 || bots == events {
			t.Fatalf("read %d events, %d of bots; want %d, some of bots", events, bots, n)
		}
	})

	t.Run("table from before is_bot", func(t *testing.T) {
		store := laketest.NewFile(t)
		if _, err := lake.EnsureMeta(ctx, store, testBuckets); err != nil {
			t.Fatal(err)
		}
		uri, err := icetable.DefaultCatalogURI(store.URI())
		if err != nil {
			t.Fatal(err)
		}
		cat, err := icetable.OpenCatalog(ctx, uri, icetable.CatalogOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer icetable.Close(cat)
		var old []iceberg.NestedField
		for _, f := range icetable.EventsSchema().Fields() {
			if f.Name != "is_bot" {
				old = append(old, f)
			}
		}
		spec := icetable.EventsSpec(testBuckets)
		order, err := icetable.EventsSortOrder()
		if err != nil {
			t.Fatal(err)
		}
		if err := cat.CreateNamespace(ctx, table.Identifier{icetable.Namespace}, iceberg.Properties{}); err != nil {
			t.Fatal(err)
		}
		if _, err := cat.CreateTable(ctx, icetable.Ident(icetable.EventsTable), iceberg.NewSchema(0, old...),
			catalog.WithLocation(strings.TrimSuffix(store.URI(), "/")+"/"+strings.TrimSuffix(lake.EventsPrefix, "/")),
			catalog.WithPartitionSpec(&spec), catalog.WithSortOrder(order),
			catalog.WithProperties(iceberg.Properties{"format-version": "2"})); err != nil {
			t.Fatal(err)
		}
		tbl, err := icetable.EnsureEvents(ctx, cat, store, testBuckets)
		if err != nil {
			t.Fatalf("EnsureEvents on a table without is_bot: %v", err)
		}
		// Schema evolution added the field, with the id the data files use.
		if f, ok := tbl.Schema().FindFieldByName("is_bot"); !ok || f.ID != lake.FieldIsBot || f.Required {
			t.Fatalf("after EnsureEvents: is_bot field %+v (found %v), want optional id %d", f, ok, lake.FieldIsBot)
		}
		l := &testLake{store: store, cat: cat, uri: uri}
		n := l.commit(t, "clicks-0", 1, 300, rand.New(rand.NewPCG(7, 8)))
		if _, err := icetable.Publish(ctx, cat, store); err != nil {
			t.Fatal(err)
		}
		if events, bots := count(t, cat); int64(events) != n || bots == 0 || bots == events {
			t.Fatalf("read %d events, %d of bots; want %d, some of bots", events, bots, n)
		}
	})
}
