package userset

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"strings"
)

// Format constants.
const (
	// Magic starts every file; the byte after it is the format version.
	Magic = "CSUS"
	// Version is the format Encoder writes; Open reads it and version 1
	// (URLs and countries spelled out in each entry).
	Version = 2
	// MaxString caps the length of a URL or country in a file.
	MaxString = 1 << 16
	// MaxKeys caps the entries of one file.
	MaxKeys = 1 << 26
)

// ErrCorrupt reports bytes that are not a valid set file.
var ErrCorrupt = errors.New("userset: corrupt set file")

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// Entry is what a result keeps of one (url, country) of a window: its
// counters and the sorted, duplicate-free set of its users' hashes.
type Entry struct {
	URL, Country string
	Clicks       int64
	Users        int64
	TimeSpentMs  int64
	Samples      int64
	BotClicks    int64 // the key's events of bots, set apart from Clicks
	// Hashes is the sorted set of user hashes. Encoder.Add reads it; a
	// Reader leaves it nil and gives the set through Set.
	Hashes []uint64
}

// CompareKeys orders entries by (URL, Country), the order of a file.
func CompareKeys(aURL, aCountry, bURL, bCountry string) int {
	if c := strings.Compare(aURL, bURL); c != 0 {
		return c
	}
	return strings.Compare(aCountry, bCountry)
}

// Encoder writes one set file. Entries must be added in strictly
// increasing (URL, Country) order, each with a sorted set without
// duplicates.
type Encoder struct {
	entries     []byte
	strs        []string          // the file's strings, in order of first use
	index       map[string]uint64 // string → its index in strs
	strBytes    int               // of strs, encoded
	keys        int
	hashes      int64
	lastURL     string
	lastCountry string
	scratch     []byte
}

// NewEncoder returns an empty encoder.
func NewEncoder() *Encoder { return &Encoder{index: map[string]uint64{}} }

// Add appends e.
func (w *Encoder) Add(e Entry) error {
	switch {
	case len(e.URL) > MaxString || len(e.Country) > MaxString:
		return fmt.Errorf("userset: encode: url or country longer than %d bytes", MaxString)
	case w.keys > 0 && CompareKeys(w.lastURL, w.lastCountry, e.URL, e.Country) >= 0:
		return fmt.Errorf("userset: encode: key (%q, %q) not after (%q, %q)", e.URL, e.Country, w.lastURL, w.lastCountry)
	case w.keys >= MaxKeys:
		return fmt.Errorf("userset: encode: more than %d keys in one file", MaxKeys)
	case e.Clicks < 0 || e.Users < 0 || e.TimeSpentMs < 0 || e.Samples < 0 || e.BotClicks < 0:
		return fmt.Errorf("userset: encode: key (%q, %q): negative counter", e.URL, e.Country)
	}
	for i := 1; i < len(e.Hashes); i++ {
		if e.Hashes[i] <= e.Hashes[i-1] {
			return fmt.Errorf("userset: encode: key (%q, %q): hashes not sorted and distinct at %d", e.URL, e.Country, i)
		}
	}
	w.scratch = w.scratch[:0]
	if len(e.Hashes) > 0 {
		w.scratch = appendRice(w.scratch, e.Hashes)
	}
	b := w.entries
	b = w.appendRef(b, e.URL)
	b = w.appendRef(b, e.Country)
	for _, v := range [...]int64{e.Clicks, e.Users, e.TimeSpentMs, e.Samples, e.BotClicks} {
		b = binary.AppendUvarint(b, uint64(v))
	}
	b = binary.AppendUvarint(b, uint64(len(e.Hashes)))
	b = binary.AppendUvarint(b, uint64(len(w.scratch)))
	w.entries = append(b, w.scratch...)
	w.keys++
	w.hashes += int64(len(e.Hashes))
	w.lastURL, w.lastCountry = e.URL, e.Country
	return nil
}

// appendRef appends the index of s among the file's strings, adding it
// if it is new.
func (w *Encoder) appendRef(b []byte, s string) []byte {
	i, ok := w.index[s]
	if !ok {
		i = uint64(len(w.strs))
		w.index[s] = i
		w.strs = append(w.strs, s)
		w.strBytes += uvarintLen(uint64(len(s))) + len(s)
	}
	return binary.AppendUvarint(b, i)
}

