package main

import (
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/dataco/clickstream/indexer"
	"github.com/dataco/clickstream/internal/aggregate"
	"github.com/dataco/clickstream/internal/flagenv"
)

func newTopCmd() *cobra.Command {
	cfg := indexer.NewConfig()
	var n, countries int
	var from, to time.Time
	cmd := &cobra.Command{
		Use:   "top --es URL [flags]",
		Short: "print the most clicked URLs per country from Elasticsearch",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.SecretsFromEnv(nil)
			if err := cfg.Validate(); err != nil {
				return usageErrorf("%w", err)
			}
			var win *aggregate.Window
			if !from.IsZero() || !to.IsZero() {
				win = &aggregate.Window{From: from, To: to}
				if err := win.Validate(); err != nil {
					return usageErrorf("%w", err)
				}
			}
			return indexer.PrintTop(cmd.Context(), cfg, cmd.OutOrStdout(), win, n, countries, slog.Default())
		},
	}
	fs := cmd.Flags()
	cfg.AddFlags(fs)
	flagenv.Alias(fs, "es", indexer.EnvURL)
	fs.StringVar(&cfg.Alias, "index", cfg.Alias, "alias to query (same as --es-index)")
	fs.IntVar(&n, "n", 5, "URLs per country")
	fs.IntVar(&countries, "countries", 10, "countries to print (0: all)")
	fs.TextVar(&from, "from", time.Time{}, "only the window starting at this time (RFC 3339; with --to)")
	fs.TextVar(&to, "to", time.Time{}, "only the window ending at this time (RFC 3339; with --from)")
	return cmd
}
