package indexer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/elastic/go-elasticsearch/v8"
	"github.com/elastic/go-elasticsearch/v8/esutil"
	"github.com/prometheus/client_golang/prometheus"
)

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

func fmtTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
