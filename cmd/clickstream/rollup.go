package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dataco/clickstream/coordinator"
	"github.com/dataco/clickstream/indexer"
	"github.com/dataco/clickstream/internal/icetable"
	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/rollup"
)

// newRollupCmd: clickstream rollup --out URI --from T [--to T] --grain
// day|week|month [--es URL] [--catalog URI]. It prints one line per
// period.
func newRollupCmd() *cobra.Command {
	cfg := rollup.NewRunConfig()
	es := indexer.NewConfig()
	var (
		catalogURI, catalogPW string
		cf                    clientFlags
	)
	cmd := &cobra.Command{
		Use:   "rollup --out URI --from T [--to T] [--grain day|week|month] [flags]",
		Short: "roll committed windows up into exact daily, weekly or monthly rows, from the user sets they keep",
		Long: `rollup merges the committed windows under --out (the scheduler's --schedule-out; windows run
with user sets: --user-sets, --schedule-user-sets) into one result per period of --grain: per
(url, country), per url over all countries (country ""), per country over all urls (url "") and
overall (both ""), with clicks, exact unique users (the size of the union of the windows' sets),
time spent and samples. Events are not read again. Each period's result goes to its own folder,
<out>/rollup/grain=<grain>/period=<start> (--rollup-out), replacing an earlier roll-up of it, and
to Elasticsearch (--es) and the lake's Iceberg aggregates table (--catalog), with grain set.
With --coordinator, each period is a job of the cluster instead, one task per key range
(--shards): the coordinator commits the period, with its sets (--keep-sets), and runs its own
publishers; weeks and months roll up from days there too (--input-grain day).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			for _, p := range []*string{&cfg.Windows, &cfg.Out} {
				if *p == "" {
					continue
				}
				uri, err := lake.ResolveURI(*p)
				if err != nil {
					return usageErrorf("%w", err)
				}
				*p = uri
			}
			if err := cfg.Validate(); err != nil {
				return usageErrorf("%w", err)
			}
			if cmd.Flags().Changed("coordinator") {
				for _, f := range []string{"es", "catalog", "spill-dir"} {
					if cmd.Flags().Changed(f) {
						return usageErrorf("--%s: not with --coordinator (the cluster publishes with the coordinator's publishers and spills to its workers' folders)", f)
					}
				}
				return rollupOnCluster(ctx, &cf, &cfg, cmd.OutOrStdout(), cmd.ErrOrStderr())
			}
			if err := requireStore("out", cfg.Windows); err != nil {
				return err
			}
			if catalogURI != icetable.NoCatalog {
				cfg.Publishers = append(cfg.Publishers, icetable.ResultPublisher{Catalog: catalogURI, PasswordFile: catalogPW, S3: cfg.S3})
			}
			if cmd.Flags().Changed("es") {
				ix, err := openIndexer(es)
				if err != nil {
					return err
				}
				defer ix.Close(context.WithoutCancel(ctx))
				cfg.Publishers = append(cfg.Publishers, ix)
			}
			reps, err := rollup.Run(ctx, cfg, slog.Default())
			w := cmd.OutOrStdout()
			for _, r := range reps {
				st := r.Stats
				fmt.Fprintf(w, "rollup %s %s: %d windows, %d keys, %d rows in %.3fs; %d hashes read (%d set bytes); largest set %s: %d users; %d exact, %d approximate rows; buffers peak %d bytes, %d spills (%d bytes); %d gaps -> %s",
					r.Grain, r.From.Format("2006-01-02"), st.Windows, st.Keys, r.Rows, r.Duration.Seconds(), st.HashesRead, st.SetBytes,
					st.LargestSet, st.LargestSetUsers, r.Rows-st.ApproximateRows, st.ApproximateRows, st.PeakBufferBytes, st.Spills, st.SpilledBytes, len(st.Gaps), r.Out)
				if len(r.Published) > 0 {
					fmt.Fprintf(w, " (%s)", strings.Join(r.Published, "; "))
				}
				fmt.Fprintln(w)
			}
			if err != nil {
				return err
			}
			for _, r := range reps {
				for _, p := range r.Published {
					if !strings.HasSuffix(p, ": ok") {
						return fmt.Errorf("rollup: publishing failed: %s", p)
					}
				}
			}
			return nil
		},
	}
	cfg.AddFlags(cmd.Flags())
	cfg.S3.AddFlags(cmd.Flags())
	cmd.Flags().StringVar(&catalogURI, "catalog", icetable.NoCatalog, "Iceberg catalog of the aggregates table the roll-ups are published to ('' : a file:// lake's own SQLite catalog; default none)")
	cmd.Flags().StringVar(&catalogPW, "catalog-password-file", "", "file holding the password of a postgres:// --catalog")
	es.AddFlags(cmd.Flags())
	cf.add(cmd.Flags())
	return cmd
}

// rollupOnCluster submits one roll-up job per period of cfg to the
// coordinator (one task per key range, --shards) and follows each to its
// end: the coordinator commits and publishes the period's result.
func rollupOnCluster(ctx context.Context, cf *clientFlags, cfg *rollup.RunConfig, stdout, stderr io.Writer) error {
	periods, err := rollup.Periods(cfg.Grain, cfg.From, cfg.To)
	if err != nil {
		return usageErrorf("%w", err)
	}
	c, err := cf.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	for _, p := range periods {
		j, err := c.SubmitWithKey(ctx, coordinator.RollupJobSpec(cfg, p[0], p[1]), coordinator.NewIdempotencyKey())
		if err != nil {
			return fmt.Errorf("rollup %s %s: %w", cfg.Grain, p[0].Format("2006-01-02"), err)
		}
		fmt.Fprintf(stderr, "rollup %s %s: submitted job %s\n", cfg.Grain, p[0].Format("2006-01-02"), j.GetId())
		if err := waitJob(ctx, c, j.GetId(), stdout, stderr); err != nil {
			return fmt.Errorf("rollup %s %s: %w", cfg.Grain, p[0].Format("2006-01-02"), err)
		}
	}
	return nil
}
