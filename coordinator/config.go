package coordinator

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/dataco/clickstream/internal/aggregate"
	"github.com/dataco/clickstream/internal/cluster"
	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/listen"
	"github.com/dataco/clickstream/internal/mtls"
	"github.com/dataco/clickstream/internal/obs"
)

// Defaults of Config.
const (
	DefaultListen = "127.0.0.1:7400"
	// DefaultHTTPListen is the address of the web UI (and /metrics,
	// /healthz, /readyz).
	DefaultHTTPListen   = "127.0.0.1:7480"
	DefaultEtcdListen   = "127.0.0.1:2379"
	DefaultDataDir      = "clickstream-etcd"
	DefaultMaxAttempts  = 3
	DefaultMaxLost      = 10
	DefaultRetryBackoff = time.Second
	// maxRetryBackoff caps RetryBackoff's doubling.
	maxRetryBackoff     = 30 * time.Second
	DefaultTaskTimeout  = time.Hour
	DefaultJobRetention = 30 * 24 * time.Hour
	// minVacuumAge bounds --vacuum-min-age from below.
	minVacuumAge           = 10 * time.Minute
	DefaultWorkerTTL       = 5 * time.Second
	DefaultLeaderTTL       = 5 * time.Second
	DefaultBackupAfter     = 5 * time.Second
	DefaultBackupFraction  = 0.1
	DefaultBackupRemaining = 2
	DefaultShutdownTimeout = 10 * time.Second
	DefaultMergeParallel   = 8
	DefaultPlanParallel    = 4
)

// Config configures a coordinator. Build it with NewConfig, bind it to
// flags with AddFlags, and check it with Validate.
type Config struct {
	// Listen is the gRPC listen address of the CoordinatorService.
	Listen string
	// Insecure allows listeners beyond loopback (gRPC, HTTP) although
	// their traffic is plain text; each start then logs a warning.
	Insecure bool
	// TLS names the certificate files that turn on mutual TLS for the
	// API and for calls to workers (see package mtls); TLSSource, if set,
	// is used instead (certificates made in memory).
	TLS       mtls.Files
	TLSSource *mtls.Source `json:"-"`
	// Advertise is the address other coordinators and users are told to
	// use for the leader; empty means the listener's address.
	Advertise string
	// Etcd lists etcd endpoints, comma-separated. Empty makes Run start an
	// embedded etcd in DataDir, serving clients on EtcdListen.
	Etcd       string
	EtcdPrefix string
	// EtcdAuth is the connection to etcd: TLS, and the credentials of an
	// etcd with authentication on.
	EtcdAuth   cluster.EtcdAuth
	DataDir    string
	EtcdListen string
	// Lake is the default lake URI of jobs that name none.
	Lake string
	// OutputRoots, if any, confine jobs' outputs: a job's output must be
	// one of them or below one (store URIs, see lake.Under). Required for
	// a coordinator listening beyond loopback.
	OutputRoots []string
	// SessionTimeout is the default session timeout of jobs.
	SessionTimeout time.Duration
	// MaxAttempts bounds the failed attempts of a task (errors reported by
	// a worker); the job fails with the last error after that many.
	MaxAttempts int
	// MaxLost bounds the attempts of a task lost with their worker (dead,
	// unreachable, shutting down) before the job fails.
	MaxLost int
	// RetryBackoff is how long a task whose attempt failed waits before it
	// runs again, doubling with each further failure (up to
	// maxRetryBackoff): a store or a worker that comes back within seconds
	// (a restart) costs the job time, not its attempts. Lost attempts are
	// retried at once, elsewhere.
	RetryBackoff time.Duration
	// TaskTimeout bounds one attempt of a task: a worker that is alive but
	// stuck (a hung store read, a wedged process) fails the attempt after
	// it, and the task runs again elsewhere; 0 means no bound.
	TaskTimeout time.Duration
	// WorkerTTL is the registration lease TTL the leader publishes for
	// workers that were given none: a dead worker's tasks are re-leased
	// this long after its last keep-alive.
	WorkerTTL time.Duration
	// LeaderTTL is the TTL of the coordinator's election session: a dead
	// leader is replaced this long after its last keep-alive.
	LeaderTTL time.Duration
	// Backups: when at most max(BackupRemaining, BackupFraction × tasks)
	// tasks of a job remain, a task whose only attempt has run longer than
	// max(BackupAfter, 2 × the median duration of the job's finished tasks)
	// gets a second attempt on another worker. BackupAfter < 0 disables
	// backups.
	BackupAfter     time.Duration
	BackupFraction  float64
	BackupRemaining int
	// JobRetention: the leader deletes the etcd records of jobs finished
	// longer ago than this (results stay in their store); 0 keeps them.
	JobRetention time.Duration
	// pruneInterval is how often the leader looks for such jobs (tests
	// shorten it); 0 means jobPruneInterval.
	pruneInterval time.Duration
	// testHook, if set, is called at every failpoint (see EnvCrashAt, and
	// pointLoad), on the goroutine that reaches it, with the context of the
	// step: tests stop or fault the coordinator at an exact step through it.
	testHook func(ctx context.Context, point string)
	// now, if set, is the clock of the submit rate limits (tests).
	now func() time.Time
	// VacuumEvery: the leader vacuums Lake this often (lake.Vacuum: files
	// no manifest names, older than VacuumMinAge, are deleted); 0 never.
	VacuumEvery  time.Duration
	VacuumMinAge time.Duration
	// MergeParallelism bounds the partials read at once when merging.
	MergeParallelism int
	// PlanningParallelism is the number of the leader's planners: the
	// jobs it plans (or whose plans it reloads, on taking over) at once.
	// The other jobs to plan wait in a queue, in the order they came.
	PlanningParallelism int
	// HTTPListen is the address of the coordinator's one HTTP listener:
	// the web UI at / (package ui), /metrics, /healthz and /readyz. It is
	// HTTPS with the certificates of the gRPC API when the coordinator has
	// them (TLS), and then the UI requires a client certificate of role
	// viewer, operator or coordinator; without them it may only be a
	// loopback address (unless Insecure). Empty: no HTTP listener.
	HTTPListen string
	// MetricsListen, if set, is the HTTP listener's address instead of
	// HTTPListen (its older name: one listener serves both).
	MetricsListen string
	// Pprof serves profiles on the HTTP listener, a loopback address.
	Pprof           bool
	ShutdownTimeout time.Duration
	// FastEtcd gives an embedded etcd test ticks (10 ms).
	FastEtcd bool
	S3       lake.S3Options

	// Schedule configures periodic processing of event-time windows.
	Schedule Schedule
	// Limits bound what clients may ask.
	Limits Limits

	// Runner runs task attempts on workers; nil means gRPC.
	Runner TaskRunner `json:"-"`
	// Publishers publish each succeeded job's result, in order; their
	// outcomes are recorded in the job status.
	Publishers []Publisher `json:"-"`
	// Planner lists the files a job reads; nil: the lake's manifests.
	Planner FilePlanner `json:"-"`
	// Inputs tells the scheduler when a window's input changed; nil (or
	// a lake without a table): the lake's manifests do.
	Inputs InputTracker `json:"-"`
	// Maintenance is work the leader does periodically, e.g. compacting
	// the lake's Iceberg table.
	Maintenance []Maintenance `json:"-"`
}

