package userset

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"slices"
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
		if got := enc.Bytes(); string(got) != string(data) {
			t.Fatalf("re-encoded %x, read %x", got, data)
		}
	}
}
