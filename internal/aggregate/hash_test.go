package aggregate

import (
	"fmt"
	"math"
	"testing"

	"github.com/dataco/clickstream/internal/lake"
)

// UserHash is part of the encoded format: these values must never change.
// They were cross-checked with an independent implementation of the
// documented definition (Python, arbitrary-precision integers masked to 64
// bits).
func TestUserHashStable(t *testing.T) {
	for id, want := range map[string]uint64{
		"":         0x6bcb9d63eb8eab8b,
		"user-1":   0x9d0496f76be23f85,
		"12345":    0x6ce80c4a16f20e8f,
		"ü-unicod": 0xbe304de3c965cb73,
	} {
		if got := UserHash(id); got != want {
			t.Errorf("UserHash(%q) = %#x, want %#x", id, got, want)
		}
	}
}

// TestUserHashIndependentOfBucket: within each lake bucket, the top bits of
// UserHash are uniform (a chi-square test over a buckets x 16 table).
func TestUserHashIndependentOfBucket(t *testing.T) {
	const users = 200000
	for _, buckets := range []int{2, 3, 16} {
		counts := make([][16]float64, buckets)
		for i := range users {
			id := fmt.Sprintf("user-%d", i)
			if i%2 == 0 {
				id = fmt.Sprint(i)
			}
			counts[lake.Bucket(id, buckets)][UserHash(id)>>60]++
		}
		var chi2 float64
		for b := range counts {
			var total float64
			for _, c := range counts[b] {
				total += c
			}
			for _, c := range counts[b] {
				exp := total / 16
				chi2 += (c - exp) * (c - exp) / exp
			}
		}
		dof := float64(buckets * 15)
		// Mean dof, standard deviation sqrt(2 dof): 6 sigma is a loud failure.
		if limit := dof + 6*math.Sqrt(2*dof); chi2 > limit {
			t.Errorf("%d buckets: chi-square %.1f > %.1f: UserHash correlates with the bucket", buckets, chi2, limit)
		}
		// The same test over the low bits, which an FNV variant would share.
		clear(counts)
		for i := range users {
			id := fmt.Sprintf("user-%d", i)
			counts[lake.Bucket(id, buckets)][UserHash(id)&15]++
		}
		chi2 = 0
		for b := range counts {
			var total float64
			for _, c := range counts[b] {
				total += c
			}
			for _, c := range counts[b] {
				exp := total / 16
				chi2 += (c - exp) * (c - exp) / exp
			}
		}
		if limit := dof + 6*math.Sqrt(2*dof); chi2 > limit {
			t.Errorf("%d buckets, low bits: chi-square %.1f > %.1f", buckets, chi2, limit)
		}
	}
}
