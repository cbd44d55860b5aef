package indexer

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/elastic/go-elasticsearch/v8"
	"github.com/elastic/go-elasticsearch/v8/esapi"
	"github.com/elastic/go-elasticsearch/v8/esutil"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dataco/clickstream/internal/aggregate"
	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/results"
)

// Sentinel errors. Errors of the package wrap one of them or a
// *StatusError, or are context errors.
var (
	// ErrClosed reports a call on a closed Indexer (or one that Close
	// interrupted).
	ErrClosed = errors.New("indexer: closed")
	// ErrRetriesExhausted reports documents or requests that still failed
	// with a 429, a 5xx or a network error when Config.RetryTimeout ran out.
	ErrRetriesExhausted = errors.New("indexer: retries exhausted")
	// ErrRequestRefused reports a bulk request or item that Elasticsearch
	// refused for a reason other than the document's content (401, 403, a
	// missing alias...): nothing was dead-lettered, the call failed.
	ErrRequestRefused = errors.New("indexer: request refused")
	// ErrRejected reports that some documents were rejected and written to
	// the dead-letter store (Run returns it; IndexResult reports the count
	// in its Report without failing).
	ErrRejected = errors.New("indexer: documents rejected")
	// ErrCountMismatch reports a window whose document count after
	// indexing is not its row count minus the rejected documents.
	ErrCountMismatch = errors.New("indexer: document count mismatch")
	// ErrBadResult reports a result that cannot be indexed as given (mixed
	// windows, duplicate rows, no dead-letter store).
	ErrBadResult = errors.New("indexer: bad result")
	// ErrAliasIsIndex reports a concrete index named like the alias.
	ErrAliasIsIndex = errors.New("indexer: a concrete index has the alias's name")
	// ErrIndexExists reports a rebuild into an index that already exists.
	ErrIndexExists = errors.New("indexer: index already exists")
)

// DeadLetterPrefix is the folder of rejected documents in a dead-letter
// store: DeadLetterPrefix + <window> + "/" + <job> + ".ndjson".
const DeadLetterPrefix = "_index_rejected/"

// bulkTimeout is how long a bulk request waits for unavailable primary
// shards (e.g. right after a restart) before failing its items with 503.
const bulkTimeout = 30 * time.Second

// Indexer writes committed results to Elasticsearch through one
// long-lived bulk indexer. It is safe for concurrent use; windows indexed
// concurrently must differ.
type Indexer struct {
	cfg     Config
	logger  *slog.Logger
	metrics *metrics
	client  *elasticsearch.Client
	bulk    esutil.BulkIndexer
	hooks   hooks

	setupMu   sync.Mutex
	setupDone bool

	// mu guards closed and cancels; calls counts IndexResult calls in
	// flight, which Close waits for before it closes the bulk indexer.
	mu      sync.Mutex
	closed  bool
	nextID  int
	cancels map[int]context.CancelCauseFunc
	calls   sync.WaitGroup
}

// hooks let tests act inside the indexer; all are optional.
type hooks struct {
	flushStart func()                              // at the start of every bulk flush (empty ones too)
	docBody    func(id string, body []byte) []byte // rewrites a document before it is sent
}

// New builds an Indexer from a valid cfg. It reads the credential and CA
// files but does not contact Elasticsearch: Setup (or the first
// IndexResult) does. logger may be nil (discard); reg may be nil (metrics
// not registered). Close releases it.
func New(cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Indexer, error) {
	return newIndexer(cfg, logger, reg, hooks{})
}

func newIndexer(cfg Config, logger *slog.Logger, reg prometheus.Registerer, h hooks) (*Indexer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	ix := &Indexer{cfg: cfg, logger: logger.With("component", "indexer"), metrics: m, hooks: h, cancels: map[int]context.CancelCauseFunc{}}
	ix.client, err = newClient(cfg, func() { m.retries.WithLabelValues("request").Inc() })
	if err != nil {
		return nil, err
	}
	ix.bulk, err = esutil.NewBulkIndexer(esutil.BulkIndexerConfig{
		Client:        statusTransport{ix.client},
		NumWorkers:    cfg.Workers,
		FlushBytes:    cfg.FlushBytes,
		FlushInterval: cfg.FlushInterval,
		FlushJitter:   cfg.FlushInterval / 10,
		Timeout:       bulkTimeout,
		FilterPath:    []string{"errors", "items.*._id", "items.*.status", "items.*.error"},
		OnError: func(_ context.Context, err error) {
			ix.logger.Warn("bulk request failed", "err", err)
		},
		OnFlushStart: func(ctx context.Context) context.Context {
			if ix.hooks.flushStart != nil {
				ix.hooks.flushStart()
			}
			return ctx
		},
	})
	if err != nil {
		return nil, fmt.Errorf("indexer: bulk indexer: %w", err)
	}
	return ix, nil
}

