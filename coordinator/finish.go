// The end of a job: merge, the committing transition, commit, the
// recorded outcome, and cleanup and indexing after it.

package coordinator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/dataco/clickstream/internal/results"
	"github.com/dataco/clickstream/internal/rollup"
	"github.com/dataco/clickstream/internal/schema"
)

// merge merges the job's partials off the term's goroutine, then
// commits the result.
func (tm *term) merge(j *jobRun) {
	j.phase = phaseMerging
	if j.rec.State == stateRunning {
		j.rec.State = stateMerging
		if !tm.putJob(j) {
			return
		}
	}
	// The goroutine gets its own copies: endJob replaces j.ctx.
	rec, p, k, ctx := *j.rec, j.plan, j.counters(), j.ctx
	digests := make([]partialDigest, len(j.tasks))
	for i, t := range j.tasks {
		d, ok := t.rec.digest()
		if !ok { // every task is done with one: taskDone and resumeTasks see to it
			tm.endJob(j, stateFailed, fmt.Sprintf("task %d (bucket %d) has no recorded partial digest", t.n, t.pt.Bucket))
			return
		}
		digests[i] = d
	}
	tm.spawn(func() {
		start := time.Now()
		m, err := tm.c.merge(ctx, &rec, p, k, digests)
		tm.c.metrics.merge.Observe(time.Since(start).Seconds())
		tm.post(func() { tm.onMerged(j, m, err) })
	})
}

func (tm *term) onMerged(j *jobRun, m *merged, err error) {
	if tm.jobs[j.rec.ID] != j || j.phase != phaseMerging {
		return
	}
	if errors.Is(err, errPartialDigest) || errors.Is(err, rollup.ErrPartial) {
		// Not the store failing: the partial was replaced after its worker
		// committed it. Nothing of it is merged; the job fails, naming the
		// task, and a new job computes every partial afresh.
		tm.c.logger.Error("stored partial does not match its worker's digest", "job", j.rec.ID, "err", err)
		tm.endJob(j, stateFailed, "merge: "+err.Error())
		return
	}
	if err != nil {
		tm.retryStore(j, "merge", err, func() { tm.merge(j) })
		return
	}
	j.storeTries = 0
	if j.rec.CancelRequested {
		tm.endJob(j, stateCancelled, "cancelled on request")
		return
	}
	// The transition that decides the outcome: once the record says
	// committing, no cancel can enter, and every later leader finishes the
	// commit. Each commit attempt writes its own run folder.
	j.rec.State = stateCommitting
	j.rec.MergeAttempt++
	if !tm.putJob(j) {
		return // a cancel came first (applied next), or the term ended
	}
	tm.commit(j, m)
}

// commit writes the merged result off the term's goroutine.
func (tm *term) commit(j *jobRun, m *merged) {
	rec, ctx := *j.rec, j.ctx
	tm.spawn(func() {
		meta, err := tm.c.commit(ctx, &rec, m)
		tm.post(func() { tm.onCommitted(j, m, meta, err) })
	})
}

func (tm *term) onCommitted(j *jobRun, m *merged, meta results.Meta, err error) {
	if tm.jobs[j.rec.ID] != j || j.phase != phaseMerging {
		return
	}
	if err != nil {
		// Committing: the job is not given up at the first error, and a
		// new attempt writes a new run folder.
		tm.retryStore(j, "commit", err, func() {
			j.rec.MergeAttempt++
			if tm.putJob(j) {
				tm.commit(j, m)
			}
		})
		return
	}
	j.storeTries = 0
	j.rec.Result = &meta
	j.rows = m.rows
	if meta.Warning != "" {
		j.rec.Warning = meta.Warning
	}
	tm.c.metrics.jobTime.Observe(meta.DurationSeconds)
	tm.endJob(j, stateSucceeded, "")
}

// Retries of a job's store I/O (loading its plan, merging, committing):
// a store that fails for a while (an outage, throttling) delays the job;
// only a store that keeps failing fails it.
const (
	maxStoreTries    = 6
	storeRetryBase   = time.Second
	storeRetryMaxGap = 30 * time.Second
)

// storeRetryIn is the wait before the next try after tries failures.
func storeRetryIn(tries int) time.Duration {
	return min(storeRetryBase<<min(tries, 10), storeRetryMaxGap)
}

// retryStore runs again, after a backoff, a step of j that failed on its
// output store, or fails the job once the step has failed maxStoreTries
// times in a row.
func (tm *term) retryStore(j *jobRun, step string, err error, again func()) {
	if j.ctx.Err() != nil {
		return // cancelled, or the term ended
	}
	j.storeTries++
	if j.storeTries >= maxStoreTries {
		tm.endJob(j, stateFailed, fmt.Sprintf("%s: %v (%d tries)", step, err, j.storeTries))
		return
	}
	wait := storeRetryIn(j.storeTries)
	tm.c.logger.Warn("job step failed; retrying", "job", j.rec.ID, "step", step, "err", err, "retry_in", wait)
	tm.later(j, wait, func() {
		if j.phase == phaseMerging {
			again()
		}
	})
}

