package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/dataco/clickstream/coordinator"
	"github.com/dataco/clickstream/indexer"
	"github.com/dataco/clickstream/internal/aggregate/aggtest"
	"github.com/dataco/clickstream/internal/audit"
	"github.com/dataco/clickstream/internal/gen"
	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/results"
	"github.com/dataco/clickstream/internal/schema"
	pb "github.com/dataco/clickstream/proto/clickstream/v1"
)

// Outcome is what one run found.
type Outcome struct {
	Class      string
	Run        string
	Seed       uint64
	Dir        string // logs and data
	Injections int
	Duration   time.Duration
	// Identical: every window's committed result is byte for byte the
	// fault-free run's (for the fault-free run: matches the reference),
	// and Elasticsearch holds exactly its rows.
	Identical bool
	// Lost and Duplicated count clicks: missing from or extra in the lake,
	// a committed result (against the reference) or Elasticsearch
	// (against the committed result).
	Lost, Duplicated int64
	// StatusMismatches counts jobs whose reported state disagrees with
	// what is committed in their output store.
	StatusMismatches int
	// Unfinished counts jobs not ended when the run gave up on them.
	Unfinished int
	// AuditDiffs counts windows whose end-to-end audit (package audit:
	// source positions, lake files, job, result, Elasticsearch) found a
	// hop that differs.
	AuditDiffs int
	Notes      []string
	Err        error

	results map[Window][]byte // committed result bytes by window
}

// Summary is a one-line account of the outcome.
func (o *Outcome) Summary() string {
	s := fmt.Sprintf("%s seed=%d injections=%d time=%v identical=%v lost=%d duplicated=%d status-mismatches=%d unfinished=%d audit-diffs=%d",
		o.Run, o.Seed, o.Injections, o.Duration.Round(100*time.Millisecond), o.Identical, o.Lost, o.Duplicated, o.StatusMismatches, o.Unfinished, o.AuditDiffs)
	if o.Err != nil {
		s += " error=" + o.Err.Error()
	}
	if len(o.Notes) > 0 {
		s += " notes=[" + strings.Join(o.Notes, "; ") + "]"
	}
	return s
}

// OK reports whether the run found no fault of the platform.
func (o *Outcome) OK() bool {
	return o.Err == nil && o.Identical && o.Lost == 0 && o.Duplicated == 0 && o.StatusMismatches == 0 && o.Unfinished == 0 && o.AuditDiffs == 0
}

func (o *Outcome) notef(format string, args ...any) {
	o.Notes = append(o.Notes, fmt.Sprintf(format, args...))
}

