package ingest

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/dataco/clickstream/internal/bots"
	"github.com/dataco/clickstream/internal/event"
	"github.com/dataco/clickstream/internal/failpoint"
	"github.com/dataco/clickstream/internal/icetable"
	"github.com/dataco/clickstream/internal/lake"
)

// sink turns batches of raw records into lake commits. One sink serves every
// source of a process; each source is driven by one goroutine at a time.
type sink struct {
	store   lake.Store
	buckets int
	format  lake.Format
	writer  string        // unique per process run: names this run's objects
	tries   atomic.Uint64 // commit attempts so far: names each attempt's objects
	parser  event.Parser
	bots    *bots.Classifier // flags the events of bot user agents
	uploads int              // concurrent object uploads per flush
	timeout time.Duration    // of one commit attempt; 0: none
	cpu     chan struct{}    // a token per core, held while encoding
	metrics *metrics
	log     *slog.Logger
	crash   *failpoint.Point    // nil except in crash tests
	table   *icetable.Publisher // nil: the lake is not published as a table
	// consuming is set while the source is read: a file once its
	// progress is recovered, Kafka once the group is joined.
	consuming atomic.Bool
}

// errNotConsuming is the readiness of an ingest that is not reading its
// source (yet, or any more).
var errNotConsuming = errors.New("ingest: not consuming (Kafka group not joined, or file not open)")

// ready is the readiness check of the process: it consumes its source.
func (s *sink) ready(context.Context) error {
	if !s.consuming.Load() {
		return errNotConsuming
	}
	return nil
}

// sourceState is what a source has committed to the lake so far.
type sourceState struct {
	source    string
	seq       uint64 // last committed sequence number, 0 if none
	end       int64  // first position not yet committed
	watermark int64  // highest event time committed, epoch ms
}

// recover reads a source's progress back from the lake: the lake, not the
// Kafka group offsets, is the truth about what has been written.
func (s *sink) recover(ctx context.Context, source string) (sourceState, error) {
	m, err := lake.LastManifest(ctx, s.store, source)
	if err != nil {
		return sourceState{}, fmt.Errorf("ingest: recover %s: %w", source, err)
	}
	st := sourceState{source: source, watermark: -1 << 63}
	if m != nil {
		st.seq, st.end, st.watermark = m.Seq, m.End, m.Watermark
	}
	return st, nil
}

// recoverWithin is recover bounded by the commit timeout, for the commit
// path.
func (s *sink) recoverWithin(ctx context.Context, source string) (sourceState, error) {
	if s.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.timeout)
		defer cancel()
	}
	return s.recover(ctx, source)
}

// rejectedRecord is one line of a dead-letter file.
type rejectedRecord struct {
	Source    string `json:"source"`
	Position  int64  `json:"position"`
	Reason    string `json:"reason"`
	Error     string `json:"error"`
	Raw       string `json:"raw,omitempty"`
	RawBase64 string `json:"raw_base64,omitempty"`
}

// parseCache is what one parsing goroutine keeps between records: the
// strings of the repeated fields and the verdicts on user agents.
type parseCache struct {
	strs *event.Interner
	bots *bots.Cache
}

// newParseCache returns the cache of one parsing goroutine.
func (s *sink) newParseCache() *parseCache {
	return &parseCache{strs: event.NewInterner(0), bots: s.bots.NewCache()}
}

// parse validates a raw value into a record, sharing the strings of the
// repeated fields through pc (owned by the calling goroutine; nil: no
// sharing, no cache), and flags a bot's event (is_bot). The user id of a
// valid record still points into raw until batch.add copies it to the
// batch: only a rejected record keeps raw.
func (s *sink) parse(pos int64, raw []byte, pc *parseCache) record {
	var in *event.Interner
	if pc != nil {
		in = pc.strs
	}
	ev, err := s.parser.ParseAliased(raw, in)
	if err != nil {
		return record{pos: pos, raw: raw, err: err}
	}
	if ev.UserAgent != "" {
		if pc != nil {
			ev.IsBot = pc.bots.IsBot(ev.UserAgent)
		} else {
			ev.IsBot = s.bots.IsBot(ev.UserAgent)
		}
	}
	return record{pos: pos, ev: ev, user: lake.UserIDPrefix(ev.UserID), hash: lake.BucketHash(ev.UserID)}
}

