package main

// The cluster commands: coordinator, worker, submit, status, cancel, and
// run (an embedded etcd, a coordinator and N workers in this process,
// speaking gRPC over loopback, through the same constructors as the
// cluster).

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dataco/clickstream/coordinator"
	"github.com/dataco/clickstream/indexer"
	"github.com/dataco/clickstream/internal/cluster"
	"github.com/dataco/clickstream/internal/results"
	pb "github.com/dataco/clickstream/proto/clickstream/v1"
	"github.com/dataco/clickstream/worker"
)

func init() {
	register("coordinator", "lead aggregation jobs: plan, lease tasks to workers, merge and commit results", runCoordinator)
	register("worker", "run aggregation tasks for the coordinator", runWorker)
	register("submit", "submit an aggregation job to a coordinator (--wait to follow it)", runSubmit)
	register("status", "show a job, or list jobs", runStatus)
	register("cancel", "cancel a job", runCancel)
	register("run", "run one aggregation job on this machine: embedded etcd, a coordinator and N workers", runLocal)
}

// envCoordinator names the default coordinator address of client commands.
const envCoordinator = "CLICKSTREAM_COORDINATOR"

// clusterEnv fills every flag not given on the command line from
// $CLICKSTREAM_<FLAG> (upper case, '-' as '_'), e.g. --etcd from
// $CLICKSTREAM_ETCD; --etcd also from $CLICKSTREAM_ETCD_ENDPOINTS.
func clusterEnv(fs *flag.FlagSet) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
			return
		}
		name := "CLICKSTREAM_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		v, ok := os.LookupEnv(name)
		if !ok && f.Name == "etcd" {
			v, ok = os.LookupEnv("CLICKSTREAM_ETCD_ENDPOINTS")
		}
		if ok && v != "" {
			if e := fs.Set(f.Name, v); e != nil {
				err = usageErrorf("$%s: %w", name, e)
			}
		}
	})
	return err
}

// clusterUsage prints the flags of fs except those whose usage starts with
// "hidden:".
func clusterUsage(fs *flag.FlagSet, synopsis string) func() {
	return func() {
		out := fs.Output()
		fmt.Fprintf(out, "Usage: clickstream %s\n\nFlags:\n", synopsis)
		fs.VisitAll(func(f *flag.Flag) {
			if strings.HasPrefix(f.Usage, "hidden:") {
				return
			}
			name, usage := flag.UnquoteUsage(f)
			fmt.Fprintf(out, "  --%s %s\n    \t%s", f.Name, name, usage)
			if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" && f.DefValue != "0s" {
				fmt.Fprintf(out, " (default %s)", f.DefValue)
			}
			fmt.Fprintln(out)
		})
	}
}

// parseClusterFlags parses flags and positional arguments in any order,
// then applies the environment.
func parseClusterFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.SetOutput(os.Stderr)
				fs.Usage()
				return nil, flag.ErrHelp
			}
			return nil, usageErrorf("%w", err)
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	return pos, clusterEnv(fs)
}

func runCoordinator(ctx context.Context, args []string, _ io.Writer) error {
	cfg := coordinator.NewConfig()
	fs := flag.NewFlagSet("coordinator", flag.ContinueOnError)
	cfg.AddFlags(fs)
	es := indexer.NewConfig()
	es.AddFlags(fs)
	fs.Usage = clusterUsage(fs, "coordinator [--etcd ENDPOINTS] [--listen ADDR] [--lake URI] [--schedule ...] [--es URL] [flags]")
	if pos, err := parseClusterFlags(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageErrorf("unexpected arguments: %v", pos)
	}
	if err := cfg.Validate(); err != nil {
		return usageErrorf("%w", err)
	}
	// Results are indexed when --es is given (or CLICKSTREAM_ES): the
	// Elasticsearch URL the stack exports for the index command alone does
	// not turn indexing on.
	if flagSet(fs, "es") {
		if err := es.Validate(); err != nil {
			return usageErrorf("%w", err)
		}
		ix, err := indexer.New(es, slog.Default(), prometheus.DefaultRegisterer)
		if err != nil {
			return err
		}
		defer ix.Close(context.WithoutCancel(ctx))
		cfg.Publishers = append(cfg.Publishers, ix)
	}
	return coordinator.Run(ctx, cfg)
}

func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func runWorker(ctx context.Context, args []string, _ io.Writer) error {
	cfg := worker.NewConfig()
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	cfg.AddFlags(fs)
	fs.Usage = clusterUsage(fs, "worker --etcd ENDPOINTS [--listen ADDR] [--advertise ADDR] [flags]")
	if pos, err := parseClusterFlags(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageErrorf("unexpected arguments: %v", pos)
	}
	if err := cfg.Validate(); err != nil {
		return usageErrorf("%w", err)
	}
	return worker.Run(ctx, cfg)
}

