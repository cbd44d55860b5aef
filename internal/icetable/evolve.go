// Schema evolution: a table made by an older version gets the columns a
// newer one appended.

package icetable

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"
)

// ErrSchemaConflict reports a table whose schema cannot be evolved into
// the one this version writes by adding optional columns: a field of
// another name or type under a wanted id, a wanted field under another id,
// a missing required field, or ids the table would assign otherwise.
var ErrSchemaConflict = errors.New("icetable: table schema conflicts with this version's")

// EvolveSchema adds to the table name the fields of want it lacks, in one
// schema update committed in a table transaction, and returns the table as
// it is then. Only additive, backward-compatible changes: every missing
// field must be optional (rows written before read null), and the missing
// fields must be want's last ids, in order, just past the table's last
// column id, because Iceberg assigns an added column the next id and the
// data files this package writes carry want's ids. Anything else is an
// error matching ErrSchemaConflict and changes nothing. A table that holds
// every field of want is returned as it is; a commit lost to a concurrent
// evolution (or any other commit) is retried on the table re-read.
//
// To append a column to a table this package writes: add it to the table's
// schema function (AggregatesSchema, …) as an optional field with the next
// id, to the Parquet row type with that id, and let the table's Ensure…
// call EvolveSchema.
func EvolveSchema(ctx context.Context, cat catalog.Catalog, name string, want *iceberg.Schema) (*table.Table, error) {
	ident := Ident(name)
	for attempt := range publishAttempts {
		tbl, err := cat.LoadTable(ctx, ident)
		if err != nil {
			return nil, fmt.Errorf("icetable: evolve %s: %w", name, err)
		}
		missing, err := missingFields(tbl.Schema(), want, tbl.Metadata().LastColumnID())
		if err != nil {
			return nil, fmt.Errorf("%w: table %s: %w", ErrSchemaConflict, name, err)
		}
		if len(missing) == 0 {
			return tbl, nil
		}
		tx := tbl.NewTransaction()
		up := tx.UpdateSchema(true, false)
		for _, f := range missing {
			up.AddColumn([]string{f.Name}, f.Type, f.Doc, false, nil)
		}
		if err := up.Commit(); err != nil {
			return nil, fmt.Errorf("icetable: evolve %s: %w", name, err)
		}
		next, err := tx.Commit(ctx)
		if err != nil {
			if err := sleepCtx(ctx, backoff(attempt)); err != nil {
				return nil, err
			}
			continue // re-read: another process may have evolved it
		}
		if _, err := missingFields(next.Schema(), want, next.Metadata().LastColumnID()); err != nil {
			return nil, fmt.Errorf("%w: table %s after adding %s: %w", ErrSchemaConflict, name, fieldNames(missing), err)
		}
		return next, nil
	}
	return nil, fmt.Errorf("icetable: evolve %s: %d commits lost to concurrent writers in a row", name, publishAttempts)
}

// missingFields returns the top-level fields of want that have lacks, in
// id order, provided adding them gives the ids want has: have's other
// fields are want's (same id, name and type), and the missing ones are
// optional and numbered lastID+1, lastID+2, … Fields of have that want
// lacks are left alone (a newer version's).
func missingFields(have, want *iceberg.Schema, lastID int) ([]iceberg.NestedField, error) {
	var missing []iceberg.NestedField
	for _, f := range want.Fields() {
		g, byID := have.FindFieldByID(f.ID)
		_, byName := have.FindFieldByName(f.Name)
		switch {
		case byID && (g.Name != f.Name || !g.Type.Equals(f.Type)):
			return nil, fmt.Errorf("field %d is %s %s, want %s %s", f.ID, g.Name, g.Type, f.Name, f.Type)
		case byID:
		case byName:
			return nil, fmt.Errorf("field %s has another id than %d", f.Name, f.ID)
		case f.Required:
			return nil, fmt.Errorf("required field %d %s is missing (only optional fields are added)", f.ID, f.Name)
		default:
			missing = append(missing, f)
		}
	}
	slices.SortFunc(missing, func(a, b iceberg.NestedField) int { return a.ID - b.ID })
	for i, f := range missing {
		if f.ID != lastID+1+i {
			return nil, fmt.Errorf("field %d %s would be added as field %d (the table's last column id is %d)", f.ID, f.Name, lastID+1+i, lastID)
		}
	}
	return missing, nil
}

func fieldNames(fs []iceberg.NestedField) string {
	names := make([]string, len(fs))
	for i, f := range fs {
		names[i] = f.Name
	}
	return strings.Join(names, ", ")
}