// verify compares the run's lake, results, job states and documents with
// the input, the reference, and the fault-free run.
func (h *Harness) verify(ctx context.Context, r *Run, o *Outcome) {
	o.Identical = true
	// The lake: every valid message exactly once.
	lf, err := h.lakeState(ctx, r)
	switch {
	case err != nil:
		o.notef("lake: %v", err)
		o.Identical = false
	default:
		want := int64(len(h.input.Valid))
		if lf.valid < want {
			o.Lost += want - lf.valid
			o.notef("lake: %d valid events of %d", lf.valid, want)
		} else if lf.valid > want {
			o.Duplicated += lf.valid - want
			o.notef("lake: %d valid events of %d", lf.valid, want)
		}
		if lf.overlaps > 0 {
			o.notef("lake: %d manifests overlap an earlier one of their source", lf.overlaps)
		}
	}
	cl, err := r.Client()
	if err != nil {
		o.Err = errors.Join(o.Err, err)
		return
	}
	defer cl.Close()
	docs, esErr := esDocs(ctx, h.cfg.ESURL, r.Alias)
	if esErr != nil {
		o.notef("elasticsearch: %v", esErr)
		o.Identical = false
	}
	jobs := r.JobList()
	for _, w := range h.input.Windows {
		out := r.OutURI(w)
		rows, meta, data, rerr := h.readResult(ctx, r, out)
		if rerr != nil && !errors.Is(rerr, results.ErrNoResult) {
			o.notef("%s: result: %v", w, rerr)
		}
		// Against the fault-free run.
		if h.baseline != nil {
			if !bytes.Equal(data, h.baseline.results[w]) {
				o.Identical = false
				o.notef("%s: result differs from the fault-free run's (%d bytes, want %d)", w, len(data), len(h.baseline.results[w]))
			}
		}
		if o.results == nil {
			o.results = map[Window][]byte{}
		}
		o.results[w] = data
		// Against the reference.
		lost, dup, diff := compareReference(rows, h.input, w)
		o.Lost += lost
		o.Duplicated += dup
		if diff != "" {
			o.Identical = false
			o.notef("%s: against the reference: %s", w, diff)
		}
		// Elasticsearch against the committed result.
		if esErr == nil {
			l, d, diff := compareDocs(rows, docs[w.From.UTC()])
			o.Lost += l
			o.Duplicated += d
			if diff != "" {
				o.Identical = false
				o.notef("%s: elasticsearch: %s", w, diff)
			}
		}
		// Reported states against the committed result.
		var mine []*Job
		for _, j := range jobs {
			if j.Out == out {
				mine = append(mine, j)
			}
		}
		mm, unfinished := h.checkStates(ctx, cl, w, mine, meta, rerr == nil, o)
		o.StatusMismatches += mm
		o.Unfinished += unfinished
		// The end-to-end audit of the window, as an operator runs it.
		if rerr == nil {
			h.audit(ctx, r, w, o)
		}
	}
}

// audit runs the audit of window w on the run's lake, its committed
// result and its Elasticsearch alias; a hop that differs is counted and
// noted with the audit's message.
func (h *Harness) audit(ctx context.Context, r *Run, w Window, o *Outcome) {
	lakeStore, err := r.directStore(ctx, r.Lake)
	if err != nil {
		o.notef("%s: audit: %v", w, err)
		o.AuditDiffs++
		return
	}
	out, err := r.directStore(ctx, r.OutURI(w))
	if err != nil {
		o.notef("%s: audit: %v", w, err)
		o.AuditDiffs++
		return
	}
	rep, err := audit.Run(ctx, audit.Config{From: w.From, To: w.To, Lake: lakeStore, Results: []lake.Store{out},
		Index: esTotals{url: h.cfg.ESURL, alias: r.Alias}})
	if err == nil {
		err = rep.Err()
	}
	if err != nil {
		o.notef("%s: audit: %v", w, err)
		o.AuditDiffs++
	}
}

// esTotals is the audit's Elasticsearch hop (indexer.TotalsQuery) over
// HTTP.
type esTotals struct{ url, alias string }

func (e esTotals) Totals(ctx context.Context, from, to time.Time) (docs, clicks int64, err error) {
	body, err := esRequest(ctx, http.MethodPost, e.url+"/"+e.alias+"/_search", indexer.TotalsQuery(from, to))
	if err != nil {
		return 0, 0, err
	}
	t, err := indexer.ParseTotals(body)
	if err != nil {
		return 0, 0, fmt.Errorf("chaos: totals of %s: %w", e.alias, err)
	}
	return t.Documents, t.Events(), nil
}

// readResult reads a committed result directly from the harness's
// versitygw: its rows, _SUCCESS, and its rows' metrics (Row.Metrics) as
// NDJSON, which a fault-free run's must equal byte for byte.
func (h *Harness) readResult(ctx context.Context, r *Run, out string) ([]schema.Row, results.Meta, []byte, error) {
	st, err := r.directStore(ctx, out)
	if err != nil {
		return nil, results.Meta{}, nil, err
	}
	rows, meta, err := results.ReadResult(ctx, st)
	if err != nil {
		return nil, meta, nil, err
	}
	// What runs over the same input must agree on: the rows without their
	// provenance (a revision, when it was computed), in one encoding.
	metrics := make([]schema.Row, len(rows))
	for i := range rows {
		metrics[i] = rows[i].Metrics()
	}
	var data bytes.Buffer
	if err := schema.WriteNDJSON(&data, metrics); err != nil {
		return nil, meta, nil, err
	}
	return rows, meta, data.Bytes(), nil
}

