package results

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/schema"
	"github.com/dataco/clickstream/internal/userset"
)

// Keys of the output layout.
const (
	SuccessKey  = "_SUCCESS"
	RunsPrefix  = "_runs/"
	JobsPrefix  = "_jobs/"
	MetaVersion = 1
)

// DefaultRowsPerFile caps the rows of one result file.
const DefaultRowsPerFile = 1_000_000

var (
	// ErrNoResult reports an output store without a committed result.
	ErrNoResult = errors.New("results: no committed result (no _SUCCESS)")
	// ErrBadMeta reports a _SUCCESS that does not decode or is inconsistent.
	ErrBadMeta = errors.New("results: malformed _SUCCESS")
	// ErrSuperseded reports a result to finalize that another job's
	// result replaced.
	ErrSuperseded = errors.New("results: the committed result is another job's")
)

// Format is the file format of a result.
type Format string

// Result formats.
const (
	NDJSON Format = "ndjson"
	CSV    Format = "csv"
)

// ParseFormat parses "ndjson" (or "") and "csv", case-insensitively.
func ParseFormat(s string) (Format, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "ndjson", "json":
		return NDJSON, nil
	case "csv":
		return CSV, nil
	}
	return "", fmt.Errorf("results: unknown format %q (want ndjson or csv)", s)
}

// PartialsPrefix is the folder of a job's task partials in the output store.
func PartialsPrefix(job string) string { return JobsPrefix + job + "/partials/" }

// PartialKey is the key of the committed partial of one user bucket of a job.
// It is deterministic, so every attempt of a task targets the same key and
// put-if-absent lets exactly one commit.
func PartialKey(job string, bucket int) string {
	return fmt.Sprintf("%stask-%05d.bin", PartialsPrefix(job), bucket)
}

// JobPrefix is the folder of everything a job keeps in the output store
// while it runs.
func JobPrefix(job string) string { return JobsPrefix + job + "/" }

// RunName names the result folder of one commit attempt of a job.
func RunName(job string, attempt int) string { return fmt.Sprintf("%s-%d", job, attempt) }