// Keys is the number of entries added.
func (w *Encoder) Keys() int { return w.keys }

// Hashes is the number of hashes added.
func (w *Encoder) Hashes() int64 { return w.hashes }

// Size is about the size of the file so far.
func (w *Encoder) Size() int { return len(w.entries) + w.strBytes + 24 }

// Bytes returns the file: the magic, the version, the strings, the number
// of entries, the entries, and the CRC-32C of everything before it.
func (w *Encoder) Bytes() []byte {
	out := make([]byte, 0, w.Size())
	out = append(out, Magic...)
	out = append(out, Version)
	out = binary.AppendUvarint(out, uint64(len(w.strs)))
	for _, s := range w.strs {
		out = binary.AppendUvarint(out, uint64(len(s)))
		out = append(out, s...)
	}
	out = binary.AppendUvarint(out, uint64(w.keys))
	out = append(out, w.entries...)
	return binary.LittleEndian.AppendUint32(out, crc32.Checksum(out, crcTable))
}

// Reader reads the entries of one set file in order. Open checks the
// whole file, so nothing after it can fail.
type Reader struct {
	all     []byte // entries
	data    []byte // entries not yet read
	keys    int
	left    int
	version byte
	strs    []string // version 2: the file's strings
}

// Clone returns a reader of the same file from its first entry: readers
// of one file share its bytes.
func (r *Reader) Clone() *Reader {
	return &Reader{all: r.all, data: r.all, keys: r.keys, left: r.keys, version: r.version, strs: r.strs}
}

// Open checks data (its checksum, and every entry: lengths, key order,
// sorted sets) and returns a reader of its entries. data must not change
// while the reader is in use.
func Open(data []byte) (*Reader, error) {
	if len(data) < len(Magic)+1+1+4 || string(data[:len(Magic)]) != Magic {
		return nil, fmt.Errorf("%w: no %s header", ErrCorrupt, Magic)
	}
	version := data[len(Magic)]
	if version != 1 && version != Version {
		return nil, fmt.Errorf("%w: version %d, want 1 or %d", ErrCorrupt, version, Version)
	}
	body, sum := data[:len(data)-4], binary.LittleEndian.Uint32(data[len(data)-4:])
	if got := crc32.Checksum(body, crcTable); got != sum {
		return nil, fmt.Errorf("%w: checksum %08x, recorded %08x", ErrCorrupt, got, sum)
	}
	r := &Reader{data: body[len(Magic)+1:], version: version}
	if version == Version {
		n, err := r.uvarint()
		// Each string takes a byte at least.
		if err != nil || n > 2*MaxKeys || n > uint64(len(r.data)) {
			return nil, fmt.Errorf("%w: bad string count", ErrCorrupt)
		}
		r.strs = make([]string, n)
		seen := make(map[string]bool, n)
		for i := range r.strs {
			if r.strs[i], err = r.string(); err != nil {
				return nil, fmt.Errorf("%w: string %d: %w", ErrCorrupt, i, err)
			}
			if seen[r.strs[i]] {
				return nil, fmt.Errorf("%w: string %q twice", ErrCorrupt, r.strs[i])
			}
			seen[r.strs[i]] = true
		}
	}
	n, err := r.uvarint()
	if err != nil || n > MaxKeys {
		return nil, fmt.Errorf("%w: bad entry count", ErrCorrupt)
	}
	r.all, r.keys, r.left = r.data, int(n), int(n)
	// Check every entry now.
	c := *r
	var prev Entry
	used := 0 // strings used so far: each first use is the next string
	for i := 0; ; i++ {
		e, ok, err := c.next()
		if err != nil {
			return nil, fmt.Errorf("%w: entry %d: %w", ErrCorrupt, i, err)
		}
		if !ok {
			break
		}
		if i > 0 && CompareKeys(prev.URL, prev.Country, e.URL, e.Country) >= 0 {
			return nil, fmt.Errorf("%w: entry %d: key (%q, %q) not after (%q, %q)", ErrCorrupt, i, e.URL, e.Country, prev.URL, prev.Country)
		}
		for _, ref := range [2]int{e.url, e.country} {
			switch {
			case ref > used:
				return nil, fmt.Errorf("%w: entry %d: string %d used before string %d", ErrCorrupt, i, ref, used)
			case ref == used:
				used++
			}
		}
		it := e.Set()
		for range e.n {
			if _, ok := it.next(); !ok {
				return nil, fmt.Errorf("%w: entry %d: bad set", ErrCorrupt, i)
			}
		}
		if !it.clean(e.n) || (e.n == 0 && len(e.block) != 0) {
			return nil, fmt.Errorf("%w: entry %d: bytes after the set", ErrCorrupt, i)
		}
		prev = e.Entry
	}
	if len(c.data) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the last entry", ErrCorrupt, len(c.data))
	}
	if used != len(r.strs) {
		return nil, fmt.Errorf("%w: %d strings, %d of them used", ErrCorrupt, len(r.strs), used)
	}
	return r, nil
}