// FilePlanner lists the data files of a lake that a job over [from, to)
// reads (the look-ahead included): per user bucket, sorted by key, each
// with the size and event count it was committed with, and the snapshot of
// a table they are from (recorded in the plan). ok false: the lake has no
// such table, and the job is planned from the lake's manifests.
//
// A snapshot other than 0 asks for that snapshot of the table (time
// travel); 0, for the current one.
type FilePlanner interface {
	PlanFiles(ctx context.Context, lakeURI string, src lake.Store, from, to time.Time, snapshot int64) (files map[int][]lake.DataFile, planned int64, ok bool, err error)
}

// InputTracker tells the scheduler what the snapshots of a table over the
// lake say of its data (icetable.InputTracker), so that it detects late
// data from the table's append snapshots rather than the lake's
// manifests. ok false: the lake has no such table.
type InputTracker interface {
	TableInputs(ctx context.Context, lakeURI string, src lake.Store) (in lake.TableInputs, ok bool, err error)
}

// Maintenance is a periodic task of the leader: Run every Every while the
// coordinator leads, the first time at most a few minutes after the start.
// A failure is logged and counted; the task runs again next time.
type Maintenance struct {
	Name  string
	Every time.Duration
	Run   func(ctx context.Context, log *slog.Logger) error
}

