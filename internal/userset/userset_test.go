package userset

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func randomSet(r *rand.Rand, n int) []uint64 {
	seen := make(map[uint64]bool, n)
	out := make([]uint64, 0, n)
	for len(out) < n {
		h := r.Uint64()
		if !seen[h] {
			seen[h] = true
			out = append(out, h)
		}
	}
	slices.Sort(out)
	return out
}

func sampleEntries(r *rand.Rand) []Entry {
	return []Entry{
		{URL: "", Country: "", Clicks: 0},
		{URL: "https://a/", Country: "DE", Clicks: 3, Users: 2, TimeSpentMs: 1500, Samples: 1, Hashes: []uint64{0, math.MaxUint64}},
		{URL: "https://a/", Country: "US", Clicks: 10, Users: 7, TimeSpentMs: 12, Samples: 9, BotClicks: 4, Hashes: randomSet(r, 7)},
		{URL: "https://b/", Country: "US", Clicks: 1 << 40, BotClicks: 1 << 33, Users: 1000, Hashes: randomSet(r, 1000)},
	}
}

func decodeAll(t testing.TB, data []byte) []Entry {
	t.Helper()
	rd, err := Open(data)
	if err != nil {
		t.Fatal(err)
	}
	var out []Entry
	for rec, ok := rd.Next(); ok; rec, ok = rd.Next() {
		e := rec.Entry
		e.Hashes = rec.AppendHashes(nil)
		if len(e.Hashes) != rec.Len() {
			t.Fatalf("set of %d hashes, recorded %d", len(e.Hashes), rec.Len())
		}
		out = append(out, e)
	}
	return out
}

func TestRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	in := sampleEntries(r)
	enc := NewEncoder()
	for _, e := range in {
		if err := enc.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	got := decodeAll(t, enc.Bytes())
	if len(got) != len(in) {
		t.Fatalf("%d entries, want %d", len(got), len(in))
	}
	for i := range in {
		g, w := got[i], in[i]
		if g.URL != w.URL || g.Country != w.Country || g.Clicks != w.Clicks || g.Users != w.Users ||
			g.TimeSpentMs != w.TimeSpentMs || g.Samples != w.Samples || !slices.Equal(g.Hashes, w.Hashes) {
			t.Errorf("entry %d: got %+v, want %+v", i, g, w)
		}
	}
}

