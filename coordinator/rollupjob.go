package coordinator

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/results"
	"github.com/dataco/clickstream/internal/rollup"
	"github.com/dataco/clickstream/internal/schema"
	pb "github.com/dataco/clickstream/proto/clickstream/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// maxRollupShards bounds a roll-up job's key ranges (its tasks).
const maxRollupShards = 1024

// rollupSpec is a roll-up job's part of its spec (pb.RollupSpec): the
// committed windows under Windows, rolled up into the period [From, To)
// of Grain by Shards tasks, one per key range.
type rollupSpec struct {
	Grain        string `json:"grain"`
	Windows      string `json:"windows"`
	Shards       int    `json:"shards"`
	MemoryBudget int64  `json:"memory_budget,omitempty"`
	ExactLimit   int64  `json:"exact_limit,omitempty"`
	AllowGaps    bool   `json:"allow_gaps,omitempty"`
	// KeepSets: the result keeps the period's user sets.
	KeepSets bool `json:"keep_sets,omitempty"`
	// InputGrain: what Windows holds, window results ("") or day
	// roll-ups (schema.GrainDay).
	InputGrain string `json:"input_grain,omitempty"`
}

func (r *rollupSpec) toPB() *pb.RollupSpec {
	if r == nil {
		return nil
	}
	return &pb.RollupSpec{Grain: r.Grain, WindowsUri: r.Windows, Shards: int32(r.Shards),
		MemoryBudget: r.MemoryBudget, ExactLimit: r.ExactLimit, AllowGaps: r.AllowGaps,
		KeepSets: r.KeepSets, InputGrain: r.InputGrain}
}

// RollupJobSpec is the job that rolls up the period [from, to) of cfg
// on the cluster: its windows (or, with input grain day, its days) into
// cfg's output, in cfg.Shards key ranges, keeping sets if cfg does.
// A format other than ndjson or csv (which cfg.Validate refuses) is
// ndjson.
func RollupJobSpec(cfg *rollup.RunConfig, from, to time.Time) *pb.JobSpec {
	format, _ := results.ParseFormat(cfg.Format)
	in, inputGrain := cfg.Windows, ""
	if cfg.InputGrain == schema.GrainDay {
		in, inputGrain = rollup.DayBase(cfg.OutBase()), schema.GrainDay
	}
	return &pb.JobSpec{
		From: timestamppb.New(from), To: timestamppb.New(to), OutUri: rollup.OutURI(cfg.OutBase(), cfg.Grain, from), Format: formatToPB(format),
		Rollup: &pb.RollupSpec{Grain: cfg.Grain, WindowsUri: in, Shards: int32(cfg.Shards), InputGrain: inputGrain,
			MemoryBudget: cfg.MemoryBudget, ExactLimit: cfg.ExactLimit, AllowGaps: cfg.AllowGaps, KeepSets: cfg.KeepSets},
	}
}

