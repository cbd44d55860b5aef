package coordinator

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/dataco/clickstream/coordinator/ui"
	"github.com/dataco/clickstream/internal/lake/laketest"
	pb "github.com/dataco/clickstream/proto/clickstream/v1"
)

// TestUICluster reads the cluster as the web UI does, from etcd and the
// lake, while jobs run: pages of jobs with who submitted them, a job's
// tasks with their running attempts, the workers with their running
// tasks and heartbeats, and, once a worker died, the lost attempts in the
// tasks' history; then the final counters of the finished job.
func TestUICluster(t *testing.T) {
	h := newHarness(t, 4, 50, 2000)
	c := h.coordinator(nil)
	cl := h.client(c)
	u := uiCluster{c: c}
	ctx := context.Background()

	w1 := h.worker("w1", 8, hang)
	var ids []string
	for range 2 {
		spec := h.spec()
		spec.OutUri = laketest.NewFile(t).URI() // jobs with one output run one after the other
		j, err := cl.Submit(ctx, spec)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, j.GetId())
	}
	slices.Sort(ids)
	slices.Reverse(ids) // by id, descending: newest first, as the UI lists them
	waitUntil(t, "every task running on w1", 20*time.Second, func() bool { return w1.running.Load() == 8 })

	jobs, more, err := u.Jobs(ctx, 1, "")
	if err != nil || len(jobs) != 1 || !more || jobs[0].ID != ids[0] {
		t.Fatalf("first page: %v, more %v, err %v; want %s", jobIDs(jobs), more, err, ids[0])
	}
	jobs, more, err = u.Jobs(ctx, 10, jobs[0].ID)
	if err != nil || len(jobs) != 1 || more || jobs[0].ID != ids[1] {
		t.Fatalf("second page: %v, more %v, err %v; want %s", jobIDs(jobs), more, err, ids[1])
	}
	j := jobs[0]
	if j.State != stateRunning || j.TasksTotal != 4 || j.TasksRunning != 4 || j.SubmittedBy != "ip:127.0.0.1" {
		t.Errorf("job %+v", j)
	}

	d, err := u.Job(ctx, ids[0], 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Tasks) != 4 {
		t.Fatalf("%d tasks", len(d.Tasks))
	}
	for _, task := range d.Tasks {
		if task.State != "running" || task.Worker != "w1" || len(task.Runs) != 1 || task.Runs[0].Outcome != "running" {
			t.Errorf("task %+v", task)
		}
	}
	if d, err := u.Job(ctx, ids[0], 2); err != nil || len(d.Tasks) != 2 || !d.MoreTasks {
		t.Errorf("capped at 2 tasks: %v, err %v", d, err)
	}
	if _, err := u.Job(ctx, "20990101-000000-00000000", 10); !errors.Is(err, ui.ErrNotFound) {
		t.Errorf("unknown job: %v", err)
	}

	ws, err := u.Workers(ctx)
	if err != nil || len(ws) != 1 {
		t.Fatalf("workers %+v, err %v", ws, err)
	}
	if w := ws[0]; w.ID != "w1" || w.Running != 8 || w.Parallelism != 8 || w.LastHeartbeat.IsZero() || w.TTL != 2*time.Second {
		t.Errorf("worker %+v", w)
	}

	// w1 dies; w2 takes its tasks and holds them until released.
	release := make(chan struct{})
	h.worker("w2", 8, func(ctx context.Context, req *pb.RunTaskRequest) (*pb.RunTaskResponse, error) {
		select {
		case <-release:
			return computeTask(ctx, req)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	})
	h.kill(w1)
	waitUntil(t, "the tasks re-leased to w2", 20*time.Second, func() bool {
		d, err := u.Job(ctx, ids[0], 100)
		if err != nil {
			return false
		}
		for _, task := range d.Tasks {
			if task.Worker != "w2" || task.Lost != 1 || len(task.Runs) != 2 {
				return false
			}
			lost, now := task.Runs[0], task.Runs[1]
			if lost.Worker != "w1" || lost.Outcome != "lost" || lost.Ended.IsZero() || now.Worker != "w2" || now.Outcome != "running" || now.N != 2 {
				t.Fatalf("task %d runs %+v", task.Task, task.Runs)
			}
		}
		return true
	})
	close(release)
	for _, id := range ids {
		if j, err := cl.Wait(ctx, id, nil); err != nil || j.GetState() != pb.JobState_JOB_STATE_SUCCEEDED {
			t.Fatalf("job %s: %v %v", id, j.GetState(), err)
		}
	}
	waitUntil(t, "the finished job's task records cleaned up", 20*time.Second, func() bool {
		d, err := u.Job(ctx, ids[0], 100)
		return err == nil && d.TasksCleaned && len(d.Tasks) == 0
	})
	d, err = u.Job(ctx, ids[0], 100)
	if err != nil {
		t.Fatal(err)
	}
	if j := d.Job; j.State != stateSucceeded || j.TasksDone != 4 || !j.HasResult || j.Retries != 4 || j.Finished.IsZero() {
		t.Errorf("finished job %+v", j)
	}

	in, err := u.Ingest(ctx)
	if err != nil || in == nil || len(in.Sources) == 0 {
		t.Fatalf("ingest %+v, err %v", in, err)
	}
	for _, s := range in.Sources {
		if s.Seq == 0 || s.Watermark.IsZero() || s.LastCommit.IsZero() {
			t.Errorf("source %+v", s)
		}
	}
}

func jobIDs(jobs []ui.Job) []string {
	var ids []string
	for _, j := range jobs {
		ids = append(ids, j.ID)
	}
	return ids
}

// TestUISchedule: the windows page shows the scheduler's records, newest
// first, with its settings.
func TestUISchedule(t *testing.T) {
	h := newHarness(t, 2, 0, 0)
	c := h.coordinator(func(cfg *Config) { cfg.Schedule.Lateness = 7 * time.Minute })
	ctx := context.Background()
	for i, state := range []string{windowDone, windowFailed, windowRunning} {
		from := tFrom.Add(time.Duration(i) * time.Hour)
		rec := &windowRecord{From: from, To: from.Add(time.Hour), Job: "j" + state, State: state, Input: "files=1,events=2", Runs: i + 1}
		if err := c.putWindow(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	s, err := uiCluster{c: c}.Schedule(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if s.Lateness != 7*time.Minute || !s.More || len(s.Windows) != 2 {
		t.Fatalf("schedule %+v", s)
	}
	if w := s.Windows[0]; w.State != windowRunning || w.Runs != 3 || w.Reruns() != 2 || !w.From.Equal(tFrom.Add(2*time.Hour)) {
		t.Errorf("newest window %+v", w)
	}
}
