// Roll-ups of the scheduler: once every window of a day is done and the
// day is complete, the leader submits a roll-up job of the day (one task
// per key range, run by the workers like any job's), and again whenever
// one of the day's windows is run again; with weeks or months among its
// grains, once a week or month is complete and its days are rolled up, a
// roll-up job of it from the days' sets. A record in etcd follows each
// period's roll-up job to its end, as a window's record follows its job.

package coordinator

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/rollup"
	"github.com/dataco/clickstream/internal/schema"
	pb "github.com/dataco/clickstream/proto/clickstream/v1"
)

// rollupRecord is the scheduler's state of one period's roll-up, in etcd.
type rollupRecord struct {
	From time.Time `json:"from"`
	// Grain is the period's: day (also when empty, as records written
	// before weeks and months are), week or month.
	Grain string `json:"grain,omitempty"`
	// Windows fingerprints the inputs the roll-up merged: a day's window
	// jobs, a week's or month's day roll-up jobs. An input run again
	// (late data) changes it, and the period is rolled up again.
	Windows string `json:"windows"`
	// Job is the period's latest roll-up job.
	Job     string    `json:"job,omitempty"`
	State   string    `json:"state"` // running, done, failed
	Error   string    `json:"error,omitempty"`
	Out     string    `json:"out,omitempty"`
	Updated time.Time `json:"updated"`
	// Invalid: the period's inputs cannot be rolled up as they are (e.g.
	// windows run without user sets); no retry helps until they change.
	Invalid bool `json:"invalid,omitempty"`

	rev int64
}

// grain is the record's grain, day when it says none.
func (r *rollupRecord) grain() string { return cmp.Or(r.Grain, schema.GrainDay) }

// period names a roll-up's period: its grain and start (Unix seconds).
type period struct {
	grain string
	from  int64
}

func (c *Coordinator) rollupKey(grain string, from time.Time) string {
	return c.cfg.EtcdPrefix + "/schedule/rollups/" + grain + "/" + from.UTC().Format("20060102")
}

// closedPeriod is a period whose inputs are all processed: a day whose
// windows are, or a week or month whose days are rolled up.
type closedPeriod struct {
	grain       string
	from        time.Time
	fingerprint string
}

// closedDays returns, in order, the days whose every window with a record
// is done (or cannot be aggregated at all) and that are complete (their
// last window is, by complete): a day's roll-up waits for its running and
// failed windows. The fingerprint names the day's window jobs and which
// of them are still provisional: once one is finalized, the day is rolled
// up again, as final.
func closedDays(recs map[int64]*windowRecord, window time.Duration, complete func(from time.Time) bool) []closedPeriod {
	ins := make([]periodInput, 0, len(recs))
	for _, r := range recs {
		ins = append(ins, periodInput{from: r.From, state: r.State, job: r.Job, invalid: r.Invalid, provisional: r.Provisional})
	}
	return closedOf(schema.GrainDay, ins, window, complete)
}

// closedPeriods returns, in order, the periods of grain (week, month) that
// are complete and whose days' roll-ups, as recorded in days, are all done
// (or cannot be made at all): a period waits for its days' running and
// failed roll-ups; a day without a roll-up (no events, or windows not all
// done) is a gap, and rolls the period up again once it has one. The
// fingerprint names the days' roll-up jobs.
func closedPeriods(grain string, days []*rollupRecord, window time.Duration, complete func(from time.Time) bool) []closedPeriod {
	ins := make([]periodInput, 0, len(days))
	for _, r := range days {
		ins = append(ins, periodInput{from: r.From, state: r.State, job: r.Job, invalid: r.Invalid})
	}
	return closedOf(grain, ins, window, complete)
}

// periodInput is one input of a period's roll-up as the scheduler
// recorded it: a window of a day, or a day of a week or month.
type periodInput struct {
	from        time.Time
	state, job  string
	invalid     bool
	provisional bool
}

// closedOf groups ins by the period of grain holding them and returns, in
// order, the periods that are complete (their last window of length
// window is, by complete) and whose inputs are all done or invalid, with
// a fingerprint of the done inputs' jobs.
func closedOf(grain string, ins []periodInput, window time.Duration, complete func(from time.Time) bool) []closedPeriod {
	byPeriod := map[time.Time][]periodInput{}
	for _, in := range ins {
		from, _, err := rollup.Period(grain, in.from)
		if err != nil {
			continue
		}
		byPeriod[from] = append(byPeriod[from], in)
	}
	var out []closedPeriod
	for from, ins := range byPeriod {
		_, to, _ := rollup.Period(grain, from)
		if !complete(to.Add(-window)) {
			continue
		}
		slices.SortFunc(ins, func(a, b periodInput) int { return a.from.Compare(b.from) })
		h := sha256.New()
		closed := true
		for _, in := range ins {
			if in.state != windowDone && !(in.state == windowFailed && in.invalid) {
				closed = false
				break
			}
			switch {
			case in.state != windowDone:
			case in.provisional:
				fmt.Fprintf(h, "%d %s provisional\n", in.from.Unix(), in.job)
			default:
				fmt.Fprintf(h, "%d %s\n", in.from.Unix(), in.job)
			}
		}
		if closed {
			out = append(out, closedPeriod{grain: grain, from: from, fingerprint: hex.EncodeToString(h.Sum(nil))[:16]})
		}
	}
	slices.SortFunc(out, func(a, b closedPeriod) int { return a.from.Compare(b.from) })
	return out
}