// jobFlags are the job-describing flags shared by submit and run.
type jobFlags struct {
	from, to, out, lake, format string
	sessionTimeout              time.Duration
	maxAttempts                 int
}

func (f *jobFlags) add(fs *flag.FlagSet, lakeUsage string) {
	fs.StringVar(&f.from, "from", "", "start of the window, inclusive (RFC 3339, e.g. 2026-11-27T00:00:00Z)")
	fs.StringVar(&f.to, "to", "", "end of the window, exclusive (RFC 3339)")
	fs.StringVar(&f.out, "out", "", "output URI (s3://bucket/prefix or file:///dir); a re-run replaces the result")
	fs.StringVar(&f.lake, "lake", "", lakeUsage)
	fs.StringVar(&f.format, "format", "ndjson", "result format: ndjson or csv")
	fs.DurationVar(&f.sessionTimeout, "session-timeout", 0, "session timeout (0: the coordinator's default, 30m)")
	fs.IntVar(&f.maxAttempts, "max-attempts", 0, "failed attempts of a task before the job fails (0: the coordinator's default)")
}

// spec validates the flags into a JobSpec. Relative file:// URIs are made
// absolute here, where they were meant.
func (f *jobFlags) spec() (*pb.JobSpec, error) {
	from, err := parseRFC3339("from", f.from)
	if err != nil {
		return nil, err
	}
	to, err := parseRFC3339("to", f.to)
	if err != nil {
		return nil, err
	}
	if !to.After(from) {
		return nil, usageErrorf("bad time range: --to %s must be after --from %s", f.to, f.from)
	}
	if f.out == "" {
		return nil, usageErrorf("--out is required")
	}
	format, err := results.ParseFormat(f.format)
	if err != nil {
		return nil, usageErrorf("--format: %w", err)
	}
	if f.sessionTimeout < 0 || f.maxAttempts < 0 {
		return nil, usageErrorf("--session-timeout and --max-attempts must not be negative")
	}
	s := &pb.JobSpec{
		From: timestamppb.New(from), To: timestamppb.New(to),
		OutUri: absFileURI(f.out), LakeUri: absFileURI(f.lake),
		Format: pb.OutputFormat_OUTPUT_FORMAT_NDJSON, MaxAttempts: int32(f.maxAttempts),
	}
	if format == results.CSV {
		s.Format = pb.OutputFormat_OUTPUT_FORMAT_CSV
	}
	if f.sessionTimeout > 0 {
		s.SessionTimeout = durationpb.New(f.sessionTimeout)
	}
	return s, nil
}

func parseRFC3339(name, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, usageErrorf("--%s is required (RFC 3339, e.g. 2026-11-27T00:00:00Z)", name)
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, usageErrorf("--%s %q is not an RFC 3339 time such as 2026-11-27T00:00:00Z or 2026-11-27T01:00:00+01:00", name, v)
	}
	return t.UTC(), nil
}

// absFileURI turns file://./rel into file:///abs, resolved against the
// working directory of this command rather than the coordinator's.
func absFileURI(uri string) string {
	rest, ok := strings.CutPrefix(uri, "file://")
	if !ok || strings.HasPrefix(rest, "/") || strings.HasPrefix(rest, "localhost/") {
		return uri
	}
	abs, err := filepath.Abs(filepath.FromSlash(rest))
	if err != nil {
		return uri
	}
	return "file://" + filepath.ToSlash(abs)
}

func stderrIsTerminal() bool {
	fi, err := os.Stderr.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// clientFlags are the flags of the commands that call a coordinator.
type clientFlags struct {
	addr    string
	timeout time.Duration
}

func (c *clientFlags) add(fs *flag.FlagSet) {
	c.addr = coordinator.DefaultAddr
	if v := os.Getenv(envCoordinator); v != "" {
		c.addr = v
	}
	fs.StringVar(&c.addr, "coordinator", c.addr, "coordinator addresses, comma-separated: any of them answers, and the client follows a failover (env "+envCoordinator+")")
	fs.DurationVar(&c.timeout, "timeout", coordinator.DefaultClientTimeout, "timeout of each request to the coordinator")
}

// waitJob follows a job with a progress display on stderr, prints its
// summary on stdout, and returns an error unless it succeeded.
func waitJob(ctx context.Context, c *coordinator.Client, id string, stdout io.Writer) error {
	p := coordinator.NewProgress(os.Stderr, stderrIsTerminal())
	j, err := c.Wait(ctx, id, p.Update)
	p.Done()
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return fmt.Errorf("stopped following job %s; it goes on (clickstream status %s, clickstream cancel %s)", id, id, id)
		}
		return fmt.Errorf("following job %s: %w", id, err)
	}
	coordinator.FormatSummary(stdout, j)
	switch j.GetState() {
	case pb.JobState_JOB_STATE_SUCCEEDED:
		if w := j.GetWarning(); w != "" {
			fmt.Fprintf(os.Stderr, "clickstream: warning: job %s: %s\n", id, w)
		}
		return nil
	case pb.JobState_JOB_STATE_CANCELLED:
		return fmt.Errorf("job %s was cancelled", id)
	}
	return fmt.Errorf("job %s failed: %s", id, j.GetError())
}

