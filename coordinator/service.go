package coordinator

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/dataco/clickstream/internal/aggregate"
	"github.com/dataco/clickstream/internal/cluster"
	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/results"
	pb "github.com/dataco/clickstream/proto/clickstream/v1"
)

// Sentinel errors of the API; they map to gRPC codes at the RPC edge.
var (
	ErrInvalidJob  = errors.New("coordinator: invalid job")
	ErrJobNotFound = errors.New("coordinator: no such job")
	ErrJobFinished = errors.New("coordinator: job already finished")
	// ErrCommitting: the job's result is being committed; too late to
	// cancel it.
	ErrCommitting = errors.New("coordinator: job is committing its result; too late to cancel")
	// ErrKeyReused: a submit's idempotency key names a job with another
	// spec.
	ErrKeyReused = errors.New("coordinator: idempotency key already used for another job")
	ErrNoLake    = errors.New("coordinator: not a lake")
	// ErrStoreUnavailable: a job's lake or output store could not be
	// opened for a reason other than its URI (Unavailable: retry later).
	ErrStoreUnavailable = errors.New("coordinator: store unavailable")
)

// watchInterval is the longest a WatchJob stream waits between updates of
// a changing job, and watchRefresh the longest between updates at all.
const (
	watchInterval = 200 * time.Millisecond
	watchRefresh  = 2 * time.Second
)

func rpcError(err error) error {
	if err == nil {
		return nil
	}
	if s, ok := status.FromError(err); ok {
		return s.Err() // already a status
	}
	var code codes.Code
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	case errors.Is(err, ErrInvalidJob):
		code = codes.InvalidArgument
	case errors.Is(err, ErrJobNotFound):
		code = codes.NotFound
	case errors.Is(err, ErrJobFinished), errors.Is(err, ErrNoLake), errors.Is(err, ErrCommitting):
		code = codes.FailedPrecondition
	case errors.Is(err, ErrKeyReused):
		code = codes.AlreadyExists
	case errors.Is(err, ErrLimit):
		code = codes.ResourceExhausted
	default:
		code = codes.Unavailable // etcd trouble: retry later
	}
	st := status.New(code, err.Error())
	if re := (*retryError)(nil); errors.As(err, &re) {
		if d, derr := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(re.after)}); derr == nil {
			st = d
		}
	}
	return st.Err()
}

// newJobID returns a random job id that sorts by creation time.
func newJobID(now time.Time) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return now.UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
}

// normalize validates a JobSpec and fills its defaults (validSpec), then
// opens its stores: the output (under --output-root, if set) and the lake,
// which must hold a lake. Nothing is opened or created for a spec that
// validSpec refuses.
func (c *Coordinator) normalize(ctx context.Context, s *pb.JobSpec) (jobSpec, error) {
	js, err := validSpec(&c.cfg, s)
	if err != nil {
		return js, err
	}
	if _, err := c.output(ctx, js.Out); err != nil {
		if errors.Is(err, lake.ErrOutsideRoot) {
			return js, fmt.Errorf("%w: output %s leads out of --output-root %s: %w", ErrInvalidJob, js.Out, strings.Join(c.cfg.OutputRoots, ","), err)
		}
		return js, fmt.Errorf("%w: output: %w", storeErrKind(err), err)
	}
	if js.Rollup != nil {
		if _, err := c.output(ctx, js.Rollup.Windows); err != nil {
			if errors.Is(err, lake.ErrOutsideRoot) {
				return js, fmt.Errorf("%w: roll-up windows %s lead out of --output-root %s: %w", ErrInvalidJob, js.Rollup.Windows, strings.Join(c.cfg.OutputRoots, ","), err)
			}
			return js, fmt.Errorf("%w: roll-up windows: %w", storeErrKind(err), err)
		}
		return js, nil
	}
	src, err := c.store(ctx, js.Lake)
	if err != nil {
		return js, fmt.Errorf("%w: lake: %w", storeErrKind(err), err)
	}
	if _, err := lake.ReadMeta(ctx, src); err != nil {
		if errors.Is(err, lake.ErrNotExist) {
			return js, fmt.Errorf("%w: %s has no %s (nothing was ever ingested there?)", ErrNoLake, js.Lake, lake.MetaKey)
		}
		return js, fmt.Errorf("%w: %s: %w", ErrNoLake, js.Lake, err)
	}
	return js, nil
}