// rollupTick follows the running roll-up job, if any, to its end and
// records its outcome; otherwise it submits the roll-up job of the first
// closed day whose roll-up is missing or older than its windows, or else
// of the first such week or month (Schedule.RollupGrains). It reports
// whether it changed anything. A period whose roll-up failed is tried
// again when its inputs change, or after the scheduler's RetryFailed; a
// period whose inputs cannot be rolled up (a window without user sets)
// only when they change.
func (c *Coordinator) rollupTick(ctx context.Context, s Schedule, recs map[int64]*windowRecord, complete func(time.Time) bool) (bool, error) {
	done, err := c.rollupRecords(ctx)
	if err != nil {
		return false, err
	}
	var days []*rollupRecord
	for _, r := range done {
		if r.State == windowRunning {
			return c.awaitRollup(ctx, r)
		}
		if r.grain() == schema.GrainDay {
			days = append(days, r)
		}
	}
	closed := closedDays(recs, s.Window, complete)
	for _, g := range s.RollupGrains {
		if g != schema.GrainDay {
			closed = append(closed, closedPeriods(g, days, s.Window, complete)...)
		}
	}
	now := time.Now()
	for _, d := range closed {
		prev := done[period{d.grain, d.from.Unix()}]
		if prev != nil && prev.Windows == d.fingerprint &&
			(prev.State == windowDone || prev.Invalid || s.RetryFailed <= 0 || now.Sub(prev.Updated) < s.RetryFailed) {
			continue
		}
		rec := &rollupRecord{From: d.from, Grain: d.grain, Windows: d.fingerprint}
		if prev != nil {
			rec.rev = prev.rev
		}
		return true, c.submitRollup(ctx, s, rec)
	}
	return false, nil
}

// rollupJob is the job rolling up the period of grain starting at from
// into <Out>/rollup/grain=<grain>/period=<from>, keeping its sets: a day
// from its windows, a week or a month from its days.
func (s *Schedule) rollupJob(grain string, from time.Time) *pb.JobSpec {
	cfg := rollup.NewRunConfig()
	cfg.Windows, cfg.Grain, cfg.Format = s.Out, grain, s.Format
	cfg.Shards, cfg.MemoryBudget, cfg.AllowGaps = s.RollupShards, s.RollupMemoryBudget, true // a window without events has no result
	if grain != schema.GrainDay {
		cfg.InputGrain = schema.GrainDay
	}
	_, to, _ := rollup.Period(grain, from)
	return RollupJobSpec(&cfg, from, to)
}

// submitRollup submits the roll-up job of rec's period and records it as
// running in the same etcd transaction, provided the period's record is
// still the one read (as submitWindow does). The period's inputs are
// checked first: a period that cannot be rolled up as they are (a window
// without user sets) is recorded as failed and invalid, and no job is
// submitted.
func (c *Coordinator) submitRollup(ctx context.Context, s Schedule, rec *rollupRecord) error {
	day := rec.grain() + " " + rec.From.Format(time.DateOnly)
	spec := s.rollupJob(rec.grain(), rec.From)
	rec.Out = spec.GetOutUri()
	invalid := func(err error) error {
		rec.State, rec.Error, rec.Invalid, rec.Updated = windowFailed, err.Error(), true, time.Now().UTC()
		c.metrics.scheduleRollups.WithLabelValues(windowFailed).Inc()
		c.logger.Error("period cannot be rolled up; skipping it until its inputs change", "period", day, "err", err)
		return c.putRollup(ctx, rec)
	}
	if err := c.checkRollupInputs(ctx, spec); errors.Is(err, rollup.ErrWindows) {
		return invalid(err)
	} else if err != nil {
		return fmt.Errorf("schedule: roll up %s: %w", day, err)
	}
	js, err := c.normalize(ctx, spec)
	if status.Code(rpcError(err)) == codes.InvalidArgument {
		return invalid(err)
	}
	if err != nil {
		return fmt.Errorf("schedule: roll up %s: %w", day, err)
	}
	next := *rec
	next.State, next.Error, next.Invalid, next.Updated = windowRunning, "", false, time.Now().UTC()
	key := c.rollupKey(rec.grain(), rec.From)
	unchanged := clientv3.Compare(clientv3.ModRevision(key), "=", rec.rev)
	_, ok, err := c.submit(ctx, js, "", submitterScheduler, []clientv3.Cmp{unchanged}, func(id string) ([]clientv3.Op, error) {
		next.Job = id
		data, err := json.Marshal(&next)
		if err != nil {
			return nil, fmt.Errorf("encode roll-up: %w", err)
		}
		return []clientv3.Op{clientv3.OpPut(key, string(data))}, nil
	})
	if err != nil {
		return fmt.Errorf("schedule: roll up %s: %w", day, err)
	}
	if !ok {
		c.logger.Warn("roll-up record changed since it was read (another leader?): not submitting", "period", day)
		return nil
	}
	*rec = next
	c.logger.Info("roll-up submitted", "period", day, "job", rec.Job, "out", rec.Out)
	return nil
}

