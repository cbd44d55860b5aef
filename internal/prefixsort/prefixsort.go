// Package prefixsort sorts values whose order starts with an
// order-preserving 64-bit key, such as the first 8 bytes of a string read
// big-endian: most-significant-digit radix passes on the key's bytes split
// the values into ever smaller runs, and the comparison only orders runs of
// a few values, or of values whose keys are equal. Bytes that every value of
// a run shares (a common prefix such as "u_") cost one counting pass and no
// move, so the key need not be uniform.
package prefixsort

import "slices"

// minRadix is the smallest run worth a radix pass.
const minRadix = 64

// Sort sorts items in place in the order of compare, which must order by
// key first (a before b whenever key(a) < key(b)), and returns items.
// Values that compare equal end in any order.
func Sort[T any](items []T, key func(*T) uint64, compare func(a, b T) int) []T {
	if len(items) < minRadix {
		slices.SortFunc(items, compare)
		return items
	}
	radix(items, make([]T, len(items)), 56, key, compare)
	return items
}

// radix sorts items, whose keys agree above bit shift+8, on the byte at
// shift and below, with scratch (as long as items) to scatter into.
func radix[T any](items, scratch []T, shift int, key func(*T) uint64, compare func(a, b T) int) {
	var counts [256]int
	for {
		clear(counts[:])
		for i := range items {
			counts[byte(key(&items[i])>>shift)]++
		}
		if counts[byte(key(&items[0])>>shift)] != len(items) {
			break
		}
		// Every key has this byte: nothing to move.
		if shift == 0 {
			slices.SortFunc(items, compare) // equal keys
			return
		}
		shift -= 8
	}
	var next [256]int
	off := 0
	for b, n := range counts {
		next[b] = off
		off += n
	}
	for i := range items {
		b := byte(key(&items[i]) >> shift)
		scratch[next[b]] = items[i]
		next[b]++
	}
	copy(items, scratch)
	lo := 0
	for _, n := range counts {
		run := items[lo : lo+n]
		switch {
		case n < 2:
		case n < minRadix:
			slices.SortFunc(run, compare)
		case shift == 0:
			slices.SortFunc(run, compare) // equal keys
		default:
			radix(run, scratch[lo:lo+n], shift-8, key, compare)
		}
		lo += n
	}
}
