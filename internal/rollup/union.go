package rollup

import (
	"bufio"
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/axiomhq/hyperloglog"

	"github.com/dataco/clickstream/internal/userset"
)

// A source yields a sorted stream of hashes, possibly with duplicates
// across sources (never within one).
type source interface {
	next() (uint64, bool, error)
}

// iterSource is a set of a window's file.
type iterSource struct{ it userset.Iter }

func (s *iterSource) next() (uint64, bool, error) {
	h, ok := s.it.Next()
	return h, ok, nil
}

// sliceSource is a sorted run in memory.
type sliceSource struct{ s []uint64 }

func (s *sliceSource) next() (uint64, bool, error) {
	if len(s.s) == 0 {
		return 0, false, nil
	}
	h := s.s[0]
	s.s = s.s[1:]
	return h, true, nil
}

// fileSource is a sorted run spilled to disk: little-endian uint64s.
type fileSource struct {
	f   *os.File
	r   *bufio.Reader
	buf [8]byte
}

func openRun(path string) (*fileSource, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("rollup: open spilled run: %w", err)
	}
	return &fileSource{f: f, r: bufio.NewReaderSize(f, 64<<10)}, nil
}

func (s *fileSource) next() (uint64, bool, error) {
	if _, err := io.ReadFull(s.r, s.buf[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return 0, false, nil
		}
		return 0, false, fmt.Errorf("rollup: read spilled run %s: %w", s.f.Name(), err)
	}
	return binary.LittleEndian.Uint64(s.buf[:]), true, nil
}

func (s *fileSource) close() { s.f.Close() }

// merger is the k-way union of sources, in increasing order without
// duplicates.
type merger struct {
	h    mergeHeap
	last uint64
	some bool
}

type mergeItem struct {
	h   uint64
	src source
}

type mergeHeap []mergeItem

func (m mergeHeap) Len() int           { return len(m) }
func (m mergeHeap) Less(i, j int) bool { return m[i].h < m[j].h }
func (m mergeHeap) Swap(i, j int)      { m[i], m[j] = m[j], m[i] }
func (m *mergeHeap) Push(x any)        { *m = append(*m, x.(mergeItem)) }
func (m *mergeHeap) Pop() any {
	old := *m
	x := old[len(old)-1]
	*m = old[:len(old)-1]
	return x
}

func newMerger(srcs []source) (*merger, error) {
	m := &merger{h: make(mergeHeap, 0, len(srcs))}
	for _, s := range srcs {
		h, ok, err := s.next()
		if err != nil {
			return nil, err
		}
		if ok {
			m.h = append(m.h, mergeItem{h, s})
		}
	}
	heap.Init(&m.h)
	return m, nil
}

// next returns the next distinct hash of the union.
func (m *merger) next() (uint64, bool, error) {
	for len(m.h) > 0 {
		top := &m.h[0]
		h := top.h
		nh, ok, err := top.src.next()
		if err != nil {
			return 0, false, err
		}
		if ok {
			top.h = nh
			heap.Fix(&m.h, 0)
		} else {
			heap.Pop(&m.h)
		}
		if m.some && h == m.last {
			continue
		}
		m.last, m.some = h, true
		return h, true, nil
	}
	return 0, false, nil
}

// budget is the memory of the hashes buffered by a shard's unions, and
// what spilling costs.
type budget struct {
	limit   int64 // bytes; <= 0: no limit
	used    int64
	peak    int64
	spills  int64
	spilled int64 // bytes written to disk
	dir     string
	files   int
	// exactLimit: a union given more hashes than this (duplicates
	// included) becomes an HLL sketch (0: never).
	exactLimit int64
	// accs are the unions holding buffered hashes, to pick one to spill.
	accs map[*union]struct{}
}

func newBudget(limit int64, dir string) *budget {
	return &budget{limit: limit, dir: dir, accs: map[*union]struct{}{}}
}

// maxFileRuns is how many spilled runs a union keeps before it merges
// them into one: it bounds the files open while merging.
const maxFileRuns = 8

// union is an exact set union under a memory budget: hashes are
// appended to a buffer; when the shard's buffers exceed the budget, the
// largest is sorted, deduplicated and written to a file as a sorted run;
// the union is the k-way merge of the buffer (sorted) and the runs.
type union struct {
	b    *budget
	buf  []uint64
	runs []string
	// added counts the hashes added, duplicates included; beyond the
	// budget's exact limit the union becomes the sketch sk.
	added int64
	sk    *hyperloglog.Sketch
}

func newUnion(b *budget) *union { return &union{b: b} }

func (u *union) add(h uint64) error {
	if u.sk != nil {
		u.sk.InsertHash(h)
		return nil
	}
	u.added++
	if u.b.exactLimit > 0 && u.added > u.b.exactLimit {
		if err := u.toSketch(); err != nil {
			return err
		}
		u.sk.InsertHash(h)
		return nil
	}
	if len(u.buf) == cap(u.buf) {
		if len(u.buf) >= 1024 {
			// Users recur across windows and keys: deduplicating a full
			// buffer often frees half of it, which is cheaper than
			// growing (and leaves less to sort at the end).
			slices.Sort(u.buf)
			u.buf = slices.Compact(u.buf)
			if len(u.buf) <= cap(u.buf)/2 {
				u.buf = append(u.buf, h)
				return nil
			}
		}
		// Growth is what the budget accounts for.
		grow := int64(max(cap(u.buf), 64)) * 8
		if u.b.limit > 0 && u.b.used+grow > u.b.limit {
			if err := u.b.spillFor(grow); err != nil {
				return err
			}
		}
		nb := make([]uint64, len(u.buf), max(2*cap(u.buf), 64))
		copy(nb, u.buf)
		u.b.used += int64(cap(nb)-cap(u.buf)) * 8
		u.b.peak = max(u.b.peak, u.b.used)
		u.buf = nb
		u.b.accs[u] = struct{}{}
	}
	u.buf = append(u.buf, h)
	return nil
}

