// Daily roll-ups of the scheduler: once every window of a day is done and
// the day is complete, the leader rolls the day up (package rollup) from
// the windows' user sets, and again whenever one of the day's windows is
// run again.

package coordinator

import (
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

	"github.com/dataco/clickstream/internal/rollup"
	"github.com/dataco/clickstream/internal/schema"
)

// rollupRecord is the scheduler's state of one day's roll-up, in etcd.
type rollupRecord struct {
	From time.Time `json:"from"`
	// Windows fingerprints the day's window jobs the roll-up merged: a
	// window run again (late data) changes it, and the day is rolled up
	// again.
	Windows string    `json:"windows"`
	State   string    `json:"state"` // done, failed
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
// failed windows. The fingerprint names the day's window jobs.
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
				fmt.Fprintf(h, "%d %s\n", r.From.Unix(), r.Job)
			}
		}
		if closed {
			out = append(out, closedDay{from: d, fingerprint: hex.EncodeToString(h.Sum(nil))[:16]})
		}
	}
	slices.SortFunc(out, func(a, b closedDay) int { return a.from.Compare(b.from) })
	return out
}

// rollupTick rolls up the first closed day whose roll-up is missing or
// older than its windows, and records it. It reports whether it did.
// A failed roll-up is recorded and tried again when the day's windows
// change, or on the scheduler's RetryFailed.
func (c *Coordinator) rollupTick(ctx context.Context, s Schedule, recs map[int64]*windowRecord, complete func(time.Time) bool) (bool, error) {
	days := closedDays(recs, s.Window, complete)
	if len(days) == 0 {
		return false, nil
	}
	done, err := c.rollupRecords(ctx)
	if err != nil {
		return false, err
	}
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
		cfg := rollup.NewRunConfig()
		cfg.Windows, cfg.Out, cfg.Grain, cfg.From, cfg.Format = s.Out, "", schema.GrainDay, d.from, s.Format
		cfg.To = d.from.Add(24 * time.Hour)
		cfg.AllowGaps = true // a window without events has no result
		cfg.S3, cfg.SpillDir = c.cfg.S3, s.RollupSpillDir
		if s.RollupMemoryBudget > 0 {
			cfg.MemoryBudget = s.RollupMemoryBudget
		}
		for _, p := range c.cfg.Publishers {
			cfg.Publishers = append(cfg.Publishers, p)
		}
		start := time.Now()
		reps, err := rollup.Run(ctx, cfg, c.logger.With("component", "rollup"))
		rec.State, rec.Updated = windowDone, time.Now().UTC()
		for _, r := range reps {
			rec.Out = r.Out
			for _, p := range r.Published {
				if !strings.HasSuffix(p, ": ok") {
					rec.State, rec.Error = windowFailed, "publishing: "+p
				}
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return false, ctx.Err()
			}
			rec.State, rec.Error, rec.Invalid = windowFailed, err.Error(), errors.Is(err, rollup.ErrWindows)
		}
		c.metrics.scheduleRollups.WithLabelValues(rec.State).Inc()
		c.logger.Info("day rolled up", "day", d.from, "state", rec.State, "out", rec.Out, "err", rec.Error, "duration", time.Since(start))
		return true, c.putRollup(ctx, rec)
	}
	return false, nil
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
	}
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