// validSpec validates a JobSpec against cfg and fills its defaults,
// without opening anything: a window within the limits, a known format,
// a session timeout and attempts in range, and store URIs that name
// stores, replaced by their canonical form (lake.Canonical, the URI a
// store opened from them reports), so that every process resolves them
// the same way. The output must be under cfg.OutputRoots, if any, and
// must not overlap the lake. Errors match ErrInvalidJob. What it accepts
// is a fixed point: the JobSpec of its result validates to that result.
func validSpec(cfg *Config, s *pb.JobSpec) (jobSpec, error) {
	var js jobSpec
	if s == nil || s.GetFrom() == nil || s.GetTo() == nil {
		return js, fmt.Errorf("%w: from and to are required", ErrInvalidJob)
	}
	if err := s.GetFrom().CheckValid(); err != nil {
		return js, fmt.Errorf("%w: from: %w", ErrInvalidJob, err)
	}
	if err := s.GetTo().CheckValid(); err != nil {
		return js, fmt.Errorf("%w: to: %w", ErrInvalidJob, err)
	}
	js.From, js.To = s.GetFrom().AsTime().UTC(), s.GetTo().AsTime().UTC()
	if err := (aggregate.Window{From: js.From, To: js.To}).Validate(); err != nil {
		return js, fmt.Errorf("%w: %w", ErrInvalidJob, err)
	}
	switch s.GetFormat() {
	case pb.OutputFormat_OUTPUT_FORMAT_UNSPECIFIED, pb.OutputFormat_OUTPUT_FORMAT_NDJSON:
		js.Format = results.NDJSON
	case pb.OutputFormat_OUTPUT_FORMAT_CSV:
		js.Format = results.CSV
	default:
		return js, fmt.Errorf("%w: unknown output format %v", ErrInvalidJob, s.GetFormat())
	}
	if d := s.GetSessionTimeout(); d != nil {
		if err := d.CheckValid(); err != nil {
			return js, fmt.Errorf("%w: session timeout: %w", ErrInvalidJob, err)
		}
	}
	js.SessionTimeout = s.GetSessionTimeout().AsDuration()
	switch {
	case s.GetSessionTimeout() == nil || js.SessionTimeout == 0:
		js.SessionTimeout = cfg.SessionTimeout
	case js.SessionTimeout < 0:
		return js, fmt.Errorf("%w: negative session timeout %v", ErrInvalidJob, js.SessionTimeout)
	}
	js.MaxAttempts = int(s.GetMaxAttempts())
	switch {
	case js.MaxAttempts == 0:
		js.MaxAttempts = cfg.MaxAttempts
	case js.MaxAttempts < 0 || js.MaxAttempts > 100:
		return js, fmt.Errorf("%w: max attempts %d: want 1 to 100", ErrInvalidJob, js.MaxAttempts)
	}
	if s.GetRollup() != nil {
		return validRollupSpec(cfg, s, js)
	}
	js.UserSets = s.GetUserSets()
	js.IncludeBots = s.GetIncludeBots()
	if js.EventsSnapshot = s.GetEventsSnapshot(); js.EventsSnapshot < 0 {
		return js, fmt.Errorf("%w: negative events snapshot %d", ErrInvalidJob, js.EventsSnapshot)
	}
	if err := cfg.Limits.checkSpec(js); err != nil {
		return js, err
	}
	out, err := validOut(cfg, s)
	if err != nil {
		return js, err
	}
	js.Out = out
	lakeURI := s.GetLakeUri()
	if lakeURI == "" {
		lakeURI = cfg.Lake
	}
	if lakeURI == "" {
		return js, fmt.Errorf("%w: no lake: the job names none and the coordinator has no --lake", ErrInvalidJob)
	}
	if js.Lake, err = lake.Canonical(lakeURI); err != nil {
		return js, fmt.Errorf("%w: lake: %w", ErrInvalidJob, err)
	}
	if overlaps(js.Out, js.Lake) {
		return js, fmt.Errorf("%w: the output %s overlaps the lake %s; write results elsewhere", ErrInvalidJob, js.Out, js.Lake)
	}
	return js, nil
}

