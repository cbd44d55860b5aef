// Retention: the records of jobs finished longer ago than JobRetention
// are deleted.

package coordinator

import (
	"context"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/dataco/clickstream/internal/results"
)

// jobPruneInterval is how often the leader deletes expired job records.
const jobPruneInterval = 10 * time.Minute

// pruneJobs deletes, now and then until ctx is done, the records of jobs
// that finished more than JobRetention ago. Each record is deleted only if
// it has not changed since it was read, and only while this coordinator
// leads.
func (tm *term) pruneJobs(ctx context.Context) {
	every := tm.c.cfg.pruneInterval
	if every <= 0 {
		every = jobPruneInterval
	}
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		t.Reset(every)
		gctx, cancel := context.WithTimeout(ctx, etcdOpTimeout)
		resp, err := tm.c.cli.Get(gctx, tm.c.keys.Jobs(), clientv3.WithPrefix())
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				tm.c.logger.Warn("listing jobs to prune failed", "err", err)
			}
			continue
		}
		cutoff := time.Now().Add(-tm.c.cfg.JobRetention)
		var expired []expiredJob
		for _, kv := range resp.Kvs {
			rec, err := decode[jobRecord](kv.Value, string(kv.Key))
			if err != nil || !terminal(rec.State) || rec.publishPending() ||
				rec.Finished.IsZero() || !rec.Finished.Before(cutoff) {
				continue
			}
			expired = append(expired, expiredJob{rec: rec, key: string(kv.Key), rev: kv.ModRevision})
		}
		// A batch per transaction, well within etcd's default limit of 128
		// operations. A failed delete only waits for the next round: this
		// is housekeeping, and does not end the leadership term as the
		// scheduler's own transactions do.
		const batch = 32
		for len(expired) > 0 && ctx.Err() == nil {
			n := min(batch, len(expired))
			tm.pruneBatch(ctx, expired[:n], cutoff)
			expired = expired[n:]
		}
	}
}

type expiredJob struct {
	rec *jobRecord
	key string
	rev int64
}

// pruneBatch deletes the records of expired jobs, each only if unchanged
// since read, with their idempotency keys. First it sweeps each job's
// folder in its output store once more: a worker stopped past its lease
// and resumed after the job's cleanup may have written a partial there.
func (tm *term) pruneBatch(ctx context.Context, jobs []expiredJob, cutoff time.Time) {
	conds := []clientv3.Cmp{tm.leaderCmp}
	var ops []clientv3.Op
	for _, e := range jobs {
		sctx, cancel := context.WithTimeout(ctx, cleanupTimeout)
		if out, err := tm.c.output(sctx, e.rec.Spec.Out); err == nil {
			if err := results.DeletePrefix(sctx, out, results.JobPrefix(e.rec.ID)); err != nil {
				tm.c.logger.Warn("sweeping an expired job's folder failed", "job", e.rec.ID, "err", err)
			}
		}
		cancel()
		conds = append(conds, clientv3.Compare(clientv3.ModRevision(e.key), "=", e.rev))
		ops = append(ops, clientv3.OpDelete(e.key), clientv3.OpDelete(tm.c.keys.ActiveJob(e.rec.ID)))
		if k := e.rec.IdempotencyKey; k != "" {
			ops = append(ops, clientv3.OpDelete(tm.c.keys.Submission(k)))
		}
	}
	tctx, cancel := context.WithTimeout(ctx, etcdOpTimeout)
	defer cancel()
	resp, err := tm.c.cli.Txn(tctx).If(conds...).Then(ops...).Commit()
	switch {
	case err != nil:
		if ctx.Err() == nil {
			tm.c.logger.Warn("deleting expired job records failed", "err", err)
		}
	case resp.Succeeded:
		tm.c.metrics.jobsPruned.Add(float64(len(jobs)))
		tm.c.logger.Info("deleted expired job records", "jobs", len(jobs), "finished_before", cutoff)
	}
}