// flushResult summarises one commit.
type flushResult struct {
	valid, rejected int64
	bots            int64 // valid events flagged is_bot
	files           int
	fenced          bool
	// reasons counts the rejected records by reason.
	reasons map[event.Reason]int64
	// minTs and maxTs bound the valid events' times (epoch ms), if valid > 0.
	minTs, maxTs int64
	// rejectedKey is the dead-letter file of the last commit with rejects.
	rejectedKey string
}

// add accumulates r into res.
func (res *flushResult) add(r flushResult) {
	if r.valid > 0 {
		if res.valid == 0 {
			res.minTs, res.maxTs = r.minTs, r.maxTs
		}
		res.minTs, res.maxTs = min(res.minTs, r.minTs), max(res.maxTs, r.maxTs)
	}
	res.valid += r.valid
	res.bots += r.bots
	res.rejected += r.rejected
	res.files += r.files
	for reason, n := range r.reasons {
		if res.reasons == nil {
			res.reasons = map[event.Reason]int64{}
		}
		res.reasons[reason] += n
	}
	if r.rejectedKey != "" {
		res.rejectedKey = r.rejectedKey
	}
}

// flush commits the batch as the next commit of st's source. On success st
// advances and the batch is empty. If another writer committed first
// (ErrFenced), st is re-read from the lake, the records it already covers are
// dropped from the batch, and flush tries again with the rest: whatever the
// interleaving, every position is committed exactly once.
func (s *sink) flush(ctx context.Context, st *sourceState, b *batch) (flushResult, error) {
	var res flushResult
	for {
		if b.next <= st.end { // nothing new
			b.reset(max(st.end, b.next))
			return res, nil
		}
		r, err := s.commit(ctx, st, b)
		if errors.Is(err, lake.ErrFenced) {
			res.fenced = true
			s.metrics.fenced.Inc()
			fresh, rerr := s.recoverWithin(ctx, st.source)
			if rerr != nil {
				return res, rerr
			}
			s.log.Warn("commit fenced by another writer; resynchronised from the lake",
				"source", st.source, "seq", st.seq+1, "lake_end", fresh.end, "batch_start", b.start, "batch_next", b.next)
			*st = fresh
			b.dropBefore(st.end)
			continue
		}
		if err != nil {
			return res, err
		}
		res.add(r)
		b.reset(st.end)
		return res, nil
	}
}

// cell is a partition of the layout as integers: the hour's start in epoch
// milliseconds and the bucket.
type cell struct {
	hour   int64
	bucket int
}

// partition returns the lake partition of the cell.
func (c cell) partition() lake.Partition {
	return lake.Partition{Hour: time.UnixMilli(c.hour).UTC(), Bucket: c.bucket}
}

// cellGroup is what a commit knows of one cell: where its sort keys are and
// its event-time range.
type cellGroup struct {
	cell
	start, n     int // keys[start:start+n]
	minTs, maxTs int64
}

// sortKey orders a partition's events: by user-id prefix (lake.UserIDPrefix),
// then the whole user id, time, and the record's index into the batch.
// hash (lake.BucketHash) tells users that share a prefix apart without
// reading their ids.
type sortKey struct {
	user uint64
	ts   int64
	i    int32
	hash uint32
}

// hourMillis is an hour in milliseconds.
const hourMillis = int64(time.Hour / time.Millisecond)

