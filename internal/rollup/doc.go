// Package rollup computes exact roll-ups of committed windows — a day, an
// ISO week or a month of hourly results — from the user sets the windows
// keep beside their results (package userset), never from events.
//
// Per period it produces, with grain day, week or month:
//
//	(url, country)   clicks, time spent and samples summed over the windows;
//	                 unique users the size of the union of the windows' sets
//	(url, "")        the same over all countries of the URL
//	("", country)    over all URLs of the country
//	("", "")         over everything
//
// (schema.All, the empty string, marks "all": no event has an empty URL
// or country). Counters add up across windows because a job counts an
// event in the window of its timestamp and takes its time spent from the
// user's next event wherever it lies (the look-ahead), so the roll-up of
// any split of a period equals one job over the period, row for row
// (TestRollupEqualsOneJob).
//
// # Work and memory
//
// Keys are split into Config.Shards key ranges by a hash of the URL, each
// merged by its own goroutine over every window's set files (a shard skips
// the entries of other ranges without decoding their sets). A shard walks
// the windows' entries in key order (a heap of one cursor per window);
// per key it streams the k-way union of the windows' encoded sets, which
// needs memory for one decoded hash per window, counts it, and appends it
// to two unions: its URL's (all countries) and its country's (all URLs).
// The URL's union is counted when the URL's last country is done. At the
// end each country's unions of the shards are merged and counted, and
// their distinct hashes fed to one last union, everything's.
//
// The unions buffer hashes (8 bytes each) within Config.MemoryBudget,
// shared by the shards and the last union; a full buffer is first sorted
// and deduplicated in place (users recur across windows and URLs), and
// grows only if that freed less than half of it. A union that would grow
// beyond the budget spills the largest buffer, sorted and deduplicated,
// to a run file, and is counted by a k-way merge of its buffer and runs;
// more than maxFileRuns runs of one union are merged into one, which
// bounds the files open at a time.
//
// With Config.ExactLimit, a union given more hashes than the limit
// becomes a HyperLogLog++ sketch (2¹⁴ registers, relative standard error
// 0.81%); its row, and every row built from it, is marked approximate.
// The (url, country) rows are always exact: their union is streamed, not
// held.
//
// With Config.KeepSets, ComputeSets also returns the period's (url,
// country) entries with their sets (a key's union is then held while it
// is encoded), one set file per key range; Run writes them beside the
// period's result, so weeks and months roll up from days
// (RunConfig.InputGrain, Inputs). On a cluster, ComputeShard computes one
// key range (a task) into a shard partial, with the range's set file
// when it keeps sets, and MergePartials completes the roll-up from all of
// them, as Compute does from its shards.
//
// # Usage
//
//	from, to, _ := rollup.Period(schema.GrainDay, t)
//	rows, stats, err := rollup.Compute(ctx, rollup.Config{Shards: 4, MemoryBudget: 256 << 20}, schema.GrainDay, from, to, windows)
//
// Run finds the windows of each period under a scheduler's output, rolls
// them up, commits each period's rows (package results) and publishes
// them.
package rollup
