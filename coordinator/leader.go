package coordinator

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/dataco/clickstream/internal/cluster"
	"github.com/dataco/clickstream/internal/results"
	pb "github.com/dataco/clickstream/proto/clickstream/v1"
)

// errLostLeadership ends a term: a leader-guarded write found that this
// coordinator no longer leads.
var errLostLeadership = errors.New("coordinator: lost leadership")

const (
	tickInterval   = 250 * time.Millisecond
	excludeFor     = 3 * time.Second // a worker that answered Unavailable gets no task this long
	maxBackups     = 3               // backup attempts per task
	etcdOpTimeout  = 10 * time.Second
	cleanupTimeout = time.Minute
)

// campaign runs for leadership until ctx ends; each won term runs a
// scheduler until leadership is lost or ctx ends.
func (c *Coordinator) campaign(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := c.term(ctx)
		if ctx.Err() != nil {
			return
		}
		c.logger.Warn("leadership term ended", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// term waits to be elected, then leads until something ends the term.
// Closing the session on the way out revokes its lease, which deletes the
// election key: a standby takes over at once.
func (c *Coordinator) term(ctx context.Context) error {
	ttl := int((c.cfg.LeaderTTL + time.Second - 1) / time.Second)
	ses, err := concurrency.NewSession(c.cli, concurrency.WithTTL(ttl))
	if err != nil {
		return fmt.Errorf("coordinator: election session: %w", err)
	}
	defer ses.Close()
	el := concurrency.NewElection(ses, c.keys.Election())
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-ses.Done():
			cancel()
		case <-cctx.Done():
		}
	}()
	if err := el.Campaign(cctx, c.addr); err != nil {
		return fmt.Errorf("coordinator: campaign: %w", err)
	}
	c.leader.Store(true)
	c.metrics.leader.Set(1)
	defer func() {
		c.leader.Store(false)
		c.metrics.leader.Set(0)
	}()
	c.logger.Info("leading the cluster", "addr", c.addr)
	s := &scheduler{
		c:         c,
		ses:       ses,
		leaderKey: el.Key(),
		leaderRev: el.Rev(),
		leaderCmp: clientv3.Compare(clientv3.CreateRevision(el.Key()), "=", el.Rev()),
		events:    make(chan func(), 256),
		workers:   make(map[string]*workerState),
		jobs:      make(map[string]*jobRun),
		gone:      make(map[string]int64),
	}
	return s.run(cctx)
}

// workerState is a live worker as the leader sees it.
type workerState struct {
	info      cluster.WorkerInfo
	lease     clientv3.LeaseID
	createRev int64
	running   int
	excluded  time.Time // no new task before this
}

func (w *workerState) free() int { return max(1, w.info.Parallelism) - w.running }

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
}

type taskRun struct {
	n        int
	pt       planTask
	rec      taskRecord
	attempts map[int]*attemptRun // running ones
	failedOn map[string]bool     // workers where an attempt failed
	queued   bool
}

type attemptRun struct {
	n       int
	worker  *workerState
	started time.Time
	backup  bool
	cancel  context.CancelFunc
}

// errTaskTimeout is the cause of an attempt's context when the attempt
// outlives Config.TaskTimeout.
var errTaskTimeout = errors.New("task attempt timed out")

// scheduler is the state of one leadership term. Everything but the
// goroutines it starts (RPCs, lake I/O) runs on the goroutine of run;
// those goroutines report back through post.
type scheduler struct {
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
	jobs    map[string]*jobRun
	order   []string // job ids, oldest first
	// gone holds, for jobs this term finished and forgot, the revision of
	// their last record, until the jobs watch has delivered it: an older
	// event of such a job that arrives later is its own past, not news.
	gone map[string]int64
	// cancels are jobs with a cancel request to act on (cancelSoon).
	cancels []*jobRun
}

// post runs f on the scheduler's goroutine, unless the term is over.
func (s *scheduler) post(f func()) {
	select {
	case s.events <- f:
	case <-s.ctx.Done():
	}
}

// spawn runs f on a goroutine owned by the term.
func (s *scheduler) spawn(f func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
}

func (s *scheduler) abort(err error) {
	if s.fatal == nil {
		s.fatal = err
	}
}

