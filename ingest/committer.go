package ingest

import "context"

// A committer is the one path from a source's batches to the lake, the file
// source's and each Kafka partition's: it says when a batch is full, commits
// the batches handed to it one at a time and in order, and reports each
// commit.
//
// Invariants:
//   - committed runs only after the manifest naming the batch is durable,
//     and is given the state that manifest records. It is where a source
//     moves anything outside the lake forward (Kafka offsets, a run's
//     summary), so nothing outside the lake ever runs ahead of it.
//   - A commit that fails runs nothing and leaves the source's state as it
//     was: the batch's records were never committed, and the source resumes
//     from the lake's position.
//   - Whatever another writer of the source committed first is not
//     committed again (sink.flush): every position lands exactly once.
type committer struct {
	sink *sink
	st   *sourceState // what the source has committed; advanced by each commit

	// A batch holding maxRecords records or maxBytes raw bytes is full.
	maxRecords, maxBytes int

	// committed is told about each commit that succeeded (nil: nobody).
	committed func(res flushResult, st sourceState)
}

// newCommitter returns the committer of the source whose committed state
// is st, with cfg's size limits. committed may be nil.
func newCommitter(s *sink, cfg *Config, st *sourceState, committed func(flushResult, sourceState)) *committer {
	return &committer{sink: s, st: st, maxRecords: cfg.FlushRecords, maxBytes: cfg.FlushBytes, committed: committed}
}

// full reports whether b has reached a size limit and is due to be handed
// over. It reads only the limits: the goroutine filling b may call it while
// another goroutine commits.
func (c *committer) full(b *batch) bool {
	return b.len() >= c.maxRecords || b.rawBytes >= c.maxBytes
}

// commit commits b as the next commit of the source, then reports it. On
// success the source's state has advanced past b and b is empty, reset at
// the new end; on failure b holds whatever is still to commit.
func (c *committer) commit(ctx context.Context, b *batch) error {
	res, err := c.sink.flush(ctx, c.st, b)
	if err != nil {
		return err
	}
	if c.committed != nil {
		c.committed(res, *c.st)
	}
	return nil
}
