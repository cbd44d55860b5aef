package icetable_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"

	"github.com/dataco/clickstream/internal/event"
	"github.com/dataco/clickstream/internal/icetable"
	"github.com/dataco/clickstream/internal/icetable/icetabletest"
	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/lake/laketest"
	"github.com/dataco/clickstream/internal/secret"
)

const testBuckets = 4

// catalogs are the catalogs the publication tests run against: SQLite,
// a file lake's default, and PostgreSQL, a cluster's (the local stack's).
var catalogs = []string{"sqlite", "postgres"}

// forEachCatalog runs test once per catalog, in a subtest named for it.
func forEachCatalog(t *testing.T, test func(t *testing.T, kind string)) {
	t.Helper()
	for _, kind := range catalogs {
		t.Run(kind, func(t *testing.T) { test(t, kind) })
	}
}

// testLake is a lake with its catalog and events table.
type testLake struct {
	store lake.Store
	cat   catalog.Catalog
	uri   string // the catalog's
	opts  icetable.CatalogOptions
}

func newTestLake(t testing.TB) *testLake { return newTestLakeOn(t, laketest.NewFile(t), "sqlite") }

// newTestLakeOn makes store a lake with a catalog of kind of its own: for
// SQLite, the default one of a file lake, or one in a temporary folder
// for an S3 lake; for PostgreSQL, a schema of the stack's catalog database
// (icetabletest.Postgres).
func newTestLakeOn(t testing.TB, store lake.Store, kind string) *testLake {
	t.Helper()
	ctx := context.Background()
	if _, err := lake.EnsureMeta(ctx, store, testBuckets); err != nil {
		t.Fatal(err)
	}
	l := &testLake{store: store}
	switch kind {
	case "sqlite":
		uri, err := icetable.DefaultCatalogURI(store.URI())
		if err != nil {
			uri = "sqlite://" + filepath.Join(t.TempDir(), "catalog.db")
		}
		l.uri = uri
	case "postgres":
		l.uri, l.opts = icetabletest.Postgres(t)
	default:
		t.Fatalf("no catalog %q", kind)
	}
	l.opts.Props = icetable.S3Props(laketest.S3Options())
	l.cat = l.open(t)
	return l
}

// open opens the lake's catalog, a connection of its own as another
// process would have, and ensures the events table.
func (l *testLake) open(t testing.TB) catalog.Catalog {
	t.Helper()
	cat, err := icetable.OpenCatalog(context.Background(), l.uri, l.opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { icetable.Close(cat) })
	if _, err := icetable.EnsureEvents(context.Background(), cat, l.store, testBuckets); err != nil {
		t.Fatal(err)
	}
	return cat
}

var hour0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

// commit writes a lake commit of n events of source at seq, as ingest
// does: a data file per partition, then the manifest. It also writes a
// file of a failed attempt that no manifest names.
func (l *testLake) commit(t testing.TB, source string, seq uint64, n int, rng *rand.Rand) int64 {
	t.Helper()
	ctx := context.Background()
	parts := map[lake.Partition][]event.Event{}
	for range n {
		u := rng.IntN(50)
		ev := event.Event{
			UserID:    fmt.Sprintf("user-%d", u),
			IsBot:     u%10 == 7, // a few crawlers
			Timestamp: hour0.Add(time.Duration(rng.Int64N(int64(3 * time.Hour)))).UnixMilli(),
			URL:       fmt.Sprintf("/p/%d", rng.IntN(10)),
			Country:   "NL",
		}
		p := lake.Partition{Hour: lake.HourOf(ev.Timestamp), Bucket: lake.Bucket(ev.UserID, testBuckets)}
		parts[p] = append(parts[p], ev)
	}
	m := &lake.Manifest{Source: source, Seq: seq, Writer: "w", Start: int64(seq-1) * 1000, End: int64(seq) * 1000, ValidCount: int64(n)}
	for p, evs := range parts {
		data, err := lake.EncodeParquet(evs)
		if err != nil {
			t.Fatal(err)
		}
		key := lake.DataFileKey(p, source, seq, "w", ".parquet")
		if err := l.store.Put(ctx, key, data); err != nil {
			t.Fatal(err)
		}
		// A failed attempt's file of the same partition: never referenced.
		if err := l.store.Put(ctx, lake.DataFileKey(p, source, seq, "failed", ".parquet"), data); err != nil {
			t.Fatal(err)
		}
		minTs, maxTs := evs[0].Timestamp, evs[0].Timestamp
		for _, e := range evs {
			minTs, maxTs = min(minTs, e.Timestamp), max(maxTs, e.Timestamp)
		}
		m.Files = append(m.Files, lake.DataFile{Key: key, Bucket: p.Bucket, Hour: p.Hour.Format(lake.HourFormat),
			Events: int64(len(evs)), Bytes: int64(len(data)), MinTs: minTs, MaxTs: maxTs})
	}
	if err := lake.Commit(ctx, l.store, m); err != nil {
		t.Fatal(err)
	}
	return int64(n)
}