// spillFor spills the largest buffers until need more bytes fit.
func (b *budget) spillFor(need int64) error {
	for b.used+need > b.limit && len(b.accs) > 0 {
		var big *union
		for u := range b.accs {
			if big == nil || cap(u.buf) > cap(big.buf) {
				big = u
			}
		}
		if err := big.spill(); err != nil {
			return err
		}
	}
	return nil
}

// spill writes the buffer as a sorted run and frees it.
func (u *union) spill() error {
	defer u.free()
	if len(u.buf) == 0 {
		return nil
	}
	slices.Sort(u.buf)
	u.buf = slices.Compact(u.buf)
	path, err := u.b.writeRun(&sliceSource{s: u.buf})
	if err != nil {
		return err
	}
	u.runs = append(u.runs, path)
	u.b.spills++
	if len(u.runs) > maxFileRuns {
		return u.compact()
	}
	return nil
}

// compact merges the union's runs into one.
func (u *union) compact() error {
	srcs, closeAll, err := u.fileSources()
	if err != nil {
		return err
	}
	defer closeAll()
	m, err := newMerger(srcs)
	if err != nil {
		return err
	}
	path, err := u.b.writeRun(m)
	if err != nil {
		return err
	}
	for _, p := range u.runs {
		os.Remove(p)
	}
	u.runs = []string{path}
	return nil
}

func (u *union) free() {
	u.b.used -= int64(cap(u.buf)) * 8
	u.buf = nil
	delete(u.b.accs, u)
}

func (b *budget) writeRun(src source) (string, error) {
	b.files++
	path := filepath.Join(b.dir, fmt.Sprintf("run-%06d.bin", b.files))
	f, err := os.Create(path)
	if err != nil {
		return "", fmt.Errorf("rollup: spill: %w", err)
	}
	w := bufio.NewWriterSize(f, 64<<10)
	var buf [8]byte
	n := int64(0)
	for {
		h, ok, err := src.next()
		if err != nil {
			f.Close()
			return "", err
		}
		if !ok {
			break
		}
		binary.LittleEndian.PutUint64(buf[:], h)
		if _, err := w.Write(buf[:]); err != nil {
			f.Close()
			return "", fmt.Errorf("rollup: spill: %w", err)
		}
		n++
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return "", fmt.Errorf("rollup: spill: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("rollup: spill: %w", err)
	}
	b.spilled += 8 * n
	return path, nil
}

func (u *union) fileSources() ([]source, func(), error) {
	var fs []*fileSource
	closeAll := func() {
		for _, f := range fs {
			f.close()
		}
	}
	srcs := make([]source, 0, len(u.runs)+1)
	for _, p := range u.runs {
		f, err := openRun(p)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		fs = append(fs, f)
		srcs = append(srcs, f)
	}
	return srcs, closeAll, nil
}

// newSketch is the sketch of an approximate union: HyperLogLog++ with
// 2¹⁴ registers, relative standard error 1.04/√2¹⁴ ≈ 0.81%.
func newSketch() *hyperloglog.Sketch { return hyperloglog.New14() }

// SketchRelError is the relative standard error of an approximate
// union's count.
const SketchRelError = 0.0081

// toSketch turns the union into a sketch of what it holds.
func (u *union) toSketch() error {
	sk := newSketch()
	u.seal()
	srcs, closeAll, err := u.sources()
	if err != nil {
		return err
	}
	defer closeAll()
	for _, s := range srcs {
		for {
			h, ok, err := s.next()
			if err != nil {
				return err
			}
			if !ok {
				break
			}
			sk.InsertHash(h)
		}
	}
	u.release()
	u.sk = sk
	return nil
}

// seal sorts and deduplicates the buffer in place: the union is then the
// sorted buffer and the runs (sources).
func (u *union) seal() {
	slices.Sort(u.buf)
	u.buf = slices.Compact(u.buf)
}

// sources returns the sealed union's sorted runs, the buffer first, and
// a function that closes the files.
func (u *union) sources() ([]source, func(), error) {
	srcs, closeAll, err := u.fileSources()
	if err != nil {
		return nil, nil, err
	}
	if len(u.buf) > 0 {
		srcs = append(srcs, &sliceSource{s: u.buf})
	}
	return srcs, closeAll, nil
}

// single returns the sealed, exact union as one sorted source of its
// distinct hashes, their number, and a function that closes it: the
// buffer if nothing was spilled, else one run (the buffer spilled and
// the runs merged).
func (u *union) single() (source, int64, func(), error) {
	u.seal()
	if len(u.runs) == 0 {
		return &sliceSource{s: u.buf}, int64(len(u.buf)), func() {}, nil
	}
	if err := u.spill(); err != nil {
		return nil, 0, nil, err
	}
	if len(u.runs) > 1 {
		if err := u.compact(); err != nil {
			return nil, 0, nil, err
		}
	}
	f, err := openRun(u.runs[0])
	if err != nil {
		return nil, 0, nil, err
	}
	fi, err := f.f.Stat()
	if err != nil {
		f.close()
		return nil, 0, nil, fmt.Errorf("rollup: spilled run: %w", err)
	}
	return f, fi.Size() / 8, f.close, nil
}

// release frees the buffer and deletes the runs.
func (u *union) release() {
	u.sk = nil
	u.free()
	for _, p := range u.runs {
		os.Remove(p)
	}
	u.runs = nil
}
