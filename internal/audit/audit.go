package audit

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/apache/iceberg-go/catalog"

	"github.com/dataco/clickstream/internal/icetable"
	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/results"
)

// Hop names, in the order the audit checks them.
const (
	HopPositions       = "positions"
	HopLake            = "lake"
	HopEventsTable     = "events-table"
	HopJob             = "job"
	HopResult          = "result"
	HopAggregatesTable = "aggregates-table"
	HopElasticsearch   = "elasticsearch"
)

// Status is a hop's outcome.
type Status string

// Statuses. Only Diff fails an audit: Behind is an events table that has
// not published the lake's last commits yet, which its publisher catches
// up with by itself.
const (
	OK      Status = "OK"
	Diff    Status = "DIFF"
	Behind  Status = "BEHIND"
	Skipped Status = "SKIPPED"
)

// ErrDiff is matched by Report.Err when a hop differs.
var ErrDiff = errors.New("audit: difference")

// ErrNoIndex is what an Index returns (wrapped) when its alias does not
// exist: the hop then counts no document.
var ErrNoIndex = errors.New("audit: no such index")

// Default limits.
const (
	DefaultMaxFiles    = 100_000
	DefaultParallelism = 4
	// maxProblems bounds the problems a hop lists.
	maxProblems = 20
)

// Index is the Elasticsearch hop's input: the documents of the windows in
// [from, to) and the sum of their clicks and bot clicks, the events they
// count (indexer.Indexer.RangeTotals, Totals.Events).
type Index interface {
	Totals(ctx context.Context, from, to time.Time) (docs, clicks int64, err error)
}

// Offsets is the input of the positions hop's lag: per lake source, the
// position the source has reached (for Kafka the end offset or a consumer
// group's committed offset); sources it does not know are left out. What
// names what the offsets are, for the report.
type Offsets interface {
	Offsets(ctx context.Context, sources []string) (offsets map[string]int64, what string, err error)
}

// Config is one audit: the range and the stores of each hop. A hop whose
// input is nil is reported as skipped.
type Config struct {
	// From and To delimit the range [From, To) audited: one window, or
	// several consecutive ones.
	From, To time.Time
	// Lake is the data lake (required).
	Lake lake.Store
	// Catalog holds the lake's Iceberg tables; nil: the table hops are
	// skipped.
	Catalog catalog.Catalog
	// Results are the committed results of the windows that tile [From,
	// To) (a job's output store each); none: the job and result hops are
	// skipped, and later hops compare with the lake.
	Results []lake.Store
	// MissingResults names result stores that should hold a window of the
	// range but do not exist (a scheduler's window folder never written):
	// a difference of the job hop, as is a store in Results without a
	// committed result.
	MissingResults []string
	// Index is Elasticsearch; nil: skipped.
	Index Index
	// Offsets adds each source's lag to the positions hop; nil: no lag.
	Offsets Offsets
	// MaxFiles bounds the lake's data files read (DefaultMaxFiles if 0).
	MaxFiles int
	// Parallelism bounds the data files read at once (DefaultParallelism if 0).
	Parallelism int
	// Logger may be nil (discard).
	Logger *slog.Logger
}

// Validate checks the range and the required inputs.
func (c *Config) Validate() error {
	switch {
	case c.From.IsZero() || c.To.IsZero():
		return errors.New("audit: the range needs a start and an end")
	case !c.From.Before(c.To):
		return fmt.Errorf("audit: the range's start %s is not before its end %s", c.From.Format(time.RFC3339), c.To.Format(time.RFC3339))
	case c.Lake == nil:
		return errors.New("audit: no lake")
	case c.MaxFiles < 0 || c.Parallelism < 0:
		return errors.New("audit: negative limit")
	}
	return nil
}

// Hop is one line of the ledger.
type Hop struct {
	Name   string `json:"hop"`
	Status Status `json:"status"`
	// Events is the number of events (clicks) the hop holds for the range;
	// nil where the hop counts none.
	Events *int64 `json:"events,omitempty"`
	// Rows is the number of result rows (documents in Elasticsearch).
	Rows *int64 `json:"rows,omitempty"`
	// Detail says what was counted, or why the hop differs or was skipped.
	Detail string `json:"detail"`
	// Problems lists what differs, at most maxProblems of them.
	Problems []string `json:"problems,omitempty"`
}

