package worker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
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

// ErrClosed is returned by Start on a closed worker.
var ErrClosed = errors.New("worker: closed")

// Worker runs tasks for the leading coordinator: it serves WorkerService
// over gRPC and keeps itself registered in etcd under a lease.
type Worker struct {
	pb.UnimplementedWorkerServiceServer

	cfg     Config
	logger  *slog.Logger
	metrics *metrics
	keys    cluster.Keys
	id      string
	sem     chan struct{} // one token per running task

	cli     *clientv3.Client
	lis     net.Listener
	srv     *grpc.Server
	addr    string
	tls     *mtls.Source // nil: plain text
	started time.Time

	// base is cancelled by Close after the graceful drain: it ends task
	// computations and the registration loop.
	base     context.Context
	stop     context.CancelFunc
	loops    sync.WaitGroup // the registration loop and the gRPC server
	tasks    sync.WaitGroup // task computations
	draining atomic.Bool
	closed   atomic.Bool
	// running is set once Start has connected to etcd; registered while
	// the registration lease is alive.
	running    atomic.Bool
	registered atomic.Bool
	// health is the gRPC health service; its status follows Ready.
	health *obs.Health

	leaseMu sync.Mutex
	lease   clientv3.LeaseID
	// regMu orders the writes of the registration (counts, draining), so
	// that none overwrites a newer one; published are the counts last
	// written.
	regMu     sync.Mutex
	published [2]int64
	// Attempts finished and failed (cancelled ones in neither).
	tasksDone, tasksFailed atomic.Int64

	stores *lake.Stores
	crash  *failpoint.Point // nil except in crash tests

	runsMu sync.Mutex
	runs   map[attemptKey]*run
}

// New returns a worker for cfg. logger nil discards logs; reg nil
// registers no metrics.
func New(cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Worker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	crash, err := crashFromEnv()
	if err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	src := cfg.TLSSource
	if src == nil && cfg.TLS.Enabled() {
		if src, err = mtls.Load(cfg.TLS); err != nil {
			return nil, fmt.Errorf("worker: %w", err)
		}
	}
	id := cfg.ID
	if src != nil {
		cert := src.Identity()
		switch {
		case cert.Role != mtls.RoleWorker:
			return nil, fmt.Errorf("%w: the certificate names %s; a worker needs role %s", ErrConfig, cert, mtls.RoleWorker)
		case id == "":
			id = cert.Name
		case id != cert.Name:
			return nil, fmt.Errorf("%w: --id %q differs from the certificate's identity %s: the coordinator would refuse to send it tasks", ErrConfig, id, cert)
		}
	}
	if id == "" {
		id = defaultID()
	}
	w := &Worker{
		tls:     src,
		crash:   crash,
		cfg:     cfg,
		logger:  logger.With("worker", id),
		metrics: newMetrics(reg),
		keys:    cluster.Keys{Prefix: cfg.EtcdPrefix},
		id:      id,
		sem:     make(chan struct{}, cfg.parallelism()),
		stores:  lake.NewStores(cfg.S3),
		runs:    make(map[attemptKey]*run),
	}
	w.health = obs.NewHealth(w.Ready, pb.WorkerService_ServiceDesc.ServiceName)
	return w, nil
}

// Ready reports whether the worker takes tasks: it has started, reaches
// etcd, holds its registration lease and is not draining. It returns nil
// when ready, else why not.
func (w *Worker) Ready(ctx context.Context) error {
	switch {
	case !w.running.Load():
		return errNotStarted
	case w.draining.Load():
		return errDraining
	case !w.registered.Load():
		return errUnregistered
	}
	if _, err := w.cli.Get(ctx, cluster.PingKey); err != nil {
		return fmt.Errorf("etcd: %w", err)
	}
	return nil
}

var (
	errNotStarted   = errors.New("worker: not started")
	errDraining     = errors.New("worker: draining")
	errUnregistered = errors.New("worker: registration lease lost; registering again")
)

func defaultID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "worker"
	}
	host = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' {
			return r
		}
		return '-'
	}, host)
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%.60s-%s", host, hex.EncodeToString(b[:]))
}

// ID returns the worker's id in etcd.
func (w *Worker) ID() string { return w.id }

// Addr returns the advertised address of the worker's gRPC server; valid
// after Start.
func (w *Worker) Addr() string { return w.addr }

