package schema

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
)

// WriteCSV writes rows as CSV (RFC 4180): a header line (Header), then a
// record a row, its fields in the order of Columns.
func WriteCSV(w io.Writer, rows []Row) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(Header()); err != nil {
		return fmt.Errorf("schema: write csv: %w", err)
	}
	rec := make([]string, len(Columns))
	for i := range rows {
		for j := range Columns {
			rec[j] = Columns[j].format(&rows[i])
		}
		if err := cw.Write(rec); err != nil {
			return fmt.Errorf("schema: write csv: row %d: %w", i, err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("schema: write csv: %w", err)
	}
	return nil
}

// ReadCSV reads rows written by WriteCSV. Times are returned in UTC. Empty
// input is no rows. The header must be Header, or a prefix of it: a file
// written before the trailing columns were added (columns are only ever
// appended), whose rows read with those columns' zero values (null for a
// nullable one). Any other header is an error.
func ReadCSV(r io.Reader) ([]Row, error) {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	head, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("schema: read csv header: %w", err)
	}
	if len(head) > len(Columns) {
		return nil, fmt.Errorf("schema: read csv: %d columns, want at most %d (%q is not a column)", len(head), len(Columns), head[len(Columns)])
	}
	for i := range head {
		if head[i] != Columns[i].Name {
			return nil, fmt.Errorf("schema: read csv: column %d is %q, want %q", i, head[i], Columns[i].Name)
		}
	}
	cols := Columns[:len(head)]
	cr.FieldsPerRecord = len(cols)
	var rows []Row
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return rows, nil
		}
		if err != nil {
			return rows, fmt.Errorf("schema: read csv: %w", err)
		}
		var row Row
		var errs []error
		for j := range cols {
			errs = append(errs, cols[j].parse(&row, rec[j]))
		}
		if err := errors.Join(errs...); err != nil {
			return rows, fmt.Errorf("schema: read csv: row %d: %w", len(rows), err)
		}
		rows = append(rows, row)
	}
}