func (h *Hop) problem(format string, a ...any) {
	switch n := len(h.Problems); {
	case n < maxProblems:
		h.Problems = append(h.Problems, fmt.Sprintf(format, a...))
	case n == maxProblems:
		h.Problems = append(h.Problems, "… (more not listed)")
	}
}

// Report is an audit's ledger.
type Report struct {
	From    time.Time `json:"from"`
	To      time.Time `json:"to"`
	Hops    []Hop     `json:"hops"`
	Sources []Chain   `json:"sources"`
	// OK is true when no hop differs.
	OK bool `json:"ok"`
	// FirstDiff names the first hop that differs.
	FirstDiff string `json:"first_diff,omitempty"`
}

// DiffError is Report.Err's error: the first hop that differs and how.
// It matches ErrDiff.
type DiffError struct {
	Hop     string
	Message string
}

func (e *DiffError) Error() string { return fmt.Sprintf("hop %q differs: %s", e.Hop, e.Message) }

// Is makes a DiffError match ErrDiff.
func (e *DiffError) Is(target error) bool { return target == ErrDiff }

// Err returns nil when no hop differs, otherwise a *DiffError naming the
// first hop that differs and how.
func (r *Report) Err() error {
	for _, h := range r.Hops {
		if h.Status == Diff {
			msg := h.Detail
			if len(h.Problems) > 0 {
				msg += "; " + h.Problems[0]
			}
			return &DiffError{Hop: h.Name, Message: msg}
		}
	}
	return nil
}

// Hop returns the hop named name, or nil.
func (r *Report) Hop(name string) *Hop {
	for i := range r.Hops {
		if r.Hops[i].Name == name {
			return &r.Hops[i]
		}
	}
	return nil
}

func ptr(v int64) *int64 { return &v }

// Run audits [cfg.From, cfg.To) hop by hop. Its error is a failure to
// audit (a store that cannot be read); differences are in the Report
// (Report.Err).
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.MaxFiles == 0 {
		cfg.MaxFiles = DefaultMaxFiles
	}
	if cfg.Parallelism == 0 {
		cfg.Parallelism = DefaultParallelism
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	from, to := cfg.From.UTC(), cfg.To.UTC()
	rep := &Report{From: from, To: to}

	snap, err := lake.ReadSnapshot(ctx, cfg.Lake)
	if err != nil {
		return nil, fmt.Errorf("audit: read the lake's manifests: %w", err)
	}
	logger.Debug("audit: lake snapshot", "lake", cfg.Lake.URI(), "manifests", len(snap.Manifests))

	// 1. Source positions.
	chains, issues := CheckChains(snap.Manifests)
	if cfg.Offsets != nil {
		if err := addLag(ctx, cfg.Offsets, chains); err != nil {
			return nil, err
		}
	}
	rep.Sources = chains
	rep.Hops = append(rep.Hops, positionsHop(chains, issues))

	// 2. Events in the lake.
	lakeHop, lakeEvents, err := countLake(ctx, cfg, snap, from, to)
	if err != nil {
		return nil, err
	}
	rep.Hops = append(rep.Hops, lakeHop)

	// 2b. The events table.
	tableHop, err := eventsTableHop(ctx, cfg.Catalog, chains, lakeEvents, from, to)
	if err != nil {
		return nil, err
	}
	rep.Hops = append(rep.Hops, tableHop)

	// 3 and 4. The job's count and the result's rows.
	res, missing, err := readResults(ctx, cfg.Results)
	if err != nil {
		return nil, err
	}
	missing = append(missing, cfg.MissingResults...)
	rep.Hops = append(rep.Hops, jobHop(res, missing, lakeEvents, from, to), resultHop(res))

	// 4b. The aggregates table.
	aggHop, err := aggregatesHop(ctx, cfg.Catalog, res, from, to)
	if err != nil {
		return nil, err
	}
	rep.Hops = append(rep.Hops, aggHop)

	// 5. Elasticsearch.
	esHop, err := elasticsearchHop(ctx, cfg.Index, res, lakeEvents, from, to)
	if err != nil {
		return nil, err
	}
	rep.Hops = append(rep.Hops, esHop)

	rep.OK = true
	for _, h := range rep.Hops {
		if h.Status == Diff {
			rep.OK, rep.FirstDiff = false, h.Name
			break
		}
	}
	return rep, nil
}

