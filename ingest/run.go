package ingest

import (
	"context"
	"fmt"
	"runtime"
	"time"

	"github.com/dataco/clickstream/internal/event"
	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/obs"
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

// Run ingests from the configured source into the lake (see Ingest) and
// prints the summary line "ingest: accepted=... rejected=..." to rt.Stdout,
// also when it fails.
func Run(ctx context.Context, cfg Config, rt obs.Runtime) error {
	sum, err := Ingest(ctx, cfg, rt)
	fmt.Fprintf(rt.Out(), "ingest: %s\n", sum)
	return err
}

// Ingest ingests from the configured source into the lake until the source
// ends (a file), ctx is cancelled, or the source has been idle for
// cfg.ExitWhenIdle. On cancellation it stops consuming, commits what it
// holds, and returns the summary with a nil error (Kafka) — a drain.
// Metrics are served on cfg.MetricsListen when set.
func Ingest(ctx context.Context, cfg Config, rt obs.Runtime) (Summary, error) {
	if err := cfg.Validate(); err != nil {
		return Summary{}, err
	}
	log := rt.Log()
	reg := rt.Reg()
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
		srv, err := obs.Start(cfg.MetricsListen, cfg.Pprof, obs.Gatherer(reg), log)
		if err != nil {
			return Summary{}, fmt.Errorf("ingest: %w", err)
		}
		defer srv.Close() // after the last commit: its metrics stay visible until then
		srv.AddCheck("ingest", s.ready)
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
