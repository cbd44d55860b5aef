// Workers as the leader sees them: registrations and their leases.

package coordinator

import (
	"fmt"
	"slices"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/dataco/clickstream/internal/cluster"
)

// workerState is a live worker as the leader sees it.
type workerState struct {
	info      cluster.WorkerInfo
	lease     clientv3.LeaseID
	createRev int64
	running   int
	excluded  time.Time // no new task before this
}

func (w *workerState) free() int { return max(1, w.info.Parallelism) - w.running }

func (tm *term) putWorker(kv *mvccpb.KeyValue) {
	id, err := tm.c.keys.WorkerID(string(kv.Key))
	if err != nil {
		return
	}
	info, err := decode[cluster.WorkerInfo](kv.Value, "worker "+id)
	if err != nil || info.Addr == "" {
		tm.c.logger.Warn("ignoring malformed worker registration", "worker", id, "err", err)
		return
	}
	if w := tm.workers[id]; w != nil {
		if w.createRev == kv.CreateRevision {
			w.info = *info // e.g. draining now
			return
		}
		tm.removeWorker(id, "it registered again")
	}
	tm.workers[id] = &workerState{info: *info, lease: clientv3.LeaseID(kv.Lease), createRev: kv.CreateRevision}
	tm.c.logger.Info("worker joined", "worker", id, "addr", info.Addr, "parallelism", info.Parallelism)
}

// removeWorker forgets a worker and loses its attempts.
func (tm *term) removeWorker(id, why string) {
	w := tm.workers[id]
	if w == nil {
		return
	}
	delete(tm.workers, id)
	tm.c.logger.Info("worker left", "worker", id, "why", why)
	for _, jid := range slices.Clone(tm.order) {
		j := tm.jobs[jid]
		if j == nil {
			continue
		}
		for _, t := range j.tasks {
			for _, a := range t.attempts {
				if a.worker == w {
					tm.lose(j, t, a, fmt.Sprintf("worker %s left: %s", id, why))
				}
			}
		}
	}
	if tm.c.grpcRun != nil {
		tm.c.grpcRun.forget(w.info.ID)
	}
}

// onLeaseDeleted handles a vanished attempt lease: the worker's lease
// expired (it died or lost etcd), or someone ended the attempt.
func (tm *term) onLeaseDeleted(key string) {
	id, n, attempt, err := tm.c.keys.LeaseID(key)
	if err != nil {
		return
	}
	j := tm.jobs[id]
	if j == nil || n >= len(j.tasks) {
		return
	}
	t := j.tasks[n]
	if a := t.attempts[attempt]; a != nil {
		tm.lose(j, t, a, fmt.Sprintf("attempt %d: worker %s lost its lease", attempt, a.worker.info.ID))
	}
}

// reconcile loses attempts whose worker is gone: a safety net under the
// lease watch.
func (tm *term) reconcile() {
	for _, id := range slices.Clone(tm.order) {
		j := tm.jobs[id]
		if j == nil {
			continue
		}
		for _, t := range j.tasks {
			for _, a := range t.attempts {
				if tm.workers[a.worker.info.ID] != a.worker {
					tm.lose(j, t, a, fmt.Sprintf("attempt %d: worker %s is gone", a.n, a.worker.info.ID))
				}
			}
		}
	}
}
