// Tasks and their attempts: launching attempts on workers, and what
// their outcomes do to the task.

package coordinator

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/dataco/clickstream/internal/results"
	pb "github.com/dataco/clickstream/proto/clickstream/v1"
)

// taskRun is a task of a running job: its record as written to etcd, and
// the attempts of it that run now.
type taskRun struct {
	n        int
	pt       planTask
	rec      taskRecord
	attempts map[int]*attemptRun // running ones
	failedOn map[string]bool     // workers where an attempt failed
	queued   bool
	backoff  bool // waiting out RetryBackoff before it is queued again
}

// attemptRun is one running attempt of a task on a worker.
type attemptRun struct {
	n       int
	worker  *workerState
	started time.Time
	backup  bool
	cancel  context.CancelFunc
	// recorded: its lease key and task record are committed; until then
	// it only holds its worker's slot, and its RPC has not started.
	recorded bool
}

// errTaskTimeout is the cause of an attempt's context when the attempt
// outlives Config.TaskTimeout.
var errTaskTimeout = errors.New("task attempt timed out")

// dispatch starts queued tasks, oldest job first, while workers have room.
func (tm *term) dispatch() {
	for _, id := range slices.Clone(tm.order) {
		j := tm.jobs[id]
		if j == nil || j.phase != phaseRunning {
			continue
		}
		for len(j.queue) > 0 && tm.fatal == nil && tm.idx.len() > 0 {
			t := j.tasks[j.queue[0]]
			if t.rec.State == taskDone || len(t.attempts) > 0 {
				t.queued = false
				j.queue = j.queue[1:]
				continue
			}
			w := tm.idx.pick(t)
			if w == nil {
				break // no room for this task (maybe for another job's)
			}
			if tm.launch(j, t, w, false) {
				t.queued = false
				j.queue = j.queue[1:]
			}
			if tm.jobs[id] != j {
				break // the job ended
			}
		}
	}
}

// launch records a new attempt of t on w and starts it once recorded.
// The attempt's lease key is attached to the worker's own lease: if the
// worker dies the key vanishes and the leader re-leases the task. The
// record is queued (writes.go): the attempt counts on w at once, and its
// RPC starts when the record is committed. If the worker turns out to be
// gone by then, the attempt is taken back, as if never launched, and the
// task queued again.
func (tm *term) launch(j *jobRun, t *taskRun, w *workerState, backup bool) bool {
	keys := tm.c.keys
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
	leaseKey, taskKey := keys.Lease(j.rec.ID, t.n, a.n), keys.Task(j.rec.ID, t.n)
	t.rec = rec
	tm.addAttempt(j, t, a)
	tm.queue(&write{
		conds: []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(keys.Worker(w.info.ID)), "=", w.createRev)},
		ops: []clientv3.Op{
			clientv3.OpPut(leaseKey, encode(lease), clientv3.WithLease(w.lease)),
			clientv3.OpPut(taskKey, encode(rec)),
		},
		keys: []string{leaseKey, taskKey},
		done: func(ok bool) {
			if !ok {
				tm.unlaunch(j, t, a)
				if tm.workers[w.info.ID] == w {
					tm.removeWorker(w.info.ID, "its lease expired")
				}
				return
			}
			if tm.jobs[j.rec.ID] != j || t.attempts[a.n] != a {
				return // ended before it was recorded
			}
			a.recorded = true
			tm.c.metrics.attemptStarted(a.n, backup)
			tm.c.logger.Debug("attempt started", "job", j.rec.ID, "task", t.n, "bucket", t.pt.Bucket, "attempt", a.n, "worker", w.info.ID, "backup", backup)
			tm.runAttempt(j, t, a)
		},
	})
	return true
}

