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
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite" // database/sql driver "sqlite"

	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/secret"
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

// CatalogOptions configure OpenCatalog.
type CatalogOptions struct {
	// Props reach the tables' file IO (S3Props for an s3:// lake).
	Props iceberg.Properties
	// PasswordFile holds the password of a postgres:// catalog's user:
	// the file's content, a final line break ignored. Empty: libpq's
	// environment, $PGPASSWORD or a password file ($PGPASSFILE,
	// ~/.pgpass). Ignored by other catalogs.
	PasswordFile string
}

// OpenCatalog opens an Iceberg catalog by URI:
//
//	sqlite:///abs/path.db                       iceberg-go's SQL catalog on SQLite, for one machine
//	postgres://user@host:port/db?sslmode=mode   iceberg-go's SQL catalog on PostgreSQL, for a cluster
//
// A postgres:// URI is libpq's (postgresql:// too): its other parameters
// are libpq's or the server's, such as search_path=schema for a catalog
// in a schema of its own. It never carries the password, which would be
// shown wherever the URI is (logs, errors, process lists): one with a
// password is refused (an error matching secret.ErrInAddress that does
// not show it), and the password comes from opts.PasswordFile or libpq's
// environment. sslmode=verify-full checks the server's certificate
// against $PGSSLROOTCERT or sslrootcert=file; the local stack's server
// takes sslmode=disable on 127.0.0.1.
//
// The catalog's own tables are created when missing.
func OpenCatalog(ctx context.Context, uri string, opts CatalogOptions) (catalog.Catalog, error) {
	scheme, rest, ok := strings.Cut(uri, "://")
	if !ok {
		return nil, fmt.Errorf("%w: %q: want sqlite:///path or postgres://user@host:port/db", ErrBadCatalogURI, DisplayCatalogURI(uri))
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
		cat, err := sqlcat.NewCatalog(CatalogName, db, sqlcat.SQLite, opts.Props)
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("icetable: catalog %s: %w", uri, err)
		}
		return &sqlCatalog{Catalog: cat, db: db}, nil
	case "postgres", "postgresql":
		return openPostgres(ctx, uri, opts)
	}
	return nil, fmt.Errorf("%w: %q: unknown scheme %q (want sqlite or postgres)", ErrBadCatalogURI, DisplayCatalogURI(uri), scheme)
}

// CatalogExists reports whether the catalog at uri may hold tables: an
// SQLite catalog whose database file does not exist holds none (and
// opening it would create it). Other catalogs are servers: true.
func CatalogExists(uri string) bool {
	if rest, ok := strings.CutPrefix(uri, "sqlite://"); ok {
		_, err := os.Stat(rest)
		return err == nil
	}
	return true
}

// HasDefaultCatalog tells whether lakeURI has a catalog of its own (a
// file:// lake's SQLite catalog at its root) that exists.
func HasDefaultCatalog(lakeURI string) bool {
	uri, err := DefaultCatalogURI(lakeURI)
	return err == nil && CatalogExists(uri)
}

// pgCatalogAttempts bounds how often OpenCatalog creates a PostgreSQL
// catalog's tables: processes that start together on a new database race
// to create them, and PostgreSQL fails all but one CREATE TABLE IF NOT
// EXISTS of a race.
const pgCatalogAttempts = 5

func openPostgres(ctx context.Context, uri string, opts CatalogOptions) (catalog.Catalog, error) {
	shown := DisplayCatalogURI(uri)
	u, err := url.Parse(uri)
	if err != nil {
		// url's errors quote the URI: not this one.
		return nil, fmt.Errorf("%w: %s: not a URI", ErrBadCatalogURI, shown)
	}
	if _, set := u.User.Password(); set || u.Query().Has("password") {
		return nil, fmt.Errorf("%w: %w: the postgres:// catalog URI carries a password: give it in a file (--catalog-password-file, $CLICKSTREAM_CATALOG_PASSWORD_FILE) or $PGPASSWORD",
			ErrBadCatalogURI, secret.ErrInAddress)
	}
	if u.User.Username() == "" || u.Hostname() == "" || strings.Trim(u.Path, "/") == "" || strings.Contains(strings.Trim(u.Path, "/"), "/") {
		return nil, fmt.Errorf("%w: %s: want postgres://user@host:port/database", ErrBadCatalogURI, shown)
	}
	cfg, err := pgx.ParseConfig(uri)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrBadCatalogURI, shown, err)
	}
	if opts.PasswordFile != "" {
		pw, err := readPassword(opts.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("icetable: catalog %s: %w", shown, err)
		}
		cfg.Password = pw.Reveal()
	}
	db := stdlib.OpenDB(*cfg)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("icetable: catalog %s: %w", shown, err)
	}
	for attempt := 0; ; attempt++ {
		cat, err := sqlcat.NewCatalog(CatalogName, db, sqlcat.Postgres, opts.Props)
		if err == nil {
			return &sqlCatalog{Catalog: cat, db: db}, nil
		}
		if attempt+1 == pgCatalogAttempts {
			db.Close()
			return nil, fmt.Errorf("icetable: catalog %s: %w", shown, err)
		}
		if err := sleepCtx(ctx, backoff(attempt)); err != nil {
			db.Close()
			return nil, err
		}
	}
}

