// Package schema defines the result row of a job, one per window, URL and
// country, and every form it takes outside the aggregate: the CSV and
// NDJSON result files and the fields of an Elasticsearch document. The Go
// type is Row; Columns lists its fields in order, each with its name (CSV
// header, JSON key and Elasticsearch field), its CSV form and its
// Elasticsearch mapping type. The CSV header, writer and reader and the
// indexer's mapping are derived from Columns, so a new metric is a field
// of Row, a line in Columns and its computation in the aggregate. (The
// indexer's mapping is strict: a new column needs a new
// indexer.SchemaVersion; the indexer adds an appended column to existing
// indices, a changed one needs a Rebuild of the index.)
//
// Columns are only ever appended: ReadCSV reads a file whose header is a
// prefix of today's (written before the later columns existed), with zero
// values for the rest. The last columns (Column.Provenance) tell how final
// a row's result is — revision, computed_at, watermark, events_snapshot,
// final — rather than what it counts; EqualMetrics compares rows without
// them.
//
// It imports none of the pipeline's packages: the aggregate produces Rows,
// the results package stores them, the indexer indexes them.
//
// Writing and reading a result file:
//
//	err := schema.WriteCSV(w, rows) // or WriteNDJSON
//	...
//	rows, err := schema.ReadCSV(r) // or ReadNDJSON
package schema
