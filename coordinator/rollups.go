// Daily roll-ups of the scheduler: once every window of a day is done and
// the day is complete, the leader submits a roll-up job of the day (one
// task per key range, run by the workers like any job's), and again
// whenever one of the day's windows is run again. A record in etcd
// follows each day's roll-up job to its end, as a window's record follows
// its job.

package coordinator

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/rollup"
	"github.com/dataco/clickstream/internal/schema"
	pb "github.com/dataco/clickstream/proto/clickstream/v1"
)

// rollupRecord is the scheduler's state of one day's roll-up, in etcd.
type rollupRecord struct {
	From time.Time `json:"from"`
	// Windows fingerprints the day's window jobs the roll-up merged: a
	// window run again (late data) changes it, and the day is rolled up
	// again.
	Windows string `json:"windows"`
	// Job is the day's latest roll-up job.
	Job     string    `json:"job,omitempty"`
	State   string    `json:"state"` // running, done, failed
	Error   string    `json:"error,omitempty"`
	Out     string    `json:"out,omitempty"`
	Updated time.Time `json:"updated"`
	// Invalid: the day's windows cannot be rolled up as they are (e.g.
	// run without user sets); no retry helps until they change.
	Invalid bool `json:"invalid,omitempty"`

	rev int64
}

func (c *Coordinator) rollupKey(day time.Time) string {
	return c.cfg.EtcdPrefix + "/schedule/rollups/day/" + day.UTC().Format("20060102")
}

// closedDay is a day whose windows are all processed.
type closedDay struct {
	from        time.Time
	fingerprint string
}

// closedDays returns, in order, the days whose every window with a record
// is done (or cannot be aggregated at all) and that are complete (their
// last window is, by complete): a day's roll-up waits for its running and
// failed windows. The fingerprint names the day's window jobs and which
// of them are still provisional.
func closedDays(recs map[int64]*windowRecord, window time.Duration, complete func(from time.Time) bool) []closedDay {
	byDay := map[time.Time][]*windowRecord{}
	for _, r := range recs {
		d := r.From.UTC().Truncate(24 * time.Hour)
		byDay[d] = append(byDay[d], r)
	}
	var out []closedDay
	for d, rs := range byDay {
		lastWindow := d.Add(24 * time.Hour).Add(-window)
		if !complete(lastWindow) {
			continue
		}
		slices.SortFunc(rs, func(a, b *windowRecord) int { return a.From.Compare(b.From) })
		h := sha256.New()
		closed := true
		for _, r := range rs {
			if r.State != windowDone && !(r.State == windowFailed && r.Invalid) {
				closed = false
				break
			}
			if r.State == windowDone {
				// A provisional window hashes apart: once it is finalized,
				// the day is rolled up again, as final.
				if r.Provisional {
					fmt.Fprintf(h, "%d %s provisional\n", r.From.Unix(), r.Job)
				} else {
					fmt.Fprintf(h, "%d %s\n", r.From.Unix(), r.Job)
				}
			}
		}
		if closed {
			out = append(out, closedDay{from: d, fingerprint: hex.EncodeToString(h.Sum(nil))[:16]})
		}
	}
	slices.SortFunc(out, func(a, b closedDay) int { return a.from.Compare(b.from) })
	return out
}

// rollupTick follows the running roll-up job, if any, to its end and
// records its outcome; otherwise it submits the roll-up job of the first
// closed day whose roll-up is missing or older than its windows. It
// reports whether it changed anything. A day whose roll-up failed is
// tried again when its windows change, or after the scheduler's
// RetryFailed; a day whose windows cannot be rolled up (one without user
// sets) only when they change.
func (c *Coordinator) rollupTick(ctx context.Context, s Schedule, recs map[int64]*windowRecord, complete func(time.Time) bool) (bool, error) {
	done, err := c.rollupRecords(ctx)
	if err != nil {
		return false, err
	}
	for _, r := range done {
		if r.State == windowRunning {
			return c.awaitRollup(ctx, r)
		}
	}
	days := closedDays(recs, s.Window, complete)
	now := time.Now()
	for _, d := range days {
		prev := done[d.from.Unix()]
		if prev != nil && prev.Windows == d.fingerprint &&
			(prev.State == windowDone || prev.Invalid || s.RetryFailed <= 0 || now.Sub(prev.Updated) < s.RetryFailed) {
			continue
		}
		rec := &rollupRecord{From: d.from, Windows: d.fingerprint}
		if prev != nil {
			rec.rev = prev.rev
		}
		return true, c.submitRollup(ctx, s, rec)
	}
	return false, nil
}