// tableFiles returns the data files of the table's current snapshot:
// path → record count.
func tableFiles(t *testing.T, cat catalog.Catalog) map[string]int64 {
	t.Helper()
	tbl, err := cat.LoadTable(context.Background(), icetable.Ident(icetable.EventsTable))
	if err != nil {
		t.Fatal(err)
	}
	tasks, err := tbl.Scan().PlanFiles(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]int64{}
	for _, task := range tasks {
		if _, dup := files[task.File.FilePath()]; dup {
			t.Errorf("file %s twice in the table", task.File.FilePath())
		}
		files[task.File.FilePath()] = task.File.Count()
	}
	return files
}

// lakeFiles returns the data files the lake's manifests name.
func lakeFiles(t *testing.T, store lake.Store) map[string]int64 {
	t.Helper()
	snap, err := lake.ReadSnapshot(context.Background(), store)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]int64{}
	for _, m := range snap.Manifests {
		for _, f := range m.Files {
			files[store.URI()+"/"+f.Key] = f.Events
		}
	}
	return files
}

func equalFiles(t *testing.T, got, want map[string]int64) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("table holds %d files, the lake's manifests %d", len(got), len(want))
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("file %s: table says %d records, manifest %d", k, got[k], n)
		}
	}
}

func TestPublishExactlyOnce(t *testing.T) {
	t.Run("file", func(t *testing.T) {
		forEachCatalog(t, func(t *testing.T, kind string) { testPublishExactlyOnce(t, laketest.NewFile(t), kind) })
	})
	t.Run("s3", func(t *testing.T) {
		forEachCatalog(t, func(t *testing.T, kind string) { testPublishExactlyOnce(t, laketest.NewS3(t), kind) })
	})
}

func testPublishExactlyOnce(t *testing.T, store lake.Store, kind string) {
	ctx := context.Background()
	l := newTestLakeOn(t, store, kind)
	rng := rand.New(rand.NewPCG(1, 2))
	var want int64
	for seq := uint64(1); seq <= 3; seq++ {
		want += l.commit(t, "clicks-0", seq, 200, rng)
		want += l.commit(t, "clicks-1", seq, 100, rng)
	}
	p, err := icetable.Publish(ctx, l.cat, l.store)
	if err != nil {
		t.Fatal(err)
	}
	if p.Manifests != 6 || p.Events != want || p.Snapshot == 0 {
		t.Fatalf("published %+v, want 6 manifests and %d events", p, want)
	}
	// Nothing new: nothing added, no snapshot.
	again, err := icetable.Publish(ctx, l.cat, l.store)
	if err != nil || again.Manifests != 0 || again.Snapshot != 0 {
		t.Fatalf("second publish: %+v, %v; want nothing", again, err)
	}
	want += l.commit(t, "clicks-0", 4, 50, rng)
	p, err = icetable.Publish(ctx, l.cat, l.store)
	if err != nil || p.Manifests != 1 || p.Events != 50 {
		t.Fatalf("publish after one commit: %+v, %v", p, err)
	}
	equalFiles(t, tableFiles(t, l.cat), lakeFiles(t, l.store))

	tbl, err := l.cat.LoadTable(ctx, icetable.Ident(icetable.EventsTable))
	if err != nil {
		t.Fatal(err)
	}
	pos, err := icetable.Positions(tbl)
	if err != nil {
		t.Fatal(err)
	}
	if pos["clicks-0"] != (icetable.Position{Seq: 4, End: 4000}) || pos["clicks-1"] != (icetable.Position{Seq: 3, End: 3000}) {
		t.Errorf("positions %+v", pos)
	}
	if s := tbl.CurrentSnapshot(); s.Summary.Properties["total-records"] != fmt.Sprint(want) {
		t.Errorf("snapshot total-records %s, want %d", s.Summary.Properties["total-records"], want)
	}
}

