// Placement policy: which worker runs a new attempt, which tasks wait for
// one, and when a straggling task gets a backup attempt. Pure functions of
// the leader's state, so that the policy is tested without etcd; the term
// (attempts.go) acts on what they decide.

package coordinator

import (
	"math"
	"slices"
	"time"
)

// pickWorker returns the worker for a new attempt of t: live, verified,
// not draining, not excluded at now, with a free slot, not running t already;
// of those it prefers workers where t has not failed, then the least
// loaded (running / parallelism), then the lowest id, so that the choice
// is deterministic. nil if none.
func pickWorker(workers map[string]*workerState, t *taskRun, now time.Time) *workerState {
	var best *workerState
	for _, w := range workers {
		if !w.eligible(t, now) {
			continue
		}
		if best == nil || betterFor(t, w, best) {
			best = w
		}
	}
	return best
}

// eligible reports whether w may take a new attempt of t at now.
func (w *workerState) eligible(t *taskRun, now time.Time) bool {
	if w.unverified || w.info.Draining || w.free() <= 0 || now.Before(w.excluded) {
		return false
	}
	for _, a := range t.attempts {
		if a.worker == w {
			return false
		}
	}
	return true
}

// betterFor reports whether w is a better place than other for t.
func betterFor(t *taskRun, w, other *workerState) bool {
	if f, g := t.failedOn[w.info.ID], t.failedOn[other.info.ID]; f != g {
		return !f
	}
	if l, m := w.load(), other.load(); l != m {
		return l < m
	}
	return w.info.ID < other.info.ID
}

// load is the share of w's slots in use.
func (w *workerState) load() float64 {
	return float64(w.running) / float64(max(1, w.info.Parallelism))
}

// enqueue queues t for a worker, unless it is queued or done already.
func (j *jobRun) enqueue(t *taskRun) {
	if t.queued || t.rec.State == taskDone {
		return
	}
	t.queued = true
	j.queue = append(j.queue, t.n)
}

// backupPolicy decides when a straggling task gets a backup attempt
// (MapReduce's backup tasks): when at most max(Remaining, Fraction ×
// tasks) tasks of a job remain and none waits for a worker, a task whose
// only attempt has run longer than max(After, 2 × the median duration of
// the job's finished tasks) gets another attempt on another worker, at
// most maxBackups times. The first attempt to commit wins; the other is
// cancelled. After < 0 disables backups.
type backupPolicy struct {
	After     time.Duration
	Fraction  float64
	Remaining int
}

func (c Config) backupPolicy() backupPolicy {
	return backupPolicy{After: c.BackupAfter, Fraction: c.BackupFraction, Remaining: c.BackupRemaining}
}

// straggler is an attempt that deserves a backup.
type straggler struct {
	task      *taskRun
	attempt   *attemptRun
	threshold time.Duration
}

// stragglers returns the attempts of j that get a backup at now, in task
// order.
func (p backupPolicy) stragglers(j *jobRun, now time.Time) []straggler {
	if p.After < 0 || j.phase != phaseRunning || len(j.queue) > 0 {
		return nil
	}
	remaining := len(j.tasks) - j.done
	limit := max(p.Remaining, int(math.Ceil(p.Fraction*float64(len(j.tasks)))))
	if remaining == 0 || remaining > limit {
		return nil
	}
	threshold := max(p.After, 2*median(j.durations))
	var out []straggler
	for _, t := range j.tasks {
		if t.rec.State == taskDone || len(t.attempts) != 1 || t.rec.Backups >= maxBackups {
			continue
		}
		for _, a := range t.attempts {
			if now.Sub(a.started) >= threshold {
				out = append(out, straggler{task: t, attempt: a, threshold: threshold})
			}
		}
	}
	return out
}

// median is the median of ds (the upper one of an even count); 0 if empty.
func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	c := slices.Clone(ds)
	slices.Sort(c)
	return c[len(c)/2]
}

// counters sums the task records of j into the job's final counters.
func (j *jobRun) counters() finalCounters {
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
