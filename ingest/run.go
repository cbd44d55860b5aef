package ingest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/dataco/clickstream/internal/event"
	"github.com/dataco/clickstream/internal/icetable"
	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/obs"
)

// Summary is what an ingest run committed.
type Summary struct {
	Source   string // file sources only
	Consumed int64  // records read in this run
	Accepted int64  // valid events committed in this run
	Bots     int64  // of Accepted, the events of bot user agents (is_bot)
	Rejected int64  // invalid records committed to the dead-letter area in this run
	// AlreadyCommitted is, for a file source, how many lines an earlier run
	// had committed (and this run skipped).
	AlreadyCommitted int64
	// RejectedBy counts Rejected by reason.
	RejectedBy map[string]int64
	// DeadLetters is the store folder the rejected records went to, if any.
	DeadLetters string
	// FirstEvent and LastEvent bound the times of the accepted events (zero
	// when none was accepted).
	FirstEvent, LastEvent time.Time
}

func (s Summary) String() string {
	out := fmt.Sprintf("accepted=%d rejected=%d consumed=%d", s.Accepted, s.Rejected, s.Consumed)
	if s.Bots > 0 {
		out += fmt.Sprintf(" bots=%d", s.Bots)
	}
	if s.Source != "" {
		out += fmt.Sprintf(" source=%s", s.Source)
	}
	if s.AlreadyCommitted > 0 {
		out += fmt.Sprintf(" skipped_already_committed=%d", s.AlreadyCommitted)
	}
	if len(s.RejectedBy) > 0 {
		reasons := make([]string, 0, len(s.RejectedBy))
		for _, r := range slices.Sorted(maps.Keys(s.RejectedBy)) {
			reasons = append(reasons, fmt.Sprintf("%s:%d", r, s.RejectedBy[r]))
		}
		out += " rejected_by=" + strings.Join(reasons, ",")
	}
	if s.DeadLetters != "" {
		out += " dead_letters=" + s.DeadLetters
	}
	if !s.FirstEvent.IsZero() {
		from, to := s.Window()
		out += fmt.Sprintf(" event_time=%s..%s window=--from=%s,--to=%s",
			s.FirstEvent.Format(event.TimestampLayout), s.LastEvent.Format(event.TimestampLayout),
			from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	return out
}

// Window returns the whole hours that hold the accepted events: the
// --from and --to (exclusive) of a job over all of them.
func (s Summary) Window() (from, to time.Time) {
	return s.FirstEvent.Truncate(time.Hour), s.LastEvent.Truncate(time.Hour).Add(time.Hour)
}

// addCommit counts one commit into the summary; dir is the lake's URI
// (a file source's dead letters are named by their folder).
func (s *Summary) addCommit(res flushResult, dir string) {
	s.Accepted += res.valid
	s.Bots += res.bots
	s.Rejected += res.rejected
	for reason, n := range res.reasons {
		if s.RejectedBy == nil {
			s.RejectedBy = map[string]int64{}
		}
		s.RejectedBy[string(reason)] += n
	}
	if res.rejectedKey != "" {
		s.DeadLetters = strings.TrimSuffix(dir, "/") + "/" + path.Dir(res.rejectedKey) + "/"
	}
	if res.valid > 0 {
		first, last := time.UnixMilli(res.minTs).UTC(), time.UnixMilli(res.maxTs).UTC()
		if s.FirstEvent.IsZero() || first.Before(s.FirstEvent) {
			s.FirstEvent = first
		}
		if last.After(s.LastEvent) {
			s.LastEvent = last
		}
	}
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
	// The input first: a missing or unreadable file creates no lake.
	var in *fileInput
	if cfg.Input != nil {
		in = &fileInput{name: cfg.FromFile, r: cfg.Input, size: -1}
	} else if cfg.FromFile != "" {
		var err error
		if in, err = openInput(cfg.FromFile); err != nil {
			return Summary{}, err
		}
		defer in.Close()
		if cfg.Progress != nil {
			cfg.Progress.SetSize(in.size)
		}
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
	classifier, err := cfg.botClassifier()
	if err != nil {
		return Summary{}, err
	}
	s := &sink{
		bots:    classifier,
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
	pub, cat, err := startPublisher(ctx, &cfg, store, meta.Buckets, s.metrics, log)
	if err != nil {
		return Summary{}, err
	}
	s.table = pub
	log.Info("ingest starting", "lake", store.URI(), "buckets", meta.Buckets, "format", cfg.Format, "writer", s.writer)
	start := time.Now()
	var sum Summary
	if in != nil {
		sum, err = runFile(ctx, &cfg, s, in)
	} else {
		sum, err = runKafka(ctx, &cfg, s)
	}
	if pub != nil {
		// Every commit of this run into the table before returning; on a
		// drain ctx is done, and the last publication still gets its time.
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.CommitTimeout)
		if perr := pub.Close(pctx); perr != nil {
			err = errors.Join(err, fmt.Errorf("ingest: committed to the lake, but its Iceberg table lags (the next ingest or `clickstream publish` catches up): %w", perr))
		}
		cancel()
		icetable.Close(cat)
	}
	log.Info("ingest finished", "accepted", sum.Accepted, "rejected", sum.Rejected, "took", time.Since(start), "err", err)
	return sum, err
}
