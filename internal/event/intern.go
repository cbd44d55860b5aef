package event

import (
	"encoding/binary"
	"math/bits"
)

// DefaultInternerBytes is the memory an Interner's strings may take unless
// told otherwise.
const DefaultInternerBytes = 4 << 20

// maxInterned is the longest string an Interner keeps.
const maxInterned = 1 << 10

// Interner holds the strings that ParseAliased has seen, to hand the same
// string out again. Its strings take at most its budget of bytes; when full
// it starts afresh, so that a field with unbounded values costs a map reset
// now and then, never unbounded memory. An Interner is not safe for
// concurrent use: give each parsing goroutine its own.
type Interner struct {
	m      map[string]string
	bytes  int // held by the strings of m
	budget int
	// recent is a direct-mapped cache in front of m, indexed by a hash of
	// a few of a value's bytes: most lookups end here, at the cost of one
	// comparison instead of hashing the whole value.
	recent [internRecent]string
}

// internRecent is the number of recent-cache slots, a power of two.
const internRecent = 1024

// NewInterner returns an Interner whose strings take at most budget bytes;
// budget <= 0 means DefaultInternerBytes.
func NewInterner(budget int) *Interner {
	if budget <= 0 {
		budget = DefaultInternerBytes
	}
	return &Interner{m: make(map[string]string), budget: budget}
}

// intern returns b as a string: the one it returned before if it has one,
// else a copy.
func (in *Interner) intern(b []byte) string {
	slot := &in.recent[sampleHash(b)&(internRecent-1)]
	if *slot == string(b) {
		return *slot
	}
	s, ok := in.m[string(b)]
	if !ok {
		s = string(b)
		if len(b) > maxInterned {
			return s
		}
		if in.bytes+len(b) > in.budget {
			clear(in.m)
			in.bytes = 0
		}
		in.m[s] = s
		in.bytes += len(b)
	}
	*slot = s
	return s
}

// sampleHash hashes b's length and three 8-byte samples of it (start,
// middle, end): cheap, and enough to tell apart the values of one field.
func sampleHash(b []byte) uint64 {
	n := len(b)
	var x uint64
	if n < 8 {
		for _, c := range b {
			x = x<<8 | uint64(c)
		}
	} else {
		x = binary.LittleEndian.Uint64(b) ^
			bits.RotateLeft64(binary.LittleEndian.Uint64(b[(n-8)/2:]), 21) ^
			bits.RotateLeft64(binary.LittleEndian.Uint64(b[n-8:]), 42)
	}
	x ^= uint64(n) << 56
	x *= 0x9e3779b97f4a7c15
	return x ^ x>>29
}
