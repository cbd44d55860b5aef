package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/dataco/clickstream/coordinator"
	"github.com/dataco/clickstream/internal/icetable"
	"github.com/dataco/clickstream/internal/lake"
)

func newCompactCmd() *cobra.Command {
	var (
		tf            tableFlags
		closedAfter   time.Duration
		maxPartitions int
	)
	cmd := &cobra.Command{
		Use:   "compact --lake URI [--catalog URI] [--closed-after D]",
		Short: "rewrite the small files of the Iceberg events table's closed hours into one file per partition",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if closedAfter < 0 || maxPartitions < 0 {
				return usageErrorf("--closed-after and --max-partitions must not be negative")
			}
			ctx := cmd.Context()
			store, cat, err := tf.open(ctx)
			if err != nil {
				return err
			}
			defer icetable.Close(cat)
			closedBefore := time.Now().Add(-closedAfter)
			for {
				res, err := icetable.Compact(ctx, cat, store, icetable.CompactOptions{ClosedBefore: closedBefore, MaxPartitions: maxPartitions})
				fmt.Fprintf(cmd.OutOrStdout(), "compact: %d partitions, %d files into %d, %d events, %d bytes\n",
					res.Partitions, res.FilesBefore, res.Partitions, res.Events, res.Bytes)
				if err != nil || !res.More {
					return err
				}
			}
		},
	}
	fs := cmd.Flags()
	tf.add(fs)
	fs.DurationVar(&closedAfter, "closed-after", time.Hour, "compact only the hours that ended at least this long ago (late events may still arrive before)")
	fs.IntVar(&maxPartitions, "max-partitions", icetable.DefaultMaxCompactPartitions, "partitions rewritten per table commit")
	return cmd
}

// compactClosedAfter is how long after an hour ends the leader's
// compaction takes it as closed.
const compactClosedAfter = time.Hour

// tableUpkeep configures the leader's periodic upkeep of its lake's
// Iceberg tables.
type tableUpkeep struct {
	lake, catalog, catalogPW string
	s3                       lake.S3Options
	every                    time.Duration
	// retention: snapshots older than this are expired; minAge: files no
	// snapshot references are deleted once this old (as vacuum's).
	retention, minAge time.Duration
}

// maintenance returns the leader's upkeep of the lake's Iceberg tables:
// compacting the events table's closed hours, expiring old snapshots and
// deleting the files no snapshot references. ok is false if the lake has
// no catalog (none given, not file://).
func (u tableUpkeep) maintenance() (m coordinator.Maintenance, ok bool) {
	if u.lake == "" || u.catalog == icetable.NoCatalog {
		return m, false
	}
	catalogURI := u.catalog
	if catalogURI == "" {
		var err error
		if catalogURI, err = icetable.DefaultCatalogURI(u.lake); err != nil {
			slog.Info("the lake's Iceberg tables are not maintained: no --catalog", "lake", u.lake)
			return m, false
		}
	}
	return coordinator.Maintenance{Name: "iceberg-maintenance", Every: u.every, Run: func(ctx context.Context, log *slog.Logger) error {
		if !icetable.CatalogExists(catalogURI) {
			return nil // no table published yet, and no catalog to create here
		}
		store, err := lake.Open(ctx, u.lake, u.s3)
		if err != nil {
			return err
		}
		cat, err := icetable.OpenCatalog(ctx, catalogURI, icetable.CatalogOptions{Props: icetable.S3Props(u.s3), PasswordFile: u.catalogPW})
		if err != nil {
			return err
		}
		defer icetable.Close(cat)
		if ok, err := cat.CheckTableExists(ctx, icetable.Ident(icetable.EventsTable)); err != nil || !ok {
			return err // no table yet: nothing published to maintain
		}
		for {
			res, err := icetable.Compact(ctx, cat, store, icetable.CompactOptions{ClosedBefore: time.Now().Add(-compactClosedAfter)})
			if res.Partitions > 0 {
				log.Info("compacted the events table", "partitions", res.Partitions, "files", res.FilesBefore, "events", res.Events, "bytes", res.Bytes)
			}
			if err != nil {
				return err
			}
			if !res.More {
				break
			}
		}
		orph, err := icetable.VacuumTables(ctx, cat, u.retention, u.minAge, false)
		if orph.Deleted > 0 {
			log.Info("deleted the tables' files no snapshot references", "files", orph.Deleted, "bytes", orph.Bytes)
		}
		return err
	}}, true
}
