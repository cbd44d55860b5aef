package hashsort

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"testing"
)

type keyed struct {
	hash uint64
	ts   int64
	i    int
}

// TestSortMatchesSortFunc compares Sort with slices.SortFunc on uniform
// hashes, on hashes sharing their top bits (one bucket holds everything),
// on a few distinct hashes with many ties, at sizes around the cut-over.
func TestSortMatchesSortFunc(t *testing.T) {
	compare := func(a, b keyed) int {
		return cmp.Or(cmp.Compare(a.hash, b.hash), cmp.Compare(a.ts, b.ts), cmp.Compare(a.i, b.i))
	}
	hash := func(k *keyed) uint64 { return k.hash }
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 5, minBucketed - 1, minBucketed, minBucketed + 1, 1000, 4096, 10_000} {
		for _, spread := range []string{"uniform", "clustered", "few"} {
			items := make([]keyed, n)
			for i := range items {
				h := rng.Uint64()
				switch spread {
				case "clustered":
					h = 0xabcd<<48 | h>>16
				case "few":
					h = uint64(rng.IntN(7)) << 61
				}
				items[i] = keyed{hash: h, ts: rng.Int64N(5), i: i}
			}
			want := slices.Clone(items)
			slices.SortFunc(want, compare)
			if got := Sort(items, hash, compare); !slices.Equal(got, want) {
				t.Errorf("n=%d %s: Sort differs from slices.SortFunc", n, spread)
			}
		}
	}
}