// unlaunch takes back an attempt whose record etcd refused (its worker
// is gone): nothing of it was written, and its task waits for a worker
// again.
func (tm *term) unlaunch(j *jobRun, t *taskRun, a *attemptRun) {
	if tm.jobs[j.rec.ID] != j || t.attempts[a.n] != a {
		return
	}
	delete(t.attempts, a.n)
	a.worker.running--
	delete(a.worker.attempts, a)
	tm.idx.update(a.worker)
	if t.rec.Attempts == a.n {
		t.rec.Attempts--
		if a.backup {
			t.rec.Backups--
		}
	}
	if len(t.attempts) == 0 {
		t.rec.State = ""
		if j.phase == phaseRunning {
			j.enqueue(t)
		}
	}
}

// startAttempt counts a recorded attempt on its worker and calls RunTask.
func (tm *term) startAttempt(j *jobRun, t *taskRun, a *attemptRun) {
	a.recorded = true
	tm.addAttempt(j, t, a)
	tm.runAttempt(j, t, a)
}

// addAttempt counts an attempt as running, on its task and its worker.
func (tm *term) addAttempt(j *jobRun, t *taskRun, a *attemptRun) {
	t.attempts[a.n] = a
	a.worker.running++
	a.worker.attempts[a] = attemptOf{j, t}
	tm.idx.update(a.worker)
}

// runAttempt calls RunTask for a recorded attempt.
func (tm *term) runAttempt(j *jobRun, t *taskRun, a *attemptRun) {
	var actx context.Context
	if d := tm.c.cfg.TaskTimeout; d > 0 {
		// From the attempt's start, also when a new leader takes up an
		// attempt already running: leader changes do not extend it.
		actx, a.cancel = context.WithDeadlineCause(j.ctx, a.started.Add(d), errTaskTimeout)
	} else {
		actx, a.cancel = context.WithCancel(j.ctx)
	}
	spec := j.rec.Spec
	req := &pb.RunTaskRequest{
		JobId: j.rec.ID, TaskId: int32(t.n), Bucket: int32(t.pt.Bucket), Attempt: int32(a.n),
		LakeUri: spec.Lake, FileKeys: t.pt.Files, FileSizes: t.pt.Sizes,
		WindowFrom: timestamppb.New(spec.From), WindowTo: timestamppb.New(spec.To),
		SessionTimeout: durationpb.New(spec.SessionTimeout),
		PartialUri:     spec.Out, PartialKey: results.PartialKey(j.rec.ID, t.pt.Bucket),
		UserSets: spec.UserSets, IncludeBots: spec.IncludeBots, Rollup: spec.Rollup.toPB(),
	}
	wid, addr := a.worker.info.ID, a.worker.info.Addr
	tm.spawn(func() {
		resp, err := tm.c.runner.RunTask(actx, wid, addr, req)
		// Decided now, not when the term gets to it: an error that
		// came back before the deadline is not a timeout.
		timedOut := status.Code(err) == codes.DeadlineExceeded && context.Cause(actx) == errTaskTimeout
		tm.post(func() { tm.onAttemptDone(j, t, a, resp, err, timedOut) })
	})
}

// endAttempt forgets a running attempt and cancels its RPC.
func (tm *term) endAttempt(t *taskRun, a *attemptRun, outcome string) {
	if t.attempts[a.n] != a {
		return
	}
	delete(t.attempts, a.n)
	a.worker.running--
	delete(a.worker.attempts, a)
	tm.idx.update(a.worker)
	if a.cancel != nil { // nil until its record is committed
		a.cancel()
	}
	t.rec.ended(a, outcome, time.Now())
	tm.c.metrics.attempts.WithLabelValues(outcome).Inc()
}

