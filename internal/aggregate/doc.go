// Package aggregate computes the click aggregate of one event-time window:
// per (url, country), clicks, exact unique users and Google-Analytics-style
// time spent, as mergeable partials.
//
// # Semantics
//
// A job aggregates the window [From, To). Per user, events are ordered by
// (timestamp, url, country). The time spent on an event is the next event's
// timestamp minus its own when that gap is strictly less than the session
// timeout (DefaultSessionTimeout, 30 min); otherwise the event is an exit
// and has no time-spent value, so that the average time spent is
// total / (pageviews - exits) = TimeSpentMs / Samples. Only events with
// From <= ts < To count. The next event may lie at or after To: a task is
// given events up to To + timeout (look-ahead), which are used as
// successors but not counted. Events before From never matter.
//
// # Tasks, partials and unique users
//
// The lake partitions events by hour and user bucket, bucket =
// Iceberg's bucket(B, user_id), and a worker task covers one bucket over the
// whole window (plus look-ahead). Every event of a user therefore reaches
// exactly one task, which has all of that user's events of the window and
// its look-ahead: the task computes the user's time spent exactly, with no
// session state crossing tasks.
//
// Inside a task, Compute counts distinct users exactly: it groups events by
// user and keeps, per key, the stamp of the last user counted, so a user
// adds one to a key's Users the first time it appears there (O(1) per
// event). Tasks cover disjoint sets of users, so for any key the set of its
// users in the whole job is the disjoint union of its per-task sets, and the
// size of a disjoint union is the sum of the sizes:
//
//	unique_users(key) = |U_1 ∪ ... ∪ U_n| = |U_1| + ... + |U_n|   (U_i ∩ U_j = ∅)
//
// which is what Partial.Merge does with Users: exact, with no sketch error.
// The argument needs the bucket to be a function of the user id alone,
// which lake.Bucket is for the lake's fixed bucket count, and each bucket
// to be one task's. Row.UserHashes (sorted UserHash values, a
// hash unrelated to the bucket hash) is the mergeable set for what the sum
// cannot do: roll-ups over partials that may share users (several windows
// or hours), and cross-checks: len(UserHashes) == Users up to 64-bit hash
// collisions (probability about n²/2⁶⁵), so after merging, a set smaller
// than the summed Users reveals partials that were not user-disjoint.
// A job that needs no roll-up leaves them out (ColumnReader.WithoutUserSets,
// the job's user_sets): on a window of many light users they were most of
// a partial's bytes and of the merge's work.
//
// # Usage
//
//	w := aggregate.Window{From: from, To: from.Add(time.Hour)}
//	if err := w.Validate(); err != nil { ... }
//	r := aggregate.NewColumnReader(w, 0) // worker: one bucket's files
//	for _, f := range files {
//		if err := r.AddFile(bytes.NewReader(f), int64(len(f))); err != nil { ... }
//	}
//	p := r.Partial()                  // or ComputeParquet(files, w, 0), Compute(events, w, 0)
//	data, err := p.MarshalBinary()    // worker -> coordinator
//	...
//	total := aggregate.NewPartial()
//	for _, data := range results { // one per bucket task
//		var q aggregate.Partial
//		if err := q.UnmarshalBinary(data); err != nil { ... }
//		total.Merge(&q)
//	}
//	err = schema.WriteNDJSON(out, total.Result(w)) // rows of the result, see package schema
//
// # Performance and memory
//
// Compute and ColumnReader keep 16 bytes per event in the window and its
// look-ahead (32 while grouping input that is not already grouped by user),
// plus one copy of each distinct user id, URL and country: memory grows
// with the task's events. ColumnReader decodes only the four columns it
// needs, page by page, through the column chunk dictionaries, so strings
// are looked up once per dictionary entry, not per row (the user ids of
// files sorted by user, as the lake writes them, by merging each ascending
// dictionary with the ids seen before rather than by hashing). Users are
// processed in UserHash order, which yields each key's hash set already
// sorted.
package aggregate
