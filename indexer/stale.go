// The finishing steps of IndexResult: refresh, delete the documents of
// the window that are no longer in the result, count the rest.

package indexer

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/elastic/go-elasticsearch/v8/esapi"
	"github.com/elastic/go-elasticsearch/v8/esutil"

	"github.com/dataco/clickstream/internal/aggregate"
	"github.com/dataco/clickstream/internal/schema"
)

// windowQuery matches the documents of a window of a grain ("" is
// schema.GrainWindow): a day's roll-up and a one-day window job are
// different documents.
func windowQuery(win aggregate.Window, grain string) map[string]any {
	return map[string]any{"bool": map[string]any{"filter": []any{
		map[string]any{"term": map[string]any{"window_start": fmtTime(win.From)}},
		map[string]any{"term": map[string]any{"window_end": fmtTime(win.To)}},
		grainQuery(grain),
	}}}
}

// grainQuery matches the documents of a grain ("" is
// schema.GrainWindow). Window documents indexed before rows had a grain
// have none, and count as window documents.
func grainQuery(grain string) map[string]any {
	if grain = rowGrain(grain); grain != schema.GrainWindow {
		return map[string]any{"term": map[string]any{"grain": grain}}
	}
	return map[string]any{"bool": map[string]any{"minimum_should_match": 1, "should": []any{
		map[string]any{"term": map[string]any{"grain": grain}},
		map[string]any{"bool": map[string]any{"must_not": []any{map[string]any{"exists": map[string]any{"field": "grain"}}}}},
	}}}
}

// rowGrain is the grain of a row or result: "" is schema.GrainWindow.
func rowGrain(g string) string {
	if g == "" {
		return schema.GrainWindow
	}
	return g
}

// finish refreshes the target, deletes the window's documents of other
// generations and counts the window's documents.
func (w *Writer) finish(ctx context.Context, win aggregate.Window, grain, gen string, deadline time.Time) (stale int, count int64, err error) {
	ix := w.ix
	if _, _, err := ix.callRetry(ctx, "refresh "+w.index, deadline, func() esapi.Request {
		return esapi.IndicesRefreshRequest{Index: []string{w.index}}
	}); err != nil {
		return 0, 0, err
	}
	stale, err = w.deleteStale(ctx, win, grain, gen, deadline)
	if err != nil {
		return 0, 0, err
	}
	body, _, err := ix.callRetry(ctx, "count "+w.index, deadline, func() esapi.Request {
		return esapi.CountRequest{Index: []string{w.index}, Body: jsonBody(map[string]any{"query": windowQuery(win, grain)})}
	})
	if err != nil {
		return stale, 0, err
	}
	var resp struct {
		Count int64 `json:"count"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return stale, 0, fmt.Errorf("indexer: count: decoding the response: %w", err)
	}
	return stale, resp.Count, nil
}

// staleBatch is the page size of deleteStale.
const staleBatch = 1000

// deleteStale deletes the documents of win whose generation is not gen:
// it searches them (after a refresh) and deletes each by id with a bulk
// request, conditional on the sequence number it saw, until none is left.
// It does not use _delete_by_query, which lives in the reindex module
// that minimal distributions (the integ-test zip of the dev stack) lack.
// It is safe to run again: it only deletes documents the current result
// does not have, and never a document changed since it was found.
func (w *Writer) deleteStale(ctx context.Context, win aggregate.Window, grain, gen string, deadline time.Time) (int, error) {
	ix := w.ix
	q := windowQuery(win, grain)
	q["bool"].(map[string]any)["must_not"] = []any{map[string]any{"term": map[string]any{"generation": gen}}}
	search := map[string]any{"size": staleBatch, "_source": false, "seq_no_primary_term": true, "query": q}
	deleted := 0
	for {
		body, _, err := ix.callRetry(ctx, "search stale documents in "+w.index, deadline, func() esapi.Request {
			return esapi.SearchRequest{Index: []string{w.index}, Body: jsonBody(search)}
		})
		if err != nil {
			return deleted, err
		}
		var found struct {
			Hits struct {
				Hits []struct {
					Index       string `json:"_index"`
					ID          string `json:"_id"`
					SeqNo       int64  `json:"_seq_no"`
					PrimaryTerm int64  `json:"_primary_term"`
				} `json:"hits"`
			} `json:"hits"`
		}
		if err := json.Unmarshal(body, &found); err != nil {
			return deleted, fmt.Errorf("indexer: search stale documents: decoding the response: %w", err)
		}
		hits := found.Hits.Hits
		if len(hits) == 0 {
			break
		}
		var bulk bytes.Buffer
		for _, h := range hits {
			line, _ := json.Marshal(map[string]any{"delete": map[string]any{
				"_index": h.Index, "_id": h.ID, "if_seq_no": h.SeqNo, "if_primary_term": h.PrimaryTerm,
			}})
			bulk.Write(line)
			bulk.WriteByte('\n')
		}
		data := bulk.Bytes()
		body, _, err = ix.callRetry(ctx, "delete stale documents in "+w.index, deadline, func() esapi.Request {
			return esapi.BulkRequest{Body: bytes.NewReader(data), Refresh: "true", FilterPath: []string{"items.*.status", "items.*.error"}}
		})
		if err != nil {
			return deleted, err
		}
		var resp struct {
			Items []map[string]esutil.BulkIndexerResponseItem `json:"items"`
		}
		if err := json.Unmarshal(body, &resp); err != nil {
			return deleted, fmt.Errorf("indexer: delete stale documents: decoding the response: %w", err)
		}
		again := false
		for _, item := range resp.Items {
			for _, r := range item {
				switch {
				case r.Status == 200:
					deleted++
				case r.Status == 404 || r.Status == 409:
					// Gone already, or changed since found (the next search
					// decides whether it is still stale).
					again = again || r.Status == 409
				case r.Status == 429 || r.Status >= 500:
					again = true
				default:
					return deleted, fmt.Errorf("indexer: delete stale documents in %s: status %d: %s: %s", w.index, r.Status, r.Error.Type, r.Error.Reason)
				}
			}
		}
		if len(hits) < staleBatch && !again {
			break
		}
		if again {
			if time.Now().After(deadline) {
				return deleted, fmt.Errorf("indexer: delete stale documents in %s: %w", w.index, ErrRetriesExhausted)
			}
			if err := sleep(ctx, backoff(1, 500*time.Millisecond, time.Second)); err != nil {
				return deleted, err
			}
		}
	}
	ix.metrics.stale.Add(float64(deleted))
	return deleted, nil
}
