package icetable

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	sqlcat "github.com/apache/iceberg-go/catalog/sql"
	icebergio "github.com/apache/iceberg-go/io"
	_ "github.com/apache/iceberg-go/io/gocloud/s3" // s3:// table locations
	"github.com/apache/iceberg-go/table"
	_ "modernc.org/sqlite" // database/sql driver "sqlite"

	"github.com/dataco/clickstream/internal/lake"
)

// ErrBadCatalogURI is matched by the error of OpenCatalog for a URI that
// names no catalog it knows.
var ErrBadCatalogURI = errors.New("icetable: bad catalog URI")

// NoCatalog, given as a catalog, means that nothing is published to
// Iceberg tables.
const NoCatalog = "none"

// CatalogName is the name the SQL catalog records its tables under.
const CatalogName = "clickstream"

// sqliteFile is the catalog database a file:// lake keeps at its root when
// no catalog is given.
const sqliteFile = "_catalog.db"

// DefaultCatalogURI returns the catalog of a lake given none: an SQLite
// database at the root of a file:// lake. Other lakes are shared between
// machines and need a shared catalog: the error says so.
func DefaultCatalogURI(lakeURI string) (string, error) {
	u, err := url.Parse(lakeURI)
	if err != nil || u.Scheme != "file" {
		return "", fmt.Errorf("%w: a %s lake needs a shared Iceberg catalog (--catalog postgres://…); only a file:// lake has an embedded default", ErrBadCatalogURI, schemeOf(lakeURI))
	}
	return "sqlite://" + filepath.Join(u.Path, sqliteFile), nil
}

func schemeOf(uri string) string {
	if i := strings.Index(uri, "://"); i > 0 {
		return uri[:i] + "://"
	}
	return "bare"
}

// S3Props returns the properties with which a catalog's tables reach an
// s3:// lake as lake.Open does: the same endpoint (from the options or
// $CLICKSTREAM_S3_ENDPOINT, path-style), region and credentials chain
// (the standard AWS variables; none is copied into the properties).
func S3Props(opts lake.S3Options) iceberg.Properties {
	props := iceberg.Properties{}
	endpoint := cmp.Or(opts.Endpoint, os.Getenv(lake.EnvS3Endpoint))
	if endpoint != "" {
		props[icebergio.S3EndpointURL] = endpoint
	}
	if endpoint != "" || opts.PathStyle {
		props[icebergio.S3ForceVirtualAddressing] = "false"
	}
	if opts.Region != "" {
		props[icebergio.S3Region] = opts.Region
	} else if os.Getenv("AWS_REGION") == "" && os.Getenv("AWS_DEFAULT_REGION") == "" {
		props[icebergio.S3Region] = lake.DefaultS3Region
	}
	return props
}

// OpenCatalog opens an Iceberg catalog by URI:
//
//	sqlite:///abs/path.db   iceberg-go's SQL catalog on SQLite, for one machine
//
// props reach the tables' file IO (S3Props for an s3:// lake). The
// catalog's own tables are created when missing.
func OpenCatalog(ctx context.Context, uri string, props iceberg.Properties) (catalog.Catalog, error) {
	scheme, rest, ok := strings.Cut(uri, "://")
	if !ok {
		return nil, fmt.Errorf("%w: %q: want sqlite:///path", ErrBadCatalogURI, uri)
	}
	switch scheme {
	case "sqlite":
		if !filepath.IsAbs(rest) || filepath.Clean(rest) != rest {
			return nil, fmt.Errorf("%w: %q: an sqlite catalog needs a clean absolute path", ErrBadCatalogURI, uri)
		}
		if err := os.MkdirAll(filepath.Dir(rest), 0o755); err != nil {
			return nil, fmt.Errorf("icetable: catalog %s: %w", uri, err)
		}
		// WAL lets readers go on while a commit writes; the busy timeout
		// makes concurrent committers (several processes) wait for the
		// lock instead of failing.
		dsn := "file:" + rest + "?_pragma=busy_timeout(30000)&_pragma=journal_mode(WAL)&_txlock=immediate"
		db, err := sql.Open("sqlite", dsn)
		if err != nil {
			return nil, fmt.Errorf("icetable: catalog %s: %w", uri, err)
		}
		cat, err := sqlcat.NewCatalog(CatalogName, db, sqlcat.SQLite, props)
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("icetable: catalog %s: %w", uri, err)
		}
		return &sqliteCatalog{Catalog: cat, db: db}, nil
	}
	return nil, fmt.Errorf("%w: %q: unknown scheme %q (want sqlite)", ErrBadCatalogURI, uri, scheme)
}

// sqliteCatalog closes the database it opened.
type sqliteCatalog struct {
	*sqlcat.Catalog
	db *sql.DB
}

func (c *sqliteCatalog) Close() error { return errors.Join(c.Catalog.Close(), c.db.Close()) }