// compareReference counts the clicks (bot clicks included) a result lacks
// and has too many against the reference computation of window w, and
// describes other differences.
func compareReference(rows []schema.Row, in *Input, w Window) (lost, dup int64, diff string) {
	ref := aggtest.Reference(in.Valid, w.From, w.To, gen.SessionTimeout)
	seen := map[aggtest.Key]bool{}
	var diffs []string
	for _, row := range rows {
		k := aggtest.Key{URL: row.URL, Country: row.Country}
		want, ok := ref[k]
		got := row.Clicks + row.BotClicks
		switch {
		case seen[k]:
			dup += got
			diffs = append(diffs, fmt.Sprintf("row %q/%q twice", k.URL, k.Country))
		case !ok:
			dup += got
			diffs = append(diffs, fmt.Sprintf("row %q/%q not in the reference", k.URL, k.Country))
		default:
			if w := want.Clicks + want.BotClicks; got < w {
				lost += w - got
			} else {
				dup += got - w
			}
			if d := want.Diff(row, w.From, w.To); d != "" {
				diffs = append(diffs, fmt.Sprintf("%q/%q: %s", k.URL, k.Country, d))
			}
		}
		seen[k] = true
	}
	for k, want := range ref {
		if !seen[k] {
			lost += want.Clicks + want.BotClicks
		}
	}
	if missing := len(ref) - len(seen); missing > 0 {
		diffs = append(diffs, fmt.Sprintf("%d of %d reference rows missing", missing, len(ref)))
	}
	if len(diffs) > 3 {
		diffs = append(diffs[:3], fmt.Sprintf("and %d more", len(diffs)-3))
	}
	return lost, dup, strings.Join(diffs, "; ")
}

// checkStates compares the reported states of the jobs writing one output
// store with what it holds. A succeeded job must be named by _SUCCESS
// unless a later job replaced its result (then that one must have
// succeeded too); a job named by _SUCCESS must be reported succeeded; a
// failed or cancelled job must not be named.
func (h *Harness) checkStates(ctx context.Context, cl *coordinator.Client, w Window, jobs []*Job, meta results.Meta, committed bool, o *Outcome) (mismatches, unfinished int) {
	states := map[string]*pb.Job{}
	for _, j := range jobs {
		var st *pb.Job
		var err error
		for range 30 {
			if st, err = cl.Get(ctx, j.ID); err == nil {
				break
			}
			if !sleepCtx(ctx, time.Second) {
				break
			}
		}
		if err != nil {
			o.notef("%s: job %s: no status: %v", w, j.ID, err)
			mismatches++
			continue
		}
		states[j.ID] = st
	}
	succeeded := 0
	for id, st := range states {
		switch st.GetState() {
		case pb.JobState_JOB_STATE_SUCCEEDED:
			succeeded++
		case pb.JobState_JOB_STATE_FAILED, pb.JobState_JOB_STATE_CANCELLED:
			if committed && meta.Job == id {
				mismatches++
				o.notef("%s: job %s reported %s but _SUCCESS names it", w, id, coordinator.StateName(st.GetState()))
			}
		default:
			unfinished++
			o.notef("%s: job %s still %s", w, id, coordinator.StateName(st.GetState()))
		}
	}
	if committed {
		st, ok := states[meta.Job]
		switch {
		case !ok:
			mismatches++
			o.notef("%s: _SUCCESS names job %s, which was not submitted to this store", w, meta.Job)
		case st.GetState() != pb.JobState_JOB_STATE_SUCCEEDED && coordinator.Terminal(st.GetState()):
			// counted above
		case st.GetState() != pb.JobState_JOB_STATE_SUCCEEDED:
			mismatches++
			o.notef("%s: _SUCCESS names job %s, reported %s", w, meta.Job, coordinator.StateName(st.GetState()))
		}
	} else if succeeded > 0 {
		mismatches += succeeded
		o.notef("%s: %d job(s) reported succeeded, no _SUCCESS", w, succeeded)
	}
	if len(jobs) == 1 && committed {
		if st := states[jobs[0].ID]; st != nil && st.GetState() == pb.JobState_JOB_STATE_SUCCEEDED && meta.Job != jobs[0].ID {
			mismatches++
			o.notef("%s: job %s reported succeeded, _SUCCESS names %s", w, jobs[0].ID, meta.Job)
		}
	}
	if len(jobs) == 0 {
		o.notef("%s: no job submitted", w)
		unfinished++
	}
	return mismatches, unfinished
}