func positionsHop(chains []Chain, issues []ChainIssue) Hop {
	h := Hop{Name: HopPositions, Status: OK}
	var commits, positions int64
	for _, c := range chains {
		commits += int64(c.Commits)
		positions += c.Positions
	}
	h.Detail = fmt.Sprintf("%d source(s), %d commits covering %d positions", len(chains), commits, positions)
	if len(issues) == 0 {
		h.Detail += ", contiguous"
		return h
	}
	h.Status = Diff
	h.Detail = fmt.Sprintf("%d break(s) in the commit chains of %s", len(issues), h.Detail)
	for _, i := range issues {
		h.problem("%s", i)
	}
	return h
}

// addLag fills each chain's Lag from offsets.
func addLag(ctx context.Context, offsets Offsets, chains []Chain) error {
	sources := make([]string, len(chains))
	for i, c := range chains {
		sources[i] = c.Source
	}
	got, what, err := offsets.Offsets(ctx, sources)
	if err != nil {
		return fmt.Errorf("audit: source offsets: %w", err)
	}
	for i := range chains {
		if off, ok := got[chains[i].Source]; ok {
			chains[i].Lag, chains[i].LagOf = ptr(off-chains[i].End), what
		}
	}
	return nil
}

// fileCount is what reading one data file found.
type fileCount struct {
	inRange  int64
	problems []string
}

// countLake counts the lake's events in [from, to): from the manifests'
// file records (a lower and an upper bound), and exactly, by reading every
// committed file that overlaps the range.
func countLake(ctx context.Context, cfg Config, snap *lake.Snapshot, from, to time.Time) (Hop, int64, error) {
	h := Hop{Name: HopLake, Status: OK}
	lo, hi := from.UnixMilli(), to.UnixMilli()
	type named struct {
		lake.DataFile
		commit string
	}
	var files []named
	var inside, overlapping int64
	for _, m := range snap.Manifests {
		for _, f := range m.Files {
			if f.MaxTs < lo || f.MinTs >= hi {
				continue
			}
			files = append(files, named{f, fmt.Sprintf("%s commit %d", m.Source, m.Seq)})
			overlapping += f.Events
			if f.MinTs >= lo && f.MaxTs < hi {
				inside += f.Events
			}
		}
	}
	if len(files) > cfg.MaxFiles {
		return h, 0, fmt.Errorf("audit: %d lake data files overlap the range, more than the limit of %d: audit a shorter range", len(files), cfg.MaxFiles)
	}
	counts := make([]fileCount, len(files))
	errs := make([]error, len(files))
	var wg sync.WaitGroup
	sem := make(chan struct{}, cfg.Parallelism)
	for i, f := range files {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			counts[i], errs[i] = countFile(ctx, cfg.Lake, f.DataFile, f.commit, lo, hi)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return h, 0, err
	}
	var events int64
	for _, c := range counts {
		events += c.inRange
		for _, p := range c.problems {
			h.problem("%s", p)
		}
	}
	h.Events = ptr(events)
	h.Detail = fmt.Sprintf("%d events read from the %d committed files overlapping the range; their manifests record %d (%d in files wholly inside it)",
		events, len(files), overlapping, inside)
	switch {
	case len(h.Problems) > 0:
		h.Status = Diff
	case events < inside || events > overlapping:
		h.Status = Diff
		h.Detail = fmt.Sprintf("the files hold %d events in the range, outside the manifests' bounds [%d, %d]", events, inside, overlapping)
	}
	return h, events, nil
}