// validOut is a job's output: canonical, and under --output-root.
func validOut(cfg *Config, s *pb.JobSpec) (string, error) {
	if s.GetOutUri() == "" {
		return "", fmt.Errorf("%w: no output URI", ErrInvalidJob)
	}
	out, err := lake.Canonical(s.GetOutUri())
	if err != nil {
		return "", fmt.Errorf("%w: output: %w", ErrInvalidJob, err)
	}
	if roots := cfg.OutputRoots; len(roots) > 0 && !lake.Under(out, roots) {
		return "", fmt.Errorf("%w: output %s is not under --output-root %s", ErrInvalidJob, out, strings.Join(roots, ","))
	}
	return out, nil
}

// validRollupSpec is validSpec's end for a roll-up job: the output as
// for any job, then the roll-up's part (validRollup).
func validRollupSpec(cfg *Config, s *pb.JobSpec, js jobSpec) (jobSpec, error) {
	out, err := validOut(cfg, s)
	if err != nil {
		return js, err
	}
	js.Out = out
	if err := validRollup(cfg, s, &js); err != nil {
		return js, err
	}
	return js, nil
}

// storeErrKind classifies a failure to open a job's store: a URI that
// cannot name a store, or an output that a symbolic link leads out of
// --output-root, makes the job invalid; anything else (an endpoint down, a
// disk that cannot be written) may pass, and the caller may retry.
func storeErrKind(err error) error {
	if errors.Is(err, lake.ErrBadURI) || errors.Is(err, lake.ErrOutsideRoot) {
		return ErrInvalidJob
	}
	return ErrStoreUnavailable
}

// SubmitJob implements CoordinatorService.SubmitJob: it records the job as
// pending; the leader picks it up from etcd. A submit with an idempotency
// key that is already recorded returns the job that key created. Every
// call counts against its caller's submit rate (Limits.MaxSubmitRate),
// checked first.
func (c *Coordinator) SubmitJob(ctx context.Context, req *pb.SubmitJobRequest) (*pb.SubmitJobResponse, error) {
	if err := c.checkSubmitRate(ctx); err != nil {
		return nil, rpcError(err)
	}
	key := req.GetIdempotencyKey()
	if key != "" {
		if err := cluster.ValidateID("idempotency key", key); err != nil {
			return nil, rpcError(fmt.Errorf("%w: %w", ErrInvalidJob, err))
		}
	}
	spec, err := c.normalize(ctx, req.GetSpec())
	if err != nil {
		return nil, rpcError(err)
	}
	j, _, err := c.submit(ctx, spec, key, submitter(ctx), nil, nil)
	if err != nil {
		return nil, rpcError(err)
	}
	return &pb.SubmitJobResponse{Job: j}, nil
}

