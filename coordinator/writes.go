// The leader's writes of task state, committed in batches off the term's
// goroutine: launches, completions and retries are queued as they are
// decided, and one goroutine at a time commits the queue in as few etcd
// transactions as it takes, so that the event loop never waits for etcd
// on a task's account.

package coordinator

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Bounds of one batch: etcd refuses transactions of more than 128
// operations or comparisons (--max-txn-ops) by default.
const (
	maxBatchOps   = 128
	maxBatchConds = 64
)

// write is one change the leader decided, committed in a batch with
// others, in the order queued, each batch under the leadership check.
type write struct {
	conds []clientv3.Cmp // besides leadership
	ops   []clientv3.Op
	// keys and prefixes are what ops put or delete: a batch holds no key
	// twice (etcd refuses it), so a write that touches a key of the batch
	// goes in the next.
	keys, prefixes []string
	// done, if set, runs on the term's goroutine once the write is
	// committed (ok) or refused: a condition failed, or a lease it
	// attaches to is gone. An etcd error ends the term instead.
	done func(ok bool)
}

// writeResult is what committing a batch came to.
type writeResult struct {
	batch []*write
	ok    []bool
	err   error
}

// queue queues w; flush or the loop commits it.
func (tm *term) queue(w *write) {
	tm.pending = append(tm.pending, w)
}

// startWrites hands the queued writes to a goroutine that commits them,
// unless one is at work: called by the loop after each event.
func (tm *term) startWrites() {
	if tm.writing || len(tm.pending) == 0 || tm.fatal != nil {
		return
	}
	b := tm.takeBatch()
	tm.writing = true
	tm.spawn(func() { tm.written <- tm.commitBatch(b) }) // written has room for one
}

// takeBatch takes the longest prefix of the queue that fits in a batch.
func (tm *term) takeBatch() []*write {
	var ops, conds int
	var keys, prefixes []string
	touches := func(w *write) bool {
		for _, k := range w.keys {
			for _, o := range keys {
				if k == o {
					return true
				}
			}
			for _, p := range prefixes {
				if strings.HasPrefix(k, p) {
					return true
				}
			}
		}
		for _, p := range w.prefixes {
			for _, o := range keys {
				if strings.HasPrefix(o, p) {
					return true
				}
			}
			for _, o := range prefixes {
				if strings.HasPrefix(o, p) || strings.HasPrefix(p, o) {
					return true
				}
			}
		}
		return false
	}
	n := 0
	for _, w := range tm.pending {
		if n > 0 && (ops+len(w.ops) > maxBatchOps || conds+len(w.conds) > maxBatchConds || touches(w)) {
			break
		}
		ops += len(w.ops)
		conds += len(w.conds)
		keys = append(keys, w.keys...)
		prefixes = append(prefixes, w.prefixes...)
		n++
	}
	b := tm.pending[:n:n]
	tm.pending = tm.pending[n:]
	if len(tm.pending) == 0 {
		tm.pending = nil
	}
	return b
}

// commitBatch commits a batch in one transaction; if a condition of one
// of its writes fails, or a lease one of them attaches to is gone, it
// commits them one by one to tell which. It runs off the term's
// goroutine and touches nothing of the term's state.
func (tm *term) commitBatch(b []*write) writeResult {
	r := writeResult{batch: b, ok: make([]bool, len(b))}
	var conds []clientv3.Cmp
	var ops []clientv3.Op
	for _, w := range b {
		conds = append(conds, w.conds...)
		ops = append(ops, w.ops...)
	}
	ok, err := tm.commitWrite(conds, ops)
	if err == nil && ok {
		for i := range r.ok {
			r.ok[i] = true
		}
		return r
	}
	if err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		r.err = err
		return r
	}
	if len(b) == 1 {
		return r // refused: r.ok[0] is false
	}
	for i, w := range b {
		ok, err := tm.commitWrite(w.conds, w.ops)
		if err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			r.err = err
			return r
		}
		r.ok[i] = ok && err == nil
	}
	return r
}

// commitWrite runs ops if this coordinator still leads and conds hold:
// false if a cond failed, errLostLeadership if the leadership did, and
// rpctypes.ErrLeaseNotFound as etcd says it.
func (tm *term) commitWrite(conds []clientv3.Cmp, ops []clientv3.Op) (bool, error) {
	ctx, cancel := context.WithTimeout(tm.ctx, etcdOpTimeout)
	defer cancel()
	resp, err := tm.c.cli.Txn(ctx).If(append([]clientv3.Cmp{tm.leaderCmp}, conds...)...).Then(ops...).
		Else(clientv3.OpGet(tm.leaderKey, clientv3.WithKeysOnly())).Commit()
	if err != nil {
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return false, err
		}
		return false, fmt.Errorf("coordinator: etcd txn: %w", err)
	}
	if !resp.Succeeded {
		kvs := resp.Responses[0].GetResponseRange().GetKvs()
		if len(conds) == 0 || len(kvs) == 0 || kvs[0].CreateRevision != tm.leaderRev {
			return false, errLostLeadership
		}
	}
	return resp.Succeeded, nil
}

// onWritten acts on a committed batch, on the term's goroutine.
func (tm *term) onWritten(r writeResult) {
	tm.writing = false
	if r.err != nil {
		tm.abort(r.err)
		return
	}
	for i, w := range r.batch {
		if w.done != nil && tm.fatal == nil {
			w.done(r.ok[i])
		}
	}
}

// flush commits every queued write, and waits for the batch being
// committed: a transaction of the term's own (txn) follows the writes
// decided before it, as if they had been written at once.
func (tm *term) flush() {
	for tm.fatal == nil && (tm.writing || len(tm.pending) > 0) {
		if tm.writing {
			tm.onWritten(<-tm.written)
			continue
		}
		b := tm.takeBatch()
		tm.writing = true
		tm.onWritten(tm.commitBatch(b))
	}
}
