// Sending documents through the shared bulk indexer, and sending again
// those that failed transiently.

package indexer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/elastic/go-elasticsearch/v8/esutil"
)

// outcome is the bulk result of one document.
type outcome struct {
	done   bool
	status int
	err    error // the whole request failed
	item   esutil.BulkIndexerResponseItem
}

// send indexes docs through the bulk indexer, sending again those that
// failed transiently, until all are indexed or rejected, or deadline.
func (w *Writer) send(ctx context.Context, docs []pending, deadline time.Time, job string, now time.Time) (indexed int, rejections []Rejection, retried int, err error) {
	m := w.ix.metrics.documents
	todo := make([]int, len(docs))
	for i := range todo {
		todo[i] = i
	}
	var lastErr error
	for round := 1; len(todo) > 0; round++ {
		if round > 1 {
			wait := backoff(round-1, 500*time.Millisecond, 20*time.Second)
			if time.Now().Add(wait).After(deadline) {
				m.WithLabelValues(outcomeFailed).Add(float64(len(todo)))
				return indexed, rejections, retried, fmt.Errorf("%w: %d of %d documents not indexed after %s: last error: %w",
					ErrRetriesExhausted, len(todo), len(docs), w.ix.cfg.RetryTimeout, lastErr)
			}
			w.ix.logger.Warn("re-sending documents", "index", w.index, "documents", len(todo), "round", round, "wait", wait, "err", lastErr)
			if err := sleep(ctx, wait); err != nil {
				return indexed, rejections, retried, err
			}
			retried += len(todo)
			m.WithLabelValues(outcomeRetried).Add(float64(len(todo)))
			w.ix.metrics.retries.WithLabelValues("document").Add(float64(len(todo)))
		}
		outs, err := w.submit(ctx, docs, todo)
		if err != nil {
			return indexed, rejections, retried, err
		}
		var next []int
		for k, i := range todo {
			o := outs[k]
			switch {
			case !o.done:
				next = append(next, i)
				lastErr = errors.New("no result for a document")
			case o.err != nil && retryable(o.err):
				next = append(next, i)
				lastErr = o.err
			case o.err != nil:
				m.WithLabelValues(outcomeFailed).Add(float64(len(todo) - k))
				return indexed, rejections, retried, fmt.Errorf("%w: %w", ErrRequestRefused, o.err)
			case o.status == 429 || o.status >= 500:
				next = append(next, i)
				lastErr = &StatusError{Status: o.status, Type: o.item.Error.Type, Reason: o.item.Error.Reason}
			case o.status == 400:
				it := o.item
				rejections = append(rejections, Rejection{
					ID: docs[i].id, Index: w.index, Job: job, Status: o.status,
					ErrorType: it.Error.Type, ErrorReason: it.Error.Reason,
					CauseType: it.Error.Cause.Type, CauseReason: it.Error.Cause.Reason,
					Document: json.RawMessage(docs[i].body), RejectedAt: now,
				})
				m.WithLabelValues(outcomeRejected).Inc()
				w.ix.logger.Warn("document rejected", "index", w.index, "id", docs[i].id,
					"error_type", it.Error.Type, "reason", truncate(it.Error.Reason, 300))
			case o.status >= 300 || o.item.Error.Type != "":
				m.WithLabelValues(outcomeFailed).Add(float64(len(todo) - k))
				return indexed, rejections, retried, fmt.Errorf("%w: document %s: status %d: %s: %s",
					ErrRequestRefused, docs[i].id, o.status, o.item.Error.Type, o.item.Error.Reason)
			default:
				indexed++
				m.WithLabelValues(outcomeIndexed).Inc()
			}
		}
		todo = next
	}
	return indexed, rejections, retried, nil
}

// submit adds the documents todo to the bulk indexer and flushes it, which
// returns once every one of them has its outcome.
func (w *Writer) submit(ctx context.Context, docs []pending, todo []int) ([]outcome, error) {
	outs := make([]outcome, len(todo))
	var mu sync.Mutex
	for k, i := range todo {
		err := w.ix.bulk.Add(ctx, esutil.BulkIndexerItem{
			Index:        w.index,
			Action:       "index",
			DocumentID:   docs[i].id,
			RequireAlias: w.viaAlias,
			Body:         bytes.NewReader(docs[i].body),
			OnSuccess: func(_ context.Context, _ esutil.BulkIndexerItem, res esutil.BulkIndexerResponseItem) {
				mu.Lock()
				outs[k] = outcome{done: true, status: res.Status, item: res}
				mu.Unlock()
			},
			OnFailure: func(_ context.Context, _ esutil.BulkIndexerItem, res esutil.BulkIndexerResponseItem, err error) {
				mu.Lock()
				outs[k] = outcome{done: true, status: res.Status, err: err, item: res}
				mu.Unlock()
			},
		})
		if err != nil {
			return nil, w.bulkErr(ctx, err)
		}
	}
	if err := w.ix.bulk.Flush(ctx); err != nil {
		return nil, w.bulkErr(ctx, err)
	}
	mu.Lock()
	defer mu.Unlock()
	return append([]outcome(nil), outs...), nil
}

func (w *Writer) bulkErr(ctx context.Context, err error) error {
	if errors.Is(err, esutil.ErrIndexerClosed) {
		return fmt.Errorf("%w: %w", ErrClosed, err)
	}
	if cause := context.Cause(ctx); cause != nil {
		return cause
	}
	return fmt.Errorf("indexer: bulk: %w", err)
}