// Meta is the content of _SUCCESS: which files hold the result, and how the
// job that produced it went.
type Meta struct {
	Version int    `json:"version"`
	Job     string `json:"job"`
	// Run is the folder of the result files, RunsPrefix + Run.
	Run string `json:"run"`
	// Previous is the run this one replaced, if any (kept by Prune).
	Previous string   `json:"previous,omitempty"`
	Format   Format   `json:"format"`
	Files    []string `json:"files"` // keys relative to the output store
	Rows     int64    `json:"rows"`

	From           time.Time `json:"from"`
	To             time.Time `json:"to"`
	SessionTimeout string    `json:"session_timeout"`
	Lake           string    `json:"lake,omitempty"`
	// EventsSnapshot is the snapshot of the lake's Iceberg events table the
	// job read; 0 if it read the lake's manifests.
	EventsSnapshot int64 `json:"events_snapshot,omitempty"`
	// IncludeBots: the job counted bots' events like anyone's (clicks,
	// users, time spent; no bot_clicks); false: set apart in bot_clicks.
	IncludeBots bool `json:"include_bots,omitempty"`

	EventsRead     int64 `json:"events_read"`      // by the tasks, look-ahead included
	EventsInWindow int64 `json:"events_in_window"` // counted in the result
	Partitions     int   `json:"partitions"`       // tasks (user buckets with data)
	Attempts       int   `json:"attempts"`         // task attempts, retries and backups included
	Retries        int   `json:"retries"`
	Backups        int   `json:"backups"`

	Started         time.Time `json:"started"`
	Committed       time.Time `json:"committed"`
	DurationSeconds float64   `json:"duration_seconds"`
	Warning         string    `json:"warning,omitempty"`
	RowsPerFile     int       `json:"rows_per_file,omitempty"`

	// How final the result is; every row carries the same values (see
	// schema.Row). Commit fills Revision and ComputedAt; the job sets
	// Watermark and Final.

	// Revision is the result's run number in this output: 1 for the
	// first result, the previous result's revision + 1 for a result of
	// another job (a recomputation), the same for another commit of the
	// same job (a retried commit, a finalization). A _SUCCESS written
	// before revisions existed reads 0 and counts as revision 1.
	Revision int64 `json:"revision,omitempty"`
	// ComputedAt is when the rows of this revision were first committed.
	ComputedAt time.Time `json:"computed_at,omitzero"`
	// Watermark is the ingest watermark the job knew when it committed
	// (or when the result was finalized); nil if it knew none.
	Watermark *time.Time `json:"watermark,omitempty"`
	// Final: the watermark had passed the window's end plus the session
	// timeout and the allowed lateness. A provisional result is false
	// until Finalize commits it again as final.
	Final bool `json:"final"`

	// Sets are the run's user-set files (package userset), sorted by key
	// across files: kept by jobs with user sets for roll-ups (WriteSets).
	Sets []string `json:"sets,omitempty"`
	// SetHashes and SetBytes are the hashes the set files hold and their
	// size.
	SetHashes int64 `json:"set_hashes,omitempty"`
	SetBytes  int64 `json:"set_bytes,omitempty"`
	// Grain is the roll-up grain of a roll-up's result (day, week, month);
	// empty for a job's window. RollupOf names the window results a
	// roll-up merged, each as "<output URI>#<run>".
	Grain    string   `json:"grain,omitempty"`
	RollupOf []string `json:"rollup_of,omitempty"`
	// ApproximateRows are a roll-up's rows whose unique users a sketch
	// estimated (schema.Row.Approximate), with relative standard error
	// SketchRelError.
	ApproximateRows int     `json:"approximate_rows,omitempty"`
	SketchRelError  float64 `json:"sketch_rel_error,omitempty"`
	// LargestSet names a roll-up's row with the most unique users, and
	// LargestSetUsers their number: what its largest union held (8 bytes
	// a user in memory, or spilled).
	LargestSet      string `json:"largest_set,omitempty"`
	LargestSetUsers int64  `json:"largest_set_users,omitempty"`
}

// Ext is the file name extension of the format, dot included.
func (f Format) Ext() string {
	if f == CSV {
		return ".csv"
	}
	return ".ndjson"
}

// Commit writes rows as the run m.Run (m.Format, m.RowsPerFile rows a file)
// and then commits it by replacing _SUCCESS. It fills m's Version, Files,
// Rows, Previous, Committed, Revision and ComputedAt and returns it, and
// sets the provenance columns of rows (in place) from m: revision,
// computed_at, watermark, events_snapshot, final. Files of a failed Commit
// are garbage that a later Prune removes; the previous result stays
// visible.
func Commit(ctx context.Context, out lake.Store, rows []schema.Row, m Meta) (Meta, error) {
	prev, err := ReadMeta(ctx, out)
	switch {
	case err == nil:
		if prev.Run != m.Run {
			m.Previous = prev.Run
		} else {
			m.Previous = prev.Previous
		}
		m.Revision = max(prev.Revision, 1)
		if prev.Job != m.Job || m.Job == "" {
			m.Revision++ // another computation
		}
	case errors.Is(err, ErrNoResult), errors.Is(err, ErrBadMeta):
		m.Revision = 1
	default:
		return m, err
	}
	if err == nil && prev.Job == m.Job && m.Job != "" && !prev.ComputedAt.IsZero() {
		m.ComputedAt = prev.ComputedAt // the same job's rows, committed again
	} else {
		m.ComputedAt = time.Now().UTC()
	}
	return write(ctx, out, rows, m)
}

