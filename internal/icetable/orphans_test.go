package icetable_test

import (
	"context"
	"io/fs"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dataco/clickstream/internal/icetable"
)

// TestRemoveOrphans: after compactions and snapshot expiry, orphan removal
// deletes the old manifest lists of expired snapshots and the compacted
// files a later compaction replaced, keeps every file a snapshot still
// references, young files and the lake's own data files, and the table
// reads the same rows.
func TestRemoveOrphans(t *testing.T) {
	ctx := context.Background()
	l := newTestLake(t)
	u, err := url.Parse(l.store.URI())
	if err != nil {
		t.Fatal(err)
	}
	root := u.Path
	rng := rand.New(rand.NewPCG(3, 4))
	seq := uint64(0)
	commitAndPublish := func() {
		seq++
		l.commit(t, "a", seq, 200, rng)
		if _, err := icetable.Publish(ctx, l.cat, l.store); err != nil {
			t.Fatal(err)
		}
	}
	compact := func() {
		if _, err := icetable.Compact(ctx, l.cat, l.store, icetable.CompactOptions{ClosedBefore: hour0.Add(2 * time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		commitAndPublish()
	}
	compact()
	firstCompacted := files(t, filepath.Join(root, "events", "data"))
	commitAndPublish() // late events for the closed hours
	compact()          // replaces some of the first compaction's files
	for range 11 {     // enough snapshots that the compactions' expire
		commitAndPublish()
	}
	if err := icetable.ExpireSnapshots(ctx, l.cat, icetable.EventsTable, time.Nanosecond); err != nil {
		t.Fatal(err)
	}
	lakeFiles := files(t, filepath.Join(root, "events"), "hour=")
	rows := eventRows(t, l.cat)

	// Everything so far is two days old; one orphan is young.
	old := time.Now().Add(-48 * time.Hour)
	if err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		return os.Chtimes(p, old, old)
	}); err != nil {
		t.Fatal(err)
	}
	young := filepath.Join(root, "events", "metadata", "young-orphan.avro")
	if err := os.WriteFile(young, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}

	dry, err := icetable.RemoveOrphans(ctx, l.cat, time.Hour, true)
	if err != nil {
		t.Fatal(err)
	}
	if dry.Files == 0 || dry.Deleted != 0 {
		t.Fatalf("dry run: %d orphans, %d deleted; want some, none deleted", dry.Files, dry.Deleted)
	}
	for _, f := range dry.Listed {
		if _, err := os.Stat(strings.TrimPrefix(f, "file://")); err != nil {
			t.Fatalf("dry run deleted %s: %v", f, err)
		}
	}
	got, err := icetable.RemoveOrphans(ctx, l.cat, time.Hour, false)
	if err != nil {
		t.Fatal(err)
	}
	if got.Deleted != dry.Files || got.Files != dry.Files {
		t.Fatalf("removal: %d orphans, %d deleted; the dry run listed %d", got.Files, got.Deleted, dry.Files)
	}

	// Manifest lists: exactly one per snapshot still in the table.
	tbl, err := l.cat.LoadTable(ctx, icetable.Ident(icetable.EventsTable))
	if err != nil {
		t.Fatal(err)
	}
	lists := files(t, filepath.Join(root, "events", "metadata"), "snap-")
	if n := len(tbl.Metadata().Snapshots()); len(lists) != n {
		t.Errorf("%d manifest lists left for %d snapshots", len(lists), n)
	}
	// Compacted files: exactly the ones the current snapshot holds (no
	// compaction came after the appends the retained snapshots made).
	var held []string
	for f := range tableFiles(t, l.cat) {
		if p := strings.TrimPrefix(f, "file://"); strings.HasPrefix(p, filepath.Join(root, "events", "data")) {
			held = append(held, p)
		}
	}
	slices.Sort(held)
	compacted := files(t, filepath.Join(root, "events", "data"))
	if !slices.Equal(compacted, held) {
		t.Errorf("compacted files left:\n%v\nheld by the table:\n%v", compacted, held)
	}
	replaced := 0
	for _, f := range firstCompacted {
		if !slices.Contains(held, f) {
			replaced++
		}
	}
	if replaced == 0 {
		t.Error("the second compaction replaced none of the first's files: the test proves nothing")
	}
	if _, err := os.Stat(young); err != nil {
		t.Errorf("a young orphan was deleted: %v", err)
	}
	if after := files(t, filepath.Join(root, "events"), "hour="); !slices.Equal(after, lakeFiles) {
		t.Errorf("the lake's own data files changed: %d before, %d after", len(lakeFiles), len(after))
	}
	if !equalMultisets(rows, eventRows(t, l.cat)) {
		t.Error("the table's rows changed")
	}
}

// files lists the files under dir whose path relative to dir starts with
// one of prefixes (all files without prefixes), sorted.
func files(t *testing.T, dir string, prefixes ...string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if len(prefixes) == 0 || slices.ContainsFunc(prefixes, func(pre string) bool { return strings.HasPrefix(rel, pre) }) {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}
