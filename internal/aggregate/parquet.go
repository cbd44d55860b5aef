package aggregate

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/encoding"
	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"

	"github.com/dataco/clickstream/internal/lake"
)

// Parquet column names of the fields an aggregate needs (see lake.Columns).
const (
	columnUserID    = lake.ColumnUserID
	columnTimestamp = lake.ColumnTimestamp // microseconds, UTC
	columnURL       = lake.ColumnURL
	columnCountry   = lake.ColumnCountry
	columnIsBot     = lake.ColumnIsBot // optional: older files lack it
)

// oldColumnTimestamp is the time column of lake layout 1, in milliseconds.
const oldColumnTimestamp = "timestamp_ms"

// ComputeParquet aggregates the events stored in Parquet files (as written
// by lake.EncodeParquet) over window w, like Compute over the same events
// (bots set apart).
// Files are read page by page with ColumnReader. The error wraps
// ErrUnsupportedFile for a file it cannot read by columns (missing,
// optional or mistyped columns, a codec other than zstd or none), for which
// decoding rows (lake.DecodeFile) and Compute is the fallback; a file of an
// older lake layout (a timestamp_ms column, no ts) is an error naming the
// missing ts column; other errors are corrupt files.
func ComputeParquet(files [][]byte, w Window, sessionTimeout time.Duration) (*Partial, error) {
	r := NewColumnReader(w, sessionTimeout)
	for i, f := range files {
		if err := r.AddFile(bytes.NewReader(f), int64(len(f))); err != nil {
			return nil, fmt.Errorf("aggregate: parquet file %d: %w", i, err)
		}
	}
	return r.Partial(), nil
}

// ColumnReader aggregates a task's events from Parquet files one file at a
// time, so the caller need not hold every file in memory. It decodes only the
// columns an aggregate needs (user_id, ts, url, country, and is_bot unless
// bots are included; a file without is_bot holds no bot), page by page: timestamps are copied from the typed page data and turned from
// microseconds into the milliseconds of event.Event, and the
// dictionary-encoded string columns are read as dictionary indexes, turned
// into dense ids through a per-column-chunk table, so a string is looked up
// once per chunk dictionary entry rather than once per row and no string is
// allocated per row. Row groups whose timestamp statistics lie wholly
// outside the window and its look-ahead are skipped without decoding.
//
// A ColumnReader is not safe for concurrent use. Call Partial once, after
// the last AddFile.
type ColumnReader struct {
	c                   builder
	users, urls, countr stringColumn
	keys                keyTable

	skipped int    // row groups skipped by their statistics (for tests)
	chunk   []byte // checkPages scratch

	// per row group scratch, one entry a row
	ts                    []int64
	uids, urlIDs, ctryIDs []uint32
	isBot                 []bool
}

// NewColumnReader returns a reader aggregating window w. sessionTimeout <= 0
// means DefaultSessionTimeout.
func NewColumnReader(w Window, sessionTimeout time.Duration) *ColumnReader {
	return &ColumnReader{
		c: builder{b: newBounds(w, sessionTimeout)},
	}
}

// WithoutUserSets makes the partial's rows carry no UserHashes: Users is
// exact all the same (the sum over user-disjoint tasks), and the sets cost
// memory, CPU and bytes on the wire that a plain job does not need; roll-ups
// over windows need them. Call it before Partial.
func (r *ColumnReader) WithoutUserSets() { r.c.noSets = true }

// IncludeBots folds bots' events into the counters (BotsIncluded): is_bot
// is not read. Call it before the first AddFile.
func (r *ColumnReader) IncludeBots() { r.c.bots = BotsIncluded }

// Partial returns the aggregate of the files added so far.
func (r *ColumnReader) Partial() *Partial {
	r.c.users = r.users.strs
	return r.c.finish()
}

// checkFileEnds rejects what is not a plain Parquet file before parquet-go
// sees it: parquet-go allocates the footer length a file claims before
// checking it against the file size.
func checkFileEnds(file io.ReaderAt, size int64) error {
	if size < 12 {
		return fmt.Errorf("not a parquet file: %d bytes", size)
	}
	var head [4]byte
	var tail [8]byte
	if _, err := file.ReadAt(head[:], 0); err != nil {
		return err
	}
	if _, err := file.ReadAt(tail[:], size-8); err != nil {
		return err
	}
	if string(head[:]) != "PAR1" || string(tail[4:]) != "PAR1" {
		return errors.New("not a parquet file (no PAR1 magic at both ends)")
	}
	if footer := int64(binary.LittleEndian.Uint32(tail[:4])); footer > size-12 {
		return fmt.Errorf("footer length %d exceeds the %d-byte file", footer, size)
	}
	return nil
}