func (tm *term) onAttemptDone(j *jobRun, t *taskRun, a *attemptRun, resp *pb.RunTaskResponse, err error, timedOut bool) {
	if tm.jobs[j.rec.ID] != j || t.attempts[a.n] != a {
		return // ended already: lost, superseded or cancelled
	}
	if err == nil {
		if d, derr := answeredDigest(resp); derr != nil {
			tm.failAttempt(j, t, a, fmt.Sprintf("attempt %d on worker %s: %v", a.n, a.worker.info.ID, derr))
		} else {
			tm.taskDone(j, t, a, resp, d)
		}
		return
	}
	code := status.Code(err)
	msg := fmt.Sprintf("attempt %d on worker %s: %v", a.n, a.worker.info.ID, errorMessage(err))
	if timedOut {
		// Our deadline, not the worker's trouble: a task that never ends in
		// time must fail its job after MaxAttempts, not be re-run forever as
		// if its workers kept dying.
		tm.failAttempt(j, t, a, fmt.Sprintf("attempt %d on worker %s: %v (--task-timeout %v)", a.n, a.worker.info.ID, errTaskTimeout, tm.c.cfg.TaskTimeout))
		return
	}
	switch code {
	case codes.Unavailable, codes.Canceled, codes.DeadlineExceeded, codes.Aborted:
		if code == codes.Unavailable {
			tm.suspectWorker(a.worker, msg)
		}
		tm.lose(j, t, a, msg)
	default:
		tm.failAttempt(j, t, a, msg)
	}
}

func errorMessage(err error) string {
	if s, ok := status.FromError(err); ok {
		return s.Code().String() + ": " + s.Message()
	}
	return err.Error()
}

// answeredDigest returns the digest of the partial a worker answered
// for: an answer without one vouches for nothing, and does not finish its
// task.
func answeredDigest(resp *pb.RunTaskResponse) (partialDigest, error) {
	sum := resp.GetPartialSha256()
	if len(sum) != sha256.Size || resp.GetPartialBytes() < 0 {
		return partialDigest{}, fmt.Errorf("the worker answered without the SHA-256 and size of its partial (%d digest bytes, size %d)", len(sum), resp.GetPartialBytes())
	}
	return partialDigest{sha256: [sha256.Size]byte(sum), bytes: resp.GetPartialBytes()}, nil
}

func (tm *term) taskDone(j *jobRun, t *taskRun, a *attemptRun, resp *pb.RunTaskResponse, d partialDigest) {
	outcome := attemptOK
	if resp.GetAlreadyCommitted() {
		outcome = attemptDuplicate
	}
	tm.endAttempt(t, a, outcome)
	for _, other := range t.attempts {
		tm.endAttempt(t, other, attemptCancelled)
	}
	took := time.Since(a.started)
	now := time.Now().UTC()
	t.rec.State, t.rec.Worker, t.rec.Finished = taskDone, a.worker.info.ID, now
	t.rec.EventsRead, t.rec.BytesRead, t.rec.Seconds = resp.GetEventsRead(), resp.GetBytesRead(), took.Seconds()
	t.rec.PartialSHA256, t.rec.PartialBytes = hex.EncodeToString(d.sha256[:]), d.bytes
	keys := tm.c.keys
	taskKey, leases := keys.Task(j.rec.ID, t.n), keys.TaskLeases(j.rec.ID, t.n)
	tm.queue(&write{
		ops:      []clientv3.Op{clientv3.OpPut(taskKey, encode(t.rec)), clientv3.OpDelete(leases, clientv3.WithPrefix())},
		keys:     []string{taskKey},
		prefixes: []string{leases},
	})
	j.done++
	j.durations = append(j.durations, took)
	tm.c.logger.Debug("task done", "job", j.rec.ID, "task", t.n, "attempt", a.n, "worker", a.worker.info.ID, "took", took, "already_committed", resp.GetAlreadyCommitted())
	if j.done == len(j.tasks) {
		tm.merge(j)
	}
}

