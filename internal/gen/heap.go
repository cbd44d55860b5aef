package gen

// minHeap is a binary min-heap of E ordered by less. Elements that less
// leaves unordered come out in an order that depends on the history of
// pushes and pops: for a reproducible stream, less must be a total order,
// as the generator's are (ties broken by user index or sequence number).
// The zero value is unusable; build one with newMinHeap.
type minHeap[E any] struct {
	s    []E
	less func(a, b E) bool
}

// newMinHeap returns an empty heap ordered by less, with room for capacity
// elements.
func newMinHeap[E any](capacity int, less func(a, b E) bool) minHeap[E] {
	return minHeap[E]{s: make([]E, 0, capacity), less: less}
}

// len returns the number of elements in h.
func (h *minHeap[E]) len() int { return len(h.s) }

// peek returns the least element of h, which must not be empty.
func (h *minHeap[E]) peek() E { return h.s[0] }

// push adds e to h.
func (h *minHeap[E]) push(e E) {
	h.s = append(h.s, e)
	h.up(len(h.s) - 1)
}

// pop removes the least element of h, which must not be empty, and returns
// it. The slot it frees is zeroed, so that h keeps nothing alive.
func (h *minHeap[E]) pop() E {
	top := h.s[0]
	n := len(h.s) - 1
	h.s[0] = h.s[n]
	var zero E
	h.s[n] = zero
	h.s = h.s[:n]
	h.down(0)
	return top
}

// up moves the element at i toward the root until its parent is not
// greater.
func (h *minHeap[E]) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !h.less(h.s[i], h.s[p]) {
			return
		}
		h.s[i], h.s[p] = h.s[p], h.s[i]
		i = p
	}
}

// down moves the element at i toward the leaves until neither child is
// less.
func (h *minHeap[E]) down(i int) {
	for {
		l := 2*i + 1
		if l >= len(h.s) {
			return
		}
		m := l
		if r := l + 1; r < len(h.s) && h.less(h.s[r], h.s[l]) {
			m = r
		}
		if !h.less(h.s[m], h.s[i]) {
			return
		}
		h.s[i], h.s[m] = h.s[m], h.s[i]
		i = m
	}
}
