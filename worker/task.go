package worker

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/dataco/clickstream/internal/aggregate"
	"github.com/dataco/clickstream/internal/cluster"
	"github.com/dataco/clickstream/internal/event"
	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/ordered"
	"github.com/dataco/clickstream/internal/results"
	"github.com/dataco/clickstream/internal/rollup"
	pb "github.com/dataco/clickstream/proto/clickstream/v1"
)

// Sentinel errors of task execution; RunTask maps them to gRPC codes.
var (
	ErrBadRequest = errors.New("worker: bad task request")
	// ErrForbidden: a task names a store outside the worker's roots, a
	// partial key that is not its own, or a key that a symbolic link leads
	// out of its store.
	ErrForbidden = errors.New("worker: task outside the worker's roots")
	ErrDraining  = errors.New("worker: shutting down")
	ErrDecode    = errors.New("worker: undecodable data file")
	// ErrFenced: the attempt is no longer leased to this worker (its lease
	// expired, or the job ended), so its partial must not be committed.
	ErrFenced = errors.New("worker: attempt no longer leased")
	// ErrPartialMismatch: the task's partial is stored already, but not
	// with the bytes this attempt computed. Every attempt of a task
	// computes the same bytes, so something else wrote it: it is not
	// vouched for, and the task fails rather than report it committed.
	ErrPartialMismatch = errors.New("worker: the stored partial is not the one this task computes")
)

// attemptKey names one attempt of one task.
type attemptKey struct {
	job     string
	task    int32
	attempt int32
}

// run is one computation of an attempt, shared by every RunTask call for
// that attempt: a coordinator that took over re-issues the calls of its
// predecessor, and they join the running computation.
type run struct {
	done    chan struct{}
	resp    *pb.RunTaskResponse
	err     error
	cancel  context.CancelFunc
	waiters int  // guarded by Worker.runsMu
	dropped bool // cancelled: every caller left (guarded by Worker.runsMu)
}

// task is a validated RunTaskRequest, confined to the worker's roots.
type task struct {
	req *pb.RunTaskRequest
	// lake and out are the canonical URIs of the lake and of the partial's
	// store (lake.Canonical), each under one of the worker's roots.
	lake, out string
	window    aggregate.Window
	timeout   time.Duration
}

