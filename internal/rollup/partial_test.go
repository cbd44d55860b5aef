package rollup

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/dataco/clickstream/internal/cluster/clustertest"
	"github.com/dataco/clickstream/internal/lake/laketest"
	"github.com/dataco/clickstream/internal/schema"
)

// shardPartials computes every key range of the roll-up apart, as a
// cluster's tasks do.
func shardPartials(t *testing.T, cfg Config, from, to time.Time, windows []Window, shards int) [][]byte {
	t.Helper()
	out := make([][]byte, shards)
	for s := range shards {
		var b bytes.Buffer
		if err := ComputeShard(context.Background(), cfg, schema.GrainDay, from, to, windows, s, shards, &b); err != nil {
			t.Fatalf("key range %d: %v", s, err)
		}
		out[s] = b.Bytes()
	}
	return out
}

func readers(parts [][]byte, order ...int) []io.Reader {
	rs := make([]io.Reader, 0, len(parts))
	for _, i := range order {
		rs = append(rs, bytes.NewReader(parts[i]))
	}
	return rs
}

// TestMergePartialsEqualsCompute: the key ranges computed apart and their
// partials merged give exactly Compute's rows with as many shards (all
// four kinds of rows, exact unique users, or the same estimates beyond
// the exact limit), whatever the order of the partials and whether the
// shards and the merge spill.
func TestMergePartialsEqualsCompute(t *testing.T) {
	ctx := context.Background()
	from, to, _ := Period(schema.GrainDay, time.Date(2026, 11, 27, 5, 0, 0, 0, time.UTC))
	events := clustertest.Events(13, 5_000, 40_000, from, to)
	var windows []Window
	for h := from; h.Before(to); h = h.Add(2 * time.Hour) {
		windows = append(windows, commitWindow(t, events, h, h.Add(2*time.Hour)))
	}
	const shards = 3
	for _, c := range []struct {
		name string
		cfg  Config
	}{
		{"in memory", Config{}},
		{"tiny budget", Config{MemoryBudget: 2048, SpillDir: t.TempDir()}},
		{"exact limit", Config{ExactLimit: 500, MemoryBudget: 64 << 10, SpillDir: t.TempDir()}},
		{"keeping sets", Config{KeepSets: true, MemoryBudget: 2048, SpillDir: t.TempDir()}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := c.cfg
			cfg.Shards = shards
			want, wantSets, wst, err := ComputeSets(ctx, cfg, schema.GrainDay, from, to, windows)
			if err != nil {
				t.Fatal(err)
			}
			parts := shardPartials(t, cfg, from, to, windows, shards)
			rows, sets, st, err := MergePartials(ctx, cfg, schema.GrainDay, from, to, readers(parts, 2, 0, 1))
			if err != nil {
				t.Fatal(err)
			}
			// The key ranges' set files, in key range order, are those
			// of the roll-up in one process.
			if len(sets) != len(wantSets) || (cfg.KeepSets && len(sets) != shards) {
				t.Fatalf("%d set files, ComputeSets %d (keeping sets: %v)", len(sets), len(wantSets), cfg.KeepSets)
			}
			for i := range sets {
				if !bytes.Equal(sets[i].Data, wantSets[i].Data) || sets[i].Keys != wantSets[i].Keys || sets[i].Hashes != wantSets[i].Hashes {
					t.Fatalf("set file %d: %d bytes, %d keys, %d hashes; ComputeSets %d, %d, %d", i,
						len(sets[i].Data), sets[i].Keys, sets[i].Hashes, len(wantSets[i].Data), wantSets[i].Keys, wantSets[i].Hashes)
				}
			}
			if len(rows) != len(want) {
				t.Fatalf("%d rows, Compute %d", len(rows), len(want))
			}
			kinds := map[[2]bool]int{}
			for i := range rows {
				if !schema.Equal(rows[i], want[i]) {
					t.Fatalf("row %d: %+v, Compute %+v", i, rows[i], want[i])
				}
				kinds[[2]bool{rows[i].URL == schema.All, rows[i].Country == schema.All}]++
			}
			if len(kinds) != 4 {
				t.Fatalf("rows of %d kinds, want 4: %v", len(kinds), kinds)
			}
			if st.Keys != wst.Keys || st.Windows != wst.Windows || st.ApproximateRows != wst.ApproximateRows ||
				st.LargestSetUsers != wst.LargestSetUsers || st.HashesRead != wst.HashesRead {
				t.Errorf("stats %+v, Compute %+v", st, wst)
			}
			if cfg.ExactLimit > 0 && st.ApproximateRows == 0 {
				t.Errorf("no approximate row beyond the exact limit")
			}
			if cfg.MemoryBudget == 2048 && !cfg.KeepSets && wst.Spills == 0 {
				t.Errorf("no spill under a budget of 2048 bytes")
			}
			// A partial's bytes are the same every time (a task's
			// attempts store the same partial), spills or not.
			if again := shardPartials(t, cfg, from, to, windows, shards); !slices.EqualFunc(again, parts, bytes.Equal) {
				t.Errorf("a key range computed again gives other partial bytes")
			}
		})
	}
}

