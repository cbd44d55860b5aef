package icetable

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress/zstd"
	"github.com/twmb/avro/atype"

	"github.com/dataco/clickstream/internal/event"
	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/results"
	"github.com/dataco/clickstream/internal/schema"
)

// AggregatesTable names the table of the jobs' results.
const AggregatesTable = "aggregates"

// aggregatesPrefix is the aggregates table's folder in the lake.
const aggregatesPrefix = "aggregates/"

// Snapshot summary properties of the aggregates table's snapshots.
const (
	JobProperty    = "clickstream.job"
	RunProperty    = "clickstream.run"
	WindowProperty = "clickstream.window"
)

// aggRow is a result row as the aggregates table's Parquet files hold it:
// Iceberg field ids, times as timestamptz (microseconds, UTC).
type aggRow struct {
	WindowStart      int64    `parquet:"window_start,timestamp(microsecond),id(1)"`
	WindowEnd        int64    `parquet:"window_end,timestamp(microsecond),id(2)"`
	URL              string   `parquet:"url,dict,id(3)"`
	Country          string   `parquet:"country,dict,id(4)"`
	Clicks           int64    `parquet:"clicks,id(5)"`
	UniqueUsers      int64    `parquet:"unique_users,id(6)"`
	TotalTimeSpentS  float64  `parquet:"total_time_spent_s,id(7)"`
	TimeSpentSamples int64    `parquet:"time_spent_samples,id(8)"`
	AvgTimeSpentS    *float64 `parquet:"avg_time_spent_s,optional,id(9)"`
	Job              string   `parquet:"job_id,dict,id(10)"`
	EventsSnapshot   *int64   `parquet:"events_snapshot,optional,id(11)"`
	// How final the row is (schema.Row); null in rows published before
	// these columns existed.
	Revision    *int64  `parquet:"revision,optional,id(12)"`
	ComputedAt  *int64  `parquet:"computed_at,optional,timestamp(microsecond),id(13)"`
	Watermark   *int64  `parquet:"watermark,optional,timestamp(microsecond),id(14)"`
	Final       *bool   `parquet:"final,optional,id(15)"`
	BotClicks   *int64  `parquet:"bot_clicks,optional,id(16)"`
	Grain       *string `parquet:"grain,optional,dict,id(17)"`
	Approximate *bool   `parquet:"approximate,optional,id(18)"`
}

// AggregatesSchema is the schema of the aggregates table: the result row
// (package schema) and the job that computed it. Fields are only ever
// appended, optional, with the next id: EnsureAggregates adds them to a
// table made before (EvolveSchema).
func AggregatesSchema() *iceberg.Schema {
	req := required
	return iceberg.NewSchema(0,
		req(1, "window_start", iceberg.PrimitiveTypes.TimestampTz),
		req(2, "window_end", iceberg.PrimitiveTypes.TimestampTz),
		req(3, "url", iceberg.PrimitiveTypes.String),
		req(4, "country", iceberg.PrimitiveTypes.String),
		req(5, "clicks", iceberg.PrimitiveTypes.Int64),
		req(6, "unique_users", iceberg.PrimitiveTypes.Int64),
		req(7, "total_time_spent_s", iceberg.PrimitiveTypes.Float64),
		req(8, "time_spent_samples", iceberg.PrimitiveTypes.Int64),
		iceberg.NestedField{ID: 9, Name: "avg_time_spent_s", Type: iceberg.PrimitiveTypes.Float64},
		req(10, "job_id", iceberg.PrimitiveTypes.String),
		// The events table snapshot the job read; null if it read the
		// lake's manifests.
		iceberg.NestedField{ID: 11, Name: "events_snapshot", Type: iceberg.PrimitiveTypes.Int64},
		// How final the row is: the result's revision, when it was
		// computed, the ingest watermark it was last committed with (null:
		// unknown), and whether the window was final then.
		iceberg.NestedField{ID: 12, Name: "revision", Type: iceberg.PrimitiveTypes.Int64},
		iceberg.NestedField{ID: 13, Name: "computed_at", Type: iceberg.PrimitiveTypes.TimestampTz},
		iceberg.NestedField{ID: 14, Name: "watermark", Type: iceberg.PrimitiveTypes.TimestampTz},
		iceberg.NestedField{ID: 15, Name: "final", Type: iceberg.PrimitiveTypes.Bool},
		// The window's events of bots, set apart from clicks (0 when the
		// job folded them in); null in rows written before the column.
		iceberg.NestedField{ID: 16, Name: "bot_clicks", Type: iceberg.PrimitiveTypes.Int64},
		// The row's grain (schema.Row.Grain): window, or a roll-up's day,
		// week or month; null in rows written before the column.
		iceberg.NestedField{ID: 17, Name: "grain", Type: iceberg.PrimitiveTypes.String},
		// Whether unique_users is a sketch's estimate (roll-ups beyond
		// their exact limit); null in rows written before the column.
		iceberg.NestedField{ID: 18, Name: "approximate", Type: iceberg.PrimitiveTypes.Bool},
	)
}

