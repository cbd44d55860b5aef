package worker

import (
	"fmt"
	"runtime"
	"time"

	"github.com/spf13/pflag"

	"github.com/dataco/clickstream/internal/cluster"
	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/listen"
	"github.com/dataco/clickstream/internal/mtls"
	"github.com/dataco/clickstream/internal/obs"
)

// Defaults of Config.
const (
	DefaultListen          = "127.0.0.1:7401"
	DefaultLeaseTTL        = 5 * time.Second
	DefaultShutdownTimeout = 30 * time.Second
	// DefaultFetchParallelism bounds the lake reads of one task.
	DefaultFetchParallelism = 4
)

// Config configures a worker. Build it with NewConfig, bind it to flags with
// AddFlags, and check it with Validate.
type Config struct {
	// ID names the worker in etcd; empty means host-random.
	ID string
	// Listen is the gRPC listen address of the WorkerService.
	Listen string
	// Advertise is the address the coordinator dials; empty means the
	// listener's address (with the host name when listening on all
	// interfaces).
	Advertise string
	// Etcd lists the etcd endpoints, comma-separated.
	Etcd string
	// EtcdPrefix roots the cluster's keys.
	EtcdPrefix string
	// EtcdAuth is the connection to etcd: TLS, and the credentials of an
	// etcd with authentication on (the clickstream-worker role: see
	// cluster.SetupAuth).
	EtcdAuth cluster.EtcdAuth
	// LeaseTTL is the TTL of the worker's registration lease: a worker that
	// dies loses its tasks this long after its last keep-alive. Zero means
	// the cluster's setting (coordinator --worker-ttl), else DefaultLeaseTTL.
	LeaseTTL time.Duration
	// Parallelism bounds the tasks run at once; zero means GOMAXPROCS.
	Parallelism int
	// FetchParallelism bounds the concurrent lake reads of one task.
	FetchParallelism int
	// Slow makes every task sleep this long first (tests of stragglers).
	Slow time.Duration
	// MetricsListen serves /metrics when set (Run only).
	MetricsListen string
	// Pprof serves profiles on MetricsListen, a loopback address.
	Pprof bool
	// Insecure allows listeners beyond loopback (gRPC, metrics) although
	// their traffic is plain text; each start then logs a warning.
	Insecure bool
	// TLS names the certificate files that turn on mutual TLS (see
	// package mtls): the worker then serves only callers with the
	// coordinator role, and its certificate must name its ID
	// (spiffe://clickstream/worker/<ID>); an empty ID takes the
	// certificate's. TLSSource, if set, is used instead.
	TLS       mtls.Files
	TLSSource *mtls.Source `json:"-"`
	// ShutdownTimeout bounds the wait for running tasks on shutdown.
	ShutdownTimeout time.Duration
	// S3 configures the s3:// stores a task reads or writes.
	S3 lake.S3Options
	// LakeRoots and OutputRoots confine a task's stores: its lake must be
	// one of LakeRoots or under one, its partial's store one of
	// OutputRoots or under one (store URIs, see lake.Open). A task naming
	// any other store is refused (PermissionDenied): whoever reaches the
	// worker chooses no path outside them.
	LakeRoots, OutputRoots []string
}

// NewConfig returns the default configuration.
func NewConfig() Config {
	return Config{
		Listen:           DefaultListen,
		EtcdPrefix:       cluster.DefaultPrefix,
		FetchParallelism: DefaultFetchParallelism,
		ShutdownTimeout:  DefaultShutdownTimeout,
	}
}

// ErrConfig wraps every configuration error.
var ErrConfig = fmt.Errorf("worker: invalid config")

