package main

import (
	"bytes"
	"context"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"

	"github.com/dataco/clickstream/coordinator"
	"github.com/dataco/clickstream/ingest"
	"github.com/dataco/clickstream/internal/event"
	"github.com/dataco/clickstream/internal/lake"
)

// writeEvents writes n valid events, and one malformed line, as NDJSON.
// isolateCommands lets a test run commands in this process, as main runs
// them. They set the default logger (which redirects the log package too)
// and register metrics with the default registry (so a second ingest in
// one process would panic): a fresh registry for the test, and all
// restored after it.
func isolateCommands(t *testing.T) {
	t.Helper()
	oldLogger, oldLogOut, oldLogFlags, oldReg := slog.Default(), log.Writer(), log.Flags(), prometheus.DefaultRegisterer
	prometheus.DefaultRegisterer = prometheus.NewRegistry()
	t.Cleanup(func() {
		slog.SetDefault(oldLogger)
		log.SetOutput(oldLogOut)
		log.SetFlags(oldLogFlags)
		prometheus.DefaultRegisterer = oldReg
	})
}

// stackEnv returns the variable name of the local stack's env file; a test
// that needs it fails, not skips, without it.
func stackEnv(t *testing.T, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("$%s is not set: source the local stack's env file (set -a; . ~/.local/state/clickstream/env; set +a)", name)
	}
	return v
}

