package coordinator

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/dataco/clickstream/internal/cluster"
)

// The placement policy is a set of pure functions; these tests hold it
// without etcd or workers.

func worker(id string, parallelism, running int) *workerState {
	w := newWorkerState(cluster.WorkerInfo{ID: id, Addr: id + ":1", Parallelism: parallelism}, 0, 0)
	w.running = running
	return w
}

func task(n int) *taskRun {
	return &taskRun{n: n, attempts: map[int]*attemptRun{}, failedOn: map[string]bool{}}
}

func TestPickWorker(t *testing.T) {
	type setup func(ws map[string]*workerState, t *taskRun)
	tests := []struct {
		name    string
		workers []*workerState
		setup   setup
		want    string // "" for none
	}{
		{name: "no workers", want: ""},
		{name: "least loaded", workers: []*workerState{worker("a", 2, 1), worker("b", 2, 0)}, want: "b"},
		{name: "load is a share of parallelism", workers: []*workerState{worker("a", 4, 2), worker("b", 1, 0), worker("c", 8, 1)}, want: "b"},
		{name: "ties go to the lowest id", workers: []*workerState{worker("c", 2, 1), worker("a", 4, 2), worker("b", 2, 1)}, want: "a"},
		{name: "full workers are skipped", workers: []*workerState{worker("a", 1, 1), worker("b", 2, 2)}, want: ""},
		{name: "parallelism 0 counts as 1", workers: []*workerState{worker("a", 0, 0)}, want: "a"},
		{name: "draining workers are skipped", workers: []*workerState{worker("a", 2, 0), worker("b", 2, 1)},
			setup: func(ws map[string]*workerState, _ *taskRun) { ws["a"].info.Draining = true }, want: "b"},
		{name: "unverified workers are skipped", workers: []*workerState{worker("a", 8, 0), worker("b", 2, 1)},
			setup: func(ws map[string]*workerState, _ *taskRun) { ws["a"].unverified = true }, want: "b"},
		{name: "suspect workers are skipped", workers: []*workerState{worker("a", 2, 0), worker("b", 2, 1)},
			setup: func(ws map[string]*workerState, _ *taskRun) { ws["a"].suspect = true }, want: "b"},
		{name: "no worker but a suspect one", workers: []*workerState{worker("a", 2, 0)},
			setup: func(ws map[string]*workerState, _ *taskRun) { ws["a"].suspect = true }, want: ""},
		{name: "never where the task runs already", workers: []*workerState{worker("a", 4, 0), worker("b", 4, 3)},
			setup: func(ws map[string]*workerState, t *taskRun) { t.attempts[1] = &attemptRun{n: 1, worker: ws["a"]} }, want: "b"},
		{name: "prefers workers where the task has not failed", workers: []*workerState{worker("a", 4, 0), worker("b", 4, 3)},
			setup: func(_ map[string]*workerState, t *taskRun) { t.failedOn["a"] = true }, want: "b"},
		{name: "a worker where it failed rather than none", workers: []*workerState{worker("a", 4, 0), worker("b", 1, 1)},
			setup: func(_ map[string]*workerState, t *taskRun) { t.failedOn["a"] = true }, want: "a"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ws := map[string]*workerState{}
			for _, w := range tc.workers {
				ws[w.info.ID] = w
			}
			tk := task(0)
			if tc.setup != nil {
				tc.setup(ws, tk)
			}
			// Map order varies: the choice must not.
			var ix workerIndex
			for _, w := range ws {
				ix.update(w)
			}
			for range 20 {
				got := pickWorker(ws, tk)
				if byIndex := ix.pick(tk); byIndex != got {
					t.Fatalf("the index picked %v, pickWorker %v", byIndex, got)
				}
				switch {
				case tc.want == "" && got != nil:
					t.Fatalf("picked %s, want none", got.info.ID)
				case tc.want != "" && (got == nil || got.info.ID != tc.want):
					t.Fatalf("picked %v, want %s", got, tc.want)
				}
			}
		})
	}
}