// Client returns the Elasticsearch client (for queries such as TopURLs).
func (ix *Indexer) Client() *elasticsearch.Client { return ix.client }

// Alias returns the alias the indexer writes through.
func (ix *Indexer) Alias() string { return ix.cfg.Alias }

// Close shuts the indexer down, in this order: it refuses new calls; it
// waits for the calls in flight until ctx is done, then interrupts them
// (they return ErrClosed); it closes the bulk indexer, which flushes what
// is queued and stops its workers (bounded by ctx); and it closes the
// client's connections. A second Close returns ErrClosed.
func (ix *Indexer) Close(ctx context.Context) error {
	ix.mu.Lock()
	if ix.closed {
		ix.mu.Unlock()
		return ErrClosed
	}
	ix.closed = true
	ix.mu.Unlock()

	done := make(chan struct{})
	go func() {
		ix.calls.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		ix.mu.Lock()
		for _, cancel := range ix.cancels {
			cancel(ErrClosed)
		}
		ix.mu.Unlock()
		<-done // interrupted calls return promptly: every wait of theirs watches their context
	}
	errBulk := ix.bulk.Close(ctx)
	if errBulk != nil {
		errBulk = fmt.Errorf("indexer: closing the bulk indexer: %w", errBulk)
	}
	errClient := ix.client.Close(ctx)
	if errClient != nil {
		errClient = fmt.Errorf("indexer: closing the client: %w", errClient)
	}
	return errors.Join(errBulk, errClient)
}

// begin registers a call in flight; end must be called when it returns.
func (ix *Indexer) begin(ctx context.Context) (_ context.Context, end func(), _ error) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if ix.closed {
		return nil, nil, ErrClosed
	}
	ctx, cancel := context.WithCancelCause(ctx)
	id := ix.nextID
	ix.nextID++
	ix.cancels[id] = cancel
	ix.calls.Add(1)
	return ctx, func() {
		ix.mu.Lock()
		delete(ix.cancels, id)
		ix.mu.Unlock()
		cancel(nil)
		ix.calls.Done()
	}, nil
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

// Rejection is a document Elasticsearch (or the encoder) refused, as
// written to the dead-letter store, one JSON object a line.
type Rejection struct {
	ID          string          `json:"id"`
	Index       string          `json:"index"`
	Job         string          `json:"job"`
	Status      int             `json:"status"` // HTTP status of the bulk item; 0: not sent (could not be encoded)
	ErrorType   string          `json:"error_type"`
	ErrorReason string          `json:"error_reason"`
	CauseType   string          `json:"caused_by_type,omitempty"`
	CauseReason string          `json:"caused_by_reason,omitempty"`
	Document    json.RawMessage `json:"document"`
	RejectedAt  time.Time       `json:"rejected_at"`
}

// document is what is indexed for one result row.
type document struct {
	WindowStart      time.Time `json:"window_start"`
	WindowEnd        time.Time `json:"window_end"`
	URL              string    `json:"url"`
	Country          string    `json:"country"`
	Clicks           int64     `json:"clicks"`
	UniqueUsers      int64     `json:"unique_users"`
	TotalTimeSpentS  float64   `json:"total_time_spent_s"`
	TimeSpentSamples int64     `json:"time_spent_samples"`
	AvgTimeSpentS    *float64  `json:"avg_time_spent_s"`
	Job              string    `json:"job"`
	Generation       string    `json:"generation"`
	IndexedAt        time.Time `json:"indexed_at"`
}

// DocID is the document id of a result row: the first 32 hex digits of
// the SHA-256 of its window (epoch milliseconds) and its URL and country
// (length-prefixed). Re-indexing a window replaces its documents.
func DocID(windowStart, windowEnd time.Time, url, country string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%d\n%d\n%d:%s%d:%s", windowStart.UnixMilli(), windowEnd.UnixMilli(), len(url), url, len(country), country)
	return hex.EncodeToString(h.Sum(nil))[:32]
}

