// Package lake is the clickstream data lake: an object store reached through
// s3:// or file:// URIs, the partition layout shared by ingest and the
// aggregation job, the codecs of its data files, and the manifests that make
// ingest exactly once.
//
// # Stores
//
// A Store holds objects under '/'-separated keys relative to its root. Open
// turns a URI into one:
//
//	file:///abs/dir, file://./rel/dir   a FileStore on a local folder
//	s3://bucket, s3://bucket/prefix     an S3Store (endpoint from S3Options
//	                                    or $CLICKSTREAM_S3_ENDPOINT)
//
// A URI that cannot name a store fails with an error matching ErrBadURI;
// other errors of Open may be temporary. Stores caches one store per URI for
// a process that opens many (a coordinator, a worker), and Sub gives a view of
// a store under a key prefix. Keys that could escape the root or mean
// different objects on different stores (empty or "..", "." segments,
// backslashes, NUL) are rejected.
//
// A store never leaves its root. A FileStore resolves every key inside its
// folder through an os.Root: a key that a symbolic link leads out of the
// folder is refused (ErrOutsideRoot) by every operation, and its temp files
// are inside the folder, made by the first write (a store only read
// creates nothing). OpenUnder opens a store only if it is one of a set of
// roots or under one, and a file store from that root's folder down, so
// that no link below the root takes it elsewhere. GetSized reads an object
// only if it has the size a manifest recorded (ErrSize otherwise), reading
// no more than that.
//
// # Layout
//
// One lake is one store root:
//
//	_lake.json                                       Meta: layout version, bucket count
//	events/hour=2006-01-02T15/bucket=0007/<source>-<seq>-<writer>.parquet
//	_manifests/<source>/<seq>.json                   one per commit
//	_watermarks/<source>.json                        latest commit, summarised
//	_rejected/<source>/<seq>-<writer>.ndjson         dead letters of a commit
//
// Events are partitioned by event-time hour (UTC; Iceberg's hour(ts)) and
// user bucket: Bucket is Iceberg's bucket(n, user_id) transform,
// murmur3_x86_32 (seed 0) of the id's UTF-8 bytes, sign bit cleared, modulo
// the lake's bucket count n, which EnsureMeta fixes when the lake is
// created. A source is one input stream (KafkaSource names a topic
// partition); its commits are numbered from 1.
//
// Meta.Version is the layout (LayoutVersion, 2): the buckets, columns and
// sort order described here. ReadMeta, and so EnsureMeta and ReadSnapshot,
// refuse a lake of another layout with an error matching ErrLayout; a lake
// of layout 1 (FNV-1a buckets, timestamp_ms files, files in user-hash order)
// must be re-ingested into a new lake: ReadLayoutOneSnapshot and
// DecodeLayoutOneFile read it for that (clickstream migrate).
//
// # Data files
//
// A data file holds events of one partition in one Format: Parquet (the
// default: zstd pages, dictionary-encoded strings, delta-encoded times) or
// gzipped NDJSON. The key's extension names the format, so DecodeFile needs
// nothing else.
//
// A Parquet data file is an Apache Iceberg data file of the lake's table, as
// it is: its columns (Columns, one Row per event) carry Parquet field ids,
// and every one is required:
//
//	id  column      Parquet                                  Iceberg
//	1   user_id     BYTE_ARRAY (UTF-8)                        string
//	2   ts          INT64 TIMESTAMP(MICROS, isAdjustedToUTC)  timestamptz
//	3   url         BYTE_ARRAY (UTF-8)                        string
//	4   country     BYTE_ARRAY (UTF-8)                        string
//	5   city        BYTE_ARRAY (UTF-8)                        string
//	6   user_agent  BYTE_ARRAY (UTF-8)                        string
//	7   is_bot      BOOLEAN                                   boolean (optional)
//
// FieldUserID … FieldIsBot and ColumnUserID … ColumnIsBot name them. is_bot,
// ingest's verdict on the user agent, was added later (Column.Added): files
// written before it lack the column and still read, their events human;
// the table's field is optional, and null reads as false.
// In memory, event.Event.Timestamp stays epoch milliseconds: the codec
// multiplies by 1000 when it writes ts and divides when it reads it. Within
// a file, rows are in SortOrder: user_id ascending (by its bytes), then ts
// ascending, so that a user's events are together and in time order; ingest
// sorts with radix passes on UserIDPrefix, the ids' first 8 bytes. The
// partition spec is hour(ts), bucket(n, user_id); the sort order is
// user_id asc, ts asc (nulls first: there are none).
//
// # Commits and manifests
//
// A writer commits a batch of a source in two steps. It writes the batch's
// data files and dead letters under keys that name its commit attempt
// (DataFileKey, RejectedKey), so that no other attempt can overwrite them;
// then Commit writes the Manifest, listing those files and the source
// positions [Start, End) they cover, at the source's next sequence number with
// PutIfAbsent. The manifest is the commit point. Of two writers committing the
// same sequence number exactly one wins; the other gets ErrFenced and must
// re-read where the source stands (LastManifest). The watermark record is
// written after the manifest; if that fails Commit returns an error wrapping
// ErrWatermark and the commit stands.
//
// Readers start from the manifests: ReadSnapshot (or a SnapshotReader, which
// reads each manifest once) returns every committed manifest, and
// Snapshot.FilesFor picks, per user bucket, the files whose events overlap a
// time range. Vacuum deletes the old data and dead-letter files that no
// manifest names.
//
// # Guarantees
//
//   - Put replaces an object atomically: a reader sees the old or the new
//     object, never a mix. Of several writers racing PutIfAbsent on one key,
//     processes included, exactly one succeeds and the others get ErrExists.
//     Get of a missing key returns ErrNotExist; List is sorted by key. Every
//     Store is safe for concurrent use.
//   - A commit exists if and only if its manifest exists, and then all its
//     files do. Files that no manifest names (a crashed, fenced or timed-out
//     attempt) are invisible to readers and change no result.
//   - A sequence number of a source is committed at most once, and manifests
//     are written once and never change. A writer that resumes from
//     LastManifest, numbers its commits without gaps and starts each where
//     the previous one ended (Manifest.Start), as ingest does, commits every
//     source position exactly once.
//   - The watermark record is a summary that may lag behind the manifests;
//     the manifests are the truth.
//   - All events of a user are in one bucket, so a task per bucket sees every
//     click of its users. A lake's bucket count never changes.
//
// Nothing orders commits of different sources, and a snapshot is not a
// transaction across sources: it is the set of manifests listed at one moment.
//
// # Usage
//
// Reading the events of a time range, bucket by bucket:
//
//	store, err := lake.Open(ctx, "s3://clicks/lake", lake.S3Options{})
//	snap, err := lake.ReadSnapshot(ctx, store)
//	for bucket, files := range snap.FilesFor(from, to) {
//		for _, f := range files {
//			data, err := store.GetSized(ctx, f.Key, f.Bytes)
//			events, err := lake.DecodeFile(f.Key, data)
//			...
//		}
//	}
//
// Tests get a fresh store from package laketest.
package lake