// TestWorkerIndex: the leader's index of workers picks what pickWorker
// picks, looking at every worker, through random changes of the workers'
// load and state and random tasks.
func TestWorkerIndex(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	ws := map[string]*workerState{}
	var ix workerIndex
	for i := range 200 {
		w := worker(fmt.Sprintf("w%03d", i), 1+r.IntN(8), 0)
		ws[w.info.ID] = w
		ix.update(w)
	}
	ids := slices.Sorted(maps.Keys(ws))
	for step := range 20000 {
		w := ws[ids[r.IntN(len(ids))]]
		switch r.IntN(6) {
		case 0:
			w.running = min(w.running+1, max(1, w.info.Parallelism))
		case 1:
			w.running = max(0, w.running-1)
		case 2:
			w.suspect = !w.suspect
		case 3:
			w.unverified = r.IntN(4) == 0
		case 4:
			w.info.Draining = r.IntN(8) == 0
		case 5:
			w.info.Parallelism = r.IntN(9)
			w.running = min(w.running, max(1, w.info.Parallelism))
		}
		ix.update(w)
		tk := task(step)
		for n := range r.IntN(3) {
			tk.attempts[n+1] = &attemptRun{n: n + 1, worker: ws[ids[r.IntN(len(ids))]]}
		}
		for range r.IntN(4) {
			tk.failedOn[ids[r.IntN(len(ids))]] = true
		}
		if got, want := ix.pick(tk), pickWorker(ws, tk); got != want {
			t.Fatalf("step %d: the index picked %v, pickWorker %v", step, got, want)
		}
		in := 0
		for i, w := range ix.heap {
			if w.pos != i || !w.available() {
				t.Fatalf("step %d: worker %s at %d says %d, available %v", step, w.info.ID, i, w.pos, w.available())
			}
			if i > 0 && w.less(ix.heap[(i-1)/2]) {
				t.Fatalf("step %d: heap order broken at %d", step, i)
			}
		}
		for _, w := range ws {
			if w.available() {
				in++
			}
		}
		if in != ix.len() {
			t.Fatalf("step %d: %d workers available, %d in the index", step, in, ix.len())
		}
	}
}

func TestEnqueue(t *testing.T) {
	j := &jobRun{tasks: []*taskRun{task(0), task(1), task(2)}}
	j.tasks[2].rec.State = taskDone
	j.enqueue(j.tasks[1])
	j.enqueue(j.tasks[0])
	j.enqueue(j.tasks[1]) // queued already
	j.enqueue(j.tasks[2]) // done
	if want := []int{1, 0}; !slices.Equal(j.queue, want) {
		t.Fatalf("queue %v, want %v", j.queue, want)
	}
}

func TestMedian(t *testing.T) {
	s := time.Second
	for _, tc := range []struct {
		in   []time.Duration
		want time.Duration
	}{
		{nil, 0},
		{[]time.Duration{3 * s}, 3 * s},
		{[]time.Duration{3 * s, 1 * s}, 3 * s},
		{[]time.Duration{5 * s, 1 * s, 3 * s}, 3 * s},
		{[]time.Duration{4 * s, 1 * s, 3 * s, 2 * s}, 3 * s},
	} {
		in := append([]time.Duration(nil), tc.in...)
		if got := median(tc.in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", in, got, tc.want)
		}
		if !slices.Equal(in, tc.in) {
			t.Errorf("median reordered its input: %v", tc.in)
		}
	}
}

// backupJob is a running job of n tasks: the first done ones finished in
// took each, the others run one attempt each, started at the given times.
func backupJob(n, done int, took time.Duration, started ...time.Time) *jobRun {
	j := &jobRun{phase: phaseRunning}
	w := worker("w", 8, 0)
	for i := range n {
		t := task(i)
		if i < done {
			t.rec.State = taskDone
			j.done++
			j.durations = append(j.durations, took)
		} else {
			t.rec.State = taskRunning
			t.attempts[1] = &attemptRun{n: 1, worker: w, started: started[i-done]}
		}
		j.tasks = append(j.tasks, t)
	}
	return j
}