// Finalize commits the result of job in out again as final, as of the
// ingest watermark wm, without recomputing it: the same rows, revision and
// computed_at, with final true and wm as their watermark, in a new run
// (the committed one's name + "-final"). It returns the committed Meta; a
// result already final is left as it is. If the committed result is not
// job's (a newer job replaced it), it returns an error matching
// ErrSuperseded and changes nothing.
//
// Like Commit, it must not run while a job writes a result to out.
func Finalize(ctx context.Context, out lake.Store, job string, wm time.Time) (Meta, error) {
	rows, m, err := ReadResult(ctx, out)
	if err != nil {
		return m, err
	}
	if m.Job != job {
		return m, fmt.Errorf("%w: finalize %s: %s holds job %s's", ErrSuperseded, job, out.URI(), m.Job)
	}
	if m.Final {
		return m, nil
	}
	wm = wm.UTC()
	next := m
	next.Previous, next.Run = m.Run, strings.TrimSuffix(m.Run, finalSuffix)+finalSuffix
	next.Final, next.Watermark = true, &wm
	next.Revision = max(m.Revision, 1)
	return write(ctx, out, rows, next)
}

// Stamp sets the provenance columns of rows (in place) from m: revision,
// computed_at, watermark, events_snapshot and final, as Commit writes them.
func Stamp(rows []schema.Row, m Meta) {
	for i := range rows {
		r := &rows[i]
		r.Revision, r.ComputedAt, r.EventsSnapshot, r.Final = m.Revision, m.ComputedAt.UTC(), m.EventsSnapshot, m.Final
		r.Watermark = nil
		if m.Watermark != nil {
			wm := m.Watermark.UTC()
			r.Watermark = &wm
		}
	}
}

// finalSuffix ends the name of a finalized run.
const finalSuffix = "-final"

// write writes rows as the run m.Run, stamped with m's provenance, and
// then replaces _SUCCESS with m.
func write(ctx context.Context, out lake.Store, rows []schema.Row, m Meta) (Meta, error) {
	if m.Run == "" || strings.Contains(m.Run, "/") {
		return m, fmt.Errorf("results: commit: bad run name %q", m.Run)
	}
	if m.Format == "" {
		m.Format = NDJSON
	}
	if m.Format != NDJSON && m.Format != CSV {
		return m, fmt.Errorf("results: commit: unknown format %q", m.Format)
	}
	per := m.RowsPerFile
	if per <= 0 {
		per = DefaultRowsPerFile
	}
	m.Version = MetaVersion
	m.Rows = int64(len(rows))
	m.Files = nil
	Stamp(rows, m)
	// Always at least one file, so that an empty result is a visible file
	// (a CSV header) and not nothing.
	for i, start := 0, 0; start == 0 || start < len(rows); i, start = i+1, start+per {
		chunk := rows[start:min(start+per, len(rows))]
		var (
			data []byte
			err  error
		)
		if m.Format == CSV {
			var buf bytes.Buffer
			err = schema.WriteCSV(&buf, chunk)
			data = buf.Bytes()
		} else {
			data, err = schema.AppendNDJSON(nil, chunk)
		}
		if err != nil {
			return m, fmt.Errorf("results: commit: %w", err)
		}
		key := fmt.Sprintf("%s%s/part-%05d%s", RunsPrefix, m.Run, i, m.Format.Ext())
		if err := out.Put(ctx, key, data); err != nil {
			return m, fmt.Errorf("results: commit: write %s: %w", key, err)
		}
		m.Files = append(m.Files, key)
		if len(rows) == 0 {
			break
		}
	}
	m.Committed = time.Now().UTC()
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return m, fmt.Errorf("results: commit: %w", err)
	}
	if err := out.Put(ctx, SuccessKey, append(data, '\n')); err != nil {
		return m, fmt.Errorf("results: commit %s: %w", SuccessKey, err)
	}
	return m, nil
}

// Prune deletes every object under RunsPrefix that belongs neither to the
// committed run nor to the run it replaced. It must not run while another
// job writes a result to the same store (the coordinator never lets two
// jobs share an output).
func Prune(ctx context.Context, out lake.Store) error {
	m, err := ReadMeta(ctx, out)
	if err != nil {
		return err
	}
	objs, err := out.List(ctx, RunsPrefix)
	if err != nil {
		return fmt.Errorf("results: prune: %w", err)
	}
	var errs []error
	for _, o := range objs {
		run, _, _ := strings.Cut(strings.TrimPrefix(o.Key, RunsPrefix), "/")
		if run == m.Run || (run == m.Previous && m.Previous != "") {
			continue
		}
		if err := out.Delete(ctx, o.Key); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("results: prune: %w", err)
	}
	return nil
}

