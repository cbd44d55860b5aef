package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/dataco/clickstream/internal/lake"
)

func init() {
	register("vacuum", "delete the lake files no manifest names (left by crashed or fenced commits)", runVacuum)
}

func runVacuum(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("vacuum", flag.ContinueOnError)
	uri := fs.String("lake", os.Getenv("CLICKSTREAM_LAKE"), "data lake URI: s3://bucket/prefix or file:///dir (env CLICKSTREAM_LAKE)")
	var s3 lake.S3Options
	s3.AddFlags(fs)
	minAge := fs.Duration("min-age", lake.DefaultVacuumMinAge,
		"delete only files older than this; must exceed ingest's --commit-timeout")
	dryRun := fs.Bool("dry-run", false, "list what would be deleted, delete nothing")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *uri == "" {
		return usageErrorf("--lake is required (s3://bucket/prefix or file:///dir)")
	}
	if *minAge <= 0 {
		return usageErrorf("--min-age must be positive")
	}
	store, err := lake.Open(ctx, *uri, s3)
	if err != nil {
		return fmt.Errorf("vacuum: open lake: %w", err)
	}
	rep, err := lake.Vacuum(ctx, store, *minAge, *dryRun)
	if *dryRun {
		for _, o := range rep.Orphans {
			fmt.Fprintf(stdout, "%s\t%d\t%s\n", o.ModTime.UTC().Format("2006-01-02T15:04:05Z"), o.Size, o.Key)
		}
	}
	fmt.Fprintf(stdout, "vacuum: %d files referenced, %d orphans (%d bytes), %d deleted, %d unreferenced but younger than %v\n",
		rep.Referenced, len(rep.Orphans), rep.Bytes, rep.Deleted, rep.Young, *minAge)
	return err
}
