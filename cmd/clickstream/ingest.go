package main

import (
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
			return ingest.Run(cmd.Context(), cfg, runtimeOf(cmd))
		},
	}
	cfg.AddFlags(cmd.Flags())
	flagenv.Alias(cmd.Flags(), "brokers", "CLICKSTREAM_KAFKA_BROKERS")
	return cmd
}
