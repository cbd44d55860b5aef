package icetable

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"
)

// Orphans is what RemoveOrphans found and did, over all tables.
type Orphans struct {
	Files   int   // files no snapshot of their table references, older than the minimum age
	Bytes   int64 // their size
	Deleted int   // of them deleted
	Listed  []string
}

// RemoveOrphans deletes, for every table of the lake, the files under the
// table's metadata/ and data/ folders that none of its snapshots
// references and that are older than minAge: manifests and manifest lists
// of expired snapshots of the events table (whose expiry deletes nothing,
// see ExpireSnapshots), files a later compaction replaced once no
// snapshot holds them, and files of commits that failed or lost their
// race. minAge must exceed the time a commit takes from writing its first
// file to swapping the catalog pointer, so that no commit under way loses
// a file; the lake's own data files (the events table's hour=… folders,
// which its manifests name) are never considered: vacuum judges those.
// With dryRun nothing is deleted.
func RemoveOrphans(ctx context.Context, cat catalog.Catalog, minAge time.Duration, dryRun bool) (Orphans, error) {
	var out Orphans
	if minAge <= 0 {
		return out, fmt.Errorf("icetable: remove orphan files: minimum age %v must be positive", minAge)
	}
	for _, name := range []string{EventsTable, RejectedTable, AggregatesTable} {
		tbl, err := cat.LoadTable(ctx, Ident(name))
		if errors.Is(err, catalog.ErrNoSuchTable) {
			continue
		}
		if err != nil {
			return out, fmt.Errorf("icetable: remove orphan files of %s: %w", name, err)
		}
		for _, folder := range []string{"metadata", "data"} {
			if err := removeOrphansUnder(ctx, tbl, strings.TrimSuffix(tbl.Location(), "/")+"/"+folder, minAge, dryRun, &out); err != nil {
				return out, fmt.Errorf("icetable: remove orphan files of %s: %w", name, err)
			}
		}
	}
	return out, nil
}

// VacuumTables is the tables' part of vacuum: it expires the snapshots
// of every table older than retention (unless dryRun), then removes the
// files none of the remaining snapshots references (RemoveOrphans).
func VacuumTables(ctx context.Context, cat catalog.Catalog, retention, minAge time.Duration, dryRun bool) (Orphans, error) {
	if !dryRun {
		if err := ExpireTables(ctx, cat, retention); err != nil {
			return Orphans{}, err
		}
	}
	return RemoveOrphans(ctx, cat, minAge, dryRun)
}

func removeOrphansUnder(ctx context.Context, tbl *table.Table, location string, minAge time.Duration, dryRun bool, out *Orphans) error {
	res, err := tbl.DeleteOrphanFiles(ctx, table.WithLocation(location), table.WithFilesOlderThan(minAge), table.WithDryRun(dryRun))
	if errors.Is(err, fs.ErrNotExist) {
		return nil // the folder was never written (no compaction yet)
	}
	out.Files += len(res.OrphanFileLocations)
	out.Bytes += res.TotalSizeBytes
	out.Deleted += len(res.DeletedFiles)
	out.Listed = append(out.Listed, res.OrphanFileLocations...)
	return err
}
