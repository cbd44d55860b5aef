package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/dataco/clickstream/coordinator"
	"github.com/dataco/clickstream/indexer"
	"github.com/dataco/clickstream/internal/flagenv"
	"github.com/dataco/clickstream/internal/icetable"
)

// envEtcdEndpoints is the stack's older name of --etcd.
const envEtcdEndpoints = "CLICKSTREAM_ETCD_ENDPOINTS"

func newCoordinatorCmd() *cobra.Command {
	cfg := coordinator.NewConfig()
	es := indexer.NewConfig()
	var (
		catalogURI, catalogPW string
		compactEvery          time.Duration
	)
	cmd := &cobra.Command{
		Use:   "coordinator [--etcd ENDPOINTS] [--listen ADDR] [--lake URI] [--schedule ...] [--es URL] [flags]",
		Short: "lead aggregation jobs: plan, lease tasks to workers, merge and commit results",
		Long: `coordinator serves the CoordinatorService API on --listen and, while it leads the cluster
(elected through etcd), plans jobs, leases their tasks to workers, merges and commits results.

Every coordinator, leader or standby, also serves a live web UI of the whole cluster (jobs, a
job's tasks and the timeline of their attempts, workers, scheduled windows, ingest watermarks)
on its one HTTP listener, --http-listen (default ` + coordinator.DefaultHTTPListen + `; env
CLICKSTREAM_HTTP_LISTEN), beside /metrics, /healthz and /readyz. With --tls-* the listener is
HTTPS with the same certificates as the API, and the UI requires a client certificate of role
viewer, operator or coordinator; without them it listens on loopback only (unless --insecure).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			cfg.EtcdAuth.SecretsFromEnv(nil)
			if err := cfg.Validate(); err != nil {
				return usageErrorf("%w", err)
			}
			// Results go to the Iceberg aggregates table of their lake
			// first, then to the index.
			if catalogURI != icetable.NoCatalog {
				cfg.Publishers = append(cfg.Publishers, icetable.ResultPublisher{Catalog: catalogURI, PasswordFile: catalogPW, S3: cfg.S3})
				// Jobs read the lake's events table where it has one.
				cfg.Planner = icetable.TablePlanner{Catalog: catalogURI, PasswordFile: catalogPW, S3: cfg.S3,
					Manifests: icetable.NewManifestCache(icetable.DefaultManifestCacheFiles)}
				// ... and the scheduler sees late data in its snapshots.
				cfg.Inputs = &icetable.InputTracker{Catalog: catalogURI, PasswordFile: catalogPW, S3: cfg.S3}
				if catalogURI == "" {
					slog.Info("results of file:// lakes go to each lake's Iceberg aggregates table; other lakes' need --catalog")
				}
			}
			if compactEvery > 0 {
				u := tableUpkeep{lake: cfg.Lake, catalog: catalogURI, catalogPW: catalogPW, s3: cfg.S3, every: compactEvery,
					retention: icetable.DefaultSnapshotRetention, minAge: cfg.VacuumMinAge}
				if m, ok := u.maintenance(); ok {
					cfg.Maintenance = append(cfg.Maintenance, m)
				}
			}
			// Results are indexed when --es is given (or CLICKSTREAM_ES): the
			// Elasticsearch URL the stack exports for the index command
			// (CLICKSTREAM_ES_URL) does not turn indexing on.
			if cmd.Flags().Changed("es") {
				ix, err := openIndexer(es)
				if err != nil {
					return err
				}
				defer ix.Close(context.WithoutCancel(ctx))
				cfg.Publishers = append(cfg.Publishers, ix)
			}
			return coordinator.Run(ctx, cfg, runtimeOf(cmd))
		},
	}
	cfg.AddFlags(cmd.Flags())
	cmd.Flags().DurationVar(&compactEvery, "compact-every", time.Hour, "the leader compacts the closed hours of the --lake's Iceberg events table this often, expires the tables' snapshots older than a day and deletes the files none references once older than --vacuum-min-age (0: never; see clickstream compact and vacuum)")
	cmd.Flags().StringVar(&catalogURI, "catalog", "", "Iceberg catalog of the results' aggregates table, sqlite:///path.db or postgres://user@host:port/db?sslmode=… (default: a file:// lake's own SQLite catalog); 'none': results are not published as a table")
	cmd.Flags().StringVar(&catalogPW, "catalog-password-file", "", "file holding the password of a postgres:// --catalog (default: $PGPASSWORD, or ~/.pgpass)")
	es.AddFlags(cmd.Flags())
	flagenv.Alias(cmd.Flags(), "etcd", envEtcdEndpoints)
	return cmd
}
