// Command compare runs `make bench-compare`: the aggregation job of
// clickstream side by side with what a user would pick instead — Spark,
// DuckDB, Polars, chDB — on the same generated Iceberg table, after proving
// that each gives the same rows. It lands one dataset per shape, runs every
// contender in alternating rounds after a warm-up round, and writes a table
// to stdout, bench/out/compare.json and PNG plots.
//
//	go run ./bench/compare                  # settings from BENCH_* (see config.go)
//	go run ./bench/compare floor --lake …   # the Go floor (run by the harness itself)
//
// It is a development tool, not part of the clickstream binary.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, nil)))
	var err error
	if len(os.Args) > 1 && os.Args[1] == "floor" {
		err = runFloor(ctx, os.Args[2:])
	} else {
		err = runCompare(ctx, os.Args[1:])
	}
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-compare:", err)
		os.Exit(1)
	}
}

func runCompare(ctx context.Context, args []string) error {
	cfg := NewConfig()
	fs := flag.NewFlagSet("bench-compare", flag.ContinueOnError)
	cfg.AddFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	h := &harness{cfg: cfg, log: slog.Default()}
	return h.run(ctx)
}
