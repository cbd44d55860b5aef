// One leadership term: the event loop that owns all of the leader's job
// and worker state, and the leader-guarded etcd transactions it writes with.

package coordinator

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/dataco/clickstream/internal/cluster"
)

const (
	tickInterval   = 250 * time.Millisecond
	excludeFor     = 3 * time.Second // a suspect worker gets no task this long, if it cannot be probed
	maxBackups     = 3               // backup attempts per task
	etcdOpTimeout  = 10 * time.Second
	cleanupTimeout = time.Minute
)

// term is the state of one leadership term. Everything but the
// goroutines it starts (RPCs, lake I/O) runs on the goroutine of run;
// those goroutines report back through post.
type term struct {
	c         *Coordinator
	ses       *concurrency.Session
	leaderKey string
	leaderRev int64
	leaderCmp clientv3.Cmp
	ctx       context.Context
	events    chan func()
	wg        sync.WaitGroup
	fatal     error

	workers map[string]*workerState
	// idx orders the workers that may take a new attempt (placement.go).
	idx   workerIndex
	jobs  map[string]*jobRun
	order []string // job ids, oldest first
	// gone holds, for jobs this term finished and forgot, the revision of
	// their last record, until the jobs watch has delivered it: an older
	// event of such a job that arrives later is its own past, not news.
	gone map[string]int64
	// cancels are jobs with a cancel request to act on (cancelSoon).
	cancels []*jobRun
	// loads are the jobs waiting for a planner, oldest first (load), and
	// plans hands the first of them to the next planner free.
	loads []*jobRun
	plans chan loadReq
	// pending are the writes queued for the next batch (writes.go);
	// writing tells whether a batch is being committed, whose result
	// comes on written.
	pending []*write
	writing bool
	written chan writeResult
	// observed is when observe last set the cluster's gauges.
	observed time.Time
}

// newTerm returns the state of a term led through the election key
// leaderKey, created at revision leaderRev.
func newTerm(c *Coordinator, ses *concurrency.Session, leaderKey string, leaderRev int64) *term {
	return &term{
		c:         c,
		ses:       ses,
		leaderKey: leaderKey,
		leaderRev: leaderRev,
		leaderCmp: clientv3.Compare(clientv3.CreateRevision(leaderKey), "=", leaderRev),
		events:    make(chan func(), 256),
		plans:     make(chan loadReq),
		written:   make(chan writeResult, 1),
		workers:   make(map[string]*workerState),
		jobs:      make(map[string]*jobRun),
		gone:      make(map[string]int64),
	}
}

// post runs f on the term's goroutine, unless the term is over.
func (tm *term) post(f func()) {
	select {
	case tm.events <- f:
	case <-tm.ctx.Done():
	}
}

// spawn runs f on a goroutine owned by the term.
func (tm *term) spawn(f func()) {
	tm.wg.Add(1)
	go func() {
		defer tm.wg.Done()
		f()
	}()
}

func (tm *term) abort(err error) {
	if tm.fatal == nil {
		tm.fatal = err
	}
}

func (tm *term) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	tm.ctx = ctx
	defer func() {
		cancel()
		tm.wg.Wait()
	}()
	for range tm.c.cfg.PlanningParallelism {
		tm.spawn(tm.planner)
	}
	cli, keys := tm.c.cli, tm.c.keys
	if _, err := tm.txn(nil, clientv3.OpPut(keys.Settings(), encode(cluster.Settings{
		WorkerTTLSeconds: int((tm.c.cfg.WorkerTTL + time.Second - 1) / time.Second),
	}))); err != nil {
		return err
	}
	wresp, err := cli.Get(ctx, keys.Workers(), clientv3.WithPrefix())
	if err != nil {
		return fmt.Errorf("coordinator: list workers: %w", err)
	}
	for _, kv := range wresp.Kvs {
		tm.putWorker(kv)
	}
	jresp, err := cli.Get(ctx, keys.Jobs(), clientv3.WithPrefix())
	if err != nil {
		return fmt.Errorf("coordinator: list jobs: %w", err)
	}
	wctx := clientv3.WithRequireLeader(ctx)
	wch := cli.Watch(wctx, keys.Workers(), clientv3.WithPrefix(), clientv3.WithRev(wresp.Header.Revision+1))
	jch := cli.Watch(wctx, keys.Jobs(), clientv3.WithPrefix(), clientv3.WithRev(jresp.Header.Revision+1))
	// Only deletions: the leader writes every attempt lease itself.
	lch := cli.Watch(wctx, keys.AllLeases(), clientv3.WithPrefix(), clientv3.WithRev(jresp.Header.Revision+1), clientv3.WithFilterPut())
	if err := tm.reconcileActive(jresp.Kvs, jresp.Header.Revision); err != nil {
		return err
	}
	for _, kv := range jresp.Kvs {
		tm.onJobKV(kv)
	}
	if tm.c.cfg.JobRetention > 0 {
		tm.spawn(func() { tm.pruneJobs(ctx) })
	}
	tick := time.NewTicker(tickInterval)
	defer tick.Stop()
	for tm.fatal == nil {
		tm.applyCancels()
		tm.dispatch()
		tm.startWrites()
		if tm.fatal != nil {
			break
		}
		var plans chan loadReq // nil, which never sends, while no job waits
		next, ok := tm.nextLoad()
		if ok {
			plans = tm.plans
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tm.ses.Done():
			return errLostLeadership
		case plans <- next:
			tm.loads[0] = nil
			tm.loads = tm.loads[1:]
		case f := <-tm.events:
			f()
		case r := <-tm.written:
			tm.onWritten(r)
		case wr, ok := <-wch:
			if !ok || wr.Err() != nil {
				return watchEnded("workers", wr.Err())
			}
			for _, ev := range wr.Events {
				if ev.Type == mvccpb.PUT {
					tm.putWorker(ev.Kv)
				} else if id, err := keys.WorkerID(string(ev.Kv.Key)); err == nil {
					tm.removeWorker(id, "its registration vanished")
				}
			}
		case wr, ok := <-jch:
			if !ok || wr.Err() != nil {
				return watchEnded("jobs", wr.Err())
			}
			for _, ev := range wr.Events {
				if ev.Type == mvccpb.PUT {
					tm.onJobKV(ev.Kv)
				} else if id, err := keys.JobID(string(ev.Kv.Key)); err == nil {
					tm.dropJob(id)
				}
			}
			if n := len(wr.Events); n > 0 {
				tm.forgetGone(wr.Events[n-1].Kv.ModRevision)
			}
		case wr, ok := <-lch:
			if !ok || wr.Err() != nil {
				return watchEnded("leases", wr.Err())
			}
			for _, ev := range wr.Events {
				if ev.Type == mvccpb.DELETE {
					tm.onLeaseDeleted(string(ev.Kv.Key))
				}
			}
		case now := <-tick.C:
			tm.backups()
			tm.observe(now)
		}
	}
	return tm.fatal
}