// Limits on what a page header may claim (checkPages).
const (
	maxPageBytes  = 64 << 20 // uncompressed size of one page
	maxPageValues = 16 << 20 // values in one page
)

// checkPages walks the page headers of a column chunk before parquet-go
// reads it. parquet-go decodes a page header from a stream and allocates
// whatever length a field of it claims, up to 2 GiB, and then a page
// buffer of the size the header claims: one flipped bit in a corrupt file
// could make a worker allocate gigabytes. Here the headers are decoded from
// the chunk's bytes, which bounds every length by the data present, and
// the page sizes are checked against the chunk and against maxPageBytes and
// maxPageValues. The lake writes pages of 256 KiB and row groups of 128k
// rows, far below both.
func (r *ColumnReader) checkPages(file io.ReaderAt, size int64, md *format.ColumnMetaData) error {
	start, n := md.DataPageOffset, md.TotalCompressedSize
	if d := md.DictionaryPageOffset; d > 0 && d < start {
		start = d
	}
	if start < 4 || n < 0 || n > size || start > size-n {
		return fmt.Errorf("column %v: chunk [%d, +%d) outside the %d-byte file", md.PathInSchema, start, n, size)
	}
	if cap(r.chunk) < int(n) {
		r.chunk = make([]byte, n)
	}
	chunk := r.chunk[:n]
	if _, err := file.ReadAt(chunk, start); err != nil {
		return err
	}
	var proto thrift.CompactProtocol
	for off := 0; off < len(chunk); {
		var h format.PageHeader
		rd := proto.NewReaderFromBytes(chunk[off:])
		if err := thrift.NewDecoder(rd).Decode(&h); err != nil {
			return fmt.Errorf("column %v: page header at %d: %w", md.PathInSchema, start+int64(off), err)
		}
		var values int32
		switch {
		case h.DataPageHeader.Valid:
			values = h.DataPageHeader.V.NumValues
		case h.DataPageHeaderV2.Valid:
			values = h.DataPageHeaderV2.V.NumValues
		case h.DictionaryPageHeader.Valid:
			values = h.DictionaryPageHeader.V.NumValues
		}
		off += rd.BytesRead()
		if h.CompressedPageSize < 0 || int(h.CompressedPageSize) > len(chunk)-off ||
			h.UncompressedPageSize < 0 || h.UncompressedPageSize > maxPageBytes ||
			values < 0 || values > maxPageValues {
			return fmt.Errorf("column %v: implausible page header at %d (%d bytes, %d uncompressed, %d values)",
				md.PathInSchema, start+int64(off), h.CompressedPageSize, h.UncompressedPageSize, values)
		}
		off += int(h.CompressedPageSize)
	}
	return nil
}

type leafColumns struct {
	user, ts, url, country int
	isBot                  int // -1: none (a file from before the column)
}

