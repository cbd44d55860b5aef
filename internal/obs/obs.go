// Package obs holds what every component's Run shares with the process: the
// Runtime (logger, Prometheus registerer, standard output) and the one
// observability HTTP server (/metrics, /healthz, /readyz, /debug/pprof/),
// and the gRPC health service whose status follows the same readiness.
//
//	srv, err := obs.Start(cfg.MetricsListen, cfg.Pprof, obs.Gatherer(reg), rt.Log())
//	if err != nil {
//		return err
//	}
//	defer srv.Close() // stops serving and waits for the server's goroutine
//	srv.AddCheck("worker", w.Ready) // /readyz: 503 until w.Ready passes
package obs

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/dataco/clickstream/internal/listen"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/pflag"
)

// Runtime carries a component's process-level dependencies into its Run:
// func Run(ctx context.Context, cfg Config, rt obs.Runtime) error.
type Runtime struct {
	Logger     *slog.Logger          // nil: discard
	Registerer prometheus.Registerer // nil: a private registry
	Stdout     io.Writer             // command output such as summaries; nil: discard
}

// Log returns the logger, or one that discards.
func (rt Runtime) Log() *slog.Logger {
	if rt.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return rt.Logger
}

// Reg returns the registerer, or a new private registry.
func (rt Runtime) Reg() prometheus.Registerer {
	if rt.Registerer == nil {
		return prometheus.NewRegistry()
	}
	return rt.Registerer
}

// Out returns the standard output, or io.Discard.
func (rt Runtime) Out() io.Writer {
	if rt.Stdout == nil {
		return io.Discard
	}
	return rt.Stdout
}

// Gatherer returns the gatherer of the metrics registered with reg: reg
// itself when it is a registry, else the default gatherer.
func Gatherer(reg prometheus.Registerer) prometheus.Gatherer {
	if g, ok := reg.(prometheus.Gatherer); ok {
		return g
	}
	return prometheus.DefaultGatherer
}

// DefaultAddr is the address Start listens on when given none: loopback,
// any free port.
const DefaultAddr = "127.0.0.1:0"

// ReadHeaderTimeout bounds how long a client may take to send a request's
// headers.
const ReadHeaderTimeout = 5 * time.Second

// shutdownTimeout bounds how long Close waits for requests in flight.
const shutdownTimeout = 2 * time.Second

// Server serves /metrics, /healthz, /readyz and /debug/pprof/ until Close.
type Server struct {
	checks Checks
	srv    *http.Server
	addr   net.Addr
	done   chan struct{}
	log    *slog.Logger
}

// ErrPprof reports profiles asked for beyond loopback.
var ErrPprof = errors.New("profiles beyond loopback")

// CheckPprof refuses --pprof with a metrics address beyond loopback:
// profiles show what the process holds (memory, goroutines, arguments).
func CheckPprof(addr string, pprof bool) error {
	if pprof && addr != "" && !listen.Loopback(addr) {
		return fmt.Errorf("%w: --pprof serves profiles on --metrics-listen %s; use a loopback address", ErrPprof, addr)
	}
	return nil
}

// AddPprofFlag registers --pprof.
func AddPprofFlag(fs *pflag.FlagSet, p *bool) {
	fs.BoolVar(p, "pprof", *p, "serve /debug/pprof/ on --metrics-listen (a loopback address only)")
}

// Start listens on addr (empty: DefaultAddr) and serves, on a goroutine that
// the returned Server owns:
//
//	/metrics       the metrics of g, in the Prometheus exposition format
//	/healthz       200 "ok" while the process runs (liveness)
//	/readyz        200 "ok" when every check added with AddCheck passes, else
//	               503 with one line per failing check (readiness)
//	/debug/pprof/  the runtime profiles, with profiles and on a loopback address only
//
// logger may be nil.
func Start(addr string, profiles bool, g prometheus.Gatherer, logger *slog.Logger) (*Server, error) {
	return StartWith(addr, profiles, g, logger, Options{})
}

// Options add to what Start serves.
type Options struct {
	// TLS, if set, makes the server HTTPS with this configuration (e.g.
	// mtls.ServerTLSConfig); nil serves plain text.
	TLS *tls.Config
	// Mount, if set, adds handlers to the server's mux before it serves,
	// e.g. a web UI at "/". The server's own paths take precedence over
	// patterns as general as "/".
	Mount func(mux *http.ServeMux)
}

// StartWith is Start with opts: HTTPS, and more handlers on the same
// listener, so that a process has one HTTP listener.
func StartWith(addr string, profiles bool, g prometheus.Gatherer, logger *slog.Logger, opts Options) (*Server, error) {
	if err := CheckPprof(addr, profiles); err != nil {
		return nil, err
	}
	if addr == "" {
		addr = DefaultAddr
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("obs: metrics listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	s := &Server{}
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("/readyz", s.readyz)
	if profiles && listen.Loopback(ln.Addr().String()) {
		// Profiles show what the process holds: never beyond this host.
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	if opts.Mount != nil {
		opts.Mount(mux)
	}
	if opts.TLS != nil {
		ln = tls.NewListener(ln, opts.TLS)
	}
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: ReadHeaderTimeout}
	s.addr, s.done, s.log = ln.Addr(), make(chan struct{}), logger
	go func() { // owned by s: Close waits for it
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("metrics server", "err", err)
		}
	}()
	if opts.TLS == nil && !listen.Loopback(s.addr.String()) {
		logger.Warn("INSECURE: serving plain-text metrics beyond loopback (--insecure)", "addr", s.addr.String())
	}
	logger.Info("serving metrics", "addr", s.addr.String(), "tls", opts.TLS != nil)
	return s, nil
}

// AddCheck adds a readiness check to /readyz; it may be called while the
// server runs. Without checks the process is ready.
func (s *Server) AddCheck(name string, fn Check) { s.checks.Add(name, fn) }

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err := s.checks.Ready(r.Context()); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, "not ready\n"+err.Error()+"\n")
		return
	}
	_, _ = io.WriteString(w, "ok\n")
}

// Addr returns the address the server listens on.
func (s *Server) Addr() string { return s.addr.String() }

// Close stops accepting connections, lets requests in flight finish for a
// moment, closes the rest, and returns once the serving goroutine is done.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if err != nil {
		err = errors.Join(err, s.srv.Close())
	}
	<-s.done
	return err
}
