package schema

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/dataco/clickstream/internal/jsonstr"
)

// WriteNDJSON writes rows as newline-delimited JSON, one object a line,
// with times in UTC RFC 3339, a null avg_time_spent_s when a row has no
// time-spent samples and a null watermark when it is unknown: the bytes
// encoding/json's Encoder writes for each Row (with HTML escaping off),
// appended field by field without reflection (AppendJSON).
func WriteNDJSON(w io.Writer, rows []Row) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	var line []byte
	for i := range rows {
		var err error
		if line, err = rows[i].AppendJSON(line[:0]); err != nil {
			return fmt.Errorf("schema: write ndjson: row %d: %w", i, err)
		}
		if _, err := bw.Write(append(line, '\n')); err != nil {
			return fmt.Errorf("schema: write ndjson: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("schema: write ndjson: %w", err)
	}
	return nil
}

// AppendNDJSON appends to dst what WriteNDJSON writes. It grows dst once,
// by the first row's size an eighth over for each row: growing tens of MB
// by doubling clears and copies them again and again.
func AppendNDJSON(dst []byte, rows []Row) ([]byte, error) {
	for i := range rows {
		start := len(dst)
		var err error
		if dst, err = rows[i].AppendJSON(dst); err != nil {
			return dst, fmt.Errorf("schema: write ndjson: row %d: %w", i, err)
		}
		dst = append(dst, '\n')
		if i == 0 {
			n := len(dst) - start
			dst = slices.Grow(dst, (len(rows)-1)*(n+n/8))
		}
	}
	return dst, nil
}

// AppendJSON appends r as one JSON object to b, in the order and the
// form of encoding/json (field names from the struct tags, floats as
// encoding/json formats them, times in UTC RFC 3339 with nanoseconds,
// nil pointers as null, strings escaped as with HTML escaping off). A
// float that JSON cannot hold (NaN, ±Inf) or a time outside years 0 to
// 9999 is an error, as it is for encoding/json.
func (r *Row) AppendJSON(b []byte) ([]byte, error) {
	var err error
	b = append(b, `{"window_start":`...)
	if b, err = appendTime(b, r.WindowStart); err != nil {
		return b, err
	}
	b = append(b, `,"window_end":`...)
	if b, err = appendTime(b, r.WindowEnd); err != nil {
		return b, err
	}
	b = append(b, `,"url":`...)
	b = jsonstr.Append(b, r.URL)
	b = append(b, `,"country":`...)
	b = jsonstr.Append(b, r.Country)
	b = append(b, `,"clicks":`...)
	b = strconv.AppendInt(b, r.Clicks, 10)
	b = append(b, `,"unique_users":`...)
	b = strconv.AppendInt(b, r.UniqueUsers, 10)
	b = append(b, `,"total_time_spent_s":`...)
	if b, err = appendFloat(b, r.TotalTimeSpentS); err != nil {
		return b, err
	}
	b = append(b, `,"time_spent_samples":`...)
	b = strconv.AppendInt(b, r.TimeSpentSamples, 10)
	b = append(b, `,"avg_time_spent_s":`...)
	if r.AvgTimeSpentS == nil {
		b = append(b, "null"...)
	} else if b, err = appendFloat(b, *r.AvgTimeSpentS); err != nil {
		return b, err
	}
	b = append(b, `,"bot_clicks":`...)
	b = strconv.AppendInt(b, r.BotClicks, 10)
	b = append(b, `,"grain":`...)
	b = jsonstr.Append(b, r.Grain)
	b = append(b, `,"approximate":`...)
	b = strconv.AppendBool(b, r.Approximate)
	b = append(b, `,"revision":`...)
	b = strconv.AppendInt(b, r.Revision, 10)
	b = append(b, `,"computed_at":`...)
	if b, err = appendTime(b, r.ComputedAt); err != nil {
		return b, err
	}
	b = append(b, `,"watermark":`...)
	if r.Watermark == nil {
		b = append(b, "null"...)
	} else if b, err = appendTime(b, *r.Watermark); err != nil {
		return b, err
	}
	b = append(b, `,"events_snapshot":`...)
	b = strconv.AppendInt(b, r.EventsSnapshot, 10)
	b = append(b, `,"final":`...)
	b = strconv.AppendBool(b, r.Final)
	return append(b, '}'), nil
}

// appendTime appends t in UTC as time.Time's MarshalJSON does.
func appendTime(b []byte, t time.Time) ([]byte, error) {
	t = t.UTC()
	if y := t.Year(); y < 0 || y > 9999 {
		return b, fmt.Errorf("schema: time %v: year outside [0,9999]", t)
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"'), nil
}

// appendFloat appends f as encoding/json formats a float64: the shortest
// decimal that reads back as f, in exponent form only below 1e-6 or from
// 1e21 on, with a two-digit exponent shortened to one.
func appendFloat(b []byte, f float64) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return b, fmt.Errorf("schema: unsupported float %v", f)
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// e-09 becomes e-9.
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, nil
}

// ReadNDJSON reads rows written by WriteNDJSON. Unknown fields are ignored.
func ReadNDJSON(r io.Reader) ([]Row, error) {
	dec := json.NewDecoder(bufio.NewReader(r))
	var rows []Row
	for {
		var row Row
		err := dec.Decode(&row)
		if errors.Is(err, io.EOF) {
			return rows, nil
		}
		if err != nil {
			return rows, fmt.Errorf("schema: read ndjson: row %d: %w", len(rows), err)
		}
		rows = append(rows, row)
	}
}