func lookupColumns(schema *parquet.Schema) (leafColumns, error) {
	var cols leafColumns
	for _, c := range []struct {
		name string
		kind parquet.Kind
		idx  *int
	}{
		{columnUserID, parquet.ByteArray, &cols.user},
		{columnTimestamp, parquet.Int64, &cols.ts},
		{columnURL, parquet.ByteArray, &cols.url},
		{columnCountry, parquet.ByteArray, &cols.country},
	} {
		leaf, ok := schema.Lookup(c.name)
		switch {
		case !ok && c.name == columnTimestamp:
			if _, old := schema.Lookup(oldColumnTimestamp); old {
				return cols, fmt.Errorf("no column %q but %q: a data file of an older lake layout (1: FNV buckets, timestamp_ms files); re-ingest into a new lake",
					c.name, oldColumnTimestamp)
			}
			return cols, fmt.Errorf("no column %q: %w", c.name, ErrUnsupportedFile)
		case !ok:
			return cols, fmt.Errorf("no column %q: %w", c.name, ErrUnsupportedFile)
		case leaf.MaxDefinitionLevel != 0 || leaf.MaxRepetitionLevel != 0:
			return cols, fmt.Errorf("column %q is optional or repeated: %w", c.name, ErrUnsupportedFile)
		case leaf.Node.Type().Kind() != c.kind:
			return cols, fmt.Errorf("column %q has type %s, want %s: %w", c.name, leaf.Node.Type().Kind(), c.kind, ErrUnsupportedFile)
		case c.name == columnTimestamp && !isMicros(leaf.Node.Type()):
			return cols, fmt.Errorf("column %q is not a timestamp in microseconds: %w", c.name, ErrUnsupportedFile)
		}
		*c.idx = leaf.ColumnIndex
	}
	cols.isBot = -1
	if leaf, ok := schema.Lookup(columnIsBot); ok {
		switch {
		case leaf.MaxDefinitionLevel != 0 || leaf.MaxRepetitionLevel != 0:
			return cols, fmt.Errorf("column %q is optional or repeated: %w", columnIsBot, ErrUnsupportedFile)
		case leaf.Node.Type().Kind() != parquet.Boolean:
			return cols, fmt.Errorf("column %q has type %s, want %s: %w", columnIsBot, leaf.Node.Type().Kind(), parquet.Boolean, ErrUnsupportedFile)
		}
		cols.isBot = leaf.ColumnIndex
	}
	return cols, nil
}

// AddFile reads one Parquet file. On error the reader must not be used
// further: the file may have been partly added.
func (r *ColumnReader) AddFile(file io.ReaderAt, size int64) (err error) {
	// parquet-go may panic on corrupt pages; a task's input is data, so turn
	// that into an error for this file instead of crashing the worker.
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("decoding parquet: panic: %v", p)
		}
	}()
	if err := checkFileEnds(file, size); err != nil {
		return err
	}
	f, err := parquet.OpenFile(file, size, parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		return err
	}
	cols, err := lookupColumns(f.Schema())
	if err != nil {
		return err
	}
	if r.c.bots == BotsIncluded {
		cols.isBot = -1 // not read: a bot counts as anyone
	}
	// Only the codecs the lake writes (as lake.DecodeParquet): parquet-go's
	// LZ4 decoder can loop growing its buffer on a corrupt block, and its
	// snappy one allocates whatever length a block claims.
	for _, rg := range f.Metadata().RowGroups {
		for _, c := range rg.Columns {
			if codec := c.MetaData.Codec; codec != format.Zstd && codec != format.Uncompressed {
				return fmt.Errorf("column %v: compression %v: %w", c.MetaData.PathInSchema, codec, ErrUnsupportedFile)
			}
		}
		for _, i := range []int{cols.user, cols.ts, cols.url, cols.country, cols.isBot} {
			if i < 0 {
				continue
			}
			if i >= len(rg.Columns) {
				return fmt.Errorf("row group has %d columns, want %d", len(rg.Columns), i+1)
			}
			if err := r.checkPages(file, size, &rg.Columns[i].MetaData); err != nil {
				return err
			}
		}
	}
	for g, rg := range f.RowGroups() {
		if err := r.addRowGroup(rg, cols); err != nil {
			return fmt.Errorf("row group %d: %w", g, err)
		}
	}
	return nil
}

