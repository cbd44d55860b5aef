package main

// clickstream run: an embedded etcd, a coordinator and N workers in this
// process, speaking gRPC over loopback, through the same constructors as the
// cluster.

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/dataco/clickstream/coordinator"
	"github.com/dataco/clickstream/internal/cluster"
	"github.com/dataco/clickstream/internal/icetable"
	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/mtls"
	"github.com/dataco/clickstream/internal/pki"
	"github.com/dataco/clickstream/worker"
)

func newRunCmd() *cobra.Command {
	var (
		jf          coordinator.JobSpecFlags
		s3          lake.S3Options
		workers     int
		parallelism int
		plaintext   bool
		catalogURI  string
		catalogPW   string
		cpuProfile  string
	)
	cmd := &cobra.Command{
		Use:   "run --lake URI --from T --to T --out URI [--workers N] [--format ndjson|csv]",
		Short: "run one aggregation job on this machine: embedded etcd, a coordinator and N workers",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stdout, stderr := cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr()
			if jf.Lake == "" {
				return usageErrorf("--lake is required")
			}
			spec, err := jobSpec(&jf)
			if err != nil {
				return err
			}
			if workers < 1 || workers > 256 {
				return usageErrorf("--workers %d: want 1 to 256", workers)
			}
			if parallelism <= 0 {
				parallelism = max(1, runtime.GOMAXPROCS(0)/workers)
			}
			if cpuProfile != "" {
				stop, err := startCPUProfile(cpuProfile)
				if err != nil {
					return err
				}
				defer stop()
			}
			logger := slog.Default()
			if !cmd.Flags().Changed("log-level") { // keep the progress display readable
				logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
			}
			// The lake must exist before anything is created (the output).
			if err := requireStore("lake", spec.GetLakeUri()); err != nil {
				return err
			}
			// The workers may touch this job's lake and output, nothing else.
			var roots [2]string
			for i, uri := range []string{spec.GetLakeUri(), spec.GetOutUri()} {
				st, err := lake.Open(ctx, uri, s3)
				if err != nil {
					return usageErrorf("%w", err)
				}
				roots[i] = st.URI()
			}
			lcc := localClusterConfig{Workers: workers, Parallelism: parallelism, Logger: logger, S3: s3,
				LakeRoots: roots[:1], OutputRoots: roots[1:], TLS: !plaintext}
			if catalogURI != icetable.NoCatalog {
				lcc.Coordinator = func(c *coordinator.Config) {
					c.Publishers = append(c.Publishers, icetable.ResultPublisher{Catalog: catalogURI, PasswordFile: catalogPW, S3: s3})
					c.Planner = icetable.TablePlanner{Catalog: catalogURI, PasswordFile: catalogPW, S3: s3}
				}
			}
			lc, err := startLocalCluster(ctx, lcc)
			if err != nil {
				return err
			}
			defer lc.Close()
			c, err := lc.Dial()
			if err != nil {
				return err
			}
			defer c.Close()
			j, err := c.Submit(ctx, spec)
			if err != nil {
				return err
			}
			fmt.Fprintf(stderr, "job %s: %d workers on an embedded cluster\n", j.GetId(), workers)
			return waitJobThen(ctx, c, j.GetId(), stdout, stderr, true)
		},
	}
	fs := cmd.Flags()
	jf.AddFlags(fs, "lake URI (required)")
	s3.AddFlags(fs)
	fs.IntVar(&workers, "workers", max(1, runtime.GOMAXPROCS(0)), "workers to start")
	fs.IntVar(&parallelism, "parallelism", 0, "tasks per worker at once (0: GOMAXPROCS / workers, at least 1)")
	fs.StringVar(&catalogURI, "catalog", "", "Iceberg catalog of the result's aggregates table, sqlite:///path.db or postgres://user@host:port/db?sslmode=… (default: a file:// lake's own SQLite catalog); 'none': not published as a table")
	fs.StringVar(&catalogPW, "catalog-password-file", "", "file holding the password of a postgres:// --catalog (default: $PGPASSWORD, or ~/.pgpass)")
	fs.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run (coordinator and workers) to this file, for go tool pprof")
	fs.BoolVar(&plaintext, "plaintext", false, "plain-text gRPC between the embedded processes (default: mutual TLS with certificates made in memory for this run)")
	return cmd
}

// localCluster is an embedded etcd, a coordinator and workers in this
// process, talking gRPC over loopback; with TLS, over mutual TLS with
// certificates of a CA made in memory for the cluster's lifetime.
type localCluster struct {
	dir         string
	etcd        *cluster.Embedded
	etcdClient  interface{ Close() error }
	ca          *pki.CA // nil: plain text
	Coordinator *coordinator.Coordinator
	Workers     []*worker.Worker
}

