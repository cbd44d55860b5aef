package lake

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress/zstd"
	"github.com/parquet-go/parquet-go/format"

	"github.com/dataco/clickstream/internal/event"
)

// Format is the encoding of a data file of events.
type Format string

// Data file formats. Parquet is the default.
const (
	FormatParquet    Format = "parquet"
	FormatNDJSONGzip Format = "ndjson.gz"
)

// Parquet writer settings.
const (
	// ParquetMaxRowsPerRowGroup caps a row group: parquet-go's writer holds
	// a whole row group in memory, and its default is unlimited.
	ParquetMaxRowsPerRowGroup = 128 << 10
	// parquetPageBufferSize is the uncompressed size of a page.
	parquetPageBufferSize = 256 << 10
)

// ParseFormat parses "parquet" or "ndjson.gz" (case-insensitive, a leading
// dot allowed).
func ParseFormat(s string) (Format, error) {
	switch f := Format(strings.ToLower(strings.TrimPrefix(strings.TrimSpace(s), "."))); f {
	case FormatParquet, FormatNDJSONGzip:
		return f, nil
	}
	return "", fmt.Errorf("lake: unknown data file format %q (want %q or %q)", s, FormatParquet, FormatNDJSONGzip)
}

// String returns the format's name.
func (f Format) String() string { return string(f) }

// MarshalText makes Format usable in JSON or YAML config.
func (f Format) MarshalText() ([]byte, error) { return []byte(f), nil }

// UnmarshalText parses a format with ParseFormat, so that *Format works
// with flag.TextVar.
func (f *Format) UnmarshalText(b []byte) error {
	v, err := ParseFormat(string(b))
	if err != nil {
		return err
	}
	*f = v
	return nil
}

// Ext returns the file name extension of the format, dot included:
// ".parquet" or ".ndjson.gz".
func (f Format) Ext() string { return "." + string(f) }

// Encode encodes events in the format, in the order given.
func (f Format) Encode(events []event.Event) ([]byte, error) {
	return f.EncodeFunc(len(events), func(i int) *event.Event { return &events[i] })
}

// EncodeFunc encodes n events, in the order at(0), at(1), …, at(n-1): the
// events need not sit in one slice in that order.
func (f Format) EncodeFunc(n int, at func(i int) *event.Event) ([]byte, error) {
	switch f {
	case FormatParquet:
		return encodeParquet(n, at)
	case FormatNDJSONGzip:
		return encodeNDJSONGzip(n, at)
	}
	return nil, fmt.Errorf("lake: encode: unknown format %q", string(f))
}

// Decode decodes a data file of the format.
func (f Format) Decode(data []byte) ([]event.Event, error) {
	switch f {
	case FormatParquet:
		return DecodeParquet(data)
	case FormatNDJSONGzip:
		return DecodeNDJSONGzip(data)
	}
	return nil, fmt.Errorf("lake: decode: unknown format %q", string(f))
}

// FormatOfKey returns the format named by a key's extension.
func FormatOfKey(key string) (Format, error) {
	for _, f := range []Format{FormatParquet, FormatNDJSONGzip} {
		if strings.HasSuffix(key, f.Ext()) {
			return f, nil
		}
	}
	return "", fmt.Errorf("lake: %q is not a data file: want extension %q or %q", key, FormatParquet.Ext(), FormatNDJSONGzip.Ext())
}

// DecodeFile decodes the data file stored at key, choosing the format by
// the key's extension.
func DecodeFile(key string, data []byte) ([]event.Event, error) {
	f, err := FormatOfKey(key)
	if err != nil {
		return nil, err
	}
	events, err := f.Decode(data)
	if err != nil {
		return nil, fmt.Errorf("lake: data file %s: %w", key, err)
	}
	return events, nil
}

// EncodeParquet writes events, in the order given, as a parquet file of
// Rows (see Columns): zstd pages, dictionary-encoded strings, delta-encoded
// timestamps in microseconds, row groups of at most
// ParquetMaxRowsPerRowGroup rows. Timestamps must lie within
// [event.MinTimestamp, event.MaxTimestamp], as a parsed event's do.
func EncodeParquet(events []event.Event) ([]byte, error) {
	return FormatParquet.Encode(events)
}

// parquetWriteChunk is how many events encodeParquet hands parquet-go at a
// time.
const parquetWriteChunk = 1024