// Keys is the number of entries of the file.
func (r *Reader) Keys() int { return r.keys }

// Record is one entry as read: its key and counters (Hashes nil), the
// size of its set, and its encoded set.
type Record struct {
	Entry
	n     int
	block []byte
	// url and country: the indices of URL and Country among the file's
	// strings (version 2); -1 in version 1.
	url, country int
}

// Len is the number of hashes in the set.
func (e *Record) Len() int { return e.n }

// EncodedBytes is the size of the encoded set.
func (e *Record) EncodedBytes() int { return len(e.block) }

// Set returns an iterator over the set, in increasing order.
func (e *Record) Set() Iter { return newIter(e.block, e.n) }

// AppendHashes appends the set to dst.
func (e *Record) AppendHashes(dst []uint64) []uint64 {
	it := e.Set()
	for h, ok := it.Next(); ok; h, ok = it.Next() {
		dst = append(dst, h)
	}
	return dst
}

// Next returns the next entry, or false after the last.
func (r *Reader) Next() (Record, bool) {
	e, ok, _ := r.next() // Open checked every entry
	return e, ok
}

func (r *Reader) next() (Record, bool, error) {
	if r.left == 0 {
		return Record{}, false, nil
	}
	e := Record{url: -1, country: -1}
	var err error
	if r.version == 1 {
		if e.URL, err = r.string(); err != nil {
			return e, false, err
		}
		if e.Country, err = r.string(); err != nil {
			return e, false, err
		}
	} else {
		if e.URL, e.url, err = r.ref(); err != nil {
			return e, false, err
		}
		if e.Country, e.country, err = r.ref(); err != nil {
			return e, false, err
		}
	}
	var v [7]uint64
	for i := range v {
		if v[i], err = r.uvarint(); err != nil {
			return e, false, err
		}
	}
	for i := range 5 {
		if v[i] > math.MaxInt64 {
			return e, false, errors.New("counter out of range")
		}
	}
	e.Clicks, e.Users, e.TimeSpentMs, e.Samples, e.BotClicks = int64(v[0]), int64(v[1]), int64(v[2]), int64(v[3]), int64(v[4])
	n, size := v[5], v[6]
	// Every hash takes at least one bit.
	if size > uint64(len(r.data)) || n > 8*size {
		return e, false, fmt.Errorf("set of %d hashes in %d bytes, %d left", n, size, len(r.data))
	}
	e.n, e.block = int(n), r.data[:size:size]
	r.data = r.data[size:]
	r.left--
	return e, true, nil
}

func (r *Reader) uvarint() (uint64, error) {
	v, k := binary.Uvarint(r.data)
	if k <= 0 || k != uvarintLen(v) { // overlong forms too: one encoding per file
		return 0, errors.New("bad varint")
	}
	r.data = r.data[k:]
	return v, nil
}

func (r *Reader) string() (string, error) {
	n, err := r.uvarint()
	if err != nil {
		return "", err
	}
	if n > MaxString || n > uint64(len(r.data)) {
		return "", fmt.Errorf("string of %d bytes", n)
	}
	s := string(r.data[:n])
	r.data = r.data[n:]
	return s, nil
}

// ref reads the index of one of the file's strings.
func (r *Reader) ref() (string, int, error) {
	i, err := r.uvarint()
	if err != nil {
		return "", 0, err
	}
	if i >= uint64(len(r.strs)) {
		return "", 0, fmt.Errorf("string %d of %d", i, len(r.strs))
	}
	return r.strs[i], int(i), nil
}

func uvarintLen(v uint64) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutUvarint(b[:], v)
}
