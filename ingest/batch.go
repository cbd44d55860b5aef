package ingest

import (
	"strings"
	"unsafe"

	"github.com/dataco/clickstream/internal/event"
)

// record is one raw message with its source position, parsed.
type record struct {
	pos  int64
	raw  []byte // rejected records only: what the dead-letter area keeps
	ev   event.Event
	user uint64 // lake.UserIDPrefix(ev.UserID), valid records only
	hash uint32 // lake.BucketHash(ev.UserID), valid records only
	err  error  // non-nil: rejected
	size int    // of the raw message
}

// batch accumulates the records of one source between commits. Records are
// in position order; positions may have gaps (Kafka transaction markers,
// compaction), so the batch covers [start, next). Records are stored in
// fixed-size chunks that the batch keeps from one use to the next: a batch
// grows without copying what it holds.
type batch struct {
	start, next int64
	chunks      [][]record // chunks[:len-1] are full
	n           int        // records held
	rawBytes    int
	ids         idArena // the records' user ids
}

// Record chunks hold 1<<chunkBits records.
const (
	chunkBits = 12
	chunkSize = 1 << chunkBits
)

// len returns the number of records in the batch.
func (b *batch) len() int { return b.n }

// at returns the i-th record of the batch.
func (b *batch) at(i int) *record { return &b.chunks[i>>chunkBits][i&(chunkSize-1)] }

// reset empties the batch, keeping its storage, to fill it from pos on.
func (b *batch) reset(pos int64) {
	// Let go of the records, and so of the messages their strings point
	// into.
	for i := 0; i < b.n; i += chunkSize {
		clear(b.chunks[i>>chunkBits][:min(chunkSize, b.n-i)])
	}
	b.start, b.next = pos, pos
	b.n = 0
	b.rawBytes = 0
	b.ids.reset()
}

// add appends r, the record of a raw message of size bytes at a position
// after every one the batch holds. A valid record's user id is copied into
// the batch's arena: the record no longer points into the message.
func (b *batch) add(r record, size int) {
	r.size = size
	if r.err == nil {
		r.ev.UserID = b.ids.keep(r.ev.UserID)
	}
	c := b.n >> chunkBits
	if c == len(b.chunks) {
		b.chunks = append(b.chunks, make([]record, chunkSize))
	}
	b.chunks[c][b.n&(chunkSize-1)] = r
	b.n++
	b.next = r.pos + 1
	b.rawBytes += size
}

// dropBefore keeps only the records at or after pos, after another writer
// committed up to pos.
func (b *batch) dropBefore(pos int64) {
	if pos <= b.start {
		return
	}
	i := 0
	for i < b.n && b.at(i).pos < pos {
		b.rawBytes -= b.at(i).size
		i++
	}
	for j := i; j < b.n; j++ {
		*b.at(j - i) = *b.at(j)
	}
	for j := b.n - i; j < b.n; j++ {
		*b.at(j) = record{}
	}
	b.n -= i
	b.start = pos
	if b.next < pos {
		b.next = pos
	}
}

// idArena holds user ids back to back in blocks that are reused from one
// batch to the next: where the commit reads them, in an order unrelated to
// arrival, they sit in a few hundred kilobytes instead of in each message.
// Strings it returns are valid until reset.
type idArena struct {
	blocks [][]byte
	cur    int // index of the block being filled
}

// idBlockSize is the size of an arena block; longer ids are copied apart.
const idBlockSize = 64 << 10

// keep returns a copy of s held by the arena.
func (a *idArena) keep(s string) string {
	if s == "" {
		return ""
	}
	if len(s) > idBlockSize/16 {
		return strings.Clone(s)
	}
	if len(a.blocks) == 0 {
		a.blocks = append(a.blocks, make([]byte, 0, idBlockSize))
	}
	if blk := a.blocks[a.cur]; cap(blk)-len(blk) < len(s) {
		a.cur++
		if a.cur == len(a.blocks) {
			a.blocks = append(a.blocks, make([]byte, 0, idBlockSize))
		}
	}
	blk := a.blocks[a.cur]
	start := len(blk)
	blk = append(blk, s...)
	a.blocks[a.cur] = blk
	return unsafe.String(&blk[start], len(s))
}

// reset empties the arena, keeping its blocks: every string it returned
// becomes invalid.
func (a *idArena) reset() {
	for i := range a.blocks[:min(a.cur+1, len(a.blocks))] {
		a.blocks[i] = a.blocks[i][:0]
	}
	a.cur = 0
}
