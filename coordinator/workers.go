// Workers as the leader sees them: registrations and their leases.

package coordinator

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
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
	// attempts are the attempts running on it, each with its job and
	// task: what is lost when it leaves.
	attempts map[*attemptRun]attemptOf
	// suspect: a call to it failed; no new task until it answers a
	// probe or writes its registration again (suspectWorker).
	suspect bool
	probes  int // probes started: a result of an older one is stale
	// pos is its place in the term's workerIndex; -1 when out of it.
	pos int
	// gone: the term forgot it (removeWorker); what still refers to it
	// (attempts ending) cannot put it back in the index.
	gone bool
	// unverified: the registration's address has not yet proved the
	// worker's identity (verifyWorker); no new task until it has.
	unverified bool
	checks     int    // verifications started: a result of an older one is stale
	verifyErr  string // the last failed verification, logged when it changes
}

// attemptOf is the job and task of a running attempt.
type attemptOf struct {
	j *jobRun
	t *taskRun
}

func newWorkerState(info cluster.WorkerInfo, lease clientv3.LeaseID, createRev int64) *workerState {
	return &workerState{info: info, lease: lease, createRev: createRev, attempts: map[*attemptRun]attemptOf{}, pos: -1}
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
			if w.suspect {
				// It wrote its registration: it is alive.
				tm.clearSuspect(w, "it wrote its registration again")
			}
			if moved {
				tm.verifyWorker(w)
			}
			tm.idx.update(w)
			return
		}
		tm.removeWorker(id, "it registered again")
	}
	w := newWorkerState(*info, clientv3.LeaseID(kv.Lease), kv.CreateRevision)
	tm.workers[id] = w
	tm.c.logger.Info("worker joined", "worker", id, "addr", info.Addr, "parallelism", info.Parallelism)
	tm.verifyWorker(w)
	tm.idx.update(w)
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
	tm.idx.update(w)
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
		tm.idx.update(w)
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

// removeWorker forgets a worker and loses its attempts: O(its attempts).
func (tm *term) removeWorker(id, why string) {
	w := tm.workers[id]
	if w == nil {
		return
	}
	delete(tm.workers, id)
	w.gone = true
	tm.idx.remove(w)
	tm.c.logger.Info("worker left", "worker", id, "why", why)
	lost := make([]*attemptRun, 0, len(w.attempts))
	for a := range w.attempts {
		lost = append(lost, a)
	}
	// In the order of jobs and tasks, so that their retries queue in it.
	slices.SortFunc(lost, func(a, b *attemptRun) int {
		x, y := w.attempts[a], w.attempts[b]
		return cmp.Or(strings.Compare(x.j.rec.ID, y.j.rec.ID), cmp.Compare(x.t.n, y.t.n), cmp.Compare(a.n, b.n))
	})
	for _, a := range lost {
		of, ok := w.attempts[a]
		switch {
		case !ok || tm.jobs[of.j.rec.ID] != of.j:
		case !a.recorded:
			// Launched, not yet recorded: its record will be refused
			// (the worker's registration or lease is gone), and it never
			// ran. Taken back, it is no loss.
			tm.unlaunch(of.j, of.t, a)
		default:
			tm.lose(of.j, of.t, a, fmt.Sprintf("worker %s left: %s", id, why))
		}
	}
	if tm.c.grpcRun != nil {
		tm.c.grpcRun.forget(w.info.ID)
	}
}

// suspectProbe is how long after a failed call, or a failed probe, a
// suspect worker is probed (again); excludeFor, how long a suspect worker
// stays out when the runner cannot probe workers.
const suspectProbe = 500 * time.Millisecond

// workerProber is a TaskRunner that can tell whether a worker answers
// (grpcRunner: the worker's gRPC health service says it serves).
type workerProber interface {
	ProbeWorker(ctx context.Context, workerID, addr string) error
}

// suspectWorker stops new tasks to w at once after a call to it failed as
// if it were gone (Unavailable): a worker that died keeps its lease, and
// its registration, for up to the worker TTL, and every task given to it
// meanwhile would be lost as well. It gets tasks again once it answers a
// probe, or writes its registration again; its lease expiring removes it.
func (tm *term) suspectWorker(w *workerState, why string) {
	if tm.workers[w.info.ID] != w || w.suspect {
		return
	}
	w.suspect = true
	tm.idx.update(w)
	tm.c.metrics.suspects.Inc()
	tm.c.logger.Info("worker suspect: no new task until it answers", "worker", w.info.ID, "why", why)
	tm.probeWorker(w)
}

// probeWorker probes a suspect worker after suspectProbe.
func (tm *term) probeWorker(w *workerState) {
	w.probes++
	probe, id, addr := w.probes, w.info.ID, w.info.Addr
	p, _ := tm.c.runner.(workerProber)
	tm.spawn(func() {
		t := time.NewTimer(suspectProbe)
		if p == nil {
			t.Reset(excludeFor)
		}
		select {
		case <-t.C:
		case <-tm.ctx.Done():
			t.Stop()
			return
		}
		var err error
		if p != nil {
			ctx, cancel := context.WithTimeout(tm.ctx, verifyTimeout)
			err = p.ProbeWorker(ctx, id, addr)
			cancel()
		}
		tm.post(func() {
			if tm.workers[id] != w || !w.suspect || w.probes != probe {
				return // gone, cleared, or probed anew since
			}
			if err != nil {
				tm.c.logger.Debug("suspect worker does not answer", "worker", id, "err", err)
				tm.probeWorker(w)
				return
			}
			tm.clearSuspect(w, "it answers")
		})
	})
}

// clearSuspect gives a suspect worker tasks again.
func (tm *term) clearSuspect(w *workerState, why string) {
	w.suspect = false
	w.probes++ // a probe in flight is stale
	tm.idx.update(w)
	tm.c.logger.Info("worker no longer suspect", "worker", w.info.ID, "why", why)
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
