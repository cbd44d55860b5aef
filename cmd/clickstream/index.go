package main

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/dataco/clickstream/indexer"
	"github.com/dataco/clickstream/internal/flagenv"
	"github.com/dataco/clickstream/internal/lake"
)

// newIndexCmd: clickstream index --results URI --es URL [--index NAME]
// [--dead-letter URI] [--rebuild] [--top N]. It prints one summary line per
// result; rejected documents go to the dead-letter store and make the
// command exit 1.
func newIndexCmd() *cobra.Command {
	cfg := indexer.NewRunConfig()
	cmd := &cobra.Command{
		Use:   "index --results URI --es URL [flags]",
		Short: "index committed results into Elasticsearch (exit 1 if any document is rejected)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.ES.SecretsFromEnv(nil)
			for i, r := range cfg.Results {
				uri, err := lake.ResolveURI(r)
				if err != nil {
					return usageErrorf("--results: %w", err)
				}
				cfg.Results[i] = uri
			}
			if err := cfg.Validate(); err != nil {
				return usageErrorf("%w", err)
			}
			for _, r := range cfg.Results {
				if err := requireStore("results", r); err != nil {
					return err
				}
			}
			slog.Debug("index", "config", cfg.ES)
			return indexer.Run(cmd.Context(), cfg, runtimeOf(cmd))
		},
	}
	cfg.AddFlags(cmd.Flags())
	flagenv.Alias(cmd.Flags(), "es", indexer.EnvURL)
	return cmd
}

// openIndexer is the Elasticsearch publisher of the coordinator and of
// roll-ups: es with its secrets from the environment, checked (a usage
// error), its metrics in the default registry. The caller closes it.
func openIndexer(es indexer.Config) (*indexer.Indexer, error) {
	es.SecretsFromEnv(nil)
	if err := es.Validate(); err != nil {
		return nil, usageErrorf("%w", err)
	}
	return indexer.New(es, slog.Default(), prometheus.DefaultRegisterer)
}