// parquetWriters holds parquet writers between files. A writer's setup,
// and growing its dictionaries' tables from empty, cost as much as encoding
// a few thousand events: reset, a writer keeps both.
var parquetWriters = sync.Pool{New: func() any {
	return parquet.NewGenericWriter[Row](io.Discard,
		parquet.Compression(&parquetZstd),
		// Timestamps as deltas: in files sorted by (user_id, ts) that is
		// 21% less than plain+zstd for the column (11% of the file), and
		// page-level reads of it get faster, not slower.
		parquet.DefaultEncodingFor(parquet.Int64, &parquet.DeltaBinaryPacked),
		parquet.MaxRowsPerRowGroup(ParquetMaxRowsPerRowGroup),
		parquet.PageBufferSize(parquetPageBufferSize),
		// Page bounds go to the column index only, not a second time into
		// every page header. Every column gets them: parquet-go writes
		// ["", ""] for a column it is told to skip, and a reader using
		// the column index would then skip every page of a lookup by
		// user_id (TestParquetPageIndex).
		parquet.DataPageStatistics(false),
	)
}}

// parquetZstd is the codec of the data files: zstd's fastest level, which
// on the lake's dictionary-encoded pages compresses within 2-3% of the
// default level for less CPU.
var parquetZstd = zstd.Codec{Level: zstd.SpeedFastest}

func encodeParquet(n int, at func(i int) *event.Event) ([]byte, error) {
	w := parquetWriters.Get().(*parquet.GenericWriter[Row])
	data, err := encodeParquetWith(w, n, at)
	if err != nil {
		return nil, err // w is not reused
	}
	parquetWriters.Put(w)
	return data, nil
}

// encodeParquetWith encodes with w, leaving it reset for the next file if
// it succeeds.
func encodeParquetWith(w *parquet.GenericWriter[Row], n int, at func(i int) *event.Event) ([]byte, error) {
	var buf bytes.Buffer
	// A sorted file compresses to ~5-14 bytes per event; over-reserving a
	// little saves the buffer's regrowth copies.
	buf.Grow(1024 + 16*n)
	w.Reset(&buf)
	chunk := make([]Row, min(n, parquetWriteChunk))
	for i := 0; i < n; i += len(chunk) {
		c := chunk[:min(len(chunk), n-i)]
		for j := range c {
			e := at(i + j)
			if e.Timestamp < event.MinTimestamp || e.Timestamp > event.MaxTimestamp {
				return nil, fmt.Errorf("lake: encode parquet: event %d: timestamp %d ms outside [%d, %d]",
					i+j, e.Timestamp, event.MinTimestamp, event.MaxTimestamp)
			}
			c[j] = RowOf(e)
		}
		if _, err := w.Write(c); err != nil {
			return nil, fmt.Errorf("lake: encode parquet: %w", err)
		}
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("lake: encode parquet: %w", err)
	}
	clear(chunk) // w keeps no reference to the events
	detachColumnPaths(w)
	w.Reset(io.Discard)
	return buf.Bytes(), nil
}

// detachColumnPaths unshares the column paths of the footer w has written
// from w's own: parquet-go v0.32.0's Writer.Reset clears the footer's
// paths in place, which blanks the paths of every file the writer writes
// next (TestParquetWriterReuse catches it).
func detachColumnPaths(w *parquet.GenericWriter[Row]) {
	f := w.File()
	if f == nil {
		return
	}
	md := f.Metadata()
	for i := range md.RowGroups {
		for j := range md.RowGroups[i].Columns {
			md.RowGroups[i].Columns[j].MetaData.PathInSchema = nil
		}
	}
}

// DecodeParquet reads at most parquetReadBatch rows at once into a slice
// allocated for at most parquetMaxPrealloc rows up front.
const (
	parquetReadBatch   = 4096
	parquetMaxPrealloc = 4 << 20
)

