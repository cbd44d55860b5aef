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

// compaction is the leader's periodic compaction of the lake's events
// table; ok is false if the lake has no catalog (none given, not file://).
func compaction(lakeURI, catalogURI, catalogPW string, s3 lake.S3Options, every time.Duration) (coordinator.Maintenance, bool) {
	if lakeURI == "" || catalogURI == icetable.NoCatalog {
		return coordinator.Maintenance{}, false
	}
	if catalogURI == "" {
		var err error
		if catalogURI, err = icetable.DefaultCatalogURI(lakeURI); err != nil {
			slog.Info("the lake's Iceberg table is not compacted: no --catalog", "lake", lakeURI)
			return coordinator.Maintenance{}, false
		}
	}
	return coordinator.Maintenance{Name: "iceberg-compaction", Every: every, Run: func(ctx context.Context, log *slog.Logger) error {
		if !icetable.CatalogExists(catalogURI) {
			return nil // no table published yet, and no catalog to create here
		}
		store, err := lake.Open(ctx, lakeURI, s3)
		if err != nil {
			return err
		}
		cat, err := icetable.OpenCatalog(ctx, catalogURI, icetable.CatalogOptions{Props: icetable.S3Props(s3), PasswordFile: catalogPW})
		if err != nil {
			return err
		}
		defer icetable.Close(cat)
		if ok, err := cat.CheckTableExists(ctx, icetable.Ident(icetable.EventsTable)); err != nil || !ok {
			return err // no table yet: nothing published to compact
		}
		for {
			res, err := icetable.Compact(ctx, cat, store, icetable.CompactOptions{ClosedBefore: time.Now().Add(-compactClosedAfter)})
			if res.Partitions > 0 {
				log.Info("compacted the events table", "partitions", res.Partitions, "files", res.FilesBefore, "events", res.Events, "bytes", res.Bytes)
			}
			if err != nil || !res.More {
				return err
			}
		}
	}}, true
}