// validRollup completes validSpec for a roll-up job: [js.From, js.To)
// one period of the grain, key ranges in [1, 1024], budgets not
// negative, none of a window job's fields, and the windows' base a store
// under --output-root (windows are results), not overlapping the output.
func validRollup(cfg *Config, s *pb.JobSpec, js *jobSpec) error {
	r := s.GetRollup()
	from, to, err := rollup.Period(r.GetGrain(), js.From)
	switch {
	case err != nil:
		return fmt.Errorf("%w: roll-up: %w", ErrInvalidJob, err)
	case !from.Equal(js.From) || !to.Equal(js.To):
		return fmt.Errorf("%w: roll-up: [%s, %s) is not one %s; the %s of %s is [%s, %s)", ErrInvalidJob,
			js.From.Format(time.RFC3339), js.To.Format(time.RFC3339), r.GetGrain(), r.GetGrain(), js.From.Format(time.RFC3339), from.Format(time.RFC3339), to.Format(time.RFC3339))
	case r.GetShards() < 1 || r.GetShards() > maxRollupShards:
		return fmt.Errorf("%w: roll-up: %d key ranges: want 1 to %d", ErrInvalidJob, r.GetShards(), maxRollupShards)
	case r.GetMemoryBudget() < 0 || r.GetExactLimit() < 0:
		return fmt.Errorf("%w: roll-up: negative memory budget %d or exact limit %d", ErrInvalidJob, r.GetMemoryBudget(), r.GetExactLimit())
	case s.GetLakeUri() != "" || s.GetEventsSnapshot() != 0 || s.GetUserSets() || s.GetIncludeBots() || s.GetSessionTimeout().AsDuration() != 0:
		return fmt.Errorf("%w: roll-up: lake, snapshot, user sets, bots and session timeout are the windows'; leave them unset", ErrInvalidJob)
	case r.GetWindowsUri() == "":
		return fmt.Errorf("%w: roll-up: no windows URI", ErrInvalidJob)
	}
	if err := rollup.CheckInputGrain(r.GetInputGrain(), r.GetGrain()); err != nil {
		return fmt.Errorf("%w: roll-up: %w", ErrInvalidJob, err)
	}
	inputGrain := r.GetInputGrain()
	if inputGrain == schema.GrainWindow {
		inputGrain = ""
	}
	windows, err := lake.Canonical(r.GetWindowsUri())
	if err != nil {
		return fmt.Errorf("%w: roll-up windows: %w", ErrInvalidJob, err)
	}
	if roots := cfg.OutputRoots; len(roots) > 0 && !lake.Under(windows, roots) {
		return fmt.Errorf("%w: roll-up windows %s are not under --output-root %s", ErrInvalidJob, windows, strings.Join(roots, ","))
	}
	if lake.Under(windows, []string{js.Out}) {
		return fmt.Errorf("%w: roll-up windows %s are inside the output %s", ErrInvalidJob, windows, js.Out)
	}
	js.Rollup = &rollupSpec{Grain: r.GetGrain(), Windows: windows, Shards: int(r.GetShards()),
		MemoryBudget: r.GetMemoryBudget(), ExactLimit: r.GetExactLimit(), AllowGaps: r.GetAllowGaps(),
		KeepSets: r.GetKeepSets(), InputGrain: inputGrain}
	js.SessionTimeout = 0
	return nil
}

// rollupPlan plans a roll-up job: one task per key range, its bucket the
// range's number.
func rollupPlan(rec *jobRecord) *plan {
	p := &plan{Version: planVersion, Job: rec.ID, Buckets: rec.Spec.Rollup.Shards}
	for i := range rec.Spec.Rollup.Shards {
		p.Tasks = append(p.Tasks, planTask{Task: i, Bucket: i})
	}
	return p
}

// mergeRollup merges a roll-up job's partials (each checked against its
// digest) as they are fetched (rollup.PartialMerger), into the result
// rollup.Run would commit, with the key ranges' set files if the roll-up
// keeps them.
func (c *Coordinator) mergeRollup(ctx context.Context, out lake.Store, rec *jobRecord, p *plan, k finalCounters, digests []partialDigest) (*merged, error) {
	r := rec.Spec.Rollup
	cfg := rollup.Config{MemoryBudget: r.MemoryBudget, ExactLimit: r.ExactLimit, AllowGaps: r.AllowGaps}
	m, err := rollup.NewPartialMerger(cfg, r.Grain, rec.Spec.From, rec.Spec.To, len(p.Tasks))
	if err != nil {
		return nil, fmt.Errorf("merge the key ranges: %w", err)
	}
	defer m.Close()
	// Each partial is read as it arrives, MergeParallelism in flight.
	if err := c.fetchPartials(ctx, out, rec.ID, p, digests, func(_ int, data []byte) error {
		return m.Add(bytes.NewReader(data))
	}); err != nil {
		return nil, err
	}
	rows, sets, st, err := m.Finish(ctx)
	if err != nil {
		return nil, fmt.Errorf("merge the key ranges: %w", err)
	}
	meta := results.Meta{
		Job: rec.ID, Format: rec.Spec.Format, From: rec.Spec.From, To: rec.Spec.To, Grain: r.Grain,
		Partitions: len(p.Tasks), Attempts: k.Attempts, Retries: k.Retries, Backups: k.Backups, Started: rec.Started,
	}
	rollup.ResultMeta(&meta, st)
	if rec.Warning != "" {
		meta.Warning = strings.TrimPrefix(rec.Warning+"; "+meta.Warning, "; ")
	}
	if len(rows) == 0 && meta.Warning == "" {
		meta.Warning = fmt.Sprintf("no rows in the %s of %s: the result is empty", r.Grain, rec.Spec.From.Format(time.RFC3339))
	}
	if r.KeepSets && sets == nil {
		return nil, fmt.Errorf("merge the key ranges: the roll-up keeps sets, its partials carry none")
	}
	return &merged{rows: rows, meta: meta, setFiles: sets}, nil
}
