package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/dataco/clickstream/internal/event"
	"github.com/dataco/clickstream/internal/lake"
)

// Summary is what an ingest run committed.
type Summary struct {
	Source   string // file sources only
	Consumed int64  // records read in this run
	Accepted int64  // valid events committed in this run
	Rejected int64  // invalid records committed to the dead-letter area in this run
	// AlreadyCommitted is, for a file source, how many lines an earlier run
	// had committed (and this run skipped).
	AlreadyCommitted int64
}

func (s Summary) String() string {
	out := fmt.Sprintf("accepted=%d rejected=%d consumed=%d", s.Accepted, s.Rejected, s.Consumed)
	if s.Source != "" {
		out += fmt.Sprintf(" source=%s", s.Source)
	}
	if s.AlreadyCommitted > 0 {
		out += fmt.Sprintf(" skipped_already_committed=%d", s.AlreadyCommitted)
	}
	return out
}

// Options carries a Run's process-level dependencies.
type Options struct {
	Logger   *slog.Logger          // nil: discard
	Registry prometheus.Registerer // nil: a private registry
}

// Run ingests from the configured source into the lake until the source
// ends (a file), ctx is cancelled, or the source has been idle for
// cfg.ExitWhenIdle. On cancellation it stops consuming, commits what it
// holds, and returns the summary with a nil error (Kafka) — a drain.
func Run(ctx context.Context, cfg Config, opts Options) (Summary, error) {
	if err := cfg.Validate(); err != nil {
		return Summary{}, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	reg := opts.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	store, err := lake.Open(ctx, cfg.Lake, cfg.S3)
	if err != nil {
		return Summary{}, fmt.Errorf("ingest: open lake: %w", err)
	}
	meta, err := lake.EnsureMeta(ctx, store, cfg.Buckets)
	if err != nil {
		return Summary{}, fmt.Errorf("ingest: %w", err)
	}
	crash, err := failpointFromEnv()
	if err != nil {
		return Summary{}, err
	}
	s := &sink{
		crash:   crash,
		store:   store,
		buckets: meta.Buckets,
		format:  cfg.Format,
		writer:  randomHex(6),
		parser:  event.Parser{MaxSize: cfg.MaxRecordSize},
		uploads: cfg.Uploads,
		timeout: cfg.CommitTimeout,
		cpu:     make(chan struct{}, runtime.GOMAXPROCS(0)),
		metrics: newMetrics(reg),
		log:     log,
	}
	if cfg.MetricsListen != "" {
		g, ok := reg.(prometheus.Gatherer)
		if !ok {
			g = prometheus.DefaultGatherer
		}
		stop, err := serveMetrics(cfg.MetricsListen, g, log)
		if err != nil {
			return Summary{}, err
		}
		defer stop()
	}
	log.Info("ingest starting", "lake", store.URI(), "buckets", meta.Buckets, "format", cfg.Format, "writer", s.writer)
	start := time.Now()
	var sum Summary
	if cfg.FromFile != "" {
		sum, err = runFile(ctx, &cfg, s)
	} else {
		sum, err = runKafka(ctx, &cfg, s)
	}
	log.Info("ingest finished", "accepted", sum.Accepted, "rejected", sum.Rejected, "took", time.Since(start), "err", err)
	return sum, err
}

// serveMetrics serves /metrics until the returned stop is called.
func serveMetrics(addr string, g prometheus.Gatherer, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("ingest: metrics listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() { // owned by stop
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server", "err", err)
		}
	}()
	log.Info("serving metrics", "addr", ln.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	}, nil
}