// Start connects to etcd, starts serving gRPC and registers the worker.
// When Start returns nil the worker is visible to the coordinator; the
// caller must Close it.
func (w *Worker) Start(ctx context.Context) error {
	if w.closed.Load() {
		return ErrClosed
	}
	cli, err := cluster.Dial(ctx, cluster.ParseEndpoints(w.cfg.Etcd), w.cfg.EtcdAuth)
	if err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	lis, err := net.Listen("tcp", w.cfg.Listen)
	if err != nil {
		cli.Close()
		return fmt.Errorf("worker: listen: %w", err)
	}
	if w.tls == nil && !listen.Loopback(w.cfg.Listen) {
		w.logger.Warn("INSECURE: serving plain-text gRPC beyond loopback (--insecure): anyone who reaches this port can run tasks", "listen", w.cfg.Listen)
	}
	w.cli, w.lis = cli, lis
	w.addr = advertised(w.cfg.Advertise, lis.Addr())
	w.started = time.Now().UTC()
	w.base, w.stop = context.WithCancel(context.WithoutCancel(ctx))
	opts := []grpc.ServerOption{
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
	}
	if w.tls != nil {
		opts = append(opts, mtls.ServerOptions(w.tls, Policy)...)
	}
	w.srv = grpc.NewServer(opts...)
	pb.RegisterWorkerServiceServer(w.srv, w)
	w.health.Register(w.srv)
	w.running.Store(true)
	w.loops.Add(1)
	go func() {
		defer w.loops.Done()
		if err := w.srv.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			w.logger.Error("grpc server stopped", "err", err)
		}
	}()
	ka, err := w.register(ctx)
	if err != nil {
		w.stop()
		w.srv.Stop()
		w.loops.Wait()
		cli.Close()
		w.srv = nil // nothing left for Close
		return err
	}
	_ = w.health.Update(ctx)
	w.loops.Add(2)
	go func() {
		defer w.loops.Done()
		w.keepRegistered(ka)
	}()
	go func() {
		defer w.loops.Done()
		w.health.Run(w.base)
	}()
	tlsState := "off (plain text)"
	if w.tls != nil {
		tlsState = w.tls.Identity().URI()
	}
	w.logger.Info("worker started", "addr", w.addr, "parallelism", cap(w.sem), "etcd", w.cfg.Etcd, "tls", tlsState)
	return nil
}

func advertised(adv string, a net.Addr) string {
	if adv != "" {
		return adv
	}
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

// leaseTTL returns the registration TTL in whole seconds: the configured
// one, else the cluster's setting, else the default.
func (w *Worker) leaseTTL(ctx context.Context) int64 {
	if w.cfg.LeaseTTL > 0 {
		return int64((w.cfg.LeaseTTL + time.Second - 1) / time.Second)
	}
	if resp, err := w.cli.Get(ctx, w.keys.Settings()); err == nil && len(resp.Kvs) > 0 {
		var s cluster.Settings
		if json.Unmarshal(resp.Kvs[0].Value, &s) == nil && s.WorkerTTLSeconds >= 2 {
			return int64(s.WorkerTTLSeconds)
		}
	}
	return int64(DefaultLeaseTTL / time.Second)
}

func (w *Worker) info() cluster.WorkerInfo {
	host, _ := os.Hostname()
	return cluster.WorkerInfo{
		ID: w.id, Addr: w.addr, Parallelism: cap(w.sem), Started: w.started,
		Draining: w.draining.Load(), Host: host, PID: os.Getpid(),
		TasksDone: w.tasksDone.Load(), TasksFailed: w.tasksFailed.Load(),
	}
}

// publishCounts writes the registration again if the task counts changed
// since it was last written, under the lease it holds.
func (w *Worker) publishCounts(ctx context.Context, lease clientv3.LeaseID) {
	w.regMu.Lock()
	defer w.regMu.Unlock()
	info := w.info()
	counts := [2]int64{info.TasksDone, info.TasksFailed}
	if counts == w.published || info.Draining {
		return // unchanged, or Close wrote the last registration
	}
	data, _ := json.Marshal(info)
	ctx, cancel := context.WithTimeout(ctx, cluster.DialTimeout)
	defer cancel()
	if _, err := w.cli.Put(ctx, w.keys.Worker(w.id), string(data), clientv3.WithLease(lease)); err != nil {
		w.logger.Debug("publish task counts", "err", err)
		return
	}
	w.published = counts
}

// register grants a lease, writes the registration under it and starts
// its keep-alive.
func (w *Worker) register(ctx context.Context) (<-chan *clientv3.LeaseKeepAliveResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, cluster.DialTimeout)
	defer cancel()
	ttl := w.leaseTTL(ctx)
	g, err := w.cli.Grant(ctx, ttl)
	if err != nil {
		return nil, fmt.Errorf("worker: grant lease: %w", err)
	}
	w.regMu.Lock()
	info := w.info()
	data, _ := json.Marshal(info)
	_, err = w.cli.Put(ctx, w.keys.Worker(w.id), string(data), clientv3.WithLease(g.ID))
	if err == nil {
		w.published = [2]int64{info.TasksDone, info.TasksFailed}
	}
	w.regMu.Unlock()
	if err != nil {
		_, _ = w.cli.Revoke(context.WithoutCancel(ctx), g.ID)
		return nil, fmt.Errorf("worker: register: %w", err)
	}
	ka, err := w.cli.KeepAlive(w.base, g.ID)
	if err != nil {
		_, _ = w.cli.Revoke(context.WithoutCancel(ctx), g.ID)
		return nil, fmt.Errorf("worker: keep lease alive: %w", err)
	}
	w.leaseMu.Lock()
	w.lease = g.ID
	w.leaseMu.Unlock()
	w.registered.Store(true)
	w.logger.Debug("registered", "lease", int64(g.ID), "ttl_s", ttl)
	return ka, nil
}

