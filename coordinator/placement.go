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
// not draining, not suspect, with a free slot, not running t already; of
// those it prefers workers where t has not failed, then the least loaded
// (running / parallelism), then the lowest id, so that the choice is
// deterministic. nil if none. It looks at every worker: the leader asks
// its workerIndex, which chooses the same in O(log workers); pickWorker
// is the policy the index is tested against.
func pickWorker(workers map[string]*workerState, t *taskRun) *workerState {
	var best *workerState
	for _, w := range workers {
		if !w.eligible(t) {
			continue
		}
		if best == nil || betterFor(t, w, best) {
			best = w
		}
	}
	return best
}

// available reports whether w may take a new attempt of some task: the
// workers in the index.
func (w *workerState) available() bool {
	return !w.gone && !w.unverified && !w.info.Draining && !w.suspect && w.free() > 0
}

// eligible reports whether w may take a new attempt of t.
func (w *workerState) eligible(t *taskRun) bool {
	return w.available() && !t.runsOn(w)
}

// runsOn reports whether an attempt of t runs on w.
func (t *taskRun) runsOn(w *workerState) bool {
	for _, a := range t.attempts {
		if a.worker == w {
			return true
		}
	}
	return false
}

// less orders workers as pickWorker prefers them, but for the task's
// failures: the least loaded first, then the lowest id.
func (w *workerState) less(other *workerState) bool {
	if l, m := w.load(), other.load(); l != m {
		return l < m
	}
	return w.info.ID < other.info.ID
}

// workerIndex holds the available workers (workerState.available) in a
// heap ordered by workerState.less: the leader keeps it up to date
// (update) whenever a worker's load or state changes, and pick finds
// the worker pickWorker would choose in O((k+1) log n), k being the
// workers that t runs on or failed on, a handful.
type workerIndex struct{ heap []*workerState }

// update puts w in its place in the index, in or out of it.
func (ix *workerIndex) update(w *workerState) {
	switch in := w.pos >= 0; {
	case w.available() && !in:
		w.pos = len(ix.heap)
		ix.heap = append(ix.heap, w)
		ix.up(w.pos)
	case w.available():
		if !ix.down(w.pos) {
			ix.up(w.pos)
		}
	case in:
		ix.remove(w)
	}
}

// remove takes w out of the index, if it is in.
func (ix *workerIndex) remove(w *workerState) {
	i := w.pos
	if i < 0 {
		return
	}
	last := len(ix.heap) - 1
	if i != last {
		ix.swap(i, last)
	}
	ix.heap[last] = nil
	ix.heap = ix.heap[:last]
	w.pos = -1
	if i != last && !ix.down(i) {
		ix.up(i)
	}
}

// len is the number of available workers.
func (ix *workerIndex) len() int { return len(ix.heap) }

// pick returns the worker pickWorker(workers, t) returns, the index
// holding workers' available ones, or nil. It takes workers out in order
// until one suits t, and puts them back.
func (ix *workerIndex) pick(t *taskRun) *workerState {
	var taken []*workerState
	var best, failed *workerState
	for len(ix.heap) > 0 {
		w := ix.heap[0]
		ix.remove(w)
		taken = append(taken, w)
		if t.runsOn(w) {
			continue
		}
		if t.failedOn[w.info.ID] {
			if failed == nil {
				failed = w // the best of those where t failed
			}
			continue
		}
		best = w
		break
	}
	for _, w := range taken {
		ix.update(w)
	}
	if best == nil {
		best = failed
	}
	return best
}

func (ix *workerIndex) swap(i, j int) {
	ix.heap[i], ix.heap[j] = ix.heap[j], ix.heap[i]
	ix.heap[i].pos, ix.heap[j].pos = i, j
}

func (ix *workerIndex) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !ix.heap[i].less(ix.heap[p]) {
			return
		}
		ix.swap(i, p)
		i = p
	}
}

// down moves the worker at i down to its place; it reports whether it
// moved.
func (ix *workerIndex) down(i int) bool {
	start, n := i, len(ix.heap)
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && ix.heap[r].less(ix.heap[l]) {
			m = r
		}
		if !ix.heap[m].less(ix.heap[i]) {
			break
		}
		ix.swap(i, m)
		i = m
	}
	return i > start
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