func runSubmit(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("submit", flag.ContinueOnError)
	var cf clientFlags
	cf.add(fs)
	var jf jobFlags
	jf.add(fs, "lake URI (default: the coordinator's --lake)")
	wait := fs.Bool("wait", false, "follow the job with a progress display until it ends; exit non-zero unless it succeeds")
	window := fs.Duration("window", 0, "backfill: one job per window of this length (aligned to the epoch), each under <out>/window=<start>")
	key := fs.String("idempotency-key", "", "a key naming this submission, so that submitting again with it does not make a second job (default: a random one; with --window, each window's key is KEY.<window start, Unix seconds>)")
	fs.Usage = clusterUsage(fs, "submit --from T --to T --out URI [--window D] [--coordinator ADDR[,ADDR...]] [--lake URI] [--format ndjson|csv] [--idempotency-key K] [--wait]")
	if pos, err := parseClusterFlags(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageErrorf("unexpected arguments: %v", pos)
	}
	spec, err := jf.spec()
	if err != nil {
		return err
	}
	if *window < 0 || (*window > 0 && *window%time.Second != 0) {
		return usageErrorf("--window %v: want a positive whole number of seconds", *window)
	}
	if *key == "" {
		*key = coordinator.NewIdempotencyKey()
	} else if err := cluster.ValidateID("idempotency key", *key); err != nil {
		return usageErrorf("--idempotency-key: %w", err)
	}
	c, err := coordinator.Dial(cf.addr, cf.timeout)
	if err != nil {
		return err
	}
	defer c.Close()
	if *window > 0 {
		return submitWindows(ctx, c, spec, *window, *key, *wait, stdout)
	}
	j, err := c.SubmitWithKey(ctx, spec, *key)
	if err != nil {
		if errors.Is(err, coordinator.ErrUnreachable) {
			return fmt.Errorf("%w\nthe job may have been recorded: submit again with --idempotency-key %s to get it rather than a second job", err, *key)
		}
		return err
	}
	if !*wait {
		fmt.Fprintln(stdout, j.GetId())
		return nil
	}
	fmt.Fprintf(os.Stderr, "submitted job %s\n", j.GetId())
	return waitJob(ctx, c, j.GetId(), stdout)
}

// submitWindows submits one job per window of spec's range, then, with
// wait, follows them in order; it fails if any job does not succeed.
func submitWindows(ctx context.Context, c *coordinator.Client, spec *pb.JobSpec, window time.Duration, key string, wait bool, stdout io.Writer) error {
	var ids []string
	for _, w := range coordinator.SplitWindows(spec.GetFrom().AsTime(), spec.GetTo().AsTime(), window) {
		ws := proto.Clone(spec).(*pb.JobSpec)
		ws.From, ws.To = timestamppb.New(w[0]), timestamppb.New(w[1])
		ws.OutUri = coordinator.WindowOut(spec.GetOutUri(), w[0])
		j, err := c.SubmitWithKey(ctx, ws, key+"."+strconv.FormatInt(w[0].Unix(), 10))
		if err != nil {
			return fmt.Errorf("window %s: %w", w[0].Format(time.RFC3339), err)
		}
		ids = append(ids, j.GetId())
		if !wait {
			fmt.Fprintln(stdout, j.GetId())
		}
	}
	if !wait {
		return nil
	}
	fmt.Fprintf(os.Stderr, "submitted %d jobs, one per %v window\n", len(ids), window)
	var failed []string
	for _, id := range ids {
		if err := waitJob(ctx, c, id, stdout); err != nil {
			if ctx.Err() != nil {
				return err
			}
			failed = append(failed, fmt.Sprintf("%s: %v", id, err))
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d window jobs failed:\n  %s", len(failed), len(ids), strings.Join(failed, "\n  "))
	}
	return nil
}

func runStatus(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	var cf clientFlags
	cf.add(fs)
	limit := fs.Int("limit", 20, "jobs to list")
	fs.Usage = clusterUsage(fs, "status [--coordinator ADDR[,ADDR...]] [JOB]")
	pos, err := parseClusterFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return usageErrorf("at most one job id, got %v", pos)
	}
	c, err := coordinator.Dial(cf.addr, cf.timeout)
	if err != nil {
		return err
	}
	defer c.Close()
	if len(pos) == 0 {
		jobs, err := c.List(ctx, *limit)
		if err != nil {
			return err
		}
		coordinator.FormatList(stdout, jobs)
		return nil
	}
	j, err := c.Get(ctx, pos[0])
	if err != nil {
		return err
	}
	coordinator.FormatStatus(stdout, j)
	return nil
}

