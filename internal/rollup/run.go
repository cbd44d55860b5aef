package rollup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/results"
	"github.com/dataco/clickstream/internal/schema"
)

// Defaults of a roll-up run.
const (
	DefaultMemoryBudget = 256 << 20
	// readAttempts: a window re-run and pruned while a period is read
	// makes the period be read again, this many times at most.
	readAttempts = 3
)

// ErrConfig reports an invalid roll-up configuration.
var ErrConfig = errors.New("rollup: invalid configuration")

// Publisher is what a committed roll-up is handed to (the Elasticsearch
// indexer, the Iceberg aggregates table): coordinator.Publisher's shape.
type Publisher interface {
	Name() string
	Publish(ctx context.Context, out lake.Store, meta results.Meta) error
}

// RunConfig configures Run.
type RunConfig struct {
	// Windows is the base URI of the window results (the scheduler's
	// --schedule-out): window starting at t is under
	// <Windows>/window=<t as 20060102T150405Z>.
	Windows string
	// Out is the base URI of roll-ups ("": <Windows>/rollup); a period's
	// result goes to OutURI(Out, grain, start), so a re-run replaces it.
	Out      string
	Grain    string
	From, To time.Time // the periods overlapping [From, To)
	Format   string
	// InputGrain is what is rolled up: schema.GrainWindow, the windows
	// under Windows, or schema.GrainDay, the day roll-ups under Out (a
	// week or a month from its days' sets, kept with KeepSets).
	InputGrain string
	Config
	S3         lake.S3Options
	Publishers []Publisher
}

// NewRunConfig returns the defaults.
func NewRunConfig() RunConfig {
	return RunConfig{Grain: schema.GrainDay, Format: string(results.NDJSON), InputGrain: schema.GrainWindow,
		Config: Config{Shards: runtime.GOMAXPROCS(0), MemoryBudget: DefaultMemoryBudget, KeepSets: true}}
}

// AddFlags binds the configuration to flags.
func (c *RunConfig) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&c.Windows, "out", c.Windows, "base URI of the window results to roll up (the scheduler's --schedule-out)")
	fs.StringVar(&c.Out, "rollup-out", c.Out, "base URI of roll-ups (default <out>/rollup); a period goes to <base>/grain=<grain>/period=<start>")
	fs.StringVar(&c.Grain, "grain", c.Grain, "period of the roll-up: day, week (ISO, from Monday) or month, in UTC")
	fs.TextVar(&c.From, "from", c.From, "roll up the periods overlapping [from, to), RFC 3339")
	fs.TextVar(&c.To, "to", c.To, "end of the range, RFC 3339 (default: from + one period)")
	fs.StringVar(&c.Format, "format", c.Format, "result format: ndjson or csv")
	fs.IntVar(&c.Shards, "shards", c.Shards, "key ranges (by URL) merged in parallel")
	fs.Int64Var(&c.MemoryBudget, "memory-budget", c.MemoryBudget, "bytes of user hashes the unions keep in memory, shards together, before they spill sorted runs to --spill-dir (0: no limit)")
	fs.StringVar(&c.SpillDir, "spill-dir", c.SpillDir, "folder for spilled runs (default: the system's temporary folder)")
	fs.Int64Var(&c.ExactLimit, "exact-limit", c.ExactLimit, "count unique users exactly up to this many hashes per union; beyond, a HyperLogLog++ sketch (relative standard error 0.81%) and the row marked approximate (0: always exact)")
	fs.BoolVar(&c.KeepSets, "keep-sets", c.KeepSets, "keep each period's (url, country) user sets beside its result, so that weeks and months can be rolled up from days (--input-grain day)")
	fs.StringVar(&c.InputGrain, "input-grain", c.InputGrain, "what to roll up: window (the windows under --out) or day (the day roll-ups under --rollup-out, kept with --keep-sets)")
	fs.BoolVar(&c.AllowGaps, "allow-gaps", c.AllowGaps, "roll up a period even if its windows leave gaps (hours without events have no result; missing windows are then missing data)")
}