// EnsureAggregates returns the aggregates table of the lake at store,
// creating it if needed: located at the lake's aggregates/ folder,
// partitioned by day(window_start). A table made by an older version gets
// the columns appended since (EvolveSchema).
func EnsureAggregates(ctx context.Context, cat catalog.Catalog, store lake.Store) (*table.Table, error) {
	want := AggregatesSchema()
	tbl, err := ensureDayTable(ctx, cat, store, AggregatesTable, want, 1, "window_start_day", aggregatesPrefix)
	if err != nil {
		return nil, err
	}
	if missing, err := missingFields(tbl.Schema(), want, tbl.Metadata().LastColumnID()); err == nil && len(missing) == 0 {
		return tbl, nil
	}
	return EvolveSchema(ctx, cat, AggregatesTable, want)
}

// Result is one committed job result to publish.
type Result struct {
	Job, Run string // the job and its committed run (results.Meta), a name unique to the run
	// EventsSnapshot is the events table snapshot the job read (0: none).
	EventsSnapshot int64
	From, To       time.Time // the job's window
	// How final the result is (results.Meta): its revision (0: unknown,
	// null), when it was computed (zero: null), the watermark (nil:
	// null), and whether it is final. They apply to every row.
	Revision   int64
	ComputedAt time.Time
	Watermark  *time.Time
	Final      bool
	// Grain is the result's grain (results.Meta.Grain): "" for a job's
	// window, or a roll-up's. Results of different grains never replace
	// each other's rows.
	Grain string
	Rows  []schema.Row
}

// windowDir is the folder of a window's data files in the table; a
// roll-up's are under grain=<grain>/.
func windowDir(from, to time.Time, grain string) string {
	g := ""
	if grain != "" && grain != schema.GrainWindow {
		g = "grain=" + grain + "/"
	}
	return fmt.Sprintf("%sdata/%swindow=%s_%s/", aggregatesPrefix, g, from.UTC().Format("20060102T150405Z"), to.UTC().Format("20060102T150405Z"))
}

// PublishResult makes r the aggregates table's rows of its window: in one
// commit it removes the files of any earlier result of the same window
// (an overwrite by window) and adds r's, so a reader sees each window
// once, at its latest run. It is idempotent: a result the table already
// holds for its window is not added again, and a race with another
// publisher is resolved by re-reading the table.
func PublishResult(ctx context.Context, cat catalog.Catalog, store lake.Store, r Result) error {
	tbl, err := cat.LoadTable(ctx, Ident(AggregatesTable))
	if err != nil {
		return fmt.Errorf("icetable: publish result: %w", err)
	}
	data, err := encodeResult(r, tbl.Schema())
	if err != nil {
		return err
	}
	return publishEncoded(ctx, cat, store, r, data)
}

