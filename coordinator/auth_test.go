package coordinator

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dataco/clickstream/internal/mtls"
	pb "github.com/dataco/clickstream/proto/clickstream/v1"
)

// TestRoles: with mutual TLS, operators submit and cancel, viewers read,
// and nobody else calls the API.
func TestRoles(t *testing.T) {
	h := newHarness(t, 2, 20, 500)
	h.worker("w1", 2, nil)
	ca := testCA(t)
	cfg := NewConfig()
	cfg.Listen, cfg.Etcd, cfg.TLSSource = "127.0.0.1:0", strings.Join(h.endpoints, ","), issue(t, ca, mtls.RoleWorker, "x")
	if _, err := New(cfg, h.cli, nil, nil); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "a coordinator needs role coordinator") {
		t.Fatalf("a worker's certificate: %v", err)
	}

	c := h.coordinator(func(cfg *Config) { cfg.TLSSource = issue(t, ca, mtls.RoleCoordinator, "x") })
	client := func(role mtls.Role) *Client {
		cl, err := Dial(c.Addr(), 5*time.Second, WithTLS(issue(t, ca, role, "x")))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cl.Close() })
		return cl
	}
	operator, viewer := client(mtls.RoleOperator), client(mtls.RoleViewer)
	j := h.run(operator, h.spec())
	if j.GetState() != pb.JobState_JOB_STATE_SUCCEEDED {
		t.Fatalf("job %v", j.GetState())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := viewer.Get(ctx, j.GetId()); err != nil {
		t.Fatalf("viewer get: %v", err)
	}
	if jobs, err := viewer.List(ctx, 10); err != nil || len(jobs) != 1 {
		t.Fatalf("viewer list: %v %v", jobs, err)
	}
	if _, err := viewer.Wait(ctx, j.GetId(), nil); err != nil {
		t.Fatalf("viewer watch: %v", err)
	}
	for name, err := range map[string]error{
		"viewer submit": func() error { _, err := viewer.Submit(ctx, h.spec()); return err }(),
		"viewer cancel": func() error { _, err := viewer.Cancel(ctx, j.GetId()); return err }(),
		"worker get":    func() error { _, err := client(mtls.RoleWorker).Get(ctx, j.GetId()); return err }(),
	} {
		if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "it needs role") {
			t.Errorf("%s: got %v, want PermissionDenied naming the role", name, err)
		}
	}
	plain, err := Dial(c.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	plain.ReconnectWindow = 0
	if _, err := plain.Get(ctx, j.GetId()); err == nil {
		t.Fatal("plain-text client served")
	}
}
