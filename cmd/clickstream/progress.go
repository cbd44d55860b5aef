package main

import (
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/dataco/clickstream/ingest"
)

// How often the progress of a file ingest shows: redrawn on a terminal,
// a log line otherwise.
const (
	progressTTYInterval = 500 * time.Millisecond
	progressLogInterval = 10 * time.Second
)

// progressReporter shows the progress of a file ingest: on a terminal
// (tty) one line on w, redrawn in place; otherwise a log line per tick.
// The ETA needs the input's size, unknown for stdin.
type progressReporter struct {
	p     *ingest.Progress
	w     io.Writer
	log   *slog.Logger
	tty   bool
	start time.Time
	drawn bool // a line is on the terminal
}

// run reports at each tick (the tick's time is the clock) until done is
// closed; on a terminal it then ends the line.
func (r *progressReporter) run(tick <-chan time.Time, done <-chan struct{}) {
	for {
		select {
		case now := <-tick:
			r.report(now)
		case <-done:
			if r.drawn {
				fmt.Fprint(r.w, "\n")
			}
			return
		}
	}
}

// report shows the progress at now.
func (r *progressReporter) report(now time.Time) {
	s := r.p.Snapshot()
	secs := now.Sub(r.start).Seconds()
	if secs <= 0 {
		return
	}
	recRate, byteRate := float64(s.Records)/secs, float64(s.Bytes)/secs
	var eta time.Duration
	known := s.Size > 0 && byteRate > 0
	if known {
		eta = time.Duration(float64(max(0, s.Size-s.Bytes)) / byteRate * float64(time.Second)).Round(time.Second)
	}
	if !r.tty {
		args := []any{"records", s.Records, "bytes", s.Bytes, "records_per_second", int64(recRate), "bytes_per_second", int64(byteRate)}
		if known {
			args = append(args, "size", s.Size, "eta", eta)
		}
		r.log.Info("ingest progress", args...)
		return
	}
	line := fmt.Sprintf("%d records, %s", s.Records, byteSize(s.Bytes))
	if known {
		line += fmt.Sprintf(" of %s (%d%%)", byteSize(s.Size), s.Bytes*100/s.Size)
	}
	line += fmt.Sprintf(", %.0f records/s, %s/s", recRate, byteSize(int64(byteRate)))
	if known {
		line += fmt.Sprintf(", ETA %v", eta)
	}
	fmt.Fprintf(r.w, "\r\033[K%s", line)
	r.drawn = true
}

// startProgress shows p's progress on w (a terminal) or in the process
// log, from a goroutine it owns; the returned stop ends it and waits.
func startProgress(w io.Writer, p *ingest.Progress) (stop func()) {
	r := &progressReporter{p: p, w: w, log: slog.Default(), tty: isTerminal(w), start: time.Now()}
	interval := progressLogInterval
	if r.tty {
		interval = progressTTYInterval
	}
	t := time.NewTicker(interval)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { r.run(t.C, done) })
	return sync.OnceFunc(func() {
		t.Stop()
		close(done)
		wg.Wait()
	})
}

// byteSize formats n bytes in binary units: 512 B, 1.5 MiB.
func byteSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