// countFile reads one committed data file and counts its events in [lo,
// hi) (epoch ms). A file that is missing, corrupt, or holds other events
// than its manifest records is a problem; other read errors fail.
func countFile(ctx context.Context, store lake.Store, f lake.DataFile, commit string, lo, hi int64) (fileCount, error) {
	var c fileCount
	data, err := store.GetSized(ctx, f.Key, f.Bytes)
	switch {
	case errors.Is(err, lake.ErrNotExist):
		c.problems = append(c.problems, fmt.Sprintf("%s: data file %s is missing (%d events)", commit, f.Key, f.Events))
		return c, nil
	case errors.Is(err, lake.ErrSize):
		c.problems = append(c.problems, fmt.Sprintf("%s: data file %s: %v", commit, f.Key, err))
		return c, nil
	case err != nil:
		return c, fmt.Errorf("audit: read %s: %w", f.Key, err)
	}
	events, err := lake.DecodeFile(f.Key, data)
	if err != nil {
		c.problems = append(c.problems, fmt.Sprintf("%s: data file %s does not decode: %v", commit, f.Key, err))
		return c, nil
	}
	if int64(len(events)) != f.Events {
		c.problems = append(c.problems, fmt.Sprintf("%s: data file %s holds %d events, its manifest records %d", commit, f.Key, len(events), f.Events))
	}
	var outside int
	for i := range events {
		ts := events[i].Timestamp
		if ts < f.MinTs || ts > f.MaxTs {
			outside++
		}
		if ts >= lo && ts < hi {
			c.inRange++
		}
	}
	if outside > 0 {
		c.problems = append(c.problems, fmt.Sprintf("%s: data file %s has %d events outside its recorded time bounds", commit, f.Key, outside))
	}
	return c, nil
}

// eventsTableHop counts the range's events through the events table's
// current snapshot. A table that does not hold every lake commit yet is
// Behind, not different, when it holds fewer events.
func eventsTableHop(ctx context.Context, cat catalog.Catalog, chains []Chain, lakeEvents int64, from, to time.Time) (Hop, error) {
	h := Hop{Name: HopEventsTable}
	if cat == nil {
		h.Status, h.Detail = Skipped, "no catalog given"
		return h, nil
	}
	exists, err := cat.CheckTableExists(ctx, icetable.Ident(icetable.EventsTable))
	if err != nil {
		return h, fmt.Errorf("audit: events table: %w", err)
	}
	if !exists {
		h.Status, h.Detail = Skipped, "the catalog has no events table"
		return h, nil
	}
	c, err := icetable.CountEvents(ctx, cat, from, to)
	if missingFile(err) {
		// The table names a data file that is gone: a difference, as a
		// missing file is in the lake hop.
		h.Status, h.Detail = Diff, "the table's files cannot all be read"
		h.problem("%v", err)
		return h, nil
	}
	if err != nil {
		return h, fmt.Errorf("audit: %w", err)
	}
	h.Events = ptr(c.Events)
	var behind []string
	for _, ch := range chains {
		if p := icetable.PositionOf(c.Positions, ch.Source); p.Seq < ch.LastSeq {
			behind = append(behind, fmt.Sprintf("%s: commits %d to %d", ch.Source, p.Seq+1, ch.LastSeq))
		}
	}
	h.Detail = fmt.Sprintf("%d events in snapshot %d (%d files scanned)", c.Events, c.Snapshot, c.Files)
	switch {
	case c.Events == lakeEvents:
		h.Status = OK
	case c.Events < lakeEvents && len(behind) > 0:
		h.Status = Behind
		h.Detail += fmt.Sprintf("; the lake has %d more, and the table does not hold %d sources' last commits yet (publish catches up)", lakeEvents-c.Events, len(behind))
		for _, b := range behind {
			h.problem("%s", b)
		}
	default:
		h.Status = Diff
		h.Detail += fmt.Sprintf(", the lake %d (%+d)", lakeEvents, c.Events-lakeEvents)
	}
	return h, nil
}

// missingFile tells whether err is a file that does not exist, from a
// local file system or from S3 (through iceberg-go's readers).
func missingFile(err error) bool {
	return err != nil && (errors.Is(err, fs.ErrNotExist) || errors.Is(err, lake.ErrNotExist) ||
		strings.Contains(err.Error(), "NoSuchKey") || strings.Contains(err.Error(), "StatusCode: 404"))
}

// result is one committed result read back.
type result struct {
	uri    string
	meta   results.Meta
	rows   int64
	clicks int64 // clicks and bot clicks: every event in the window is one of them
	// outside counts rows whose window is not the result's.
	outside int64
}

