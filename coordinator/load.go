// Loading a job: planning a pending one, or rebuilding the state of one a
// previous leader ran.

package coordinator

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/results"
)

// loaded is what load found of a job in the output store.
type loaded struct {
	plan   *plan
	result *results.Meta // the job's committed result, if _SUCCESS names it
}

// loadTimeout bounds one load of a job, so that a store that hangs holds
// a planner this long at most; the load is then retried like any other
// store failure.
const loadTimeout = 5 * time.Minute

// load queues j to be planned if it is pending, or to have its plan
// reloaded if a previous leader ran it, then resumed (onLoaded). A merging
// or committing job whose result is already committed (its leader died
// before recording it) is recorded as succeeded. Jobs are loaded in the
// order they are queued by Config.PlanningParallelism planners, the
// term's goroutines that do the store reads; a job that ends or is taken
// up again while it waits is dropped from the queue.
func (tm *term) load(j *jobRun) {
	j.phase = phaseLoading
	tm.loads = append(tm.loads, j)
}

// loadReq is a job handed to a planner: what the planner reads of it is a
// copy, made on the term's goroutine.
type loadReq struct {
	j   *jobRun
	rec jobRecord
	ctx context.Context // the job's: ends when the job does
}

// nextLoad returns the first queued job still waiting for its load,
// dropping the jobs before it that no longer wait.
func (tm *term) nextLoad() (loadReq, bool) {
	for len(tm.loads) > 0 {
		j := tm.loads[0]
		if tm.jobs[j.rec.ID] == j && j.phase == phaseLoading && j.ctx.Err() == nil {
			return loadReq{j: j, rec: *j.rec, ctx: j.ctx}, true
		}
		tm.loads[0] = nil
		tm.loads = tm.loads[1:]
	}
	return loadReq{}, false
}

// planner loads the jobs the term hands it, one at a time, until the term
// ends.
func (tm *term) planner() {
	for {
		select {
		case <-tm.ctx.Done():
			return
		case r := <-tm.plans:
			l, err := tm.c.loadJob(r.ctx, &r.rec)
			tm.post(func() { tm.onLoaded(r.j, l, err) })
		}
	}
}

// loadJob reads what resuming the job rec needs from its stores: its
// committed result if it was merging or committing, else its plan (made
// and stored if the job is pending).
func (c *Coordinator) loadJob(ctx context.Context, rec *jobRecord) (loaded, error) {
	c.hit(ctx, pointLoad)
	ctx, cancel := context.WithTimeout(ctx, loadTimeout)
	defer cancel()
	var l loaded
	var err error
	if rec.State == stateMerging || rec.State == stateCommitting {
		l.result, err = c.committedResult(ctx, rec)
	}
	if err == nil && l.result == nil {
		l.plan, err = c.loadPlan(ctx, rec)
	}
	return l, err
}

func (tm *term) onLoaded(j *jobRun, l loaded, err error) {
	if tm.jobs[j.rec.ID] != j || j.phase != phaseLoading {
		return
	}
	if err != nil {
		if j.ctx.Err() != nil {
			return
		}
		if errors.Is(err, lake.ErrOutsideRoot) {
			// Submitted through a coordinator without the leader's roots, or
			// a symbolic link below them leads out: nothing is opened there.
			tm.endJob(j, stateFailed, fmt.Sprintf("output %s is outside the leader's --output-root %s: %v",
				j.rec.Spec.Out, strings.Join(tm.c.cfg.OutputRoots, ","), err))
			return
		}
		j.storeTries++
		if errors.Is(err, errBadPlan) || j.storeTries >= maxStoreTries {
			tm.endJob(j, stateFailed, err.Error())
			return
		}
		wait := storeRetryIn(j.storeTries)
		tm.c.logger.Warn("loading job failed; retrying", "job", j.rec.ID, "err", err, "retry_in", wait)
		tm.later(j, wait, func() {
			if j.phase == phaseLoading {
				tm.load(j)
			}
		})
		return
	}
	j.storeTries = 0
	if l.result != nil {
		tm.c.logger.Info("job's result found committed; recording it", "job", j.rec.ID, "run", l.result.Run)
		j.rec.Result = l.result
		tm.endJob(j, stateSucceeded, "")
		return
	}
	p := l.plan
	for _, id := range tm.order {
		o := tm.jobs[id]
		if o != j && o.phase != phaseLoading && o.phase != phaseFinishing && overlaps(o.rec.Spec.Out, j.rec.Spec.Out) {
			tm.endJob(j, stateFailed, fmt.Sprintf("output %s overlaps the output %s of job %s; wait for it or cancel it", j.rec.Spec.Out, o.rec.Spec.Out, id))
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
		if !tm.putJob(j) {
			return
		}
		tm.c.logger.Info("job planned", "job", j.rec.ID, "tasks", len(p.Tasks))
	} else if err := tm.resumeTasks(j); err != nil {
		return
	}
	j.phase = phaseRunning
	for _, t := range j.tasks {
		if t.rec.State != taskDone && len(t.attempts) == 0 {
			j.enqueue(t)
		}
	}
	if j.done == len(j.tasks) {
		tm.merge(j)
	}
}

func windowString(from, to time.Time) string {
	return "[" + from.UTC().Format(time.RFC3339) + ", " + to.UTC().Format(time.RFC3339) + ")"
}

// resumeTasks rebuilds the state of a job that a previous leader ran:
// task records from etcd, and attempts still running on live workers,
// which it joins again. A task is done only if its record holds the
// digest its worker answered: a partial committed but never recorded
// (the leader died before hearing back), or recorded without a digest,
// is run again, and the worker that finds it committed vouches for its
// bytes only if they are the ones it computes.
func (tm *term) resumeTasks(j *jobRun) error {
	keys := tm.c.keys
	ctx, cancel := context.WithTimeout(tm.ctx, etcdOpTimeout)
	defer cancel()
	tresp, err := tm.c.cli.Get(ctx, keys.Tasks(j.rec.ID), clientv3.WithPrefix())
	if err != nil {
		tm.abort(fmt.Errorf("coordinator: read tasks: %w", err))
		return tm.fatal
	}
	lresp, err := tm.c.cli.Get(ctx, keys.Leases(j.rec.ID), clientv3.WithPrefix())
	if err != nil {
		tm.abort(fmt.Errorf("coordinator: read leases: %w", err))
		return tm.fatal
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
		if _, ok := t.rec.digest(); t.rec.State == taskDone && !ok {
			t.rec.State = "" // pending: its next attempt records it again
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
		w := tm.workers[l.Worker]
		if err != nil || t.rec.State == taskDone || w == nil || int64(w.lease) != kv.Lease || j.rec.State == stateMerging || j.rec.State == stateCommitting {
			if _, err := tm.txn(nil, clientv3.OpDelete(string(kv.Key))); err != nil {
				return err
			}
			continue
		}
		tm.c.logger.Info("joining running attempt", "job", j.rec.ID, "task", n, "attempt", attempt, "worker", w.info.ID)
		tm.startAttempt(j, t, &attemptRun{n: attempt, worker: w, started: l.Started, backup: l.Backup})
	}
	return nil
}
