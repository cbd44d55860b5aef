// Package hashsort sorts values whose order starts with a uniform 64-bit
// hash, such as user-id hashes: a counting pass on the hash's top bits puts
// about one value in each bucket, already in order between buckets, and the
// comparison only orders the few values that share a bucket. That is linear
// time where a comparison sort costs n log n calls of the comparison.
package hashsort

import (
	"math/bits"
	"slices"
)

// minBucketed is the smallest input worth the counting pass.
const minBucketed = 64

// Sort returns items in the order of compare, which must order by hash
// first (a before b whenever hash(a) < hash(b)). It is stable only in the
// sense compare is: values compare equal in any order. The result is items
// itself, sorted, for short inputs and a new slice otherwise.
func Sort[T any](items []T, hash func(*T) uint64, compare func(a, b T) int) []T {
	n := len(items)
	if n < minBucketed {
		slices.SortFunc(items, compare)
		return items
	}
	width := bits.Len(uint(n - 1)) // 2^width >= n buckets
	shift := 64 - width
	starts := make([]int32, 1<<width+1)
	for i := range items {
		starts[hash(&items[i])>>shift+1]++
	}
	for b := 1; b < len(starts); b++ {
		starts[b] += starts[b-1]
	}
	out := make([]T, n)
	next := slices.Clone(starts[:len(starts)-1])
	for i := range items {
		b := hash(&items[i]) >> shift
		out[next[b]] = items[i]
		next[b]++
	}
	for b := range len(starts) - 1 {
		if lo, hi := starts[b], starts[b+1]; hi-lo > 1 {
			slices.SortFunc(out[lo:hi], compare)
		}
	}
	return out
}
