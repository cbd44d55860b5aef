package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/dataco/clickstream/internal/flagenv"
	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/obs"
)

// version is stamped at build time (Makefile: -ldflags "-X main.version=...").
var version = "dev"

// envPrefix prefixes the variable of every flag: --s3-endpoint comes from
// CLICKSTREAM_S3_ENDPOINT when the command line does not give it.
const envPrefix = "CLICKSTREAM"

const envHelp = `
Environment:
  Every flag can also be set with ` + envPrefix + `_<FLAG> (upper case, '-' as '_'),
  e.g. --s3-endpoint with ` + envPrefix + `_S3_ENDPOINT; the command line wins, and empty
  variables count as unset. A few flags also take an older name, shown as (env ...).
  Credentials come from AWS_* (S3) and ` + envPrefix + `_ES_PASSWORD or ` + envPrefix + `_ES_API_KEY
  (Elasticsearch), never from flags.
`

// run executes the command line args and returns the exit status: 0, 1
// for a failure, 2 for a usage error (bad flag, missing flag or argument,
// unknown command).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd, err := execute(ctx, args, stdout, stderr)
	if err == nil {
		return 0
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "%s: %v\nRun '%s --help' for usage.\n", cmd.CommandPath(), err, cmd.CommandPath())
		return 2
	}
	fmt.Fprintf(stderr, "%s: %s\n", cmd.CommandPath(), saidOnce(cmd.Name(), err.Error()))
	return 1
}

// saidOnce drops from msg the leading "<name>: " that the command's own
// package put before its errors, which the line already says.
func saidOnce(name, msg string) string {
	return strings.TrimPrefix(msg, name+": ")
}

// execute runs args on a new command tree and returns the command that ran
// (or failed to) and its error.
func execute(ctx context.Context, args []string, stdout, stderr io.Writer) (*cobra.Command, error) {
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	return root.ExecuteContextC(ctx)
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "clickstream",
		Short: "Click events from Kafka into an S3 lake, aggregated by a cluster, searchable in Elasticsearch",
		Long: `clickstream turns a web application's click events into searchable analytics:
ingest consumes them from Kafka into a data lake, a coordinator and its workers
aggregate time windows of the lake, and the results are indexed into Elasticsearch.`,
		Version:           version,
		SilenceErrors:     true,
		SilenceUsage:      true,
		Args:              unknownCommand,
		RunE:              func(cmd *cobra.Command, _ []string) error { return usageErrorf("missing command") },
		PersistentPreRunE: setup,
	}
	root.SuggestionsMinimumDistance = 2
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	pf := root.PersistentFlags()
	pf.String("log-level", "info", "log level: debug, info, warn or error")
	pf.String("log-format", "text", "log format: text or json")
	root.AddCommand(
		newGenCmd(), newIngestCmd(),
		newCoordinatorCmd(), newWorkerCmd(),
		newSubmitCmd(), newStatusCmd(), newCancelCmd(), newRunCmd(),
		newIndexCmd(), newRollupCmd(), newTopCmd(), newAuditCmd(), newVacuumCmd(), newMigrateCmd(), newPublishCmd(), newCompactCmd(), newEtcdAuthCmd(), newCertsCmd(),
		newVersionCmd(),
	)
	for _, c := range root.Commands() {
		hideFlags(c.Flags())
	}
	root.SetUsageTemplate(root.UsageTemplate() + envHelp)
	return root
}

