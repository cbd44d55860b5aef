package ingest

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestBatchDropBefore(t *testing.T) {
	b := &batch{}
	b.reset(10)
	for _, p := range []int64{10, 11, 13, 14} {
		b.add(record{pos: p, raw: []byte("xx")}, 2)
	}
	b.dropBefore(12)
	if b.start != 12 || b.next != 15 || b.len() != 2 || b.at(0).pos != 13 || b.rawBytes != 4 {
		t.Fatalf("after dropBefore(12): start %d next %d records %d rawBytes %d", b.start, b.next, b.len(), b.rawBytes)
	}
	b.dropBefore(20)
	if b.start != 20 || b.next != 20 || b.len() != 0 || b.rawBytes != 0 {
		t.Fatalf("after dropBefore(20): start %d next %d records %d", b.start, b.next, b.len())
	}
}

// TestIDArena checks that kept ids survive the arena's growth, stay intact
// until reset, and that blocks are reused after it.
func TestIDArena(t *testing.T) {
	var a idArena
	var kept, want []string
	for i := range 20_000 { // several blocks
		id := fmt.Sprintf("user-%d", i)
		kept = append(kept, a.keep(id))
		want = append(want, id)
	}
	long := strings.Repeat("x", idBlockSize)
	kept, want = append(kept, a.keep(long), a.keep("")), append(want, long, "")
	if !slices.Equal(kept, want) {
		t.Fatal("kept ids changed while the arena grew")
	}
	blocks := len(a.blocks)
	a.reset()
	for i := range 20_000 {
		a.keep(fmt.Sprintf("other-%d", i))
	}
	if len(a.blocks) > blocks+1 {
		t.Errorf("after reset the arena grew from %d to %d blocks instead of reusing them", blocks, len(a.blocks))
	}
}
