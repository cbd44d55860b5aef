package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/results"
	"github.com/dataco/clickstream/internal/rollup"
	"github.com/dataco/clickstream/internal/schema"
	pb "github.com/dataco/clickstream/proto/clickstream/v1"
)

// Defaults of periodic processing.
const (
	DefaultScheduleWindow   = time.Hour
	DefaultAllowedLateness  = 5 * time.Minute
	DefaultScheduleInterval = 10 * time.Second
	DefaultIdleSource       = 2 * time.Minute
	DefaultRetryFailed      = 15 * time.Minute
	DefaultRollupShards     = 8
	// scheduleMaxFailures is how often in a row a window's job may fail
	// before the scheduler moves on to the next window; the window is
	// tried again when its input changes or RetryFailed later.
	scheduleMaxFailures = 3
)

// Schedule configures periodic processing: the leader submits one job per
// event-time window once ingest's watermark shows the window, its session
// look-ahead and the allowed lateness are complete, in window order, one at
// a time. A window whose input changed after it was processed (late data)
// is processed again; results and indexed documents are idempotent, so a
// re-run replaces them, with the next revision.
//
// With Provisional, a window is processed as soon as the watermark has
// passed its end and session look-ahead, and its result says final=false;
// once the allowed lateness has passed too with no new input, the
// scheduler finalizes it without recomputing: it commits the same rows
// again with final=true (results.Finalize, same revision) and runs the
// publishers again, so that documents and table rows say final too.
type Schedule struct {
	Enabled bool
	// Window is the length of a window; windows are aligned to multiples of
	// it since the Unix epoch (1h windows start on the hour).
	Window time.Duration
	// Lateness is how far behind the watermark late events may still arrive
	// before a window is processed the first time.
	Lateness time.Duration
	// Out is the base URI of results: each window's result is committed
	// under Out/window=<start, e.g. 20261127T010000Z>.
	Out string
	// Start is the first window to consider; zero means the window of the
	// earliest event in the lake.
	Start time.Time
	// Interval is how often the lake is checked for complete windows.
	Interval time.Duration
	// IdleSource: a source (Kafka partition, file) that committed nothing for
	// this long does not hold the watermark back. When every source is idle,
	// the watermark is the wall clock.
	IdleSource time.Duration
	// Format of the results: "ndjson" or "csv".
	Format string
	// RetryFailed: a window whose job failed scheduleMaxFailures times in a
	// row is run again this long after its last failure, then twice as
	// long after each further failure (up to a day), so that it recovers
	// from an outage that outlasted the quick retries. 0 waits for its
	// input to change. Windows that cannot be aggregated at all (an
	// invalid job) are not retried.
	RetryFailed time.Duration
	// Provisional: process a window early, as soon as the watermark passes
	// its end + session timeout, as a provisional (final=false) result,
	// and finalize it once the allowed lateness has passed too.
	Provisional bool
	// IncludeBots makes the scheduled jobs count bots' events like
	// anyone's (JobSpec.include_bots); by default they count only in
	// bot_clicks.
	IncludeBots bool
	// UserSets: windows keep their user sets beside their results, for
	// roll-ups (clickstream rollup).
	UserSets bool
	// Rollups: once every window of a day is done and the day is
	// complete, the leader submits a roll-up job of the day (package
	// rollup; RollupShards tasks) into <Out>/rollup/grain=day/period=<day>,
	// which keeps the day's sets and is published like any job; again when
	// a window of the day is run again. Implies UserSets.
	Rollups bool
	// RollupGrains are the periods rolled up (with Rollups): days always,
	// and weeks and months from the days' sets once they are complete.
	RollupGrains []string
	// RollupShards is the number of key ranges (tasks) of a roll-up job;
	// RollupMemoryBudget bounds each task's buffered hashes before it
	// spills (rollup.Config; 0: no bound).
	RollupShards       int
	RollupMemoryBudget int64
}