// commit writes the batch's objects, then its manifest, within s.timeout.
// A commit that times out fails like any other: its source resumes from
// the position the lake records, which includes the commit if the store
// completed the manifest's write after all.
func (s *sink) commit(ctx context.Context, st *sourceState, b *batch) (flushResult, error) {
	if s.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.timeout)
		defer cancel()
	}
	start := time.Now()
	seq := st.seq + 1
	// Objects are named per attempt, not per sequence number: a write of a
	// failed attempt that the store completes late (a timed-out request)
	// lands on that attempt's own orphan, never on a file a later attempt
	// committed under the same sequence number.
	attempt := s.writer + "." + strconv.FormatUint(s.tries.Add(1), 36)
	m := &lake.Manifest{
		Source: st.source, Seq: seq, Writer: s.writer,
		Start: st.end, End: b.next,
		Watermark: st.watermark,
		Hours:     map[string]lake.HourMark{},
	}
	pl, err := s.plan(st, b, m)
	if err != nil {
		return flushResult{}, err
	}

	// Encode and upload the data files, a few at a time.
	m.Files = make([]lake.DataFile, len(pl.groups))
	errs := make([]error, len(pl.groups))
	var wg sync.WaitGroup
	sem := make(chan struct{}, max(1, s.uploads))
	for i, g := range pl.groups {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			m.Files[i], errs[i] = s.writeFile(ctx, g, st.source, seq, attempt, b, pl.keys[g.start:g.start+g.n])
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return flushResult{}, err
	}
	if len(pl.rejects) > 0 {
		m.Rejected = lake.RejectedKey(st.source, seq, attempt)
		if err := s.store.Put(ctx, m.Rejected, pl.rejects); err != nil {
			return flushResult{}, fmt.Errorf("ingest: write dead letters %s: %w", m.Rejected, err)
		}
	}
	// The manifest is the commit point: before it, nothing above is visible.
	s.crash.Hit("before-manifest")
	if err := lake.Commit(ctx, s.store, m); err != nil {
		if !errors.Is(err, lake.ErrWatermark) {
			return flushResult{}, err
		}
		// Committed: only the summary record lags, until the next commit.
		s.log.Warn("committed, but the watermark record was not updated", "source", st.source, "seq", seq, "err", err)
	}
	s.crash.Hit("after-manifest")
	if s.table != nil {
		s.table.Notify()
	}
	*st = sourceState{source: st.source, seq: seq, end: m.End, watermark: m.Watermark}
	s.metrics.written.Add(float64(m.ValidCount))
	s.metrics.botsWritten.Add(float64(pl.bots))
	for reason, n := range pl.reasons {
		s.metrics.rejected.WithLabelValues(string(reason)).Add(float64(n))
	}
	s.metrics.commits.Inc()
	s.metrics.flushSeconds.Observe(time.Since(start).Seconds())
	s.log.Debug("committed", "source", st.source, "seq", seq, "start", m.Start, "end", m.End,
		"valid", m.ValidCount, "rejected", m.RejectedCount, "files", len(m.Files), "took", time.Since(start))
	res := flushResult{valid: m.ValidCount, rejected: m.RejectedCount, bots: pl.bots, files: len(m.Files), rejectedKey: m.Rejected}
	for i, g := range pl.groups {
		if i == 0 {
			res.minTs, res.maxTs = g.minTs, g.maxTs
		}
		res.minTs, res.maxTs = min(res.minTs, g.minTs), max(res.maxTs, g.maxTs)
	}
	if len(pl.reasons) > 0 {
		res.reasons = make(map[event.Reason]int64, len(pl.reasons))
		for reason, n := range pl.reasons {
			res.reasons[reason] = int64(n)
		}
	}
	return res, nil
}

// commitPlan is what one commit writes: the cells' sort keys, the dead
// letters, and the rejection counts by reason.
type commitPlan struct {
	groups  []cellGroup // ordered by hour, then bucket
	keys    []sortKey   // groups[i]'s at keys[groups[i].start:][:groups[i].n]
	rejects []byte      // NDJSON lines of the dead-letter file
	reasons map[event.Reason]int
	bots    int64 // valid events flagged is_bot
}

