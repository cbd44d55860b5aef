package userset

import (
	"math"
	"math/bits"
)

// A set is stored as the Golomb-Rice code of its gaps: a parameter byte k,
// then for each hash the gap to the previous one (to 0 for the first), d,
// as d>>k in unary (that many 0 bits, then a 1) followed by the low k bits
// of d, least significant bit first, packed from the low bit of each byte.
// With k = ⌊log₂(max/n)⌋ the quotients sum to at most about 2n, so a set
// of n hashes of a uniform 64-bit hash takes about 64 - log₂ n + 2 bits a
// hash, within 1.5 bits of the entropy of such a set.

// riceParam is the parameter for a sorted set: the log of its mean gap.
func riceParam(hashes []uint64) uint8 {
	if len(hashes) == 0 {
		return 0
	}
	return riceParamOf(hashes[len(hashes)-1], len(hashes))
}

// riceParamOf is riceParam of a set of n hashes whose largest is last.
func riceParamOf(last uint64, n int) uint8 {
	mean := last / uint64(n)
	if mean == 0 {
		return 0
	}
	return uint8(bits.Len64(mean) - 1)
}

// appendRice appends the code of a sorted duplicate-free set to dst.
func appendRice(dst []byte, hashes []uint64) []byte {
	k := riceParam(hashes)
	dst = append(dst, k)
	var acc uint64                  // pending bits, low first
	var n uint                      // number of pending bits
	put := func(v uint64, w uint) { // w <= 57
		acc |= v << n
		n += w
		for n >= 8 {
			dst = append(dst, byte(acc))
			acc >>= 8
			n -= 8
		}
	}
	mask := uint64(1)<<k - 1
	prev := uint64(0)
	for _, h := range hashes {
		d := h - prev
		prev = h
		for q := d >> k; q > 0; {
			w := min(q, 48)
			put(0, uint(w))
			q -= w
		}
		put(1, 1)
		low := d & mask
		if k > 48 {
			put(low&(1<<32-1), 32)
			put(low>>32, uint(k)-32)
		} else {
			put(low, uint(k))
		}
	}
	if n > 0 {
		dst = append(dst, byte(acc))
	}
	return dst
}

// Iter iterates over an encoded set in increasing order.
type Iter struct {
	b    []byte // bytes not yet in acc
	acc  uint64
	n    uint // valid bits in acc
	k    uint8
	left int
	prev uint64
	some bool
}

func newIter(block []byte, n int) Iter {
	if n == 0 {
		return Iter{}
	}
	if len(block) == 0 || block[0] > 63 {
		return Iter{left: -1} // corrupt: yields nothing
	}
	return Iter{b: block[1:], k: block[0], left: n}
}

// Next returns the next hash, or false at the end.
func (it *Iter) Next() (uint64, bool) { return it.next() }

// Len is the number of hashes not yet returned.
func (it *Iter) Len() int { return max(it.left, 0) }

// fill tops acc up to at least 57 bits while bytes are left.
func (it *Iter) fill() {
	for it.n <= 56 && len(it.b) > 0 {
		it.acc |= uint64(it.b[0]) << it.n
		it.b = it.b[1:]
		it.n += 8
	}
}

// next decodes the next hash, checking that it is larger than the last
// and that nothing overflows (Open relies on it). A corrupt set ends the
// iteration early and sets left to -1.
func (it *Iter) next() (uint64, bool) {
	if it.left <= 0 {
		return 0, false
	}
	var q uint64
	for {
		it.fill()
		if it.acc != 0 {
			z := uint(bits.TrailingZeros64(it.acc))
			q += uint64(z)
			it.acc >>= z + 1
			it.n -= z + 1
			break
		}
		if it.n == 0 {
			return it.fail()
		}
		q += uint64(it.n)
		it.acc, it.n = 0, 0
		if q > math.MaxUint64>>it.k {
			return it.fail()
		}
	}
	if q > math.MaxUint64>>it.k {
		return it.fail()
	}
	var low uint64
	k := uint(it.k)
	for got := uint(0); got < k; {
		w := min(k-got, 32)
		it.fill()
		if it.n < w {
			return it.fail()
		}
		low |= (it.acc & (1<<w - 1)) << got
		it.acc >>= w
		it.n -= w
		got += w
	}
	d := q<<k | low
	if it.some && (d == 0 || d > math.MaxUint64-it.prev) {
		return it.fail()
	}
	it.prev += d
	it.some = true
	it.left--
	return it.prev, true
}

func (it *Iter) fail() (uint64, bool) {
	it.left = -1
	return 0, false
}

// clean reports whether the iterator ended without error and with
// nothing but zero padding (under 8 bits) left: the block held exactly
// its set.
func (it *Iter) clean(n int) bool {
	return it.left == 0 && len(it.b) == 0 && it.n < 8 && it.acc == 0 && (n == 0 || it.k == riceParamOf(it.prev, n))
}