func writeEvents(t *testing.T, path string, n int) {
	t.Helper()
	var b bytes.Buffer
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	for i := range n {
		b.Write(event.Encode(event.Event{UserID: "1", Timestamp: t0.Add(time.Duration(i) * time.Minute).UnixMilli(), URL: "/", Country: "DE"}))
		b.WriteString("\n")
	}
	b.WriteString("{oops\n")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestIngestMissingFileCreatesNoLake: a mistyped input fails (exit 1,
// naming it) before the lake exists, so the corrected command may still
// choose the lake's buckets.
func TestIngestMissingFileCreatesNoLake(t *testing.T) {
	oldReg := prometheus.DefaultRegisterer // ingest registers its metrics there
	prometheus.DefaultRegisterer = prometheus.NewRegistry()
	t.Cleanup(func() { prometheus.DefaultRegisterer = oldReg })
	dir := t.TempDir()
	lakeDir := filepath.Join(dir, "lake")
	missing := filepath.Join(dir, "no", "such.ndjson")
	code, _, stderr := runArgs(t, "ingest", "--from-file", missing, "--lake", "file://"+lakeDir)
	if code != 1 || !strings.Contains(stderr, missing) || strings.Contains(stderr, "--help") || strings.Contains(stderr, "ingest: ingest:") {
		t.Fatalf("exit %d, stderr %q; want 1 and the file named", code, stderr)
	}
	if _, err := os.Stat(lakeDir); !os.IsNotExist(err) {
		t.Fatalf("lake folder after the failure: %v, want none", err)
	}
	in := filepath.Join(dir, "in.ndjson")
	writeEvents(t, in, 3)
	code, stdout, stderr := runArgs(t, "ingest", "--from-file", in, "--lake", "file://"+lakeDir, "--buckets", "64")
	if code != 0 {
		t.Fatalf("corrected command: exit %d, stderr %q", code, stderr)
	}
	if !strings.Contains(stdout, "ingest: accepted=3 rejected=1") || !strings.Contains(stdout, "rejected_by=malformed_json:1") ||
		!strings.Contains(stdout, "window=--from=2026-11-27T10:00:00Z,--to=2026-11-27T11:00:00Z") {
		t.Errorf("summary %q", stdout)
	}
	st, err := lake.NewFileStore(lakeDir)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := lake.ReadMeta(context.Background(), st); err != nil || m.Buckets != 64 {
		t.Fatalf("meta %+v, %v; want 64 buckets", m, err)
	}
}

// TestMissingInputStoreCreatesNothing: run, vacuum and index refuse a
// lake or results folder that does not exist, creating nothing.
func TestMissingInputStoreCreatesNothing(t *testing.T) {
	dir := t.TempDir()
	missing, out := filepath.Join(dir, "no-lake"), filepath.Join(dir, "out")
	for _, args := range [][]string{
		{"run", "--lake", missing, "--out", out, "--from", "2026-11-27T00:00:00Z", "--to", "2026-11-27T01:00:00Z"},
		{"vacuum", "--lake", missing},
		{"index", "--results", missing, "--es", "http://127.0.0.1:1"},
	} {
		t.Run(args[0], func(t *testing.T) {
			code, _, stderr := runArgs(t, args...)
			if code != 1 || !strings.Contains(stderr, missing) {
				t.Fatalf("exit %d, stderr %q; want 1 naming %s", code, stderr, missing)
			}
			for _, p := range []string{missing, out} {
				if _, err := os.Stat(p); !os.IsNotExist(err) {
					t.Fatalf("%s: %v, want nothing created", p, err)
				}
			}
		})
	}
}

// TestBareStorePaths: every store flag takes a bare path, absolute or
// relative to the working directory, as the file:/// URI of its absolute
// form; other schemes are usage errors.
func TestBareStorePaths(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	abs := func(p string) string { return "file://" + filepath.ToSlash(filepath.Join(dir, p)) }
	newFS := func() (*pflag.FlagSet, *string, *[]string, *coordinator.JobSpecFlags) {
		fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
		lakeURI := fs.String("lake", "", "")
		roots := fs.StringSlice("output-root", nil, "")
		var jf coordinator.JobSpecFlags
		fs.StringVar(&jf.Out, "out", "", "")
		return fs, lakeURI, roots, &jf
	}
	for _, tc := range []struct {
		name      string
		args      []string
		lake, out string
		roots     []string
	}{
		{"absolute", []string{"--lake", "/data/lake", "--out", "/data/out/", "--output-root", "/data,/srv"},
			"file:///data/lake", "file:///data/out", []string{"file:///data", "file:///srv"}},
		{"relative", []string{"--lake", "lake", "--out", "./out/run1", "--output-root", "out,../up"},
			abs("lake"), abs("out/run1"), []string{abs("out"), "file://" + filepath.ToSlash(filepath.Join(filepath.Dir(dir), "up"))}},
		{"uris unchanged", []string{"--lake", "s3://bucket/lake", "--out", "file:///data/out", "--output-root", "s3://bucket,file://./o"},
			"s3://bucket/lake", "file:///data/out", []string{"s3://bucket", abs("o")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs, lakeURI, roots, jf := newFS()
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			if err := resolveStoreFlags(fs); err != nil {
				t.Fatal(err)
			}
			if *lakeURI != tc.lake || jf.Out != tc.out || strings.Join(*roots, " ") != strings.Join(tc.roots, " ") {
				t.Fatalf("lake %q out %q roots %q; want %q %q %q", *lakeURI, jf.Out, *roots, tc.lake, tc.out, tc.roots)
			}
		})
	}
	// A job spec never carries a relative path, whatever the client was given.
	jf := coordinator.JobSpecFlags{From: "2026-11-27T00:00:00Z", To: "2026-11-27T01:00:00Z", Out: "out", Lake: "lake", Format: "ndjson"}
	spec, err := jf.Spec()
	if err != nil || spec.GetOutUri() != abs("out") || spec.GetLakeUri() != abs("lake") {
		t.Fatalf("spec %v, %v", spec, err)
	}
	for _, bad := range []string{"http://host/x", "s3:bucket", "gs://b"} {
		code, _, stderr := runArgs(t, "vacuum", "--lake", bad)
		if code != 2 || !strings.Contains(stderr, "--lake") || !strings.Contains(stderr, bad) {
			t.Errorf("--lake %s: exit %d, stderr %q; want a usage error naming it", bad, code, stderr)
		}
	}
	// End to end: a relative lake is the one under the working directory.
	if code, _, stderr := runArgs(t, "vacuum", "--lake", "rel/lake"); code != 1 || !strings.Contains(stderr, abs("rel/lake")) {
		t.Fatalf("missing relative lake: exit %d, stderr %q; want 1 naming %s", code, stderr, abs("rel/lake"))
	}
	st, err := lake.NewFileStore(filepath.Join(dir, "rel", "lake"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lake.EnsureMeta(context.Background(), st, 4); err != nil {
		t.Fatal(err)
	}
	if code, stdout, stderr := runArgs(t, "vacuum", "--lake", "rel/lake", "--dry-run"); code != 0 || !strings.Contains(stdout, "vacuum: 0 files referenced") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

// TestProgressLog: off a terminal, each tick logs the counts and rates,
// with an ETA when the input's size is known; on a terminal the line is
// redrawn in place and ended when the reporter stops.
func TestProgressLog(t *testing.T) {
	for _, tty := range []bool{false, true} {
		var out bytes.Buffer
		p := &ingest.Progress{}
		p.SetSize(40 << 20)
		t0 := time.Unix(1_000_000, 0)
		r := &progressReporter{p: p, w: &out, log: slog.New(slog.NewTextHandler(&out, nil)), tty: tty, start: t0}
		tick, done, finished := make(chan time.Time), make(chan struct{}), make(chan struct{})
		go func() { r.run(tick, done); close(finished) }()
		p.Add(1000, 10<<20)
		tick <- t0.Add(10 * time.Second)
		p.Add(1000, 10<<20)
		tick <- t0.Add(20 * time.Second)
		close(done)
		<-finished
		got := out.String()
		if !tty {
			lines := strings.Split(strings.TrimSpace(got), "\n")
			if len(lines) != 2 {
				t.Fatalf("log lines %q, want 2", lines)
			}
			for _, want := range []string{"msg=\"ingest progress\"", "records=2000", "bytes=20971520", "records_per_second=100", "bytes_per_second=1048576", "eta=20s"} {
				if !strings.Contains(lines[1], want) {
					t.Errorf("log line %q lacks %q", lines[1], want)
				}
			}
			continue
		}
		want := "\r\033[K2000 records, 20.0 MiB of 40.0 MiB (50%), 100 records/s, 1.0 MiB/s, ETA 20s\n"
		if !strings.HasSuffix(got, want) || strings.Count(got, "\r") != 2 {
			t.Errorf("terminal output %q, want it to end with %q", got, want)
		}
	}
}
