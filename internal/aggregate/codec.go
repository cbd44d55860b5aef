package aggregate

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"math/bits"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Encoded partial, format version 2 (all integers unsigned varints unless
// said otherwise):
//
//	header:  magic "CSAP" | version byte (2) | codec byte (0 raw, 1 zstd)
//	         | body length | CRC-32C of the body (4 bytes, little endian)
//	payload: the body, or its zstd frame
//	body:    events | read | key count | keys...
//	key:     shared URL prefix with the previous key | URL suffix length
//	         | URL suffix | country length | country | clicks | users
//	         | time spent ms | samples | bot clicks | hash count | hash set
//	hash set (when the count is > 0): Rice parameter k (one byte, 0..63)
//	         | bit stream length in bytes | bit stream
//
// Keys are in (URL, country) order, so the same partial always encodes to
// the same bytes. A hash set is sorted and duplicate-free, so it is stored
// as gaps: the first hash, then each hash minus the previous minus one,
// Rice-coded with parameter k (the quotient gap>>k in unary as ones ended
// by a zero, then the k low bits, least significant bit first). For n
// uniformly spread 64-bit hashes that is about 66-log2(n) bits a hash
// instead of 64. The zstd codec is used when it makes the payload smaller;
// UserHash is part of the format. Version 1, still decoded, had no bot
// clicks.
const (
	codecMagic   = "CSAP"
	codecVersion = 2
	codecV1      = 1
	codecRaw     = 0
	codecZstd    = 1
	headerFixed  = len(codecMagic) + 2

	// maxBodyLen bounds the decoded body; maxRatio bounds it relative to
	// the payload so a corrupt header cannot make a decoder allocate much
	// more than its input.
	maxBodyLen = 1 << 30
	maxRatio   = 1024
	// minCompress is the body size below which zstd is not tried.
	minCompress = 128
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

func crc32Checksum(b []byte) uint32 { return crc32.Checksum(b, crcTable) }

var (
	zstdOnce sync.Once
	zstdEnc  *zstd.Encoder
	zstdDec  *zstd.Decoder
	zstdErr  error
)

func zstdCodec() (*zstd.Encoder, *zstd.Decoder, error) {
	zstdOnce.Do(func() {
		zstdEnc, zstdErr = zstd.NewWriter(nil,
			zstd.WithEncoderLevel(zstd.SpeedFastest), // hash sets barely compress: speed over ratio
			zstd.WithEncoderCRC(false),               // the header holds a CRC of the body
		)
		if zstdErr != nil {
			return
		}
		zstdDec, zstdErr = zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(0),
			zstd.WithDecoderMaxMemory(maxBodyLen),
			zstd.WithDecodeAllCapLimit(true),
		)
	})
	return zstdEnc, zstdDec, zstdErr
}

// MarshalBinary encodes p in the compact, versioned format described in
// the source (codec.go). Equal partials encode to equal bytes. It fails on a
// partial that breaks the invariants: negative counters, or a hash set that
// is not strictly increasing.
func (p *Partial) MarshalBinary() ([]byte, error) {
	body, err := p.marshalBody()
	if err != nil {
		return nil, err
	}
	codec, payload := byte(codecRaw), body
	if len(body) >= minCompress {
		enc, _, err := zstdCodec()
		if err != nil {
			return nil, fmt.Errorf("aggregate: marshal: %w", err)
		}
		if z := enc.EncodeAll(body, nil); len(z) < len(body) {
			codec, payload = codecZstd, z
		}
	}
	out := make([]byte, 0, headerFixed+binary.MaxVarintLen64+4+len(payload))
	out = append(out, codecMagic...)
	out = append(out, codecVersion, codec)
	out = binary.AppendUvarint(out, uint64(len(body)))
	out = binary.LittleEndian.AppendUint32(out, crc32Checksum(body))
	return append(out, payload...), nil
}

// marshalBody encodes the uncompressed body.
func (p *Partial) marshalBody() ([]byte, error) {
	if p.Events < 0 || p.Read < 0 {
		return nil, fmt.Errorf("aggregate: marshal: negative event counters")
	}
	keys := p.Keys()
	body := make([]byte, 0, 64+len(keys)*48)
	body = binary.AppendUvarint(body, uint64(p.Events))
	body = binary.AppendUvarint(body, uint64(p.Read))
	body = binary.AppendUvarint(body, uint64(len(keys)))
	prevURL := ""
	var bw bitWriter
	var scratch []byte
	for _, k := range keys {
		r := p.Rows[k]
		if r == nil {
			return nil, fmt.Errorf("aggregate: marshal: key %v has a nil row", k)
		}
		if r.Clicks < 0 || r.Users < 0 || r.TimeSpentMs < 0 || r.Samples < 0 || r.BotClicks < 0 {
			return nil, fmt.Errorf("aggregate: marshal: key %v: negative counters", k)
		}
		shared := commonPrefix(prevURL, k.URL)
		body = binary.AppendUvarint(body, uint64(shared))
		body = appendString(body, k.URL[shared:])
		body = appendString(body, k.Country)
		prevURL = k.URL
		body = binary.AppendUvarint(body, uint64(r.Clicks))
		body = binary.AppendUvarint(body, uint64(r.Users))
		body = binary.AppendUvarint(body, uint64(r.TimeSpentMs))
		body = binary.AppendUvarint(body, uint64(r.Samples))
		body = binary.AppendUvarint(body, uint64(r.BotClicks))
		body = binary.AppendUvarint(body, uint64(len(r.UserHashes)))
		if len(r.UserHashes) == 0 {
			continue
		}
		hs := r.UserHashes
		for i := 1; i < len(hs); i++ {
			if hs[i] <= hs[i-1] {
				return nil, fmt.Errorf("aggregate: marshal: key %v: user hashes not strictly increasing", k)
			}
		}
		kbits := riceParam(hs)
		bw.reset(scratch)
		prev := uint64(0)
		for i, h := range hs {
			gap := h - prev
			if i > 0 {
				gap--
			}
			bw.writeUnary(gap >> kbits)
			bw.writeBits(gap, kbits)
			prev = h
		}
		stream := bw.finish()
		scratch = stream
		body = append(body, byte(kbits))
		body = binary.AppendUvarint(body, uint64(len(stream)))
		body = append(body, stream...)
	}
	if len(body) > maxBodyLen {
		return nil, fmt.Errorf("aggregate: marshal: encoded partial of %d bytes exceeds %d", len(body), maxBodyLen)
	}
	return body, nil
}

// UnmarshalBinary decodes data written by MarshalBinary into p, replacing
// its contents. Corrupt or truncated input, and unknown versions, return an
// error wrapping ErrCorrupt; p is left unchanged then.
func (p *Partial) UnmarshalBinary(data []byte) error {
	q, err := decodePartial(data)
	if err != nil {
		return err
	}
	*p = *q
	return nil
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("aggregate: unmarshal: "+format+": %w", append(args, ErrCorrupt)...)
}

func decodePartial(data []byte) (*Partial, error) {
	if len(data) < headerFixed || string(data[:len(codecMagic)]) != codecMagic {
		return nil, corrupt("bad magic")
	}
	version := data[len(codecMagic)]
	if version != codecVersion && version != codecV1 {
		return nil, corrupt("unknown format version %d", version)
	}
	codec := data[len(codecMagic)+1]
	rest := data[headerFixed:]
	bodyLen, n := binary.Uvarint(rest)
	if n <= 0 || len(rest) < n+4 {
		return nil, corrupt("truncated header")
	}
	sum := binary.LittleEndian.Uint32(rest[n:])
	payload := rest[n+4:]

	var body []byte
	switch codec {
	case codecRaw:
		if bodyLen != uint64(len(payload)) {
			return nil, corrupt("body length %d, have %d bytes", bodyLen, len(payload))
		}
		body = payload
	case codecZstd:
		if bodyLen > maxBodyLen || bodyLen > uint64(len(payload))*maxRatio+1<<16 {
			return nil, corrupt("implausible body length %d for %d bytes", bodyLen, len(payload))
		}
		_, dec, err := zstdCodec()
		if err != nil {
			return nil, fmt.Errorf("aggregate: unmarshal: %w", err)
		}
		body, err = dec.DecodeAll(payload, make([]byte, 0, bodyLen))
		if err != nil {
			return nil, corrupt("zstd: %v", err)
		}
		if uint64(len(body)) != bodyLen {
			return nil, corrupt("body length %d, decoded %d bytes", bodyLen, len(body))
		}
	default:
		return nil, corrupt("unknown codec %d", codec)
	}
	if crc32Checksum(body) != sum {
		return nil, corrupt("checksum mismatch")
	}

	d := decoder{buf: body}
	p := &Partial{Events: d.int64(), Read: d.int64()}
	nkeys := d.uvarint()
	if d.err == nil && nkeys > uint64(len(d.buf))/8 { // a key takes at least 8 bytes
		d.fail("key count %d exceeds the data", nkeys)
	}
	if d.err != nil {
		return nil, d.err
	}
	p.Rows = make(map[Key]*Row, nkeys)
	rows := make([]Row, nkeys)
	var prev Key
	for i := range rows {
		var k Key
		shared := d.uvarint()
		if d.err == nil && shared > uint64(len(prev.URL)) {
			d.fail("shared prefix %d longer than the previous URL", shared)
		}
		if d.err != nil {
			return nil, d.err
		}
		k.URL = prev.URL[:shared] + d.string()
		k.Country = d.string()
		r := &rows[i]
		r.Clicks, r.Users, r.TimeSpentMs, r.Samples = d.int64(), d.int64(), d.int64(), d.int64()
		if version >= 2 {
			r.BotClicks = d.int64()
		}
		if nh := d.uvarint(); nh > 0 && d.err == nil {
			r.UserHashes = d.hashSet(nh)
		}
		if d.err != nil {
			return nil, d.err
		}
		if i > 0 && compareKeys(prev, k) >= 0 {
			return nil, corrupt("keys out of order at %d", i)
		}
		p.Rows[k] = r
		prev = k
	}
	if len(d.buf) != 0 {
		return nil, corrupt("%d trailing bytes", len(d.buf))
	}
	return p, nil
}

// decoder reads the body; the first error sticks and zero values follow.
type decoder struct {
	buf []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = corrupt(format, args...)
	}
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.buf)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