func TestBackupStragglers(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	policy := backupPolicy{After: 5 * time.Second, Fraction: 0.1, Remaining: 2}
	tests := []struct {
		name          string
		policy        backupPolicy
		job           func() *jobRun
		wantTasks     []int
		wantThreshold time.Duration
	}{
		{name: "threshold is After when tasks were quick", policy: policy,
			job:       func() *jobRun { return backupJob(10, 8, time.Second, ago(6*time.Second), ago(4*time.Second)) },
			wantTasks: []int{8}, wantThreshold: 5 * time.Second},
		{name: "threshold is twice the median when tasks were slow", policy: policy,
			job:       func() *jobRun { return backupJob(10, 8, 4*time.Second, ago(9*time.Second), ago(7*time.Second)) },
			wantTasks: []int{8}, wantThreshold: 8 * time.Second},
		{name: "exactly at the threshold", policy: policy,
			job:       func() *jobRun { return backupJob(4, 3, time.Second, ago(5*time.Second)) },
			wantTasks: []int{3}, wantThreshold: 5 * time.Second},
		{name: "too many tasks remain", policy: policy,
			job: func() *jobRun { return backupJob(10, 7, time.Second, ago(time.Hour), ago(time.Hour), ago(time.Hour)) }},
		{name: "the fraction raises the limit", policy: backupPolicy{After: 5 * time.Second, Fraction: 0.3, Remaining: 2},
			job:       func() *jobRun { return backupJob(10, 7, time.Second, ago(time.Hour), ago(time.Second), ago(time.Hour)) },
			wantTasks: []int{7, 9}, wantThreshold: 5 * time.Second},
		{name: "disabled", policy: backupPolicy{After: -1, Fraction: 1, Remaining: 100},
			job: func() *jobRun { return backupJob(2, 1, time.Second, ago(time.Hour)) }},
		{name: "not while tasks wait for a worker", policy: policy,
			job: func() *jobRun {
				j := backupJob(4, 3, time.Second, ago(time.Hour))
				j.queue = []int{3}
				return j
			}},
		{name: "not before the job runs", policy: policy,
			job: func() *jobRun {
				j := backupJob(4, 3, time.Second, ago(time.Hour))
				j.phase = phaseMerging
				return j
			}},
		{name: "one backup at a time", policy: policy,
			job: func() *jobRun {
				j := backupJob(4, 3, time.Second, ago(time.Hour))
				j.tasks[3].attempts[2] = &attemptRun{n: 2, worker: worker("v", 1, 1), started: ago(time.Minute), backup: true}
				return j
			}},
		{name: "at most maxBackups per task", policy: policy,
			job: func() *jobRun {
				j := backupJob(4, 3, time.Second, ago(time.Hour))
				j.tasks[3].rec.Backups = maxBackups
				return j
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.policy.stragglers(tc.job(), now)
			var tasks []int
			for _, s := range got {
				tasks = append(tasks, s.task.n)
				if s.threshold != tc.wantThreshold {
					t.Errorf("task %d: threshold %v, want %v", s.task.n, s.threshold, tc.wantThreshold)
				}
				if s.task.attempts[s.attempt.n] != s.attempt {
					t.Errorf("task %d: straggler is not the task's attempt", s.task.n)
				}
			}
			if !slices.Equal(tasks, tc.wantTasks) {
				t.Fatalf("backups for tasks %v, want %v", tasks, tc.wantTasks)
			}
		})
	}
}

func TestJobCounters(t *testing.T) {
	j := &jobRun{tasks: []*taskRun{task(0), task(1), task(2)}}
	j.tasks[0].rec = taskRecord{State: taskDone, Attempts: 3, Failures: 1, Lost: 1, Backups: 1, EventsRead: 10, BytesRead: 100}
	j.tasks[1].rec = taskRecord{State: taskDone, Attempts: 1, EventsRead: 5, BytesRead: 50}
	j.tasks[2].rec = taskRecord{State: taskRunning, Attempts: 2, Lost: 1, EventsRead: 99}
	want := finalCounters{Done: 2, Attempts: 6, Retries: 3, Backups: 1, EventsRead: 15, BytesRead: 150}
	if got := j.counters(); got != want {
		t.Fatalf("counters %+v, want %+v", got, want)
	}
}
