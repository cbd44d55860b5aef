package main

import (
	"github.com/spf13/cobra"

	"github.com/dataco/clickstream/internal/flagenv"
	"github.com/dataco/clickstream/worker"
)

func newWorkerCmd() *cobra.Command {
	cfg := worker.NewConfig()
	cmd := &cobra.Command{
		Use:   "worker --etcd ENDPOINTS [--listen ADDR] [--advertise ADDR] [flags]",
		Short: "run aggregation tasks for the coordinator",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.EtcdAuth.SecretsFromEnv(nil)
			if err := cfg.Validate(); err != nil {
				return usageErrorf("%w", err)
			}
			return worker.Run(cmd.Context(), cfg, runtimeOf(cmd))
		},
	}
	cfg.AddFlags(cmd.Flags())
	flagenv.Alias(cmd.Flags(), "etcd", envEtcdEndpoints)
	return cmd
}
