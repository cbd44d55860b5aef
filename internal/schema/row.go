package schema

import (
	"strconv"
	"time"
)

// Row is one output row of a job: the final aggregate of a window, URL
// and country. Its JSON keys are the names of Columns, in the same order.
type Row struct {
	WindowStart      time.Time `json:"window_start"`
	WindowEnd        time.Time `json:"window_end"`
	URL              string    `json:"url"`
	Country          string    `json:"country"`
	Clicks           int64     `json:"clicks"`
	UniqueUsers      int64     `json:"unique_users"`
	TotalTimeSpentS  float64   `json:"total_time_spent_s"`
	TimeSpentSamples int64     `json:"time_spent_samples"`
	// AvgTimeSpentS is TotalTimeSpentS / TimeSpentSamples, nil (JSON null)
	// when there are no samples.
	AvgTimeSpentS *float64 `json:"avg_time_spent_s"`
	// BotClicks counts the window's events of bots (user agents of crawlers
	// and automation tools), which the columns above leave out; zero when
	// the job folded bots into them (--include-bots).
	BotClicks int64 `json:"bot_clicks"`

	// Grain is what the row aggregates: GrainWindow for a job's window,
	// GrainDay, GrainWeek or GrainMonth for a roll-up of windows, whose
	// rows also cover all countries of a URL (Country == All), all URLs of
	// a country (URL == All), or everything.
	Grain string `json:"grain"`
	// Approximate: UniqueUsers is a sketch's estimate (a roll-up's key
	// beyond its exact limit), not an exact count.
	Approximate bool `json:"approximate"`

	// How final the row is: the provenance of the result it belongs to,
	// the same on every row of a result (results.Commit sets them from
	// its results.Meta).

	// Revision is the run number of the row's result in its output: 1 for
	// the first result committed there, one more for each recomputation
	// (a late re-run, a backfill). Finalizing a result keeps it.
	Revision int64 `json:"revision"`
	// ComputedAt is when the result's rows were computed (committed the
	// first time with this revision).
	ComputedAt time.Time `json:"computed_at"`
	// Watermark is the ingest watermark the result was last committed
	// with (computed, or finalized); nil (JSON null) when the job did not
	// know one (a job submitted by hand).
	Watermark *time.Time `json:"watermark"`
	// EventsSnapshot is the snapshot of the lake's Iceberg events table
	// the result was computed from; 0 when the job read the lake's
	// manifests instead.
	EventsSnapshot int64 `json:"events_snapshot"`
	// Final: the watermark had passed the window's end plus the session
	// timeout and the allowed lateness, so no more events are expected;
	// false for a provisional (early) result. Late data that still comes
	// makes a new revision.
	Final bool `json:"final"`
}

// Grains of rows.
const (
	GrainWindow = "window"
	GrainDay    = "day"
	GrainWeek   = "week"
	GrainMonth  = "month"
)

// All is the URL or country of a roll-up row over all URLs or all
// countries: the empty string, which no event carries (the event parser
// rejects an empty url and reads a blank country as "unknown"), so it
// never collides with a real key.
const All = ""

// Columns are the fields of Row, in order: the columns of a CSV result
// file and the result fields of an Elasticsearch document.
var Columns = []Column{
	column("window_start", timeKind, func(r *Row) *time.Time { return &r.WindowStart }),
	column("window_end", timeKind, func(r *Row) *time.Time { return &r.WindowEnd }),
	// url: exact (aggregations, term queries) with a full-text sub-field
	// for search.
	column("url", keywordKind, func(r *Row) *string { return &r.URL }).withESText(),
	column("country", keywordKind, func(r *Row) *string { return &r.Country }),
	column("clicks", intKind, func(r *Row) *int64 { return &r.Clicks }),
	column("unique_users", intKind, func(r *Row) *int64 { return &r.UniqueUsers }),
	column("total_time_spent_s", floatKind, func(r *Row) *float64 { return &r.TotalTimeSpentS }),
	column("time_spent_samples", intKind, func(r *Row) *int64 { return &r.TimeSpentSamples }),
	column("avg_time_spent_s", optionalFloatKind, func(r *Row) **float64 { return &r.AvgTimeSpentS }),
	column("bot_clicks", intKind, func(r *Row) *int64 { return &r.BotClicks }),
	column("grain", keywordKind, func(r *Row) *string { return &r.Grain }),
	column("approximate", boolKind, func(r *Row) *bool { return &r.Approximate }),
	// Provenance: how final the row is (see Row). Not part of what a row
	// counts: EqualMetrics ignores them.
	column("revision", intKind, func(r *Row) *int64 { return &r.Revision }).provenance(),
	column("computed_at", timeKind, func(r *Row) *time.Time { return &r.ComputedAt }).provenance(),
	column("watermark", optionalTimeKind, func(r *Row) **time.Time { return &r.Watermark }).provenance(),
	column("events_snapshot", intKind, func(r *Row) *int64 { return &r.EventsSnapshot }).provenance(),
	column("final", boolKind, func(r *Row) *bool { return &r.Final }).provenance(),
}