// NewSchedule returns the default (disabled) schedule.
func NewSchedule() Schedule {
	return Schedule{
		Window:      DefaultScheduleWindow,
		Lateness:    DefaultAllowedLateness,
		Interval:    DefaultScheduleInterval,
		IdleSource:  DefaultIdleSource,
		Format:      "ndjson",
		RetryFailed: DefaultRetryFailed,
		// The budget of an in-process roll-up, per task.
		RollupGrains: []string{schema.GrainDay}, RollupShards: DefaultRollupShards, RollupMemoryBudget: rollup.DefaultMemoryBudget,
	}
}

// AddFlags binds the schedule to flags.
func (s *Schedule) AddFlags(fs *pflag.FlagSet) {
	fs.BoolVar(&s.Enabled, "schedule", s.Enabled, "process event-time windows periodically as ingest completes them")
	fs.DurationVar(&s.Window, "window", s.Window, "window length of --schedule (aligned to the epoch)")
	fs.DurationVar(&s.Lateness, "lateness", s.Lateness, "allowed lateness: how long after the watermark passes a window (plus the session timeout) it is processed")
	fs.StringVar(&s.Out, "schedule-out", s.Out, "base URI of scheduled results; each window goes under <base>/window=<start>")
	fs.TextVar(&s.Start, "schedule-start", s.Start, "first window start, RFC 3339 (default: the window of the lake's earliest event)")
	fs.DurationVar(&s.Interval, "schedule-interval", s.Interval, "how often the lake is checked for complete windows")
	fs.DurationVar(&s.IdleSource, "idle-source-timeout", s.IdleSource, "a source silent this long does not hold the watermark back")
	fs.StringVar(&s.Format, "schedule-format", s.Format, "result format of scheduled jobs: ndjson or csv")
	fs.BoolVar(&s.Provisional, "provisional", s.Provisional, "publish each window early, once the watermark passes its end + session timeout, as provisional (final=false), then finalize it once --lateness has passed with no late data")
	fs.BoolVar(&s.IncludeBots, "schedule-include-bots", s.IncludeBots, "scheduled jobs count bots' events in clicks, unique users and time spent (default: only in bot_clicks)")
	fs.BoolVar(&s.UserSets, "schedule-user-sets", s.UserSets, "scheduled windows keep each (url, country)'s set of user hashes beside the result, for exact roll-ups (clickstream rollup)")
	fs.BoolVar(&s.Rollups, "schedule-rollups", s.Rollups, "after each closed day (all its windows done), roll the day up exactly from the windows' user sets into <schedule-out>/rollup/grain=day/period=<day> and publish it (implies --schedule-user-sets)")
	fs.StringSliceVar(&s.RollupGrains, "schedule-rollup-grains", s.RollupGrains, "periods --schedule-rollups rolls up: day, and week (ISO) and month once complete, from the days' sets")
	fs.IntVar(&s.RollupShards, "schedule-rollup-shards", s.RollupShards, "key ranges (tasks) of a day's roll-up job, 1 to 1024")
	fs.Int64Var(&s.RollupMemoryBudget, "schedule-rollup-memory-budget", s.RollupMemoryBudget, "bytes of user hashes each task of a day's roll-up keeps in memory before it spills sorted runs to its worker's temporary folder (0: no bound)")
	fs.DurationVar(&s.RetryFailed, "schedule-retry-failed", s.RetryFailed, "run a window whose job failed 3 times in a row again this long after its last failure, doubling after each further failure (0: only when its input changes)")
}