// readResults reads the committed results of stores; missing names the
// stores without one.
func readResults(ctx context.Context, stores []lake.Store) (_ []result, missing []string, _ error) {
	out := make([]result, 0, len(stores))
	for _, s := range stores {
		rows, meta, err := results.ReadResult(ctx, s)
		if errors.Is(err, results.ErrNoResult) {
			missing = append(missing, s.URI())
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("audit: read the result in %s: %w", s.URI(), err)
		}
		r := result{uri: s.URI(), meta: meta, rows: int64(len(rows))}
		for i := range rows {
			r.clicks += rows[i].Clicks + rows[i].BotClicks
			if !rows[i].WindowStart.Equal(meta.From) || !rows[i].WindowEnd.Equal(meta.To) {
				r.outside++
			}
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].meta.From.Before(out[j].meta.From) })
	return out, missing, nil
}

// coverage describes how the results' windows fail to tile [from, to),
// or returns "".
func coverage(res []result, from, to time.Time) string {
	at := from
	for _, r := range res {
		switch {
		case r.meta.From.After(at):
			return fmt.Sprintf("no result covers [%s, %s)", fmtTime(at), fmtTime(r.meta.From))
		case r.meta.From.Before(at):
			return fmt.Sprintf("the result in %s for [%s, %s) overlaps [%s, %s) or starts before it", r.uri, fmtTime(r.meta.From), fmtTime(r.meta.To), fmtTime(from), fmtTime(to))
		}
		at = r.meta.To
	}
	if at.Before(to) {
		return fmt.Sprintf("no result covers [%s, %s)", fmtTime(at), fmtTime(to))
	}
	if at.After(to) {
		return fmt.Sprintf("the results end at %s, after the range", fmtTime(at))
	}
	return ""
}

func fmtTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func jobHop(res []result, missing []string, lakeEvents int64, from, to time.Time) Hop {
	h := Hop{Name: HopJob}
	if len(missing) > 0 {
		h.Status, h.Detail = Diff, fmt.Sprintf("no committed result in %s", strings.Join(missing, ", "))
		return h
	}
	if len(res) == 0 {
		h.Status, h.Detail = Skipped, "no result given"
		return h
	}
	var counted int64
	jobs := make([]string, 0, len(res))
	for _, r := range res {
		counted += r.meta.EventsInWindow
		jobs = append(jobs, r.meta.Job)
	}
	h.Events = ptr(counted)
	h.Detail = fmt.Sprintf("%d events counted by job %s", counted, strings.Join(jobs, ", "))
	if len(res) > 1 {
		h.Detail = fmt.Sprintf("%d events counted by %d jobs", counted, len(res))
	}
	switch c := coverage(res, from, to); {
	case c != "":
		h.Status, h.Detail = Diff, "the results do not cover the range: "+c
	case counted != lakeEvents:
		h.Status = Diff
		h.Detail += fmt.Sprintf(", the lake holds %d (%+d): input committed after the job ran, or lost from the lake", lakeEvents, counted-lakeEvents)
	default:
		h.Status = OK
	}
	return h
}

func resultHop(res []result) Hop {
	h := Hop{Name: HopResult}
	if len(res) == 0 {
		h.Status, h.Detail = Skipped, "no result given"
		return h
	}
	var rows, clicks, counted, outside int64
	for _, r := range res {
		rows, clicks, counted, outside = rows+r.rows, clicks+r.clicks, counted+r.meta.EventsInWindow, outside+r.outside
	}
	h.Events, h.Rows = ptr(clicks), ptr(rows)
	h.Detail = fmt.Sprintf("%d clicks in %d rows", clicks, rows)
	switch {
	case outside > 0:
		h.Status, h.Detail = Diff, fmt.Sprintf("%d rows are not of their result's window (%s)", outside, h.Detail)
	case clicks != counted:
		// Every event in the window is one click of one row.
		h.Status, h.Detail = Diff, fmt.Sprintf("%s, the job counted %d events (%+d)", h.Detail, counted, clicks-counted)
	default:
		h.Status = OK
	}
	return h
}

