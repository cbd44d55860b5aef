// Package ingest lands click events in the data lake exactly once.
//
// A source is a Kafka topic partition (consumed through a sarama consumer
// group) or an NDJSON file. Records are validated against the event
// contract (package event); valid events are written as Parquet files
// (Iceberg data files, see package lake) partitioned by event-time hour and
// user bucket, each sorted by user id, then time (lake.SortOrder), invalid
// ones to the dead-letter area with their reason and position.
//
// Exactly once rests on one rule: a source's records are visible only
// through a manifest that names the positions [start, end) they came from,
// and manifests of a source are numbered 1, 2, 3, ... and written with a
// conditional put (create only if absent). A writer resumes from the last
// manifest's end, never from Kafka's committed offsets; a zombie writer that
// lost its partition loses the race for the next sequence number and its
// objects, named by no manifest, stay invisible.
//
//	sum, err := ingest.Ingest(ctx, cfg, obs.Runtime{Logger: slog.Default()})
package ingest
