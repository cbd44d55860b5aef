package event

import (
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestInterner checks that an Interner keeps to its budget, tells apart
// the values its recent cache confuses, and keeps no long strings.
func TestInterner(t *testing.T) {
	small := NewInterner(16)
	for i := range 100 {
		small.intern([]byte(strconv.Itoa(i * 1000)))
		if small.bytes > small.budget {
			t.Fatalf("interner holds %d bytes, more than its budget %d", small.bytes, small.budget)
		}
	}
	// Values the recent cache cannot tell apart (same length and samples:
	// a 40-byte value is sampled at [0,8), [16,24) and [32,40)) still come
	// back as themselves.
	x := []byte(strings.Repeat("u", 40))
	y := slices.Clone(x)
	y[10] = 'v'
	if sampleHash(x) != sampleHash(y) {
		t.Fatal("the test values should collide in the recent cache")
	}
	for range 3 {
		if got := small.intern(x); got != string(x) {
			t.Fatalf("intern(%q) = %q", x, got)
		}
		if got := small.intern(y); got != string(y) {
			t.Fatalf("intern(%q) = %q", y, got)
		}
	}
	long := strings.Repeat("x", maxInterned+1)
	small.intern([]byte(long))
	if _, ok := small.m[long]; ok {
		t.Error("a string over maxInterned was kept")
	}
}
