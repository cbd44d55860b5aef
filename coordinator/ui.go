// The web UI's view of the cluster: the records of etcd and the lake, read
// with the decoding the API uses (readJob, progress), turned into the
// types of package ui.

package coordinator

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/dataco/clickstream/coordinator/ui"
	"github.com/dataco/clickstream/internal/cluster"
	"github.com/dataco/clickstream/internal/lake"
)

// Bounds of the UI's reads.
const (
	uiMaxWorkers = 1000 // workers listed
	uiMaxSources = 1000 // ingest sources listed
	// uiHeartbeats bounds the lease look-ups of one workers page; the
	// workers beyond it show no heartbeat.
	uiHeartbeats = 200
)

// uiIngestTTL is how long the ingest page's reading of the lake serves
// again: pages poll every second, and the lake need not be read as often.
const uiIngestTTL = 5 * time.Second

// uiCluster implements ui.Cluster for a coordinator.
type uiCluster struct {
	c      *Coordinator
	ingest *ingestCache // nil: the lake is read on every request
}

// ingestCache keeps the last reading of the lake's watermark records.
type ingestCache struct {
	mu  sync.Mutex // held while reading: one reading at a time
	at  time.Time
	val *ui.Ingest
}

// UI returns the coordinator's web UI handler (package ui); Run serves it
// on the coordinator's HTTP listener.
func (c *Coordinator) UI() (*ui.Handler, error) {
	return ui.New(uiCluster{c: c, ingest: &ingestCache{}}, ui.Options{TLS: c.tls, Logger: c.logger.With("component", "ui")})
}

func (u uiCluster) Jobs(ctx context.Context, limit int, before string) ([]ui.Job, bool, error) {
	c := u.c
	opts := []clientv3.OpOption{clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend), clientv3.WithLimit(int64(limit))}
	if before != "" {
		if err := cluster.ValidateID("job", before); err != nil {
			return nil, false, fmt.Errorf("%w: %w", ui.ErrInvalid, err)
		}
		opts = append(opts, clientv3.WithRange(c.keys.Job(before))) // keys below it
	} else {
		opts = append(opts, clientv3.WithPrefix())
	}
	resp, err := c.cli.Get(ctx, c.keys.Jobs(), opts...)
	if err != nil {
		return nil, false, fmt.Errorf("coordinator: list jobs: %w", err)
	}
	out := make([]ui.Job, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		rec, err := decode[jobRecord](kv.Value, "job")
		if err != nil {
			continue
		}
		j, err := u.job(ctx, rec)
		if err != nil {
			return nil, false, err
		}
		out = append(out, j)
	}
	return out, resp.More, nil
}

// job turns a job record and its progress into a ui.Job.
func (u uiCluster) job(ctx context.Context, rec *jobRecord) (ui.Job, error) {
	p, err := u.c.progress(ctx, rec)
	if err != nil {
		return ui.Job{}, err
	}
	j := ui.Job{
		ID: rec.ID, State: rec.State, From: rec.Spec.From, To: rec.Spec.To, Out: rec.Spec.Out,
		Created: rec.Created, Started: rec.Started, Finished: rec.Finished,
		TasksTotal: int(p.GetTasksTotal()), TasksDone: int(p.GetTasksDone()), TasksRunning: int(p.GetTasksRunning()),
		Attempts: int(p.GetAttempts()), Retries: int(p.GetRetries()), Backups: int(p.GetBackups()), Workers: int(p.GetWorkers()),
		EventsRead: p.GetEventsRead(), BytesRead: p.GetBytesRead(),
		Indexed: publicationSummary(rec.Publications), SubmittedBy: rec.SubmittedBy,
		CancelRequested: rec.CancelRequested, Error: rec.Error, Warning: rec.Warning,
	}
	if rec.Result != nil {
		j.HasResult, j.Rows, j.Revision, j.Final = true, rec.Result.Rows, rec.Result.Revision, rec.Result.Final
	}
	return j, nil
}

