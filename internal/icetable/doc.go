// Package icetable publishes the lake as Apache Iceberg tables, so that
// Spark, Trino, Flink, DuckDB or pyiceberg read it exactly, knowing nothing
// of clickstream.
//
// # The events table
//
// clickstream.events (format v2) has the lake's columns with their Parquet
// field ids: user_id string (1), ts timestamptz (2), url (3), country (4),
// city (5, optional) and user_agent (6, optional). Its partition spec is
// hour(ts), bucket(N, user_id) with Iceberg's own transforms, N being the
// lake's bucket count, and its sort order user_id, ts. Its location is the
// lake's events/ folder: the data files are the ones ingest wrote, and the
// table's metadata goes to events/metadata/.
//
// # Schema evolution
//
// Columns of the tables this package writes are only ever appended, as
// optional fields with the next field id (the aggregates table's revision,
// computed_at, watermark and final are 12 to 15). EvolveSchema adds to a
// table made by an older version the fields it lacks, in one schema update
// committed in a table transaction, and refuses (ErrSchemaConflict) what
// is not such an append: Iceberg numbers an added column
// last-column-id + 1, and the data files carry the writer's ids, so they
// must agree. EnsureAggregates calls it; rows written before read null in
// the new columns.
//
// # Commit protocol
//
// The lake's manifests stay the write-ahead log of ingest: each source
// commits on its own, with no contention between sources, and fences
// zombies by sequence number (package lake). Publish turns the log into
// table commits. Every snapshot it makes records in its summary, under
// PositionsProperty, the last lake commit of every source the table holds;
// a publication reads them from the current snapshot, adds the data files
// of the commits after them (per source, in order, stopping at a gap), and
// commits with the requirement that the table's main branch is still the
// snapshot it read. A publication that loses that race, or whose outcome
// is unknown, starts again from the table. Hence:
//
//   - a lake commit is in the table once or not yet, never twice, and
//     never in part: its files enter in one snapshot;
//   - the files of a failed or fenced attempt, which no manifest names,
//     are never referenced;
//   - publications may run anywhere and concurrently (every ingest
//     process runs a Publisher; `clickstream publish` catches up by hand).
//
// The source positions of the table are the lake's; ingest resumes from
// the lake's manifests, which the table follows.
//
// # Catalogs
//
// OpenCatalog opens iceberg-go's SQL catalog, on one of two databases:
//
//   - SQLite, sqlite:///abs/path.db, for one machine. A file:// lake has
//     one by default, at its root (DefaultCatalogURI).
//   - PostgreSQL, postgres://user@host:port/db?sslmode=verify-full, for a
//     cluster: a lake shared between machines needs a catalog they share,
//     and every ingest process and the coordinator commit to it. A commit
//     replaces the table's metadata location only if it is still the one
//     the commit started from (an UPDATE … WHERE metadata_location = old),
//     so concurrent publishers lose races and redo, never overwrite.
//     The URI carries no password: OpenCatalog refuses one that does,
//     without showing it, and takes the password from
//     CatalogOptions.PasswordFile (the commands' --catalog-password-file,
//     $CLICKSTREAM_CATALOG_PASSWORD_FILE) or libpq's $PGPASSWORD and
//     ~/.pgpass. Other parameters are libpq's: search_path=schema keeps a
//     catalog in a schema of its own (the tests each make one).
//
// The local stack runs a PostgreSQL for the catalog (deploy/local/stack.sh
// up pg) and writes $CLICKSTREAM_CATALOG_URI and
// $CLICKSTREAM_CATALOG_PASSWORD_FILE to its env file:
//
//	cat, err := icetable.OpenCatalog(ctx, os.Getenv("CLICKSTREAM_CATALOG_URI"), icetable.CatalogOptions{
//		Props:        icetable.S3Props(s3),
//		PasswordFile: os.Getenv("CLICKSTREAM_CATALOG_PASSWORD_FILE"),
//	})
//	if err != nil { … }
//	defer icetable.Close(cat)
//	if _, err := icetable.EnsureEvents(ctx, cat, store, buckets); err != nil { … }
//	p, err := icetable.Publish(ctx, cat, store)
package icetable