// Validate checks the configuration.
func (c *Config) Validate() error {
	if err := obs.CheckPprof(c.MetricsListen, c.Pprof); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if err := c.TLS.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	tlsOn := c.TLSSource != nil || c.TLS.Enabled()
	for _, l := range []struct {
		flag, addr string
		tls        bool
	}{{"--listen", c.Listen, tlsOn}, {"--metrics-listen", c.MetricsListen, false}} {
		if err := listen.Check(l.flag, l.addr, c.Insecure || l.tls); err != nil {
			return fmt.Errorf("%w: %w", ErrConfig, err)
		}
	}
	switch {
	case c.Listen == "":
		return fmt.Errorf("%w: empty listen address", ErrConfig)
	case len(cluster.ParseEndpoints(c.Etcd)) == 0:
		return fmt.Errorf("%w: no etcd endpoints (--etcd or $CLICKSTREAM_ETCD)", ErrConfig)
	case c.LeaseTTL < 0 || (c.LeaseTTL > 0 && c.LeaseTTL < 2*time.Second):
		return fmt.Errorf("%w: lease TTL %v: want 0 (cluster setting) or at least 2s", ErrConfig, c.LeaseTTL)
	case c.Parallelism < 0:
		return fmt.Errorf("%w: parallelism %d < 0", ErrConfig, c.Parallelism)
	case c.FetchParallelism < 0:
		return fmt.Errorf("%w: fetch parallelism %d < 0", ErrConfig, c.FetchParallelism)
	case c.Slow < 0 || c.ShutdownTimeout < 0:
		return fmt.Errorf("%w: negative duration", ErrConfig)
	}
	if c.ID != "" {
		if err := cluster.ValidateID("worker", c.ID); err != nil {
			return fmt.Errorf("%w: %w", ErrConfig, err)
		}
	}
	for _, r := range []struct {
		flag  string
		roots *[]string
	}{{"--lake-root", &c.LakeRoots}, {"--output-root", &c.OutputRoots}} {
		if len(*r.roots) == 0 {
			return fmt.Errorf("%w: %s is required: the stores a task may name are the worker's to choose", ErrConfig, r.flag)
		}
		canonical, err := lake.CanonicalRoots(*r.roots)
		if err != nil {
			return fmt.Errorf("%w: %s: %w", ErrConfig, r.flag, err)
		}
		*r.roots = canonical // compared with tasks' canonical stores
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
	if err := cluster.ValidatePrefix(c.EtcdPrefix); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return nil
}

func (c *Config) parallelism() int {
	if c.Parallelism > 0 {
		return c.Parallelism
	}
	return runtime.GOMAXPROCS(0)
}

// AddFlags binds the configuration to flags of fs. The --slow flag is for
// tests; its usage starts with "hidden:".
func (c *Config) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&c.ID, "id", c.ID, "worker id in etcd (default host name plus a random suffix)")
	fs.StringVar(&c.Listen, "listen", c.Listen, "gRPC listen address (beyond loopback only with --insecure)")
	fs.BoolVar(&c.Insecure, "insecure", c.Insecure, "allow plain-text listeners beyond loopback (gRPC, metrics); logs a warning at every start")
	c.TLS.AddFlags(fs)
	fs.StringVar(&c.Advertise, "advertise", c.Advertise, "address the coordinator dials (default: the listen address, host name if listening on all interfaces)")
	fs.StringVar(&c.Etcd, "etcd", c.Etcd, "etcd endpoints, comma-separated")
	fs.StringVar(&c.EtcdPrefix, "etcd-prefix", c.EtcdPrefix, "prefix of the cluster's etcd keys")
	fs.StringSliceVar(&c.LakeRoots, "lake-root", c.LakeRoots, "a lake this worker may read, or a URI above lakes it may read (repeatable, or comma-separated); required")
	fs.StringSliceVar(&c.OutputRoots, "output-root", c.OutputRoots, "an output store this worker may write partials to, or a URI above them (repeatable, or comma-separated); required")
	c.EtcdAuth.AddFlags(fs)
	fs.DurationVar(&c.LeaseTTL, "ttl", c.LeaseTTL, "registration lease TTL (0: the cluster's --worker-ttl, else 5s)")
	fs.IntVar(&c.Parallelism, "parallelism", c.Parallelism, "tasks run at once (0: GOMAXPROCS)")
	fs.IntVar(&c.FetchParallelism, "fetch-parallelism", c.FetchParallelism, "concurrent lake reads per task")
	fs.StringVar(&c.MetricsListen, "metrics-listen", c.MetricsListen, "serve Prometheus /metrics on this address (empty: off)")
	obs.AddPprofFlag(fs, &c.Pprof)
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "how long running tasks may finish on shutdown")
	fs.DurationVar(&c.Slow, "slow", c.Slow, "hidden: sleep this long at the start of every task (tests)")
	c.S3.AddFlags(fs)
}
