package aggregate

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
)

// CSVHeader is the header line WriteCSV writes, in column order.
var CSVHeader = []string{
	"window_start", "window_end", "url", "country", "clicks", "unique_users",
	"total_time_spent_s", "time_spent_samples", "avg_time_spent_s",
}

// WriteNDJSON writes rows as newline-delimited JSON, one object a line,
// with window times in UTC RFC 3339 and a null avg_time_spent_s when a row
// has no time-spent samples.
func WriteNDJSON(w io.Writer, rows []ResultRow) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for i := range rows {
		r := rows[i]
		r.WindowStart, r.WindowEnd = r.WindowStart.UTC(), r.WindowEnd.UTC()
		if err := enc.Encode(&r); err != nil {
			return fmt.Errorf("aggregate: write ndjson: row %d: %w", i, err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("aggregate: write ndjson: %w", err)
	}
	return nil
}

// WriteCSV writes rows as CSV (RFC 4180) after a header line (CSVHeader).
// Times are UTC RFC 3339, seconds are decimal without exponent, and a null
// average is an empty field.
func WriteCSV(w io.Writer, rows []ResultRow) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVHeader); err != nil {
		return fmt.Errorf("aggregate: write csv: %w", err)
	}
	rec := make([]string, len(CSVHeader))
	for i := range rows {
		r := &rows[i]
		rec[0] = r.WindowStart.UTC().Format(time.RFC3339Nano)
		rec[1] = r.WindowEnd.UTC().Format(time.RFC3339Nano)
		rec[2] = r.URL
		rec[3] = r.Country
		rec[4] = strconv.FormatInt(r.Clicks, 10)
		rec[5] = strconv.FormatInt(r.UniqueUsers, 10)
		rec[6] = strconv.FormatFloat(r.TotalTimeSpentS, 'f', -1, 64)
		rec[7] = strconv.FormatInt(r.TimeSpentSamples, 10)
		rec[8] = ""
		if r.AvgTimeSpentS != nil {
			rec[8] = strconv.FormatFloat(*r.AvgTimeSpentS, 'f', -1, 64)
		}
		if err := cw.Write(rec); err != nil {
			return fmt.Errorf("aggregate: write csv: row %d: %w", i, err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("aggregate: write csv: %w", err)
	}
	return nil
}

// ReadNDJSON reads rows written by WriteNDJSON. Unknown fields are ignored.
func ReadNDJSON(r io.Reader) ([]ResultRow, error) {
	dec := json.NewDecoder(bufio.NewReader(r))
	var rows []ResultRow
	for {
		var row ResultRow
		err := dec.Decode(&row)
		if errors.Is(err, io.EOF) {
			return rows, nil
		}
		if err != nil {
			return rows, fmt.Errorf("aggregate: read ndjson: row %d: %w", len(rows), err)
		}
		rows = append(rows, row)
	}
}