func runCancel(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("cancel", flag.ContinueOnError)
	var cf clientFlags
	cf.add(fs)
	fs.Usage = clusterUsage(fs, "cancel [--coordinator ADDR[,ADDR...]] JOB")
	pos, err := parseClusterFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErrorf("want exactly one job id")
	}
	c, err := coordinator.Dial(cf.addr, cf.timeout)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.Cancel(ctx, pos[0]); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, cf.timeout)
	defer cancel()
	j, err := c.Wait(wctx, pos[0], nil)
	if err != nil {
		fmt.Fprintf(stdout, "job %s: cancel requested; the leader has not stopped it yet\n", pos[0])
		return nil
	}
	fmt.Fprintf(stdout, "job %s %s\n", j.GetId(), coordinator.StateName(j.GetState()))
	return nil
}

// runLocal is `clickstream run`: the whole cluster in this process.
func runLocal(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	var jf jobFlags
	jf.add(fs, "lake URI (required)")
	workers := fs.Int("workers", max(1, runtime.GOMAXPROCS(0)), "workers to start")
	parallelism := fs.Int("parallelism", 0, "tasks per worker at once (0: GOMAXPROCS / workers, at least 1)")
	fs.Usage = clusterUsage(fs, "run --lake URI --from T --to T --out URI [--workers N] [--format ndjson|csv]")
	if pos, err := parseClusterFlags(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageErrorf("unexpected arguments: %v", pos)
	}
	if jf.lake == "" {
		return usageErrorf("--lake is required")
	}
	spec, err := jf.spec()
	if err != nil {
		return err
	}
	if *workers < 1 || *workers > 256 {
		return usageErrorf("--workers %d: want 1 to 256", *workers)
	}
	if *parallelism <= 0 {
		*parallelism = max(1, runtime.GOMAXPROCS(0) / *workers)
	}
	logger := slog.Default()
	if os.Getenv("CLICKSTREAM_LOG_LEVEL") == "" { // keep the progress display readable
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	lc, err := startLocalCluster(ctx, localClusterConfig{Workers: *workers, Parallelism: *parallelism, Logger: logger})
	if err != nil {
		return err
	}
	defer lc.Close()
	c, err := coordinator.Dial(lc.Coordinator.Addr(), 0)
	if err != nil {
		return err
	}
	defer c.Close()
	j, err := c.Submit(ctx, spec)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "job %s: %d workers on an embedded cluster\n", j.GetId(), *workers)
	return waitJob(ctx, c, j.GetId(), stdout)
}

// localCluster is an embedded etcd, a coordinator and workers in this
// process, talking gRPC over loopback.
type localCluster struct {
	dir         string
	etcd        *cluster.Embedded
	etcdClient  interface{ Close() error }
	Coordinator *coordinator.Coordinator
	Workers     []*worker.Worker
}

type localClusterConfig struct {
	Workers, Parallelism int
	Logger               *slog.Logger
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
	lc.etcd, err = cluster.StartEmbedded(ctx, cluster.EmbeddedConfig{Dir: filepath.Join(lc.dir, "etcd"), Fast: true, NoFsync: true, LogLevel: "panic"})
	if err != nil {
		return nil, err
	}
	endpoints := strings.Join(lc.etcd.Endpoints(), ",")
	cli, err := cluster.Dial(ctx, lc.etcd.Endpoints())
	if err != nil {
		return nil, err
	}
	lc.etcdClient = cli
	ccfg := coordinator.NewConfig()
	ccfg.Listen, ccfg.Etcd = "127.0.0.1:0", endpoints
	ccfg.LeaderTTL = 2 * time.Second
	if lcfg.Coordinator != nil {
		lcfg.Coordinator(&ccfg)
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
		if lcfg.Worker != nil {
			lcfg.Worker(i, &wcfg)
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