// txn runs ops if this coordinator still leads and conds hold. It returns
// false if a cond failed. Losing leadership or an etcd error ends the term
// (the next term reloads everything from etcd) and is returned.
func (tm *term) txn(conds []clientv3.Cmp, ops ...clientv3.Op) (bool, error) {
	resp, err := tm.txnResp(conds, ops, nil)
	if err != nil {
		return false, err
	}
	return resp.Succeeded, nil
}

func (tm *term) txnResp(conds []clientv3.Cmp, ops, elseOps []clientv3.Op) (*clientv3.TxnResponse, error) {
	if tm.fatal != nil {
		return nil, tm.fatal
	}
	tm.flush() // the writes decided before this one go first
	if tm.fatal != nil {
		return nil, tm.fatal
	}
	ctx, cancel := context.WithTimeout(tm.ctx, etcdOpTimeout)
	defer cancel()
	if len(conds) > 0 {
		// Find out which condition failed.
		elseOps = append([]clientv3.Op{clientv3.OpGet(tm.leaderKey)}, elseOps...)
	}
	resp, err := tm.c.cli.Txn(ctx).If(append([]clientv3.Cmp{tm.leaderCmp}, conds...)...).Then(ops...).Else(elseOps...).Commit()
	if err != nil {
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return nil, err // the caller's business: a worker's lease expired
		}
		err = fmt.Errorf("coordinator: etcd txn: %w", err)
		tm.abort(err)
		return nil, err
	}
	if !resp.Succeeded {
		if len(conds) == 0 {
			tm.abort(errLostLeadership)
			return nil, errLostLeadership
		}
		kvs := resp.Responses[0].GetResponseRange().GetKvs()
		if len(kvs) == 0 || kvs[0].CreateRevision != tm.leaderRev {
			tm.abort(errLostLeadership)
			return nil, errLostLeadership
		}
	}
	return resp, nil
}

// later runs f on the term's goroutine after d, unless j ends first.
func (tm *term) later(j *jobRun, d time.Duration, f func()) {
	done := j.ctx.Done() // endJob replaces j.ctx
	tm.spawn(func() {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			tm.post(func() {
				if tm.jobs[j.rec.ID] == j {
					f()
				}
			})
		case <-done:
		}
	})
}

// watchEnded is the error that ends a term whose watch of what ended with
// err (nil: the channel closed).
func watchEnded(what string, err error) error {
	if err == nil {
		err = errors.New("channel closed")
	}
	return fmt.Errorf("coordinator: %s watch ended: %w", what, err)
}

// reconcileActive makes the markers of unfinished jobs (Keys.ActiveJob,
// which --max-active-jobs counts) agree with jobs, the job records read
// at revision rev: a marker whose job was finished or gone at rev is
// deleted (a record deleted by hand; job ids are never reused), and a job
// unfinished at rev without a marker gets one (a job submitted before
// markers existed), unless its record has changed since.
func (tm *term) reconcileActive(jobs []*mvccpb.KeyValue, rev int64) error {
	keys := tm.c.keys
	ctx, cancel := context.WithTimeout(tm.ctx, etcdOpTimeout)
	defer cancel()
	resp, err := tm.c.cli.Get(ctx, keys.Active(), clientv3.WithPrefix(), clientv3.WithKeysOnly(), clientv3.WithRev(rev))
	if err != nil {
		return fmt.Errorf("coordinator: list active jobs: %w", err)
	}
	unfinished := map[string]*mvccpb.KeyValue{}
	for _, kv := range jobs {
		id, err := keys.JobID(string(kv.Key))
		if err != nil {
			continue
		}
		if rec, err := decode[jobRecord](kv.Value, "job "+id); err == nil && !terminal(rec.State) {
			unfinished[id] = kv
		}
	}
	var stale []clientv3.Op
	for _, kv := range resp.Kvs {
		id := strings.TrimPrefix(string(kv.Key), keys.Active())
		if unfinished[id] == nil {
			stale = append(stale, clientv3.OpDelete(string(kv.Key)))
		}
		delete(unfinished, id)
	}
	for len(stale) > 0 {
		n := min(len(stale), 64) // well within etcd's 128 operations per transaction
		if _, err := tm.txn(nil, stale[:n]...); err != nil {
			return err
		}
		stale = stale[n:]
	}
	for id, kv := range unfinished {
		if _, err := tm.txn([]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(string(kv.Key)), "=", kv.ModRevision)},
			clientv3.OpPut(keys.ActiveJob(id), "")); err != nil {
			return err
		}
	}
	return nil
}
