// Command chaos runs the clickstream chaos harness (internal/chaos): a
// fault-free run, then every selected fault class, round after round,
// against real processes, and prints a Markdown table per fault class.
//
//	make chaos CHAOS_MINUTES=20 CHAOS_SEED=42
//	go run ./cmd/chaos --bin bin/clickstream --classes worker-kill,etcd-kill --minutes 5 --out chaos.md
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/dataco/clickstream/internal/chaos"
)

func main() {
	os.Exit(run())
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func run() int {
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	seedDefault := uint64(time.Now().UnixNano() % 1_000_000)
	if v := os.Getenv("CHAOS_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			fmt.Fprintf(os.Stderr, "chaos: CHAOS_SEED=%q: %v\n", v, err)
			return 2
		}
		seedDefault = s
	}
	minutesDefault := 10.0
	if v := os.Getenv("CHAOS_MINUTES"); v != "" {
		m, err := strconv.ParseFloat(v, 64)
		if err != nil {
			fmt.Fprintf(os.Stderr, "chaos: CHAOS_MINUTES=%q: %v\n", v, err)
			return 2
		}
		minutesDefault = m
	}
	seed := fs.Uint64("seed", seedDefault, "seed of the input and of every fault schedule (env CHAOS_SEED; default random)")
	minutes := fs.Float64("minutes", minutesDefault, "keep running rounds of the fault classes this long; every class runs at least once (env CHAOS_MINUTES)")
	classes := fs.String("classes", envOr("CHAOS_CLASSES", "all"), "fault classes, comma-separated, or all (env CHAOS_CLASSES)")
	out := fs.String("out", envOr("CHAOS_OUT", ""), "also write the Markdown report to this file (env CHAOS_OUT)")
	bin := fs.String("bin", "bin/clickstream", "the clickstream binary")
	dir := fs.String("dir", "", "work dir for the runs' data and logs (default: a new temp dir, kept)")
	events := fs.Int("events", chaos.DefaultEvents, "messages generated for every run")
	windows := fs.Int("windows", chaos.DefaultWindows, "jobs per run, one per 30-minute window")
	stackFaults := fs.Bool("stack-faults", true, "run the classes that restart the stack's Kafka and Elasticsearch")
	stackScript := fs.String("stack", "deploy/local/stack.sh", "the stack script (for the stack faults)")
	list := fs.Bool("list", false, "list the fault classes and exit")
	verbose := fs.Bool("v", false, "log every injection and run")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *list {
		for _, c := range chaos.Classes() {
			fmt.Printf("%-26s %s\n", c.Name, c.Doc)
		}
		return 0
	}
	sel, err := chaos.Select(*classes)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if *dir == "" {
		if *dir, err = os.MkdirTemp("", "clickstream-chaos-"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	binary, err := filepath.Abs(*bin)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	script, err := filepath.Abs(*stackScript)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	h, err := chaos.New(chaos.Config{
		Binary: binary, Brokers: os.Getenv("CLICKSTREAM_KAFKA_BROKERS"), ESURL: os.Getenv("CLICKSTREAM_ES_URL"),
		Dir: *dir, Seed: *seed, Events: *events, Windows: *windows,
		StackFaults: *stackFaults, StackScript: script, Logger: logger,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// SIGINT and SIGTERM end the session: the current run's processes are
	// killed and the report so far is printed.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var names []string
	for _, c := range sel {
		names = append(names, c.Name)
	}
	fmt.Fprintf(os.Stderr, "chaos: seed %d (CHAOS_SEED=%d reruns this schedule), %.1f minutes, classes %s, work dir %s\n",
		*seed, *seed, *minutes, strings.Join(names, ","), *dir)
	rep, runErr := h.Matrix(ctx, sel, *minutes, func(o *chaos.Outcome) {
		mark := "ok  "
		if !o.OK() {
			mark = "FAIL"
		}
		fmt.Fprintf(os.Stderr, "chaos: %s %s\n", mark, o.Summary())
	})
	var md strings.Builder
	if err := rep.WriteMarkdown(&md); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Print(md.String())
	if *out != "" {
		if err := os.WriteFile(*out, []byte(md.String()), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Fprintf(os.Stderr, "chaos: report written to %s\n", *out)
	}
	if runErr != nil {
		fmt.Fprintf(os.Stderr, "chaos: %v\n", runErr)
		return 1
	}
	if len(rep.Failed()) > 0 {
		return 1
	}
	return 0
}
