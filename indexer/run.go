package indexer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/obs"
	"github.com/dataco/clickstream/internal/results"
)

// RunConfig configures the `clickstream index` command: index committed
// results from output stores.
type RunConfig struct {
	ES Config
	// Results are output store URIs (s3://... or file://...), each holding
	// a committed result; indexed in order.
	Results []string
	// DeadLetter is the store for rejected documents; empty: each result's
	// own store.
	DeadLetter string
	S3         lake.S3Options
	// Rebuild indexes into a new concrete index (RebuildIndex, or
	// "<alias>-<UTC time>") and then swaps the alias to it.
	Rebuild      bool
	RebuildIndex string
	// Top, if positive, prints the Top most clicked URLs per country of
	// each indexed window, and the curl command that queries them.
	Top int
}

// NewRunConfig returns a RunConfig with the defaults.
func NewRunConfig() RunConfig { return RunConfig{ES: NewConfig()} }

// AddFlags binds the command's flags: the Config's --es* flags, --index (a
// synonym of --es-index), --results, --dead-letter, --rebuild,
// --rebuild-index, --top and the S3 flags.
func (c *RunConfig) AddFlags(fs *pflag.FlagSet) {
	c.ES.AddFlags(fs)
	fs.StringVar(&c.ES.Alias, "index", c.ES.Alias, "alias to write through (same as --es-index)")
	fs.Func("results", "output store URI of a committed result (s3://bucket/prefix or file:///dir); repeat for several", func(s string) error {
		c.Results = append(c.Results, s)
		return nil
	})
	fs.StringVar(&c.DeadLetter, "dead-letter", c.DeadLetter, "store URI for rejected documents (default: the results store itself)")
	fs.BoolVar(&c.Rebuild, "rebuild", c.Rebuild, "index into a new concrete index, then swap the alias to it atomically")
	fs.StringVar(&c.RebuildIndex, "rebuild-index", c.RebuildIndex, "name of the new index of --rebuild (default <alias>-<UTC yyyymmdd-hhmmss>)")
	fs.IntVar(&c.Top, "top", c.Top, "after indexing, print this many top URLs per country of each window (0: none)")
	c.S3.AddFlags(fs)
}

// Validate reports every problem with the configuration.
func (c *RunConfig) Validate() error {
	var errs []error
	if err := c.ES.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.S3.Validate(); err != nil {
		errs = append(errs, err)
	}
	if len(c.Results) == 0 {
		errs = append(errs, errors.New("--results is required"))
	}
	if c.RebuildIndex != "" && !c.Rebuild {
		errs = append(errs, errors.New("--rebuild-index needs --rebuild"))
	}
	if c.Top < 0 {
		errs = append(errs, errors.New("--top must not be negative"))
	}
	return errors.Join(errs...)
}

// Run indexes each committed result of cfg.Results (into the alias, or
// with --rebuild into a new index and then swaps the alias) and prints one
// summary line per result to rt.Stdout:
//
//	indexed=N rejected=M window=FROM/TO index=NAME job=... stale_deleted=K retried=R duration=D [dead_letters=URI]
//
// It returns an error wrapping ErrRejected if any document was rejected
// (they are in the dead-letter store), so the command exits non-zero: a
// rejection means the mapping and the data disagree, and someone has to
// look.
func Run(ctx context.Context, cfg RunConfig, rt obs.Runtime) (err error) {
	out := rt.Out()
	ix, err := New(cfg.ES, rt.Log(), rt.Registerer)
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		err = errors.Join(err, ix.Close(cctx))
	}()

	var rejected int
	var deadLetters []string
	indexAll := func(ctx context.Context, w *Writer) error {
		for _, uri := range cfg.Results {
			rep, err := indexStore(ctx, w, uri, cfg)
			if !rep.Window.From.IsZero() {
				fmt.Fprintln(out, rep)
			}
			rejected += rep.Rejected
			if rep.DeadLetters != "" {
				deadLetters = append(deadLetters, rep.DeadLetters)
			}
			if err != nil {
				return fmt.Errorf("%s: %w", uri, err)
			}
			if cfg.Top > 0 {
				if err := printTop(ctx, ix, out, rep, cfg.Top); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if cfg.Rebuild {
		name := cfg.RebuildIndex
		if name == "" {
			name = cfg.ES.Alias + "-" + time.Now().UTC().Format("20060102-150405")
		}
		prev, err := ix.Rebuild(ctx, name, indexAll)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "rebuild: alias %s -> %s (previous: %s, kept)\n", cfg.ES.Alias, name, strings.Join(prev, ","))
	} else if err := indexAll(ctx, &Writer{ix: ix, index: cfg.ES.Alias, viaAlias: true}); err != nil {
		return err
	}
	if rejected > 0 {
		return fmt.Errorf("%w: %d documents, see %s", ErrRejected, rejected, strings.Join(deadLetters, ", "))
	}
	return nil
}

// indexStore reads the committed result of the store at uri and indexes it.
func indexStore(ctx context.Context, w *Writer, uri string, cfg RunConfig) (Report, error) {
	store, err := lake.Open(ctx, uri, cfg.S3)
	if err != nil {
		return Report{}, err
	}
	rows, meta, err := results.ReadResult(ctx, store)
	if err != nil {
		return Report{}, err
	}
	dl := store
	if cfg.DeadLetter != "" {
		if dl, err = lake.Open(ctx, cfg.DeadLetter, cfg.S3); err != nil {
			return Report{}, err
		}
	}
	return w.IndexResult(ctx, rows, meta, dl)
}

func printTop(ctx context.Context, ix *Indexer, out io.Writer, rep Report, n int) error {
	win := rep.Window
	top, err := TopURLs(ctx, ix.Client(), rep.Index, &win, n)
	if err != nil {
		return err
	}
	for _, c := range top {
		fmt.Fprintf(out, "  %s (%d clicks):", c.Country, c.Clicks)
		for _, u := range c.URLs {
			fmt.Fprintf(out, " %s=%d", u.URL, u.Clicks)
		}
		fmt.Fprintln(out)
	}
	fmt.Fprintf(out, "query: %s\n", TopURLsCurl(ix.cfg.Addresses[0], ix.Alias(), &win, n))
	return nil
}
