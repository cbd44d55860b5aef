package obs

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/dataco/clickstream/internal/mtls"
)

// Check is one readiness condition of a process: nil when it holds, else
// an error saying why not. Its message is served on /readyz, so it names
// what is missing and never a secret.
type Check func(ctx context.Context) error

// CheckTimeout bounds one round of readiness checks.
const CheckTimeout = 2 * time.Second

// HealthInterval is how often a Health runs its check between the
// transitions its owner reports with Update.
const HealthInterval = 5 * time.Second

// Checks is a list of named readiness checks, safe for concurrent use.
// The zero value holds none and is ready.
type Checks struct {
	mu    sync.Mutex
	names []string
	fns   []Check
}

// Add appends the check fn under name.
func (c *Checks) Add(name string, fn Check) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.names = append(c.names, name)
	c.fns = append(c.fns, fn)
}

// Ready runs every check, each under CheckTimeout, and returns nil when
// all pass, else one error per failing check, "name: reason", joined.
func (c *Checks) Ready(ctx context.Context) error {
	c.mu.Lock()
	names, fns := c.names, c.fns
	c.mu.Unlock()
	var errs []error
	for i, fn := range fns {
		cctx, cancel := context.WithTimeout(ctx, CheckTimeout)
		err := fn(cctx)
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", names[i], err))
		}
	}
	return errors.Join(errs...)
}

// Health serves the gRPC health service (grpc.health.v1.Health) with a
// status that follows a readiness check: SERVING while it passes,
// NOT_SERVING otherwise, and NOT_SERVING for good after Shutdown. The
// status applies to the server as a whole ("") and to each named service.
type Health struct {
	srv      *health.Server
	ready    Check
	services []string
}

// NewHealth returns a Health, NOT_SERVING until the first Update that
// finds ready passing.
func NewHealth(ready Check, services ...string) *Health {
	h := &Health{srv: health.NewServer(), ready: ready, services: append([]string{""}, services...)}
	h.set(healthpb.HealthCheckResponse_NOT_SERVING)
	return h
}

// Register registers the health service on s.
func (h *Health) Register(s *grpc.Server) { healthpb.RegisterHealthServer(s, h.srv) }

// Update runs the check now, under CheckTimeout, sets the status from it
// and returns the check's error.
func (h *Health) Update(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, CheckTimeout)
	defer cancel()
	err := h.ready(ctx)
	if err != nil {
		h.set(healthpb.HealthCheckResponse_NOT_SERVING)
	} else {
		h.set(healthpb.HealthCheckResponse_SERVING)
	}
	return err
}

// Run updates the status every HealthInterval until ctx ends.
func (h *Health) Run(ctx context.Context) {
	t := time.NewTicker(HealthInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = h.Update(ctx)
		}
	}
}

// Shutdown sets every status to NOT_SERVING and ignores later updates:
// the process is going away.
func (h *Health) Shutdown() { h.srv.Shutdown() }

// Status returns the status served for service ("" for the server).
func (h *Health) Status(service string) healthpb.HealthCheckResponse_ServingStatus {
	resp, err := h.srv.Check(context.Background(), &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		return healthpb.HealthCheckResponse_SERVICE_UNKNOWN
	}
	return resp.GetStatus()
}

func (h *Health) set(s healthpb.HealthCheckResponse_ServingStatus) {
	for _, name := range h.services {
		h.srv.SetServingStatus(name, s)
	}
}

// WithHealth returns p with the methods of the gRPC health service
// allowed to every role: any identity of the cluster may ask whether a
// server is serving.
func WithHealth(p mtls.Policy) mtls.Policy {
	for _, m := range []string{
		healthpb.Health_Check_FullMethodName,
		healthpb.Health_Watch_FullMethodName,
		healthpb.Health_List_FullMethodName,
	} {
		p[m] = mtls.Roles
	}
	return p
}
