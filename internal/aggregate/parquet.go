package aggregate

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/encoding"
)

// Parquet column names of the fields an aggregate needs (see event.Event).
const (
	columnUserID    = "user_id"
	columnTimestamp = "timestamp_ms"
	columnURL       = "url"
	columnCountry   = "country"
)

// ComputeParquet aggregates the events stored in Parquet files (as written
// by parquet.GenericWriter[event.Event]) over window w, like Compute over the
// same events. Files are read page by page with ColumnReader. The error
// wraps ErrUnsupportedFile for a schema it cannot read.
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
// four columns an aggregate needs (user_id, timestamp_ms, url, country),
// page by page: timestamps are copied from the typed page data, and the
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
	keyIDs              map[uint64]uint32 // url id<<32 | country id -> key id

	// per row group scratch, one entry a row
	ts                    []int64
	uids, urlIDs, ctryIDs []uint32
}

// NewColumnReader returns a reader aggregating window w. sessionTimeout <= 0
// means DefaultSessionTimeout.
func NewColumnReader(w Window, sessionTimeout time.Duration) *ColumnReader {
	r := &ColumnReader{
		c:      builder{b: newBounds(w, sessionTimeout)},
		keyIDs: make(map[uint64]uint32),
	}
	r.users.init()
	r.urls.init()
	r.countr.init()
	return r
}

// Partial returns the aggregate of the files added so far.
func (r *ColumnReader) Partial() *Partial {
	r.c.users = r.users.strs
	return r.c.finish()
}

type leafColumns struct{ user, ts, url, country int }

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
		case !ok:
			return cols, fmt.Errorf("no column %q: %w", c.name, ErrUnsupportedFile)
		case leaf.MaxDefinitionLevel != 0 || leaf.MaxRepetitionLevel != 0:
			return cols, fmt.Errorf("column %q is optional or repeated: %w", c.name, ErrUnsupportedFile)
		case leaf.Node.Type().Kind() != c.kind:
			return cols, fmt.Errorf("column %q has type %s, want %s: %w", c.name, leaf.Node.Type().Kind(), c.kind, ErrUnsupportedFile)
		}
		*c.idx = leaf.ColumnIndex
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
	f, err := parquet.OpenFile(file, size, parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		return err
	}
	cols, err := lookupColumns(f.Schema())
	if err != nil {
		return err
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
			(max.Int64() < r.c.b.from || min.Int64() >= r.c.b.limit) {
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
	for _, l := range []int{len(r.ts), len(r.uids), len(r.urlIDs), len(r.ctryIDs)} {
		if int64(l) != n {
			return fmt.Errorf("column chunk has %d values for %d rows: %w", l, n, ErrUnsupportedFile)
		}
	}

	b := &r.c.b
	ts, uids, urlIDs, ctryIDs := r.ts, r.uids[:len(r.ts)], r.urlIDs[:len(r.ts)], r.ctryIDs[:len(r.ts)]
	prevPair, prevKey := ^uint64(0), noID
	for i, t := range ts {
		if !b.keep(t) {
			continue
		}
		pair := uint64(urlIDs[i])<<32 | uint64(ctryIDs[i])
		if pair != prevPair {
			k, ok := r.keyIDs[pair]
			if !ok {
				k = uint32(len(r.c.keys))
				r.keyIDs[pair] = k
				r.c.keys = append(r.c.keys, Key{URL: r.urls.strs[urlIDs[i]], Country: r.countr.strs[ctryIDs[i]]})
			}
			prevPair, prevKey = pair, k
		}
		r.c.recs = append(r.c.recs, rec{ts: t, user: uids[i], key: prevKey})
	}
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
					return fmt.Errorf("timestamp dictionary index %d out of %d: %w", i, len(dict), ErrUnsupportedFile)
				}
				dst = append(dst, dict[i])
			}
			return nil
		}
		if vals.Kind() != encoding.Int64 {
			return fmt.Errorf("timestamp page of kind %s: %w", vals.Kind(), ErrUnsupportedFile)
		}
		dst = append(dst, vals.Int64()...)
		return nil
	})
	return dst, err
}

// stringColumn interns the values of one string column across files into
// dense ids.
type stringColumn struct {
	ids  map[string]uint32
	strs []string

	// The dictionary of the column chunk being read, and its translation
	// table from dictionary index to id (noID until first used).
	dict    parquet.Dictionary
	data    []byte
	offsets []uint32
	tab     []uint32
}

func (s *stringColumn) init() { s.ids = make(map[string]uint32) }

func (s *stringColumn) intern(b []byte) uint32 {
	if id, ok := s.ids[string(b)]; ok { // no allocation for the lookup
		return id
	}
	str := string(b)
	id := uint32(len(s.strs))
	s.ids[str] = id
	s.strs = append(s.strs, str)
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
					return fmt.Errorf("dictionary index %d out of %d: %w", i, len(tab), ErrUnsupportedFile)
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
		return fmt.Errorf("dictionary with %d offsets for %d values: %w", len(offsets), d.Len(), ErrUnsupportedFile)
	}
	s.dict, s.data, s.offsets = d, data, offsets
	if cap(s.tab) < n {
		s.tab = make([]uint32, n)
	}
	s.tab = s.tab[:n]
	for i := range s.tab {
		s.tab[i] = noID
	}
	return nil
}