func TestBadPartials(t *testing.T) {
	ctx := context.Background()
	from, to, _ := Period(schema.GrainDay, time.Date(2026, 11, 27, 5, 0, 0, 0, time.UTC))
	events := clustertest.Events(14, 300, 3_000, from, to)
	windows := []Window{commitWindow(t, events, from, from.Add(12*time.Hour)), commitWindow(t, events, from.Add(12*time.Hour), to)}
	parts := shardPartials(t, Config{}, from, to, windows, 2)
	truncated := parts[1][:len(parts[1])-3]
	longer := append(append([]byte{}, parts[1]...), 0)
	kept := shardPartials(t, Config{KeepSets: true}, from, to, windows, 2)
	// A set file whose last byte changed: its checksum fails.
	badSets := append([]byte{}, kept[1]...)
	badSets[len(badSets)-1] ^= 0xff
	for _, c := range []struct {
		name  string
		parts []io.Reader
		from  time.Time
	}{
		{"none", nil, from},
		{"one missing", readers(parts, 0), from},
		{"twice", readers(parts, 0, 0), from},
		{"other period", readers(parts, 0, 1), to},
		{"truncated", []io.Reader{bytes.NewReader(parts[0]), bytes.NewReader(truncated)}, from},
		{"trailing bytes", []io.Reader{bytes.NewReader(parts[0]), bytes.NewReader(longer)}, from},
		{"not a partial", []io.Reader{bytes.NewReader(parts[0]), bytes.NewReader([]byte("{}"))}, from},
		{"sets in one key range only", []io.Reader{bytes.NewReader(parts[0]), bytes.NewReader(kept[1])}, from},
		{"sets of one key range as another's", []io.Reader{bytes.NewReader(kept[0]), bytes.NewReader(swapSetFile(t, kept[1], kept[0]))}, from},
		{"damaged set file", []io.Reader{bytes.NewReader(kept[0]), bytes.NewReader(badSets)}, from},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, pto, _ := Period(schema.GrainDay, c.from)
			if _, _, _, err := MergePartials(ctx, Config{}, schema.GrainDay, c.from, pto, c.parts); !errors.Is(err, ErrPartial) {
				t.Fatalf("err %v, want ErrPartial", err)
			}
		})
	}
	// A merger given too few or too many partials.
	m, err := NewPartialMerger(Config{}, schema.GrainDay, from, to, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Add(bytes.NewReader(parts[1])); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := m.Finish(ctx); !errors.Is(err, ErrPartial) {
		t.Errorf("finished with one partial of two: err %v, want ErrPartial", err)
	}
	if err := m.Add(bytes.NewReader(parts[0])); err != nil {
		t.Fatal(err)
	}
	if err := m.Add(bytes.NewReader(parts[0])); !errors.Is(err, ErrPartial) {
		t.Errorf("a third partial of two: err %v, want ErrPartial", err)
	}
	if rows, _, _, err := m.Finish(ctx); err != nil || len(rows) == 0 {
		t.Errorf("both partials: %d rows, %v", len(rows), err)
	}
	var b bytes.Buffer
	for _, bad := range [][2]int{{2, 2}, {-1, 2}, {0, 0}} {
		if err := ComputeShard(ctx, Config{}, schema.GrainDay, from, to, windows, bad[0], bad[1], &b); !errors.Is(err, ErrConfig) {
			t.Errorf("key range %d of %d: err %v, want ErrConfig", bad[0], bad[1], err)
		}
	}
}