func (d *decoder) int64() int64 {
	v := d.uvarint()
	if v > math.MaxInt64 {
		d.fail("counter %d out of range", v)
		return 0
	}
	return int64(v)
}

func (d *decoder) bytes(n uint64) []byte {
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.buf)) {
		d.fail("truncated: need %d bytes, have %d", n, len(d.buf))
		return nil
	}
	b := d.buf[:n]
	d.buf = d.buf[n:]
	return b
}

func (d *decoder) string() string { return string(d.bytes(d.uvarint())) }

func (d *decoder) hashSet(n uint64) []uint64 {
	kb := d.bytes(1)
	size := d.uvarint()
	stream := d.bytes(size)
	if d.err != nil {
		return nil
	}
	k := uint(kb[0])
	if k > 63 {
		d.fail("rice parameter %d", k)
		return nil
	}
	if n > uint64(len(stream))*8/uint64(k+1) { // a hash takes at least k+1 bits
		d.fail("hash count %d exceeds its %d-byte stream", n, len(stream))
		return nil
	}
	hs := make([]uint64, n)
	br := bitReader{buf: stream}
	prev := uint64(0)
	for i := range hs {
		q, ok := br.readUnary()
		if !ok || q > math.MaxUint64>>k {
			d.fail("bad hash gap")
			return nil
		}
		low, ok := br.readBits(k)
		if !ok {
			d.fail("truncated hash set")
			return nil
		}
		gap := q<<k | low
		h := prev + gap
		if i > 0 {
			h++
		}
		if h < prev || (i > 0 && h == prev) {
			d.fail("hash set overflows")
			return nil
		}
		hs[i] = h
		prev = h
	}
	if !br.paddingOK() {
		d.fail("hash set has trailing bits")
		return nil
	}
	return hs
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func commonPrefix(a, b string) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

// riceParam picks the Rice parameter for a sorted set: about log2 of the
// mean gap, so that the unary quotients total at most 2n bits.
func riceParam(hs []uint64) uint {
	mean := hs[len(hs)-1] / uint64(len(hs))
	if mean == 0 {
		return 0
	}
	return uint(bits.Len64(mean) - 1)
}

// bitWriter writes bits least significant first.
type bitWriter struct {
	buf []byte
	acc uint64
	n   uint // bits pending in acc, < 8 between calls
}

func (w *bitWriter) reset(buf []byte) { *w = bitWriter{buf: buf[:0]} }

// writeBits writes the k (<= 64) low bits of v.
func (w *bitWriter) writeBits(v uint64, k uint) {
	for k > 32 {
		w.writeBits(v&math.MaxUint32, 32)
		v >>= 32
		k -= 32
	}
	if k == 0 {
		return
	}
	w.acc |= (v & (1<<k - 1)) << w.n
	w.n += k
	for w.n >= 8 {
		w.buf = append(w.buf, byte(w.acc))
		w.acc >>= 8
		w.n -= 8
	}
}

// writeUnary writes q ones and a zero.
func (w *bitWriter) writeUnary(q uint64) {
	for q >= 32 {
		w.writeBits(math.MaxUint32, 32)
		q -= 32
	}
	w.writeBits(1<<q-1, uint(q)+1)
}

func (w *bitWriter) finish() []byte {
	if w.n > 0 {
		w.buf = append(w.buf, byte(w.acc))
	}
	return w.buf
}

type bitReader struct {
	buf []byte
	pos uint64 // bit position
}

func (r *bitReader) left() uint64 { return uint64(len(r.buf))*8 - r.pos }

func (r *bitReader) readBits(k uint) (uint64, bool) {
	if uint64(k) > r.left() {
		return 0, false
	}
	var v uint64
	for got := uint(0); got < k; {
		off := uint(r.pos & 7)
		take := min(8-off, k-got)
		b := uint64(r.buf[r.pos>>3]>>off) & (1<<take - 1)
		v |= b << got
		got += take
		r.pos += uint64(take)
	}
	return v, true
}

// readUnary counts ones up to the next zero, which it consumes.
func (r *bitReader) readUnary() (uint64, bool) {
	var q uint64
	for r.left() > 0 {
		off := uint(r.pos & 7)
		ones := uint(bits.TrailingZeros8(^(r.buf[r.pos>>3] >> off)))
		if ones < 8-off { // the zero is in this byte
			q += uint64(ones)
			r.pos += uint64(ones) + 1
			return q, true
		}
		q += uint64(8 - off)
		r.pos += uint64(8 - off)
	}
	return 0, false
}

// paddingOK reports whether only zero bits of the last byte remain, as
// bitWriter leaves them.
func (r *bitReader) paddingOK() bool {
	if r.left() >= 8 {
		return false
	}
	if r.left() == 0 {
		return true
	}
	return r.buf[len(r.buf)-1]>>(r.pos&7) == 0
}
