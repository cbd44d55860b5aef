package coordinator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/net/netutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/dataco/clickstream/internal/cluster"
	"github.com/dataco/clickstream/internal/failpoint"
	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/listen"
	"github.com/dataco/clickstream/internal/mtls"
	"github.com/dataco/clickstream/internal/obs"
	pb "github.com/dataco/clickstream/proto/clickstream/v1"
)

// ErrClosed is returned by Start on a closed coordinator.
var ErrClosed = errors.New("coordinator: closed")

// Coordinator serves CoordinatorService and, while it leads the cluster,
// runs jobs. Several may run against one etcd: one leads, the others stand
// by, and all of them answer the API from etcd.
type Coordinator struct {
	pb.UnimplementedCoordinatorServiceServer

	cfg     Config
	cli     *clientv3.Client
	logger  *slog.Logger
	metrics *metrics
	keys    cluster.Keys
	runner  TaskRunner
	grpcRun *grpcRunner // runner when cfg.Runner is nil
	// verifier checks new workers' identities before they get tasks; nil:
	// every registration is taken as it is (plain text).
	verifier workerVerifier

	lis  net.Listener
	srv  *grpc.Server
	addr string
	tls  *mtls.Source // nil: plain text

	// base ends the leadership loop and open WatchJob streams on Close.
	base   context.Context
	stop   context.CancelFunc
	loops  sync.WaitGroup
	closed atomic.Bool
	leader atomic.Bool
	// running is set once Start serves; health is the gRPC health
	// service, its status following Ready.
	running atomic.Bool
	health  *obs.Health
	// watches counts the open WatchJob streams (Limits.MaxWatchStreams).
	watches atomic.Int64
	// submits holds each caller's submit rate (Limits.MaxSubmitRate).
	submits *submitLimiter

	stores *lake.Stores
	crash  *failpoint.Point // nil except in crash tests
}

// New returns a coordinator using the etcd client cli, which the caller
// keeps and closes after Close. logger nil discards logs; reg nil
// registers no metrics.
func New(cfg Config, cli *clientv3.Client, logger *slog.Logger, reg prometheus.Registerer) (*Coordinator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cli == nil {
		return nil, fmt.Errorf("coordinator: nil etcd client")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	crash, err := crashFromEnv()
	if err != nil {
		return nil, fmt.Errorf("coordinator: %w", err)
	}
	c := &Coordinator{
		crash:   crash,
		cfg:     cfg,
		cli:     cli,
		logger:  logger,
		metrics: newMetrics(reg),
		keys:    cluster.Keys{Prefix: cfg.EtcdPrefix},
		runner:  cfg.Runner,
		stores:  lake.NewStores(cfg.S3),
		submits: newSubmitLimiter(cfg.Limits.MaxSubmitRate, cfg.Limits.MaxSubmitBurst, maxSubmitters, cfg.now),
	}
	c.tls = cfg.TLSSource
	if c.tls == nil && cfg.TLS.Enabled() {
		if c.tls, err = mtls.Load(cfg.TLS); err != nil {
			return nil, fmt.Errorf("coordinator: %w", err)
		}
	}
	if c.tls != nil {
		if id := c.tls.Identity(); id.Role != mtls.RoleCoordinator {
			return nil, fmt.Errorf("%w: the certificate names %s; a coordinator needs role %s", ErrConfig, id, mtls.RoleCoordinator)
		}
	}
	if c.runner == nil {
		c.grpcRun = newGRPCRunner(c.tls)
		c.runner = c.grpcRun
	}
	if v, ok := c.runner.(workerVerifier); ok && (c.grpcRun == nil || c.tls != nil) {
		c.verifier = v
	}
	c.health = obs.NewHealth(c.Ready, pb.CoordinatorService_ServiceDesc.ServiceName)
	return c, nil
}

// Ready reports whether the coordinator serves its API: it has started,
// is not closing, and reaches etcd, which holds everything it answers
// from. A standby is as ready as the leader; a leader that loses its
// term becomes a standby (IsLeader). It returns nil when ready, else why
// not.
func (c *Coordinator) Ready(ctx context.Context) error {
	switch {
	case !c.running.Load():
		return errNotStarted
	case c.closed.Load():
		return ErrClosed
	}
	if _, err := c.cli.Get(ctx, cluster.PingKey); err != nil {
		return fmt.Errorf("etcd: %w", err)
	}
	return nil
}

var errNotStarted = errors.New("coordinator: not started")

// Start listens, serves the API and starts campaigning for leadership. The
// caller must Close the coordinator.
func (c *Coordinator) Start(ctx context.Context) error {
	if c.closed.Load() {
		return ErrClosed
	}
	lis, err := net.Listen("tcp", c.cfg.Listen)
	if err != nil {
		return fmt.Errorf("coordinator: listen: %w", err)
	}
	if c.tls == nil && !listen.Loopback(c.cfg.Listen) {
		c.logger.Warn("INSECURE: serving plain-text gRPC beyond loopback (--insecure): anyone who reaches this port can submit and cancel jobs", "listen", c.cfg.Listen)
	}
	// Connections beyond the limit wait in the backlog: idle clients
	// cannot hold the coordinator's memory without bound.
	lis = netutil.LimitListener(lis, c.cfg.Limits.MaxConnections)
	c.lis = lis
	c.addr = c.cfg.Advertise
	if c.addr == "" {
		c.addr = advertised(lis.Addr())
	}
	c.base, c.stop = context.WithCancel(context.WithoutCancel(ctx))
	opts := []grpc.ServerOption{
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
	}
	if c.tls != nil {
		opts = append(opts, mtls.ServerOptions(c.tls, Policy)...)
	}
	c.srv = grpc.NewServer(opts...)
	pb.RegisterCoordinatorServiceServer(c.srv, c)
	c.health.Register(c.srv)
	c.running.Store(true)
	_ = c.health.Update(ctx)
	if c.cfg.Schedule.Enabled {
		c.loops.Add(1)
		go func() {
			defer c.loops.Done()
			c.runSchedule(c.base, c.cfg.Schedule)
		}()
	}
	maintenance := c.cfg.Maintenance
	if c.cfg.VacuumEvery > 0 {
		maintenance = append(slices.Clone(maintenance), Maintenance{Name: "vacuum", Every: c.cfg.VacuumEvery, Run: c.vacuum})
	}
	for _, m := range maintenance {
		c.loops.Add(1)
		go func() {
			defer c.loops.Done()
			c.runMaintenance(c.base, m)
		}()
	}
	c.loops.Add(3)
	go func() {
		defer c.loops.Done()
		c.health.Run(c.base)
	}()
	go func() {
		defer c.loops.Done()
		if err := c.srv.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			c.logger.Error("grpc server stopped", "err", err)
		}
	}()
	go func() {
		defer c.loops.Done()
		c.campaign(c.base)
	}()
	c.logger.Info("coordinator started", "addr", c.addr, "tls", c.tlsIdentity(), "etcd_prefix", c.cfg.EtcdPrefix, "lake", c.cfg.Lake)
	return nil
}

