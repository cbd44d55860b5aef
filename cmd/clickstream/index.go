package main

import (
	"context"
	"flag"
	"io"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dataco/clickstream/indexer"
)

func init() {
	register("index", "index committed results into Elasticsearch (exit 1 if any document is rejected)", runIndex)
}

// runIndex: clickstream index --results URI --es URL [--index NAME] [--dead-letter URI] [--rebuild] [--top N].
// It prints one summary line per result; rejected documents go to the
// dead-letter store and make the command exit 1.
func runIndex(ctx context.Context, args []string, stdout io.Writer) error {
	cfg := indexer.NewRunConfig()
	fs := flag.NewFlagSet("index", flag.ContinueOnError)
	cfg.AddFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return usageErrorf("%w", err)
	}
	slog.Debug("index", "config", cfg.ES)
	return indexer.Run(ctx, cfg, stdout, slog.Default(), prometheus.DefaultRegisterer)
}