// Validate checks the schedule.
func (s *Schedule) Validate() error {
	if !s.Enabled {
		return nil
	}
	var errs []error
	if s.Window <= 0 || s.Window%time.Second != 0 {
		errs = append(errs, errors.New("--window must be a positive whole number of seconds"))
	}
	if s.Lateness < 0 {
		errs = append(errs, errors.New("--lateness must not be negative"))
	}
	if s.Out == "" {
		errs = append(errs, errors.New("--schedule-out is required with --schedule"))
	}
	if s.Interval <= 0 || s.IdleSource <= 0 {
		errs = append(errs, errors.New("--schedule-interval and --idle-source-timeout must be positive"))
	}
	if s.RetryFailed < 0 {
		errs = append(errs, errors.New("--schedule-retry-failed must not be negative"))
	}
	if s.RollupMemoryBudget < 0 {
		errs = append(errs, errors.New("--schedule-rollup-memory-budget must not be negative"))
	}
	if s.Rollups && !slices.Contains(s.RollupGrains, schema.GrainDay) {
		errs = append(errs, fmt.Errorf("--schedule-rollup-grains %s: weeks and months are rolled up from days; include day", strings.Join(s.RollupGrains, ",")))
	}
	for _, g := range s.RollupGrains {
		if g != schema.GrainDay && g != schema.GrainWeek && g != schema.GrainMonth {
			errs = append(errs, fmt.Errorf("--schedule-rollup-grains: %q is not day, week or month", g))
		}
	}
	if s.Rollups && (s.RollupShards < 1 || s.RollupShards > maxRollupShards) {
		errs = append(errs, fmt.Errorf("--schedule-rollup-shards must be in [1, %d]", maxRollupShards))
	}
	if f := strings.ToLower(s.Format); f != "ndjson" && f != "csv" && f != "" {
		errs = append(errs, fmt.Errorf("--schedule-format %q: want ndjson or csv", s.Format))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return nil
}

// WindowOut is the result URI of the window starting at from.
func (s *Schedule) WindowOut(from time.Time) string { return WindowOut(s.Out, from) }

// WindowOut is the result URI, under base, of the window starting at from:
// base/window=20261127T010000Z. Scheduled jobs and backfills share it, so a
// backfill of a window replaces the scheduled result, and vice versa.
func WindowOut(base string, from time.Time) string {
	return strings.TrimSuffix(base, "/") + "/window=" + from.UTC().Format("20060102T150405Z")
}

// SplitWindows cuts [from, to) at multiples of window since the Unix epoch
// (the scheduler's windows); the first and last piece may be shorter when
// from or to is not on a boundary.
func SplitWindows(from, to time.Time, window time.Duration) [][2]time.Time {
	var out [][2]time.Time
	for start := from; start.Before(to); {
		end := start.Truncate(window).Add(window)
		if end.After(to) {
			end = to
		}
		out = append(out, [2]time.Time{start, end})
		start = end
	}
	return out
}

// windowRecord is the scheduler's state of one window, kept in etcd so that
// a new leader continues where the old one stopped.
type windowRecord struct {
	From  time.Time `json:"from"`
	To    time.Time `json:"to"`
	Job   string    `json:"job"`
	State string    `json:"state"` // running, done, failed
	// Input fingerprints the committed lake data the window's job read
	// (files and events over [from, to + session timeout)).
	Input    string `json:"input"`
	Runs     int    `json:"runs"`
	Failures int    `json:"failures"` // in a row
	Error    string `json:"error,omitempty"`
	// Invalid: the window's job cannot be submitted with this input (no
	// retry helps).
	Invalid bool `json:"invalid,omitempty"`
	// Provisional: the window's last job was submitted before the
	// watermark had passed the window's end + session timeout + lateness
	// (Schedule.Provisional): its result says final=false until the
	// scheduler finalizes it. Records written before provisional results
	// existed read false: final.
	Provisional bool      `json:"provisional,omitempty"`
	Updated     time.Time `json:"updated"`

	rev int64 // etcd mod revision of the record as read; 0: none yet
}

// submitterScheduler is the SubmittedBy of the scheduler's jobs.
const submitterScheduler = "scheduler"

const (
	windowRunning = "running"
	windowDone    = "done"
	windowFailed  = "failed"
)

func (c *Coordinator) scheduleKey(from time.Time) string {
	return c.cfg.EtcdPrefix + "/schedule/windows/" + from.UTC().Format("20060102T150405Z")
}

// runSchedule is the scheduler loop; it acts only while this coordinator
// leads. It returns when ctx is done.
func (c *Coordinator) runSchedule(ctx context.Context, s Schedule) {
	log := c.logger.With("component", "schedule")
	log.Info("schedule enabled", "window", s.Window, "lateness", s.Lateness, "out", s.Out, "provisional", s.Provisional)
	t := time.NewTimer(0)
	defer t.Stop()
	var snaps *lake.SnapshotReader // reads each manifest once
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		next := s.Interval
		if c.IsLeader() {
			progressed, err := c.scheduleTick(ctx, s, &snaps)
			if err != nil && ctx.Err() == nil {
				log.Warn("schedule tick failed", "err", err)
			}
			if progressed {
				next = 0 // more may be ready at once: backfills run window after window
			}
		}
		t.Reset(next)
	}
}

