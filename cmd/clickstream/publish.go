package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/dataco/clickstream/internal/icetable"
	"github.com/dataco/clickstream/internal/lake"
)

func newPublishCmd() *cobra.Command {
	var tf tableFlags
	cmd := &cobra.Command{
		Use:   "publish --lake URI [--catalog URI]",
		Short: "publish the lake's commits that its Iceberg events table does not hold yet (ingest does it as it commits)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			store, cat, err := tf.open(ctx)
			if err != nil {
				return err
			}
			defer icetable.Close(cat)
			meta, err := lake.ReadMeta(ctx, store)
			if err != nil {
				return err
			}
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
			if err != nil {
				return err
			}
			// Where an engine without the catalog (DuckDB's iceberg_scan)
			// opens each table now.
			for _, name := range []string{icetable.EventsTable, icetable.RejectedTable, icetable.AggregatesTable} {
				if tbl, err := cat.LoadTable(ctx, icetable.Ident(name)); err == nil {
					fmt.Fprintf(cmd.OutOrStdout(), "%s.%s\t%s\n", icetable.Namespace, name, tbl.MetadataLocation())
				}
			}
			return nil
		},
	}
	tf.add(cmd.Flags())
	return cmd
}