// source returns TLS material for role and name from the cluster's CA, or
// nil without TLS.
func (lc *localCluster) source(role mtls.Role, name string) (*mtls.Source, error) {
	if lc.ca == nil {
		return nil, nil
	}
	id, err := mtls.NewIdentity(role, name)
	if err != nil {
		return nil, err
	}
	return mtls.Issue(lc.ca, id, "localhost")
}

// Dial returns a client of the coordinator, an operator with TLS.
func (lc *localCluster) Dial() (*coordinator.Client, error) {
	src, err := lc.source(mtls.RoleOperator, "local")
	if err != nil {
		return nil, err
	}
	return coordinator.Dial(lc.Coordinator.Addr(), 0, coordinator.WithTLS(src))
}

type localClusterConfig struct {
	Workers, Parallelism int
	Logger               *slog.Logger
	// S3 configures the stores of the coordinator and the workers.
	S3 lake.S3Options
	// LakeRoots and OutputRoots confine the workers' stores (worker.Config).
	LakeRoots, OutputRoots []string
	// TLS turns on mutual TLS between the processes.
	TLS bool
	// Coordinator and Worker adjust the default configurations.
	Coordinator func(*coordinator.Config)
	Worker      func(i int, cfg *worker.Config)
}

func startLocalCluster(ctx context.Context, lcfg localClusterConfig) (lc *localCluster, err error) {
	lc = &localCluster{}
	defer func() {
		if err != nil {
			lc.Close()
		}
	}()
	if lc.dir, err = os.MkdirTemp("", "clickstream-run-"); err != nil {
		return nil, err
	}
	if lcfg.TLS {
		if lc.ca, err = pki.NewCA("clickstream run", 24*time.Hour); err != nil {
			return nil, err
		}
	}
	lc.etcd, err = cluster.StartEmbedded(ctx, cluster.EmbeddedConfig{Dir: filepath.Join(lc.dir, "etcd"), Fast: true, NoFsync: true, LogLevel: "panic"})
	if err != nil {
		return nil, err
	}
	endpoints := strings.Join(lc.etcd.Endpoints(), ",")
	cli, err := cluster.Dial(ctx, lc.etcd.Endpoints(), cluster.EtcdAuth{})
	if err != nil {
		return nil, err
	}
	lc.etcdClient = cli
	ccfg := coordinator.NewConfig()
	ccfg.Listen, ccfg.Etcd = "127.0.0.1:0", endpoints
	ccfg.LeaderTTL = 2 * time.Second
	ccfg.S3 = lcfg.S3
	if lcfg.Coordinator != nil {
		lcfg.Coordinator(&ccfg)
	}
	if ccfg.TLSSource == nil {
		if ccfg.TLSSource, err = lc.source(mtls.RoleCoordinator, "local"); err != nil {
			return nil, err
		}
	}
	coord, err := coordinator.New(ccfg, cli, lcfg.Logger.With("component", "coordinator"), nil)
	if err != nil {
		return nil, err
	}
	if err := coord.Start(ctx); err != nil {
		return nil, err
	}
	lc.Coordinator = coord
	for i := range lcfg.Workers {
		wcfg := worker.NewConfig()
		wcfg.ID = fmt.Sprintf("local-%d", i+1)
		wcfg.Listen, wcfg.Etcd = "127.0.0.1:0", endpoints
		wcfg.Parallelism = lcfg.Parallelism
		wcfg.ShutdownTimeout = 5 * time.Second
		wcfg.S3 = lcfg.S3
		wcfg.LakeRoots, wcfg.OutputRoots = lcfg.LakeRoots, lcfg.OutputRoots
		if lcfg.Worker != nil {
			lcfg.Worker(i, &wcfg)
		}
		if wcfg.TLSSource == nil {
			if wcfg.TLSSource, err = lc.source(mtls.RoleWorker, wcfg.ID); err != nil {
				return nil, err
			}
		}
		w, err := worker.New(wcfg, lcfg.Logger.With("component", "worker"), nil)
		if err != nil {
			return nil, err
		}
		if err := w.Start(ctx); err != nil {
			return nil, err
		}
		lc.Workers = append(lc.Workers, w)
	}
	return lc, nil
}

// Close stops the coordinator (no new attempts; running ones are
// cancelled), then the workers, then etcd, and removes the temporary
// directory.
func (lc *localCluster) Close() {
	if lc.Coordinator != nil {
		_ = lc.Coordinator.Close()
	}
	for _, w := range lc.Workers {
		_ = w.Close()
	}
	if lc.etcdClient != nil {
		_ = lc.etcdClient.Close()
	}
	if lc.etcd != nil {
		lc.etcd.Close()
	}
	if lc.dir != "" {
		_ = os.RemoveAll(lc.dir)
	}
}

// startCPUProfile profiles this process's CPU into file until stop.
func startCPUProfile(file string) (stop func(), err error) {
	f, err := os.Create(file)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			slog.Warn("--cpuprofile: close", "file", file, "err", err)
		}
	}, nil
}
