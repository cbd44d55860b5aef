package ingest

import (
	"io"
	"sync/atomic"
)

// Progress is how far a file ingest has read, for a display that polls it
// (Config.Progress): safe to read while the ingest runs.
type Progress struct {
	records, bytes, size atomic.Int64
}

// ProgressSnapshot is a Progress at one moment.
type ProgressSnapshot struct {
	Records int64 // lines read, including those an earlier run committed
	Bytes   int64 // bytes read from the input
	Size    int64 // the input's size; 0 before it is opened, -1 if unknown (stdin)
}

// Snapshot returns the counts so far.
func (p *Progress) Snapshot() ProgressSnapshot {
	return ProgressSnapshot{Records: p.records.Load(), Bytes: p.bytes.Load(), Size: p.size.Load()}
}

// Add counts records lines and n bytes read.
func (p *Progress) Add(records, n int64) {
	p.records.Add(records)
	p.bytes.Add(n)
}

// SetSize records the input's size (-1: unknown).
func (p *Progress) SetSize(n int64) { p.size.Store(n) }

// countingReader counts the bytes read through it into n.
type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}