// checkRollupInputs reads the committed inputs of a roll-up job's period
// (windows, or days) and checks that they can be rolled up
// (rollup.Check): an error matching rollup.ErrWindows says they cannot.
func (c *Coordinator) checkRollupInputs(ctx context.Context, spec *pb.JobSpec) error {
	r := spec.GetRollup()
	base, err := c.output(ctx, r.GetWindowsUri())
	if err != nil {
		return err
	}
	from, to := spec.GetFrom().AsTime(), spec.GetTo().AsTime()
	open := func(ctx context.Context, uri string) (lake.Store, error) { return c.output(ctx, uri) }
	inputs, err := rollup.Inputs(ctx, base, open, r.GetInputGrain(), from, to)
	if err != nil {
		return err
	}
	_, err = rollup.Check(inputs, from, to)
	return err
}

// awaitRollup waits for a period's running roll-up job and records its
// outcome: done once committed and published, failed otherwise.
func (c *Coordinator) awaitRollup(ctx context.Context, rec *rollupRecord) (bool, error) {
	day := rec.grain() + " " + rec.From.Format(time.DateOnly)
	j, err := c.awaitJob(ctx, rec.Job)
	switch {
	case status.Code(err) == codes.NotFound:
		rec.State, rec.Error = windowFailed, "job record gone: "+err.Error()
		rec.Windows = "" // roll the period up again
	case err != nil:
		return false, fmt.Errorf("schedule: roll-up job %s of %s: %w", rec.Job, day, err)
	case j == nil:
		return false, nil // no longer the leader
	case j.GetState() != pb.JobState_JOB_STATE_SUCCEEDED:
		rec.State, rec.Error = windowFailed, j.GetError()
	case j.GetIndexerStatus() != "" && j.GetIndexerStatus() != indexOK:
		rec.State, rec.Error = windowFailed, "publishing: "+j.GetIndexerStatus()
	default:
		rec.State, rec.Error = windowDone, ""
	}
	rec.Updated = time.Now().UTC()
	c.metrics.scheduleRollups.WithLabelValues(rec.State).Inc()
	c.logger.Info("period rolled up", "period", day, "job", rec.Job, "state", rec.State, "out", rec.Out, "err", rec.Error)
	return true, c.putRollup(ctx, rec)
}

// putRollup writes rec if the period's record is still the one read (as
// putWindow does).
func (c *Coordinator) putRollup(ctx context.Context, rec *rollupRecord) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("schedule: encode roll-up: %w", err)
	}
	key := c.rollupKey(rec.grain(), rec.From)
	resp, err := c.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", rec.rev)).
		Then(clientv3.OpPut(key, string(data))).Commit()
	if err != nil {
		return fmt.Errorf("schedule: record roll-up of %s %s: %w", rec.grain(), rec.From.Format(time.DateOnly), err)
	}
	if !resp.Succeeded {
		c.logger.Warn("roll-up record changed since it was read (another leader?): not overwriting it", "grain", rec.grain(), "from", rec.From)
		return nil
	}
	rec.rev = resp.Header.Revision
	return nil
}

// rollupRecords reads the recorded roll-ups, by period.
func (c *Coordinator) rollupRecords(ctx context.Context) (map[period]*rollupRecord, error) {
	prefix := c.cfg.EtcdPrefix + "/schedule/rollups/"
	resp, err := c.cli.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("schedule: read roll-ups: %w", err)
	}
	out := make(map[period]*rollupRecord, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var r rollupRecord
		if err := json.Unmarshal(kv.Value, &r); err != nil {
			return nil, fmt.Errorf("schedule: decode %s: %w", kv.Key, err)
		}
		// The key says the grain of records written before they did.
		if g, _, ok := strings.Cut(strings.TrimPrefix(string(kv.Key), prefix), "/"); ok && r.Grain == "" {
			r.Grain = g
		}
		r.rev = kv.ModRevision
		out[period{r.grain(), r.From.Unix()}] = &r
	}
	return out, nil
}
