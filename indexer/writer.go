// Writer.IndexResult: indexing one committed result, step by step, and
// the Report it returns.

package indexer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dataco/clickstream/internal/aggregate"
	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/results"
	"github.com/dataco/clickstream/internal/schema"
)

// IndexResult indexes a committed result into the alias: see
// Writer.IndexResult.
func (ix *Indexer) IndexResult(ctx context.Context, rows []schema.Row, meta results.Meta, deadLetters lake.Store) (Report, error) {
	return (&Writer{ix: ix, index: ix.cfg.Alias, viaAlias: true}).IndexResult(ctx, rows, meta, deadLetters)
}

// A Writer indexes results into one target: the alias (Indexer.IndexResult)
// or a new concrete index during a Rebuild.
type Writer struct {
	ix       *Indexer
	index    string
	viaAlias bool
}

// Index is the alias or concrete index the writer writes to.
func (w *Writer) Index() string { return w.index }

// IndexResult indexes the rows of one committed result (one window) and
// returns when they are searchable and checked:
//
//  1. Each row becomes a document with id DocID(window, url, country),
//     stamped with the job and a new generation id, sent through the
//     shared bulk indexer, which is then flushed.
//  2. Documents that failed with a 429, a 5xx or a network error are sent
//     again with exponential backoff and jitter until they land or
//     Config.RetryTimeout has passed (ErrRetriesExhausted).
//  3. Documents refused for their content (400: strict mapping, immense
//     term...) are written, with Elasticsearch's error type and reason, to
//     deadLetters at DeadLetterKey(window, job) — replaced at every call,
//     deleted when nothing was rejected — and counted in Report.Rejected.
//  4. The index is refreshed, documents of the window from other
//     generations (rows that are no longer in the result) are deleted, and
//     the window's document count must be rows - rejected
//     (ErrCountMismatch otherwise).
//
// Running it again for the same window is safe: documents are replaced,
// never duplicated. Rejections do not make it fail; the caller decides.
func (w *Writer) IndexResult(ctx context.Context, rows []schema.Row, meta results.Meta, deadLetters lake.Store) (rep Report, err error) {
	ix := w.ix
	start := time.Now()
	rep = Report{Index: w.index, Job: meta.Job, Rows: len(rows)}
	ctx, end, err := ix.begin(ctx)
	if err != nil {
		return rep, err
	}
	defer end()
	defer func() {
		rep.Duration = time.Since(start)
		ix.metrics.duration.Observe(rep.Duration.Seconds())
		if err != nil {
			ix.metrics.results.WithLabelValues(resultFailed).Inc()
			if errors.Is(context.Cause(ctx), ErrClosed) {
				err = fmt.Errorf("%w (interrupted): %w", ErrClosed, err)
			}
			ix.logger.Error("indexing failed", "index", w.index, "job", meta.Job, "window", rep.Window, "err", err)
			return
		}
		ix.metrics.results.WithLabelValues(resultIndexed).Inc()
		ix.logger.Info("result indexed", "index", w.index, "job", meta.Job, "window", rep.Window,
			"indexed", rep.Indexed, "rejected", rep.Rejected, "stale_deleted", rep.Stale, "retried", rep.Retried, "duration", rep.Duration)
	}()
	if deadLetters == nil {
		return rep, fmt.Errorf("%w: no dead-letter store", ErrBadResult)
	}
	if rep.Window, err = resultWindow(rows, meta); err != nil {
		return rep, err
	}
	if err := ix.Setup(ctx); err != nil {
		return rep, err
	}
	rep.Generation = newGeneration()
	now := time.Now().UTC().Truncate(time.Millisecond)
	docs, rejections, err := w.encode(rows, meta.Job, rep.Generation, now)
	if err != nil {
		return rep, err
	}

	deadline := start.Add(ix.cfg.RetryTimeout)
	indexed, rejected, retried, err := w.send(ctx, docs, deadline, meta.Job, now)
	rep.Indexed, rep.Retried = indexed, retried
	rejections = append(rejections, rejected...)
	rep.Rejected, rep.Rejections = len(rejections), rejections
	if err != nil {
		return rep, err
	}

	key := DeadLetterKey(rep.Window, meta.Job)
	if err := writeDeadLetters(ctx, deadLetters, key, rejections); err != nil {
		return rep, err
	}
	if len(rejections) > 0 {
		rep.DeadLetters = strings.TrimSuffix(deadLetters.URI(), "/") + "/" + key
	}

	// The finishing steps get their own retry budget: a long outage may
	// have used up the first one, and they are cheap.
	rep.Stale, rep.Count, err = w.finish(ctx, rep.Window, meta.Grain, rep.Generation, time.Now().Add(ix.cfg.RetryTimeout))
	if err != nil {
		return rep, err
	}
	if want := int64(len(rows) - rep.Rejected); rep.Count != want {
		return rep, fmt.Errorf("%w: window %s in %s: %d documents, want %d (%d rows - %d rejected)",
			ErrCountMismatch, rep.Window, w.index, rep.Count, want, len(rows), rep.Rejected)
	}
	return rep, nil
}

