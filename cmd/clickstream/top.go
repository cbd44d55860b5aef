package main

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"time"

	"github.com/dataco/clickstream/indexer"
	"github.com/dataco/clickstream/internal/aggregate"
)

func init() {
	register("top", "print the most clicked URLs per country from Elasticsearch", runTop)
}

func runTop(ctx context.Context, args []string, stdout io.Writer) error {
	cfg := indexer.NewConfig()
	fs := flag.NewFlagSet("top", flag.ContinueOnError)
	cfg.AddFlags(fs)
	fs.StringVar(&cfg.Alias, "index", cfg.Alias, "alias to query (same as --es-index)")
	n := fs.Int("n", 5, "URLs per country")
	countries := fs.Int("countries", 10, "countries to print (0: all)")
	var from, to time.Time
	fs.TextVar(&from, "from", time.Time{}, "only the window starting at this time (RFC 3339; with --to)")
	fs.TextVar(&to, "to", time.Time{}, "only the window ending at this time (RFC 3339; with --from)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
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
	return indexer.PrintTop(ctx, cfg, stdout, win, *n, *countries, slog.Default())
}