// readPassword reads a password file: its content, without a final line
// break.
func readPassword(file string) (secret.Secret, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("password file: %w", err)
	}
	pw := strings.TrimRight(string(b), "\r\n")
	if pw == "" {
		return "", fmt.Errorf("password file %s is empty", file)
	}
	return secret.Secret(pw), nil
}

// DisplayCatalogURI returns what logs and errors show of a catalog URI:
// the URI without user and parameters.
func DisplayCatalogURI(uri string) string {
	u, err := url.Parse(uri)
	if err != nil || u.Scheme == "" || !strings.Contains(uri, "://") {
		if strings.ContainsAny(uri, "@?#") {
			return schemeOf(uri) + "…"
		}
		return uri
	}
	u.User, u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = nil, "", false, "", ""
	return u.String()
}

// sqlCatalog closes the database it opened.
type sqlCatalog struct {
	*sqlcat.Catalog
	db *sql.DB
}

func (c *sqlCatalog) Close() error { return errors.Join(c.Catalog.Close(), c.db.Close()) }

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
	_, err := cat.LoadTable(ctx, ident)
	if errors.Is(err, catalog.ErrNoSuchTable) {
		_, err = createEvents(ctx, cat, store, buckets)
	}
	if err != nil {
		return nil, fmt.Errorf("icetable: table %s: %w", strings.Join(ident, "."), err)
	}
	// A table created before an optional field of EventsSchema (is_bot)
	// gains it here, before the check: evolution gives the field the next
	// free id, the declared one (is_bot: 7).
	tbl, err := EvolveSchema(ctx, cat, EventsTable, EventsSchema())
	if err != nil {
		return nil, err
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

// ensureDayTable returns the table name, creating it if needed with the
// schema, located at the lake's folder, and partitioned by the day of the
// timestamp field dayOf as partition field partName.
func ensureDayTable(ctx context.Context, cat catalog.Catalog, store lake.Store, name string, schema *iceberg.Schema, dayOf int, partName, folder string) (*table.Table, error) {
	if err := ensureNamespace(ctx, cat); err != nil {
		return nil, err
	}
	ident := Ident(name)
	tbl, err := cat.LoadTable(ctx, ident)
	if errors.Is(err, catalog.ErrNoSuchTable) {
		spec := iceberg.NewPartitionSpec(iceberg.PartitionField{
			SourceIDs: []int{dayOf}, FieldID: 1000, Name: partName, Transform: iceberg.DayTransform{}})
		tbl, err = cat.CreateTable(ctx, ident, schema,
			catalog.WithLocation(strings.TrimSuffix(store.URI(), "/")+"/"+strings.TrimSuffix(folder, "/")),
			catalog.WithPartitionSpec(&spec),
			catalog.WithProperties(tableProperties(nil)))
		if errors.Is(err, catalog.ErrTableAlreadyExists) { // created by a racing process
			tbl, err = cat.LoadTable(ctx, ident)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("icetable: table %s: %w", strings.Join(ident, "."), err)
	}
	return tbl, nil
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
// writes: the field ids of the data files and the lake's bucket count. An
// optional field the table lacks (is_bot, in a table created before it) is
// no mismatch: the data files' columns carry its id, and the field reads
// them once schema evolution has added it.
func checkEvents(tbl *table.Table, buckets int) error {
	want := EventsSchema()
	got := tbl.Schema()
	for _, f := range want.Fields() {
		g, ok := got.FindFieldByID(f.ID)
		if !ok && !f.Required {
			continue
		}
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