// submit records a new job for spec. The job's record is written in one
// etcd transaction with the operations also returns for the job's id, and
// only if conds hold: ok is false, and nothing written, if they do not.
// With an idempotency key, the transaction also records the key; if the
// key is recorded already, submit returns the job it names (ok true), or
// ErrKeyReused if that job's spec is not spec. by names the submitter.
func (c *Coordinator) submit(ctx context.Context, spec jobSpec, idemKey, by string, conds []clientv3.Cmp, also func(id string) ([]clientv3.Op, error)) (_ *pb.Job, ok bool, _ error) {
	if idemKey != "" {
		// A retried submit gets its job even when the cluster is full.
		resp, err := c.cli.Get(ctx, c.keys.Submission(idemKey))
		if err != nil {
			return nil, false, fmt.Errorf("coordinator: read idempotency key: %w", err)
		}
		if len(resp.Kvs) > 0 {
			return c.resubmitted(ctx, idemKey, string(resp.Kvs[0].Value), spec)
		}
	}
	active, err := c.cli.Get(ctx, c.keys.Active(), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return nil, false, fmt.Errorf("coordinator: count unfinished jobs: %w", err)
	}
	if n := active.Count; n >= int64(c.cfg.Limits.MaxActiveJobs) {
		c.metrics.refused.WithLabelValues(limitActiveJobs).Inc()
		return nil, false, fmt.Errorf("%w: %d jobs are unfinished, the most this cluster takes (--max-active-jobs); submit again once some have ended", ErrLimit, n)
	}
	now := time.Now().UTC()
	rec := &jobRecord{ID: newJobID(now), Spec: spec, State: statePending, Created: now, IdempotencyKey: idemKey, SubmittedBy: by}
	key := c.keys.Job(rec.ID)
	ops := []clientv3.Op{clientv3.OpPut(key, encode(rec)), clientv3.OpPut(c.keys.ActiveJob(rec.ID), "")}
	if also != nil {
		more, err := also(rec.ID)
		if err != nil {
			return nil, false, err
		}
		ops = append(ops, more...)
	}
	conds = append([]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(key), "=", 0)}, conds...)
	elseOps := []clientv3.Op{clientv3.OpGet(key, clientv3.WithKeysOnly())}
	if idemKey != "" {
		sub := c.keys.Submission(idemKey)
		conds = append(conds, clientv3.Compare(clientv3.CreateRevision(sub), "=", 0))
		ops = append(ops, clientv3.OpPut(sub, rec.ID))
		elseOps = append(elseOps, clientv3.OpGet(sub))
	}
	resp, err := c.cli.Txn(ctx).If(conds...).Then(ops...).Else(elseOps...).Commit()
	if err != nil {
		return nil, false, fmt.Errorf("coordinator: record job: %w", err)
	}
	if !resp.Succeeded {
		if idemKey != "" {
			if kvs := resp.Responses[1].GetResponseRange().GetKvs(); len(kvs) > 0 {
				return c.resubmitted(ctx, idemKey, string(kvs[0].Value), spec)
			}
		}
		if len(resp.Responses[0].GetResponseRange().GetKvs()) > 0 {
			return nil, false, status.Errorf(codes.Aborted, "job id %s taken; submit again", rec.ID)
		}
		return nil, false, nil
	}
	c.logger.Info("job submitted", "job", rec.ID, "from", spec.From, "to", spec.To, "out", spec.Out, "lake", spec.Lake)
	j, err := c.jobStatus(ctx, rec)
	if err != nil {
		return nil, true, err
	}
	return j, true, nil
}

// resubmitted answers a submit whose idempotency key created job id.
func (c *Coordinator) resubmitted(ctx context.Context, idemKey, id string, spec jobSpec) (*pb.Job, bool, error) {
	rec, _, err := c.readJob(ctx, id)
	if errors.Is(err, ErrJobNotFound) {
		return nil, false, fmt.Errorf("%w: key %s created job %s, whose record is gone", ErrKeyReused, idemKey, id)
	}
	if err != nil {
		return nil, false, err
	}
	if encode(rec.Spec) != encode(spec) {
		return nil, false, fmt.Errorf("%w: key %s created job %s with another spec", ErrKeyReused, idemKey, id)
	}
	c.logger.Info("job submitted again with its idempotency key", "job", id)
	j, err := c.jobStatus(ctx, rec)
	if err != nil {
		return nil, false, err
	}
	return j, true, nil
}

func (c *Coordinator) readJob(ctx context.Context, id string) (*jobRecord, int64, error) {
	if err := cluster.ValidateID("job", id); err != nil {
		return nil, 0, fmt.Errorf("%w: %w", ErrJobNotFound, err)
	}
	resp, err := c.cli.Get(ctx, c.keys.Job(id))
	if err != nil {
		return nil, 0, fmt.Errorf("coordinator: read job %s: %w", id, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, 0, fmt.Errorf("%w: %s", ErrJobNotFound, id)
	}
	rec, err := decode[jobRecord](resp.Kvs[0].Value, "job "+id)
	if err != nil {
		return nil, 0, err
	}
	return rec, resp.Kvs[0].ModRevision, nil
}

// coordinators returns the addresses of the coordinators campaigning for
// leadership, the leader first, then the standbys in the order they would
// take over; nil if etcd cannot say.
func (c *Coordinator) coordinators(ctx context.Context) []string {
	resp, err := c.cli.Get(ctx, c.keys.Election(), clientv3.WithPrefix(),
		clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend))
	if err != nil {
		return nil
	}
	var addrs []string
	for _, kv := range resp.Kvs {
		if a := string(kv.Value); a != "" && !slices.Contains(addrs, a) {
			addrs = append(addrs, a)
		}
	}
	return addrs
}

// progress counts a job's tasks from etcd.
func (c *Coordinator) progress(ctx context.Context, rec *jobRecord) (*pb.JobProgress, error) {
	var v *jobView
	if rec.Final == nil && rec.State != statePending {
		var err error
		if v, _, err = c.readJobView(ctx, rec.ID); err != nil {
			return nil, err
		}
	}
	return c.progressOf(ctx, rec, v)
}

