package results

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/lake/laketest"
	"github.com/dataco/clickstream/internal/userset"
)

func setEntries(run int) []userset.Entry {
	return []userset.Entry{
		{URL: "https://a/", Country: "DE", Clicks: 3, Users: 2, TimeSpentMs: 500, Samples: 1, Hashes: []uint64{7, uint64(run) << 40}},
		{URL: "https://b/", Country: "US", Clicks: 1, Users: 1, Hashes: []uint64{42}},
	}
}

// TestSetsFollowTheRun: the set files are committed with their run, read
// back through _SUCCESS, replaced by a re-run, and pruned with the run.
func TestSetsFollowTheRun(t *testing.T) {
	ctx := context.Background()
	out := laketest.NewFile(t)
	for run := 1; run <= 3; run++ {
		m := Meta{Job: "j", Run: RunName("j", run), Format: NDJSON}
		if err := WriteSets(ctx, out, &m, setEntries(run)); err != nil {
			t.Fatal(err)
		}
		if _, err := Commit(ctx, out, rows(2), m); err != nil {
			t.Fatal(err)
		}
	}
	if err := Prune(ctx, out); err != nil {
		t.Fatal(err)
	}
	m, err := ReadMeta(ctx, out)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{SetsKey(RunName("j", 3), 0)}; !slices.Equal(m.Sets, want) || m.SetHashes != 3 || m.SetBytes == 0 {
		t.Fatalf("meta sets %v (%d hashes, %d bytes), want %v, 3 hashes", m.Sets, m.SetHashes, m.SetBytes, want)
	}
	rs, err := ReadSets(ctx, out, m)
	if err != nil {
		t.Fatal(err)
	}
	rec, ok := rs[0].Next()
	if !ok || rec.URL != "https://a/" || !slices.Equal(rec.AppendHashes(nil), []uint64{7, 3 << 40}) {
		t.Fatalf("first entry %+v %v: not run 3's", rec.Entry, rec.AppendHashes(nil))
	}
	objs, err := out.List(ctx, RunsPrefix)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if strings.Contains(o.Key, RunName("j", 1)+"/") {
			t.Errorf("%s of the pruned run 1 is still there", o.Key)
		}
	}
	// Run 2 (the one run 3 replaced) is kept by Prune, sets included.
	if _, err := out.Get(ctx, SetsKey(RunName("j", 2), 0)); err != nil {
		t.Errorf("the replaced run's sets: %v", err)
	}
}

func TestReadSetsErrors(t *testing.T) {
	ctx := context.Background()
	out := laketest.NewFile(t)
	m, err := Commit(ctx, out, rows(1), Meta{Job: "j", Run: RunName("j", 1)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ReadSets(ctx, out, m); !errors.Is(err, ErrNoSets) {
		t.Errorf("a result without sets: %v, want ErrNoSets", err)
	}
	m.Sets = []string{SetsKey(RunName("j", 1), 0)}
	if _, err := ReadSets(ctx, out, m); !errors.Is(err, lake.ErrNotExist) {
		t.Errorf("a missing set file: %v, want ErrNotExist", err)
	}
	m.Sets = []string{"../elsewhere/sets-00000.bin"}
	if _, err := ReadSets(ctx, out, m); !errors.Is(err, ErrBadMeta) {
		t.Errorf("a set file outside the run: %v, want ErrBadMeta", err)
	}
	if err := out.Put(ctx, SetsKey(RunName("j", 1), 0), []byte("CSUS\x01garbage")); err != nil {
		t.Fatal(err)
	}
	m.Sets = []string{SetsKey(RunName("j", 1), 0)}
	if _, err := ReadSets(ctx, out, m); !errors.Is(err, userset.ErrCorrupt) {
		t.Errorf("a corrupt set file: %v, want userset.ErrCorrupt", err)
	}
}
