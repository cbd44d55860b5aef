package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/dataco/clickstream/internal/lake"
)

func newVacuumCmd() *cobra.Command {
	var (
		uri    string
		s3     lake.S3Options
		minAge time.Duration
		dryRun bool
	)
	cmd := &cobra.Command{
		Use:   "vacuum --lake URI [flags]",
		Short: "delete the lake files no manifest names (left by crashed or fenced commits)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if uri == "" {
				return usageErrorf("--lake is required (s3://bucket/prefix or file:///dir)")
			}
			if minAge <= 0 {
				return usageErrorf("--min-age must be positive")
			}
			if err := requireStore("lake", uri); err != nil {
				return err
			}
			ctx, stdout := cmd.Context(), cmd.OutOrStdout()
			store, err := lake.Open(ctx, uri, s3)
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
			return err
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&uri, "lake", "", "data lake URI: s3://bucket/prefix or file:///dir")
	s3.AddFlags(fs)
	fs.DurationVar(&minAge, "min-age", lake.DefaultVacuumMinAge, "delete only files older than this; must exceed ingest's --commit-timeout")
	fs.BoolVar(&dryRun, "dry-run", false, "list what would be deleted, delete nothing")
	return cmd
}
