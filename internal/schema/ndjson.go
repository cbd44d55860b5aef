package schema

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// WriteNDJSON writes rows as newline-delimited JSON, one object a line,
// with times in UTC RFC 3339, a null avg_time_spent_s when a row has no
// time-spent samples and a null watermark when it is unknown.
func WriteNDJSON(w io.Writer, rows []Row) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for i := range rows {
		r := rows[i]
		r.WindowStart, r.WindowEnd, r.ComputedAt = r.WindowStart.UTC(), r.WindowEnd.UTC(), r.ComputedAt.UTC()
		if r.Watermark != nil {
			wm := r.Watermark.UTC()
			r.Watermark = &wm
		}
		if err := enc.Encode(&r); err != nil {
			return fmt.Errorf("schema: write ndjson: row %d: %w", i, err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("schema: write ndjson: %w", err)
	}
	return nil
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