// NewConfig returns the default configuration.
func NewConfig() Config {
	return Config{
		Listen:              DefaultListen,
		HTTPListen:          DefaultHTTPListen,
		EtcdPrefix:          cluster.DefaultPrefix,
		DataDir:             DefaultDataDir,
		EtcdListen:          DefaultEtcdListen,
		SessionTimeout:      aggregate.DefaultSessionTimeout,
		MaxAttempts:         DefaultMaxAttempts,
		MaxLost:             DefaultMaxLost,
		RetryBackoff:        DefaultRetryBackoff,
		TaskTimeout:         DefaultTaskTimeout,
		JobRetention:        DefaultJobRetention,
		VacuumMinAge:        lake.DefaultVacuumMinAge,
		WorkerTTL:           DefaultWorkerTTL,
		LeaderTTL:           DefaultLeaderTTL,
		BackupAfter:         DefaultBackupAfter,
		BackupFraction:      DefaultBackupFraction,
		BackupRemaining:     DefaultBackupRemaining,
		MergeParallelism:    DefaultMergeParallel,
		PlanningParallelism: DefaultPlanParallel,
		ShutdownTimeout:     DefaultShutdownTimeout,
		Schedule:            NewSchedule(),
		Limits:              NewLimits(),
	}
}

// ErrConfig wraps every configuration error.
var ErrConfig = fmt.Errorf("coordinator: invalid config")

// Validate checks the configuration.
func (c *Config) Validate() error {
	seen := map[string]bool{}
	for _, p := range c.Publishers {
		if p.Name() == "" || seen[p.Name()] {
			return fmt.Errorf("%w: publisher names must be unique and not empty (%q)", ErrConfig, p.Name())
		}
		seen[p.Name()] = true
	}
	switch {
	case c.Listen == "":
		return fmt.Errorf("%w: empty listen address", ErrConfig)
	case c.Etcd == "" && (c.DataDir == "" || c.EtcdListen == ""):
		return fmt.Errorf("%w: without --etcd, an embedded etcd needs --data-dir and --etcd-listen", ErrConfig)
	case c.SessionTimeout <= 0:
		return fmt.Errorf("%w: session timeout %v must be positive", ErrConfig, c.SessionTimeout)
	case c.MaxAttempts < 1 || c.MaxAttempts > 100:
		return fmt.Errorf("%w: max attempts %d: want 1 to 100", ErrConfig, c.MaxAttempts)
	case c.MaxLost < 1:
		return fmt.Errorf("%w: max lost attempts %d < 1", ErrConfig, c.MaxLost)
	case c.TaskTimeout < 0:
		return fmt.Errorf("%w: negative task timeout", ErrConfig)
	case c.RetryBackoff < 0 || c.RetryBackoff > maxRetryBackoff:
		return fmt.Errorf("%w: retry backoff %v: want 0 to %v", ErrConfig, c.RetryBackoff, maxRetryBackoff)
	case c.JobRetention < 0:
		return fmt.Errorf("%w: negative job retention", ErrConfig)
	case c.VacuumEvery < 0:
		return fmt.Errorf("%w: negative vacuum interval", ErrConfig)
	case slices.ContainsFunc(c.Maintenance, func(m Maintenance) bool { return m.Every <= 0 || m.Run == nil }):
		return fmt.Errorf("%w: a maintenance task needs a positive interval and a function", ErrConfig)
	case c.VacuumEvery > 0 && c.VacuumMinAge < minVacuumAge:
		// A file younger than the longest commit attempt may be one a
		// commit is still writing.
		return fmt.Errorf("%w: --vacuum-min-age %v: want at least %v (well above ingest's --commit-timeout)", ErrConfig, c.VacuumMinAge, minVacuumAge)
	case c.VacuumEvery > 0 && c.Lake == "":
		return fmt.Errorf("%w: --vacuum-every needs --lake", ErrConfig)
	case c.WorkerTTL < 2*time.Second:
		return fmt.Errorf("%w: worker TTL %v: want at least 2s", ErrConfig, c.WorkerTTL)
	case c.LeaderTTL < 2*time.Second:
		return fmt.Errorf("%w: leader TTL %v: want at least 2s", ErrConfig, c.LeaderTTL)
	case c.BackupFraction < 0 || c.BackupFraction > 1:
		return fmt.Errorf("%w: backup fraction %v: want 0 to 1", ErrConfig, c.BackupFraction)
	case c.BackupRemaining < 0:
		return fmt.Errorf("%w: backup remaining %d < 0", ErrConfig, c.BackupRemaining)
	case c.MergeParallelism < 1:
		return fmt.Errorf("%w: merge parallelism %d < 1", ErrConfig, c.MergeParallelism)
	case c.PlanningParallelism < 1:
		return fmt.Errorf("%w: --planning-parallelism %d < 1", ErrConfig, c.PlanningParallelism)
	case c.ShutdownTimeout < 0:
		return fmt.Errorf("%w: negative shutdown timeout", ErrConfig)
	}
	if err := c.EtcdAuth.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if err := c.S3.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if err := c.EtcdAuth.CheckEndpoints(c.Etcd); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if c.Etcd == "" && c.EtcdAuth.User != "" {
		return fmt.Errorf("%w: --etcd-user needs --etcd (the embedded etcd has no users)", ErrConfig)
	}
	if c.Etcd == "" && c.EtcdAuth.TLS.Enabled() {
		return fmt.Errorf("%w: --etcd-ca, --etcd-cert and --etcd-key need --etcd (the embedded etcd serves loopback only, in plain text)", ErrConfig)
	}
	if err := cluster.ValidatePrefix(c.EtcdPrefix); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if err := obs.CheckPprof(c.HTTPAddr(), c.Pprof); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if err := c.TLS.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	for _, l := range []struct {
		flag, addr string
		tls        bool
	}{{"--listen", c.Listen, c.TLSEnabled()}, {c.httpFlag(), c.HTTPAddr(), c.TLSEnabled()}} {
		if err := listen.Check(l.flag, l.addr, c.Insecure || l.tls); err != nil {
			return fmt.Errorf("%w: %w", ErrConfig, err)
		}
	}
	roots, err := lake.CanonicalRoots(c.OutputRoots)
	if err != nil {
		return fmt.Errorf("%w: --output-root: %w", ErrConfig, err)
	}
	c.OutputRoots = roots // compared with jobs' canonical outputs
	if len(c.OutputRoots) == 0 && !listen.Loopback(c.Listen) {
		return fmt.Errorf("%w: a coordinator listening on %s needs --output-root: without it, whoever reaches it chooses where results are written", ErrConfig, c.Listen)
	}
	if c.Etcd == "" {
		// The embedded etcd has no authentication: never beyond loopback.
		if err := listen.Check("--etcd-listen", c.EtcdListen, false); err != nil {
			return fmt.Errorf("%w: %w", ErrConfig, err)
		}
	}
	if err := c.Limits.Validate(); err != nil {
		return err
	}
	if c.Schedule.Enabled && c.Lake == "" {
		return fmt.Errorf("%w: --schedule needs --lake", ErrConfig)
	}
	if err := c.Schedule.Validate(); err != nil {
		return err
	}
	return c.withinLimits()
}

