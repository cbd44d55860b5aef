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
	"sync"
	"time"
	"unicode/utf8"

	"github.com/dataco/clickstream/internal/event"
	"github.com/dataco/clickstream/internal/lake"
)

// sink turns batches of raw records into lake commits. One sink serves every
// source of a process; each source is driven by one goroutine at a time.
type sink struct {
	store   lake.Store
	buckets int
	format  lake.Format
	writer  string // unique per process run: names this run's objects
	parser  event.Parser
	uploads int // concurrent object uploads per flush
	metrics *metrics
	log     *slog.Logger
	crash   *failpoint // nil except in crash tests
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

// record is one raw message with its source position, parsed.
type record struct {
	pos int64
	raw []byte
	ev  event.Event
	err error // non-nil: rejected
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

// batch accumulates the records of one source between commits. Records are
// in position order; positions may have gaps (Kafka transaction markers,
// compaction), so the batch covers [start, next).
type batch struct {
	start, next int64
	records     []record
	rawBytes    int
}

func (b *batch) reset(pos int64) {
	b.start, b.next = pos, pos
	b.records = b.records[:0]
	b.rawBytes = 0
}

func (b *batch) add(r record) {
	b.records = append(b.records, r)
	b.next = r.pos + 1
	b.rawBytes += len(r.raw)
}

// dropBefore keeps only the records at or after pos, after another writer
// committed up to pos.
func (b *batch) dropBefore(pos int64) {
	if pos <= b.start {
		return
	}
	i := 0
	for i < len(b.records) && b.records[i].pos < pos {
		b.rawBytes -= len(b.records[i].raw)
		i++
	}
	b.records = append(b.records[:0], b.records[i:]...)
	b.start = pos
	if b.next < pos {
		b.next = pos
	}
}

// parse validates a raw value into a record.
func (s *sink) parse(pos int64, raw []byte) record {
	ev, err := s.parser.Parse(raw)
	return record{pos: pos, raw: raw, ev: ev, err: err}
}

// flushResult summarises one commit.
type flushResult struct {
	valid, rejected int64
	files           int
	fenced          bool
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
			fresh, rerr := s.recover(ctx, st.source)
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
		res.valid += r.valid
		res.rejected += r.rejected
		res.files += r.files
		b.reset(st.end)
		return res, nil
	}
}

// commit writes the batch's objects, then its manifest.
func (s *sink) commit(ctx context.Context, st *sourceState, b *batch) (flushResult, error) {
	start := time.Now()
	seq := st.seq + 1
	m := &lake.Manifest{
		Source: st.source, Seq: seq, Writer: s.writer,
		Start: st.end, End: b.next,
		Watermark: st.watermark,
		Hours:     map[string]lake.HourMark{},
	}
	// Group valid events by partition; collect the rejects.
	groups := map[lake.Partition][]keyedEvent{}
	hours := map[int64]lake.HourMark{}
	var rejects []byte
	reasons := map[event.Reason]int{}
	for _, r := range b.records {
		if r.pos < st.end {
			continue
		}
		if r.err != nil {
			line, err := json.Marshal(s.reject(st.source, r))
			if err != nil {
				return flushResult{}, fmt.Errorf("ingest: encode rejected record: %w", err)
			}
			rejects = append(append(rejects, line...), '\n')
			reasons[event.ReasonOf(r.err)]++
			m.RejectedCount++
			continue
		}
		uh := lake.UserIDHash(r.ev.UserID)
		hour := lake.HourOf(r.ev.Timestamp)
		p := lake.Partition{Hour: hour, Bucket: int(uh % uint64(s.buckets))}
		groups[p] = append(groups[p], keyedEvent{user: uh, ev: r.ev})
		m.ValidCount++
		m.Watermark = max(m.Watermark, r.ev.Timestamp)
		hm := hours[hour.Unix()]
		hm.Events++
		hm.MaxTs = max(hm.MaxTs, r.ev.Timestamp)
		hours[hour.Unix()] = hm
	}
	for h, hm := range hours {
		m.Hours[time.Unix(h, 0).UTC().Format(lake.HourFormat)] = hm
	}

	// Encode and upload the data files, a few at a time.
	parts := make([]lake.Partition, 0, len(groups))
	for p := range groups {
		parts = append(parts, p)
	}
	slices.SortFunc(parts, func(a, b lake.Partition) int {
		return cmp.Or(a.Hour.Compare(b.Hour), cmp.Compare(a.Bucket, b.Bucket))
	})
	m.Files = make([]lake.DataFile, len(parts))
	errs := make([]error, len(parts))
	var wg sync.WaitGroup
	sem := make(chan struct{}, max(1, s.uploads))
	for i, p := range parts {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			m.Files[i], errs[i] = s.writeFile(ctx, p, st.source, seq, groups[p])
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return flushResult{}, err
	}
	if len(rejects) > 0 {
		m.Rejected = lake.RejectedKey(st.source, seq, s.writer)
		if err := s.store.Put(ctx, m.Rejected, rejects); err != nil {
			return flushResult{}, fmt.Errorf("ingest: write dead letters %s: %w", m.Rejected, err)
		}
	}
	// The manifest is the commit point: before it, nothing above is visible.
	s.crash.hit("before-manifest")
	if err := lake.Commit(ctx, s.store, m); err != nil {
		return flushResult{}, err
	}
	s.crash.hit("after-manifest")
	*st = sourceState{source: st.source, seq: seq, end: m.End, watermark: m.Watermark}
	s.metrics.written.Add(float64(m.ValidCount))
	for reason, n := range reasons {
		s.metrics.rejected.WithLabelValues(string(reason)).Add(float64(n))
	}
	s.metrics.commits.Inc()
	s.metrics.flushSeconds.Observe(time.Since(start).Seconds())
	s.log.Debug("committed", "source", st.source, "seq", seq, "start", m.Start, "end", m.End,
		"valid", m.ValidCount, "rejected", m.RejectedCount, "files", len(m.Files), "took", time.Since(start))
	return flushResult{valid: m.ValidCount, rejected: m.RejectedCount, files: len(m.Files)}, nil
}

// keyedEvent is a valid event with the hash of its user id.
type keyedEvent struct {
	user uint64
	ev   event.Event
}

// writeFile groups a partition's events by user and orders each user's by
// time — which keeps a user's clicks together for the aggregation job and
// compresses well — and uploads them as one data file. Users are ordered by
// the hash of their id: integer comparisons, where comparing the ids
// themselves dominated ingest's CPU time.
func (s *sink) writeFile(ctx context.Context, p lake.Partition, source string, seq uint64, kevs []keyedEvent) (lake.DataFile, error) {
	// Sort small keys, not the events themselves: a key moves 24 bytes.
	type sortKey struct {
		user uint64
		ts   int64
		i    int
	}
	keys := make([]sortKey, len(kevs))
	for i := range kevs {
		keys[i] = sortKey{kevs[i].user, kevs[i].ev.Timestamp, i}
	}
	slices.SortFunc(keys, func(a, b sortKey) int {
		if c := cmp.Or(cmp.Compare(a.user, b.user), cmp.Compare(a.ts, b.ts)); c != 0 {
			return c
		}
		x, y := &kevs[a.i].ev, &kevs[b.i].ev
		return cmp.Or(cmp.Compare(x.UserID, y.UserID), cmp.Compare(x.URL, y.URL), cmp.Compare(x.Country, y.Country))
	})
	evs := make([]event.Event, len(kevs))
	for j, k := range keys {
		evs[j] = kevs[k.i].ev
	}
	data, err := s.format.Encode(evs)
	if err != nil {
		return lake.DataFile{}, fmt.Errorf("ingest: encode %s: %w", p, err)
	}
	key := lake.DataFileKey(p, source, seq, s.writer, s.format.Ext())
	if err := s.store.Put(ctx, key, data); err != nil {
		return lake.DataFile{}, fmt.Errorf("ingest: write %s: %w", key, err)
	}
	f := lake.DataFile{Key: key, Bucket: p.Bucket, Hour: p.Hour.Format(lake.HourFormat),
		Events: int64(len(evs)), Bytes: int64(len(data)), MinTs: evs[0].Timestamp, MaxTs: evs[0].Timestamp}
	for _, e := range evs {
		f.MinTs = min(f.MinTs, e.Timestamp)
		f.MaxTs = max(f.MaxTs, e.Timestamp)
	}
	return f, nil
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
