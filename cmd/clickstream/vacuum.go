package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/dataco/clickstream/internal/icetable"
	"github.com/dataco/clickstream/internal/lake"
)

func newVacuumCmd() *cobra.Command {
	var (
		tf        tableFlags
		minAge    time.Duration
		retention time.Duration
		dryRun    bool
	)
	cmd := &cobra.Command{
		Use:   "vacuum --lake URI [flags]",
		Short: "delete the lake files no manifest names (left by crashed or fenced commits), expire the Iceberg tables' old snapshots and delete the files no snapshot references",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if tf.lake == "" {
				return usageErrorf("--lake is required (s3://bucket/prefix or file:///dir)")
			}
			if minAge <= 0 || retention <= 0 {
				return usageErrorf("--min-age and --table-snapshot-retention must be positive")
			}
			if err := requireStore("lake", tf.lake); err != nil {
				return err
			}
			ctx, stdout := cmd.Context(), cmd.OutOrStdout()
			store, err := lake.Open(ctx, tf.lake, tf.s3)
			if err != nil {
				return fmt.Errorf("open lake: %w", err)
			}
			rep, err := lake.Vacuum(ctx, store, minAge, dryRun)
			if dryRun {
				for _, o := range rep.Orphans {
					fmt.Fprintf(stdout, "%s\t%d\t%s\n", o.ModTime.UTC().Format("2006-01-02T15:04:05Z"), o.Size, o.Key)
				}
			}
			fmt.Fprintf(stdout, "vacuum: %d files referenced, %d orphans (%d bytes), %d deleted, %d unreferenced but younger than %v\n",
				rep.Referenced, len(rep.Orphans), rep.Bytes, rep.Deleted, rep.Young, minAge)
			if err != nil {
				return err
			}
			return vacuumTables(cmd, &tf, retention, minAge, dryRun)
		},
	}
	fs := cmd.Flags()
	tf.add(fs)
	fs.Lookup("catalog").Usage += "; 'none': leave the tables alone"
	fs.DurationVar(&minAge, "min-age", lake.DefaultVacuumMinAge, "delete only files older than this; must exceed ingest's --commit-timeout")
	fs.DurationVar(&retention, "table-snapshot-retention", icetable.DefaultSnapshotRetention, "expire the Iceberg tables' snapshots older than this (time travel reaches no further back)")
	fs.BoolVar(&dryRun, "dry-run", false, "list what would be deleted, delete nothing")
	return cmd
}

// vacuumTables expires the old snapshots of the lake's Iceberg tables and
// deletes the files none of their snapshots references: the tables' part
// of vacuum. A lake without a catalog (none given and none at its root)
// has nothing to do here.
func vacuumTables(cmd *cobra.Command, tf *tableFlags, retention, minAge time.Duration, dryRun bool) error {
	if tf.catalog == icetable.NoCatalog || (tf.catalog == "" && !icetable.HasDefaultCatalog(tf.lake)) {
		return nil
	}
	ctx, stdout := cmd.Context(), cmd.OutOrStdout()
	_, cat, err := tf.open(ctx)
	if err != nil {
		return err
	}
	defer icetable.Close(cat)
	orph, err := icetable.VacuumTables(ctx, cat, retention, minAge, dryRun)
	if dryRun {
		for _, f := range orph.Listed {
			fmt.Fprintln(stdout, f)
		}
	}
	fmt.Fprintf(stdout, "vacuum: tables: %d files no snapshot references (%d bytes), %d deleted\n", orph.Files, orph.Bytes, orph.Deleted)
	return err
}