// setup runs before every command: it fills the flags the command line did
// not give from the environment, then sets up logging.
func setup(cmd *cobra.Command, _ []string) error {
	if err := applyEnv(cmd.Flags()); err != nil {
		return err
	}
	if err := resolveStoreFlags(cmd.Flags()); err != nil {
		return err
	}
	logger, err := newLogger(cmd.Flags(), cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	slog.SetDefault(logger)
	return nil
}

// applyEnv is the one path from the environment to a configuration: every
// flag not set on the command line comes from CLICKSTREAM_<FLAG> or one of
// its aliases (flagenv.Alias).
func applyEnv(fs *pflag.FlagSet) error {
	if err := flagenv.Apply(fs, envPrefix, os.LookupEnv); err != nil {
		return usageError{err}
	}
	return nil
}

// storeFlags name a store wherever a command has them.
var storeFlags = []string{"lake", "out", "output-root", "lake-root", "dead-letter"}

// resolveStoreFlags rewrites the store flags given (on the command line
// or in the environment) as URIs that mean the same on any machine: a
// bare path, absolute or relative to the working directory, becomes a
// file:/// URI (lake.ResolveURI), so no relative path reaches a server
// (job specs, coordinator and worker roots). A value that names no store
// is a usage error.
func resolveStoreFlags(fs *pflag.FlagSet) error {
	resolve := func(name string, vals []string) ([]string, error) {
		out := make([]string, 0, len(vals))
		for _, v := range vals {
			if v == "" {
				out = append(out, v) // left to the command's own check
				continue
			}
			r, err := lake.ResolveURI(v)
			if err != nil {
				return nil, usageErrorf("--%s: %w", name, err)
			}
			out = append(out, r)
		}
		return out, nil
	}
	for _, name := range storeFlags {
		f := fs.Lookup(name)
		if f == nil || !f.Changed {
			continue
		}
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			vals, err := resolve(name, sv.GetSlice())
			if err != nil {
				return err
			}
			if err := sv.Replace(vals); err != nil {
				return usageErrorf("--%s: %w", name, err)
			}
			continue
		}
		vals, err := resolve(name, []string{f.Value.String()})
		if err != nil {
			return err
		}
		if err := f.Value.Set(vals[0]); err != nil {
			return usageErrorf("--%s: %w", name, err)
		}
	}
	return nil
}

// newLogger builds the process logger from --log-level and --log-format.
func newLogger(fs *pflag.FlagSet, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	lv, _ := fs.GetString("log-level")
	if err := level.UnmarshalText([]byte(lv)); err != nil {
		return nil, usageErrorf("--log-level %q: want debug, info, warn or error", lv)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch f, _ := fs.GetString("log-format"); f {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	default:
		return nil, usageErrorf("--log-format %q: want text or json", f)
	}
}

// runtimeOf is the Runtime of a component run by cmd: the process logger,
// the default Prometheus registry, and the command's output.
func runtimeOf(cmd *cobra.Command) obs.Runtime {
	return obs.Runtime{Logger: slog.Default(), Registerer: prometheus.DefaultRegisterer, Stdout: cmd.OutOrStdout()}
}

// hideFlags hides the flags whose usage starts with "hidden:" (for tests).
func hideFlags(fs *pflag.FlagSet) {
	fs.VisitAll(func(f *pflag.Flag) {
		if strings.HasPrefix(f.Usage, "hidden:") {
			f.Hidden = true
		}
	})
}

// unknownCommand rejects arguments of the root command: they name no
// command. It suggests the nearest commands.
func unknownCommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q", args[0])
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += "\n\nDid you mean this?\n\t" + strings.Join(s, "\n\t")
	}
	return usageError{errors.New(msg)}
}

// noArgs rejects positional arguments.
func noArgs(_ *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErrorf("unexpected arguments: %v", args)
	}
	return nil
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "print the version",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "clickstream version %s\n", version)
			return err
		},
	}
}

// usageError marks a bad command line (exit status 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usageErrorf(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// requireStore refuses an input store that does not exist: a file://
// store's folder must be there, as lake.Open would create it. (An s3://
// bucket is created only on --s3-create-bucket.) Commands call it before
// they create anything.
func requireStore(flag, uri string) error {
	c, err := lake.Canonical(uri)
	if err != nil {
		return usageErrorf("--%s: %w", flag, err)
	}
	dir, ok := strings.CutPrefix(c, "file://")
	if !ok {
		return nil
	}
	fi, err := os.Stat(filepath.FromSlash(dir))
	if err != nil {
		return fmt.Errorf("--%s %s: %w", flag, c, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("--%s %s is not a folder", flag, c)
	}
	return nil
}