func (r *ColumnReader) addRowGroup(rg parquet.RowGroup, cols leafColumns) error {
	n := rg.NumRows()
	r.c.read += n
	chunks := rg.ColumnChunks()
	if fc, ok := chunks[cols.ts].(*parquet.FileColumnChunk); ok {
		min, max, ok := fc.Bounds()
		if ok && min.Kind() == parquet.Int64 && max.Kind() == parquet.Int64 &&
			(microsToMillis(max.Int64()) < r.c.b.from || microsToMillis(min.Int64()) >= r.c.b.limit) {
			r.skipped++
			return nil // nothing in the window or its look-ahead
		}
	}

	var err error
	if r.ts, err = readTimestamps(chunks[cols.ts], r.ts[:0]); err != nil {
		return err
	}
	if r.uids, err = r.users.readChunk(chunks[cols.user], r.uids[:0]); err != nil {
		return err
	}
	if r.urlIDs, err = r.urls.readChunk(chunks[cols.url], r.urlIDs[:0]); err != nil {
		return err
	}
	if r.ctryIDs, err = r.countr.readChunk(chunks[cols.country], r.ctryIDs[:0]); err != nil {
		return err
	}
	var isBot []bool // nil: no bot in the row group
	if cols.isBot >= 0 && mayHoldBots(chunks[cols.isBot]) {
		if r.isBot, err = readBools(chunks[cols.isBot], r.isBot[:0]); err != nil {
			return err
		}
		if int64(len(r.isBot)) != n {
			return fmt.Errorf("corrupt file: column chunk has %d values for %d rows", len(r.isBot), n)
		}
		isBot = r.isBot
	}
	for _, l := range []int{len(r.ts), len(r.uids), len(r.urlIDs), len(r.ctryIDs)} {
		if int64(l) != n {
			return fmt.Errorf("corrupt file: column chunk has %d values for %d rows", l, n)
		}
	}

	b := &r.c.b
	ts, uids, urlIDs, ctryIDs := r.ts, r.uids[:len(r.ts)], r.urlIDs[:len(r.ts)], r.ctryIDs[:len(r.ts)]
	kept := 0
	for _, t := range ts {
		if b.keep(t) {
			kept++
		}
	}
	if kept == 0 {
		return nil
	}
	recs := make([]rec, 0, kept) // the row group's block
	for i, t := range ts {
		if !b.keep(t) {
			continue
		}
		u, c := urlIDs[i], ctryIDs[i]
		k, added := r.keys.id(u, c, uint32(len(r.c.keys)))
		if added {
			r.c.keys = append(r.c.keys, Key{URL: r.urls.strs[u], Country: r.countr.strs[c]})
		}
		if isBot != nil && isBot[i] {
			r.c.appendBot(k, t)
			continue
		}
		recs = append(recs, rec{ts: t, user: uids[i], key: k})
		if t < b.to {
			r.c.inWindow++
		}
	}
	r.c.blocks = append(r.c.blocks, recs)
	return nil
}

// forEachPage calls fn with each page of a column chunk, releasing the
// page to parquet-go's buffer pool afterwards.
func forEachPage(chunk parquet.ColumnChunk, fn func(parquet.Page) error) error {
	pages := chunk.Pages()
	defer pages.Close()
	for {
		p, err := pages.ReadPage()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if p.NumNulls() != 0 {
			parquet.Release(p)
			return fmt.Errorf("column %d: page with nulls: %w", chunk.Column(), ErrUnsupportedFile)
		}
		err = fn(p)
		parquet.Release(p)
		if err != nil {
			return err
		}
	}
}

// readTimestamps appends the chunk's timestamps to dst, in milliseconds.
func readTimestamps(chunk parquet.ColumnChunk, dst []int64) ([]int64, error) {
	err := forEachPage(chunk, func(p parquet.Page) error {
		vals := p.Data()
		if d := p.Dictionary(); d != nil {
			dv := d.Page().Data()
			if vals.Kind() != encoding.Int32 || dv.Kind() != encoding.Int64 {
				return fmt.Errorf("timestamp page of kind %s/%s: %w", vals.Kind(), dv.Kind(), ErrUnsupportedFile)
			}
			dict := dv.Int64()
			for _, i := range vals.Int32() {
				if uint32(i) >= uint32(len(dict)) {
					return fmt.Errorf("corrupt file: timestamp dictionary index %d out of %d", i, len(dict))
				}
				dst = append(dst, microsToMillis(dict[i]))
			}
			return nil
		}
		if vals.Kind() != encoding.Int64 {
			return fmt.Errorf("timestamp page of kind %s: %w", vals.Kind(), ErrUnsupportedFile)
		}
		n := len(dst)
		dst = append(dst, vals.Int64()...)
		for i, t := range dst[n:] {
			dst[n+i] = microsToMillis(t)
		}
		return nil
	})
	return dst, err
}

// mayHoldBots reports whether an is_bot column chunk may hold a true value:
// not when its statistics say its largest value is false.
func mayHoldBots(chunk parquet.ColumnChunk) bool {
	if fc, ok := chunk.(*parquet.FileColumnChunk); ok {
		if _, max, ok := fc.Bounds(); ok && max.Kind() == parquet.Boolean && !max.Boolean() {
			return false
		}
	}
	return true
}