func (u uiCluster) Job(ctx context.Context, id string, maxTasks int) (*ui.JobDetail, error) {
	c := u.c
	rec, _, err := c.readJob(ctx, id)
	if errors.Is(err, ErrJobNotFound) {
		return nil, fmt.Errorf("%w: job %s", ui.ErrNotFound, id)
	}
	if err != nil {
		return nil, err
	}
	j, err := u.job(ctx, rec)
	if err != nil {
		return nil, err
	}
	d := &ui.JobDetail{Job: j}
	if rec.State == statePending {
		return d, nil
	}
	resp, err := c.cli.Get(ctx, c.keys.Tasks(id), clientv3.WithPrefix(), clientv3.WithLimit(int64(maxTasks)))
	if err != nil {
		return nil, fmt.Errorf("coordinator: read tasks of %s: %w", id, err)
	}
	// At the same revision, so that tasks and leases agree.
	lresp, err := c.cli.Get(ctx, c.keys.Leases(id), clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision),
		clientv3.WithLimit(int64(2*maxTasks)))
	if err != nil {
		return nil, fmt.Errorf("coordinator: read leases of %s: %w", id, err)
	}
	recs := map[int]*taskRecord{}
	for _, kv := range resp.Kvs {
		if t, err := decode[taskRecord](kv.Value, "task"); err == nil {
			recs[t.Task] = t
		}
	}
	running := map[int][]ui.Attempt{}
	for _, kv := range lresp.Kvs {
		_, n, _, err := c.keys.LeaseID(string(kv.Key))
		if err != nil {
			continue
		}
		if l, err := decode[leaseRecord](kv.Value, "lease"); err == nil {
			running[n] = append(running[n], ui.Attempt{N: l.Attempt, Worker: l.Worker, Backup: l.Backup, Started: l.Started, Outcome: "running"})
		}
	}
	if terminal(rec.State) && len(recs) == 0 {
		d.TasksCleaned = true // deleted with the job's leftovers
		return d, nil
	}
	total := rec.Tasks
	d.MoreTasks = total > maxTasks
	for n := range min(total, maxTasks) {
		t := ui.Task{Task: n, Bucket: -1, State: "pending"}
		if r := recs[n]; r != nil {
			t = taskView(r)
		}
		as := running[n]
		slices.SortFunc(as, func(a, b ui.Attempt) int { return a.N - b.N })
		t.Runs = append(t.Runs, as...)
		if t.State == "running" && len(as) > 0 {
			t.Worker = as[len(as)-1].Worker
		}
		d.Tasks = append(d.Tasks, t)
	}
	return d, nil
}

// taskView turns a task record into a ui.Task, its ended attempts first.
func taskView(r *taskRecord) ui.Task {
	state := r.State
	if state == "" {
		state = "pending" // between attempts
	}
	t := ui.Task{
		Task: r.Task, Bucket: r.Bucket, State: state, Worker: r.Worker,
		Attempts: r.Attempts, Failures: r.Failures, Lost: r.Lost, Backups: r.Backups,
		Started: r.Started, Finished: r.Finished, Seconds: r.Seconds,
		EventsRead: r.EventsRead, BytesRead: r.BytesRead, LastError: r.LastError,
	}
	for _, a := range r.History {
		t.Runs = append(t.Runs, ui.Attempt{N: a.N, Worker: a.Worker, Backup: a.Backup, Started: a.Started, Ended: a.Ended, Outcome: a.Outcome})
	}
	return t
}

