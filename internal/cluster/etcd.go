package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// DialTimeout bounds how long Dial waits for etcd to answer.
const DialTimeout = 5 * time.Second

// ErrEtcdAuth reports that etcd refused the user or its password.
var ErrEtcdAuth = errors.New("cluster: etcd refused the credentials")

// ErrEtcdUnreachable reports that no etcd endpoint answered in time.
var ErrEtcdUnreachable = errors.New("cluster: etcd unreachable")

// ParseEndpoints splits a comma-separated endpoint list ("host:port" or
// "http://host:port"), dropping blanks.
func ParseEndpoints(s string) []string {
	var out []string
	for e := range strings.SplitSeq(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

// Dial connects to etcd and checks, within DialTimeout, that it answers:
// a wrong endpoint fails here with ErrEtcdUnreachable instead of hanging
// later; a user or password etcd refuses fails with ErrEtcdAuth. auth is
// the zero EtcdAuth for an etcd without authentication, in plain text;
// with auth.TLS, the connection is TLS 1.2 or later and etcd's
// certificate is verified against auth.TLS.CA. The client logs nothing;
// the caller closes it.
func Dial(ctx context.Context, endpoints []string, auth EtcdAuth) (*clientv3.Client, error) {
	if len(endpoints) == 0 {
		return nil, fmt.Errorf("cluster: no etcd endpoints")
	}
	if err := auth.CheckEndpoints(strings.Join(endpoints, ",")); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	user, password, err := auth.resolve()
	if err != nil {
		return nil, err
	}
	tlsCfg, err := auth.TLS.config()
	if err != nil {
		return nil, err
	}
	who := fmt.Sprintf("user %q", user)
	if user == "" && auth.TLS.Cert != "" {
		who = "user " + auth.TLS.user()
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            endpoints,
		TLS:                  tlsCfg,
		Username:             user,
		Password:             password,
		DialTimeout:          DialTimeout,
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: 5 * time.Second,
		Logger:               zap.NewNop(),
		Context:              context.WithoutCancel(ctx),
	})
	if err == nil {
		cctx, cancel := context.WithTimeout(ctx, DialTimeout)
		defer cancel()
		// A linearizable read proves a quorum answers, not only a socket.
		if _, err = cli.Get(cctx, PingKey); err == nil {
			return cli, nil
		}
		cli.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	// clientv3.New fails here when it logs in with a password.
	if authRefused(err) {
		return nil, fmt.Errorf("%w: %s on %v: %w", ErrEtcdAuth, who, endpoints, err)
	}
	if tlsCfg != nil {
		// gRPC reports a refused handshake as a deadline: ask TLS why.
		if perr := probeTLS(ctx, endpoints, tlsCfg); perr != nil {
			return nil, fmt.Errorf("%w: %v did not answer within %v: %w", ErrEtcdUnreachable, endpoints, DialTimeout, perr)
		}
	}
	if cli == nil && !errors.Is(err, context.DeadlineExceeded) {
		return nil, fmt.Errorf("cluster: etcd client for %v: %w", endpoints, err)
	}
	return nil, fmt.Errorf("%w: %v did not answer within %v: %w", ErrEtcdUnreachable, endpoints, DialTimeout, err)
}

// EmbeddedConfig configures an embedded single-member etcd.
type EmbeddedConfig struct {
	// Dir holds the member's data; reusing it restarts the same cluster.
	Dir string
	// ClientAddr is the host:port clients connect to; empty means
	// 127.0.0.1 on a free port.
	ClientAddr string
	// Fast uses 10 ms ticks and a 50 ms election timeout: ready in tens of
	// milliseconds, for tests and `clickstream run`.
	Fast bool
	// NoFsync skips fsync: much faster on slow disks, but a machine crash
	// can lose the data. For tests and throw-away clusters only.
	NoFsync bool
	// LogLevel of the server's own logger: debug, info, warn, error, panic;
	// empty means panic (silent): its errors reach the clients anyway, and
	// it logs harmless ones when closed.
	LogLevel string
}

// Embedded is a running embedded etcd server.
type Embedded struct {
	e *embed.Etcd
}

// StartEmbedded starts an etcd server inside this process and waits until
// it serves, or ctx ends, or a minute passes.
func StartEmbedded(ctx context.Context, cfg EmbeddedConfig) (*Embedded, error) {
	if cfg.Dir == "" {
		return nil, fmt.Errorf("cluster: embedded etcd needs a data directory")
	}
	ec := embed.NewConfig()
	ec.Name = "clickstream"
	ec.Dir = cfg.Dir
	ec.LogLevel = cfg.LogLevel
	if ec.LogLevel == "" {
		ec.LogLevel = "panic"
	}
	if cfg.Fast {
		ec.TickMs, ec.ElectionMs = 10, 50
	}
	ec.UnsafeNoFsync = cfg.NoFsync
	clientAddr := cfg.ClientAddr
	if clientAddr == "" {
		clientAddr = "127.0.0.1:0"
	}
	cu, err := url.Parse("http://" + clientAddr)
	if err != nil {
		return nil, fmt.Errorf("cluster: embedded etcd client address %q: %w", clientAddr, err)
	}
	pu, _ := url.Parse("http://127.0.0.1:0")
	ec.ListenClientUrls, ec.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	ec.ListenPeerUrls, ec.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	ec.InitialCluster = ec.Name + "=" + pu.String()
	// Keep the keyspace small: job history is rewritten often.
	ec.AutoCompactionMode = embed.CompactorModePeriodic
	ec.AutoCompactionRetention = "10m"
	e, err := embed.StartEtcd(ec)
	if err != nil {
		return nil, fmt.Errorf("cluster: start embedded etcd in %s: %w", cfg.Dir, err)
	}
	timer := time.NewTimer(time.Minute)
	defer timer.Stop()
	select {
	case <-e.Server.ReadyNotify():
		return &Embedded{e: e}, nil
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("cluster: embedded etcd: %w", err)
	case <-ctx.Done():
		e.Close()
		return nil, ctx.Err()
	case <-timer.C:
		e.Close()
		return nil, fmt.Errorf("cluster: embedded etcd in %s not ready after a minute", cfg.Dir)
	}
}

// Endpoints returns the client endpoints, e.g. ["127.0.0.1:41235"].
func (s *Embedded) Endpoints() []string {
	out := make([]string, 0, len(s.e.Clients))
	for _, l := range s.e.Clients {
		out = append(out, l.Addr().String())
	}
	return out
}

// Err reports a fatal server error after start.
func (s *Embedded) Err() <-chan error { return s.e.Err() }

// Close stops the server and waits for it: up to the request timeout (7 s
// with default ticks) while clients keep streams open. Clients still
// connected see their requests fail.
func (s *Embedded) Close() { s.e.Close() }

// authRefused reports whether etcd refused a request for its credentials.
func authRefused(err error) bool {
	return errors.Is(err, rpctypes.ErrAuthFailed) || errors.Is(err, rpctypes.ErrPermissionDenied) ||
		errors.Is(err, rpctypes.ErrUserEmpty) || errors.Is(err, rpctypes.ErrInvalidAuthToken) ||
		errors.Is(err, rpctypes.ErrGRPCAuthFailed) || errors.Is(err, rpctypes.ErrGRPCPermissionDenied) ||
		errors.Is(err, rpctypes.ErrGRPCUserEmpty) ||
		// etcd 3.4 answers a password for a user without one with no code
		strings.Contains(err.Error(), "password was given for no password user")
}