// checkTask validates req and confines it to the roots (canonical, as
// Config.Validate leaves them). A malformed request is ErrBadRequest;
// one naming a store outside the roots, or a partial key other than its
// task's own, is ErrForbidden. It reads nothing and never panics: what
// it accepts, every key and store included, is inside the roots.
func checkTask(req *pb.RunTaskRequest, lakeRoots, outputRoots []string) (task, error) {
	t := task{req: req}
	switch {
	case req.GetAttempt() < 1:
		return t, fmt.Errorf("%w: attempt %d < 1", ErrBadRequest, req.GetAttempt())
	case req.GetTaskId() < 0 || req.GetBucket() < 0:
		return t, fmt.Errorf("%w: negative task %d or bucket %d", ErrBadRequest, req.GetTaskId(), req.GetBucket())
	case req.GetRollup() == nil && req.GetLakeUri() == "" || req.GetPartialUri() == "" || req.GetPartialKey() == "":
		return t, fmt.Errorf("%w: lake_uri, partial_uri and partial_key are required", ErrBadRequest)
	case req.GetWindowFrom() == nil || req.GetWindowTo() == nil:
		return t, fmt.Errorf("%w: no window", ErrBadRequest)
	}
	if err := checkJobID(req.GetJobId()); err != nil {
		return t, err
	}
	if err := errors.Join(req.GetWindowFrom().CheckValid(), req.GetWindowTo().CheckValid()); err != nil {
		return t, fmt.Errorf("%w: window: %w", ErrBadRequest, err)
	}
	t.window = aggregate.Window{From: req.GetWindowFrom().AsTime(), To: req.GetWindowTo().AsTime()}
	if err := t.window.Validate(); err != nil {
		return t, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	t.timeout = req.GetSessionTimeout().AsDuration()
	if t.timeout <= 0 {
		t.timeout = aggregate.DefaultSessionTimeout
	}
	if req.GetRollup() != nil {
		return checkRollupTask(t, lakeRoots, outputRoots)
	}
	if err := checkFiles(req.GetFileKeys(), req.GetFileSizes()); err != nil {
		return t, err
	}
	var err error
	if t.lake, err = lake.Canonical(req.GetLakeUri()); err != nil {
		return t, fmt.Errorf("%w: lake: %w", ErrBadRequest, err)
	}
	if t.out, err = lake.Canonical(req.GetPartialUri()); err != nil {
		return t, fmt.Errorf("%w: output: %w", ErrBadRequest, err)
	}
	own := results.PartialKey(req.GetJobId(), int(req.GetBucket()))
	switch {
	case !lake.Under(t.lake, lakeRoots):
		return t, fmt.Errorf("%w: lake %s is not under --lake-root %s", ErrForbidden, t.lake, strings.Join(lakeRoots, ","))
	case !lake.Under(t.out, outputRoots):
		return t, fmt.Errorf("%w: output %s is not under --output-root %s", ErrForbidden, t.out, strings.Join(outputRoots, ","))
	case req.GetPartialKey() != own:
		return t, fmt.Errorf("%w: partial key %q is not the task's own (%s)", ErrForbidden, req.GetPartialKey(), own)
	}
	return t, nil
}

// checkJobID accepts the ids a coordinator gives jobs: a cluster id
// (letters, digits, '.', '_', '-') that makes a valid partial key, so
// not "." or "..".
func checkJobID(id string) error {
	if err := cluster.ValidateID("job", id); err != nil {
		return fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	if err := lake.CheckKey(results.PartialKey(id, 0)); err != nil {
		return fmt.Errorf("%w: job id %q: %w", ErrBadRequest, id, err)
	}
	return nil
}

// checkFiles accepts data file keys of a lake, each once, with a recorded
// size each: keys relative to the lake (lake.CheckKey: no absolute key,
// no "." or ".." segment), under lake.EventsPrefix, of a data file format.
func checkFiles(keys []string, sizes []int64) error {
	if len(sizes) != len(keys) {
		return fmt.Errorf("%w: %d file keys but %d file sizes: every file needs the size its manifest records", ErrBadRequest, len(keys), len(sizes))
	}
	seen := make(map[string]bool, len(keys))
	for i, k := range keys {
		if err := lake.CheckKey(k); err != nil {
			return fmt.Errorf("%w: file key: %w", ErrBadRequest, err)
		}
		if !strings.HasPrefix(k, lake.EventsPrefix) {
			return fmt.Errorf("%w: file key %q is not under %s", ErrBadRequest, k, lake.EventsPrefix)
		}
		if _, err := lake.FormatOfKey(k); err != nil {
			return fmt.Errorf("%w: %w", ErrBadRequest, err)
		}
		if sizes[i] < 0 {
			return fmt.Errorf("%w: file %s: negative size %d", ErrBadRequest, k, sizes[i])
		}
		if seen[k] {
			return fmt.Errorf("%w: file key %q given twice", ErrBadRequest, k)
		}
		seen[k] = true
	}
	return nil
}

// RunTask implements WorkerService.RunTask: see the proto for the contract.
func (w *Worker) RunTask(ctx context.Context, req *pb.RunTaskRequest) (*pb.RunTaskResponse, error) {
	if w.draining.Load() {
		return nil, toStatus(ErrDraining)
	}
	t, err := checkTask(req, w.cfg.LakeRoots, w.cfg.OutputRoots)
	if err != nil {
		return nil, toStatus(err)
	}
	key := attemptKey{req.GetJobId(), req.GetTaskId(), req.GetAttempt()}
	w.runsMu.Lock()
	r, joined := w.runs[key]
	if joined && r.dropped {
		joined = false // cancelled but not gone yet: start afresh
	}
	if !joined {
		rctx, cancel := context.WithCancel(w.base)
		r = &run{done: make(chan struct{}), cancel: cancel}
		w.runs[key] = r
		w.tasks.Add(1)
		go func() {
			defer w.tasks.Done()
			defer cancel()
			r.resp, r.err = w.execute(rctx, t)
			switch {
			case r.err == nil:
				w.tasksDone.Add(1)
			case rctx.Err() == nil:
				w.tasksFailed.Add(1) // not cancelled: failed
			}
			w.runsMu.Lock()
			if w.runs[key] == r {
				delete(w.runs, key)
			}
			w.runsMu.Unlock()
			close(r.done)
		}()
	}
	r.waiters++
	w.runsMu.Unlock()
	if joined {
		w.logger.Info("joined running attempt", "job", key.job, "task", key.task, "attempt", key.attempt)
	}

	select {
	case <-r.done:
		w.leave(r)
		if r.err != nil {
			return nil, toStatus(r.err)
		}
		return r.resp, nil
	case <-ctx.Done():
		// The last caller to give up cancels the computation.
		w.leave(r)
		return nil, status.FromContextError(ctx.Err()).Err()
	}
}

func (w *Worker) leave(r *run) {
	w.runsMu.Lock()
	r.waiters--
	if r.waiters == 0 {
		r.dropped = true
		r.cancel()
	}
	w.runsMu.Unlock()
}

// execute runs one attempt: wait for a slot, read the files, compute the
// partial, commit it with put-if-absent.
func (w *Worker) execute(ctx context.Context, t task) (*pb.RunTaskResponse, error) {
	req := t.req
	log := w.logger.With("job", req.GetJobId(), "task", req.GetTaskId(), "attempt", req.GetAttempt())
	select {
	case w.sem <- struct{}{}:
	case <-ctx.Done():
		w.metrics.tasks.WithLabelValues(outcomeCancelled).Inc()
		return nil, ctx.Err()
	}
	defer func() { <-w.sem }()
	w.metrics.running.Inc()
	defer w.metrics.running.Dec()
	start := time.Now()
	resp, err := w.compute(ctx, t)
	elapsed := time.Since(start)
	w.metrics.duration.Observe(elapsed.Seconds())
	switch {
	case err == nil && resp.AlreadyCommitted:
		w.metrics.tasks.WithLabelValues(outcomeCommitted).Inc()
	case err == nil:
		w.metrics.tasks.WithLabelValues(outcomeOK).Inc()
	case ctx.Err() != nil:
		w.metrics.tasks.WithLabelValues(outcomeCancelled).Inc()
		log.Info("task cancelled", "after", elapsed)
		return nil, ctx.Err()
	default:
		w.metrics.tasks.WithLabelValues(outcomeFailed).Inc()
		log.Error("task failed", "err", err, "after", elapsed)
		return nil, err
	}
	resp.WorkerId = w.id
	resp.Duration = durationpb.New(elapsed)
	log.Info("task done", "events_read", resp.EventsRead, "bytes", resp.BytesRead,
		"already_committed", resp.AlreadyCommitted, "took", elapsed)
	return resp, nil
}

func (w *Worker) compute(ctx context.Context, t task) (*pb.RunTaskResponse, error) {
	req := t.req
	if w.cfg.Slow > 0 {
		select {
		case <-time.After(w.cfg.Slow):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	out, err := w.stores.OpenUnder(ctx, t.out, w.cfg.OutputRoots)
	if err != nil {
		return nil, storeError("partial store", err)
	}
	if req.GetRollup() != nil {
		return w.rollup(ctx, out, t)
	}
	src, err := w.stores.OpenUnder(ctx, t.lake, w.cfg.LakeRoots)
	if err != nil {
		return nil, storeError("lake", err)
	}
	// Computed even when a copy of this task (an earlier attempt, a
	// backup) committed already: the answer vouches for the partial's
	// bytes, so the worker must know them.
	p, nbytes, err := w.aggregate(ctx, src, t)
	if err != nil {
		return nil, err
	}
	w.metrics.eventsRead.Add(float64(p.Read))
	w.metrics.bytesRead.Add(float64(nbytes))
	data, err := p.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("worker: encode partial: %w", err)
	}
	resp := &pb.RunTaskResponse{EventsRead: p.Read, EventsInWindow: p.Events, BytesRead: nbytes}
	return w.commitPartial(ctx, out, req, data, resp)
}

// commitPartial puts a task's partial with put-if-absent once its
// attempt is still leased (fencing), and completes resp with the
// partial's size and SHA-256. A partial stored already by another
// attempt must be these very bytes.
func (w *Worker) commitPartial(ctx context.Context, out lake.Store, req *pb.RunTaskRequest, data []byte, resp *pb.RunTaskResponse) (*pb.RunTaskResponse, error) {
	sum := sha256.Sum256(data)
	resp.PartialBytes, resp.PartialSha256 = int64(len(data)), sum[:]
	w.crash.Hit(pointBeforePartial)
	if err := w.fence(ctx, req); err != nil {
		return nil, err
	}
	switch err := out.PutIfAbsent(ctx, req.GetPartialKey(), data); {
	case errors.Is(err, lake.ErrExists):
		// Another attempt won. It computed these very bytes (the
		// computation is deterministic); anything else stored there was
		// not written by an attempt of this task.
		stored, err := out.GetSized(ctx, req.GetPartialKey(), int64(len(data)))
		switch {
		case errors.Is(err, lake.ErrSize) || err == nil && !bytes.Equal(stored, data):
			return nil, fmt.Errorf("%w: %s", ErrPartialMismatch, req.GetPartialKey())
		case err != nil:
			return nil, fmt.Errorf("worker: read the committed partial %s: %w", req.GetPartialKey(), err)
		}
		resp.AlreadyCommitted = true
	case err != nil:
		return nil, fmt.Errorf("worker: commit partial %s: %w", req.GetPartialKey(), err)
	}
	w.crash.Hit(pointAfterPartial)
	return resp, nil
}

// storeError classifies a failure to open a task's store: a URI that
// cannot name a store is a bad request, a store that a symbolic link leads
// out of the worker's roots is forbidden.
func storeError(what string, err error) error {
	switch {
	case errors.Is(err, lake.ErrBadURI):
		return fmt.Errorf("%w: %s: %w", ErrBadRequest, what, err)
	case errors.Is(err, lake.ErrOutsideRoot):
		return fmt.Errorf("%w: %s: %w", ErrForbidden, what, err)
	}
	return fmt.Errorf("worker: open the %s: %w", what, err)
}

// fence checks, right before the partial is committed, that the attempt
// is still leased: the leader's lease key of the attempt, attached to this
// worker's etcd lease, still exists. A worker that was stopped past its
// lease, or whose job ended meanwhile (the leader deletes a finished job's
// lease keys, then its folder), finds the key gone and writes nothing. The
// check and the write are two steps: a worker stopped between them writes
// into a folder the leader sweeps again when it prunes the job's record.
func (w *Worker) fence(ctx context.Context, req *pb.RunTaskRequest) error {
	key := w.keys.Lease(req.GetJobId(), int(req.GetTaskId()), int(req.GetAttempt()))
	resp, err := w.cli.Get(ctx, key, clientv3.WithCountOnly())
	if err != nil {
		return fmt.Errorf("worker: check the lease of attempt %d of task %d: %w", req.GetAttempt(), req.GetTaskId(), err)
	}
	if resp.Count == 0 {
		return fmt.Errorf("%w: attempt %d of task %d of job %s", ErrFenced, req.GetAttempt(), req.GetTaskId(), req.GetJobId())
	}
	return nil
}

// aggregate computes the partial of the files. Parquet files go through
// aggregate.ColumnReader one file at a time, so that a task holds at most
// FetchParallelism files plus the compact per-event records of its bucket;
// other formats (or a Parquet schema the column reader does not handle)
// are decoded into events first.
func (w *Worker) aggregate(ctx context.Context, s lake.Store, t task) (*aggregate.Partial, int64, error) {
	keys, sizes := t.req.GetFileKeys(), t.req.GetFileSizes()
	columnar := true
	for _, k := range keys {
		if f, err := lake.FormatOfKey(k); err != nil || f != lake.FormatParquet {
			columnar = false
		}
	}
	if columnar {
		r := aggregate.NewColumnReader(t.window, t.timeout)
		if !t.req.GetUserSets() {
			r.WithoutUserSets()
		}
		if t.req.GetIncludeBots() {
			r.IncludeBots()
		}
		n, err := w.fetchInOrder(ctx, s, keys, sizes, func(key string, data []byte) error {
			if err := r.AddFile(bytes.NewReader(data), int64(len(data))); err != nil {
				return fmt.Errorf("%w %s: %w", ErrDecode, key, err)
			}
			return nil
		})
		if err == nil {
			return r.Partial(), n, nil
		}
		if !errors.Is(err, aggregate.ErrUnsupportedFile) {
			return nil, 0, err
		}
		w.logger.Warn("column reader cannot read a file; decoding rows instead", "err", err)
	}
	var events []event.Event
	n, err := w.fetchInOrder(ctx, s, keys, sizes, func(key string, data []byte) error {
		evs, err := lake.DecodeFile(key, data)
		if err != nil {
			return fmt.Errorf("%w %s: %w", ErrDecode, key, err)
		}
		events = append(events, evs...)
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	bots := aggregate.BotsApart
	if t.req.GetIncludeBots() {
		bots = aggregate.BotsIncluded
	}
	p := aggregate.ComputeWith(events, t.window, t.timeout, bots)
	if !t.req.GetUserSets() {
		p.DropUserSets()
	}
	return p, n, nil
}

// fetchInOrder reads the objects at keys, FetchParallelism at a time, and
// calls use with each in key order. Each is read only if it has its
// recorded size (lake.ErrSize otherwise), and no further. A file counts
// against FetchParallelism until use returns, so memory stays bounded. It
// returns the bytes read.
func (w *Worker) fetchInOrder(ctx context.Context, s lake.Store, keys []string, sizes []int64, use func(key string, data []byte) error) (int64, error) {
	var n int64
	err := ordered.Fetch(ctx, len(keys), w.cfg.FetchParallelism,
		func(ctx context.Context, i int) ([]byte, error) {
			data, err := s.GetSized(ctx, keys[i], sizes[i])
			if err != nil {
				return nil, fmt.Errorf("worker: read %s: %w", keys[i], err)
			}
			return data, nil
		},
		func(i int, data []byte) error {
			n += int64(len(data))
			return use(keys[i], data)
		})
	return n, err
}

// toStatus maps an error to a gRPC status at the RPC edge.
func toStatus(err error) error {
	var code codes.Code
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	case errors.Is(err, ErrBadRequest):
		code = codes.InvalidArgument
	case errors.Is(err, rollup.ErrWindows), errors.Is(err, rollup.ErrIncomplete):
		code = codes.FailedPrecondition
	case errors.Is(err, ErrForbidden), errors.Is(err, lake.ErrOutsideRoot):
		code = codes.PermissionDenied
	case errors.Is(err, ErrDraining):
		code = codes.Unavailable
	case errors.Is(err, lake.ErrNotExist):
		code = codes.NotFound
	case errors.Is(err, ErrDecode), errors.Is(err, lake.ErrSize), errors.Is(err, ErrPartialMismatch):
		code = codes.DataLoss
	case errors.Is(err, ErrFenced):
		code = codes.Aborted
	default:
		code = codes.Internal
	}
	return status.Error(code, err.Error())
}