// HTTPAddr is the address of the coordinator's HTTP listener: MetricsListen
// if set, else HTTPListen; empty for none.
func (c *Config) HTTPAddr() string {
	if c.MetricsListen != "" {
		return c.MetricsListen
	}
	return c.HTTPListen
}

// httpFlag names the flag HTTPAddr comes from, for errors.
func (c *Config) httpFlag() string {
	if c.MetricsListen != "" {
		return "--metrics-listen"
	}
	return "--http-listen"
}

// TLSEnabled reports whether the coordinator uses mutual TLS.
func (c *Config) TLSEnabled() bool { return c.TLSSource != nil || c.TLS.Enabled() }

// withinLimits checks that the coordinator's own defaults and periodic
// windows pass its limits and roots, which would otherwise refuse every
// job that relies on them.
func (c *Config) withinLimits() error {
	if c.SessionTimeout > c.Limits.MaxSessionTimeout {
		return fmt.Errorf("%w: --session-timeout %v is longer than --max-session-timeout %v", ErrConfig, c.SessionTimeout, c.Limits.MaxSessionTimeout)
	}
	if !c.Schedule.Enabled {
		return nil
	}
	if c.Schedule.Window > c.Limits.MaxWindow {
		return fmt.Errorf("%w: --window %v is longer than --max-window %v", ErrConfig, c.Schedule.Window, c.Limits.MaxWindow)
	}
	out, err := lake.Canonical(c.Schedule.Out)
	if err != nil {
		return fmt.Errorf("%w: --schedule-out: %w", ErrConfig, err)
	}
	if len(c.OutputRoots) > 0 && !lake.Under(out, c.OutputRoots) {
		return fmt.Errorf("%w: --schedule-out %s is not under --output-root %s", ErrConfig, out, strings.Join(c.OutputRoots, ","))
	}
	if src, err := lake.Canonical(c.Lake); err == nil && overlaps(out, src) {
		return fmt.Errorf("%w: --schedule-out %s overlaps the lake %s", ErrConfig, out, src)
	}
	return nil
}

