package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dataco/clickstream/internal/icetable"
	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/lake/laketest"
)

// TestVacuumCommand ingests a file, plants an old orphan data file in the
// lake (what a crashed commit leaves), and runs `clickstream vacuum`: the
// dry run lists the orphan and keeps it, the real run deletes only it, and
// the lake's committed events are the same before and after. The same
// holds for an old file in the Iceberg events table's metadata folder that
// no snapshot references (what a crashed table commit leaves).
func TestVacuumCommand(t *testing.T) {
	dir := t.TempDir()
	uri := "file://" + dir
	input := filepath.Join(t.TempDir(), "events.ndjson")
	lines := `{"user_id":"u1","timestamp":"2026-11-27T10:00:00Z","url":"/a","country":"DE"}
{"user_id":"u2","timestamp":"2026-11-27T10:05:00Z","url":"/b"}
not json
`
	if err := os.WriteFile(input, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	pipeRun(t, "ingest", "--from-file", input, "--lake", uri)
	store, err := lake.Open(context.Background(), uri, laketest.S3Options())
	if err != nil {
		t.Fatal(err)
	}
	before, err := lake.ReadSnapshot(context.Background(), store)
	if err != nil {
		t.Fatal(err)
	}
	p := lake.Partition{Hour: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC), Bucket: 0}
	orphan := lake.DataFileKey(p, "file.x", 9, "crashed.1", ".parquet")
	if err := store.Put(context.Background(), orphan, []byte("partial")); err != nil {
		t.Fatal(err)
	}
	tableOrphan := filepath.Join(dir, "events", "metadata", "crashed-commit-m0.avro")
	if err := os.WriteFile(tableOrphan, []byte("partial"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-48 * time.Hour)
	for _, f := range []string{filepath.Join(dir, filepath.FromSlash(orphan)), tableOrphan} {
		if err := os.Chtimes(f, old, old); err != nil {
			t.Fatal(err)
		}
	}

	out := string(pipeRun(t, "vacuum", "--lake", uri, "--dry-run"))
	if !strings.Contains(out, orphan) || !strings.Contains(out, "1 orphans") || !strings.Contains(out, "0 deleted") {
		t.Fatalf("dry run printed:\n%s\nwant the orphan %s listed, none deleted", out, orphan)
	}
	if !strings.Contains(out, tableOrphan) || !strings.Contains(out, "tables: 1 files no snapshot references") {
		t.Fatalf("dry run printed:\n%s\nwant the table's orphan %s listed", out, tableOrphan)
	}
	if _, err := os.Stat(tableOrphan); err != nil {
		t.Fatalf("the dry run deleted the table's orphan: %v", err)
	}
	if _, err := store.Get(context.Background(), orphan); err != nil {
		t.Fatalf("the dry run deleted the orphan: %v", err)
	}
	referenced := 0
	for _, m := range before.Manifests {
		referenced += len(m.Files)
		if m.Rejected != "" {
			referenced++
		}
	}
	out = string(pipeRun(t, "vacuum", "--lake", uri))
	if !strings.Contains(out, "1 deleted") || !strings.Contains(out, fmt.Sprintf("%d files referenced", referenced)) {
		t.Fatalf("vacuum printed:\n%s\nwant 1 deleted and the %d committed files referenced", out, referenced)
	}
	if _, err := store.Get(context.Background(), orphan); err == nil {
		t.Fatal("the orphan survived the vacuum")
	}
	if !strings.Contains(out, "tables: 1 files no snapshot references") {
		t.Fatalf("vacuum printed:\n%s\nwant the table's orphan deleted", out)
	}
	if _, err := os.Stat(tableOrphan); !os.IsNotExist(err) {
		t.Fatalf("the table's orphan survived the vacuum: %v", err)
	}
	cat, err := icetable.OpenCatalog(context.Background(), "sqlite://"+filepath.Join(dir, "_catalog.db"), icetable.CatalogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer icetable.Close(cat)
	if evs, err := icetable.ReadEvents(context.Background(), cat); err != nil || len(evs) != 2 {
		t.Fatalf("the events table after the vacuum: %d events, %v; want 2", len(evs), err)
	}
	after, err := lake.ReadSnapshot(context.Background(), store)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range after.Manifests {
		for _, f := range m.Files {
			if _, err := store.Get(context.Background(), f.Key); err != nil {
				t.Errorf("committed file %s is gone: %v", f.Key, err)
			}
		}
	}
	if len(after.Manifests) != len(before.Manifests) {
		t.Errorf("%d manifests after the vacuum, %d before", len(after.Manifests), len(before.Manifests))
	}

	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"vacuum", "--lake", uri, "--min-age", "0s"}, &stdout, &stderr); code != 2 {
		t.Errorf("vacuum --min-age 0s: exit %d, want 2 (usage)\n%s", code, stderr.String())
	}
}
