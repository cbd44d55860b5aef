package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dataco/clickstream/ingest"
)

func init() {
	register("ingest", "consume click events (Kafka or NDJSON file) into the data lake, exactly once", runIngest)
}

func runIngest(ctx context.Context, args []string, stdout io.Writer) error {
	cfg := ingest.NewConfig()
	fs := flag.NewFlagSet("ingest", flag.ContinueOnError)
	cfg.AddFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return usageErrorf("%w", err)
	}
	sum, err := ingest.Run(ctx, cfg, ingest.Options{Logger: slog.Default(), Registry: prometheus.DefaultRegisterer})
	fmt.Fprintf(stdout, "ingest: %s\n", sum)
	return err
}