// AddFlags binds the configuration to flags of fs.
func (c *Config) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&c.Listen, "listen", c.Listen, "gRPC listen address (beyond loopback only with --insecure)")
	fs.BoolVar(&c.Insecure, "insecure", c.Insecure, "allow plain-text listeners beyond loopback (gRPC, HTTP); logs a warning at every start")
	c.TLS.AddFlags(fs)
	fs.StringVar(&c.Advertise, "advertise", c.Advertise, "address announced as the leader's (default: the listen address)")
	fs.StringVar(&c.Etcd, "etcd", c.Etcd, "etcd endpoints, comma-separated (empty: run an embedded etcd)")
	fs.StringVar(&c.EtcdPrefix, "etcd-prefix", c.EtcdPrefix, "prefix of the cluster's etcd keys")
	c.EtcdAuth.AddFlags(fs)
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "data directory of the embedded etcd (without --etcd)")
	fs.StringVar(&c.EtcdListen, "etcd-listen", c.EtcdListen, "client address of the embedded etcd (without --etcd)")
	fs.StringVar(&c.Lake, "lake", c.Lake, "default lake URI of jobs (s3://bucket/prefix or file:///dir)")
	fs.StringSliceVar(&c.OutputRoots, "output-root", c.OutputRoots, "jobs may write their results only at or below these URIs (repeatable, or comma-separated); required with a listener beyond loopback")
	fs.DurationVar(&c.SessionTimeout, "session-timeout", c.SessionTimeout, "default session timeout of jobs")
	fs.IntVar(&c.MaxAttempts, "max-attempts", c.MaxAttempts, "failed attempts of a task before its job fails")
	fs.IntVar(&c.MaxLost, "max-lost", c.MaxLost, "attempts of a task lost with their worker before its job fails")
	fs.DurationVar(&c.RetryBackoff, "retry-backoff", c.RetryBackoff, "wait before running a task again after a failed attempt, doubling with each further failure (up to 30s)")
	fs.DurationVar(&c.TaskTimeout, "task-timeout", c.TaskTimeout, "longest an attempt of a task may run before it fails and the task runs again (0: no limit)")
	fs.DurationVar(&c.WorkerTTL, "worker-ttl", c.WorkerTTL, "registration lease TTL of workers: how fast a dead worker's tasks move")
	fs.DurationVar(&c.LeaderTTL, "leader-ttl", c.LeaderTTL, "election lease TTL: how fast a standby replaces a dead leader")
	fs.DurationVar(&c.BackupAfter, "backup-after", c.BackupAfter, "minimum run time before a straggling task gets a backup attempt (<0: no backups)")
	fs.Float64Var(&c.BackupFraction, "backup-fraction", c.BackupFraction, "backups start when at most this fraction of a job's tasks remain")
	fs.IntVar(&c.BackupRemaining, "backup-remaining", c.BackupRemaining, "... or at most this many")
	fs.DurationVar(&c.VacuumEvery, "vacuum-every", c.VacuumEvery, "vacuum the lake this often: delete files no manifest names (0: never; see clickstream vacuum)")
	fs.DurationVar(&c.VacuumMinAge, "vacuum-min-age", c.VacuumMinAge, "age below which --vacuum-every leaves an unreferenced file alone")
	fs.DurationVar(&c.JobRetention, "job-retention", c.JobRetention, "delete the records of jobs finished longer ago than this (0: keep them)")
	fs.IntVar(&c.MergeParallelism, "merge-parallelism", c.MergeParallelism, "partials read at once when merging")
	fs.IntVar(&c.PlanningParallelism, "planning-parallelism", c.PlanningParallelism, "jobs the leader plans at once (reading the lake's manifests); the others wait their turn in order")
	fs.StringVar(&c.HTTPListen, "http-listen", c.HTTPListen, "serve the web UI at / (with /metrics, /healthz, /readyz) on this address: HTTPS with the --tls-* certificates, then for clients of role viewer, operator or coordinator; without them a loopback address only, unless --insecure (empty: off)")
	fs.StringVar(&c.MetricsListen, "metrics-listen", c.MetricsListen, "older name of --http-listen: if set, the one HTTP listener (UI, /metrics, /healthz, /readyz) is on this address instead")
	obs.AddPprofFlag(fs, &c.Pprof)
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "how long open RPCs may finish on shutdown")
	c.S3.AddFlags(fs)
	c.Schedule.AddFlags(fs)
	c.Limits.AddFlags(fs)
}
