// Package audit checks a time range of the pipeline end to end, hop by
// hop, and reports the first hop whose count differs:
//
//  1. positions: every lake source's commits cover its positions (Kafka
//     offsets, file lines) as one chain, numbered without a gap, each
//     starting where the one before ended (CheckChains); optionally with
//     each source's lag behind Kafka;
//  2. lake: the events in the range, read from every committed data file
//     that overlaps it, checked against the files' manifest records
//     (events, time bounds); events-table: the same count through the
//     Iceberg events table's current snapshot;
//  3. job: the events the committed results counted in their windows
//     (results.Meta.EventsInWindow);
//  4. result: the clicks and bot clicks of the result rows (every event in
//     a window is one click or one bot click of one row; "clicks" in the
//     report counts both); aggregates-table: the rows and clicks of the
//     Iceberg aggregates table's windows;
//  5. elasticsearch: the documents of the range and their clicks and bot
//     clicks.
//
// A hop whose input is not given is skipped. The audit reads only.
//
// Usage:
//
//	rep, err := audit.Run(ctx, audit.Config{From: from, To: to, Lake: lakeStore,
//		Results: []lake.Store{out}, Index: es})
//	if err != nil {
//		return err // the audit could not read something
//	}
//	rep.WriteTable(os.Stdout)
//	return rep.Err() // matches audit.ErrDiff, naming the first hop that differs
package audit