// resultWindow is the window of a result: meta's (or, if meta has none,
// the first row's), which every row must have.
func resultWindow(rows []schema.Row, meta results.Meta) (aggregate.Window, error) {
	win := aggregate.Window{From: meta.From.UTC(), To: meta.To.UTC()}
	if win.From.IsZero() && win.To.IsZero() && len(rows) > 0 {
		win = aggregate.Window{From: rows[0].WindowStart.UTC(), To: rows[0].WindowEnd.UTC()}
	}
	if err := win.Validate(); err != nil {
		return win, fmt.Errorf("%w: %w", ErrBadResult, err)
	}
	if !win.From.Equal(win.From.Truncate(time.Millisecond)) || !win.To.Equal(win.To.Truncate(time.Millisecond)) {
		return win, fmt.Errorf("%w: window %s is not in whole milliseconds (Elasticsearch dates are)", ErrBadResult, win)
	}
	for i := range rows {
		if rowGrain(rows[i].Grain) != rowGrain(meta.Grain) {
			return win, fmt.Errorf("%w: row %d has grain %q, the result's is %q", ErrBadResult, i, rows[i].Grain, rowGrain(meta.Grain))
		}
		if !rows[i].WindowStart.Equal(win.From) || !rows[i].WindowEnd.Equal(win.To) {
			return win, fmt.Errorf("%w: row %d has window [%s, %s), the result's is %s", ErrBadResult, i,
				fmtTime(rows[i].WindowStart), fmtTime(rows[i].WindowEnd), win)
		}
	}
	return win, nil
}

func newGeneration() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Report tells how indexing one result went.
type Report struct {
	Index      string           // the alias or concrete index written to
	Window     aggregate.Window // the result's window
	Job        string
	Generation string // stamped on every document of this call
	Rows       int    // rows in the result
	Indexed    int    // documents Elasticsearch accepted
	Rejected   int    // documents refused for their content, in the dead-letter store
	Retried    int    // document re-sends after 429, 5xx or network errors
	Stale      int    // documents of the window not in this result, deleted
	Count      int64  // documents of the window in the index after indexing
	// DeadLetters is the dead-letter object of this window and job
	// (store URI + "/" + key), "" when nothing was rejected.
	DeadLetters string
	Rejections  []Rejection
	Duration    time.Duration
}

// String is the one-line summary the CLI prints.
func (r Report) String() string {
	s := fmt.Sprintf("indexed=%d rejected=%d window=%s/%s index=%s job=%s stale_deleted=%d retried=%d duration=%s",
		r.Indexed, r.Rejected, fmtTime(r.Window.From), fmtTime(r.Window.To), r.Index, r.Job, r.Stale, r.Retried,
		r.Duration.Round(time.Millisecond))
	if r.DeadLetters != "" {
		s += " dead_letters=" + r.DeadLetters
	}
	return s
}