// publishEncoded is PublishResult with r's rows encoded as data.
func publishEncoded(ctx context.Context, cat catalog.Catalog, store lake.Store, r Result, data []byte) error {
	dir := windowDir(r.From, r.To, r.Grain)
	key := dir + r.Run + ".parquet"
	root := strings.TrimSuffix(store.URI(), "/") + "/"
	// The file first, under a name no other run uses: rewriting it for a
	// retry writes the same bytes.
	if err := store.Put(ctx, key, data); err != nil {
		return fmt.Errorf("icetable: write %s: %w", key, err)
	}
	for attempt := range publishAttempts {
		tbl, err := cat.LoadTable(ctx, Ident(AggregatesTable))
		if err != nil {
			return fmt.Errorf("icetable: publish result: %w", err)
		}
		var old []iceberg.DataFile
		tasks, err := tbl.Scan().PlanFiles(ctx)
		if err != nil {
			return fmt.Errorf("icetable: publish result: %w", err)
		}
		held := false
		for _, t := range tasks {
			p := t.File.FilePath()
			switch {
			case p == root+key:
				held = true
			case strings.HasPrefix(p, root+dir):
				old = append(old, t.File)
			}
		}
		if held && len(old) == 0 {
			return nil // published before
		}
		df, err := resultFile(tbl, root+key, r, int64(len(data)))
		if err != nil {
			return err
		}
		props := iceberg.Properties{JobProperty: r.Job, RunProperty: r.Run,
			WindowProperty: r.From.UTC().Format(time.RFC3339) + "/" + r.To.UTC().Format(time.RFC3339)}
		tx := tbl.NewTransaction()
		if err := tx.AssertRefSnapshotID(table.MainBranch); err != nil {
			return fmt.Errorf("icetable: publish result: %w", err)
		}
		add := []iceberg.DataFile{df}
		if held {
			add = nil
		}
		if len(old) > 0 {
			err = tx.ReplaceDataFilesWithDataFiles(ctx, old, add, props)
		} else {
			err = tx.AddDataFiles(ctx, add, props, table.WithoutDuplicateCheck())
		}
		if err != nil {
			return fmt.Errorf("icetable: publish result: %w", err)
		}
		if _, err := tx.Commit(ctx); err != nil {
			if err := sleepCtx(ctx, backoff(attempt)); err != nil {
				return err
			}
			continue
		}
		return nil
	}
	return fmt.Errorf("icetable: publish result: %d commits lost to concurrent publishers in a row", publishAttempts)
}

// fileSchema is the Parquet schema of T with each column's field id that
// of the table's field of the same name: a table created by the catalog
// numbers its fields afresh (1, 2, ... in order), so a field declared
// with a later id, grain's 21, may hold another in a given table.
//
// When the table has every field of T with the id T's tags give it (a
// table this package made), that is T's own schema: parquet-go then
// writes T's values column by column, without reflection on each row.
func fileSchema[T any](ts *iceberg.Schema) (*parquet.Schema, error) {
	s := parquet.SchemaOf(new(T))
	if sameIDs(s, ts) {
		return s, nil
	}
	g := parquet.Group{}
	for _, f := range s.Fields() {
		tf, ok := ts.FindFieldByName(f.Name())
		switch {
		case !ok && f.Optional():
			continue // a table made before the column: the file leaves it out
		case !ok:
			return nil, fmt.Errorf("icetable: table %s has no field %q", AggregatesTable, f.Name())
		}
		g[f.Name()] = parquet.FieldID(f, tf.ID)
	}
	return parquet.NewSchema(s.Name(), g), nil
}

// sameIDs tells whether every field of s is a field of the table schema
// ts of the same name and id.
func sameIDs(s *parquet.Schema, ts *iceberg.Schema) bool {
	for _, f := range s.Fields() {
		tf, ok := ts.FindFieldByName(f.Name())
		if !ok || tf.ID != f.ID() {
			return false
		}
	}
	return true
}

