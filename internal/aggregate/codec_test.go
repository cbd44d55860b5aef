package aggregate

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

func randomPartial(t testing.TB, seed uint64, g genConfig) *Partial {
	rng := rand.New(rand.NewPCG(seed, 99))
	return Compute(randomEvents(rng, g), testWindow(), 0)
}

func TestMarshalRoundTrip(t *testing.T) {
	big := genConfig{events: 20000, users: 2000, urls: 40, countries: 8, span: 2 * time.Hour, tick: time.Millisecond}
	tests := []struct {
		name string
		p    *Partial
	}{
		{"empty", NewPartial()},
		{"nil rows", &Partial{Events: 0, Read: 12}},
		{"small", randomPartial(t, 1, genConfig{events: 50, users: 4, urls: 3, countries: 2, span: time.Hour, tick: time.Second})},
		{"large", randomPartial(t, 2, big)},
		{"zstd", zstdSample()},
		{"extremes", &Partial{Events: math.MaxInt64, Read: math.MaxInt64, Rows: map[Key]*Row{
			{"", ""}:          {},
			{"", "x"}:         {Clicks: math.MaxInt64, Users: 3, UserHashes: []uint64{0, 1, math.MaxUint64}},
			{"/é\x00", "us"}:  {Clicks: 1, Users: 1, UserHashes: []uint64{math.MaxUint64}},
			{"/é\x00/", "us"}: {Clicks: 2, Users: 2, UserHashes: []uint64{5, 1 << 63}, TimeSpentMs: 7, Samples: 1},
			// Skewed: long unary quotients for the last gap.
			{"/skew", "us"}: {Clicks: 101, Users: 101, UserHashes: append(seq(1, 100), math.MaxUint64)},
		}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := tt.p.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			var q Partial
			if err := q.UnmarshalBinary(data); err != nil {
				t.Fatal(err)
			}
			checkSameAs(t, "decoded", &q, tt.p)
			again, err := q.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again, data) {
				t.Fatal("re-encoding gave different bytes")
			}
		})
	}
}

func TestMarshalDeterministic(t *testing.T) {
	g := genConfig{events: 5000, users: 500, urls: 50, countries: 8, span: 2 * time.Hour, tick: time.Millisecond}
	first, err := randomPartial(t, 3, g).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	for range 5 { // map iteration order differs from run to run
		again, err := randomPartial(t, 3, g).MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(first, again) {
			t.Fatal("same partial, different bytes")
		}
	}
}

func TestMarshalCompact(t *testing.T) {
	// A large hash set costs about 66-log2(n) bits a hash, not 64.
	rng := rand.New(rand.NewPCG(4, 4))
	hs := make([]uint64, 100000)
	for i := range hs {
		hs[i] = rng.Uint64()
	}
	slices.Sort(hs)
	hs = slices.Compact(hs)
	p := &Partial{Rows: map[Key]*Row{{"/a", "us"}: {Clicks: int64(len(hs)), Users: int64(len(hs)), UserHashes: hs}}}
	data, err := p.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if perHash := float64(len(data)) / float64(len(hs)); perHash > 6.5 {
		t.Errorf("%.2f bytes per user hash, want about 6.2", perHash)
	}

	// A realistic partial: many keys with small sets, which cost nearly 8
	// bytes a hash; logged for reference.
	g := genConfig{events: 200000, users: 20000, urls: 200, countries: 8, span: 2 * time.Hour, tick: time.Millisecond}
	if testing.Short() {
		g.events, g.users = 20000, 2000
	}
	p = randomPartial(t, 4, g)
	if data, err = p.MarshalBinary(); err != nil {
		t.Fatal(err)
	}
	var n int
	for _, r := range p.Rows {
		n += len(r.UserHashes)
	}
	t.Logf("%d keys, %d user hashes: %d bytes, %.2f bytes per hash, codec %d", len(p.Rows), n, len(data), float64(len(data))/float64(n), data[5])
}

func seq(from, to uint64) []uint64 {
	var s []uint64
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	return s
}

// zstdSample is a partial whose encoding zstd shrinks: many keys with long,
// repetitive URLs and few users.
func zstdSample() *Partial {
	p := NewPartial()
	for i := range 300 {
		for _, c := range []string{"unknown", "de", "us"} {
			url := fmt.Sprintf("/p/%d?utm_source=newsletter&utm_medium=email&utm_campaign=black-friday", i)
			p.Rows[Key{url, c}] = &Row{Clicks: 2, Users: 1, UserHashes: []uint64{uint64(i) * 0x9e3779b97f4a7c15}, TimeSpentMs: 1000, Samples: 1}
			p.Events += 2
		}
	}
	return p
}

