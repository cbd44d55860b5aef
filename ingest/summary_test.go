package ingest

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dataco/clickstream/internal/event"
	"github.com/dataco/clickstream/internal/obs"
)

// TestIngestSummary: the summary of a file ingest counts rejects by
// reason, says where they went, and bounds the accepted events' times,
// across several commits.
func TestIngestSummary(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Date(2026, 11, 27, 10, 15, 0, 0, time.UTC)
	var in bytes.Buffer
	for i, ts := range []time.Time{t0, t0.Add(-30 * time.Minute), t0.Add(2*time.Hour + time.Second)} {
		in.Write(event.Encode(event.Event{UserID: string(rune('1' + i)), Timestamp: ts.UnixMilli(), URL: "/", Country: "DE"}))
		in.WriteString("\n")
	}
	in.WriteString("{not json\n[1]\n{oops\n")
	in.WriteString(`{"user_id":"9","timestamp":"2026-11-27T10:00:00Z","url":"/","country":"DE","pad":"` + strings.Repeat("x", 600) + "\"}\n")
	file := filepath.Join(dir, "in.ndjson")
	if err := os.WriteFile(file, in.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := NewConfig()
	cfg.FromFile, cfg.Lake = file, "file://"+filepath.Join(dir, "lake")
	cfg.FlushRecords = 2 // several commits
	cfg.MaxRecordSize = 512
	cfg.Progress = &Progress{}
	sum, err := Ingest(context.Background(), cfg, obs.Runtime{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"malformed_json": 2, "not_object": 1, "too_large": 1}
	if len(sum.RejectedBy) != len(want) {
		t.Errorf("RejectedBy = %v, want %v", sum.RejectedBy, want)
	}
	for r, n := range want {
		if sum.RejectedBy[r] != n {
			t.Errorf("RejectedBy = %v, want %v", sum.RejectedBy, want)
		}
	}
	if want := cfg.Lake + "/_rejected/"; !strings.HasPrefix(sum.DeadLetters, want) || !strings.HasSuffix(sum.DeadLetters, "/") {
		t.Errorf("DeadLetters = %q, want a folder under %s", sum.DeadLetters, want)
	}
	if fi, err := os.Stat(strings.TrimPrefix(sum.DeadLetters, "file://")); err != nil || !fi.IsDir() {
		t.Errorf("dead letters folder %s: %v", sum.DeadLetters, err)
	}
	if first, last := t0.Add(-30*time.Minute), t0.Add(2*time.Hour+time.Second); !sum.FirstEvent.Equal(first) || !sum.LastEvent.Equal(last) {
		t.Errorf("events %v..%v, want %v..%v", sum.FirstEvent, sum.LastEvent, first, last)
	}
	line := sum.String()
	for _, want := range []string{
		"accepted=3 rejected=4 consumed=7",
		"rejected_by=malformed_json:2,not_object:1,too_large:1",
		"dead_letters=" + sum.DeadLetters,
		"event_time=2026-11-27T09:45:00.000Z..2026-11-27T12:15:01.000Z",
		"window=--from=2026-11-27T09:00:00Z,--to=2026-11-27T13:00:00Z",
	} {
		if !strings.Contains(line, want) {
			t.Errorf("summary %q lacks %q", line, want)
		}
	}
	if p := cfg.Progress.Snapshot(); p.Records != 7 || p.Bytes != int64(in.Len()) || p.Size != int64(in.Len()) {
		t.Errorf("progress %+v, want 7 records and %d bytes of %d", p, in.Len(), in.Len())
	}
}

// TestIngestMissingInput: a missing input fails naming it, and creates
// no lake.
func TestIngestMissingInput(t *testing.T) {
	dir := t.TempDir()
	cfg := NewConfig()
	cfg.FromFile, cfg.Lake = filepath.Join(dir, "no-such.ndjson"), "file://"+filepath.Join(dir, "lake")
	_, err := Ingest(context.Background(), cfg, obs.Runtime{})
	if err == nil || !strings.Contains(err.Error(), cfg.FromFile) {
		t.Fatalf("err = %v, want one naming %s", err, cfg.FromFile)
	}
	if _, err := os.Stat(filepath.Join(dir, "lake")); !os.IsNotExist(err) {
		t.Fatalf("lake folder: %v, want none", err)
	}
	cfg.FromFile = dir
	if _, err := Ingest(context.Background(), cfg, obs.Runtime{}); err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Fatalf("a folder as input: %v", err)
	}
}