// A Column is one field of Row.
type Column struct {
	// Name is the field's CSV header, JSON key and Elasticsearch field.
	Name string
	// ESType is the field's Elasticsearch mapping type.
	ESType string
	// ESText adds to a keyword field the sub-field "<Name>.text" of type
	// text, for full-text search.
	ESText bool
	// Provenance marks a column that tells how final the row's result is
	// (revision, computed_at, …) rather than what it counts.
	Provenance bool

	format func(*Row) string
	parse  func(*Row, string) error
	value  func(*Row) any
	equal  func(a, b *Row) bool
}

// Value returns the column's field of r: a time.Time, a *time.Time, a
// string, an int64, a float64, a *float64 or a bool (nil pointers: null).
func (c Column) Value(r *Row) any { return c.value(r) }

func (c Column) withESText() Column {
	c.ESText = true
	return c
}

func (c Column) provenance() Column {
	c.Provenance = true
	return c
}

// Header returns the names of Columns, in order: the header line of a CSV
// result file.
func Header() []string {
	h := make([]string, len(Columns))
	for i := range Columns {
		h[i] = Columns[i].Name
	}
	return h
}

// Equal reports whether a and b hold the same values: times as instants,
// averages both null or equal.
func Equal(a, b Row) bool {
	for i := range Columns {
		if !Columns[i].equal(&a, &b) {
			return false
		}
	}
	return true
}

// EqualMetrics reports whether a and b hold the same window, key and
// metrics, whatever their provenance columns say: the same aggregate,
// computed at another time or by another run.
func EqualMetrics(a, b Row) bool {
	for i := range Columns {
		if !Columns[i].Provenance && !Columns[i].equal(&a, &b) {
			return false
		}
	}
	return true
}

// Metrics returns r without its provenance (revision, computed_at,
// watermark, events_snapshot, final: zero): what the row counts, whichever
// run computed it. Rows of two runs over the same input have equal Metrics.
func (r Row) Metrics() Row {
	r.Revision, r.ComputedAt, r.Watermark, r.EventsSnapshot, r.Final = 0, time.Time{}, nil, 0, false
	return r
}

// column is the Column of the field of Row that field points to, of kind k.
func column[T any](name string, k kind[T], field func(*Row) *T) Column {
	return Column{
		Name:   name,
		ESType: k.esType,
		format: func(r *Row) string { return k.format(*field(r)) },
		parse: func(r *Row, s string) error {
			v, err := k.parse(s)
			*field(r) = v
			return err
		},
		value: func(r *Row) any { return *field(r) },
		equal: func(a, b *Row) bool { return k.equal(*field(a), *field(b)) },
	}
}

// A kind is how values of a Go type are written in a CSV field and mapped
// in Elasticsearch.
type kind[T any] struct {
	esType string
	format func(T) string
	parse  func(string) (T, error)
	equal  func(a, b T) bool
}

// Times are UTC RFC 3339 with as many fractional digits as needed, numbers
// are decimal without exponent, booleans are true and false, and a null
// (an average, a watermark) is an empty field.
var (
	timeKind = kind[time.Time]{
		esType: "date",
		format: func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) },
		parse: func(s string) (time.Time, error) {
			t, err := time.Parse(time.RFC3339Nano, s)
			return t.UTC(), err
		},
		equal: time.Time.Equal,
	}
	optionalTimeKind = kind[*time.Time]{
		esType: "date",
		format: func(t *time.Time) string {
			if t == nil {
				return ""
			}
			return t.UTC().Format(time.RFC3339Nano)
		},
		parse: func(s string) (*time.Time, error) {
			if s == "" {
				return nil, nil
			}
			t, err := time.Parse(time.RFC3339Nano, s)
			t = t.UTC()
			return &t, err
		},
		equal: func(a, b *time.Time) bool { return (a == nil) == (b == nil) && (a == nil || a.Equal(*b)) },
	}
	boolKind = kind[bool]{
		esType: "boolean",
		format: strconv.FormatBool,
		parse:  strconv.ParseBool,
		equal:  equal[bool],
	}
	keywordKind = kind[string]{
		esType: "keyword",
		format: func(s string) string { return s },
		parse:  func(s string) (string, error) { return s, nil },
		equal:  equal[string],
	}
	intKind = kind[int64]{
		esType: "long",
		format: func(n int64) string { return strconv.FormatInt(n, 10) },
		parse:  func(s string) (int64, error) { return strconv.ParseInt(s, 10, 64) },
		equal:  equal[int64],
	}
	floatKind = kind[float64]{
		esType: "double",
		format: formatFloat,
		parse:  parseFloat,
		equal:  equal[float64],
	}
	optionalFloatKind = kind[*float64]{
		esType: "double",
		format: func(f *float64) string {
			if f == nil {
				return ""
			}
			return formatFloat(*f)
		},
		parse: func(s string) (*float64, error) {
			if s == "" {
				return nil, nil
			}
			f, err := parseFloat(s)
			return &f, err
		},
		equal: func(a, b *float64) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) },
	}
)

func formatFloat(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

func parseFloat(s string) (float64, error) { return strconv.ParseFloat(s, 64) }

func equal[T comparable](a, b T) bool { return a == b }