// keepRegistered drains keep-alive responses and registers again with a
// new lease when the lease is lost (etcd unreachable for longer than the
// TTL). Tasks running then go on: their attempt leases vanished with the
// old lease, so the coordinator may have started copies elsewhere, and the
// first commit wins.
func (w *Worker) keepRegistered(ka <-chan *clientv3.LeaseKeepAliveResponse) {
	backoff := 100 * time.Millisecond
	for {
		w.leaseMu.Lock()
		lease := w.lease
		w.leaseMu.Unlock()
		for range ka {
			w.publishCounts(w.base, lease)
		}
		if w.base.Err() != nil {
			return
		}
		w.registered.Store(false)
		_ = w.health.Update(w.base)
		w.logger.Warn("registration lease lost; registering again")
		for {
			var err error
			if ka, err = w.register(w.base); err == nil {
				backoff = 100 * time.Millisecond
				_ = w.health.Update(w.base)
				break
			}
			w.logger.Warn("register failed", "err", err, "retry_in", backoff)
			select {
			case <-w.base.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
		}
	}
}

// Close stops the worker, in this order:
//  1. it turns its gRPC health NOT_SERVING and marks its registration
//     draining, so the leader gives it no new task;
//  2. it stops the gRPC server gracefully: running tasks may finish and
//     commit, for at most Config.ShutdownTimeout; then it stops hard,
//     cancelling what still runs;
//  3. it revokes its lease, deleting its registration and the leases of
//     its unfinished attempts at once (the leader re-leases them without
//     waiting for the TTL);
//  4. it closes its etcd client.
func (w *Worker) Close() error {
	if w.closed.Swap(true) || w.srv == nil {
		return nil
	}
	w.health.Shutdown()
	w.draining.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	w.regMu.Lock()
	data, _ := json.Marshal(w.info())
	w.leaseMu.Lock()
	lease := w.lease
	w.leaseMu.Unlock()
	if _, err := w.cli.Put(ctx, w.keys.Worker(w.id), string(data), clientv3.WithLease(lease)); err != nil {
		w.logger.Warn("mark draining", "err", err)
	}
	w.regMu.Unlock()
	cancel()

	done := make(chan struct{})
	go func() {
		w.srv.GracefulStop()
		close(done)
	}()
	timer := time.NewTimer(w.cfg.ShutdownTimeout)
	select {
	case <-done:
	case <-timer.C:
		w.logger.Warn("tasks still running after shutdown timeout; stopping them", "timeout", w.cfg.ShutdownTimeout)
		w.srv.Stop()
		<-done
	}
	timer.Stop()
	w.stop()
	w.tasks.Wait()
	w.loops.Wait()

	ctx, cancel = context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	w.leaseMu.Lock()
	lease = w.lease
	w.leaseMu.Unlock()
	var errs []error
	if _, err := w.cli.Revoke(ctx, lease); err != nil {
		// etcd is away: the registration expires with its TTL instead.
		w.logger.Warn("could not revoke the registration lease; it expires by itself", "err", err)
	}
	if err := w.cli.Close(); err != nil && !errors.Is(err, context.Canceled) {
		errs = append(errs, fmt.Errorf("worker: close etcd client: %w", err))
	}
	w.logger.Info("worker stopped")
	return errors.Join(errs...)
}

// Run runs a worker until ctx ends, then closes it and the metrics server
// (served on cfg.MetricsListen when set, its /readyz following Ready), in
// that order. The worker's own address is bound first: a metrics address
// of port 0 must not be given the port it was told to serve on.
func Run(ctx context.Context, cfg Config, rt obs.Runtime) error {
	reg := rt.Reg()
	w, err := New(cfg, rt.Log(), reg)
	if err != nil {
		return err
	}
	if err := w.Start(ctx); err != nil {
		return err
	}
	if cfg.MetricsListen != "" {
		msrv, err := obs.Start(cfg.MetricsListen, cfg.Pprof, obs.Gatherer(reg), rt.Log())
		if err != nil {
			return errors.Join(fmt.Errorf("worker: %w", err), w.Close())
		}
		defer msrv.Close()
		msrv.AddCheck("worker", w.Ready)
	}
	<-ctx.Done()
	return w.Close()
}

// Policy is who may call WorkerService when the worker serves mutual
// TLS: coordinators only. Every role may ask the gRPC health service.
var Policy = obs.WithHealth(mtls.Policy{
	pb.WorkerService_RunTask_FullMethodName: {mtls.RoleCoordinator},
})