// TestPublishStopsAtGap: a commit whose predecessor is not visible is not
// published before it.
func TestPublishStopsAtGap(t *testing.T) {
	ctx := context.Background()
	l := newTestLake(t)
	rng := rand.New(rand.NewPCG(3, 4))
	l.commit(t, "s", 1, 10, rng)
	l.commit(t, "s", 3, 10, rng) // 2 missing
	p, err := icetable.Publish(ctx, l.cat, l.store)
	if err != nil || p.Manifests != 1 {
		t.Fatalf("publish: %+v, %v; want only commit 1", p, err)
	}
	l.commit(t, "s", 2, 10, rng)
	p, err = icetable.Publish(ctx, l.cat, l.store)
	if err != nil || p.Manifests != 2 {
		t.Fatalf("publish: %+v, %v; want commits 2 and 3", p, err)
	}
	equalFiles(t, tableFiles(t, l.cat), lakeFiles(t, l.store))
}

// TestConcurrentPublishers: publishers racing, each with its own catalog
// connection as separate processes would have, while commits land, add
// every commit exactly once.
func TestConcurrentPublishers(t *testing.T) { forEachCatalog(t, testConcurrentPublishers) }

func testConcurrentPublishers(t *testing.T, kind string) {
	ctx := context.Background()
	l := newTestLakeOn(t, laketest.NewFile(t), kind)
	const publishers, commits = 4, 12
	cats := make([]catalog.Catalog, publishers)
	for i := range cats {
		cats[i] = l.open(t)
	}
	var wg sync.WaitGroup
	done := make(chan struct{})
	errs := make(chan error, publishers)
	for i := range publishers {
		wg.Go(func() {
			for {
				if _, err := icetable.Publish(ctx, cats[i], l.store); err != nil {
					errs <- err
					return
				}
				select {
				case <-done:
					return
				default:
				}
			}
		})
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for seq := uint64(1); seq <= commits; seq++ {
		l.commit(t, "a", seq, 20, rng)
		l.commit(t, "b", seq, 20, rng)
	}
	close(done)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if _, err := icetable.Publish(ctx, l.cat, l.store); err != nil {
		t.Fatal(err)
	}
	equalFiles(t, tableFiles(t, l.cat), lakeFiles(t, l.store))
}

// TestMetadataUnderLake: a file lake's table metadata lives in the lake
// folder, and the table's files are the lake's.
func TestMetadataUnderLake(t *testing.T) {
	l := newTestLake(t)
	tbl, err := l.cat.LoadTable(context.Background(), icetable.Ident(icetable.EventsTable))
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(tbl.MetadataLocation())
	if err != nil {
		t.Fatal(err)
	}
	root, _ := url.Parse(l.store.URI())
	if rel, err := filepath.Rel(root.Path, u.Path); err != nil || filepath.Dir(rel) != filepath.Join("events", "metadata") {
		t.Errorf("metadata at %s, want under %s/events/metadata", tbl.MetadataLocation(), l.store.URI())
	}
	order := tbl.SortOrder()
	if order.Len() != 2 {
		t.Errorf("sort order %s, want user_id, ts", order)
	}
	_ = table.MainBranch
}

func TestCatalogURIs(t *testing.T) {
	if _, err := icetable.DefaultCatalogURI("s3://bucket/lake"); err == nil {
		t.Error("an s3 lake got an embedded catalog")
	}
	for _, bad := range []string{"sqlite://rel/path.db", "sqlite:///a/../b.db", "mysql://x", "nothing",
		"postgres://h:5432/db", "postgres://u@h:5432/", "postgres://u@/db", "postgres://u@h/db/more"} {
		if _, err := icetable.OpenCatalog(context.Background(), bad, icetable.CatalogOptions{}); !errors.Is(err, icetable.ErrBadCatalogURI) {
			t.Errorf("OpenCatalog(%q): %v, want ErrBadCatalogURI", bad, err)
		}
	}
	// A password in the URI is refused, and the error does not show it.
	for _, withPassword := range []string{"postgres://u:hunter2@h:5432/db", "postgresql://u@h/db?sslmode=disable&password=hunter2",
		"postgres://u:hunter2@h:5432/db?sslmode=%zz"} {
		_, err := icetable.OpenCatalog(context.Background(), withPassword, icetable.CatalogOptions{})
		if !errors.Is(err, icetable.ErrBadCatalogURI) || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("OpenCatalog(%q): %v, want ErrBadCatalogURI, no password", withPassword, err)
		}
		if _, parses := url.Parse(withPassword); parses == nil && !errors.Is(err, secret.ErrInAddress) {
			t.Errorf("OpenCatalog(%q): %v, want secret.ErrInAddress", withPassword, err)
		}
	}
	for uri, want := range map[string]string{
		"sqlite:///lake/_catalog.db":                              "sqlite:///lake/_catalog.db",
		"postgres://u@h:5432/db?sslmode=disable&search_path=s":    "postgres://h:5432/db",
		"postgres://u:hunter2@h:5432/db":                          "postgres://h:5432/db",
		"u:hunter2@h":                                             "bare…",
		"postgres://u:hunter2@h:5432/db?sslmode=%zz&x=y":          "postgres://h:5432/db",
		"postgres://u:hunter2@h:5432/db?sslmode=disable#fragment": "postgres://h:5432/db",
	} {
		if got := icetable.DisplayCatalogURI(uri); got != want {
			t.Errorf("DisplayCatalogURI(%q) = %q, want %q", uri, got, want)
		}
	}
}

