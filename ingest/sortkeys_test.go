package ingest

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/dataco/clickstream/internal/lake"
)

// prefixIDs returns n user ids of one shape: uniform random bytes, numeric
// strings, ids sharing a long prefix, and a handful of ids.
func prefixIDs(rng *rand.Rand, n int, shape string) []string {
	out := make([]string, n)
	for i := range out {
		switch shape {
		case "random":
			b := make([]byte, 1+rng.IntN(12))
			for j := range b {
				b[j] = byte(rng.Uint32())
			}
			out[i] = string(b)
		case "numeric":
			out[i] = fmt.Sprint(100000 + rng.IntN(900_000_000))
		case "hex":
			out[i] = fmt.Sprintf("u_%012x", rng.Uint64()>>16)
		case "long-prefix":
			out[i] = fmt.Sprintf("customer-%04d", rng.IntN(3000))
		case "few":
			out[i] = fmt.Sprintf("u%d", rng.IntN(5))
		}
	}
	return out
}

func keysOf(rng *rand.Rand, n int, shape string) []sortKey {
	keys := make([]sortKey, n)
	for i, id := range prefixIDs(rng, n, shape) {
		keys[i] = sortKey{user: lake.UserIDPrefix(id), ts: rng.Int64N(5), i: int32(i)}
	}
	return keys
}

func compareByPrefix(a, b sortKey) int {
	return cmp.Or(cmp.Compare(a.user, b.user), cmp.Compare(a.ts, b.ts), cmp.Compare(a.i, b.i))
}

// TestSortKeys compares sortKeys with slices.SortFunc on prefixes of
// several shapes, at sizes around the cut-over, and checks that ties sees
// every run of one prefix, and only those.
func TestSortKeys(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 5, minRadix - 1, minRadix, minRadix + 1, 1000, 4096, 20_000} {
		for _, shape := range []string{"random", "numeric", "hex", "long-prefix", "few"} {
			keys := keysOf(rng, n, shape)
			want := slices.Clone(keys)
			slices.SortFunc(want, compareByPrefix)
			runs := 0
			sortKeys(keys, func(run []sortKey) {
				for _, k := range run {
					if k.user != run[0].user {
						t.Fatalf("n=%d %s: ties given a run of several prefixes", n, shape)
					}
				}
				runs += len(run)
				slices.SortFunc(run, compareByPrefix)
			})
			if !slices.Equal(keys, want) {
				t.Errorf("n=%d %s: sortKeys differs from slices.SortFunc", n, shape)
			}
			tied := 0
			for i := range want {
				if (i > 0 && want[i-1].user == want[i].user) || (i+1 < len(want) && want[i+1].user == want[i].user) {
					tied++
				}
			}
			if runs != tied {
				t.Errorf("n=%d %s: ties saw %d keys, %d share their prefix", n, shape, runs, tied)
			}
		}
	}
}

// BenchmarkSortKeys sorts a data file's worth of keys (12k) by prefix,
// against slices.SortFunc.
func BenchmarkSortKeys(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, shape := range []string{"numeric", "hex", "long-prefix"} {
		src := keysOf(rng, 12_000, shape)
		keys := make([]sortKey, len(src))
		b.Run(shape, func(b *testing.B) {
			for b.Loop() {
				copy(keys, src)
				sortKeys(keys, func(run []sortKey) { slices.SortFunc(run, compareByPrefix) })
			}
		})
		b.Run(shape+"/SortFunc", func(b *testing.B) {
			for b.Loop() {
				copy(keys, src)
				slices.SortFunc(keys, compareByPrefix)
			}
		})
	}
}

// collidingIDs returns two user ids that share their first 8 bytes and
// their lake.BucketHash.
func collidingIDs(t *testing.T) (string, string) {
	t.Helper()
	seen := make(map[uint32]string)
	for i := range 4_000_000 {
		id := fmt.Sprintf("abcdefgh-%d", i)
		h := lake.BucketHash(id)
		if other, ok := seen[h]; ok {
			return other, id
		}
		seen[h] = id
	}
	t.Fatal("no hash collision found")
	return "", ""
}

// TestSortCollidingUsers: two users whose ids share the prefix and the hash
// the sort keys hold, with interleaved clicks, are written apart, each in
// time order.
func TestSortCollidingUsers(t *testing.T) {
	a, b := collidingIDs(t)
	s, store, st, bt := startFileSource(t, nil)
	hour := time.Date(2026, 11, 27, 1, 0, 0, 0, time.UTC)
	var msgs [][]byte
	for i := range 200 {
		id := a
		if i%2 == 1 {
			id = b
		}
		ts := hour.Add(time.Duration(200-i) * time.Second) // against arrival order
		msg := fmt.Sprintf(`{"user_id":%q,"timestamp":"%s","url":"/p","country":"FR"}`, id, ts.Format(time.RFC3339))
		msgs = append(msgs, []byte(msg))
		bt.add(s.parse(int64(i), []byte(msg), nil), len(msg))
	}
	if _, err := s.flush(context.Background(), &st, bt); err != nil {
		t.Fatal(err)
	}
	got := readLake(t, store) // checks each file's order
	want, _ := expected(msgs)
	assertSameEvents(t, got.events, want)
	if len(got.events) != 200 || got.events[0].UserID != min(a, b) || got.events[199].UserID != max(a, b) {
		t.Fatalf("users %q and %q not written apart", a, b)
	}
}
