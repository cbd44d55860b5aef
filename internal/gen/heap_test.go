package gen

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestMinHeap(t *testing.T) {
	tests := []struct {
		name string
		in   []int
	}{
		{name: "empty"},
		{name: "one", in: []int{7}},
		{name: "ascending", in: []int{1, 2, 3, 4, 5, 6, 7, 8}},
		{name: "descending", in: []int{8, 7, 6, 5, 4, 3, 2, 1}},
		{name: "repeats", in: []int{3, 1, 3, 2, 1, 3, 0, 3}},
		{name: "negative", in: []int{-1, 5, -9, 0, 12, -3, 4}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newMinHeap(0, func(a, b int) bool { return a < b })
			for _, v := range tc.in {
				h.push(v)
			}
			if h.len() != len(tc.in) {
				t.Fatalf("len = %d after %d pushes", h.len(), len(tc.in))
			}
			var got []int
			for h.len() > 0 {
				top := h.peek()
				if v := h.pop(); v != top {
					t.Fatalf("pop = %d, peek said %d", v, top)
				}
				got = append(got, top)
			}
			if want := slices.Sorted(slices.Values(tc.in)); !slices.Equal(got, want) {
				t.Errorf("popped %v, want %v", got, want)
			}
		})
	}
}

// TestMinHeapInterleaved checks random pushes and pops against a sorted
// slice. Values repeat; the sequence number makes the order total, as in
// the generator, so every pop has exactly one right answer.
func TestMinHeapInterleaved(t *testing.T) {
	type item struct{ v, seq int }
	order := func(a, b item) int { return cmp.Or(cmp.Compare(a.v, b.v), cmp.Compare(a.seq, b.seq)) }
	h := newMinHeap(4, func(a, b item) bool { return order(a, b) < 0 })
	var want []item // sorted
	rng := rand.New(rand.NewPCG(1, 2))
	for seq := range 20_000 {
		if len(want) == 0 || rng.IntN(5) < 3 {
			it := item{v: rng.IntN(100), seq: seq}
			h.push(it)
			i, _ := slices.BinarySearchFunc(want, it, order)
			want = slices.Insert(want, i, it)
		} else if got := h.pop(); got != want[0] {
			t.Fatalf("step %d: pop = %+v, want %+v", seq, got, want[0])
		} else {
			want = want[1:]
		}
		if h.len() != len(want) {
			t.Fatalf("step %d: len = %d, want %d", seq, h.len(), len(want))
		}
		if len(want) > 0 && h.peek() != want[0] {
			t.Fatalf("step %d: peek = %+v, want %+v", seq, h.peek(), want[0])
		}
	}
}

// TestMinHeapPopClears checks that pop leaves no reference behind in the
// heap's backing array: a popped late message must not stay reachable.
func TestMinHeapPopClears(t *testing.T) {
	h := newMinHeap(0, func(a, b *int) bool { return *a < *b })
	for i := range 5 {
		h.push(&i)
	}
	for n := 4; n >= 0; n-- {
		h.pop()
		if p := h.s[:n+1][n]; p != nil {
			t.Fatalf("slot %d still holds %d after pop", n, *p)
		}
	}
}