// TestPostgresCatalogPassword: the password comes from the file; a wrong
// one fails, and no error shows it.
func TestPostgresCatalogPassword(t *testing.T) {
	uri, opts := icetabletest.Postgres(t)
	wrong := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(wrong, []byte("not-the-password-7f3a\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := icetable.OpenCatalog(context.Background(), uri, icetable.CatalogOptions{PasswordFile: wrong})
	if err == nil || strings.Contains(err.Error(), "not-the-password-7f3a") {
		t.Errorf("a wrong password: %v, want an error that does not show it", err)
	}
	if _, err := icetable.OpenCatalog(context.Background(), uri, icetable.CatalogOptions{PasswordFile: filepath.Join(t.TempDir(), "missing")}); err == nil {
		t.Error("a missing password file: no error")
	}
	cat, err := icetable.OpenCatalog(context.Background(), uri, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := icetable.Close(cat); err != nil {
		t.Error(err)
	}
}

// TestPostgresCatalogsStartTogether: processes that open a new PostgreSQL
// catalog at once, racing to create its tables, all open it.
func TestPostgresCatalogsStartTogether(t *testing.T) {
	uri, opts := icetabletest.Postgres(t)
	const processes = 6
	var wg sync.WaitGroup
	errs := make([]error, processes)
	for i := range processes {
		wg.Go(func() {
			cat, err := icetable.OpenCatalog(context.Background(), uri, opts)
			if err == nil {
				err = icetable.Close(cat)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("catalog %d: %v", i, err)
		}
	}
}

// TestPublishFollowingWatermarks: a publication that follows the
// watermark records adds every commit they announce, once; a commit whose
// record was not written waits for a full publication, which adds it.
func TestPublishFollowingWatermarks(t *testing.T) {
	ctx := context.Background()
	l := newTestLake(t)
	rng := rand.New(rand.NewPCG(13, 14))
	for seq := uint64(1); seq <= 3; seq++ {
		l.commit(t, "a", seq, 50, rng)
		l.commit(t, "b", seq, 50, rng)
	}
	p, err := icetable.PublishFollowingWatermarks(ctx, l.cat, l.store)
	if err != nil || p.Manifests != 6 {
		t.Fatalf("publication: %+v, %v; want the 6 commits", p, err)
	}
	equalFiles(t, tableFiles(t, l.cat), lakeFiles(t, l.store))
	// A commit of b whose watermark record was lost: b's record still
	// says seq 3.
	prev, err := l.store.Get(ctx, lake.WatermarkKey("b"))
	if err != nil {
		t.Fatal(err)
	}
	l.commit(t, "b", 4, 50, rng)
	if err := l.store.Put(ctx, lake.WatermarkKey("b"), prev); err != nil {
		t.Fatal(err)
	}
	l.commit(t, "a", 4, 50, rng)
	if p, err := icetable.PublishFollowingWatermarks(ctx, l.cat, l.store); err != nil || p.Manifests != 1 {
		t.Fatalf("publication: %+v, %v; want a's commit 4 only", p, err)
	}
	if p, err := icetable.Publish(ctx, l.cat, l.store); err != nil || p.Manifests != 1 {
		t.Fatalf("full publication: %+v, %v; want b's commit 4", p, err)
	}
	equalFiles(t, tableFiles(t, l.cat), lakeFiles(t, l.store))
}