func (s *scheduler) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	s.ctx = ctx
	defer func() {
		cancel()
		s.wg.Wait()
	}()
	cli, keys := s.c.cli, s.c.keys
	if _, err := s.txn(nil, clientv3.OpPut(keys.Settings(), encode(cluster.Settings{
		WorkerTTLSeconds: int((s.c.cfg.WorkerTTL + time.Second - 1) / time.Second),
	}))); err != nil {
		return err
	}
	wresp, err := cli.Get(ctx, keys.Workers(), clientv3.WithPrefix())
	if err != nil {
		return fmt.Errorf("coordinator: list workers: %w", err)
	}
	for _, kv := range wresp.Kvs {
		s.putWorker(kv)
	}
	jresp, err := cli.Get(ctx, keys.Jobs(), clientv3.WithPrefix())
	if err != nil {
		return fmt.Errorf("coordinator: list jobs: %w", err)
	}
	wctx := clientv3.WithRequireLeader(ctx)
	wch := cli.Watch(wctx, keys.Workers(), clientv3.WithPrefix(), clientv3.WithRev(wresp.Header.Revision+1))
	jch := cli.Watch(wctx, keys.Jobs(), clientv3.WithPrefix(), clientv3.WithRev(jresp.Header.Revision+1))
	lch := cli.Watch(wctx, keys.AllLeases(), clientv3.WithPrefix(), clientv3.WithRev(jresp.Header.Revision+1))
	for _, kv := range jresp.Kvs {
		s.onJobKV(kv)
	}
	if s.c.cfg.JobRetention > 0 {
		s.spawn(func() { s.pruneJobs(ctx) })
	}
	tick := time.NewTicker(tickInterval)
	defer tick.Stop()
	for s.fatal == nil {
		s.applyCancels()
		s.schedule()
		if s.fatal != nil {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.ses.Done():
			return errLostLeadership
		case f := <-s.events:
			f()
		case wr, ok := <-wch:
			if !ok || wr.Err() != nil {
				return fmt.Errorf("coordinator: workers watch ended: %v", wr.Err())
			}
			for _, ev := range wr.Events {
				if ev.Type == mvccpb.PUT {
					s.putWorker(ev.Kv)
				} else if id, err := keys.WorkerID(string(ev.Kv.Key)); err == nil {
					s.removeWorker(id, "its registration vanished")
				}
			}
		case wr, ok := <-jch:
			if !ok || wr.Err() != nil {
				return fmt.Errorf("coordinator: jobs watch ended: %v", wr.Err())
			}
			for _, ev := range wr.Events {
				if ev.Type == mvccpb.PUT {
					s.onJobKV(ev.Kv)
				} else if id, err := keys.JobID(string(ev.Kv.Key)); err == nil {
					s.dropJob(id)
				}
			}
			if n := len(wr.Events); n > 0 {
				s.forgetGone(wr.Events[n-1].Kv.ModRevision)
			}
		case wr, ok := <-lch:
			if !ok || wr.Err() != nil {
				return fmt.Errorf("coordinator: leases watch ended: %v", wr.Err())
			}
			for _, ev := range wr.Events {
				if ev.Type == mvccpb.DELETE {
					s.onLeaseDeleted(string(ev.Kv.Key))
				}
			}
		case <-tick.C:
			s.reconcile()
			s.backups()
		}
	}
	return s.fatal
}

// jobPruneInterval is how often the leader deletes expired job records.
const jobPruneInterval = 10 * time.Minute

// pruneJobs deletes, now and then until ctx is done, the records of jobs
// that finished more than JobRetention ago. Each record is deleted only if
// it has not changed since it was read, and only while this coordinator
// leads.
func (s *scheduler) pruneJobs(ctx context.Context) {
	every := s.c.cfg.pruneInterval
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
		resp, err := s.c.cli.Get(gctx, s.c.keys.Jobs(), clientv3.WithPrefix())
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				s.c.logger.Warn("listing jobs to prune failed", "err", err)
			}
			continue
		}
		cutoff := time.Now().Add(-s.c.cfg.JobRetention)
		var expired []expiredJob
		for _, kv := range resp.Kvs {
			rec, err := decode[jobRecord](kv.Value, string(kv.Key))
			if err != nil || !terminal(rec.State) || rec.IndexerStatus == indexPending ||
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
			s.pruneBatch(ctx, expired[:n], cutoff)
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
func (s *scheduler) pruneBatch(ctx context.Context, jobs []expiredJob, cutoff time.Time) {
	conds := []clientv3.Cmp{s.leaderCmp}
	var ops []clientv3.Op
	for _, e := range jobs {
		sctx, cancel := context.WithTimeout(ctx, cleanupTimeout)
		if out, err := s.c.store(sctx, e.rec.Spec.Out); err == nil {
			if err := results.DeletePrefix(sctx, out, results.JobPrefix(e.rec.ID)); err != nil {
				s.c.logger.Warn("sweeping an expired job's folder failed", "job", e.rec.ID, "err", err)
			}
		}
		cancel()
		conds = append(conds, clientv3.Compare(clientv3.ModRevision(e.key), "=", e.rev))
		ops = append(ops, clientv3.OpDelete(e.key))
		if k := e.rec.IdempotencyKey; k != "" {
			ops = append(ops, clientv3.OpDelete(s.c.keys.Submission(k)))
		}
	}
	tctx, cancel := context.WithTimeout(ctx, etcdOpTimeout)
	defer cancel()
	resp, err := s.c.cli.Txn(tctx).If(conds...).Then(ops...).Commit()
	switch {
	case err != nil:
		if ctx.Err() == nil {
			s.c.logger.Warn("deleting expired job records failed", "err", err)
		}
	case resp.Succeeded:
		s.c.metrics.jobsPruned.Add(float64(len(jobs)))
		s.c.logger.Info("deleted expired job records", "jobs", len(jobs), "finished_before", cutoff)
	}
}

// txn runs ops if this coordinator still leads and conds hold. It returns
// false if a cond failed. Losing leadership or an etcd error ends the term
// (the next term reloads everything from etcd) and is returned.
func (s *scheduler) txn(conds []clientv3.Cmp, ops ...clientv3.Op) (bool, error) {
	resp, err := s.txnResp(conds, ops, nil)
	if err != nil {
		return false, err
	}
	return resp.Succeeded, nil
}

func (s *scheduler) txnResp(conds []clientv3.Cmp, ops, elseOps []clientv3.Op) (*clientv3.TxnResponse, error) {
	if s.fatal != nil {
		return nil, s.fatal
	}
	ctx, cancel := context.WithTimeout(s.ctx, etcdOpTimeout)
	defer cancel()
	if len(conds) > 0 {
		// Find out which condition failed.
		elseOps = append([]clientv3.Op{clientv3.OpGet(s.leaderKey)}, elseOps...)
	}
	resp, err := s.c.cli.Txn(ctx).If(append([]clientv3.Cmp{s.leaderCmp}, conds...)...).Then(ops...).Else(elseOps...).Commit()
	if err != nil {
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return nil, err // the caller's business: a worker's lease expired
		}
		err = fmt.Errorf("coordinator: etcd txn: %w", err)
		s.abort(err)
		return nil, err
	}
	if !resp.Succeeded {
		if len(conds) == 0 {
			s.abort(errLostLeadership)
			return nil, errLostLeadership
		}
		kvs := resp.Responses[0].GetResponseRange().GetKvs()
		if len(kvs) == 0 || kvs[0].CreateRevision != s.leaderRev {
			s.abort(errLostLeadership)
			return nil, errLostLeadership
		}
	}
	return resp, nil
}