// esDocs reads the result fields of every document of an alias, by
// window start.
func esDocs(ctx context.Context, url, alias string) (map[time.Time][]schema.Row, error) {
	if _, err := esRequest(ctx, http.MethodPost, url+"/"+alias+"/_refresh", nil); err != nil {
		return nil, err
	}
	body, err := esRequest(ctx, http.MethodPost, url+"/"+alias+"/_search", []byte(`{"size":10000,"query":{"match_all":{}}}`))
	if err != nil {
		return nil, err
	}
	var resp struct {
		Hits struct {
			Hits []struct {
				Source schema.Row `json:"_source"`
			} `json:"hits"`
		} `json:"hits"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return nil, fmt.Errorf("chaos: search %s: %w", alias, err)
	}
	out := map[time.Time][]schema.Row{}
	for _, h := range resp.Hits.Hits {
		out[h.Source.WindowStart.UTC()] = append(out[h.Source.WindowStart.UTC()], h.Source)
	}
	return out, nil
}

func esRequest(ctx context.Context, method, url string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("chaos: %s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("chaos: %s %s: %w", method, url, err)
	}
	if resp.StatusCode/100 != 2 {
		return b, fmt.Errorf("chaos: %s %s: status %d: %.300s", method, url, resp.StatusCode, b)
	}
	return b, nil
}

// esDelete deletes the indices matching pattern.
func esDelete(ctx context.Context, url, pattern string) error {
	_, err := esRequest(ctx, http.MethodDelete, url+"/"+pattern+"?ignore_unavailable=true&allow_no_indices=true", nil)
	return err
}

// compareDocs counts the clicks (bot clicks included) of a committed
// result missing from, and extra in, the documents of its window.
func compareDocs(rows []schema.Row, docs []schema.Row) (lost, dup int64, diff string) {
	type key struct{ url, country string }
	byKey := map[key]schema.Row{}
	var diffs []string
	events := func(r schema.Row) int64 { return r.Clicks + r.BotClicks }
	for _, d := range docs {
		k := key{d.URL, d.Country}
		if _, twice := byKey[k]; twice {
			dup += events(d)
			diffs = append(diffs, fmt.Sprintf("document %q/%q twice", d.URL, d.Country))
		}
		byKey[k] = d
	}
	for _, r := range rows {
		k := key{r.URL, r.Country}
		d, ok := byKey[k]
		if !ok {
			lost += events(r)
			continue
		}
		delete(byKey, k)
		if events(d) < events(r) {
			lost += events(r) - events(d)
		} else {
			dup += events(d) - events(r)
		}
		if d.Clicks != r.Clicks || d.BotClicks != r.BotClicks || d.UniqueUsers != r.UniqueUsers || d.TimeSpentSamples != r.TimeSpentSamples || !aggtest.Close(d.TotalTimeSpentS, r.TotalTimeSpentS) {
			diffs = append(diffs, fmt.Sprintf("document %q/%q differs from its row", r.URL, r.Country))
		}
	}
	for _, d := range byKey {
		dup += events(d)
		diffs = append(diffs, fmt.Sprintf("document %q/%q has no row", d.URL, d.Country))
	}
	if len(rows) != len(docs) {
		diffs = append(diffs, fmt.Sprintf("%d documents for %d rows", len(docs), len(rows)))
	}
	if len(diffs) > 3 {
		diffs = append(diffs[:3], fmt.Sprintf("and %d more", len(diffs)-3))
	}
	return lost, dup, strings.Join(diffs, "; ")
}