// progressOf is the progress of a job whose task and lease records v
// holds (nil: none needed, the job is pending or finished).
func (c *Coordinator) progressOf(ctx context.Context, rec *jobRecord, v *jobView) (*pb.JobProgress, error) {
	p := &pb.JobProgress{TasksTotal: int32(rec.Tasks)}
	if f := rec.Final; f != nil {
		p.TasksDone, p.Attempts, p.Retries, p.Backups = int32(f.Done), int32(f.Attempts), int32(f.Retries), int32(f.Backups)
		p.EventsRead, p.BytesRead = f.EventsRead, f.BytesRead
	} else if rec.State != statePending && v != nil {
		v.count(p)
	}
	p.TasksPending = max(0, p.TasksTotal-p.TasksDone-p.TasksRunning)
	if !terminal(rec.State) {
		wresp, err := c.cli.Get(ctx, c.keys.Workers(), clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			return nil, fmt.Errorf("coordinator: count workers: %w", err)
		}
		p.ClusterWorkers = int32(wresp.Count)
	}
	return p, nil
}

// jobView is what a job's progress is counted from: its task records and
// the workers of its attempt leases. A WatchJob stream reads it once and
// then applies the changes its etcd watch delivers, so that an update
// costs the records that changed, not every record of the job.
type jobView struct {
	tasks  map[string]taskCount // by key
	leases map[string]string    // worker by lease key
}

// taskCount is what progress counts of a task record.
type taskCount struct {
	state                             string
	attempts, failures, lost, backups int32
	eventsRead, bytesRead             int64
}

// readJobView reads the task and lease records of a job at one revision,
// which it returns.
func (c *Coordinator) readJobView(ctx context.Context, id string) (*jobView, int64, error) {
	v := &jobView{tasks: map[string]taskCount{}, leases: map[string]string{}}
	resp, err := c.cli.Get(ctx, c.keys.Tasks(id), clientv3.WithPrefix())
	if err != nil {
		return nil, 0, fmt.Errorf("coordinator: read tasks of %s: %w", id, err)
	}
	for _, kv := range resp.Kvs {
		v.putTask(kv.Key, kv.Value)
	}
	// At the same revision, so that tasks and leases agree.
	rev := resp.Header.Revision
	lresp, err := c.cli.Get(ctx, c.keys.Leases(id), clientv3.WithPrefix(), clientv3.WithRev(rev))
	if err != nil {
		return nil, 0, fmt.Errorf("coordinator: read leases of %s: %w", id, err)
	}
	for _, kv := range lresp.Kvs {
		v.putLease(kv.Key, kv.Value)
	}
	return v, rev, nil
}

func (v *jobView) putTask(key, value []byte) {
	t, err := decode[taskRecord](value, "task")
	if err != nil {
		delete(v.tasks, string(key))
		return
	}
	v.tasks[string(key)] = taskCount{
		state: t.State, attempts: int32(t.Attempts), failures: int32(t.Failures), lost: int32(t.Lost), backups: int32(t.Backups),
		eventsRead: t.EventsRead, bytesRead: t.BytesRead,
	}
}

func (v *jobView) putLease(key, value []byte) {
	if l, err := decode[leaseRecord](value, "lease"); err == nil {
		v.leases[string(key)] = l.Worker
	} else {
		delete(v.leases, string(key))
	}
}

// apply applies a change of a task record (tasks) or of an attempt lease.
func (v *jobView) apply(ev *clientv3.Event, tasks bool) {
	switch {
	case tasks && ev.Type == clientv3.EventTypePut:
		v.putTask(ev.Kv.Key, ev.Kv.Value)
	case tasks:
		// Task records are deleted only with the job's end, in the
		// transaction that records its final counters: the job's record
		// (its own watch) says what they were.
	case ev.Type == clientv3.EventTypePut:
		v.putLease(ev.Kv.Key, ev.Kv.Value)
	default:
		delete(v.leases, string(ev.Kv.Key))
	}
}

