// Workers as the leader sees them: registrations and their leases.

package coordinator

import (
	"context"
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
	// unverified: the registration's address has not yet proved the
	// worker's identity (verifyWorker); no new task until it has.
	unverified bool
	checks     int    // verifications started: a result of an older one is stale
	verifyErr  string // the last failed verification, logged when it changes
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
	if info.ID != id {
		tm.c.logger.Warn("ignoring a worker registration naming another worker", "key", id, "id", info.ID)
		return
	}
	if w := tm.workers[id]; w != nil {
		if w.createRev == kv.CreateRevision {
			moved := w.info.Addr != info.Addr
			w.info = *info // e.g. draining now
			if moved {
				tm.verifyWorker(w)
			}
			return
		}
		tm.removeWorker(id, "it registered again")
	}
	w := &workerState{info: *info, lease: clientv3.LeaseID(kv.Lease), createRev: kv.CreateRevision}
	tm.workers[id] = w
	tm.c.logger.Info("worker joined", "worker", id, "addr", info.Addr, "parallelism", info.Parallelism)
	tm.verifyWorker(w)
}

// Verification of a worker's identity (with mutual TLS).
const (
	verifyTimeout = 5 * time.Second // one handshake with a worker
	verifyRetry   = 5 * time.Second // between the checks of a worker that failed one
)

// verifyWorker keeps w from new tasks until the address of its
// registration proves, in a TLS handshake, the identity its worker id
// names (spiffe://clickstream/worker/<id>): anyone who may write a
// registration in etcd could otherwise point it at another worker, or at
// a server of no worker, and have tasks lost there or their results
// written by whoever answers. A failed check is repeated every verifyRetry
// while the registration lasts (a worker may be slow to answer). Without a
// verifier (plain text) w is taken as it is.
func (tm *term) verifyWorker(w *workerState) {
	v := tm.c.verifier
	if v == nil {
		return
	}
	w.unverified = true
	w.checks++
	check, id, addr := w.checks, w.info.ID, w.info.Addr
	tm.spawn(func() {
		ctx, cancel := context.WithTimeout(tm.ctx, verifyTimeout)
		err := v.VerifyWorker(ctx, id, addr)
		cancel()
		tm.post(func() { tm.onVerified(w, check, err) })
	})
}

// onVerified acts on the outcome of w's verification number check.
func (tm *term) onVerified(w *workerState, check int, err error) {
	if tm.workers[w.info.ID] != w || w.checks != check {
		return // gone, or its address changed since
	}
	if err == nil {
		if w.verifyErr != "" {
			tm.c.logger.Info("worker verified: it gets tasks now", "worker", w.info.ID, "addr", w.info.Addr)
		}
		w.unverified, w.verifyErr = false, ""
		return
	}
	if msg := err.Error(); msg != w.verifyErr {
		w.verifyErr = msg
		tm.c.logger.Warn("worker gets no task: its address does not prove its identity", "worker", w.info.ID, "addr", w.info.Addr, "err", err)
	}
	tm.spawn(func() {
		t := time.NewTimer(verifyRetry)
		defer t.Stop()
		select {
		case <-t.C:
			tm.post(func() {
				if tm.workers[w.info.ID] == w && w.checks == check {
					tm.verifyWorker(w)
				}
			})
		case <-tm.ctx.Done():
		}
	})
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