// scheduleTick looks at the lake once and advances at most one window: it
// waits for a running job, or submits the first window (in order) that is
// complete and not processed with its current input. It reports whether
// it changed anything.
func (c *Coordinator) scheduleTick(ctx context.Context, s Schedule, snaps **lake.SnapshotReader) (bool, error) {
	store, err := c.store(ctx, c.cfg.Lake)
	if err != nil {
		return false, err
	}
	timeout := c.cfg.SessionTimeout
	v, ok, err := c.lakeView(ctx, store, snaps)
	if err != nil || !ok {
		return false, err
	}
	now := time.Now().UTC()
	wm, ok := scheduleWatermark(v.watermarks, now, s.IdleSource)
	if !ok {
		return false, nil
	}
	// A source whose clock runs ahead must not make windows that are still
	// filling look complete.
	if wm.After(now) {
		wm = now
	}
	c.metrics.scheduleLag.Set(now.Sub(wm).Seconds())
	c.metrics.scheduleWatermark.Set(float64(wm.UnixMilli()) / 1000)
	first := s.Start
	if first.IsZero() {
		earliest, ok := v.earliest()
		if !ok {
			return false, nil
		}
		first = earliest
	}
	first = first.UTC().Truncate(s.Window)

	recs, err := c.windowRecords(ctx)
	if err != nil {
		return false, err
	}
	// A window is processed the first time once the watermark has passed
	// it (ready); a window at or before the last one processed was ready
	// once, so late data re-runs it whatever the watermark says now (a new
	// source with old events can pull the watermark back). Its result is
	// final if the watermark has passed its end, look-ahead and lateness
	// (complete); with Provisional, a window is ready before that.
	var lastSeen time.Time
	for _, r := range recs {
		if r.From.After(lastSeen) {
			lastSeen = r.From
		}
	}
	complete := func(from time.Time) bool { return !from.Add(s.Window + timeout + s.Lateness).After(wm) }
	ready := complete
	if s.Provisional {
		ready = func(from time.Time) bool { return !from.Add(s.Window + timeout).After(wm) }
	}
	inputs := v.inputs(first, s.Window, timeout, maxTime(lastSeen, wm))
	for from := first; !from.After(lastSeen) || ready(from); from = from.Add(s.Window) {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		to := from.Add(s.Window)
		rec := recs[from.Unix()]
		if rec != nil && rec.State == windowRunning {
			return c.awaitWindow(ctx, s, rec)
		}
		input, events := inputs.at(from)
		switch {
		case rec == nil && events == 0:
			continue // nothing to aggregate (yet)
		case rec != nil && rec.State == windowDone && inputKind(rec.Input) != inputKind(input):
			// Done with its input told the other way (the lake got a table
			// since, or lost it): take the input as it is now rather than
			// run every window done so far again.
			rec.Input = input
			if err := c.putWindow(ctx, rec); err != nil {
				return false, err
			}
			continue
		case rec != nil && !inputs.changed(rec.Input, from) && !retryDue(rec, s, now):
			if rec.State == windowDone && rec.Provisional && complete(from) {
				// Provisional, and nothing came in since while the
				// lateness passed: the result stands, as final. A failure
				// (a publisher down) is tried again a tick later, not at
				// once.
				if err := c.finalizeWindow(ctx, s, rec, wm); err != nil {
					return false, err
				}
				return true, nil
			}
			continue // processed with this very input
		}
		if rec == nil {
			rec = &windowRecord{From: from, To: to}
		} else if rec.State == windowFailed {
			c.logger.Info("window failed; trying it again", "window", from,
				"failures_in_a_row", rec.Failures, "last_failure", rec.Updated, "err", rec.Error)
		} else {
			c.logger.Info("window input changed since it was processed: running it again",
				"window", from, "was", rec.Input, "now", input)
			c.metrics.scheduleReruns.Inc()
		}
		return true, c.submitWindow(ctx, s, rec, input, wm, complete(from))
	}
	if s.Rollups {
		// Nothing to submit or wait for: the scheduler's turn goes to the
		// days whose windows are all done.
		return c.rollupTick(ctx, s, recs, complete)
	}
	return false, nil
}