// DeadLetterKey is the dead-letter object of a window and a job.
func DeadLetterKey(w aggregate.Window, job string) string {
	if job == "" {
		job = "unknown-job"
	}
	job = strings.NewReplacer("/", "_", "\\", "_", "\x00", "_").Replace(job)
	return DeadLetterPrefix + compactTime(w.From) + "_" + compactTime(w.To) + "/" + job + ".ndjson"
}

func compactTime(t time.Time) string { return t.UTC().Format("20060102T150405.999999999Z") }

func fmtTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// IndexResult indexes a committed result into the alias: see
// Writer.IndexResult.
func (ix *Indexer) IndexResult(ctx context.Context, rows []aggregate.ResultRow, meta results.Meta, deadLetters lake.Store) (Report, error) {
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
func (w *Writer) IndexResult(ctx context.Context, rows []aggregate.ResultRow, meta results.Meta, deadLetters lake.Store) (rep Report, err error) {
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
			if errors.Is(context.Cause(ctx), ErrClosed) {
				err = fmt.Errorf("%w (interrupted): %w", ErrClosed, err)
			}
			ix.logger.Error("indexing failed", "index", w.index, "job", meta.Job, "window", rep.Window, "err", err)
			return
		}
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
	rep.Stale, rep.Count, err = w.finish(ctx, rep.Window, rep.Generation, time.Now().Add(ix.cfg.RetryTimeout))
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
func resultWindow(rows []aggregate.ResultRow, meta results.Meta) (aggregate.Window, error) {
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

// pending is one encoded document.
type pending struct {
	id   string
	body []byte
}

// encode turns rows into documents. A row that cannot be encoded (a NaN
// or infinite number) is rejected here; duplicate rows fail the call.
func (w *Writer) encode(rows []aggregate.ResultRow, job, gen string, now time.Time) ([]pending, []Rejection, error) {
	docs := make([]pending, 0, len(rows))
	var rejections []Rejection
	seen := make(map[string]int, len(rows))
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for i := range rows {
		r := &rows[i]
		id := DocID(r.WindowStart, r.WindowEnd, r.URL, r.Country)
		if j, dup := seen[id]; dup {
			return nil, nil, fmt.Errorf("%w: rows %d and %d are both url %q country %q", ErrBadResult, j, i, truncate(r.URL, 200), r.Country)
		}
		seen[id] = i
		buf.Reset()
		err := enc.Encode(document{
			WindowStart: r.WindowStart.UTC(), WindowEnd: r.WindowEnd.UTC(), URL: r.URL, Country: r.Country,
			Clicks: r.Clicks, UniqueUsers: r.UniqueUsers, TotalTimeSpentS: r.TotalTimeSpentS,
			TimeSpentSamples: r.TimeSpentSamples, AvgTimeSpentS: r.AvgTimeSpentS,
			Job: job, Generation: gen, IndexedAt: now,
		})
		if err != nil {
			rejections = append(rejections, Rejection{
				ID: id, Index: w.index, Job: job, ErrorType: "client_encoding_error", ErrorReason: err.Error(),
				Document: rowForDeadLetter(r), RejectedAt: now,
			})
			w.ix.metrics.documents.WithLabelValues(outcomeRejected).Inc()
			continue
		}
		body := bytes.Clone(bytes.TrimRight(buf.Bytes(), "\n"))
		if w.ix.hooks.docBody != nil {
			body = w.ix.hooks.docBody(id, body)
		}
		docs = append(docs, pending{id: id, body: body})
	}
	return docs, rejections, nil
}

// rowForDeadLetter encodes a row that JSON cannot encode as is, with
// non-finite numbers as strings.
func rowForDeadLetter(r *aggregate.ResultRow) json.RawMessage {
	num := func(f float64) any {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return strconv.FormatFloat(f, 'g', -1, 64)
		}
		return f
	}
	var avg any
	if r.AvgTimeSpentS != nil {
		avg = num(*r.AvgTimeSpentS)
	}
	data, err := json.Marshal(map[string]any{
		"window_start": r.WindowStart.UTC(), "window_end": r.WindowEnd.UTC(), "url": r.URL, "country": r.Country,
		"clicks": r.Clicks, "unique_users": r.UniqueUsers, "total_time_spent_s": num(r.TotalTimeSpentS),
		"time_spent_samples": r.TimeSpentSamples, "avg_time_spent_s": avg,
	})
	if err != nil {
		return json.RawMessage(strconv.Quote(fmt.Sprintf("%+v", *r)))
	}
	return data
}

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

// writeDeadLetters replaces the dead-letter object of a window and job
// with rejections, or deletes it when there are none (a previous attempt's
// rejections no longer apply).
func writeDeadLetters(ctx context.Context, store lake.Store, key string, rejections []Rejection) error {
	if len(rejections) == 0 {
		if err := store.Delete(ctx, key); err != nil && !errors.Is(err, lake.ErrNotExist) {
			return fmt.Errorf("indexer: deleting stale dead letters %s: %w", key, err)
		}
		return nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for i := range rejections {
		if err := enc.Encode(&rejections[i]); err != nil {
			return fmt.Errorf("indexer: encoding dead letter %s: %w", rejections[i].ID, err)
		}
	}
	if err := store.Put(ctx, key, buf.Bytes()); err != nil {
		return fmt.Errorf("indexer: writing %d dead letters to %s in %s: %w", len(rejections), key, store.URI(), err)
	}
	return nil
}

// windowQuery matches the documents of a window.
func windowQuery(win aggregate.Window) map[string]any {
	return map[string]any{"bool": map[string]any{"filter": []any{
		map[string]any{"term": map[string]any{"window_start": fmtTime(win.From)}},
		map[string]any{"term": map[string]any{"window_end": fmtTime(win.To)}},
	}}}
}

// finish refreshes the target, deletes the window's documents of other
// generations and counts the window's documents.
func (w *Writer) finish(ctx context.Context, win aggregate.Window, gen string, deadline time.Time) (stale int, count int64, err error) {
	ix := w.ix
	if _, _, err := ix.callRetry(ctx, "refresh "+w.index, deadline, func() esapi.Request {
		return esapi.IndicesRefreshRequest{Index: []string{w.index}}
	}); err != nil {
		return 0, 0, err
	}
	stale, err = w.deleteStale(ctx, win, gen, deadline)
	if err != nil {
		return 0, 0, err
	}
	body, _, err := ix.callRetry(ctx, "count "+w.index, deadline, func() esapi.Request {
		return esapi.CountRequest{Index: []string{w.index}, Body: jsonBody(map[string]any{"query": windowQuery(win)})}
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
func (w *Writer) deleteStale(ctx context.Context, win aggregate.Window, gen string, deadline time.Time) (int, error) {
	ix := w.ix
	q := windowQuery(win)
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

// Rebuild creates the concrete index newIndex (which must be named
// "<alias>-<suffix>"), lets fill index into it through the Writer it is
// given (typically every committed result, one IndexResult each), and, if
// fill succeeds, points the alias at newIndex alone with SwapAlias. It
// returns the indices the alias pointed at before, which it keeps. If fill
// fails, the alias is unchanged and newIndex is left for inspection.
//
// Results indexed through the alias while a rebuild runs go to the old
// index: pause indexing, or index them again after the swap.
func (ix *Indexer) Rebuild(ctx context.Context, newIndex string, fill func(ctx context.Context, w *Writer) error) ([]string, error) {
	if err := checkIndexName(newIndex); err != nil {
		return nil, fmt.Errorf("indexer: rebuild into %q: %w", newIndex, err)
	}
	if !strings.HasPrefix(newIndex, ix.cfg.Alias+"-") {
		return nil, fmt.Errorf("indexer: rebuild into %q: the name must start with %q", newIndex, ix.cfg.Alias+"-")
	}
	if err := ix.Setup(ctx); err != nil {
		return nil, err
	}
	if err := ix.createIndex(ctx, newIndex, time.Now().Add(ix.cfg.RetryTimeout), false); err != nil {
		return nil, err
	}
	ix.logger.Info("rebuild: index created", "index", newIndex, "alias", ix.cfg.Alias)
	if err := fill(ctx, &Writer{ix: ix, index: newIndex}); err != nil {
		return nil, fmt.Errorf("indexer: rebuild into %s (alias %s unchanged): %w", newIndex, ix.cfg.Alias, err)
	}
	return ix.SwapAlias(ctx, newIndex)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