// plan lays out the commit of the batch's records from st.end on, and
// fills in m's counts, hours and watermark.
func (s *sink) plan(st *sourceState, b *batch, m *lake.Manifest) (commitPlan, error) {
	// Assign the valid events to cells, counting per cell, then place their
	// sort keys cell by cell into one array (a counting sort); collect the
	// rejects on the way.
	slot := make(map[cell]int32)
	var groups []cellGroup
	cellOf := make([]int32, b.len())
	pl := commitPlan{reasons: map[event.Reason]int{}}
	for i := range b.len() {
		r := b.at(i)
		cellOf[i] = -1
		if r.pos < st.end {
			continue
		}
		if r.err != nil {
			line, err := json.Marshal(s.reject(st.source, *r))
			if err != nil {
				return commitPlan{}, fmt.Errorf("ingest: encode rejected record: %w", err)
			}
			pl.rejects = append(append(pl.rejects, line...), '\n')
			pl.reasons[event.ReasonOf(r.err)]++
			m.RejectedCount++
			continue
		}
		ts := r.ev.Timestamp
		c := cell{hour: lake.FloorDiv(ts, hourMillis) * hourMillis, bucket: lake.BucketOfHash(r.hash, s.buckets)}
		g, ok := slot[c]
		if !ok {
			g = int32(len(groups))
			slot[c] = g
			groups = append(groups, cellGroup{cell: c, minTs: ts, maxTs: ts})
		}
		cellOf[i] = g
		cg := &groups[g]
		cg.n++
		cg.minTs, cg.maxTs = min(cg.minTs, ts), max(cg.maxTs, ts)
		m.ValidCount++
		if r.ev.IsBot {
			pl.bots++
		}
		m.Watermark = max(m.Watermark, ts)
	}
	slices.SortFunc(groups, func(a, b cellGroup) int {
		return cmp.Or(cmp.Compare(a.hour, b.hour), cmp.Compare(a.bucket, b.bucket))
	})
	next := make([]int, len(groups)) // per slot: where its next key goes
	off := 0
	for gi := range groups {
		g := &groups[gi]
		g.start = off
		next[slot[g.cell]] = off
		off += g.n
		h := time.UnixMilli(g.hour).UTC().Format(lake.HourFormat)
		hm := m.Hours[h]
		hm.Events += int64(g.n)
		hm.MaxTs = max(hm.MaxTs, g.maxTs)
		m.Hours[h] = hm
	}
	keys := make([]sortKey, off)
	for i, g := range cellOf {
		if g >= 0 {
			r := b.at(i)
			keys[next[g]] = sortKey{user: r.user, ts: r.ev.Timestamp, i: int32(i), hash: r.hash}
			next[g]++
		}
	}
	pl.groups, pl.keys = groups, keys
	return pl, nil
}

// writeFile orders a partition's events in the lake's sort order
// (lake.SortOrder: user id, then time) — which keeps a user's clicks
// together for the aggregation job and compresses well — and uploads them
// as one data file. Sorting small keys, not the events, moves 24 bytes per
// swap, and the keys spare the sort reading the events: a radix sort on the
// ids' first 8 bytes orders the users, and events whose ids share those
// bytes and their hash are taken to be one user's and ordered by time.
// Encoding checks that they are; two users colliding on both (rare) make
// writeFile sort again comparing the ids, and encode again.
func (s *sink) writeFile(ctx context.Context, g cellGroup, source string, seq uint64, attempt string, b *batch, keys []sortKey) (lake.DataFile, error) {
	p := g.partition()
	// Sorting and encoding are CPU work: no more files at once than there
	// are cores, whatever the number of uploads in flight, so that each
	// encoder's buffers stay in cache.
	s.cpu <- struct{}{}
	sortKeys(keys, func(run []sortKey) { sortByHashAndTime(b, run) })
	data, mixed, err := s.encode(b, keys)
	if err == nil && mixed {
		sortKeys(keys, func(run []sortKey) { slices.SortFunc(run, compareEvents(b)) })
		data, _, err = s.encode(b, keys)
	}
	<-s.cpu
	if err != nil {
		return lake.DataFile{}, fmt.Errorf("ingest: encode %s: %w", p, err)
	}
	key := lake.DataFileKey(p, source, seq, attempt, s.format.Ext())
	if err := s.store.Put(ctx, key, data); err != nil {
		return lake.DataFile{}, fmt.Errorf("ingest: write %s: %w", key, err)
	}
	return lake.DataFile{Key: key, Bucket: p.Bucket, Hour: p.Hour.Format(lake.HourFormat),
		Events: int64(len(keys)), Bytes: int64(len(data)), MinTs: g.minTs, MaxTs: g.maxTs}, nil
}

