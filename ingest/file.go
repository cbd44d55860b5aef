package ingest

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// fileInput is the opened input of a file source: a file, stdin, or a
// program's stream (r, Config.Input).
type fileInput struct {
	name string
	f    *os.File
	r    io.Reader // read instead of f if set
	size int64     // -1: unknown (stdin, a pipe, a stream)
}

// openInput opens name ("-": stdin) for reading, before anything else is
// created: a missing or unreadable input fails here, naming the file.
func openInput(name string) (*fileInput, error) {
	if name == "-" {
		return &fileInput{name: name, f: os.Stdin, size: -1}, nil
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("ingest: --from-file: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("ingest: --from-file: %w", err)
	}
	if fi.IsDir() {
		f.Close()
		return nil, fmt.Errorf("ingest: --from-file %s is a directory, not an NDJSON file", name)
	}
	size := int64(-1)
	if fi.Mode().IsRegular() {
		size = fi.Size()
	}
	return &fileInput{name: name, f: f, size: size}, nil
}

// Close closes the file (not stdin, not a stream).
func (in *fileInput) Close() error {
	if in.f == nil || in.f == os.Stdin {
		return nil
	}
	return in.f.Close()
}

// runFile ingests an NDJSON file (or stdin) as one lake source whose
// positions are line numbers from 0. Ingesting the same content again
// resumes after the last committed line, so a crashed backfill is simply
// restarted and a finished one is a no-op.
func runFile(ctx context.Context, cfg *Config, s *sink, in *fileInput) (Summary, error) {
	source := cfg.SourceID
	if source == "" && in.f == os.Stdin {
		source = "stdin." + randomHex(8)
		s.log.Warn("reading stdin without --source-id: a re-run will not be recognised as the same source", "source", source)
	} else if source == "" {
		h := sha256.New()
		if _, err := io.Copy(h, in.f); err != nil {
			return Summary{}, fmt.Errorf("ingest: hash %s: %w", in.name, err)
		}
		source = "file." + hex.EncodeToString(h.Sum(nil)[:12])
		if _, err := in.f.Seek(0, io.SeekStart); err != nil {
			return Summary{}, fmt.Errorf("ingest: rewind %s: %w", in.name, err)
		}
	}
	var r io.Reader = in.f
	if in.r != nil {
		r = in.r
	}
	if cfg.Progress != nil {
		r = &countingReader{r: r, n: &cfg.Progress.bytes}
	}
	return ingestLines(ctx, cfg, s, source, r)
}

// ingestLines ingests the lines of in as the file source source. Once ctx
// ends it commits the lines it has read, on a context of its own bounded
// by the commit timeout (the batch in hand is a drain, as a Kafka
// partition's), and returns an error saying how far it got.
func ingestLines(ctx context.Context, cfg *Config, s *sink, source string, in io.Reader) (Summary, error) {
	st, err := s.recover(ctx, source)
	if err != nil {
		return Summary{}, err
	}
	s.consuming.Store(true)
	defer s.consuming.Store(false)
	sum := Summary{Source: source, AlreadyCommitted: st.end}
	if st.end > 0 {
		s.log.Info("resuming file source", "source", source, "committed_lines", st.end, "last_seq", st.seq)
	}

	c := newCommitter(s, cfg, &st, func(res flushResult, _ sourceState) {
		sum.addCommit(res, s.store.URI())
	})
	b := &batch{}
	b.reset(st.end)
	pcache := s.newParseCache()
	lastFlush := time.Now()
	r := bufio.NewReaderSize(in, 1<<20)
	// drain commits what was read once ctx has ended, on a context of its
	// own, and says how far the source got.
	drain := func(pos int64) error {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.CommitTimeout)
		defer cancel()
		if err := c.commit(dctx, b); err != nil {
			return fmt.Errorf("ingest: interrupted after line %d; committing the lines read failed (a re-run resumes after line %d): %w", pos, st.end, err)
		}
		return fmt.Errorf("ingest: interrupted after line %d, all of them committed: %w", pos, context.Cause(ctx))
	}
	for pos := int64(0); ; pos++ {
		if ctx.Err() != nil {
			return sum, drain(pos)
		}
		line, err := readLine(r, cfg.MaxRecordSize)
		if errors.Is(err, io.EOF) && line == nil {
			break
		}
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, errTooLong) {
			return sum, fmt.Errorf("ingest: read %s line %d: %w", cfg.FromFile, pos+1, err)
		}
		if cfg.Progress != nil {
			cfg.Progress.records.Add(1)
		}
		if pos < st.end {
			continue // committed by an earlier run
		}
		sum.Consumed++
		s.metrics.consumed.Inc()
		if errors.Is(err, errTooLong) {
			b.add(s.tooLarge(pos, line, cfg.MaxRecordSize), len(line))
		} else {
			b.add(s.parse(pos, line, pcache), len(line))
		}
		if c.full(b) || time.Since(lastFlush) >= cfg.FlushInterval {
			if err := c.commit(ctx, b); err != nil {
				if ctx.Err() != nil { // interrupted during the commit
					return sum, drain(pos + 1)
				}
				return sum, err
			}
			lastFlush = time.Now()
		}
	}
	if err := c.commit(ctx, b); err != nil {
		if ctx.Err() != nil {
			return sum, drain(sum.AlreadyCommitted + sum.Consumed)
		}
		return sum, err
	}
	return sum, nil
}

var errTooLong = errors.New("line too long")

// readLine returns the next line without its "\n" (and "\r\n"). A line
// longer than limit is returned truncated to limit bytes with errTooLong;
// the rest of it is skipped. The last line may lack a newline. At the end of
// input it returns (nil, io.EOF).
func readLine(r *bufio.Reader, limit int) ([]byte, error) {
	var line []byte
	tooLong := false
	for {
		chunk, err := r.ReadSlice('\n')
		if !tooLong {
			room := limit + 2 - len(line) // room for "\r\n"
			if len(chunk) > room {
				line = append(line, chunk[:room]...)
				tooLong = true
			} else {
				line = append(line, chunk...)
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		if errors.Is(err, io.EOF) && len(line) == 0 {
			return nil, io.EOF
		}
		n := len(line)
		if n > 0 && line[n-1] == '\n' {
			n--
			if n > 0 && line[n-1] == '\r' {
				n--
			}
		}
		line = line[:n]
		if tooLong || len(line) > limit {
			return line[:min(len(line), limit)], errTooLong
		}
		return line, nil
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
