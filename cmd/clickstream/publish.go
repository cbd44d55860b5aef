package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/dataco/clickstream/internal/icetable"
	"github.com/dataco/clickstream/internal/lake"
)

func newPublishCmd() *cobra.Command {
	var (
		uri, catalogURI string
		s3              lake.S3Options
	)
	cmd := &cobra.Command{
		Use:   "publish --lake URI [--catalog URI]",
		Short: "publish the lake's commits that its Iceberg events table does not hold yet (ingest does it as it commits)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if uri == "" {
				return usageErrorf("--lake is required (s3://bucket/prefix or file:///dir)")
			}
			if err := requireStore("lake", uri); err != nil {
				return err
			}
			if catalogURI == "" {
				var err error
				if catalogURI, err = icetable.DefaultCatalogURI(uri); err != nil {
					return usageErrorf("%v", err)
				}
			}
			ctx := cmd.Context()
			store, err := lake.Open(ctx, uri, s3)
			if err != nil {
				return fmt.Errorf("open lake: %w", err)
			}
			meta, err := lake.ReadMeta(ctx, store)
			if err != nil {
				return err
			}
			cat, err := icetable.OpenCatalog(ctx, catalogURI, icetable.S3Props(s3))
			if err != nil {
				return err
			}
			defer icetable.Close(cat)
			if _, err := icetable.EnsureEvents(ctx, cat, store, meta.Buckets); err != nil {
				return err
			}
			if _, err := icetable.EnsureRejected(ctx, cat, store); err != nil {
				return err
			}
			p, err := icetable.Publish(ctx, cat, store)
			fmt.Fprintf(cmd.OutOrStdout(), "publish: %d lake commits, %d files, %d events added to %s.%s (snapshot %d, %d commits redone after races)\n",
				p.Manifests, p.Files, p.Events, icetable.Namespace, icetable.EventsTable, p.Snapshot, p.Retries)
			if err != nil {
				return err
			}
			r, err := icetable.PublishRejected(ctx, cat, store)
			fmt.Fprintf(cmd.OutOrStdout(), "publish: %d dead letters added to %s.%s\n", r.Events, icetable.Namespace, icetable.RejectedTable)
			return err
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&uri, "lake", "", "data lake URI: s3://bucket/prefix or file:///dir")
	fs.StringVar(&catalogURI, "catalog", "", "Iceberg catalog, sqlite:///path.db (default: the SQLite catalog at the root of a file:// lake)")
	s3.AddFlags(fs)
	return cmd
}
