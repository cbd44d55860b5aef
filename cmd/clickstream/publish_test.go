package main

import (
	"path/filepath"
	"strings"
	"testing"

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
	if code != 0 || !strings.Contains(stdout, "publish: 3 lake commits, 3 files, 5 events added to clickstream.events") {
		t.Fatalf("publish: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	code, stdout, _ = runArgs(t, "publish", "--lake", lakeURI)
	if code != 0 || !strings.Contains(stdout, "publish: 0 lake commits, 0 files, 0 events") {
		t.Fatalf("second publish: exit %d, stdout %q", code, stdout)
	}
	if code, _, stderr := runArgs(t, "publish", "--lake", "s3://bucket/lake"); code != 2 || !strings.Contains(stderr, "--catalog") {
		t.Errorf("publish of an s3 lake without --catalog: exit %d, stderr %q; want 2 naming --catalog", code, stderr)
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
