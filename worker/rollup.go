package worker

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/results"
	"github.com/dataco/clickstream/internal/rollup"
	pb "github.com/dataco/clickstream/proto/clickstream/v1"
)

// maxRollupShards bounds a roll-up's key ranges (the coordinator's
// bound).
const maxRollupShards = 1024

// checkRollupTask completes checkTask for a roll-up's task: a known
// grain whose period is the task's window, its key range (bucket) one of
// shards, budgets not negative, no lake nor files, and the windows'
// base under the worker's --output-root or --lake-root, as the partial's
// store under --output-root.
func checkRollupTask(t task, lakeRoots, outputRoots []string) (task, error) {
	req, r := t.req, t.req.GetRollup()
	from, to, err := rollup.Period(r.GetGrain(), t.window.From)
	switch {
	case err != nil:
		return t, fmt.Errorf("%w: roll-up: %w", ErrBadRequest, err)
	case !from.Equal(t.window.From) || !to.Equal(t.window.To):
		return t, fmt.Errorf("%w: roll-up: window %s is not one %s", ErrBadRequest, t.window, r.GetGrain())
	case r.GetShards() < 1 || r.GetShards() > maxRollupShards || req.GetBucket() >= r.GetShards():
		return t, fmt.Errorf("%w: roll-up: key range %d of %d", ErrBadRequest, req.GetBucket(), r.GetShards())
	case r.GetMemoryBudget() < 0 || r.GetExactLimit() < 0:
		return t, fmt.Errorf("%w: roll-up: negative memory budget or exact limit", ErrBadRequest)
	case req.GetLakeUri() != "" || len(req.GetFileKeys()) > 0 || len(req.GetFileSizes()) > 0:
		return t, fmt.Errorf("%w: roll-up: a roll-up's task reads no lake files", ErrBadRequest)
	case r.GetWindowsUri() == "":
		return t, fmt.Errorf("%w: roll-up: no windows URI", ErrBadRequest)
	}
	if err := rollup.CheckInputGrain(r.GetInputGrain(), r.GetGrain()); err != nil {
		return t, fmt.Errorf("%w: roll-up: %w", ErrBadRequest, err)
	}
	if t.lake, err = lake.Canonical(r.GetWindowsUri()); err != nil {
		return t, fmt.Errorf("%w: roll-up windows: %w", ErrBadRequest, err)
	}
	if t.out, err = lake.Canonical(req.GetPartialUri()); err != nil {
		return t, fmt.Errorf("%w: output: %w", ErrBadRequest, err)
	}
	own := results.PartialKey(req.GetJobId(), int(req.GetBucket()))
	switch {
	case !lake.Under(t.lake, outputRoots) && !lake.Under(t.lake, lakeRoots):
		return t, fmt.Errorf("%w: roll-up windows %s are not under --output-root %s nor --lake-root %s", ErrForbidden, t.lake,
			strings.Join(outputRoots, ","), strings.Join(lakeRoots, ","))
	case !lake.Under(t.out, outputRoots):
		return t, fmt.Errorf("%w: output %s is not under --output-root %s", ErrForbidden, t.out, strings.Join(outputRoots, ","))
	case req.GetPartialKey() != own:
		return t, fmt.Errorf("%w: partial key %q is not the task's own (%s)", ErrForbidden, req.GetPartialKey(), own)
	}
	return t, nil
}

// rollup computes a roll-up's task: the key range of the period's
// committed windows or days (rollup.ComputeShard), committed as its
// partial, with the key range's sets if the roll-up keeps them. The
// inputs are read under the root that holds their base.
func (w *Worker) rollup(ctx context.Context, out lake.Store, t task) (*pb.RunTaskResponse, error) {
	req, r := t.req, t.req.GetRollup()
	roots := w.cfg.OutputRoots
	if !lake.Under(t.lake, roots) {
		roots = w.cfg.LakeRoots
	}
	base, err := w.stores.OpenUnder(ctx, t.lake, roots)
	if err != nil {
		return nil, storeError("roll-up windows", err)
	}
	open := func(ctx context.Context, uri string) (lake.Store, error) { return w.stores.OpenUnder(ctx, uri, roots) }
	windows, err := rollup.Inputs(ctx, base, open, r.GetInputGrain(), t.window.From, t.window.To)
	if err != nil {
		return nil, fmt.Errorf("worker: roll-up inputs: %w", err)
	}
	cfg := rollup.Config{MemoryBudget: r.GetMemoryBudget(), ExactLimit: r.GetExactLimit(), AllowGaps: r.GetAllowGaps(), KeepSets: r.GetKeepSets()}
	var buf bytes.Buffer
	if err := rollup.ComputeShard(ctx, cfg, r.GetGrain(), t.window.From, t.window.To, windows, int(req.GetBucket()), int(r.GetShards()), &buf); err != nil {
		return nil, fmt.Errorf("worker: roll-up key range %d of %d: %w", req.GetBucket(), r.GetShards(), err)
	}
	var setBytes int64
	for _, win := range windows {
		setBytes += win.Meta.SetBytes
	}
	w.metrics.bytesRead.Add(float64(setBytes))
	return w.commitPartial(ctx, out, req, buf.Bytes(), &pb.RunTaskResponse{BytesRead: setBytes})
}