// readBools appends the values of a boolean column chunk to dst.
func readBools(chunk parquet.ColumnChunk, dst []bool) ([]bool, error) {
	err := forEachPage(chunk, func(p parquet.Page) error {
		br, ok := p.Values().(parquet.BooleanReader)
		if !ok {
			return fmt.Errorf("boolean page without a boolean reader: %w", ErrUnsupportedFile)
		}
		n := len(dst)
		dst = slices.Grow(dst, int(p.NumValues()))[:n+int(p.NumValues())]
		for off := n; off < len(dst); {
			k, err := br.ReadBooleans(dst[off:])
			off += k
			if errors.Is(err, io.EOF) {
				if off != len(dst) {
					return fmt.Errorf("corrupt file: boolean page of %d values ends after %d", p.NumValues(), off-n)
				}
				break
			}
			if err != nil {
				return err
			}
			if k == 0 {
				return fmt.Errorf("corrupt file: boolean page reader stalled")
			}
		}
		return nil
	})
	return dst, err
}

// microsToMillis turns microseconds into milliseconds, rounding toward
// negative infinity as time.Time.Truncate does after the epoch.
func microsToMillis(us int64) int64 {
	ms := us / 1000
	if us%1000 < 0 {
		ms--
	}
	return ms
}

// isMicros reports whether t is a TIMESTAMP(MICROS) logical type.
func isMicros(t parquet.Type) bool {
	lt := t.LogicalType()
	if lt == nil {
		return false
	}
	ts, ok := lt.Value.(*format.TimestampType)
	if !ok {
		return false
	}
	_, ok = ts.Unit.Value.(*format.MicroSeconds)
	return ok
}

// stringColumn interns the values of one string column across files into
// dense ids.
//
// Chunk dictionaries whose values are in ascending order, as the user ids of
// files sorted by user are, are merged with the values seen so far, kept
// in order: a walk over both, mostly sequential in memory, with no hash
// lookup. The first dictionary out of order, or page without a dictionary,
// turns the column to a hash map of the values for good.
type stringColumn struct {
	ids  map[string]uint32 // nil while dictionaries are merged
	strs []string          // values by id

	// While ids is nil: the ids in ascending order of their values, and
	// the previous such slice, reused by the next merge.
	sorted, spare []uint32

	// The dictionary of the column chunk being read, and its translation
	// table from dictionary index to id (noID until first used).
	dict    parquet.Dictionary
	data    []byte
	offsets []uint32
	tab     []uint32
}

// useMap turns the column to interning through the map ids.
func (s *stringColumn) useMap() {
	if s.ids != nil {
		return
	}
	s.ids = make(map[string]uint32, len(s.strs))
	for id, str := range s.strs {
		s.ids[str] = uint32(id)
	}
	s.sorted, s.spare = nil, nil
}

func (s *stringColumn) intern(b []byte) uint32 {
	s.useMap()
	if id, ok := s.ids[string(b)]; ok { // no allocation for the lookup
		return id
	}
	str := string(b)
	id := uint32(len(s.strs))
	s.ids[str] = id
	s.strs = append(s.strs, str)
	return id
}

func (s *stringColumn) internString(str string) uint32 {
	s.useMap()
	id, ok := s.ids[str]
	if !ok {
		id = uint32(len(s.strs))
		s.ids[str] = id
		s.strs = append(s.strs, str)
	}
	return id
}

