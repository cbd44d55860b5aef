package ingest

// sortKeys sorts keys by user-id prefix (sortKey.user) with
// most-significant-byte radix passes, then calls ties with each run of two
// or more keys of one prefix, in order, to order the run as it needs.
// Radix passes split the keys into ever smaller runs, and runs of a few
// keys are insertion-sorted; a byte that every key of a run shares (a
// common prefix such as "u_") costs one counting pass and no move, so the
// prefixes need not be uniform. It is written for sortKey, not generic:
// reading the prefix through a function value cost a third of the sort.
func sortKeys(keys []sortKey, ties func(run []sortKey)) {
	if len(keys) < minRadix {
		insertionSortKeys(keys)
	} else {
		radixSortKeys(keys, make([]sortKey, len(keys)), 56)
	}
	for i := 0; i < len(keys); {
		u := keys[i].user
		j := i + 1
		for j < len(keys) && keys[j].user == u {
			j++
		}
		if j-i > 1 {
			ties(keys[i:j])
		}
		i = j
	}
}

// minRadix is the smallest run worth a radix pass.
const minRadix = 48

// insertionSortKeys sorts a short run by prefix.
func insertionSortKeys(keys []sortKey) {
	for i := 1; i < len(keys); i++ {
		u := keys[i].user
		if u >= keys[i-1].user {
			continue
		}
		k := keys[i]
		j := i
		for ; j > 0 && keys[j-1].user > u; j-- {
			keys[j] = keys[j-1]
		}
		keys[j] = k
	}
}

// radixSortKeys sorts keys, whose prefixes agree above bit shift+8, on the
// byte at shift and below, with scratch (as long as keys) to scatter into.
func radixSortKeys(keys, scratch []sortKey, shift uint) {
	var counts [256]int
	for {
		clear(counts[:])
		for i := range keys {
			counts[byte(keys[i].user>>shift)]++
		}
		if counts[byte(keys[0].user>>shift)] != len(keys) {
			break
		}
		// Every key has this byte: nothing to move.
		if shift == 0 {
			return // equal prefixes
		}
		shift -= 8
	}
	var next [256]int
	off := 0
	for b, n := range counts {
		next[b] = off
		off += n
	}
	for _, k := range keys {
		b := byte(k.user >> shift)
		scratch[next[b]] = k
		next[b]++
	}
	copy(keys, scratch)
	if shift == 0 {
		return // each run holds one prefix
	}
	lo := 0
	for _, n := range counts {
		switch {
		case n < 2:
		case n < minRadix:
			insertionSortKeys(keys[lo : lo+n])
		default:
			radixSortKeys(keys[lo:lo+n], scratch[lo:lo+n], shift-8)
		}
		lo += n
	}
}