// count adds up the view into p.
func (v *jobView) count(p *pb.JobProgress) {
	for _, t := range v.tasks {
		switch t.state {
		case taskDone:
			p.TasksDone++
			p.EventsRead += t.eventsRead
			p.BytesRead += t.bytesRead
		case taskRunning:
			p.TasksRunning++
		}
		p.Attempts += t.attempts
		p.Retries += t.failures + t.lost
		p.Backups += t.backups
	}
	workers := make(map[string]bool, len(v.leases))
	for _, w := range v.leases {
		workers[w] = true
	}
	p.Workers = int32(len(workers))
}

func (c *Coordinator) jobStatus(ctx context.Context, rec *jobRecord) (*pb.Job, error) {
	p, err := c.progress(ctx, rec)
	if err != nil {
		return nil, err
	}
	return rec.toPB(p, c.coordinators(ctx)), nil
}

// GetJob implements CoordinatorService.GetJob.
func (c *Coordinator) GetJob(ctx context.Context, req *pb.GetJobRequest) (*pb.GetJobResponse, error) {
	rec, _, err := c.readJob(ctx, req.GetId())
	if err != nil {
		return nil, rpcError(err)
	}
	j, err := c.jobStatus(ctx, rec)
	if err != nil {
		return nil, rpcError(err)
	}
	return &pb.GetJobResponse{Job: j}, nil
}

// ListJobs implements CoordinatorService.ListJobs.
func (c *Coordinator) ListJobs(ctx context.Context, req *pb.ListJobsRequest) (*pb.ListJobsResponse, error) {
	limit := int(req.GetLimit())
	switch {
	case limit <= 0:
		limit = min(defaultListJobs, c.cfg.Limits.MaxListJobs)
	case limit > c.cfg.Limits.MaxListJobs:
		return nil, status.Errorf(codes.InvalidArgument, "a page of %d jobs is larger than %d (--max-list-jobs)", limit, c.cfg.Limits.MaxListJobs)
	}
	resp, err := c.cli.Get(ctx, c.keys.Jobs(), clientv3.WithPrefix(),
		clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend), clientv3.WithLimit(int64(limit)))
	if err != nil {
		return nil, rpcError(fmt.Errorf("coordinator: list jobs: %w", err))
	}
	out := &pb.ListJobsResponse{}
	coords := c.coordinators(ctx)
	for _, kv := range resp.Kvs {
		rec, err := decode[jobRecord](kv.Value, "job")
		if err != nil {
			continue
		}
		p, err := c.progress(ctx, rec)
		if err != nil {
			return nil, rpcError(err)
		}
		out.Jobs = append(out.Jobs, rec.toPB(p, coords))
	}
	slices.SortStableFunc(out.Jobs, func(a, b *pb.Job) int { return strings.Compare(b.GetId(), a.GetId()) })
	return out, nil
}

// CancelJob implements CoordinatorService.CancelJob: it marks the job for
// cancellation; the leader stops it.
func (c *Coordinator) CancelJob(ctx context.Context, req *pb.CancelJobRequest) (*pb.CancelJobResponse, error) {
	for range 10 {
		rec, rev, err := c.readJob(ctx, req.GetId())
		if err != nil {
			return nil, rpcError(err)
		}
		if terminal(rec.State) {
			return nil, rpcError(fmt.Errorf("%w: %s %s", ErrJobFinished, rec.ID, rec.State))
		}
		if rec.State == stateCommitting {
			return nil, rpcError(fmt.Errorf("%w: %s", ErrCommitting, rec.ID))
		}
		if !rec.CancelRequested {
			rec.CancelRequested = true
			key := c.keys.Job(rec.ID)
			resp, err := c.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).
				Then(clientv3.OpPut(key, encode(rec))).Commit()
			if err != nil {
				return nil, rpcError(fmt.Errorf("coordinator: cancel %s: %w", rec.ID, err))
			}
			if !resp.Succeeded {
				continue // changed under us: read again
			}
			c.logger.Info("job cancel requested", "job", rec.ID)
		}
		j, err := c.jobStatus(ctx, rec)
		if err != nil {
			return nil, rpcError(err)
		}
		return &pb.CancelJobResponse{Job: j}, nil
	}
	return nil, status.Errorf(codes.Aborted, "job %s keeps changing; cancel again", req.GetId())
}