// ---- workers ----

func (s *scheduler) putWorker(kv *mvccpb.KeyValue) {
	id, err := s.c.keys.WorkerID(string(kv.Key))
	if err != nil {
		return
	}
	info, err := decode[cluster.WorkerInfo](kv.Value, "worker "+id)
	if err != nil || info.Addr == "" {
		s.c.logger.Warn("ignoring malformed worker registration", "worker", id, "err", err)
		return
	}
	if w := s.workers[id]; w != nil {
		if w.createRev == kv.CreateRevision {
			w.info = *info // e.g. draining now
			return
		}
		s.removeWorker(id, "it registered again")
	}
	s.workers[id] = &workerState{info: *info, lease: clientv3.LeaseID(kv.Lease), createRev: kv.CreateRevision}
	s.c.logger.Info("worker joined", "worker", id, "addr", info.Addr, "parallelism", info.Parallelism)
}

// removeWorker forgets a worker and loses its attempts.
func (s *scheduler) removeWorker(id, why string) {
	w := s.workers[id]
	if w == nil {
		return
	}
	delete(s.workers, id)
	s.c.logger.Info("worker left", "worker", id, "why", why)
	for _, jid := range slices.Clone(s.order) {
		j := s.jobs[jid]
		if j == nil {
			continue
		}
		for _, t := range j.tasks {
			for _, a := range t.attempts {
				if a.worker == w {
					s.lose(j, t, a, fmt.Sprintf("worker %s left: %s", id, why))
				}
			}
		}
	}
	if s.c.grpcRun != nil {
		s.c.grpcRun.forget(w.info.Addr)
	}
}

// pickWorker returns the worker for a new attempt of t: live, not draining,
// with a free slot, not running t already, preferring workers where t has
// not failed, then the least loaded. nil if none.
func (s *scheduler) pickWorker(t *taskRun) *workerState {
	now := time.Now()
	var best *workerState
	bestKey := func(w *workerState) (bool, float64, string) {
		return t.failedOn[w.info.ID], float64(w.running) / float64(max(1, w.info.Parallelism)), w.info.ID
	}
	for _, w := range s.workers {
		if w.info.Draining || w.free() <= 0 || now.Before(w.excluded) {
			continue
		}
		busy := false
		for _, a := range t.attempts {
			busy = busy || a.worker == w
		}
		if busy {
			continue
		}
		if best == nil {
			best = w
			continue
		}
		f1, l1, i1 := bestKey(w)
		f0, l0, i0 := bestKey(best)
		if (!f1 && f0) || (f1 == f0 && (l1 < l0 || (l1 == l0 && i1 < i0))) {
			best = w
		}
	}
	return best
}

// ---- jobs ----

// onJobKV handles a job record read from etcd: at the start of a term,
// and for every change the jobs watch delivers, in revision order.
func (s *scheduler) onJobKV(kv *mvccpb.KeyValue) {
	id, err := s.c.keys.JobID(string(kv.Key))
	if err != nil {
		return
	}
	rec, err := decode[jobRecord](kv.Value, "job "+id)
	if err != nil {
		s.c.logger.Error("ignoring malformed job record", "job", id, "err", err)
		return
	}
	if j := s.jobs[id]; j != nil {
		if kv.ModRevision <= j.rev {
			return // our own write, or older
		}
		if !sameBut(rec, &j.seen) {
			// Changed by someone other than this leader and a cancel:
			// what this term knows of the job is stale.
			s.retake(j, kv)
			return
		}
		j.seen, j.rev = *rec, kv.ModRevision
		if rec.CancelRequested && !j.rec.CancelRequested {
			j.rec.CancelRequested = true
			s.cancelSoon(j)
		}
		return
	}
	if rev, ok := s.gone[id]; ok && kv.ModRevision <= rev {
		return // the past of a job this term finished
	}
	s.takeUp(rec, kv.ModRevision)
}

// takeUp starts managing a job found in etcd: one this term has not run.
func (s *scheduler) takeUp(rec *jobRecord, rev int64) {
	if terminal(rec.State) {
		if !rec.Cleaned || (rec.State == stateSucceeded && rec.IndexerStatus == indexPending) {
			j := s.addJob(rec, rev)
			j.phase = phaseFinishing
			s.finish(j)
		}
		return
	}
	j := s.addJob(rec, rev)
	if rec.CancelRequested && rec.State != stateCommitting {
		s.endJob(j, stateCancelled, "cancelled on request")
		return
	}
	s.c.logger.Info("taking up job", "job", rec.ID, "state", rec.State)
	s.load(j)
}

// retake drops what this term knows of a job whose record changed under
// it, and takes the job up again from the record now in etcd.
func (s *scheduler) retake(j *jobRun, kv *mvccpb.KeyValue) {
	s.c.logger.Warn("job record changed under the leader; taking it up again", "job", j.rec.ID,
		"known_revision", j.rev, "revision", kv.ModRevision)
	s.cancelAttempts(j)
	s.removeJob(j)
	delete(s.gone, j.rec.ID)
	s.onJobKV(kv)
}

// sameBut reports whether two job records are equal but for a cancel
// request: the one change to a record that is not the leader's own.
func sameBut(a, b *jobRecord) bool {
	x, y := *a, *b
	x.CancelRequested, y.CancelRequested = false, false
	return encode(&x) == encode(&y)
}

func (s *scheduler) addJob(rec *jobRecord, rev int64) *jobRun {
	j := &jobRun{rec: rec, seen: *rec, rev: rev}
	j.ctx, j.cancel = context.WithCancel(s.ctx)
	s.jobs[rec.ID] = j
	s.order = append(s.order, rec.ID)
	return j
}