// DecodeParquet reads every event of a parquet file of Rows. A corrupt or
// foreign file is an error, never a panic: a file without the columns of
// Columns, such as one of an older layout, names the first one missing.
// Only zstd-compressed or uncompressed files are accepted (EncodeParquet
// writes zstd).
func DecodeParquet(data []byte) (events []event.Event, err error) {
	// parquet-go panics on some malformed inputs past OpenFile (bad pages,
	// dictionary indexes out of range); a data file is untrusted input.
	defer func() {
		if r := recover(); r != nil {
			events, err = nil, fmt.Errorf("lake: decode parquet: corrupt file: %v", r)
		}
	}()
	// parquet-go allocates the footer length the file claims before
	// checking it against the file size: 8 bytes of garbage can cost GBs.
	if len(data) < 12 || string(data[:4]) != "PAR1" || string(data[len(data)-4:]) != "PAR1" {
		return nil, errors.New("lake: decode parquet: not a parquet file (no PAR1 magic at both ends)")
	}
	if footer := binary.LittleEndian.Uint32(data[len(data)-8:]); int64(footer) > int64(len(data)-12) {
		return nil, fmt.Errorf("lake: decode parquet: footer length %d exceeds the %d-byte file", footer, len(data))
	}
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, fmt.Errorf("lake: decode parquet: %w", err)
	}
	// Only the codecs the lake writes: parquet-go's LZ4 decoder doubles its
	// buffer forever on a corrupt block (one flipped codec byte made a
	// zstd file hang and eat memory), and its snappy one allocates
	// whatever length the block claims.
	for _, rg := range f.Metadata().RowGroups {
		for _, c := range rg.Columns {
			if codec := c.MetaData.Codec; codec != format.Zstd && codec != format.Uncompressed {
				return nil, fmt.Errorf("lake: decode parquet: column %s: compression %v not accepted (only zstd or none)",
					strings.Join(c.MetaData.PathInSchema, "."), codec)
			}
		}
	}
	n := f.NumRows()
	if n < 0 {
		return nil, fmt.Errorf("lake: decode parquet: negative row count %d", n)
	}
	if err := checkSchema(f.Schema()); err != nil {
		return nil, fmt.Errorf("lake: decode parquet: %w", err)
	}
	r := parquet.NewGenericReader[Row](f)
	defer r.Close()
	// The footer's row count is not trusted for the allocation: a corrupt
	// one could ask for terabytes. Start there, bounded, and grow.
	events = make([]event.Event, 0, min(n, parquetMaxPrealloc))
	rows := make([]Row, min(n, parquetReadBatch))
	for int64(len(events)) < n {
		k, err := r.Read(rows)
		for i := range rows[:k] {
			events = append(events, rows[i].Event())
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("lake: decode parquet: %w", err)
		}
		if k == 0 {
			return nil, fmt.Errorf("lake: decode parquet: reader stalled at row %d of %d", len(events), n)
		}
	}
	if int64(len(events)) != n {
		return nil, fmt.Errorf("lake: decode parquet: read %d rows, footer says %d", len(events), n)
	}
	return events, nil
}

// EncodeNDJSONGzip writes events, in the order given, as gzipped
// newline-delimited JSON with the Event's json field names.
func EncodeNDJSONGzip(events []event.Event) ([]byte, error) {
	return FormatNDJSONGzip.Encode(events)
}

func encodeNDJSONGzip(n int, at func(i int) *event.Event) ([]byte, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	enc := json.NewEncoder(zw) // Encode ends each value with '\n'
	enc.SetEscapeHTML(false)   // keep '&' in URLs readable
	for i := range n {
		if err := enc.Encode(at(i)); err != nil {
			return nil, fmt.Errorf("lake: encode ndjson: %w", err)
		}
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("lake: encode ndjson: %w", err)
	}
	return buf.Bytes(), nil
}

// ndjsonMaxLine bounds one line of an NDJSON file: far above any event a
// parser accepts (event.MaxSize), low enough to stop a runaway allocation.
const ndjsonMaxLine = 16 * event.MaxSize

// MaxDecompressed bounds the bytes a gzipped NDJSON file may decompress
// to: eight times what ingest writes in one file at most by default (a
// batch is 32 MiB of raw events), low enough that a crafted object cannot
// exhaust a reader's memory (decoded events take a few times their JSON).
const MaxDecompressed = 256 << 20

// errDecompressedTooLarge is the error of a file over MaxDecompressed.
var errDecompressedTooLarge = fmt.Errorf("decompresses to more than %d bytes", MaxDecompressed)

// boundedReader fails with errDecompressedTooLarge after limit bytes.
type boundedReader struct {
	r     io.Reader
	limit int64
}

func (b *boundedReader) Read(p []byte) (int, error) {
	if b.limit <= 0 {
		// At the limit: fine if the input ends here.
		var one [1]byte
		for range 100 { // as io.Reader allows, a read may return nothing and no error
			n, err := b.r.Read(one[:])
			if n > 0 {
				return 0, errDecompressedTooLarge
			}
			if err != nil {
				return 0, err
			}
		}
		return 0, io.ErrNoProgress
	}
	if int64(len(p)) > b.limit {
		p = p[:b.limit]
	}
	n, err := b.r.Read(p)
	b.limit -= int64(n)
	return n, err
}

// DecodeNDJSONGzip reads a gzipped NDJSON file (concatenated gzip members
// allowed), decompressing at most MaxDecompressed bytes. Blank lines are
// skipped; unknown fields are ignored.
func DecodeNDJSONGzip(data []byte) ([]event.Event, error) {
	return decodeNDJSONGzip(data, MaxDecompressed)
}

func decodeNDJSONGzip(data []byte, limit int64) ([]event.Event, error) {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("lake: decode ndjson: %w", err)
	}
	defer zr.Close()
	sc := bufio.NewScanner(&boundedReader{r: zr, limit: limit})
	sc.Buffer(make([]byte, 0, 64<<10), ndjsonMaxLine)
	var events []event.Event
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var e event.Event
		if err := json.Unmarshal(b, &e); err != nil {
			return nil, fmt.Errorf("lake: decode ndjson: line %d: %w", line, err)
		}
		events = append(events, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("lake: decode ndjson: after line %d: %w", line, err)
	}
	return events, nil
}
