package prefixsort

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

type keyed struct {
	key uint64
	id  string
	ts  int64
	i   int
}

func prefix(s string) uint64 {
	var b [8]byte
	copy(b[:], s)
	return binary.BigEndian.Uint64(b[:])
}

func compare(a, b keyed) int {
	return cmp.Or(cmp.Compare(a.key, b.key), strings.Compare(a.id, b.id), cmp.Compare(a.ts, b.ts), cmp.Compare(a.i, b.i))
}

func keyOf(k *keyed) uint64 { return k.key }

// ids returns n string ids of one shape: uniform random bytes, numeric
// strings, ids sharing a long prefix, and a handful of ids.
func ids(rng *rand.Rand, n int, shape string) []string {
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
		case "long-prefix":
			out[i] = fmt.Sprintf("customer-%04d", rng.IntN(3000))
		case "few":
			out[i] = fmt.Sprintf("u%d", rng.IntN(5))
		}
	}
	return out
}

// TestSortMatchesSortFunc compares Sort with slices.SortFunc on keys of
// several shapes, at sizes around the cut-over.
func TestSortMatchesSortFunc(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 5, minRadix - 1, minRadix, minRadix + 1, 1000, 4096, 20_000} {
		for _, shape := range []string{"random", "numeric", "long-prefix", "few"} {
			items := make([]keyed, n)
			for i, id := range ids(rng, n, shape) {
				items[i] = keyed{key: prefix(id), id: id, ts: rng.Int64N(5), i: i}
			}
			want := slices.Clone(items)
			slices.SortFunc(want, compare)
			if got := Sort(items, keyOf, compare); !slices.Equal(got, want) {
				t.Errorf("n=%d %s: Sort differs from slices.SortFunc", n, shape)
			}
		}
	}
}

// BenchmarkSort sorts 25k values (a data file's worth) by string id and
// time, against slices.SortFunc.
func BenchmarkSort(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, shape := range []string{"numeric", "long-prefix"} {
		src := make([]keyed, 25_000)
		for i, id := range ids(rng, len(src), shape) {
			src[i] = keyed{key: prefix(id), id: id, ts: rng.Int64N(3_600_000), i: i}
		}
		items := make([]keyed, len(src))
		b.Run(shape, func(b *testing.B) {
			for b.Loop() {
				copy(items, src)
				Sort(items, keyOf, compare)
			}
		})
		b.Run(shape+"/SortFunc", func(b *testing.B) {
			for b.Loop() {
				copy(items, src)
				slices.SortFunc(items, compare)
			}
		})
	}
}