func TestMarshalRejectsInvalid(t *testing.T) {
	for name, p := range map[string]*Partial{
		"unsorted hashes":   {Rows: map[Key]*Row{{"/a", "us"}: {UserHashes: []uint64{2, 1}}}},
		"duplicate hashes":  {Rows: map[Key]*Row{{"/a", "us"}: {UserHashes: []uint64{2, 2}}}},
		"negative clicks":   {Rows: map[Key]*Row{{"/a", "us"}: {Clicks: -1}}},
		"negative events":   {Events: -1},
		"nil row":           {Rows: map[Key]*Row{{"/a", "us"}: nil}},
		"negative time":     {Rows: map[Key]*Row{{"/a", "us"}: {TimeSpentMs: -5}}},
		"negative read":     {Read: -1},
		"negative users":    {Rows: map[Key]*Row{{"/a", "us"}: {Users: -1}}},
		"negative samples":  {Rows: map[Key]*Row{{"/a", "us"}: {Samples: -1}}},
		"unsorted 3 hashes": {Rows: map[Key]*Row{{"/a", "us"}: {UserHashes: []uint64{1, 3, 2}}}},
	} {
		if _, err := p.MarshalBinary(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestUnmarshalRejectsCorrupt(t *testing.T) {
	good, err := zstdSample().MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	small, err := randomPartial(t, 6, genConfig{events: 3, users: 2, urls: 2, countries: 1, span: time.Hour, tick: time.Second}).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if good[5] != codecZstd || small[5] != codecRaw {
		t.Fatalf("want one zstd and one raw sample, got codecs %d %d", good[5], small[5])
	}
	mutate := func(b []byte, f func([]byte) []byte) []byte { return f(bytes.Clone(b)) }
	cases := map[string][]byte{
		"empty":           nil,
		"magic":           mutate(good, func(b []byte) []byte { b[0] = 'X'; return b }),
		"version":         mutate(good, func(b []byte) []byte { b[4] = 3; return b }),
		"version 0":       mutate(good, func(b []byte) []byte { b[4] = 0; return b }),
		"codec":           mutate(good, func(b []byte) []byte { b[5] = 9; return b }),
		"truncated":       good[:len(good)-1],
		"header only":     good[:headerFixed],
		"flipped payload": mutate(good, func(b []byte) []byte { b[len(b)/2] ^= 0x10; return b }),
		"flipped raw":     mutate(small, func(b []byte) []byte { b[len(b)-1] ^= 1; return b }),
		"trailing":        append(bytes.Clone(small), 0),
		"crc":             mutate(small, func(b []byte) []byte { b[headerFixed+1] ^= 1; return b }),
		"huge body": func() []byte {
			b := append([]byte(codecMagic), codecVersion, codecZstd)
			b = binary.AppendUvarint(b, 1<<40)
			return append(b, 0, 0, 0, 0, 1, 2, 3)
		}(),
	}
	for name, data := range cases {
		var q Partial
		q.Events = 42
		err := q.UnmarshalBinary(data)
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: error %v, want ErrCorrupt", name, err)
		}
		if q.Events != 42 {
			t.Errorf("%s: partial changed on error", name)
		}
	}
}

// A raw body with a valid checksum but inconsistent content must still be
// rejected: the decoder checks structure, not only the CRC.
func TestUnmarshalRejectsBadStructure(t *testing.T) {
	frame := rawFrame
	key := func(b []byte, shared int, url, country string, nh uint64) []byte {
		b = binary.AppendUvarint(b, uint64(shared))
		b = appendString(b, url)
		b = appendString(b, country)
		b = append(b, 1, 1, 0, 0, 2) // clicks, users, ms, samples, bot clicks
		return binary.AppendUvarint(b, nh)
	}
	head := func(nkeys uint64) []byte { return binary.AppendUvarint([]byte{1, 1}, nkeys) }
	cases := map[string][]byte{
		"keys out of order": key(key(head(2), 0, "/b", "us", 0), 0, "/a", "us", 0),
		"duplicate key":     key(key(head(2), 0, "/a", "us", 0), 1, "", "us", 0),
		"shared too long":   key(key(head(2), 0, "/a", "us", 0), 5, "x", "us", 0),
		"too many keys":     key(head(1000), 0, "/a", "us", 0),
		"too many hashes":   append(key(head(1), 0, "/a", "us", 100), 0, 1, 0),
		"rice param":        append(key(head(1), 0, "/a", "us", 1), 64, 1, 0),
		"trailing bits":     append(key(head(1), 0, "/a", "us", 1), 0, 2, 0, 1),
		"counter overflow":  append(head(0)[:0], 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0, 0),
		"unterminated":      append(key(head(1), 0, "/a", "us", 1), 0, 1, 0xff),
	}
	for name, body := range cases {
		var q Partial
		if err := q.UnmarshalBinary(frame(body)); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: error %v, want ErrCorrupt", name, err)
		}
	}
	// The same framing accepts a well-formed body.
	var q Partial
	ok := append(key(head(1), 0, "/a", "us", 1), 0, 1, 0b01) // k=0, unary 1: hash 1
	if err := q.UnmarshalBinary(frame(ok)); err != nil {
		t.Fatalf("well-formed body: %v", err)
	}
	if hs := q.Rows[Key{"/a", "us"}].UserHashes; len(hs) != 1 || hs[0] != 1 {
		t.Fatalf("decoded hashes %v, want [1]", hs)
	}
	if b := q.Rows[Key{"/a", "us"}].BotClicks; b != 2 {
		t.Fatalf("decoded bot clicks %d, want 2", b)
	}
}

// TestUnmarshalVersion1: a partial of format version 1 (before bot clicks),
// from a worker not yet upgraded, decodes with no bot clicks.
func TestUnmarshalVersion1(t *testing.T) {
	body := binary.AppendUvarint([]byte{3, 5}, 1) // events, read, one key
	body = binary.AppendUvarint(body, 0)
	body = appendString(body, "/a")
	body = appendString(body, "us")
	body = append(body, 3, 1, 0, 0, 0) // clicks, users, ms, samples, no hashes
	frame := rawFrame(body)
	frame[len(codecMagic)] = codecV1
	var q Partial
	if err := q.UnmarshalBinary(frame); err != nil {
		t.Fatal(err)
	}
	if r := q.Rows[Key{"/a", "us"}]; r == nil || r.Clicks != 3 || r.BotClicks != 0 || q.Events != 3 {
		t.Fatalf("decoded %+v, rows %v", q, r)
	}
}

// FuzzUnmarshalBinary: decoding never panics, and whatever decodes
// re-encodes to bytes that decode to the same partial.
func FuzzUnmarshalBinary(f *testing.F) {
	for i, g := range []genConfig{
		{events: 5, users: 2, urls: 2, countries: 1, span: time.Hour, tick: time.Second},
		{events: 300, users: 30, urls: 6, countries: 3, span: 2 * time.Hour, tick: time.Millisecond},
	} {
		data, err := randomPartial(f, uint64(i), g).MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	empty, _ := NewPartial().MarshalBinary()
	f.Add(empty)
	f.Add([]byte(codecMagic))
	f.Fuzz(func(t *testing.T, data []byte) {
		var p Partial
		if err := p.UnmarshalBinary(data); err != nil {
			return
		}
		again, err := p.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded partial does not encode: %v", err)
		}
		var q Partial
		if err := q.UnmarshalBinary(again); err != nil {
			t.Fatalf("re-encoded partial does not decode: %v", err)
		}
		if d := diffPartials(&q, &p); d != "" {
			t.Fatalf("round trip differs:\n%s", d)
		}
	})
}

// rawFrame wraps a body in a valid raw-codec header, checksum included, so
// that fuzzing reaches the body decoder behind the CRC.
func rawFrame(body []byte) []byte {
	b := append([]byte(codecMagic), codecVersion, codecRaw)
	b = binary.AppendUvarint(b, uint64(len(body)))
	b = binary.LittleEndian.AppendUint32(b, crc32Checksum(body))
	return append(b, body...)
}

// FuzzUnmarshalBody fuzzes the body decoder (keys, counters, Rice-coded
// hash sets) behind a valid header and checksum.
func FuzzUnmarshalBody(f *testing.F) {
	for i, p := range []*Partial{
		randomPartial(f, 21, genConfig{events: 8, users: 3, urls: 2, countries: 2, span: time.Hour, tick: time.Second}),
		randomPartial(f, 22, genConfig{events: 200, users: 20, urls: 4, countries: 2, span: 2 * time.Hour, tick: time.Millisecond}),
		NewPartial(),
	} {
		body, err := p.marshalBody()
		if err != nil {
			f.Fatalf("seed %d: %v", i, err)
		}
		f.Add(body)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var p Partial
		if err := p.UnmarshalBinary(rawFrame(body)); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		again, err := p.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded partial does not encode: %v", err)
		}
		var q Partial
		if err := q.UnmarshalBinary(again); err != nil {
			t.Fatalf("re-encoded partial does not decode: %v", err)
		}
		if d := diffPartials(&q, &p); d != "" {
			t.Fatalf("round trip differs:\n%s", d)
		}
	})
}

// TestFuzzCorpusPresent keeps the checked-in seed corpus from silently
// disappearing: `go test` runs those inputs through FuzzUnmarshalBinary.
func TestFuzzCorpusPresent(t *testing.T) {
	for _, target := range []string{"FuzzUnmarshalBinary", "FuzzUnmarshalBody"} {
		files, _ := filepath.Glob(filepath.Join("testdata", "fuzz", target, "*"))
		if len(files) == 0 {
			t.Fatalf("no seed corpus under testdata/fuzz/%s", target)
		}
		if _, err := os.Stat(files[0]); err != nil {
			t.Fatal(err)
		}
	}
}

// Workers marshal and the coordinator unmarshals concurrently; the shared
// zstd encoder and decoder must allow it.
func TestCodecConcurrent(t *testing.T) {
	p := zstdSample()
	want, err := p.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 20 {
				data, err := p.MarshalBinary()
				if err != nil || !bytes.Equal(data, want) {
					t.Error("concurrent marshal differs")
					return
				}
				var q Partial
				if err := q.UnmarshalBinary(data); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}
