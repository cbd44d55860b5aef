package obs_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/dataco/clickstream/internal/obs"
)

func TestReadyz(t *testing.T) {
	srv, err := obs.Start("", false, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	url := "http://" + srv.Addr() + "/readyz"
	if code, body := get(t, url); code != http.StatusOK || body != "ok\n" {
		t.Errorf("without checks: %d %q", code, body)
	}

	var etcdDown, draining atomic.Bool
	srv.AddCheck("etcd", func(context.Context) error {
		if etcdDown.Load() {
			return errors.New("no answer within 2s")
		}
		return nil
	})
	srv.AddCheck("worker", func(ctx context.Context) error {
		if _, ok := ctx.Deadline(); !ok {
			return errors.New("check without a deadline")
		}
		if draining.Load() {
			return errors.New("draining")
		}
		return nil
	})
	tests := []struct {
		name           string
		down, draining bool
		code           int
		lines          []string
	}{
		{"all pass", false, false, http.StatusOK, []string{"ok"}},
		{"one fails", true, false, http.StatusServiceUnavailable, []string{"not ready", "etcd: no answer within 2s"}},
		{"both fail", true, true, http.StatusServiceUnavailable, []string{"not ready", "etcd: no answer within 2s", "worker: draining"}},
		{"ready again", false, false, http.StatusOK, []string{"ok"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			etcdDown.Store(tt.down)
			draining.Store(tt.draining)
			code, body := get(t, url)
			if code != tt.code || body != strings.Join(tt.lines, "\n")+"\n" {
				t.Errorf("/readyz: %d %q, want %d %q", code, body, tt.code, tt.lines)
			}
		})
	}
	if code, _ := get(t, "http://"+srv.Addr()+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz while not ready: %d, want 200 (alive)", code)
	}
}

func TestHealthFollowsReadiness(t *testing.T) {
	var ready atomic.Bool
	h := obs.NewHealth(func(context.Context) error {
		if !ready.Load() {
			return errors.New("not registered")
		}
		return nil
	}, "clickstream.v1.WorkerService")
	want := func(s healthpb.HealthCheckResponse_ServingStatus) {
		t.Helper()
		for _, svc := range []string{"", "clickstream.v1.WorkerService"} {
			if got := h.Status(svc); got != s {
				t.Errorf("status of %q: %v, want %v", svc, got, s)
			}
		}
	}
	want(healthpb.HealthCheckResponse_NOT_SERVING) // before the first update
	ctx := context.Background()
	if err := h.Update(ctx); err == nil {
		t.Error("update: nil error from a failing check")
	}
	want(healthpb.HealthCheckResponse_NOT_SERVING)
	ready.Store(true)
	if err := h.Update(ctx); err != nil {
		t.Error(err)
	}
	want(healthpb.HealthCheckResponse_SERVING)
	h.Shutdown()
	want(healthpb.HealthCheckResponse_NOT_SERVING)
	_ = h.Update(ctx) // ignored after Shutdown
	want(healthpb.HealthCheckResponse_NOT_SERVING)
	if got := h.Status("other"); got != healthpb.HealthCheckResponse_SERVICE_UNKNOWN {
		t.Errorf("unknown service: %v", got)
	}
}