// sortByHashAndTime orders a run of keys of one user-id prefix by hash,
// then time, reading events only to break ties of time: in the lake's order
// if each hash is one user's, which encode checks.
func sortByHashAndTime(b *batch, run []sortKey) {
	h := run[0].hash
	for _, k := range run[1:] {
		if k.hash != h {
			// Users sharing a prefix: compare their ids.
			slices.SortFunc(run, compareEvents(b))
			return
		}
	}
	slices.SortFunc(run, func(k, l sortKey) int {
		if k.ts != l.ts {
			return cmp.Compare(k.ts, l.ts)
		}
		x, y := &b.at(int(k.i)).ev, &b.at(int(l.i)).ev
		return cmp.Or(strings.Compare(x.UserID, y.UserID), strings.Compare(x.URL, y.URL),
			strings.Compare(x.Country, y.Country), cmp.Compare(k.i, l.i))
	})
}

// compareEvents orders keys in the lake's order by their events: user id,
// time, then url, country and arrival (the same batch always writes the
// same file).
func compareEvents(b *batch) func(k, l sortKey) int {
	return func(k, l sortKey) int {
		x, y := &b.at(int(k.i)).ev, &b.at(int(l.i)).ev
		if c := strings.Compare(x.UserID, y.UserID); c != 0 {
			return c
		}
		if k.ts != l.ts {
			return cmp.Compare(k.ts, l.ts)
		}
		return cmp.Or(strings.Compare(x.URL, y.URL), strings.Compare(x.Country, y.Country), cmp.Compare(k.i, l.i))
	}
}

// encode encodes the events of keys in their order. mixed reports two
// neighbours with the same prefix and hash but different user ids: a sort
// by hash and time may have interleaved their events.
func (s *sink) encode(b *batch, keys []sortKey) (data []byte, mixed bool, err error) {
	data, err = s.format.EncodeFunc(len(keys), func(i int) *event.Event {
		e := &b.at(int(keys[i].i)).ev
		if i > 0 {
			if k, l := &keys[i-1], &keys[i]; k.user == l.user && k.hash == l.hash && e.UserID != b.at(int(k.i)).ev.UserID {
				mixed = true
			}
		}
		return e
	})
	return data, mixed, err
}

func (s *sink) reject(source string, r record) rejectedRecord {
	out := rejectedRecord{Source: source, Position: r.pos, Reason: string(event.ReasonOf(r.err)), Error: r.err.Error()}
	if utf8.Valid(r.raw) {
		out.Raw = string(r.raw)
	} else {
		out.RawBase64 = base64.StdEncoding.EncodeToString(r.raw)
	}
	return out
}

// tooLarge is the record of a line longer than the size limit; only its
// first limit bytes are kept in the dead-letter area.
func (s *sink) tooLarge(pos int64, head []byte, limit int) record {
	return record{pos: pos, raw: head, err: &event.RejectError{
		Reason: event.ReasonTooLarge,
		Detail: fmt.Sprintf("record exceeds %d bytes (first %d bytes kept)", limit, len(head)),
	}}
}

// decodeRejected parses a dead-letter file.
func decodeRejected(data []byte) ([]rejectedRecord, error) {
	var out []rejectedRecord
	dec := json.NewDecoder(bytes.NewReader(data))
	for dec.More() {
		var r rejectedRecord
		if err := dec.Decode(&r); err != nil {
			return nil, fmt.Errorf("ingest: decode dead letter: %w", err)
		}
		out = append(out, r)
	}
	return out, nil
}