// rollupJob is the job rolling up the day starting at day into
// <Out>/rollup/grain=day/period=<day>, keeping its sets (for weeks and
// months from days).
func (s *Schedule) rollupJob(day time.Time) *pb.JobSpec {
	cfg := rollup.NewRunConfig()
	cfg.Windows, cfg.Grain, cfg.Format = s.Out, schema.GrainDay, s.Format
	cfg.Shards, cfg.MemoryBudget, cfg.AllowGaps = s.RollupShards, s.RollupMemoryBudget, true // a window without events has no result
	return RollupJobSpec(&cfg, day, day.Add(24*time.Hour))
}

// submitRollup submits the roll-up job of rec's day and records it as
// running in the same etcd transaction, provided the day's record is
// still the one read (as submitWindow does). The day's windows are
// checked first: a day that cannot be rolled up as it is (a window
// without user sets) is recorded as failed and invalid, and no job is
// submitted.
func (c *Coordinator) submitRollup(ctx context.Context, s Schedule, rec *rollupRecord) error {
	day := rec.From.Format(time.DateOnly)
	spec := s.rollupJob(rec.From)
	rec.Out = spec.GetOutUri()
	invalid := func(err error) error {
		rec.State, rec.Error, rec.Invalid, rec.Updated = windowFailed, err.Error(), true, time.Now().UTC()
		c.metrics.scheduleRollups.WithLabelValues(windowFailed).Inc()
		c.logger.Error("day cannot be rolled up; skipping it until its windows change", "day", day, "err", err)
		return c.putRollup(ctx, rec)
	}
	if err := c.checkRollupInputs(ctx, s, rec.From); errors.Is(err, rollup.ErrWindows) {
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
	key := c.rollupKey(rec.From)
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
		c.logger.Warn("roll-up record changed since it was read (another leader?): not submitting", "day", day)
		return nil
	}
	*rec = next
	c.logger.Info("day roll-up submitted", "day", day, "job", rec.Job, "out", rec.Out)
	return nil
}

// checkRollupInputs reads the committed windows of the day starting at
// day and checks that they can be rolled up (rollup.Check): an error
// matching rollup.ErrWindows says they cannot.
func (c *Coordinator) checkRollupInputs(ctx context.Context, s Schedule, day time.Time) error {
	base, err := c.output(ctx, s.Out)
	if err != nil {
		return err
	}
	open := func(ctx context.Context, uri string) (lake.Store, error) { return c.output(ctx, uri) }
	windows, err := rollup.Inputs(ctx, base, open, schema.GrainWindow, day, day.Add(24*time.Hour))
	if err != nil {
		return err
	}
	_, err = rollup.Check(windows, day, day.Add(24*time.Hour))
	return err
}

// awaitRollup waits for a day's running roll-up job and records its
// outcome: done once committed and published, failed otherwise.
func (c *Coordinator) awaitRollup(ctx context.Context, rec *rollupRecord) (bool, error) {
	day := rec.From.Format(time.DateOnly)
	j, err := c.awaitJob(ctx, rec.Job)
	switch {
	case status.Code(err) == codes.NotFound:
		rec.State, rec.Error = windowFailed, "job record gone: "+err.Error()
		rec.Windows = "" // roll the day up again
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
	c.logger.Info("day rolled up", "day", day, "job", rec.Job, "state", rec.State, "out", rec.Out, "err", rec.Error)
	return true, c.putRollup(ctx, rec)
}

// putRollup writes rec if the day's record is still the one read (as
// putWindow does).
func (c *Coordinator) putRollup(ctx context.Context, rec *rollupRecord) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("schedule: encode roll-up: %w", err)
	}
	key := c.rollupKey(rec.From)
	resp, err := c.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", rec.rev)).
		Then(clientv3.OpPut(key, string(data))).Commit()
	if err != nil {
		return fmt.Errorf("schedule: record roll-up of %s: %w", rec.From.Format(time.DateOnly), err)
	}
	if !resp.Succeeded {
		c.logger.Warn("roll-up record changed since it was read (another leader?): not overwriting it", "day", rec.From)
		return nil
	}
	rec.rev = resp.Header.Revision
	return nil
}

// rollupRecords reads the recorded roll-ups, by day (Unix seconds).
func (c *Coordinator) rollupRecords(ctx context.Context) (map[int64]*rollupRecord, error) {
	resp, err := c.cli.Get(ctx, c.cfg.EtcdPrefix+"/schedule/rollups/day/", clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("schedule: read roll-ups: %w", err)
	}
	out := make(map[int64]*rollupRecord, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var r rollupRecord
		if err := json.Unmarshal(kv.Value, &r); err != nil {
			return nil, fmt.Errorf("schedule: decode %s: %w", kv.Key, err)
		}
		r.rev = kv.ModRevision
		out[r.From.Unix()] = &r
	}
	return out, nil
}
