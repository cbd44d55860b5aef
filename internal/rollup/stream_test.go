package rollup

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/dataco/clickstream/internal/userset"
)

// TestStreamUnion: the union of 1 to 20 overlapping sets, through each of
// the three ways streamUnion merges, is the sorted union.
func TestStreamUnion(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	for k := 1; k <= 20; k++ {
		enc := userset.NewEncoder()
		want := map[uint64]bool{}
		for i := range k {
			var set []uint64
			for range r.IntN(50) {
				h := r.Uint64N(200) // small: sets overlap
				if !slices.Contains(set, h) {
					set = append(set, h)
					want[h] = true
				}
			}
			slices.Sort(set)
			if err := enc.Add(userset.Entry{URL: string(rune('a' + i)), Hashes: set}); err != nil {
				t.Fatal(err)
			}
		}
		rd, err := userset.Open(enc.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		var its []userset.Iter
		for rec, ok := rd.Next(); ok; rec, ok = rd.Next() {
			its = append(its, rec.Set())
		}
		var got []uint64
		n, err := streamUnion(its, func(h uint64) error { got = append(got, h); return nil })
		if err != nil {
			t.Fatal(err)
		}
		if !slices.IsSorted(got) || len(slices.Compact(slices.Clone(got))) != len(got) || len(got) != len(want) || n != int64(len(got)) {
			t.Fatalf("%d sets: %d hashes (n %d), want %d distinct, sorted", k, len(got), n, len(want))
		}
	}
}