// WatchJob implements CoordinatorService.WatchJob.
func (c *Coordinator) WatchJob(req *pb.WatchJobRequest, stream pb.CoordinatorService_WatchJobServer) error {
	if n := c.watches.Add(1); n > int64(c.cfg.Limits.MaxWatchStreams) {
		c.watches.Add(-1)
		c.metrics.refused.WithLabelValues(limitWatchStreams).Inc()
		return rpcError(fmt.Errorf("%w: %d watch streams open on this coordinator (--max-watch-streams); poll the job's status, or watch later", ErrLimit, n-1))
	}
	defer c.watches.Add(-1)
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	// End the stream when the coordinator closes, without a goroutine per
	// stream waiting for it.
	defer context.AfterFunc(c.base, cancel)()
	err := c.watchJob(ctx, req.GetId(), stream.Send)
	if c.base.Err() != nil && stream.Context().Err() == nil {
		return status.Error(codes.Unavailable, "coordinator shutting down; watch again")
	}
	return rpcError(err)
}

var errWatchLost = status.Error(codes.Unavailable, "lost the etcd watch; watch again")

// watchJob sends the job's status whenever it changes, until it is
// terminal. It reads the job's records once, then follows them with etcd
// watches from that revision on: an update reads nothing but the count
// of workers and the coordinators, however many tasks the job has.
func (c *Coordinator) watchJob(ctx context.Context, id string, send func(*pb.WatchJobResponse) error) error {
	rec, _, err := c.readJob(ctx, id)
	if err != nil {
		return err
	}
	// The tasks and leases at one revision, and the job at it too: the
	// watches start from the revision after. Read now, not at the record's
	// revision, which compaction may have removed from etcd's history.
	v, rev, err := c.readJobView(ctx, rec.ID)
	if err != nil {
		return err
	}
	jresp, err := c.cli.Get(ctx, c.keys.Job(rec.ID), clientv3.WithRev(rev))
	if err != nil {
		return fmt.Errorf("coordinator: watch job %s: %w", id, err)
	}
	if len(jresp.Kvs) == 0 {
		return fmt.Errorf("%w: %s", ErrJobNotFound, id)
	}
	if rec, err = decode[jobRecord](jresp.Kvs[0].Value, "job "+id); err != nil {
		return err
	}
	wctx := clientv3.WithRequireLeader(ctx)
	jobCh := c.cli.Watch(wctx, c.keys.Job(rec.ID), clientv3.WithRev(rev+1))
	taskCh := c.cli.Watch(wctx, c.keys.Tasks(rec.ID), clientv3.WithPrefix(), clientv3.WithRev(rev+1))
	leaseCh := c.cli.Watch(wctx, c.keys.Leases(rec.ID), clientv3.WithPrefix(), clientv3.WithRev(rev+1))
	tick := time.NewTicker(watchInterval)
	defer tick.Stop()
	var last time.Time
	dirty := true
	for {
		if since := time.Since(last); (dirty && since >= watchInterval) || since >= watchRefresh {
			p, err := c.progressOf(ctx, rec, v)
			if err != nil {
				return err
			}
			if err := send(&pb.WatchJobResponse{Job: rec.toPB(p, c.coordinators(ctx))}); err != nil {
				return err
			}
			if terminal(rec.State) {
				return nil
			}
			dirty, last = false, time.Now()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case wr, ok := <-jobCh:
			if !ok || wr.Err() != nil {
				return errWatchLost
			}
			for _, ev := range wr.Events {
				if ev.Type != clientv3.EventTypePut {
					return fmt.Errorf("%w: %s (its record was deleted)", ErrJobNotFound, id)
				}
				next, err := decode[jobRecord](ev.Kv.Value, "job "+id)
				if err != nil {
					return err
				}
				rec = next
			}
			dirty = true
		case wr, ok := <-taskCh:
			if !ok || wr.Err() != nil {
				return errWatchLost
			}
			for _, ev := range wr.Events {
				v.apply(ev, true)
			}
			dirty = true
		case wr, ok := <-leaseCh:
			if !ok || wr.Err() != nil {
				return errWatchLost
			}
			for _, ev := range wr.Events {
				v.apply(ev, false)
			}
			dirty = true
		case <-tick.C:
		}
	}
}

// overlaps reports whether the stores a and b share objects: one is the
// other or lies below it.
func overlaps(a, b string) bool {
	return lake.Under(a, []string{b}) || lake.Under(b, []string{a})
}
