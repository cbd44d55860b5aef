// Package results commits a job's result to its output store atomically and
// reads it back. It is shared by the coordinator, which writes results, and
// by readers such as the indexer and tests.
//
// Layout under the output store (the job's --out URI):
//
//	_runs/<run>/part-00000.ndjson   result files of one run (CSV: .csv, each with a header)
//	_runs/<run>/sets-00000.bin      the run's user sets, if its job kept them (WriteSets, package userset)
//	_SUCCESS                        JSON Meta naming the committed run and its files
//	_jobs/<job>/partials/…          task partials while a job runs (see PartialKey)
//
// A run's files are written first, then _SUCCESS is replaced in one Put:
// that Put is the commit. Readers start from _SUCCESS, so they see either
// the previous result or the new one, never a mix or a half-written one.
// Prune then deletes every run folder but the committed one and the one it
// replaced (kept so that a reader that read the old _SUCCESS just before the
// commit can still finish).
//
// Reading a result:
//
//	out, err := lake.Open(ctx, "file:///data/out/2026-11-27", lake.S3Options{})
//	...
//	rows, meta, err := results.ReadResult(ctx, out)
//	if errors.Is(err, results.ErrNoResult) { ... }
package results