// finalizeWindow makes the provisional result of a done window final as of
// the watermark wm, without recomputing it: results.Finalize commits its
// rows again with final=true (same revision), then every publisher
// publishes it again, and the window is recorded final. A publisher that
// fails leaves the window provisional, to be finalized again (idempotently)
// on a later tick. A result that another job replaced (a backfill of the
// window) is left alone: it says itself how final it is.
func (c *Coordinator) finalizeWindow(ctx context.Context, s Schedule, rec *windowRecord, wm time.Time) error {
	at := rec.From.Format(time.RFC3339)
	out, err := c.output(ctx, s.WindowOut(rec.From))
	if err != nil {
		return fmt.Errorf("schedule: finalize window %s: %w", at, err)
	}
	m, err := results.Finalize(ctx, out, rec.Job, wm)
	switch {
	case errors.Is(err, results.ErrSuperseded):
		c.logger.Warn("window's result was replaced by another job; not finalizing it", "window", rec.From, "job", rec.Job, "err", err)
		rec.Provisional = false
		return c.putWindow(ctx, rec)
	case errors.Is(err, results.ErrNoResult), errors.Is(err, results.ErrBadMeta):
		// The result is gone (the output deleted or damaged): compute the
		// window again.
		c.logger.Warn("window's result is gone; running the window again", "window", rec.From, "job", rec.Job, "err", err)
		rec.Input = ""
		return c.putWindow(ctx, rec)
	}
	if err != nil {
		return fmt.Errorf("schedule: finalize window %s: %w", at, err)
	}
	var errs []error
	for _, p := range c.cfg.Publishers {
		if err := p.Publish(ctx, out, m); err != nil {
			errs = append(errs, fmt.Errorf("publisher %s: %w", p.Name(), err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("schedule: finalize window %s: %w", at, err)
	}
	if err := results.Prune(ctx, out); err != nil {
		c.logger.Warn("finalize: prune old results", "window", rec.From, "err", err)
	}
	rec.Provisional = false
	c.metrics.scheduleWindows.WithLabelValues("finalized").Inc()
	c.logger.Info("window finalized", "window", rec.From, "job", rec.Job, "revision", m.Revision, "watermark", wm)
	return c.putWindow(ctx, rec)
}

// submitWindow submits the window's job and records the window as running
// in the same etcd transaction, provided the window's record is still the
// one rec was read from: a job is never submitted without its window
// knowing it (a new leader would submit it again), and two leaders, one
// of them stale, cannot both submit a window. The job's result carries the
// watermark wm and says final if final is true (the window complete).
func (c *Coordinator) submitWindow(ctx context.Context, s Schedule, rec *windowRecord, input string, wm time.Time, final bool) error {
	pspec := &pb.JobSpec{
		From:           timestamppb.New(rec.From),
		To:             timestamppb.New(rec.To),
		OutUri:         s.WindowOut(rec.From),
		LakeUri:        c.cfg.Lake,
		SessionTimeout: durationpb.New(c.cfg.SessionTimeout),
		IncludeBots:    s.IncludeBots,
		UserSets:       s.UserSets || s.Rollups,
	}
	if strings.EqualFold(s.Format, "csv") {
		pspec.Format = pb.OutputFormat_OUTPUT_FORMAT_CSV
	}
	spec, err := c.normalize(ctx, pspec)
	if status.Code(rpcError(err)) == codes.InvalidArgument {
		// The window itself is unacceptable (e.g. events dated year 0):
		// record it as failed for this input and move on to the next.
		rec.State, rec.Error, rec.Input, rec.Failures, rec.Invalid = windowFailed, err.Error(), input, scheduleMaxFailures, true
		c.logger.Error("window cannot be aggregated; skipping it until its input changes", "window", rec.From, "err", err)
		return c.putWindow(ctx, rec)
	}
	if err != nil {
		return fmt.Errorf("schedule: submit window %s: %w", rec.From.Format(time.RFC3339), err)
	}
	wm = wm.UTC()
	spec.Watermark, spec.Final = &wm, final
	next := *rec
	next.State, next.Input, next.Error, next.Invalid, next.Updated = windowRunning, input, "", false, time.Now().UTC()
	next.Provisional = !final
	next.Runs++
	key := c.scheduleKey(rec.From)
	unchanged := clientv3.Compare(clientv3.ModRevision(key), "=", rec.rev)
	_, ok, err := c.submit(ctx, spec, "", submitterScheduler, []clientv3.Cmp{unchanged}, func(id string) ([]clientv3.Op, error) {
		next.Job = id
		data, err := json.Marshal(&next)
		if err != nil {
			return nil, fmt.Errorf("encode window: %w", err)
		}
		return []clientv3.Op{clientv3.OpPut(key, string(data))}, nil
	})
	if err != nil {
		return fmt.Errorf("schedule: submit window %s: %w", rec.From.Format(time.RFC3339), err)
	}
	if !ok {
		c.logger.Warn("window record changed since it was read (another leader?): not submitting", "window", rec.From)
		return nil
	}
	*rec = next
	c.logger.Info("window submitted", "window", rec.From, "job", rec.Job, "input", input, "run", rec.Runs, "final", final)
	return nil
}

// retryDue tells whether a window that failed too often in a row, with the
// input it has now, is due for another run: RetryFailed after its last
// failure, doubling with each further failure up to a day.
func retryDue(rec *windowRecord, s Schedule, now time.Time) bool {
	if rec.State != windowFailed || rec.Invalid || s.RetryFailed <= 0 || rec.Failures < scheduleMaxFailures {
		return false
	}
	wait := s.RetryFailed
	for range min(rec.Failures-scheduleMaxFailures, 16) {
		wait *= 2
	}
	return now.Sub(rec.Updated) >= min(wait, maxRetryWait)
}

// maxRetryWait caps the wait between runs of a window that keeps failing.
const maxRetryWait = 24 * time.Hour

// awaitWindow waits for a window's running job and records its outcome.
func (c *Coordinator) awaitWindow(ctx context.Context, s Schedule, rec *windowRecord) (bool, error) {
	j, err := c.awaitJob(ctx, rec.Job)
	if status.Code(err) == codes.NotFound {
		// Its record expired (--job-retention) before the window learnt
		// the outcome: run the window again.
		rec.State, rec.Error, rec.Input = windowFailed, "job record gone: "+err.Error(), ""
		c.logger.Warn("window's job record is gone; running the window again", "window", rec.From, "job", rec.Job)
		return true, c.putWindow(ctx, rec)
	}
	if err != nil {
		return false, fmt.Errorf("schedule: job %s of window %s: %w", rec.Job, rec.From.Format(time.RFC3339), err)
	}
	if j == nil {
		return false, nil // the new leader takes over from etcd
	}
	if j.GetState() != pb.JobState_JOB_STATE_SUCCEEDED {
		rec.State, rec.Error = windowFailed, j.GetError()
		rec.Failures++
		if rec.Failures < scheduleMaxFailures {
			rec.Input = "" // try again on the next tick
		}
		c.metrics.scheduleWindows.WithLabelValues("failed").Inc()
		c.logger.Error("window job failed", "window", rec.From, "job", rec.Job, "failures", rec.Failures, "err", j.GetError())
		return true, c.putWindow(ctx, rec)
	}
	if st := j.GetIndexerStatus(); st != "" && st != indexOK {
		// Committed but not indexed: run the window again, which
		// re-indexes it (documents are idempotent).
		rec.State, rec.Error = windowFailed, "indexing: "+st
		rec.Failures++
		if rec.Failures < scheduleMaxFailures {
			rec.Input = "" // try again on the next tick
		}
		c.metrics.scheduleWindows.WithLabelValues("failed").Inc()
		c.logger.Error("window indexing failed", "window", rec.From, "job", rec.Job, "err", st)
		return true, c.putWindow(ctx, rec)
	}
	rec.State, rec.Failures = windowDone, 0
	c.metrics.scheduleWindows.WithLabelValues("succeeded").Inc()
	c.logger.Info("window done", "window", rec.From, "job", rec.Job, "out", s.WindowOut(rec.From), "indexer", j.GetIndexerStatus())
	return true, c.putWindow(ctx, rec)
}

// awaitJob polls the job id until it has ended and, if it succeeded, its
// publishers are done with it, and returns it; nil, and no error, once
// this coordinator no longer leads (the new leader takes over).
func (c *Coordinator) awaitJob(ctx context.Context, id string) (*pb.Job, error) {
	for {
		resp, err := c.GetJob(ctx, &pb.GetJobRequest{Id: id})
		if err != nil {
			return nil, err
		}
		j := resp.GetJob()
		switch j.GetState() {
		case pb.JobState_JOB_STATE_SUCCEEDED:
			if j.GetIndexerStatus() != indexPending {
				return j, nil
			}
			// The result is committed; publishing is under way.
		case pb.JobState_JOB_STATE_FAILED, pb.JobState_JOB_STATE_CANCELLED:
			return j, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
		if !c.IsLeader() {
			return nil, nil
		}
	}
}

// putWindow writes rec, provided the window's record is still the one rec
// was read as (rec.rev; 0: no record): a scheduler that lost its lead
// while awaiting a job must not overwrite what the new leader recorded
// since (say, the next job of the window). A record moved on is left
// alone; the next tick reads it.
func (c *Coordinator) putWindow(ctx context.Context, rec *windowRecord) error {
	rec.Updated = time.Now().UTC()
	data, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("schedule: encode window: %w", err)
	}
	key := c.scheduleKey(rec.From)
	resp, err := c.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", rec.rev)).
		Then(clientv3.OpPut(key, string(data))).Commit()
	if err != nil {
		return fmt.Errorf("schedule: record window %s: %w", rec.From.Format(time.RFC3339), err)
	}
	if !resp.Succeeded {
		c.logger.Warn("window record changed since it was read (another leader?): not overwriting it", "window", rec.From)
		return nil
	}
	rec.rev = resp.Header.Revision
	return nil
}

// windowRecords reads the scheduler's state, by window start (Unix seconds).
func (c *Coordinator) windowRecords(ctx context.Context) (map[int64]*windowRecord, error) {
	resp, err := c.cli.Get(ctx, c.cfg.EtcdPrefix+"/schedule/windows/", clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("schedule: read windows: %w", err)
	}
	out := make(map[int64]*windowRecord, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var r windowRecord
		if err := json.Unmarshal(kv.Value, &r); err != nil {
			return nil, fmt.Errorf("schedule: decode %s: %w", kv.Key, err)
		}
		r.rev = kv.ModRevision
		out[r.From.Unix()] = &r
	}
	return out, nil
}

// scheduleWatermark is the event time up to which the lake is complete: the
// lowest watermark of the sources that committed within idle, or, when every
// source is idle, the wall clock (nothing more is coming for now; anything
// that comes later re-runs its window).
func scheduleWatermark(wms map[string]lake.Watermark, now time.Time, idle time.Duration) (time.Time, bool) {
	if len(wms) == 0 {
		return time.Time{}, false
	}
	lo, active := int64(math.MaxInt64), false
	for _, w := range wms {
		if w.Watermark == math.MinInt64 {
			continue // no valid event yet (only rejected records): no event time to hold back
		}
		if now.Sub(w.Updated) < idle {
			active = true
			lo = min(lo, w.Watermark)
		}
	}
	if !active {
		return now, true
	}
	return time.UnixMilli(lo).UTC(), true
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