// vacuum vacuums the lake once (Maintenance "vacuum", every VacuumEvery).
func (c *Coordinator) vacuum(ctx context.Context, log *slog.Logger) error {
	log = log.With("lake", c.cfg.Lake)
	store, err := c.store(ctx, c.cfg.Lake)
	if err == nil {
		var rep lake.VacuumReport
		rep, err = lake.Vacuum(ctx, store, c.cfg.VacuumMinAge, false)
		c.metrics.vacuumDeleted.Add(float64(rep.Deleted))
		if err == nil {
			log.Info("lake vacuumed", "referenced", rep.Referenced, "orphans", len(rep.Orphans),
				"deleted", rep.Deleted, "bytes", rep.Bytes, "young", rep.Young)
		}
	}
	if err != nil && ctx.Err() == nil {
		c.metrics.vacuumFailures.Inc()
	}
	return err
}

// vacuumFirstAfter is how long after its start a coordinator first
// vacuums the lake, or does other maintenance.
const vacuumFirstAfter = 5 * time.Minute

// runMaintenance runs m every m.Every while this coordinator leads, until
// ctx is done. The first run comes a few minutes after the start (at most
// m.Every), so that restarts more frequent than the interval do not keep
// postponing it; a coordinator that is not leading when one is due runs it
// as soon as it leads.
func (c *Coordinator) runMaintenance(ctx context.Context, m Maintenance) {
	log := c.logger.With("component", m.Name)
	next := time.Now().Add(min(m.Every, vacuumFirstAfter))
	t := time.NewTicker(min(m.Every, time.Minute))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if time.Now().Before(next) || !c.IsLeader() {
			continue
		}
		next = time.Now().Add(m.Every)
		if err := m.Run(ctx, log); err != nil && ctx.Err() == nil {
			c.metrics.maintenanceFailures.WithLabelValues(m.Name).Inc()
			log.Warn("maintenance failed; trying again next time", "err", err)
		}
	}
}

func advertised(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok {
		return a.String()
	}
	if tcp.IP == nil || tcp.IP.IsUnspecified() {
		host, err := os.Hostname()
		if err != nil {
			host = "localhost"
		}
		return net.JoinHostPort(host, fmt.Sprint(tcp.Port))
	}
	return tcp.String()
}

