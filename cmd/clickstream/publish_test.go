package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dataco/clickstream/internal/icetable"
	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/results"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dataco/clickstream/internal/icetable/icetabletest"
)

// TestPublishCatchesUp: a lake ingested without publishing is published
// by `clickstream publish`, once: a second run adds nothing.
func TestPublishCatchesUp(t *testing.T) {
	oldReg := prometheus.DefaultRegisterer // ingest registers its metrics there
	prometheus.DefaultRegisterer = prometheus.NewRegistry()
	t.Cleanup(func() { prometheus.DefaultRegisterer = oldReg })
	dir := t.TempDir()
	lakeURI := "file://" + filepath.Join(dir, "lake")
	in := filepath.Join(dir, "in.ndjson")
	writeEvents(t, in, 5)
	if code, _, stderr := runArgs(t, "ingest", "--from-file", in, "--lake", lakeURI, "--catalog", "none", "--flush-records", "2"); code != 0 {
		t.Fatalf("ingest: exit %d, %s", code, stderr)
	}
	code, stdout, stderr := runArgs(t, "publish", "--lake", lakeURI)
	if code != 0 || !strings.Contains(stdout, "publish: 3 lake commits, 3 files, 5 events added to clickstream.events") ||
		!strings.Contains(stdout, "publish: 1 dead letters added to clickstream.rejected") {
		t.Fatalf("publish: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	code, stdout, _ = runArgs(t, "publish", "--lake", lakeURI)
	if code != 0 || !strings.Contains(stdout, "publish: 0 lake commits, 0 files, 0 events") || !strings.Contains(stdout, "publish: 0 dead letters") {
		t.Fatalf("second publish: exit %d, stdout %q", code, stdout)
	}
	if code, _, stderr := runArgs(t, "publish", "--lake", "s3://bucket/lake"); code != 2 || !strings.Contains(stderr, "--catalog") {
		t.Errorf("publish of an s3 lake without --catalog: exit %d, stderr %q; want 2 naming --catalog", code, stderr)
	}
}

// TestLeaderCompaction: the coordinator's table maintenance compacts the
// closed hours of its lake's table and deletes its orphan files, and does nothing (creating nothing)
// for a lake without a catalog.
func TestLeaderCompaction(t *testing.T) {
	oldReg := prometheus.DefaultRegisterer // ingest registers its metrics there
	prometheus.DefaultRegisterer = prometheus.NewRegistry()
	t.Cleanup(func() { prometheus.DefaultRegisterer = oldReg })
	ctx := context.Background()
	dir := t.TempDir()
	lakeURI := "file://" + filepath.Join(dir, "lake")
	in := filepath.Join(dir, "in.ndjson")
	writeEvents(t, in, 40)
	if code, _, stderr := runArgs(t, "ingest", "--from-file", in, "--lake", lakeURI, "--flush-records", "5"); code != 0 {
		t.Fatalf("ingest: exit %d, %s", code, stderr)
	}
	u := tableUpkeep{lake: lakeURI, every: time.Hour, retention: time.Hour, minAge: time.Hour}
	m, ok := u.maintenance()
	if !ok {
		t.Fatal("no table maintenance for a file lake")
	}
	// An old file no snapshot references (a crashed table commit's).
	orphan := filepath.Join(dir, "lake", "events", "metadata", "crashed-commit-m0.avro")
	if err := os.WriteFile(orphan, []byte("partial"), 0o644); err != nil {
		t.Fatal(err)
	}
	if old := time.Now().Add(-48 * time.Hour); os.Chtimes(orphan, old, old) != nil {
		t.Fatal("chtimes")
	}
	if err := m.Run(ctx, slog.Default()); err != nil {
		t.Fatal(err)
	}
	cat, err := icetable.OpenCatalog(ctx, "sqlite://"+filepath.Join(dir, "lake", "_catalog.db"), icetable.CatalogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer icetable.Close(cat)
	events, err := icetable.ReadEvents(ctx, cat)
	if err != nil || len(events) != 40 {
		t.Fatalf("after compaction the table reads %d events, %v; want 40", len(events), err)
	}
	tbl, err := cat.LoadTable(ctx, icetable.Ident(icetable.EventsTable))
	if err != nil {
		t.Fatal(err)
	}
	tasks, err := tbl.Scan().PlanFiles(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// 40 events of one user a minute apart: one bucket, one hour; 8 commits.
	if len(tasks) != 1 {
		t.Errorf("%d files after compaction, want 1", len(tasks))
	}
	if _, err := os.Stat(orphan); !os.IsNotExist(err) {
		t.Errorf("the table's orphan file survived the maintenance: %v", err)
	}

	bare := filepath.Join(dir, "bare")
	if err := os.Mkdir(bare, 0o755); err != nil {
		t.Fatal(err)
	}
	u.lake = "file://" + bare
	m, _ = u.maintenance()
	if err := m.Run(ctx, slog.Default()); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(bare); len(entries) != 0 {
		t.Errorf("compaction of a lake without a table created %v", entries)
	}
}

// TestPublishToPostgresCatalog: `clickstream publish` publishes to a
// PostgreSQL catalog with the password of --catalog-password-file, and
// refuses a catalog URI that carries a password without printing it.
func TestPublishToPostgresCatalog(t *testing.T) {
	catURI, opts := icetabletest.Postgres(t)
	oldReg := prometheus.DefaultRegisterer
	prometheus.DefaultRegisterer = prometheus.NewRegistry()
	t.Cleanup(func() { prometheus.DefaultRegisterer = oldReg })
	dir := t.TempDir()
	lakeURI := "file://" + filepath.Join(dir, "lake")
	in := filepath.Join(dir, "in.ndjson")
	writeEvents(t, in, 5)
	if code, _, stderr := runArgs(t, "ingest", "--from-file", in, "--lake", lakeURI, "--catalog", "none", "--flush-records", "2"); code != 0 {
		t.Fatalf("ingest: exit %d, %s", code, stderr)
	}
	for i, want := range []string{"publish: 3 lake commits, 3 files, 5 events", "publish: 0 lake commits"} {
		code, stdout, stderr := runArgs(t, "publish", "--lake", lakeURI, "--catalog", catURI, "--catalog-password-file", opts.PasswordFile)
		if code != 0 || !strings.Contains(stdout, want) {
			t.Fatalf("publish %d: exit %d, stdout %q, stderr %q; want %q", i+1, code, stdout, stderr, want)
		}
	}
	withPassword := strings.Replace(catURI, "@", ":hunter2@", 1)
	code, stdout, stderr := runArgs(t, "publish", "--lake", lakeURI, "--catalog", withPassword)
	if code == 0 || strings.Contains(stdout+stderr, "hunter2") || !strings.Contains(stderr, "password") {
		t.Errorf("publish with a password in --catalog: exit %d, stdout %q, stderr %q; want a failure that does not show it", code, stdout, stderr)
	}
}

// TestRunTimeTravel: a job given an events snapshot reads that snapshot's
// data, not what was ingested since; an unknown snapshot fails the job,
// saying so.
func TestRunTimeTravel(t *testing.T) {
	oldReg := prometheus.DefaultRegisterer // ingest registers its metrics there
	prometheus.DefaultRegisterer = prometheus.NewRegistry()
	t.Cleanup(func() { prometheus.DefaultRegisterer = oldReg })
	ctx := context.Background()
	dir := t.TempDir()
	lakeURI := "file://" + filepath.Join(dir, "lake")
	first, second := filepath.Join(dir, "first.ndjson"), filepath.Join(dir, "second.ndjson")
	writeEvents(t, first, 5)
	writeEvents(t, second, 7) // the same window, another file: another source
	if code, _, stderr := runArgs(t, "ingest", "--from-file", first, "--lake", lakeURI); code != 0 {
		t.Fatalf("ingest: exit %d, %s", code, stderr)
	}
	cat, err := icetable.OpenCatalog(ctx, "sqlite://"+filepath.Join(dir, "lake", "_catalog.db"), icetable.CatalogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer icetable.Close(cat)
	tbl, err := cat.LoadTable(ctx, icetable.Ident(icetable.EventsTable))
	if err != nil {
		t.Fatal(err)
	}
	then := tbl.CurrentSnapshot().SnapshotID
	prometheus.DefaultRegisterer = prometheus.NewRegistry() // a second ingest in this process
	if code, _, stderr := runArgs(t, "ingest", "--from-file", second, "--lake", lakeURI); code != 0 {
		t.Fatalf("second ingest: exit %d, %s", code, stderr)
	}
	window := []string{"run", "--lake", lakeURI, "--from", "2026-11-27T10:00:00Z", "--to", "2026-11-27T11:00:00Z", "--workers", "1"}
	clicks := func(out string) int64 {
		t.Helper()
		store, err := lake.Open(ctx, "file://"+out, lake.S3Options{})
		if err != nil {
			t.Fatal(err)
		}
		rows, meta, err := results.ReadResult(ctx, store)
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		for _, r := range rows {
			n += r.Clicks
		}
		if meta.EventsSnapshot == 0 {
			t.Errorf("result of %s names no events snapshot", out)
		}
		return n
	}
	now, past := filepath.Join(dir, "now"), filepath.Join(dir, "past")
	if code, _, stderr := runArgs(t, append(window, "--out", now)...); code != 0 {
		t.Fatalf("run: exit %d, %s", code, stderr)
	}
	if code, _, stderr := runArgs(t, append(window, "--out", past, "--snapshot", fmt.Sprint(then))...); code != 0 {
		t.Fatalf("run --snapshot: exit %d, %s", code, stderr)
	}
	if n, m := clicks(now), clicks(past); n != 12 || m != 5 {
		t.Errorf("clicks: %d now, %d at snapshot %d; want 12 and 5", n, m, then)
	}
	code, _, stderr := runArgs(t, append(window, "--out", filepath.Join(dir, "never"), "--snapshot", "12345")...)
	if code == 0 || !strings.Contains(stderr, "snapshot 12345 is not one of the events table's") {
		t.Errorf("run with an unknown snapshot: exit %d, stderr %q", code, stderr)
	}
}