func aggregatesHop(ctx context.Context, cat catalog.Catalog, res []result, from, to time.Time) (Hop, error) {
	h := Hop{Name: HopAggregatesTable}
	switch {
	case cat == nil:
		h.Status, h.Detail = Skipped, "no catalog given"
		return h, nil
	case len(res) == 0:
		h.Status, h.Detail = Skipped, "no result given"
		return h, nil
	}
	exists, err := cat.CheckTableExists(ctx, icetable.Ident(icetable.AggregatesTable))
	if err != nil {
		return h, fmt.Errorf("audit: aggregates table: %w", err)
	}
	if !exists {
		h.Status, h.Detail = Skipped, "the catalog has no aggregates table"
		return h, nil
	}
	rows, err := icetable.ReadAggregatesRange(ctx, cat, from, to)
	if err != nil {
		return h, fmt.Errorf("audit: %w", err)
	}
	type win struct{ from, to int64 }
	type sums struct {
		rows, clicks int64
		jobs         []string
	}
	got := map[win]*sums{}
	var clicks int64
	for _, r := range rows {
		w := win{r.WindowStart.UnixMicro(), r.WindowEnd.UnixMicro()}
		s := got[w]
		if s == nil {
			s = &sums{}
			got[w] = s
		}
		s.rows++
		s.clicks += r.Clicks + r.BotClicks
		if !slices.Contains(s.jobs, r.Job) {
			s.jobs = append(s.jobs, r.Job)
		}
		clicks += r.Clicks + r.BotClicks
	}
	h.Events, h.Rows = ptr(clicks), ptr(int64(len(rows)))
	h.Detail = fmt.Sprintf("%d clicks in %d rows", clicks, len(rows))
	for _, r := range res {
		w := win{r.meta.From.UnixMicro(), r.meta.To.UnixMicro()}
		s := got[w]
		delete(got, w)
		window := fmt.Sprintf("[%s, %s)", fmtTime(r.meta.From), fmtTime(r.meta.To))
		switch {
		case s == nil && r.rows == 0:
			// An empty result: nothing to hold.
		case s == nil:
			h.problem("window %s: no rows, the result has %d", window, r.rows)
		case s.rows != r.rows || s.clicks != r.clicks:
			h.problem("window %s: %d clicks in %d rows, the result %d in %d", window, s.clicks, s.rows, r.clicks, r.rows)
		case len(s.jobs) != 1 || s.jobs[0] != r.meta.Job:
			h.problem("window %s: rows of jobs %v, the result is job %s's", window, s.jobs, r.meta.Job)
		}
	}
	for w, s := range got {
		h.problem("window [%s, %s): %d rows that no given result has", fmtTime(time.UnixMicro(w.from)), fmtTime(time.UnixMicro(w.to)), s.rows)
	}
	h.Status = OK
	if len(h.Problems) > 0 {
		h.Status = Diff
		h.Detail = "the table's rows are not the results' (" + h.Detail + ")"
	}
	return h, nil
}

func elasticsearchHop(ctx context.Context, ix Index, res []result, lakeEvents int64, from, to time.Time) (Hop, error) {
	h := Hop{Name: HopElasticsearch}
	if ix == nil {
		h.Status, h.Detail = Skipped, "no Elasticsearch given (--es)"
		return h, nil
	}
	docs, clicks, err := ix.Totals(ctx, from, to)
	noIndex := errors.Is(err, ErrNoIndex)
	if err != nil && !noIndex {
		return h, fmt.Errorf("audit: elasticsearch: %w", err)
	}
	h.Events, h.Rows = ptr(clicks), ptr(docs)
	h.Detail = fmt.Sprintf("%d clicks in %d documents", clicks, docs)
	if noIndex {
		docs, clicks = 0, 0
		h.Events, h.Rows = ptr(0), ptr(0)
		h.Detail = fmt.Sprintf("no documents: %v", err)
	}
	h.Status = OK
	if len(res) == 0 {
		if clicks != lakeEvents {
			h.Status = Diff
			h.Detail += fmt.Sprintf(", the lake holds %d events (%+d)", lakeEvents, clicks-lakeEvents)
		}
		return h, nil
	}
	var rows, want int64
	for _, r := range res {
		rows, want = rows+r.rows, want+r.clicks
	}
	if docs != rows || clicks != want {
		h.Status = Diff
		h.Detail += fmt.Sprintf(", the result %d clicks in %d rows (%+d documents, %+d clicks)", want, rows, docs-rows, clicks-want)
	}
	return h, nil
}