// DeletePrefix deletes every object under prefix (best effort: it goes on
// after an error and returns them all).
func DeletePrefix(ctx context.Context, s lake.Store, prefix string) error {
	objs, err := s.List(ctx, prefix)
	if err != nil {
		return err
	}
	var errs []error
	for _, o := range objs {
		if err := s.Delete(ctx, o.Key); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ReadMeta reads _SUCCESS; ErrNoResult if there is none.
func ReadMeta(ctx context.Context, out lake.Store) (Meta, error) {
	data, err := out.Get(ctx, SuccessKey)
	if errors.Is(err, lake.ErrNotExist) {
		return Meta{}, fmt.Errorf("%w in %s", ErrNoResult, out.URI())
	}
	if err != nil {
		return Meta{}, fmt.Errorf("results: read %s: %w", SuccessKey, err)
	}
	var m Meta
	if err := json.Unmarshal(data, &m); err != nil {
		return Meta{}, fmt.Errorf("%w in %s: %v", ErrBadMeta, out.URI(), err)
	}
	if m.Version != MetaVersion || m.Run == "" {
		return Meta{}, fmt.Errorf("%w in %s: version %d, run %q", ErrBadMeta, out.URI(), m.Version, m.Run)
	}
	if m.Format != NDJSON && m.Format != CSV {
		return Meta{}, fmt.Errorf("%w in %s: format %q", ErrBadMeta, out.URI(), m.Format)
	}
	return m, nil
}

// ReadResult reads the committed result: its rows, in file order (sorted
// by URL and country, as the coordinator writes them), and its Meta. If a
// result is replaced while it is being read, ReadResult starts over with
// the new one.
func ReadResult(ctx context.Context, out lake.Store) ([]schema.Row, Meta, error) {
	var lastErr error
	for range 3 {
		m, err := ReadMeta(ctx, out)
		if err != nil {
			return nil, Meta{}, err
		}
		rows, err := ReadRun(ctx, out, m)
		if err == nil {
			if int64(len(rows)) != m.Rows {
				return nil, m, fmt.Errorf("%w in %s: %d rows in the files, %d in _SUCCESS", ErrBadMeta, out.URI(), len(rows), m.Rows)
			}
			return rows, m, nil
		}
		if !errors.Is(err, lake.ErrNotExist) {
			return nil, m, err
		}
		lastErr = err // replaced and pruned under us: read the new one
	}
	return nil, Meta{}, lastErr
}

// ReadRun reads the rows of the run m names. The run may have been pruned
// since m was committed if two newer results replaced it: the error then
// matches lake.ErrNotExist.
func ReadRun(ctx context.Context, out lake.Store, m Meta) ([]schema.Row, error) {
	rows := make([]schema.Row, 0, m.Rows)
	for _, key := range m.Files {
		data, err := out.Get(ctx, key)
		if err != nil {
			return nil, fmt.Errorf("results: read %s: %w", key, err)
		}
		var part []schema.Row
		if m.Format == CSV {
			part, err = schema.ReadCSV(bytes.NewReader(data))
		} else {
			part, err = schema.ReadNDJSON(bytes.NewReader(data))
		}
		if err != nil {
			return nil, fmt.Errorf("results: %s: %w", key, err)
		}
		rows = append(rows, part...)
	}
	return rows, nil
}

// SetsFileBytes is about the largest set file WriteSets writes: a key's
// entry is never split, so a file holding one key's large set may be
// larger.
const SetsFileBytes = 32 << 20

// SetsKey is the key of the i-th set file of a run.
func SetsKey(run string, i int) string { return fmt.Sprintf("%s%s/sets-%05d.bin", RunsPrefix, run, i) }

// WriteSets writes entries, sorted by (URL, Country), as the set files of
// the run m.Run (about SetsFileBytes each), and records them in m (Sets,
// SetHashes, SetBytes) for the Commit that follows. Like the result
// files, they belong to the run: a re-run's replace them, and Prune
// deletes them with their run.
func WriteSets(ctx context.Context, out lake.Store, m *Meta, entries []userset.Entry) error {
	if err := startSets(m); err != nil {
		return err
	}
	enc := userset.NewEncoder()
	for _, e := range entries {
		if err := enc.Add(e); err != nil {
			return fmt.Errorf("results: write sets: %w", err)
		}
		if enc.Size() >= SetsFileBytes {
			if err := putSets(ctx, out, m, enc); err != nil {
				return err
			}
			enc = userset.NewEncoder()
		}
	}
	if enc.Keys() > 0 || len(m.Sets) == 0 {
		return putSets(ctx, out, m, enc)
	}
	return nil
}

// SetFile is an encoded set file (userset.Encoder.Bytes) and the numbers
// of entries and hashes it holds.
type SetFile struct {
	Data   []byte
	Keys   int
	Hashes int64
}

// EncodedSetFile is enc's file.
func EncodedSetFile(enc *userset.Encoder) SetFile {
	return SetFile{Data: enc.Bytes(), Keys: enc.Keys(), Hashes: enc.Hashes()}
}

// WriteSetFiles writes encoded set files (each one's entries sorted by
// key, the files' keys disjoint: one key range each) as the set files of
// the run m.Run, in order, and records them in m, as WriteSets does.
// Files without entries are left out.
func WriteSetFiles(ctx context.Context, out lake.Store, m *Meta, files []SetFile) error {
	if err := startSets(m); err != nil {
		return err
	}
	for _, f := range files {
		if f.Keys == 0 {
			continue
		}
		if err := putSetFile(ctx, out, m, f); err != nil {
			return err
		}
	}
	if len(m.Sets) == 0 { // an empty result keeps an empty set file: it has sets
		return putSets(ctx, out, m, userset.NewEncoder())
	}
	return nil
}

// startSets checks m's run name and clears what it records of set files.
func startSets(m *Meta) error {
	if m.Run == "" || strings.Contains(m.Run, "/") {
		return fmt.Errorf("results: write sets: bad run name %q", m.Run)
	}
	m.Sets, m.SetHashes, m.SetBytes = nil, 0, 0
	return nil
}

// putSets writes enc's file as the run's next set file and records it in m.
func putSets(ctx context.Context, out lake.Store, m *Meta, enc *userset.Encoder) error {
	return putSetFile(ctx, out, m, EncodedSetFile(enc))
}

// putSetFile writes f as the run's next set file and records it in m.
func putSetFile(ctx context.Context, out lake.Store, m *Meta, f SetFile) error {
	key := SetsKey(m.Run, len(m.Sets))
	if err := out.Put(ctx, key, f.Data); err != nil {
		return fmt.Errorf("results: write sets %s: %w", key, err)
	}
	m.Sets = append(m.Sets, key)
	m.SetHashes += f.Hashes
	m.SetBytes += int64(len(f.Data))
	return nil
}

// ErrNoSets reports a committed result without user sets (its job ran
// without them).
var ErrNoSets = errors.New("results: the result keeps no user sets")

// ReadSets reads and checks the set files of the run m names, in order.
// A run pruned since m was read is an error matching lake.ErrNotExist.
func ReadSets(ctx context.Context, out lake.Store, m Meta) ([]*userset.Reader, error) {
	if len(m.Sets) == 0 {
		return nil, fmt.Errorf("%w: %s (run %s)", ErrNoSets, out.URI(), m.Run)
	}
	var rs []*userset.Reader
	for _, key := range m.Sets {
		if !strings.HasPrefix(key, RunsPrefix+m.Run+"/") {
			return nil, fmt.Errorf("%w in %s: set file %s is not in run %s", ErrBadMeta, out.URI(), key, m.Run)
		}
		data, err := out.Get(ctx, key)
		if err != nil {
			return nil, fmt.Errorf("results: read %s: %w", key, err)
		}
		r, err := userset.Open(data)
		if err != nil {
			return nil, fmt.Errorf("results: %s/%s: %w", out.URI(), key, err)
		}
		rs = append(rs, r)
	}
	return rs, nil
}
