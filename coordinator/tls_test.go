package coordinator

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dataco/clickstream/internal/cluster"
	"github.com/dataco/clickstream/internal/mtls"
)

// verifyingRunner is a fakeRunner that verifies workers' identities: the
// ids in refuse fail the check.
type verifyingRunner struct {
	*fakeRunner
	refuse map[string]bool

	mu      sync.Mutex
	checked map[string]int
}

func (r *verifyingRunner) VerifyWorker(_ context.Context, id, addr string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.checked[id]++
	if r.refuse[id] {
		return fmt.Errorf("unexpected peer identity: %s serves another worker, not %s", addr, id)
	}
	return nil
}

func (r *verifyingRunner) checks(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.checked[id]
}

// TestUnverifiedWorkerGetsNoTask: a registration whose address does not
// prove its worker's identity gets no task, however much room it offers;
// the job runs on the verified workers. A registration whose record names
// another worker than its key is ignored.
func TestUnverifiedWorkerGetsNoTask(t *testing.T) {
	h := newHarness(t, 8, 100, 4000)
	runner := &verifyingRunner{fakeRunner: h.runner, refuse: map[string]bool{"impostor": true}, checked: map[string]int{}}
	good := h.worker("good", 2, nil)
	impostor := h.worker("impostor", 64, nil)
	if _, err := h.cli.Put(context.Background(), h.keys.Worker("alias"),
		encode(cluster.WorkerInfo{ID: "good", Addr: good.addr, Parallelism: 64, Started: time.Now()})); err != nil {
		t.Fatal(err)
	}
	c := h.coordinator(func(cfg *Config) { cfg.Runner = runner })
	cl := h.client(c)
	waitUntil(t, "both workers checked", 10*time.Second, func() bool { return runner.checks("good") > 0 && runner.checks("impostor") > 0 })
	j := h.run(cl, h.spec())
	h.checkResult(j)
	if n := impostor.calls.Load(); n != 0 {
		t.Errorf("the unverified worker got %d tasks", n)
	}
	if n := runner.checks("alias"); n != 0 {
		t.Errorf("the registration naming another worker was checked %d times", n)
	}
	if p := j.GetProgress(); p.GetAttempts() != 8 || p.GetRetries() != 0 {
		t.Errorf("progress %+v: attempts went elsewhere than the verified worker", p)
	}
}

// TestClientHints: a client that speaks plain text to a coordinator of
// mutual TLS, or TLS to one of plain text, is told which.
func TestClientHints(t *testing.T) {
	h := newHarness(t, 2, 10, 0)
	ca := testCA(t)
	secure := h.coordinator(func(cfg *Config) { cfg.TLSSource = issue(t, ca, mtls.RoleCoordinator, "c") })
	plain := h.coordinator(nil)
	viewer := WithTLS(issue(t, ca, mtls.RoleViewer, "v"))
	for _, tc := range []struct {
		name string
		addr string
		opts []DialOption
		want string
	}{
		{"plain text to TLS", secure.Addr(), nil, "does the coordinator require mutual TLS? give the client a certificate with --tls-ca, --tls-cert and --tls-key"},
		{"TLS to plain text", plain.Addr(), []DialOption{viewer}, "the coordinator serves plain text"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl, err := Dial(tc.addr, 5*time.Second, tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			_, err = cl.List(context.Background(), 1)
			if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %v saying %q", err, ErrUnreachable, tc.want)
			}
		})
	}
	cl, err := Dial(secure.Addr(), 5*time.Second, viewer)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := cl.List(context.Background(), 1); err != nil {
		t.Fatalf("a viewer: %v", err)
	}
}