// Validate checks the configuration and fills defaults.
func (c *RunConfig) Validate() error {
	var errs []error
	if c.Windows == "" {
		errs = append(errs, errors.New("--out is required"))
	}
	if _, _, err := Period(c.Grain, time.Now()); err != nil {
		errs = append(errs, err)
	}
	if c.From.IsZero() {
		errs = append(errs, errors.New("--from is required"))
	} else if c.To.IsZero() {
		if _, to, err := Period(c.Grain, c.From); err == nil {
			c.To = to
		}
	}
	if !c.From.IsZero() && !c.To.After(c.From) {
		errs = append(errs, errors.New("--to must be after --from"))
	}
	if _, err := results.ParseFormat(c.Format); err != nil {
		errs = append(errs, err)
	}
	if err := CheckInputGrain(c.InputGrain, c.Grain); err != nil {
		errs = append(errs, fmt.Errorf("--input-grain: %w", err))
	}
	if c.Shards < 1 || c.Shards > 1024 {
		errs = append(errs, errors.New("--shards must be in [1, 1024]"))
	}
	if c.ExactLimit < 0 {
		errs = append(errs, errors.New("--exact-limit must not be negative"))
	}
	if c.MemoryBudget < 0 {
		errs = append(errs, errors.New("--memory-budget must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return nil
}

// OutBase is the base URI of the roll-ups: Out, or <Windows>/rollup.
func (c *RunConfig) OutBase() string {
	if c.Out != "" {
		return c.Out
	}
	return strings.TrimSuffix(c.Windows, "/") + "/rollup"
}

// OutURI is the result URI, under base, of the period of grain starting
// at from: base/grain=day/period=20261127T000000Z.
func OutURI(base, grain string, from time.Time) string {
	return strings.TrimSuffix(base, "/") + "/grain=" + grain + "/period=" + from.UTC().Format("20060102T150405Z")
}

// windowFolder is the folder of the window starting at t under the
// windows' base (coordinator.WindowOut).
func windowFolder(t time.Time) string { return "window=" + t.UTC().Format("20060102T150405Z") }

// folderStart parses the start of a folder <prefix><20060102T150405Z>.
func folderStart(prefix, folder string) (time.Time, bool) {
	s, ok := strings.CutPrefix(folder, prefix)
	if !ok {
		return time.Time{}, false
	}
	t, err := time.Parse("20060102T150405Z", s)
	return t, err == nil
}

// Report is what Run did for one period.
type Report struct {
	Grain     string
	From, To  time.Time
	Out       string
	Rows      int
	Stats     Stats
	Duration  time.Duration // reading, merging and committing
	Published []string      // "<publisher>: ok" or "<publisher>: error: …"
}

// Run rolls up each period of cfg's grain overlapping [From, To): it
// reads the committed windows starting in the period, computes the
// roll-up, commits it to its own output (replacing an earlier roll-up of
// the period), and hands it to each publisher. It stops at the first
// period that fails; a publisher's failure is reported, not fatal.
func Run(ctx context.Context, cfg RunConfig, logger *slog.Logger) ([]Report, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	format, err := results.ParseFormat(cfg.Format)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	periods, err := Periods(cfg.Grain, cfg.From, cfg.To)
	if err != nil {
		return nil, err
	}
	outBase := cfg.OutBase()
	inURI := cfg.Windows
	if cfg.InputGrain == schema.GrainDay {
		inURI = DayBase(outBase)
	}
	base, err := lake.Open(ctx, inURI, cfg.S3)
	if err != nil {
		return nil, fmt.Errorf("rollup: input: %w", err)
	}
	var reps []Report
	for _, p := range periods {
		start := time.Now()
		rep := Report{Grain: cfg.Grain, From: p[0], To: p[1], Out: OutURI(outBase, cfg.Grain, p[0])}
		var (
			rows    []schema.Row
			sets    []results.SetFile
			windows []Window
		)
		open := func(ctx context.Context, uri string) (lake.Store, error) { return lake.Open(ctx, uri, cfg.S3) }
		for attempt := 1; ; attempt++ {
			windows, err = Inputs(ctx, base, open, cfg.InputGrain, p[0], p[1])
			if err == nil {
				rows, sets, rep.Stats, err = ComputeSets(ctx, cfg.Config, cfg.Grain, p[0], p[1], windows)
			}
			if err == nil || !errors.Is(err, lake.ErrNotExist) || attempt == readAttempts {
				break
			}
			logger.Info("a window was replaced while it was read; reading the period again", "period", p[0], "err", err)
		}
		if err != nil {
			return reps, fmt.Errorf("rollup: %s of %s: %w", cfg.Grain, fmtT(p[0]), err)
		}
		out, err := lake.Open(ctx, rep.Out, cfg.S3)
		if err != nil {
			return reps, fmt.Errorf("rollup: output: %w", err)
		}
		// Every roll-up of a period is a computation of its own: a re-run
		// is the period's next revision (results.Commit).
		job := fmt.Sprintf("rollup-%s-%s-%d", cfg.Grain, p[0].UTC().Format("20060102T150405Z"), start.UnixMilli())
		m := results.Meta{
			Job: job, Run: results.RunName(job, 1), Format: format,
			From: p[0], To: p[1], Grain: cfg.Grain, Partitions: max(cfg.Shards, 1), Started: start.UTC(),
		}
		ResultMeta(&m, rep.Stats)
		if cfg.KeepSets {
			if err := results.WriteSetFiles(ctx, out, &m, sets); err != nil {
				return reps, err
			}
		}
		m.DurationSeconds = time.Since(start).Seconds()
		if m, err = results.Commit(ctx, out, rows, m); err != nil {
			return reps, err
		}
		if err := results.Prune(ctx, out); err != nil {
			logger.Warn("pruning older roll-ups failed", "out", rep.Out, "err", err)
		}
		rep.Rows, rep.Duration = len(rows), time.Since(start)
		logger.Info("period rolled up", "grain", cfg.Grain, "from", p[0], "windows", rep.Stats.Windows, "rows", rep.Rows,
			"spills", rep.Stats.Spills, "out", rep.Out, "duration", rep.Duration)
		for _, pub := range cfg.Publishers {
			status := "ok"
			if err := pub.Publish(ctx, out, m); err != nil {
				if ctx.Err() != nil {
					return reps, ctx.Err()
				}
				status = "error: " + err.Error()
				logger.Error("publishing a roll-up failed", "publisher", pub.Name(), "out", rep.Out, "err", err)
			}
			rep.Published = append(rep.Published, pub.Name()+": "+status)
		}
		reps = append(reps, rep)
	}
	return reps, nil
}

// ResultMeta fills in m what a roll-up's result says of where it comes
// from (st of Compute or MergePartials): how final it is and as of which
// watermark, the runs it rolled up, their events, session timeout and
// lake, its approximate rows, its largest set and its gaps.
func ResultMeta(m *results.Meta, st Stats) {
	m.Final, m.Watermark = provenance(st.Inputs, st.Gaps)
	m.RollupOf, m.EventsInWindow = nil, 0
	for _, in := range st.Inputs {
		m.RollupOf = append(m.RollupOf, in.URI+"#"+in.Run)
		m.EventsInWindow += in.EventsInWindow
		m.SessionTimeout, m.Lake = in.SessionTimeout, in.Lake
	}
	if n := st.ApproximateRows; n > 0 {
		m.ApproximateRows, m.SketchRelError = n, SketchRelError
	}
	m.LargestSet, m.LargestSetUsers = st.LargestSet, st.LargestSetUsers
	if n := len(st.Gaps); n > 0 {
		m.Warning = fmt.Sprintf("windows leave %d gaps, the first [%s, %s)", n, fmtT(st.Gaps[0][0]), fmtT(st.Gaps[0][1]))
	}
}

// provenance is how final a roll-up of inputs is: final if every input
// was final and they leave no gap, as of the lowest of their watermarks
// (nil if any input knew none).
func provenance(inputs []Input, gaps [][2]time.Time) (final bool, wm *time.Time) {
	final = len(inputs) > 0 && len(gaps) == 0
	for i, w := range inputs {
		final = final && w.Final
		switch {
		case w.Watermark == nil:
			return final, nil
		case i == 0 || w.Watermark.Before(*wm):
			t := w.Watermark.UTC()
			wm = &t
		}
	}
	return final, wm
}

// OpenFunc opens the store of a URI (lake.Open with the S3 options, or
// a worker's, confined to its roots).
type OpenFunc func(ctx context.Context, uri string) (lake.Store, error)

// CheckInputGrain checks that a roll-up of grain can be made of
// inputGrain: windows (schema.GrainWindow, or "") into any grain, days
// into weeks and months.
func CheckInputGrain(inputGrain, grain string) error {
	switch inputGrain {
	case schema.GrainWindow, "":
		return nil
	case schema.GrainDay:
		if grain == schema.GrainDay {
			return errors.New("input grain day rolls up weeks or months, not days")
		}
		return nil
	}
	return fmt.Errorf("input grain %q: want window or day", inputGrain)
}

// DayBase is the base URI of the day roll-ups under a roll-up base
// (RunConfig.OutBase): what weeks and months are rolled up from with
// input grain day.
func DayBase(outBase string) string {
	return strings.TrimSuffix(outBase, "/") + "/grain=" + schema.GrainDay
}

// Windows reads the committed window results under base whose window
// starts in [from, to): it lists the window folders of each day of the
// range and reads each one's _SUCCESS.
func Windows(ctx context.Context, base lake.Store, s3 lake.S3Options, from, to time.Time) ([]Window, error) {
	return inputs(ctx, base, func(ctx context.Context, uri string) (lake.Store, error) { return lake.Open(ctx, uri, s3) }, "window=", from, to)
}

// Inputs reads the committed results of inputGrain under base that start
// in [from, to): the windows under the windows' base
// (schema.GrainWindow, or ""), or the days under a DayBase
// (schema.GrainDay). Each one's store is opened with open.
func Inputs(ctx context.Context, base lake.Store, open OpenFunc, inputGrain string, from, to time.Time) ([]Window, error) {
	switch inputGrain {
	case schema.GrainWindow, "":
		return inputs(ctx, base, open, "window=", from, to)
	case schema.GrainDay:
		return inputs(ctx, base, open, "period=", from, to)
	}
	return nil, fmt.Errorf("%w: input grain %q: want window or day", ErrConfig, inputGrain)
}

// inputs reads the committed results under base in folders
// <prefix><start as 20060102T150405Z> whose start is in [from, to).
func inputs(ctx context.Context, base lake.Store, open OpenFunc, prefix string, from, to time.Time) ([]Window, error) {
	var out []Window
	for day := from.UTC().Truncate(24 * time.Hour); day.Before(to); day = day.Add(24 * time.Hour) {
		objs, err := base.List(ctx, prefix+day.Format("20060102"))
		if err != nil {
			return nil, fmt.Errorf("rollup: list windows: %w", err)
		}
		for _, o := range objs {
			folder, rest, ok := strings.Cut(o.Key, "/")
			if !ok || rest != results.SuccessKey {
				continue
			}
			start, ok := folderStart(prefix, folder)
			if !ok || start.Before(from) || !start.Before(to) {
				continue
			}
			ws, err := open(ctx, strings.TrimSuffix(base.URI(), "/")+"/"+folder)
			if err != nil {
				return nil, fmt.Errorf("rollup: window %s: %w", folder, err)
			}
			m, err := results.ReadMeta(ctx, ws)
			if err != nil {
				return nil, err
			}
			if !m.From.Equal(start) {
				return nil, fmt.Errorf("%w: %s holds window [%s, %s)", ErrWindows, ws.URI(), fmtT(m.From), fmtT(m.To))
			}
			out = append(out, Window{Out: ws, Meta: m})
		}
	}
	return out, nil
}