func TestEncoderRejects(t *testing.T) {
	for name, es := range map[string][]Entry{
		"unsorted keys":   {{URL: "b"}, {URL: "a"}},
		"duplicate key":   {{URL: "a", Country: "US"}, {URL: "a", Country: "US"}},
		"unsorted set":    {{URL: "a", Hashes: []uint64{2, 1}}},
		"duplicate hash":  {{URL: "a", Hashes: []uint64{1, 1}}},
		"negative clicks": {{URL: "a", Clicks: -1}},
	} {
		t.Run(name, func(t *testing.T) {
			enc := NewEncoder()
			var err error
			for _, e := range es {
				if err = enc.Add(e); err != nil {
					break
				}
			}
			if err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestOpenRejectsCorruption(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	enc := NewEncoder()
	for _, e := range sampleEntries(r) {
		if err := enc.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	good := enc.Bytes()
	for i := range good {
		bad := slices.Clone(good)
		bad[i] ^= 0x40
		if _, err := Open(bad); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("byte %d flipped: %v, want ErrCorrupt", i, err)
		}
	}
	if _, err := Open(good[:len(good)-1]); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("truncated: %v", err)
	}
}

// encodeV1 writes entries in format version 1, each key spelled out, as
// files written before version 2 are.
func encodeV1(t testing.TB, entries []Entry) []byte {
	t.Helper()
	str := func(b []byte, s string) []byte { return append(binary.AppendUvarint(b, uint64(len(s))), s...) }
	out := binary.AppendUvarint(append([]byte(Magic), 1), uint64(len(entries)))
	for _, e := range entries {
		out = str(str(out, e.URL), e.Country)
		for _, v := range [...]int64{e.Clicks, e.Users, e.TimeSpentMs, e.Samples, e.BotClicks} {
			out = binary.AppendUvarint(out, uint64(v))
		}
		var set []byte
		if len(e.Hashes) > 0 {
			set = appendRice(nil, e.Hashes)
		}
		out = binary.AppendUvarint(binary.AppendUvarint(out, uint64(len(e.Hashes))), uint64(len(set)))
		out = append(out, set...)
	}
	return binary.LittleEndian.AppendUint32(out, crc32.Checksum(out, crcTable))
}

// TestReadsVersion1: files of format version 1 (written before the
// strings were shared) read as they were written.
func TestReadsVersion1(t *testing.T) {
	in := sampleEntries(rand.New(rand.NewPCG(9, 10)))
	got := decodeAll(t, encodeV1(t, in))
	if len(got) != len(in) {
		t.Fatalf("%d entries, want %d", len(got), len(in))
	}
	for i := range in {
		if g, w := got[i], in[i]; g.URL != w.URL || g.Country != w.Country || g.Clicks != w.Clicks || g.BotClicks != w.BotClicks || !slices.Equal(g.Hashes, w.Hashes) {
			t.Errorf("entry %d: got %+v, want %+v", i, g, w)
		}
	}
}

// TestStringsWrittenOnce: a file names each URL and country once, in the
// order of first use, whatever its number of entries; Open refuses a
// string twice, one never used and one used before those ahead of it.
func TestStringsWrittenOnce(t *testing.T) {
	enc := NewEncoder()
	url := "https://shop.example.com/products/some-long-product-name"
	for _, c := range []string{"BR", "DE", "FR", "US"} {
		if err := enc.Add(Entry{URL: url, Country: c, Clicks: 1}); err != nil {
			t.Fatal(err)
		}
	}
	data := enc.Bytes()
	if n := strings.Count(string(data), url); n != 1 {
		t.Fatalf("the URL is written %d times, want once", n)
	}
	// Files built by hand: strings, then entries (url, country refs, the
	// counters, n and size of an empty set).
	file := func(strs []string, refs ...[2]int) []byte {
		out := binary.AppendUvarint(append([]byte(Magic), Version), uint64(len(strs)))
		for _, s := range strs {
			out = append(binary.AppendUvarint(out, uint64(len(s))), s...)
		}
		out = binary.AppendUvarint(out, uint64(len(refs)))
		for _, r := range refs {
			out = binary.AppendUvarint(binary.AppendUvarint(out, uint64(r[0])), uint64(r[1]))
			out = append(out, 1, 0, 0, 0, 0, 0, 0)
		}
		return binary.LittleEndian.AppendUint32(out, crc32.Checksum(out, crcTable))
	}
	if _, err := Open(file([]string{"u", "c"}, [2]int{0, 1})); err != nil {
		t.Fatalf("a good hand-built file: %v", err)
	}
	for name, bad := range map[string][]byte{
		"a string twice":   file([]string{"u", "u"}, [2]int{0, 1}),
		"a string unused":  file([]string{"u", "c", "x"}, [2]int{0, 1}),
		"used out of turn": file([]string{"u", "c"}, [2]int{1, 0}),
		"no such string":   file([]string{"u", "c"}, [2]int{0, 2}),
	} {
		if _, err := Open(bad); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
	}
}

// TestBytesPerHash measures the encoding's size per hash for sets of
// several sizes (the numbers REPORT.md quotes).
func TestBytesPerHash(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, c := range []struct {
		n   int
		max float64 // bytes per hash the package documentation promises
		min float64
	}{{100, 8, 7}, {10_000, 7, 6}, {1_000_000, 6, 5.3}} {
		enc := NewEncoder()
		if err := enc.Add(Entry{URL: "u", Hashes: randomSet(r, c.n)}); err != nil {
			t.Fatal(err)
		}
		per := float64(len(enc.Bytes())) / float64(c.n)
		t.Logf("%d hashes: %.2f bytes/hash", c.n, per)
		if per > c.max || per < c.min {
			t.Errorf("%d hashes: %.2f bytes/hash, want in [%.1f, %.1f]", c.n, per, c.min, c.max)
		}
	}
}

func FuzzOpen(f *testing.F) {
	r := rand.New(rand.NewPCG(7, 8))
	enc := NewEncoder()
	for _, e := range sampleEntries(r)[:3] {
		if err := enc.Add(e); err != nil {
			f.Fatal(err)
		}
	}
	f.Add(enc.Bytes())
	f.Add(encodeV1(f, sampleEntries(r)[:3]))
	f.Add(NewEncoder().Bytes())
	f.Add([]byte("CSUS\x01"))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkOpen(t, data)
		// Most changes only break the checksum: try the bytes with theirs.
		if len(data) >= 4 {
			fixed := slices.Clone(data)
			binary.LittleEndian.PutUint32(fixed[len(fixed)-4:], crc32.Checksum(fixed[:len(fixed)-4], crcTable))
			checkOpen(t, fixed)
		}
	})
}

// checkOpen opens data, which must fail with ErrCorrupt or be a file
// that encodes back to the same bytes.
func checkOpen(t *testing.T, data []byte) {
	{
		rd, err := Open(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not match ErrCorrupt", err)
			}
			return
		}
		// A file Open accepts encodes back to the same bytes.
		enc := NewEncoder()
		n := 0
		for rec, ok := rd.Next(); ok; rec, ok = rd.Next() {
			e := rec.Entry
			e.Hashes = rec.AppendHashes(nil)
			if err := enc.Add(e); err != nil {
				t.Fatalf("entry %d of an accepted file does not encode: %v", n, err)
			}
			n++
		}
		if n != rd.Keys() {
			t.Fatalf("%d entries read, %d recorded", n, rd.Keys())
		}
		got := enc.Bytes()
		if data[len(Magic)] == 1 {
			got = encodeV1(t, decodeAll(t, got))
		}
		if string(got) != string(data) {
			t.Fatalf("re-encoded %x, read %x", got, data)
		}
	}
}
