package worker

import (
	"context"
	"errors"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	pb "github.com/dataco/clickstream/proto/clickstream/v1"
)

// TestHealth: the worker's readiness and gRPC health follow its state:
// serving once registered, not while draining, nor after Close.
func TestHealth(t *testing.T) {
	f := newFixture(t)
	w, _, _ := f.start(nil)
	ctx := context.Background()
	conn, err := grpc.NewClient(w.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	hc := healthpb.NewHealthClient(conn)
	check := func(want healthpb.HealthCheckResponse_ServingStatus) {
		t.Helper()
		for _, svc := range []string{"", pb.WorkerService_ServiceDesc.ServiceName} {
			resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
			if err != nil || resp.GetStatus() != want {
				t.Fatalf("health of %q: %v %v, want %v", svc, resp.GetStatus(), err, want)
			}
		}
	}
	if err := w.Ready(ctx); err != nil {
		t.Fatalf("started worker not ready: %v", err)
	}
	check(healthpb.HealthCheckResponse_SERVING)

	w.draining.Store(true)
	if err := w.health.Update(ctx); !errors.Is(err, errDraining) {
		t.Fatalf("draining: %v", err)
	}
	check(healthpb.HealthCheckResponse_NOT_SERVING)
	w.draining.Store(false)
	w.registered.Store(false)
	if err := w.health.Update(ctx); !errors.Is(err, errUnregistered) {
		t.Fatalf("lease lost: %v", err)
	}
	check(healthpb.HealthCheckResponse_NOT_SERVING)
	w.registered.Store(true)
	if err := w.health.Update(ctx); err != nil {
		t.Fatal(err)
	}
	check(healthpb.HealthCheckResponse_SERVING)

	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Ready(ctx); err == nil {
		t.Error("closed worker ready")
	}
	if s := w.health.Status(""); s != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("health after Close: %v", s)
	}
}

// TestNotReadyBeforeStart: a worker is not ready before Start.
func TestNotReadyBeforeStart(t *testing.T) {
	cfg := NewConfig()
	cfg.Listen, cfg.Etcd, cfg.ID = "127.0.0.1:0", "127.0.0.1:1", "w1"
	cfg.LakeRoots, cfg.OutputRoots = []string{"file:///lake"}, []string{"file:///out"}
	w, err := New(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Ready(context.Background()); !errors.Is(err, errNotStarted) {
		t.Fatalf("before Start: %v", err)
	}
	if s := w.health.Status(""); s != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("health before Start: %v", s)
	}
}