func (s *scheduler) removeJob(j *jobRun) {
	j.cancel()
	delete(s.jobs, j.rec.ID)
	s.order = slices.DeleteFunc(s.order, func(id string) bool { return id == j.rec.ID })
	s.gone[j.rec.ID] = j.rev
}

// forgetGone forgets the finished jobs whose last record the jobs watch
// has delivered: no older event of theirs can follow.
func (s *scheduler) forgetGone(delivered int64) {
	for id, rev := range s.gone {
		if rev <= delivered {
			delete(s.gone, id)
		}
	}
}

// cancelSoon ends j as cancelled once the scheduler is done with the
// event at hand, unless it has ended or is committing by then.
func (s *scheduler) cancelSoon(j *jobRun) {
	s.cancels = append(s.cancels, j)
}

func (s *scheduler) applyCancels() {
	for len(s.cancels) > 0 && s.fatal == nil {
		j := s.cancels[0]
		s.cancels = s.cancels[1:]
		if s.jobs[j.rec.ID] == j && j.rec.CancelRequested && j.phase != phaseFinishing &&
			!terminal(j.seen.State) && j.seen.State != stateCommitting {
			s.endJob(j, stateCancelled, "cancelled on request")
		}
	}
}

// dropJob forgets a job whose record was deleted.
func (s *scheduler) dropJob(id string) {
	if j := s.jobs[id]; j != nil {
		s.cancelAttempts(j)
		s.removeJob(j)
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
func (s *scheduler) putJob(j *jobRun, extra ...clientv3.Op) bool {
	key := s.c.keys.Job(j.rec.ID)
	for range 5 {
		ops := append([]clientv3.Op{clientv3.OpPut(key, encode(j.rec))}, extra...)
		resp, err := s.txnResp([]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", j.rev)}, ops, []clientv3.Op{clientv3.OpGet(key)})
		if err != nil {
			return false
		}
		if resp.Succeeded {
			j.seen, j.rev = *j.rec, resp.Header.Revision
			return true
		}
		kvs := resp.Responses[1].GetResponseRange().GetKvs()
		if len(kvs) == 0 {
			s.dropJob(j.rec.ID)
			return false
		}
		cur, err := decode[jobRecord](kvs[0].Value, "job")
		if err != nil {
			s.abort(err)
			return false
		}
		if !sameBut(cur, &j.seen) {
			s.retake(j, kvs[0])
			return false
		}
		j.seen, j.rev = *cur, kvs[0].ModRevision
		if cur.CancelRequested && !j.rec.CancelRequested {
			j.rec.CancelRequested = true
			s.cancelSoon(j)
			if j.rec.State == stateCommitting {
				return false // the cancel came first
			}
		}
	}
	s.abort(fmt.Errorf("coordinator: job %s keeps changing under the leader", j.rec.ID))
	return false
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

// later runs f on the scheduler goroutine after d, unless j ends first.
func (s *scheduler) later(j *jobRun, d time.Duration, f func()) {
	s.spawn(func() {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			s.post(func() {
				if s.jobs[j.rec.ID] == j {
					f()
				}
			})
		case <-j.ctx.Done():
		}
	})
}

// loaded is what load found of a job in the output store.
type loaded struct {
	plan      *plan
	committed map[int]bool  // buckets whose partials are committed
	result    *results.Meta // the job's committed result, if _SUCCESS names it
}

// load plans a pending job, or reloads the plan of a running one, off the
// scheduler goroutine, then resumes it. A merging or committing job whose
// result is already committed (its leader died before recording it) is
// recorded as succeeded.
func (s *scheduler) load(j *jobRun) {
	j.phase = phaseLoading
	rec := *j.rec
	s.spawn(func() {
		var l loaded
		var err error
		if rec.State == stateMerging || rec.State == stateCommitting {
			l.result, err = s.c.committedResult(j.ctx, &rec)
		}
		if err == nil && l.result == nil {
			l.plan, l.committed, err = s.c.loadPlan(j.ctx, &rec)
		}
		s.post(func() { s.onLoaded(j, l, err) })
	})
}

func (s *scheduler) onLoaded(j *jobRun, l loaded, err error) {
	if s.jobs[j.rec.ID] != j || j.phase != phaseLoading {
		return
	}
	if err != nil {
		if j.ctx.Err() != nil {
			return
		}
		j.storeTries++
		if errors.Is(err, errBadPlan) || j.storeTries >= maxStoreTries {
			s.endJob(j, stateFailed, err.Error())
			return
		}
		wait := storeRetryIn(j.storeTries)
		s.c.logger.Warn("loading job failed; retrying", "job", j.rec.ID, "err", err, "retry_in", wait)
		s.later(j, wait, func() {
			if j.phase == phaseLoading {
				s.load(j)
			}
		})
		return
	}
	j.storeTries = 0
	if l.result != nil {
		s.c.logger.Info("job's result found committed; recording it", "job", j.rec.ID, "run", l.result.Run)
		j.rec.Result = l.result
		s.endJob(j, stateSucceeded, "")
		return
	}
	p := l.plan
	for _, id := range s.order {
		o := s.jobs[id]
		if o != j && o.phase != phaseLoading && o.phase != phaseFinishing && o.rec.Spec.Out == j.rec.Spec.Out {
			s.endJob(j, stateFailed, fmt.Sprintf("output %s is in use by job %s; wait for it or cancel it", j.rec.Spec.Out, id))
			return
		}
	}
	j.plan = p
	j.tasks = make([]*taskRun, len(p.Tasks))
	for i, pt := range p.Tasks {
		j.tasks[i] = &taskRun{n: i, pt: pt, rec: taskRecord{Task: i, Bucket: pt.Bucket}, attempts: map[int]*attemptRun{}, failedOn: map[string]bool{}}
	}
	if j.rec.State == statePending {
		j.rec.State, j.rec.Started, j.rec.Tasks = stateRunning, time.Now().UTC(), len(p.Tasks)
		if len(p.Tasks) == 0 {
			j.rec.Warning = fmt.Sprintf("the lake has no committed events in %s: the result is empty",
				windowString(j.rec.Spec.From, j.rec.Spec.To))
		}
		if !s.putJob(j) {
			return
		}
		s.c.logger.Info("job planned", "job", j.rec.ID, "tasks", len(p.Tasks))
	} else if err := s.resumeTasks(j, l.committed); err != nil {
		return
	}
	j.phase = phaseRunning
	for _, t := range j.tasks {
		if t.rec.State != taskDone && len(t.attempts) == 0 {
			s.enqueue(j, t)
		}
	}
	if j.done == len(j.tasks) {
		s.merge(j)
	}
}

func windowString(from, to time.Time) string {
	return "[" + from.UTC().Format(time.RFC3339) + ", " + to.UTC().Format(time.RFC3339) + ")"
}

// resumeTasks rebuilds the state of a job that a previous leader ran:
// task records from etcd, tasks committed in the lake, and attempts still
// running on live workers, which it joins again.
func (s *scheduler) resumeTasks(j *jobRun, committed map[int]bool) error {
	keys := s.c.keys
	ctx, cancel := context.WithTimeout(s.ctx, etcdOpTimeout)
	defer cancel()
	tresp, err := s.c.cli.Get(ctx, keys.Tasks(j.rec.ID), clientv3.WithPrefix())
	if err != nil {
		s.abort(fmt.Errorf("coordinator: read tasks: %w", err))
		return s.fatal
	}
	lresp, err := s.c.cli.Get(ctx, keys.Leases(j.rec.ID), clientv3.WithPrefix())
	if err != nil {
		s.abort(fmt.Errorf("coordinator: read leases: %w", err))
		return s.fatal
	}
	for _, kv := range tresp.Kvs {
		_, n, err := keys.TaskID(string(kv.Key))
		if err != nil || n >= len(j.tasks) {
			continue
		}
		if rec, err := decode[taskRecord](kv.Value, "task"); err == nil {
			j.tasks[n].rec = *rec
		}
	}
	for _, t := range j.tasks {
		if t.rec.State != taskDone && committed[t.pt.Bucket] {
			// Committed, but the previous leader died before recording it.
			t.rec.State, t.rec.Finished = taskDone, time.Now().UTC()
			if _, err := s.txn(nil, clientv3.OpPut(keys.Task(j.rec.ID, t.n), encode(t.rec))); err != nil {
				return err
			}
		}
		if t.rec.State == taskDone {
			j.done++
			if t.rec.Seconds > 0 {
				j.durations = append(j.durations, time.Duration(t.rec.Seconds*float64(time.Second)))
			}
		}
	}
	for _, kv := range lresp.Kvs {
		_, n, attempt, err := keys.LeaseID(string(kv.Key))
		if err != nil || n >= len(j.tasks) {
			continue
		}
		t := j.tasks[n]
		l, err := decode[leaseRecord](kv.Value, "lease")
		w := s.workers[l.Worker]
		if err != nil || t.rec.State == taskDone || w == nil || int64(w.lease) != kv.Lease || j.rec.State == stateMerging || j.rec.State == stateCommitting {
			if _, err := s.txn(nil, clientv3.OpDelete(string(kv.Key))); err != nil {
				return err
			}
			continue
		}
		s.c.logger.Info("joining running attempt", "job", j.rec.ID, "task", n, "attempt", attempt, "worker", w.info.ID)
		s.startAttempt(j, t, &attemptRun{n: attempt, worker: w, started: l.Started, backup: l.Backup})
	}
	return nil
}

func (s *scheduler) enqueue(j *jobRun, t *taskRun) {
	if t.queued || t.rec.State == taskDone {
		return
	}
	t.queued = true
	j.queue = append(j.queue, t.n)
}

// schedule starts queued tasks, oldest job first, while workers have room.
func (s *scheduler) schedule() {
	for _, id := range slices.Clone(s.order) {
		j := s.jobs[id]
		if j == nil || j.phase != phaseRunning {
			continue
		}
		for len(j.queue) > 0 && s.fatal == nil {
			t := j.tasks[j.queue[0]]
			if t.rec.State == taskDone || len(t.attempts) > 0 {
				t.queued = false
				j.queue = j.queue[1:]
				continue
			}
			w := s.pickWorker(t)
			if w == nil {
				break // no room for this task (maybe for another job's)
			}
			if s.launch(j, t, w, false) {
				t.queued = false
				j.queue = j.queue[1:]
			}
			if s.jobs[id] != j {
				break // the job ended
			}
		}
	}
}

// launch records a new attempt of t on w and starts it. The attempt's
// lease key is attached to the worker's own lease: if the worker dies the
// key vanishes and the leader re-leases the task. It returns false if the
// worker turned out to be gone.
func (s *scheduler) launch(j *jobRun, t *taskRun, w *workerState, backup bool) bool {
	keys := s.c.keys
	now := time.Now().UTC()
	a := &attemptRun{n: t.rec.Attempts + 1, worker: w, started: now, backup: backup}
	rec := t.rec
	rec.State, rec.Attempts = taskRunning, a.n
	if backup {
		rec.Backups++
	}
	if rec.Started.IsZero() {
		rec.Started = now
	}
	lease := leaseRecord{Worker: w.info.ID, Addr: w.info.Addr, Attempt: a.n, Backup: backup, Started: now}
	ok, err := s.txn(
		[]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(keys.Worker(w.info.ID)), "=", w.createRev)},
		clientv3.OpPut(keys.Lease(j.rec.ID, t.n, a.n), encode(lease), clientv3.WithLease(w.lease)),
		clientv3.OpPut(keys.Task(j.rec.ID, t.n), encode(rec)),
	)
	if errors.Is(err, rpctypes.ErrLeaseNotFound) || (err == nil && !ok) {
		s.removeWorker(w.info.ID, "its lease expired")
		return false
	}
	if err != nil {
		return false
	}
	t.rec = rec
	s.c.logger.Debug("attempt started", "job", j.rec.ID, "task", t.n, "bucket", t.pt.Bucket, "attempt", a.n, "worker", w.info.ID, "backup", backup)
	s.startAttempt(j, t, a)
	return true
}

// startAttempt calls RunTask for a recorded attempt.
func (s *scheduler) startAttempt(j *jobRun, t *taskRun, a *attemptRun) {
	var actx context.Context
	if d := s.c.cfg.TaskTimeout; d > 0 {
		// From the attempt's start, also when a new leader takes up an
		// attempt already running: leader changes do not extend it.
		actx, a.cancel = context.WithDeadlineCause(j.ctx, a.started.Add(d), errTaskTimeout)
	} else {
		actx, a.cancel = context.WithCancel(j.ctx)
	}
	t.attempts[a.n] = a
	a.worker.running++
	spec := j.rec.Spec
	req := &pb.RunTaskRequest{
		JobId: j.rec.ID, TaskId: int32(t.n), Bucket: int32(t.pt.Bucket), Attempt: int32(a.n),
		LakeUri: spec.Lake, FileKeys: t.pt.Files,
		WindowFrom: timestamppb.New(spec.From), WindowTo: timestamppb.New(spec.To),
		SessionTimeout: durationpb.New(spec.SessionTimeout),
		PartialUri:     spec.Out, PartialKey: results.PartialKey(j.rec.ID, t.pt.Bucket),
	}
	addr := a.worker.info.Addr
	s.spawn(func() {
		resp, err := s.c.runner.RunTask(actx, addr, req)
		// Decided now, not when the scheduler gets to it: an error that
		// came back before the deadline is not a timeout.
		timedOut := status.Code(err) == codes.DeadlineExceeded && context.Cause(actx) == errTaskTimeout
		s.post(func() { s.onAttemptDone(j, t, a, resp, err, timedOut) })
	})
}

// endAttempt forgets a running attempt and cancels its RPC.
func (s *scheduler) endAttempt(t *taskRun, a *attemptRun, outcome string) {
	if t.attempts[a.n] != a {
		return
	}
	delete(t.attempts, a.n)
	a.worker.running--
	a.cancel()
	s.c.metrics.attempts.WithLabelValues(outcome).Inc()
}

func (s *scheduler) onAttemptDone(j *jobRun, t *taskRun, a *attemptRun, resp *pb.RunTaskResponse, err error, timedOut bool) {
	if s.jobs[j.rec.ID] != j || t.attempts[a.n] != a {
		return // ended already: lost, superseded or cancelled
	}
	if err == nil {
		s.taskDone(j, t, a, resp)
		return
	}
	code := status.Code(err)
	msg := fmt.Sprintf("attempt %d on worker %s: %v", a.n, a.worker.info.ID, errorMessage(err))
	if timedOut {
		// Our deadline, not the worker's trouble: a task that never ends in
		// time must fail its job after MaxAttempts, not be re-run forever as
		// if its workers kept dying.
		s.failAttempt(j, t, a, fmt.Sprintf("attempt %d on worker %s: %v (--task-timeout %v)", a.n, a.worker.info.ID, errTaskTimeout, s.c.cfg.TaskTimeout))
		return
	}
	switch code {
	case codes.Unavailable, codes.Canceled, codes.DeadlineExceeded, codes.Aborted:
		if code == codes.Unavailable {
			a.worker.excluded = time.Now().Add(excludeFor)
		}
		s.lose(j, t, a, msg)
	default:
		s.failAttempt(j, t, a, msg)
	}
}

func errorMessage(err error) string {
	if s, ok := status.FromError(err); ok {
		return s.Code().String() + ": " + s.Message()
	}
	return err.Error()
}

func (s *scheduler) taskDone(j *jobRun, t *taskRun, a *attemptRun, resp *pb.RunTaskResponse) {
	outcome := attemptOK
	if resp.GetAlreadyCommitted() {
		outcome = attemptDuplicate
	}
	s.endAttempt(t, a, outcome)
	for _, other := range t.attempts {
		s.endAttempt(t, other, attemptCancelled)
	}
	took := time.Since(a.started)
	now := time.Now().UTC()
	t.rec.State, t.rec.Worker, t.rec.Finished = taskDone, a.worker.info.ID, now
	t.rec.EventsRead, t.rec.BytesRead, t.rec.Seconds = resp.GetEventsRead(), resp.GetBytesRead(), took.Seconds()
	keys := s.c.keys
	if _, err := s.txn(nil,
		clientv3.OpPut(keys.Task(j.rec.ID, t.n), encode(t.rec)),
		clientv3.OpDelete(keys.TaskLeases(j.rec.ID, t.n), clientv3.WithPrefix()),
	); err != nil {
		return
	}
	j.done++
	j.durations = append(j.durations, took)
	s.c.logger.Debug("task done", "job", j.rec.ID, "task", t.n, "attempt", a.n, "worker", a.worker.info.ID, "took", took, "already_committed", resp.GetAlreadyCommitted())
	if j.done == len(j.tasks) {
		s.merge(j)
	}
}

// lose handles an attempt lost with its worker (dead, unreachable, shutting
// down): it does not count as a failure of the task, up to MaxLost.
func (s *scheduler) lose(j *jobRun, t *taskRun, a *attemptRun, why string) {
	if t.attempts[a.n] != a {
		return
	}
	s.endAttempt(t, a, attemptLost)
	t.rec.Lost++
	t.rec.LastError = why
	s.c.logger.Info("attempt lost", "job", j.rec.ID, "task", t.n, "attempt", a.n, "why", why)
	if t.rec.Lost >= s.c.cfg.MaxLost {
		s.endJob(j, stateFailed, fmt.Sprintf("task %d (bucket %d): %d attempts lost with their workers; last: %s", t.n, t.pt.Bucket, t.rec.Lost, why))
		return
	}
	s.retry(j, t, a)
}

// failAttempt handles an attempt that failed with an error.
func (s *scheduler) failAttempt(j *jobRun, t *taskRun, a *attemptRun, why string) {
	s.endAttempt(t, a, attemptFailed)
	t.rec.Failures++
	t.rec.LastError = why
	t.failedOn[a.worker.info.ID] = true
	s.c.logger.Warn("attempt failed", "job", j.rec.ID, "task", t.n, "attempt", a.n, "err", why)
	if t.rec.Failures >= j.rec.Spec.MaxAttempts {
		s.endJob(j, stateFailed, fmt.Sprintf("task %d (bucket %d) failed %d times; last error: %s", t.n, t.pt.Bucket, t.rec.Failures, why))
		return
	}
	s.retry(j, t, a)
}

// retry records an ended attempt and queues its task again unless another
// attempt of it still runs.
func (s *scheduler) retry(j *jobRun, t *taskRun, a *attemptRun) {
	if len(t.attempts) == 0 {
		t.rec.State = ""
	}
	keys := s.c.keys
	if _, err := s.txn(nil,
		clientv3.OpDelete(keys.Lease(j.rec.ID, t.n, a.n)),
		clientv3.OpPut(keys.Task(j.rec.ID, t.n), encode(t.rec)),
	); err != nil {
		return
	}
	if len(t.attempts) == 0 {
		s.enqueue(j, t)
	}
}

// onLeaseDeleted handles a vanished attempt lease: the worker's lease
// expired (it died or lost etcd), or someone ended the attempt.
func (s *scheduler) onLeaseDeleted(key string) {
	id, n, attempt, err := s.c.keys.LeaseID(key)
	if err != nil {
		return
	}
	j := s.jobs[id]
	if j == nil || n >= len(j.tasks) {
		return
	}
	t := j.tasks[n]
	if a := t.attempts[attempt]; a != nil {
		s.lose(j, t, a, fmt.Sprintf("attempt %d: worker %s lost its lease", attempt, a.worker.info.ID))
	}
}

// reconcile loses attempts whose worker is gone: a safety net under the
// lease watch.
func (s *scheduler) reconcile() {
	for _, id := range slices.Clone(s.order) {
		j := s.jobs[id]
		if j == nil {
			continue
		}
		for _, t := range j.tasks {
			for _, a := range t.attempts {
				if s.workers[a.worker.info.ID] != a.worker {
					s.lose(j, t, a, fmt.Sprintf("attempt %d: worker %s is gone", a.n, a.worker.info.ID))
				}
			}
		}
	}
}

// backups starts a second attempt of straggling tasks near the end of a
// job (MapReduce's backup tasks): when at most max(BackupRemaining,
// BackupFraction × tasks) tasks remain and none waits for a worker, a task
// whose only attempt has run longer than max(BackupAfter, 2 × the median
// duration of finished tasks) gets another attempt on another worker. The
// first attempt to commit wins; the other is cancelled.
func (s *scheduler) backups() {
	cfg := s.c.cfg
	if cfg.BackupAfter < 0 {
		return
	}
	for _, id := range slices.Clone(s.order) {
		j := s.jobs[id]
		if j == nil || j.phase != phaseRunning || len(j.queue) > 0 {
			continue
		}
		remaining := len(j.tasks) - j.done
		limit := max(cfg.BackupRemaining, int(math.Ceil(cfg.BackupFraction*float64(len(j.tasks)))))
		if remaining == 0 || remaining > limit {
			continue
		}
		threshold := max(cfg.BackupAfter, 2*median(j.durations))
		for _, t := range j.tasks {
			if t.rec.State == taskDone || len(t.attempts) != 1 || t.rec.Backups >= maxBackups {
				continue
			}
			var a *attemptRun
			for _, a = range t.attempts {
			}
			if time.Since(a.started) < threshold {
				continue
			}
			w := s.pickWorker(t)
			if w == nil {
				return
			}
			s.c.logger.Info("starting backup attempt", "job", j.rec.ID, "task", t.n, "straggler", a.worker.info.ID,
				"running_for", time.Since(a.started).Round(time.Millisecond), "threshold", threshold, "backup_worker", w.info.ID)
			s.launch(j, t, w, true)
			if s.fatal != nil || s.jobs[id] != j {
				break
			}
		}
	}
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	c := slices.Clone(ds)
	sort.Slice(c, func(i, k int) bool { return c[i] < c[k] })
	return c[len(c)/2]
}

// ---- merge and the end of a job ----

func (s *scheduler) counters(j *jobRun) finalCounters {
	var f finalCounters
	for _, t := range j.tasks {
		if t.rec.State == taskDone {
			f.Done++
			f.EventsRead += t.rec.EventsRead
			f.BytesRead += t.rec.BytesRead
		}
		f.Attempts += t.rec.Attempts
		f.Retries += t.rec.Failures + t.rec.Lost
		f.Backups += t.rec.Backups
	}
	return f
}

// merge merges the job's partials off the scheduler goroutine, then
// commits the result.
func (s *scheduler) merge(j *jobRun) {
	j.phase = phaseMerging
	if j.rec.State == stateRunning {
		j.rec.State = stateMerging
		if !s.putJob(j) {
			return
		}
	}
	rec, p, k := *j.rec, j.plan, s.counters(j)
	s.spawn(func() {
		start := time.Now()
		m, err := s.c.merge(j.ctx, &rec, p, k)
		s.c.metrics.merge.Observe(time.Since(start).Seconds())
		s.post(func() { s.onMerged(j, m, err) })
	})
}

func (s *scheduler) onMerged(j *jobRun, m *merged, err error) {
	if s.jobs[j.rec.ID] != j || j.phase != phaseMerging {
		return
	}
	if err != nil {
		s.retryStore(j, "merge", err, func() { s.merge(j) })
		return
	}
	j.storeTries = 0
	if j.rec.CancelRequested {
		s.endJob(j, stateCancelled, "cancelled on request")
		return
	}
	// The transition that decides the outcome: once the record says
	// committing, no cancel can enter, and every later leader finishes the
	// commit. Each commit attempt writes its own run folder.
	j.rec.State = stateCommitting
	j.rec.MergeAttempt++
	if !s.putJob(j) {
		return // a cancel came first (applied next), or the term ended
	}
	s.commit(j, m)
}

// commit writes the merged result off the scheduler goroutine.
func (s *scheduler) commit(j *jobRun, m *merged) {
	rec := *j.rec
	s.spawn(func() {
		meta, err := s.c.commit(j.ctx, &rec, m)
		s.post(func() { s.onCommitted(j, m, meta, err) })
	})
}

func (s *scheduler) onCommitted(j *jobRun, m *merged, meta results.Meta, err error) {
	if s.jobs[j.rec.ID] != j || j.phase != phaseMerging {
		return
	}
	if err != nil {
		// Committing: the job is not given up at the first error, and a
		// new attempt writes a new run folder.
		s.retryStore(j, "commit", err, func() {
			j.rec.MergeAttempt++
			if s.putJob(j) {
				s.commit(j, m)
			}
		})
		return
	}
	j.storeTries = 0
	j.rec.Result = &meta
	if meta.Warning != "" {
		j.rec.Warning = meta.Warning
	}
	s.c.metrics.jobTime.Observe(meta.DurationSeconds)
	s.endJob(j, stateSucceeded, "")
}

// retryStore runs again, after a backoff, a step of j that failed on its
// output store, or fails the job once the step has failed maxStoreTries
// times in a row.
func (s *scheduler) retryStore(j *jobRun, step string, err error, again func()) {
	if j.ctx.Err() != nil {
		return // cancelled, or the term ended
	}
	j.storeTries++
	if j.storeTries >= maxStoreTries {
		s.endJob(j, stateFailed, fmt.Sprintf("%s: %v (%d tries)", step, err, j.storeTries))
		return
	}
	wait := storeRetryIn(j.storeTries)
	s.c.logger.Warn("job step failed; retrying", "job", j.rec.ID, "step", step, "err", err, "retry_in", wait)
	s.later(j, wait, func() {
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
func (s *scheduler) endJob(j *jobRun, state, msg string) {
	if terminal(j.rec.State) && j.phase == phaseFinishing {
		return
	}
	if j.seen.State == stateCommitting && state == stateCancelled {
		return // too late to cancel
	}
	s.cancelAttempts(j)
	j.cancel()
	k := s.counters(j)
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
	} else if s.c.cfg.Indexer != nil {
		j.rec.IndexerStatus = indexPending
	}
	keys := s.c.keys
	if !s.putJob(j,
		clientv3.OpDelete(keys.Tasks(j.rec.ID), clientv3.WithPrefix()),
		clientv3.OpDelete(keys.Leases(j.rec.ID), clientv3.WithPrefix()),
	) {
		return
	}
	if state == stateSucceeded {
		s.c.hit(s.ctx, pointAfterRecord)
	}
	s.c.metrics.jobs.WithLabelValues(state).Inc()
	s.c.logger.Info("job finished", "job", j.rec.ID, "state", state, "error", msg, "tasks", len(j.tasks),
		"attempts", k.Attempts, "retries", k.Retries, "backups", k.Backups)
	j.phase = phaseFinishing
	// A fresh context: the job's own is cancelled, the term's may end.
	j.ctx, j.cancel = context.WithCancel(s.ctx)
	s.finish(j)
}

func (s *scheduler) cancelAttempts(j *jobRun) {
	for _, t := range j.tasks {
		for _, a := range t.attempts {
			s.endAttempt(t, a, attemptCancelled)
		}
	}
	j.queue = nil
}

// finish cleans a finished job's leftovers (plan, partials, superseded
// result runs) from the output store, once its outcome is recorded, and
// runs the indexer on a succeeded job's result; then it records both
// outcomes. A term that ends first leaves them to the next leader.
func (s *scheduler) finish(j *jobRun) {
	rec := *j.rec
	indexer := s.c.cfg.Indexer
	s.spawn(func() {
		cleaned := rec.Cleaned
		if !cleaned {
			ctx, cancel := context.WithTimeout(j.ctx, cleanupTimeout)
			err := s.c.cleanup(ctx, &rec)
			cancel()
			if j.ctx.Err() != nil {
				return // the term ended: the next leader cleans up
			}
			if err != nil {
				s.c.logger.Warn("cleaning up a finished job failed; its record's expiry sweeps it", "job", rec.ID, "err", err)
			}
			cleaned = err == nil
		}
		indexed := rec.IndexerStatus
		if rec.State == stateSucceeded && rec.IndexerStatus == indexPending && indexer != nil && rec.Result != nil {
			indexed = indexOK
			out, err := s.c.store(j.ctx, rec.Spec.Out)
			if err == nil {
				err = indexer.Index(j.ctx, out, *rec.Result)
			}
			if err != nil {
				if j.ctx.Err() != nil {
					return // the term ended: the next leader indexes
				}
				indexed = "error: " + err.Error()
				s.c.logger.Error("indexing failed", "job", rec.ID, "err", err)
			}
		}
		s.post(func() {
			if s.jobs[rec.ID] != j {
				return
			}
			if cleaned != j.rec.Cleaned || indexed != j.rec.IndexerStatus {
				j.rec.Cleaned, j.rec.IndexerStatus = cleaned, indexed
				s.putJob(j)
			}
			s.removeJob(j)
		})
	})
}
