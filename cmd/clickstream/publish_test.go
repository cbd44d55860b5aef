package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
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