// Addr returns the coordinator's advertised gRPC address; valid after Start.
func (c *Coordinator) Addr() string { return c.addr }

// IsLeader reports whether the coordinator leads the cluster now.
func (c *Coordinator) IsLeader() bool { return c.leader.Load() }

// Close stops the coordinator, in this order:
//  1. it turns its gRPC health NOT_SERVING and stops leading: running task attempts are cancelled (the workers
//     drop them) and the election is resigned, so that a standby takes
//     over at once; job state stays in etcd for the next leader;
//  2. it ends WatchJob streams (clients reconnect) and stops the gRPC
//     server gracefully for at most Config.ShutdownTimeout, then hard;
//  3. it closes its connections to workers.
//
// The etcd client belongs to the caller.
func (c *Coordinator) Close() error {
	if c.closed.Swap(true) || c.srv == nil {
		return nil
	}
	c.health.Shutdown()
	c.stop()
	done := make(chan struct{})
	go func() {
		c.srv.GracefulStop()
		close(done)
	}()
	timer := time.NewTimer(c.cfg.ShutdownTimeout)
	select {
	case <-done:
	case <-timer.C:
		c.srv.Stop()
		<-done
	}
	timer.Stop()
	c.loops.Wait()
	if c.grpcRun != nil {
		c.grpcRun.Close()
	}
	c.logger.Info("coordinator stopped")
	return nil
}

// store returns the store at uri, opening it once.
func (c *Coordinator) store(ctx context.Context, uri string) (lake.Store, error) {
	return c.stores.Open(ctx, uri)
}

// output returns the output store at uri, opening it once: with
// --output-root, under those roots (lake.OpenUnder), so that neither a URI
// outside them nor a symbolic link below them leads a job's plan,
// partials or result elsewhere (lake.ErrOutsideRoot).
func (c *Coordinator) output(ctx context.Context, uri string) (lake.Store, error) {
	if len(c.cfg.OutputRoots) == 0 {
		return c.stores.Open(ctx, uri)
	}
	return c.stores.OpenUnder(ctx, uri, c.cfg.OutputRoots)
}

// Run runs a coordinator until ctx ends: it connects to etcd (or starts an
// embedded one when cfg.Etcd is empty), serves the web UI, /metrics,
// /healthz and /readyz (following Ready) on cfg.HTTPAddr() when set, and
// closes everything in reverse order on the way out: the coordinator, the
// HTTP server, the etcd client, the embedded etcd. The coordinator's API
// address is bound before the HTTP one: an HTTP address of port 0 must not
// be given the port the API was told to serve on.
func Run(ctx context.Context, cfg Config, rt obs.Runtime) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	logger := rt.Log()
	reg := rt.Reg()
	endpoints := cluster.ParseEndpoints(cfg.Etcd)
	if len(endpoints) == 0 {
		srv, err := cluster.StartEmbedded(ctx, cluster.EmbeddedConfig{
			Dir: cfg.DataDir, ClientAddr: cfg.EtcdListen, Fast: cfg.FastEtcd,
		})
		if err != nil {
			return fmt.Errorf("coordinator: %w", err)
		}
		defer srv.Close() // last: after the coordinator let go of it
		endpoints = srv.Endpoints()
		logger.Info("embedded etcd started", "endpoints", endpoints, "dir", cfg.DataDir)
	}
	cli, err := cluster.Dial(ctx, endpoints, cfg.EtcdAuth)
	if err != nil {
		return fmt.Errorf("coordinator: %w", err)
	}
	defer cli.Close()
	c, err := New(cfg, cli, logger, reg)
	if err != nil {
		return err
	}
	if err := c.Start(ctx); err != nil {
		return err
	}
	if addr := cfg.HTTPAddr(); addr != "" {
		h, err := c.UI()
		if err != nil {
			return errors.Join(err, c.Close())
		}
		opts := obs.Options{Mount: h.Mount}
		if c.tls != nil {
			opts.TLS = mtls.ServerTLSConfig(c.tls)
		}
		hsrv, err := obs.StartWith(addr, cfg.Pprof, obs.Gatherer(reg), logger, opts)
		if err != nil {
			return errors.Join(fmt.Errorf("coordinator: %w", err), c.Close())
		}
		defer hsrv.Close()
		hsrv.AddCheck("coordinator", c.Ready)
		logger.Info("serving the web UI", "url", uiURL(hsrv.Addr(), c.tls != nil))
	}
	select {
	case <-ctx.Done():
	case <-c.base.Done():
	}
	return c.Close()
}

// uiURL is the URL of the web UI served on addr.
func uiURL(addr string, https bool) string {
	if https {
		return "https://" + addr + "/"
	}
	return "http://" + addr + "/"
}
