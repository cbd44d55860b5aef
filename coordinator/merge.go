package coordinator

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/dataco/clickstream/internal/aggregate"
	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/ordered"
	"github.com/dataco/clickstream/internal/results"
	"github.com/dataco/clickstream/internal/schema"
	"github.com/dataco/clickstream/internal/userset"
)

// planVersion is the format of plan.json.
const planVersion = 1

// errBadPlan reports a plan that is missing or corrupt: the job cannot go
// on, however often it is loaded again.
var errBadPlan = errors.New("bad plan")

// loadPlan returns the job's plan. A pending job is planned from a
// snapshot of the lake's manifests: one task per user bucket with files
// whose events overlap [from, to + session timeout) (the look-ahead times
// the window's last clicks), each with the size its manifest records. The
// plan is stored with put-if-absent, so a leader that takes over a job
// mid-planning adopts its predecessor's plan.
func (c *Coordinator) loadPlan(ctx context.Context, rec *jobRecord) (*plan, error) {
	out, err := c.output(ctx, rec.Spec.Out)
	if err != nil {
		return nil, fmt.Errorf("output: %w", err)
	}
	key := planKey(rec.ID)
	data, err := out.Get(ctx, key)
	if errors.Is(err, lake.ErrNotExist) {
		if rec.State != statePending {
			return nil, fmt.Errorf("%w: the plan %s of this %s job is missing from %s", errBadPlan, key, rec.State, out.URI())
		}
		var (
			p    *plan
			perr error
		)
		if rec.Spec.Rollup != nil {
			p = rollupPlan(rec)
		} else {
			p, perr = c.makePlan(ctx, rec)
		}
		if perr != nil {
			return nil, perr
		}
		data, _ = json.Marshal(p)
		err = out.PutIfAbsent(ctx, key, data)
		if errors.Is(err, lake.ErrExists) {
			data, err = out.Get(ctx, key)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("plan: %w", err)
	}
	var p plan
	if err := json.Unmarshal(data, &p); err != nil || p.Version != planVersion || p.Job != rec.ID {
		return nil, fmt.Errorf("%w: plan %s in %s is corrupt (version %d, job %q): %w", errBadPlan, key, out.URI(), p.Version, p.Job, err)
	}
	if err := c.fillSizes(ctx, rec, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// fillSizes gives the tasks of a plan written before plans recorded
// sizes the sizes of their files, from the lake's manifests: they never
// change, so these are the sizes the plan was made from.
func (c *Coordinator) fillSizes(ctx context.Context, rec *jobRecord, p *plan) error {
	if !slices.ContainsFunc(p.Tasks, func(pt planTask) bool { return len(pt.Sizes) != len(pt.Files) }) {
		return nil
	}
	src, err := c.store(ctx, rec.Spec.Lake)
	if err != nil {
		return fmt.Errorf("lake: %w", err)
	}
	snap, err := lake.ReadSnapshot(ctx, src)
	if err != nil {
		return fmt.Errorf("read the lake's manifests: %w", err)
	}
	sizes := map[string]int64{}
	for _, m := range snap.Manifests {
		for _, f := range m.Files {
			sizes[f.Key] = f.Bytes
		}
	}
	for i := range p.Tasks {
		pt := &p.Tasks[i]
		pt.Sizes = make([]int64, len(pt.Files))
		for k, f := range pt.Files {
			size, ok := sizes[f]
			if !ok {
				return fmt.Errorf("%w: the plan of job %s names %s, which no manifest of %s records", errBadPlan, rec.ID, f, rec.Spec.Lake)
			}
			pt.Sizes[k] = size
		}
	}
	return nil
}

func (c *Coordinator) makePlan(ctx context.Context, rec *jobRecord) (*plan, error) {
	src, err := c.store(ctx, rec.Spec.Lake)
	if err != nil {
		return nil, fmt.Errorf("lake: %w", err)
	}
	from, to := rec.Spec.From, rec.Spec.To.Add(rec.Spec.SessionTimeout)
	var (
		files     map[int][]lake.DataFile
		snapshot  int64
		fromTable bool
	)
	if c.cfg.Planner != nil {
		if files, snapshot, fromTable, err = c.cfg.Planner.PlanFiles(ctx, rec.Spec.Lake, src, from, to, rec.Spec.EventsSnapshot); err != nil {
			if rec.Spec.EventsSnapshot != 0 { // an unknown snapshot does not come back
				return nil, fmt.Errorf("%w: plan from the lake's table: %w", errBadPlan, err)
			}
			return nil, fmt.Errorf("plan from the lake's table: %w", err)
		}
	}
	if !fromTable && rec.Spec.EventsSnapshot != 0 {
		return nil, fmt.Errorf("%w: events snapshot %d asked, but the lake %s has no Iceberg events table", errBadPlan, rec.Spec.EventsSnapshot, rec.Spec.Lake)
	}
	meta, err := lake.ReadMeta(ctx, src)
	if err != nil {
		return nil, err
	}
	if !fromTable {
		snap, err := lake.ReadSnapshot(ctx, src)
		if err != nil {
			return nil, fmt.Errorf("read the lake's manifests: %w", err)
		}
		files = snap.FilesFor(from, to)
	}
	buckets := make([]int, 0, len(files))
	for b := range files {
		buckets = append(buckets, b)
	}
	sort.Ints(buckets)
	p := &plan{Version: planVersion, Job: rec.ID, Lake: rec.Spec.Lake, Buckets: meta.Buckets, Snapshot: snapshot}
	for i, b := range buckets {
		pt := planTask{Task: i, Bucket: b}
		for _, f := range files[b] {
			pt.Files = append(pt.Files, f.Key)
			pt.Sizes = append(pt.Sizes, f.Bytes)
			pt.Bytes += f.Bytes
			pt.Events += f.Events
		}
		p.Tasks = append(p.Tasks, pt)
	}
	return p, nil
}

// committedResult returns the result committed for the job, or nil if the
// output store's _SUCCESS names another job or there is none. A new leader
// asks before anything else when it takes up a merging or committing job:
// its predecessor may have committed and died before recording it.
func (c *Coordinator) committedResult(ctx context.Context, rec *jobRecord) (*results.Meta, error) {
	out, err := c.output(ctx, rec.Spec.Out)
	if err != nil {
		return nil, fmt.Errorf("output: %w", err)
	}
	m, err := results.ReadMeta(ctx, out)
	switch {
	case err == nil && m.Job == rec.ID:
		return &m, nil
	case err == nil, errors.Is(err, results.ErrNoResult), errors.Is(err, results.ErrBadMeta):
		return nil, nil
	}
	return nil, err
}

// merged is a job's result, merged and ready to commit.
type merged struct {
	rows []schema.Row
	meta results.Meta // without Run, which the commit's attempt names
	// sets are the per-key user sets the commit keeps (jobs with user
	// sets; nil otherwise), sorted by key; they share the merged
	// partial's memory.
	sets []userset.Entry
	// setFiles are a roll-up's encoded set files, one per key range, if
	// it keeps sets (rollupSpec.KeepSets).
	setFiles []results.SetFile
}

// errPartialDigest reports a stored partial whose bytes are not those its
// worker answered for: something other than the task's attempts wrote it.
// Reading it again cannot help, so the job fails at once.
var errPartialDigest = errors.New("stored partial differs from the one its worker committed")

// merge reads every task's partial and merges them, each only if its
// bytes have the digest its worker answered (digests, in plan order).
// Memory: the merged partial, plus MergeParallelism partials in flight.
func (c *Coordinator) merge(ctx context.Context, rec *jobRecord, p *plan, k finalCounters, digests []partialDigest) (*merged, error) {
	out, err := c.output(ctx, rec.Spec.Out)
	if err != nil {
		return nil, err
	}
	c.hit(ctx, pointBeforeMerge)
	if rec.Spec.Rollup != nil {
		return c.mergeRollup(ctx, out, rec, p, k, digests)
	}
	total, err := c.mergePartials(ctx, out, rec.ID, p, digests)
	if err != nil {
		return nil, err
	}
	w := aggregate.Window{From: rec.Spec.From, To: rec.Spec.To}
	meta := results.Meta{
		Job: rec.ID, Format: rec.Spec.Format,
		From: rec.Spec.From, To: rec.Spec.To, SessionTimeout: rec.Spec.SessionTimeout.String(), Lake: rec.Spec.Lake,
		EventsSnapshot: p.Snapshot, IncludeBots: rec.Spec.IncludeBots,
		EventsRead: total.Read, EventsInWindow: total.Events, Partitions: len(p.Tasks),
		Attempts: k.Attempts, Retries: k.Retries, Backups: k.Backups, Started: rec.Started,
		Warning: rec.Warning, Watermark: rec.Spec.Watermark, Final: rec.Spec.Final,
	}
	if total.Events == 0 && meta.Warning == "" {
		meta.Warning = fmt.Sprintf("no events in %s: the result is empty", windowString(rec.Spec.From, rec.Spec.To))
	}
	m := &merged{rows: total.Result(w), meta: meta}
	if rec.Spec.UserSets {
		m.sets = total.UserSetEntries()
		if m.sets == nil {
			m.meta.Warning = strings.TrimPrefix(m.meta.Warning+"; partials without user sets: none kept", "; ")
		}
	}
	return m, nil
}

// commit writes a merged result as the run of the job's current merge
// attempt and makes it the output's committed result. When the write
// fails, it asks the store whether _SUCCESS names the run after all (a
// request that failed on the way back), so that a committed result is
// never reported as a failed commit.
func (c *Coordinator) commit(ctx context.Context, rec *jobRecord, m *merged) (results.Meta, error) {
	out, err := c.output(ctx, rec.Spec.Out)
	if err != nil {
		return results.Meta{}, err
	}
	meta := m.meta
	meta.Run = results.RunName(rec.ID, rec.MergeAttempt)
	meta.DurationSeconds = time.Since(rec.Started).Seconds()
	switch {
	case m.sets != nil:
		if err := results.WriteSets(ctx, out, &meta, m.sets); err != nil {
			return results.Meta{}, err
		}
	case m.setFiles != nil:
		if err := results.WriteSetFiles(ctx, out, &meta, m.setFiles); err != nil {
			return results.Meta{}, err
		}
	}
	c.hit(ctx, pointBeforeCommit)
	committed, err := results.Commit(ctx, out, m.rows, meta)
	if err == nil {
		c.hit(ctx, pointAfterCommit)
		return committed, nil
	}
	if got, rerr := results.ReadMeta(ctx, out); rerr == nil && got.Job == rec.ID && got.Run == meta.Run {
		return got, nil
	}
	return results.Meta{}, err
}

// mergePartials reads the partials of p's tasks, MergeParallelism at a
// time, checks each against its digest (no more bytes are read than the
// digest's size), and merges them in task order. A partial that does not
// match is an error matching errPartialDigest, and nothing is merged.
func (c *Coordinator) mergePartials(ctx context.Context, out lake.Store, job string, p *plan, digests []partialDigest) (*aggregate.Partial, error) {
	if len(digests) != len(p.Tasks) {
		return nil, fmt.Errorf("coordinator: %d partial digests for %d tasks", len(digests), len(p.Tasks))
	}
	total := aggregate.NewPartial()
	err := c.fetchPartials(ctx, out, job, p, digests, func(i int, data []byte) error {
		q := aggregate.NewPartial()
		if err := q.UnmarshalBinary(data); err != nil {
			return fmt.Errorf("partial %s: %w", results.PartialKey(job, p.Tasks[i].Bucket), err)
		}
		total.Merge(q)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return total, nil
}

// fetchPartials reads the partials of p's tasks, MergeParallelism at a
// time, checks each against its digest (no more bytes are read than the
// digest's size), and hands them to use in task order. A partial that
// does not match is an error matching errPartialDigest.
func (c *Coordinator) fetchPartials(ctx context.Context, out lake.Store, job string, p *plan, digests []partialDigest, use func(i int, data []byte) error) error {
	if len(digests) != len(p.Tasks) {
		return fmt.Errorf("coordinator: %d partial digests for %d tasks", len(digests), len(p.Tasks))
	}
	return ordered.Fetch(ctx, len(p.Tasks), c.cfg.MergeParallelism,
		func(ctx context.Context, i int) ([]byte, error) {
			pt, want := p.Tasks[i], digests[i]
			key := results.PartialKey(job, pt.Bucket)
			data, err := out.GetSized(ctx, key, want.bytes)
			if errors.Is(err, lake.ErrSize) {
				return nil, fmt.Errorf("%w: task %d (bucket %d): partial %s: %w", errPartialDigest, pt.Task, pt.Bucket, key, err)
			}
			if err != nil {
				return nil, fmt.Errorf("read partial %s: %w", key, err)
			}
			if got := sha256.Sum256(data); got != want.sha256 {
				return nil, fmt.Errorf("%w: task %d (bucket %d): partial %s has SHA-256 %x, its worker answered %x",
					errPartialDigest, pt.Task, pt.Bucket, key, got, want.sha256)
			}
			return data, nil
		}, use)
}

// cleanup removes a finished job's leftovers from its output store: its
// plan and partials, and (after a success) the result runs that are
// neither the committed one nor the one it replaced. It runs only once the
// job's outcome is recorded in etcd, so that a leader taking over a job
// whose outcome is not recorded still finds its plan and partials. It
// returns the first failure to delete the job's folder; failing to prune
// old runs is only logged.
func (c *Coordinator) cleanup(ctx context.Context, rec *jobRecord) error {
	out, err := c.output(ctx, rec.Spec.Out)
	if err != nil {
		return fmt.Errorf("cleanup: open output: %w", err)
	}
	if err := results.DeletePrefix(ctx, out, results.JobPrefix(rec.ID)); err != nil {
		return fmt.Errorf("cleanup: delete plan and partials: %w", err)
	}
	if rec.State == stateSucceeded {
		if m, err := results.ReadMeta(ctx, out); err == nil && strings.HasPrefix(m.Run, rec.ID+"-") {
			if err := results.Prune(ctx, out); err != nil {
				c.logger.Warn("cleanup: prune old results", "job", rec.ID, "err", err)
			}
		}
	}
	return nil
}