// endJob moves a job to a terminal state: it cancels what still runs,
// records the final counters, deletes the job's task and lease keys in the
// same transaction, then cleans up the output store and indexes a
// succeeded job's result in the background. A job whose record says
// committing only ever ends succeeded, or failed by the commit itself.
func (tm *term) endJob(j *jobRun, state, msg string) {
	if terminal(j.rec.State) && j.phase == phaseFinishing {
		return
	}
	if j.seen.State == stateCommitting && state == stateCancelled {
		return // too late to cancel
	}
	tm.cancelAttempts(j)
	j.cancel()
	k := j.counters()
	if r := j.rec.Result; r != nil && state == stateSucceeded {
		// Exact even for tasks a new leader found committed without stats.
		k.EventsRead = r.EventsRead
		if j.tasks == nil { // recorded from the committed result alone
			k.Done, k.Attempts, k.Retries, k.Backups = r.Partitions, r.Attempts, r.Retries, r.Backups
		}
	}
	j.rec.State, j.rec.Finished, j.rec.Final = state, time.Now().UTC(), &k
	if state != stateSucceeded {
		j.rec.Error = msg
	} else {
		j.rec.Publications = nil
		for _, p := range tm.c.cfg.Publishers {
			j.rec.Publications = append(j.rec.Publications, publication{Publisher: p.Name(), Status: indexPending})
		}
	}
	keys := tm.c.keys
	if !tm.putJob(j,
		clientv3.OpDelete(keys.Tasks(j.rec.ID), clientv3.WithPrefix()),
		clientv3.OpDelete(keys.Leases(j.rec.ID), clientv3.WithPrefix()),
		clientv3.OpDelete(keys.ActiveJob(j.rec.ID)),
	) {
		return
	}
	if state == stateSucceeded {
		tm.c.hit(tm.ctx, pointAfterRecord)
	}
	tm.c.metrics.jobs.WithLabelValues(state).Inc()
	tm.c.logger.Info("job finished", "job", j.rec.ID, "state", state, "error", msg, "tasks", len(j.tasks),
		"attempts", k.Attempts, "retries", k.Retries, "backups", k.Backups)
	j.phase = phaseFinishing
	// A fresh context: the job's own is cancelled, the term's may end.
	j.ctx, j.cancel = context.WithCancel(tm.ctx)
	tm.finish(j)
}

func (tm *term) cancelAttempts(j *jobRun) {
	for _, t := range j.tasks {
		for _, a := range t.attempts {
			tm.endAttempt(t, a, attemptCancelled)
		}
	}
	j.queue = nil
}

// finish cleans a finished job's leftovers (plan, partials, superseded
// result runs) from the output store, once its outcome is recorded, and
// runs the publishers still pending on a succeeded job's result; then it
// records what they did. A term that ends first leaves the rest to the
// next leader.
func (tm *term) finish(j *jobRun) {
	rec, jctx, rows := *j.rec, j.ctx, j.rows
	j.rows = nil // the publications below hold them until they end
	tm.spawn(func() {
		cleaned := rec.Cleaned
		if !cleaned {
			ctx, cancel := context.WithTimeout(jctx, cleanupTimeout)
			err := tm.c.cleanup(ctx, &rec)
			cancel()
			if jctx.Err() != nil {
				return // the term ended: the next leader cleans up
			}
			if err != nil {
				tm.c.logger.Warn("cleaning up a finished job failed; its record's expiry sweeps it", "job", rec.ID, "err", err)
			}
			cleaned = err == nil
		}
		published := slices.Clone(rec.Publications)
		for i, p := range published {
			if p.Status != indexPending || rec.State != stateSucceeded || rec.Result == nil {
				continue
			}
			published[i].Status = tm.publish(jctx, &rec, p.Publisher, rows)
			if jctx.Err() != nil {
				return // the term ended: the next leader publishes
			}
		}
		tm.post(func() {
			if tm.jobs[rec.ID] != j {
				return
			}
			if cleaned != j.rec.Cleaned || !slices.Equal(published, j.rec.Publications) {
				j.rec.Cleaned, j.rec.Publications = cleaned, published
				tm.putJob(j)
			}
			tm.removeJob(j)
		})
	})
}

// publish runs the publisher named name on the committed result of rec
// (whose rows this leader holds, or nil), and returns its status.
func (tm *term) publish(ctx context.Context, rec *jobRecord, name string, rows []schema.Row) string {
	i := slices.IndexFunc(tm.c.cfg.Publishers, func(p Publisher) bool { return p.Name() == name })
	if i < 0 {
		return fmt.Sprintf("error: no publisher %q on coordinator %s", name, tm.c.addr)
	}
	out, err := tm.c.output(ctx, rec.Spec.Out)
	if err == nil {
		if rp, ok := tm.c.cfg.Publishers[i].(RowsPublisher); ok && rows != nil {
			err = rp.PublishRows(ctx, out, *rec.Result, rows)
		} else {
			err = tm.c.cfg.Publishers[i].Publish(ctx, out, *rec.Result)
		}
	}
	if err != nil {
		if ctx.Err() == nil {
			tm.c.logger.Error("publishing a result failed", "job", rec.ID, "publisher", name, "err", err)
		}
		return "error: " + err.Error()
	}
	return indexOK
}
