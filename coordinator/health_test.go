package coordinator

import (
	"context"
	"errors"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/dataco/clickstream/internal/mtls"
	pb "github.com/dataco/clickstream/proto/clickstream/v1"
)

func healthOf(t *testing.T, addr string, opts ...grpc.DialOption) healthpb.HealthClient {
	t.Helper()
	if len(opts) == 0 {
		opts = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	}
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return healthpb.NewHealthClient(conn)
}

// TestHealth: a coordinator connected to etcd is ready and its gRPC health
// serves, leader and standby alike; after Close neither.
func TestHealth(t *testing.T) {
	h := newHarness(t, 2, 10, 0)
	leader := h.coordinator(nil)
	waitUntil(t, "a leader", 10*time.Second, leader.IsLeader)
	standby := h.coordinator(nil)
	ctx := context.Background()
	for _, c := range []*Coordinator{leader, standby} {
		if err := c.Ready(ctx); err != nil {
			t.Fatalf("%s (leading: %v) not ready: %v", c.Addr(), c.IsLeader(), err)
		}
		hc := healthOf(t, c.Addr())
		for _, svc := range []string{"", pb.CoordinatorService_ServiceDesc.ServiceName} {
			resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
			if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				t.Fatalf("health of %q on %s: %v %v", svc, c.Addr(), resp.GetStatus(), err)
			}
		}
	}
	if err := standby.Close(); err != nil {
		t.Fatal(err)
	}
	if err := standby.Ready(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("closed coordinator: %v", err)
	}
	if s := standby.health.Status(""); s != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("health after Close: %v", s)
	}
}

// TestHealthWithMutualTLS: every role may ask a coordinator serving
// mutual TLS for its health.
func TestHealthWithMutualTLS(t *testing.T) {
	h := newHarness(t, 2, 10, 0)
	ca := testCA(t)
	c := h.coordinator(func(cfg *Config) { cfg.TLSSource = issue(t, ca, mtls.RoleCoordinator, "c") })
	for _, role := range mtls.Roles {
		t.Run(string(role), func(t *testing.T) {
			src := issue(t, ca, role, "x")
			hc := healthOf(t, c.Addr(), mtls.DialOption(src, mtls.ExpectRole(mtls.RoleCoordinator)))
			resp, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{})
			if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				t.Fatalf("health: %v %v", resp.GetStatus(), err)
			}
		})
	}
}