func (s *stringColumn) readChunk(chunk parquet.ColumnChunk, dst []uint32) ([]uint32, error) {
	s.dict = nil // dictionaries are per chunk (and may be pooled objects)
	err := forEachPage(chunk, func(p parquet.Page) error {
		vals := p.Data()
		if d := p.Dictionary(); d != nil {
			if vals.Kind() != encoding.Int32 {
				return fmt.Errorf("string page of kind %s: %w", vals.Kind(), ErrUnsupportedFile)
			}
			if d != s.dict {
				if err := s.setDictionary(d); err != nil {
					return err
				}
			}
			tab := s.tab
			for _, i := range vals.Int32() {
				if uint32(i) >= uint32(len(tab)) {
					return fmt.Errorf("corrupt file: dictionary index %d out of %d", i, len(tab))
				}
				id := tab[i]
				if id == noID {
					id = s.intern(s.data[s.offsets[i]:s.offsets[i+1]])
					tab[i] = id
				}
				dst = append(dst, id)
			}
			return nil
		}
		// A plain page: the writer's dictionary outgrew its limit.
		if vals.Kind() != encoding.ByteArray {
			return fmt.Errorf("string page of kind %s: %w", vals.Kind(), ErrUnsupportedFile)
		}
		data, offsets := vals.ByteArray()
		id := noID
		var prev []byte
		for j := 0; j+1 < len(offsets); j++ {
			b := data[offsets[j]:offsets[j+1]]
			if id == noID || !bytes.Equal(b, prev) {
				id, prev = s.intern(b), b
			}
			dst = append(dst, id)
		}
		return nil
	})
	return dst, err
}

func (s *stringColumn) setDictionary(d parquet.Dictionary) error {
	dv := d.Page().Data()
	if dv.Kind() != encoding.ByteArray {
		return fmt.Errorf("string dictionary of kind %s: %w", dv.Kind(), ErrUnsupportedFile)
	}
	data, offsets := dv.ByteArray()
	n := len(offsets) - 1
	if n < 0 || n != d.Len() {
		return fmt.Errorf("corrupt file: dictionary with %d offsets for %d values", len(offsets), d.Len())
	}
	s.dict, s.data, s.offsets = d, data, offsets
	if cap(s.tab) < n {
		s.tab = make([]uint32, n)
	}
	s.tab = s.tab[:n]
	if s.ids == nil && len(s.sorted) <= mergeRatio*n+mergeFloor && s.mergeDictionary() {
		return nil
	}
	s.useMap()
	for i := range s.tab {
		s.tab[i] = noID
	}
	return nil
}

// A dictionary is merged only while the values seen so far are at most
// mergeRatio times as many as its own, plus mergeFloor: a merge that adds
// values rewrites the whole order, so many small dictionaries after many
// values would make interning quadratic. Beyond, the column turns to the
// map.
const (
	mergeRatio = 16
	mergeFloor = 4096
)

// value returns the dictionary value at index i.
func (s *stringColumn) value(i int) []byte { return s.data[s.offsets[i]:s.offsets[i+1]] }

// mergeDictionary fills the whole translation table, if the dictionary's
// values are strictly ascending, by merging them with s.sorted: values
// seen before keep their ids, new ones get the next ids. It reports false,
// changing nothing, for a dictionary out of order.
func (s *stringColumn) mergeDictionary() bool {
	n := len(s.tab)
	for i := 1; i < n; i++ {
		if string(s.value(i-1)) >= string(s.value(i)) {
			return false
		}
	}
	added := 0
	j := 0 // values up to here are below the current one
	for i := range n {
		v := s.value(i)
		j += s.below(s.sorted[j:], v)
		if j < len(s.sorted) && s.strs[s.sorted[j]] == string(v) {
			s.tab[i] = s.sorted[j]
			j++
		} else {
			s.tab[i] = noID
			added++
		}
	}
	if added == 0 {
		return true
	}
	merged := slices.Grow(s.spare[:0], len(s.sorted)+added)
	j = 0
	for i := range n {
		if s.tab[i] != noID {
			continue
		}
		v := s.value(i)
		k := j + s.below(s.sorted[j:], v)
		merged = append(merged, s.sorted[j:k]...)
		j = k
		id := uint32(len(s.strs))
		s.strs = append(s.strs, string(v))
		s.tab[i] = id
		merged = append(merged, id)
	}
	merged = append(merged, s.sorted[j:]...)
	s.sorted, s.spare = merged, s.sorted
	return true
}

// below returns how many of the ids, in ascending order of their values,
// have a value below v. It gallops from the start: in a merge the next
// value is mostly near.
func (s *stringColumn) below(ids []uint32, v []byte) int {
	hi := 1
	for hi <= len(ids) && s.strs[ids[hi-1]] < string(v) {
		hi *= 2
	}
	lo := hi / 2 // ids[:lo] are below v
	hi = min(hi, len(ids))
	return lo + sort.Search(hi-lo, func(k int) bool { return s.strs[ids[lo+k]] >= string(v) })
}
