package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/dataco/clickstream/ingest"
	"github.com/dataco/clickstream/internal/flagenv"
)

func newIngestCmd() *cobra.Command {
	cfg := ingest.NewConfig()
	cmd := &cobra.Command{
		Use:   "ingest [flags]",
		Short: "consume click events (Kafka or NDJSON file) into the data lake, exactly once",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.Kafka.SecretsFromEnv(nil)
			if err := cfg.Validate(); err != nil {
				return usageErrorf("%w", err)
			}
			if cfg.FromFile == "" {
				return ingest.Run(cmd.Context(), cfg, runtimeOf(cmd))
			}
			// A file ingest shows its progress on stderr until it returns;
			// the summary follows on stdout (also when it fails).
			cfg.Progress = &ingest.Progress{}
			stop := startProgress(cmd.ErrOrStderr(), cfg.Progress)
			sum, err := ingest.Ingest(cmd.Context(), cfg, runtimeOf(cmd))
			stop()
			fmt.Fprintf(cmd.OutOrStdout(), "ingest: %s\n", sum)
			return err
		},
	}
	cfg.AddFlags(cmd.Flags())
	flagenv.Alias(cmd.Flags(), "brokers", "CLICKSTREAM_KAFKA_BROKERS")
	return cmd
}