// swapSetFile is partial with its set file replaced by other's (and the
// header's sizes with it).
func swapSetFile(t *testing.T, partial, other []byte) []byte {
	t.Helper()
	hd, rest := splitPartial(t, partial)
	ohd, orest := splitPartial(t, other)
	hashes := rest[:len(rest)-int(hd.SetFileBytes)]
	oset := orest[len(orest)-int(ohd.SetFileBytes):]
	hd.SetFileBytes, hd.SetFileKeys, hd.SetFileHashes = ohd.SetFileBytes, ohd.SetFileKeys, ohd.SetFileHashes
	head, err := json.Marshal(hd)
	if err != nil {
		t.Fatal(err)
	}
	out := append([]byte(partialMagic), binary.LittleEndian.AppendUint64(nil, uint64(len(head)))...)
	out = append(out, head...)
	out = append(out, hashes...)
	return append(out, oset...)
}

// splitPartial decodes a partial's header and returns what follows it.
func splitPartial(t *testing.T, p []byte) (partialHeader, []byte) {
	t.Helper()
	p = p[len(partialMagic):]
	n := binary.LittleEndian.Uint64(p)
	var hd partialHeader
	if err := json.Unmarshal(p[8:8+n], &hd); err != nil {
		t.Fatal(err)
	}
	return hd, p[8+n:]
}

// FuzzMergePartials feeds bytes to the merge as the partial of one of two
// key ranges beside a good one: it refuses them with ErrPartial (or
// merges them), never panics, and never allocates what a length claims
// before the bytes are there.
func FuzzMergePartials(f *testing.F) {
	from, to, _ := Period(schema.GrainDay, time.Date(2026, 11, 27, 5, 0, 0, 0, time.UTC))
	events := clustertest.Events(15, 50, 500, from, to)
	out := laketest.NewFile(f)
	windows := []Window{commitWindowTo(f, out, events, from, to)}
	var good [2]bytes.Buffer
	for s := range 2 {
		if err := ComputeShard(context.Background(), Config{}, schema.GrainDay, from, to, windows, s, 2, &good[s]); err != nil {
			f.Fatal(err)
		}
	}
	var kept bytes.Buffer
	if err := ComputeShard(context.Background(), Config{KeepSets: true}, schema.GrainDay, from, to, windows, 1, 2, &kept); err != nil {
		f.Fatal(err)
	}
	f.Add(good[1].Bytes())
	f.Add(kept.Bytes())
	f.Add(good[1].Bytes()[:len(good[1].Bytes())-9])
	f.Add([]byte(partialMagic + "\xff\xff\xff\xff\xff\xff\xff\x00{}"))
	f.Add([]byte(partialMagic + "\x02\x00\x00\x00\x00\x00\x00\x00{}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		parts := []io.Reader{bytes.NewReader(good[0].Bytes()), bytes.NewReader(data)}
		if _, _, _, err := MergePartials(context.Background(), Config{SpillDir: t.TempDir()}, schema.GrainDay, from, to, parts); err != nil && !errors.Is(err, ErrPartial) {
			t.Fatalf("error %v does not match ErrPartial", err)
		}
	})
}