// lose handles an attempt lost with its worker (dead, unreachable, shutting
// down): it does not count as a failure of the task, up to MaxLost.
func (tm *term) lose(j *jobRun, t *taskRun, a *attemptRun, why string) {
	if t.attempts[a.n] != a {
		return
	}
	tm.endAttempt(t, a, attemptLost)
	t.rec.Lost++
	t.rec.LastError = why
	tm.c.logger.Info("attempt lost", "job", j.rec.ID, "task", t.n, "attempt", a.n, "why", why)
	if t.rec.Lost >= tm.c.cfg.MaxLost {
		tm.endJob(j, stateFailed, fmt.Sprintf("task %d (bucket %d): %d attempts lost with their workers; last: %s", t.n, t.pt.Bucket, t.rec.Lost, why))
		return
	}
	tm.retry(j, t, a)
}

// failAttempt handles an attempt that failed with an error.
func (tm *term) failAttempt(j *jobRun, t *taskRun, a *attemptRun, why string) {
	tm.endAttempt(t, a, attemptFailed)
	t.rec.Failures++
	t.rec.LastError = why
	t.failedOn[a.worker.info.ID] = true
	tm.c.logger.Warn("attempt failed", "job", j.rec.ID, "task", t.n, "attempt", a.n, "err", why)
	if t.rec.Failures >= j.rec.Spec.MaxAttempts {
		tm.endJob(j, stateFailed, fmt.Sprintf("task %d (bucket %d) failed %d times; last error: %s", t.n, t.pt.Bucket, t.rec.Failures, why))
		return
	}
	if d := retryBackoff(tm.c.cfg.RetryBackoff, t.rec.Failures); d > 0 && len(t.attempts) == 0 {
		// Not queued again until the backoff is over.
		t.backoff = true
		tm.spawn(func() {
			timer := time.NewTimer(d)
			defer timer.Stop()
			select {
			case <-timer.C:
				tm.post(func() {
					t.backoff = false
					if tm.jobs[j.rec.ID] == j && len(t.attempts) == 0 {
						j.enqueue(t)
					}
				})
			case <-tm.ctx.Done():
			}
		})
	}
	tm.retry(j, t, a)
}

// retryBackoff is the wait before a task runs again after its
// failures-th failed attempt: base, doubled for each failure before, up
// to maxRetryBackoff.
func retryBackoff(base time.Duration, failures int) time.Duration {
	d := base
	for i := 1; i < failures && d < maxRetryBackoff; i++ {
		d *= 2
	}
	return min(d, maxRetryBackoff)
}

// retry records an ended attempt and queues its task again unless another
// attempt of it still runs.
func (tm *term) retry(j *jobRun, t *taskRun, a *attemptRun) {
	if len(t.attempts) == 0 {
		t.rec.State = ""
	}
	keys := tm.c.keys
	leaseKey, taskKey := keys.Lease(j.rec.ID, t.n, a.n), keys.Task(j.rec.ID, t.n)
	tm.queue(&write{
		ops:  []clientv3.Op{clientv3.OpDelete(leaseKey), clientv3.OpPut(taskKey, encode(t.rec))},
		keys: []string{leaseKey, taskKey},
	})
	if len(t.attempts) == 0 && !t.backoff {
		j.enqueue(t)
	}
}

// backups starts the backup attempts the policy asks for (placement.go),
// oldest job first, while workers have room.
func (tm *term) backups() {
	policy := tm.c.cfg.backupPolicy()
	now := time.Now()
	for _, id := range slices.Clone(tm.order) {
		j := tm.jobs[id]
		if j == nil {
			continue
		}
		for _, st := range policy.stragglers(j, now) {
			w := tm.idx.pick(st.task)
			if w == nil {
				return
			}
			tm.c.logger.Info("starting backup attempt", "job", j.rec.ID, "task", st.task.n, "straggler", st.attempt.worker.info.ID,
				"running_for", now.Sub(st.attempt.started).Round(time.Millisecond), "threshold", st.threshold, "backup_worker", w.info.ID)
			tm.launch(j, st.task, w, true)
			if tm.fatal != nil || tm.jobs[id] != j {
				break
			}
		}
	}
}
