// Job records: how the leader takes up, tracks and conditionally writes
// the record of each job it runs.

package coordinator

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/dataco/clickstream/internal/schema"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Phases of a job in the leader's memory.
const (
	phaseLoading   = iota // planning or reloading its plan
	phaseRunning          // tasks run
	phaseMerging          // merging partials and committing
	phaseFinishing        // terminal; cleanup and indexing left
)

type jobRun struct {
	rec *jobRecord
	// seen is the record as stored at revision rev: rec is seen plus the
	// change the leader is about to write.
	seen   jobRecord
	rev    int64 // mod revision of seen in etcd
	phase  int
	ctx    context.Context // ends the job's attempts, merge and load
	cancel context.CancelFunc
	plan   *plan
	tasks  []*taskRun
	queue  []int // tasks waiting for a worker, in order
	done   int
	// durations of finished tasks, for the straggler threshold
	durations []time.Duration
	// storeTries counts the failures in a row of the job's current step
	// on its stores (load, merge, commit).
	storeTries int
	// rows is the result this leader merged and committed, held for the
	// publishers that take rows (RowsPublisher) until they have run.
	rows []schema.Row
}

// onJobKV handles a job record read from etcd: at the start of a term,
// and for every change the jobs watch delivers, in revision order.
func (tm *term) onJobKV(kv *mvccpb.KeyValue) {
	id, err := tm.c.keys.JobID(string(kv.Key))
	if err != nil {
		return
	}
	rec, err := decode[jobRecord](kv.Value, "job "+id)
	if err != nil {
		tm.c.logger.Error("ignoring malformed job record", "job", id, "err", err)
		return
	}
	if j := tm.jobs[id]; j != nil {
		if kv.ModRevision <= j.rev {
			return // our own write, or older
		}
		if !sameBut(rec, &j.seen) {
			// Changed by someone other than this leader and a cancel:
			// what this term knows of the job is stale.
			tm.retake(j, kv)
			return
		}
		j.seen, j.rev = *rec, kv.ModRevision
		if rec.CancelRequested && !j.rec.CancelRequested {
			j.rec.CancelRequested = true
			tm.cancelSoon(j)
		}
		return
	}
	if rev, ok := tm.gone[id]; ok && kv.ModRevision <= rev {
		return // the past of a job this term finished
	}
	tm.takeUp(rec, kv.ModRevision)
}

// takeUp starts managing a job found in etcd: one this term has not run.
func (tm *term) takeUp(rec *jobRecord, rev int64) {
	if terminal(rec.State) {
		if !rec.Cleaned || (rec.State == stateSucceeded && rec.publishPending()) {
			j := tm.addJob(rec, rev)
			j.phase = phaseFinishing
			tm.finish(j)
		}
		return
	}
	j := tm.addJob(rec, rev)
	if rec.CancelRequested && rec.State != stateCommitting {
		tm.endJob(j, stateCancelled, "cancelled on request")
		return
	}
	tm.c.logger.Info("taking up job", "job", rec.ID, "state", rec.State)
	tm.load(j)
}

// retake drops what this term knows of a job whose record changed under
// it, and takes the job up again from the record now in etcd.
func (tm *term) retake(j *jobRun, kv *mvccpb.KeyValue) {
	tm.c.logger.Warn("job record changed under the leader; taking it up again", "job", j.rec.ID,
		"known_revision", j.rev, "revision", kv.ModRevision)
	tm.cancelAttempts(j)
	tm.removeJob(j)
	delete(tm.gone, j.rec.ID)
	tm.onJobKV(kv)
}

// sameBut reports whether two job records are equal but for a cancel
// request: the one change to a record that is not the leader's own.
func sameBut(a, b *jobRecord) bool {
	x, y := *a, *b
	x.CancelRequested, y.CancelRequested = false, false
	return encode(&x) == encode(&y)
}

func (tm *term) addJob(rec *jobRecord, rev int64) *jobRun {
	j := &jobRun{rec: rec, seen: *rec, rev: rev}
	j.ctx, j.cancel = context.WithCancel(tm.ctx)
	tm.jobs[rec.ID] = j
	tm.order = append(tm.order, rec.ID)
	return j
}

func (tm *term) removeJob(j *jobRun) {
	j.cancel()
	delete(tm.jobs, j.rec.ID)
	tm.order = slices.DeleteFunc(tm.order, func(id string) bool { return id == j.rec.ID })
	tm.gone[j.rec.ID] = j.rev
}

// forgetGone forgets the finished jobs whose last record the jobs watch
// has delivered: no older event of theirs can follow.
func (tm *term) forgetGone(delivered int64) {
	for id, rev := range tm.gone {
		if rev <= delivered {
			delete(tm.gone, id)
		}
	}
}

// cancelSoon ends j as cancelled once the term is done with the
// event at hand, unless it has ended or is committing by then.
func (tm *term) cancelSoon(j *jobRun) {
	tm.cancels = append(tm.cancels, j)
}

func (tm *term) applyCancels() {
	for len(tm.cancels) > 0 && tm.fatal == nil {
		j := tm.cancels[0]
		tm.cancels = tm.cancels[1:]
		if tm.jobs[j.rec.ID] == j && j.rec.CancelRequested && j.phase != phaseFinishing &&
			!terminal(j.seen.State) && j.seen.State != stateCommitting {
			tm.endJob(j, stateCancelled, "cancelled on request")
		}
	}
}

// dropJob forgets a job whose record was deleted, and its marker of an
// unfinished job.
func (tm *term) dropJob(id string) {
	if j := tm.jobs[id]; j != nil {
		tm.cancelAttempts(j)
		tm.removeJob(j)
		_, _ = tm.txn(nil, clientv3.OpDelete(tm.c.keys.ActiveJob(id))) // an error ends the term
	}
}

// putJob writes j.rec if this coordinator leads and the record is still
// the one last seen (revision j.rev), with extra ops in the same
// transaction: every change of a job's state is one conditional
// transition, and nothing that read an older revision overwrites a newer
// one. A record that changed only by a cancel request is re-read and the
// write retried, unless the write would commit the job's result; a record
// changed in any other way means this term's view of the job is stale:
// the job is taken up again from etcd, and putJob returns false.
func (tm *term) putJob(j *jobRun, extra ...clientv3.Op) bool {
	key := tm.c.keys.Job(j.rec.ID)
	for range 5 {
		ops := append([]clientv3.Op{clientv3.OpPut(key, encode(j.rec))}, extra...)
		resp, err := tm.txnResp([]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", j.rev)}, ops, []clientv3.Op{clientv3.OpGet(key)})
		if err != nil {
			return false
		}
		if resp.Succeeded {
			j.seen, j.rev = *j.rec, resp.Header.Revision
			return true
		}
		kvs := resp.Responses[1].GetResponseRange().GetKvs()
		if len(kvs) == 0 {
			tm.dropJob(j.rec.ID)
			return false
		}
		cur, err := decode[jobRecord](kvs[0].Value, "job")
		if err != nil {
			tm.abort(err)
			return false
		}
		if !sameBut(cur, &j.seen) {
			tm.retake(j, kvs[0])
			return false
		}
		j.seen, j.rev = *cur, kvs[0].ModRevision
		if cur.CancelRequested && !j.rec.CancelRequested {
			j.rec.CancelRequested = true
			tm.cancelSoon(j)
			if j.rec.State == stateCommitting {
				return false // the cancel came first
			}
		}
	}
	tm.abort(fmt.Errorf("coordinator: job %s keeps changing under the leader", j.rec.ID))
	return false
}