// Closer is what OpenCatalog's catalogs implement to release their
// connections.
type Closer interface{ Close() error }

// Close closes a catalog of OpenCatalog.
func Close(cat catalog.Catalog) error {
	if c, ok := cat.(Closer); ok {
		return c.Close()
	}
	return nil
}

// Ident returns the identifier of a clickstream table.
func Ident(name string) table.Identifier { return table.Identifier{Namespace, name} }

// EnsureEvents returns the events table of the lake at store, creating it
// (and the namespace) if it does not exist: format v2, located at the
// lake's events/ folder, partitioned by hour(ts) and bucket(buckets,
// user_id), sorted by user and time. An existing table must have the
// lake's bucket count.
func EnsureEvents(ctx context.Context, cat catalog.Catalog, store lake.Store, buckets int) (*table.Table, error) {
	if err := ensureNamespace(ctx, cat); err != nil {
		return nil, err
	}
	ident := Ident(EventsTable)
	tbl, err := cat.LoadTable(ctx, ident)
	if errors.Is(err, catalog.ErrNoSuchTable) {
		tbl, err = createEvents(ctx, cat, store, buckets)
	}
	if err != nil {
		return nil, fmt.Errorf("icetable: table %s: %w", strings.Join(ident, "."), err)
	}
	if err := checkEvents(tbl, buckets); err != nil {
		return nil, err
	}
	return tbl, nil
}

func ensureNamespace(ctx context.Context, cat catalog.Catalog) error {
	err := cat.CreateNamespace(ctx, table.Identifier{Namespace}, iceberg.Properties{})
	if err != nil && !errors.Is(err, catalog.ErrNamespaceAlreadyExists) {
		return fmt.Errorf("icetable: namespace %s: %w", Namespace, err)
	}
	return nil
}

func createEvents(ctx context.Context, cat catalog.Catalog, store lake.Store, buckets int) (*table.Table, error) {
	spec := EventsSpec(buckets)
	order, err := EventsSortOrder()
	if err != nil {
		return nil, err
	}
	tbl, err := cat.CreateTable(ctx, Ident(EventsTable), EventsSchema(),
		catalog.WithLocation(strings.TrimSuffix(store.URI(), "/")+"/"+strings.TrimSuffix(lake.EventsPrefix, "/")),
		catalog.WithPartitionSpec(&spec),
		catalog.WithSortOrder(order),
		catalog.WithProperties(tableProperties(iceberg.Properties{"write.parquet.compression-codec": "zstd"})))
	if errors.Is(err, catalog.ErrTableAlreadyExists) { // created by a racing process
		return cat.LoadTable(ctx, Ident(EventsTable))
	}
	return tbl, err
}

// tableProperties are the properties of every table this package creates,
// with extra: format v2, and old metadata files deleted after a commit
// (keeping the last 100), since a table that follows ingest commits often.
func tableProperties(extra iceberg.Properties) iceberg.Properties {
	props := iceberg.Properties{
		table.PropertyFormatVersion:               "2",
		table.MetadataDeleteAfterCommitEnabledKey: "true",
		table.MetadataPreviousVersionsMaxKey:      "100",
	}
	for k, v := range extra {
		props[k] = v
	}
	return props
}

// checkEvents verifies that a loaded events table is the one this code
// writes: the field ids of the data files and the lake's bucket count.
func checkEvents(tbl *table.Table, buckets int) error {
	want := EventsSchema()
	got := tbl.Schema()
	for _, f := range want.Fields() {
		g, ok := got.FindFieldByID(f.ID)
		if !ok || g.Name != f.Name || !g.Type.Equals(f.Type) {
			return fmt.Errorf("icetable: table %s: field %d is not %s %s: the table was not created by this version", EventsTable, f.ID, f.Name, f.Type)
		}
	}
	spec := tbl.Spec()
	if _, err := partitionFields(spec); err != nil {
		return err
	}
	for _, f := range spec.Fields() {
		if bt, ok := f.Transform.(iceberg.BucketTransform); ok && bt.NumBuckets != buckets {
			return fmt.Errorf("icetable: table %s has %d user buckets, the lake %d", EventsTable, bt.NumBuckets, buckets)
		}
	}
	return nil
}

// specFields are the partition field ids of a table's spec.
type specFields struct{ hour, bucket int }

func partitionFields(spec iceberg.PartitionSpec) (specFields, error) {
	var sf specFields
	for _, f := range spec.Fields() {
		switch f.Transform.(type) {
		case iceberg.HourTransform:
			sf.hour = f.FieldID
		case iceberg.BucketTransform:
			sf.bucket = f.FieldID
		}
	}
	if sf.hour == 0 || sf.bucket == 0 || spec.NumFields() != 2 {
		return sf, fmt.Errorf("icetable: table %s: partition spec %s is not hour(ts), bucket(N, user_id)", EventsTable, spec)
	}
	return sf, nil
}