func encodeResult(r Result, ts *iceberg.Schema) ([]byte, error) {
	rows := make([]aggRow, len(r.Rows))
	var computed, wm int64
	if !r.ComputedAt.IsZero() {
		computed = r.ComputedAt.UnixMicro()
	}
	if r.Watermark != nil {
		wm = r.Watermark.UnixMicro()
	}
	for i, x := range r.Rows {
		rows[i] = aggRow{
			WindowStart: x.WindowStart.UnixMicro(), WindowEnd: x.WindowEnd.UnixMicro(), URL: x.URL, Country: x.Country,
			Clicks: x.Clicks, UniqueUsers: x.UniqueUsers, TotalTimeSpentS: x.TotalTimeSpentS,
			TimeSpentSamples: x.TimeSpentSamples, AvgTimeSpentS: x.AvgTimeSpentS, Job: r.Job,
			BotClicks: &r.Rows[i].BotClicks,
		}
		if r.EventsSnapshot != 0 {
			rows[i].EventsSnapshot = &r.EventsSnapshot
		}
		if r.Revision != 0 {
			rows[i].Revision = &r.Revision
		}
		if !r.ComputedAt.IsZero() {
			rows[i].ComputedAt = &computed
		}
		if r.Watermark != nil {
			rows[i].Watermark = &wm
		}
		rows[i].Final = &r.Final
		if x.Grain != "" {
			rows[i].Grain = &r.Rows[i].Grain
			rows[i].Approximate = &r.Rows[i].Approximate
		}
	}
	fs, err := fileSchema[aggRow](ts)
	if err != nil {
		return nil, err
	}
	return encodeRows(rows, "result", fs)
}

// required is a required field of a table schema.
func required(id int, name string, t iceberg.Type) iceberg.NestedField {
	return iceberg.NestedField{ID: id, Name: name, Type: t, Required: true}
}

// tableZstd compresses the tables' own files; one codec for all, so that
// its encoders (their windows are costly to set up) are reused.
var tableZstd = zstd.Codec{Level: zstd.SpeedDefault}

