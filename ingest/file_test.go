package ingest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/obs"
)

func TestReadLine(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		limit int
		want  []string
		long  []bool
	}{
		{"lf", "a\nbb\n", 10, []string{"a", "bb"}, []bool{false, false}},
		{"crlf", "a\r\nbb\r\n", 10, []string{"a", "bb"}, []bool{false, false}},
		{"no final newline", "a\nbb", 10, []string{"a", "bb"}, []bool{false, false}},
		{"blank lines kept", "a\n\n\nb\n", 10, []string{"a", "", "", "b"}, []bool{false, false, false, false}},
		{"at limit", "abcd\n", 4, []string{"abcd"}, []bool{false}},
		{"over limit", "abcde\nx\n", 4, []string{"abcd", "x"}, []bool{true, false}},
		{"over limit last line", "x\nabcdefgh", 4, []string{"x", "abcd"}, []bool{false, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := bufio.NewReaderSize(strings.NewReader(tt.in), 16)
			var got []string
			var long []bool
			for {
				line, err := readLine(r, tt.limit)
				if errors.Is(err, io.EOF) && line == nil {
					break
				}
				if err != nil && !errors.Is(err, errTooLong) {
					t.Fatal(err)
				}
				got = append(got, string(line))
				long = append(long, errors.Is(err, errTooLong))
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") || len(got) != len(tt.want) {
				t.Fatalf("lines = %q, want %q", got, tt.want)
			}
			for i := range long {
				if long[i] != tt.long[i] {
					t.Fatalf("line %d too long = %v, want %v", i, long[i], tt.long[i])
				}
			}
		})
	}
}

func TestReadLineLongerThanBuffer(t *testing.T) {
	long := strings.Repeat("x", 100)
	r := bufio.NewReaderSize(strings.NewReader(long+"\nok\n"), 16)
	line, err := readLine(r, 1000)
	if err != nil || string(line) != long {
		t.Fatalf("got %d bytes, err %v", len(line), err)
	}
	line, err = readLine(r, 1000)
	if err != nil || string(line) != "ok" {
		t.Fatalf("got %q, err %v", line, err)
	}
}

// cancellingReader returns first, then cancels and returns rest: the
// source is interrupted while the lines of first and the first line of
// rest are read but not committed.
type cancellingReader struct {
	first, rest []byte
	cancel      context.CancelFunc
	calls       int
}

func (r *cancellingReader) Read(p []byte) (int, error) {
	r.calls++
	var chunk *[]byte
	switch {
	case len(r.first) > 0:
		chunk = &r.first
	case len(r.rest) > 0:
		r.cancel()
		chunk = &r.rest
	default:
		return 0, io.EOF
	}
	n := copy(p, *chunk)
	*chunk = (*chunk)[n:]
	return n, nil
}

// TestFileSourceInterruptedCommitsWhatItRead: a file source interrupted
// (SIGTERM) commits the lines it has read, although its context has ended,
// says how far it got, and a re-run lands the rest: every line once.
func TestFileSourceInterruptedCommitsWhatItRead(t *testing.T) {
	const total, first = 50, 20
	var all, head, tail []byte
	var msgs [][]byte
	for i := range total {
		line := append(testMessage(i), '\n')
		msgs = append(msgs, testMessage(i))
		all = append(all, line...)
		if i < first {
			head = append(head, line...)
		} else {
			tail = append(tail, line...)
		}
	}
	store, err := lake.NewFileStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := newTestSink(t, store, "aaaa")
	cfg := NewConfig()
	cfg.FlushInterval = time.Hour // one commit: the drain's

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sum, err := ingestLines(ctx, &cfg, s, "file.x", &cancellingReader{first: head, rest: tail, cancel: cancel})
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "interrupted after line 21, all of them committed") {
		t.Fatalf("interrupted run: %v", err)
	}
	if got := sum.Accepted + sum.Rejected; got != first+1 {
		t.Fatalf("interrupted run committed %d lines, want %d", got, first+1)
	}
	if ends := readLake(t, store).manifests; len(ends) != 1 || ends[0].End != first+1 {
		t.Fatalf("manifests after the interrupt: %+v, want one ending at %d", ends, first+1)
	}

	sum, err = ingestLines(context.Background(), &cfg, newTestSink(t, store, "bbbb"), "file.x", bytes.NewReader(all))
	if err != nil {
		t.Fatal(err)
	}
	if sum.AlreadyCommitted != first+1 || sum.Consumed != total-first-1 {
		t.Fatalf("re-run: %+v, want %d already committed and %d consumed", sum, first+1, total-first-1)
	}
	got := readLake(t, store)
	if err := got.checkChains(); err != nil {
		t.Fatal(err)
	}
	wantValid, wantRejected := expected(msgs)
	assertSameEvents(t, got.events, wantValid)
	if len(got.rejected) != wantRejected {
		t.Fatalf("rejected = %d, want %d", len(got.rejected), wantRejected)
	}
}

// readinessReader records the sink's readiness at its first read.
type readinessReader struct {
	r     io.Reader
	s     *sink
	ready error
	read  bool
}

func (r *readinessReader) Read(p []byte) (int, error) {
	if !r.read {
		r.read, r.ready = true, r.s.ready(context.Background())
	}
	return r.r.Read(p)
}

// TestFileSourceReadiness: an ingest is ready while it reads its file,
// not before and not after.
func TestFileSourceReadiness(t *testing.T) {
	store, err := lake.NewFileStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := newTestSink(t, store, "aaaa")
	if err := s.ready(context.Background()); !errors.Is(err, errNotConsuming) {
		t.Fatalf("before reading: %v", err)
	}
	cfg := NewConfig()
	in := &readinessReader{r: bytes.NewReader(append(testMessage(0), '\n')), s: s}
	if _, err := ingestLines(context.Background(), &cfg, s, "file.x", in); err != nil {
		t.Fatal(err)
	}
	if !in.read || in.ready != nil {
		t.Fatalf("while reading: read %v, ready %v", in.read, in.ready)
	}
	if err := s.ready(context.Background()); !errors.Is(err, errNotConsuming) {
		t.Fatalf("after reading: %v", err)
	}
}

// TestIngestIntoOldLayoutLake: ingesting into a lake of an older layout
// fails before anything is written, saying what the lake is and what to
// do.
func TestIngestIntoOldLayoutLake(t *testing.T) {
	dir := t.TempDir()
	store, err := lake.NewFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := store.Put(ctx, lake.MetaKey, []byte(`{"version":1,"buckets":16,"created":"2026-01-01T00:00:00Z"}`)); err != nil {
		t.Fatal(err)
	}
	input := filepath.Join(t.TempDir(), "events.ndjson")
	if err := os.WriteFile(input, append(testMessage(0), '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := NewConfig()
	cfg.FromFile, cfg.SourceID, cfg.Lake = input, "x", store.URI()
	_, err = Ingest(ctx, cfg, obs.Runtime{Logger: slog.New(slog.DiscardHandler)})
	if !errors.Is(err, lake.ErrLayout) || !strings.Contains(err.Error(), "older layout (1: FNV buckets, timestamp_ms files)") ||
		!strings.Contains(err.Error(), "re-ingest") {
		t.Fatalf("err = %v, want lake.ErrLayout explaining the old layout", err)
	}
	if objs, err := store.List(ctx, lake.EventsPrefix); err != nil || len(objs) != 0 {
		t.Fatalf("events written into the old lake: %v, %v", objs, err)
	}
}
