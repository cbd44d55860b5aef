// Package schema defines the result row of a job, one per window, URL and
// country, and every form it takes outside the aggregate: the CSV and
// NDJSON result files and the fields of an Elasticsearch document. The Go
// type is Row; Columns lists its fields in order, each with its name (CSV
// header, JSON key and Elasticsearch field), its CSV form and its
// Elasticsearch mapping type. The CSV header, writer and reader and the
// indexer's mapping are derived from Columns, so a new metric is a field
// of Row, a line in Columns and its computation in the aggregate. (The
// indexer's mapping is strict: a new column needs a new
// indexer.SchemaVersion and a Rebuild of the index.)
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