func (u uiCluster) Workers(ctx context.Context) ([]ui.Worker, error) {
	c := u.c
	resp, err := c.cli.Get(ctx, c.keys.Workers(), clientv3.WithPrefix(), clientv3.WithLimit(uiMaxWorkers))
	if err != nil {
		return nil, fmt.Errorf("coordinator: read workers: %w", err)
	}
	lresp, err := c.cli.Get(ctx, c.keys.AllLeases(), clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision))
	if err != nil {
		return nil, fmt.Errorf("coordinator: read leases: %w", err)
	}
	running := map[string]int{}
	for _, kv := range lresp.Kvs {
		if l, err := decode[leaseRecord](kv.Value, "lease"); err == nil {
			running[l.Worker]++
		}
	}
	now := time.Now()
	var out []ui.Worker
	for _, kv := range resp.Kvs {
		id, err := c.keys.WorkerID(string(kv.Key))
		if err != nil {
			continue
		}
		info, err := decode[cluster.WorkerInfo](kv.Value, "worker "+id)
		if err != nil || info.ID != id {
			continue
		}
		w := ui.Worker{ID: id, Addr: info.Addr, Host: info.Host, PID: info.PID, Parallelism: info.Parallelism,
			Running: running[id], Draining: info.Draining, Started: info.Started,
			TasksDone: info.TasksDone, TasksFailed: info.TasksFailed}
		if kv.Lease != 0 && len(out) < uiHeartbeats {
			// A keep-alive renews the lease to its full TTL: the time
			// since the last one is what the TTL has lost since.
			if ttl, err := c.cli.TimeToLive(ctx, clientv3.LeaseID(kv.Lease)); err == nil && ttl.TTL > 0 && ttl.GrantedTTL > 0 {
				w.TTL = time.Duration(ttl.GrantedTTL) * time.Second
				w.LastHeartbeat = now.Add(-time.Duration(ttl.GrantedTTL-ttl.TTL) * time.Second)
			}
		}
		out = append(out, w)
	}
	return out, nil
}

func (u uiCluster) Schedule(ctx context.Context, limit int) (*ui.Schedule, error) {
	c := u.c
	s := c.cfg.Schedule
	out := &ui.Schedule{Enabled: s.Enabled, Window: s.Window, Lateness: s.Lateness, Out: s.Out}
	resp, err := c.cli.Get(ctx, c.cfg.EtcdPrefix+"/schedule/windows/", clientv3.WithPrefix(),
		clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend), clientv3.WithLimit(int64(limit)))
	if err != nil {
		return nil, fmt.Errorf("schedule: read windows: %w", err)
	}
	out.More = resp.More
	for _, kv := range resp.Kvs {
		r, err := decode[windowRecord](kv.Value, "window")
		if err != nil {
			continue
		}
		out.Windows = append(out.Windows, ui.Window{From: r.From, To: r.To, Job: r.Job, State: r.State, Input: r.Input,
			Runs: r.Runs, Failures: r.Failures, Error: r.Error, Updated: r.Updated, Provisional: r.Provisional})
	}
	return out, nil
}

func (u uiCluster) Ingest(ctx context.Context) (*ui.Ingest, error) {
	if u.c.cfg.Lake == "" {
		return nil, nil
	}
	if u.ingest == nil {
		return u.readIngest(ctx)
	}
	u.ingest.mu.Lock()
	defer u.ingest.mu.Unlock()
	if u.ingest.val != nil && time.Since(u.ingest.at) < uiIngestTTL {
		return u.ingest.val, nil
	}
	val, err := u.readIngest(ctx)
	if err != nil {
		return nil, err
	}
	u.ingest.val, u.ingest.at = val, time.Now()
	return val, nil
}

// readIngest reads the watermark records of the coordinator's lake.
func (u uiCluster) readIngest(ctx context.Context) (*ui.Ingest, error) {
	c := u.c
	store, err := c.store(ctx, c.cfg.Lake)
	if err != nil {
		return nil, err
	}
	wms, more, err := lake.ReadWatermarks(ctx, store, uiMaxSources)
	if err != nil {
		return nil, err
	}
	out := &ui.Ingest{Lake: store.URI(), More: more, IdleAfter: c.cfg.Schedule.IdleSource}
	for _, w := range wms {
		s := ui.Source{Source: w.Source, Seq: w.Seq, End: w.End, LastCommit: w.Updated}
		if w.Watermark != math.MinInt64 {
			s.Watermark = time.UnixMilli(w.Watermark).UTC()
		}
		out.Sources = append(out.Sources, s)
	}
	return out, nil
}
