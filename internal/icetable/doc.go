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
// OpenCatalog opens iceberg-go's SQL catalog. A file:// lake has an
// embedded default, an SQLite database at its root (DefaultCatalogURI);
// a lake shared between machines needs a shared catalog.
package icetable