// encodeRows writes rows as a Parquet file of a table (zstd), what
// naming them in errors.
func encodeRows[T any](rows []T, what string, opts ...parquet.WriterOption) ([]byte, error) {
	var buf bytes.Buffer
	w := parquet.NewGenericWriter[T](&buf, append([]parquet.WriterOption{parquet.Compression(&tableZstd)}, opts...)...)
	if _, err := w.Write(rows); err != nil {
		return nil, fmt.Errorf("icetable: encode %s: %w", what, err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("icetable: encode %s: %w", what, err)
	}
	return buf.Bytes(), nil
}

// resultFile describes a result's data file: its day partition and the
// window's bounds, which let engines prune by window.
func resultFile(tbl *table.Table, path string, r Result, size int64) (iceberg.DataFile, error) {
	spec := tbl.Spec()
	if spec.NumFields() != 1 {
		return nil, fmt.Errorf("icetable: table %s: partition spec %s is not day(window_start)", AggregatesTable, spec)
	}
	day := int32(math.Floor(float64(r.From.UTC().Unix()) / 86400))
	b, err := iceberg.NewDataFileBuilder(spec, iceberg.EntryContentData, path, iceberg.ParquetFile,
		map[int]any{spec.Field(0).FieldID: iceberg.Date(day)}, map[int]string{spec.Field(0).FieldID: atype.Date}, nil, int64(len(r.Rows)), size)
	if err != nil {
		return nil, fmt.Errorf("icetable: result file %s: %w", path, err)
	}
	b.LowerBoundValues(map[int][]byte{1: timeBound(r.From), 2: timeBound(r.To)}).
		UpperBoundValues(map[int][]byte{1: timeBound(r.From), 2: timeBound(r.To)})
	return b.Build(), nil
}

// ResultPublisher publishes every committed job result to the aggregates
// table of the job's lake (a coordinator.Publisher).
type ResultPublisher struct {
	// Catalog is the catalog's URI; empty: the lake's default, and the
	// results of a lake without one (not file://) are not published.
	Catalog string
	// PasswordFile holds the password of a postgres:// catalog
	// (CatalogOptions).
	PasswordFile string
	S3           lake.S3Options
}

// Name names the publisher in job records.
func (p ResultPublisher) Name() string { return "iceberg" }

// Publish publishes the result meta names, read from out.
func (p ResultPublisher) Publish(ctx context.Context, out lake.Store, meta results.Meta) error {
	return p.PublishRows(ctx, out, meta, nil)
}

// PublishRows publishes the result meta names, whose rows the caller has
// (nil: read from out).
func (p ResultPublisher) PublishRows(ctx context.Context, out lake.Store, meta results.Meta, rows []schema.Row) error {
	catURI := p.Catalog
	if catURI == "" {
		var err error
		if catURI, err = DefaultCatalogURI(meta.Lake); err != nil {
			return nil // no catalog configured for such lakes
		}
	}
	if rows == nil {
		var err error
		if rows, err = results.ReadRun(ctx, out, meta); err != nil {
			return err
		}
	}
	store, err := lake.Open(ctx, meta.Lake, p.S3)
	if err != nil {
		return fmt.Errorf("icetable: lake: %w", err)
	}
	cat, err := OpenCatalog(ctx, catURI, CatalogOptions{Props: S3Props(p.S3), PasswordFile: p.PasswordFile})
	if err != nil {
		return err
	}
	defer Close(cat)
	if _, err := EnsureAggregates(ctx, cat, store); err != nil {
		return err
	}
	return PublishResult(ctx, cat, store, Result{Job: meta.Job, Run: meta.Run, From: meta.From, To: meta.To, EventsSnapshot: meta.EventsSnapshot,
		Revision: meta.Revision, ComputedAt: meta.ComputedAt, Watermark: meta.Watermark, Final: meta.Final, Grain: meta.Grain, Rows: rows})
}

// AggregateRow is a row of the aggregates table: the result row (its
// events_snapshot 0 and revision 0 for null, a nil watermark for null,
// computed_at zero for null) and the job that computed it.
type AggregateRow struct {
	schema.Row
	Job string
}

// ReadAggregates reads every row of the aggregates table at its current
// snapshot.
func ReadAggregates(ctx context.Context, cat catalog.Catalog) ([]AggregateRow, error) {
	return readAggregates(ctx, cat)
}

// ReadAggregatesRange reads the rows of the aggregates table's current
// snapshot whose window lies in [from, to): window_start >= from and
// window_end <= to. The table's day(window_start) partitions and the
// files' bounds prune what is read.
func ReadAggregatesRange(ctx context.Context, cat catalog.Catalog, from, to time.Time) ([]AggregateRow, error) {
	filter := iceberg.NewAnd(
		iceberg.GreaterThanEqual(iceberg.Reference("window_start"), iceberg.Timestamp(from.UnixMicro())),
		iceberg.LessThan(iceberg.Reference("window_start"), iceberg.Timestamp(to.UnixMicro())))
	rows, err := readAggregates(ctx, cat, table.WithRowFilter(filter))
	if err != nil {
		return nil, err
	}
	out := rows[:0]
	for _, r := range rows {
		// The row filter may leave rows of a pruned file's other windows.
		if !r.WindowStart.Before(from) && r.WindowStart.Before(to) && !r.WindowEnd.After(to) {
			out = append(out, r)
		}
	}
	return out, nil
}

func readAggregates(ctx context.Context, cat catalog.Catalog, opts ...table.ScanOption) ([]AggregateRow, error) {
	tbl, err := cat.LoadTable(ctx, Ident(AggregatesTable))
	if err != nil {
		return nil, fmt.Errorf("icetable: %w", err)
	}
	at, err := tbl.Scan(opts...).ToArrowTable(ctx)
	if err != nil {
		return nil, fmt.Errorf("icetable: read %s: %w", AggregatesTable, err)
	}
	defer at.Release()
	tr := array.NewTableReader(at, 0)
	defer tr.Release()
	var rows []AggregateRow
	for tr.Next() {
		rec := tr.RecordBatch()
		col := func(name string) arrow.Array {
			if idx := rec.Schema().FieldIndices(name); len(idx) == 1 {
				return rec.Column(idx[0])
			}
			return nil
		}
		start, _ := col("window_start").(*array.Timestamp)
		end, _ := col("window_end").(*array.Timestamp)
		url, _ := col("url").(*array.String)
		country, _ := col("country").(*array.String)
		clicks, _ := col("clicks").(*array.Int64)
		users, _ := col("unique_users").(*array.Int64)
		total, _ := col("total_time_spent_s").(*array.Float64)
		samples, _ := col("time_spent_samples").(*array.Int64)
		avg, _ := col("avg_time_spent_s").(*array.Float64)
		job, _ := col("job_id").(*array.String)
		snap, _ := col("events_snapshot").(*array.Int64) // nil in a table made before the column
		rev, _ := col("revision").(*array.Int64)
		computed, _ := col("computed_at").(*array.Timestamp)
		wm, _ := col("watermark").(*array.Timestamp)
		final, _ := col("final").(*array.Boolean)
		bots, _ := col("bot_clicks").(*array.Int64) // likewise
		grain, _ := col("grain").(*array.String)    // likewise
		approx, _ := col("approximate").(*array.Boolean)
		if start == nil || end == nil || url == nil || country == nil || clicks == nil || users == nil ||
			total == nil || samples == nil || avg == nil || job == nil {
			return nil, fmt.Errorf("icetable: read %s: unexpected arrow schema %s", AggregatesTable, rec.Schema())
		}
		for i := range int(rec.NumRows()) {
			r := AggregateRow{Row: schema.Row{
				WindowStart: time.UnixMicro(int64(start.Value(i))).UTC(), WindowEnd: time.UnixMicro(int64(end.Value(i))).UTC(),
				URL: url.Value(i), Country: country.Value(i), Clicks: clicks.Value(i), UniqueUsers: users.Value(i),
				TotalTimeSpentS: total.Value(i), TimeSpentSamples: samples.Value(i),
			}, Job: job.Value(i)}
			if avg.IsValid(i) {
				v := avg.Value(i)
				r.AvgTimeSpentS = &v
			}
			if snap != nil && snap.IsValid(i) {
				r.EventsSnapshot = snap.Value(i)
			}
			if rev != nil && rev.IsValid(i) {
				r.Revision = rev.Value(i)
			}
			if computed != nil && computed.IsValid(i) {
				r.ComputedAt = time.UnixMicro(int64(computed.Value(i))).UTC()
			}
			if wm != nil && wm.IsValid(i) {
				t := time.UnixMicro(int64(wm.Value(i))).UTC()
				r.Watermark = &t
			}
			if final != nil && final.IsValid(i) {
				r.Final = final.Value(i)
			}
			if bots != nil && bots.IsValid(i) {
				r.BotClicks = bots.Value(i)
			}
			if grain != nil && grain.IsValid(i) {
				r.Grain = grain.Value(i)
			}
			if approx != nil && approx.IsValid(i) {
				r.Approximate = approx.Value(i)
			}
			rows = append(rows, r)
		}
	}
	return rows, nil
}

// ReadEvents reads every event of the events table at its current
// snapshot (tests and small tables: all of it in memory).
func ReadEvents(ctx context.Context, cat catalog.Catalog) ([]event.Event, error) {
	tbl, err := cat.LoadTable(ctx, Ident(EventsTable))
	if err != nil {
		return nil, fmt.Errorf("icetable: %w", err)
	}
	fields := []string{"user_id", "ts", "url", "country"}
	_, withBots := tbl.Schema().FindFieldByName("is_bot") // not in a table from before the field
	if withBots {
		fields = append(fields, "is_bot")
	}
	at, err := tbl.Scan(table.WithSelectedFields(fields...)).ToArrowTable(ctx)
	if err != nil {
		return nil, fmt.Errorf("icetable: read %s: %w", EventsTable, err)
	}
	defer at.Release()
	tr := array.NewTableReader(at, 0)
	defer tr.Release()
	var events []event.Event
	for tr.Next() {
		rec := tr.RecordBatch()
		user, _ := rec.Column(0).(*array.String)
		ts, _ := rec.Column(1).(*array.Timestamp)
		url, _ := rec.Column(2).(*array.String)
		country, _ := rec.Column(3).(*array.String)
		var isBot *array.Boolean
		if withBots {
			isBot, _ = rec.Column(4).(*array.Boolean)
		}
		if user == nil || ts == nil || url == nil || country == nil || (withBots && isBot == nil) {
			return nil, fmt.Errorf("icetable: read %s: unexpected arrow schema %s", EventsTable, rec.Schema())
		}
		for i := range int(rec.NumRows()) {
			e := event.Event{UserID: user.Value(i), Timestamp: int64(ts.Value(i)) / 1000,
				URL: url.Value(i), Country: country.Value(i)}
			if isBot != nil && isBot.IsValid(i) {
				e.IsBot = isBot.Value(i)
			}
			events = append(events, e)
		}
	}
	return events, nil
}
