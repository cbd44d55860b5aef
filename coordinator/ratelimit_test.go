package coordinator

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/dataco/clickstream/internal/mtls"
	pb "github.com/dataco/clickstream/proto/clickstream/v1"
)

// fakeClock is a clock that moves only when told to.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// TestSubmitLimiter: each caller has its own bucket of burst submits,
// refilled at the rate; a refused submit is told the exact wait.
func TestSubmitLimiter(t *testing.T) {
	clock := newFakeClock()
	s := newSubmitLimiter(2, 3, 10, clock.now)
	type step struct {
		after  time.Duration // clock moves first
		caller string
		ok     bool
		wait   time.Duration
	}
	for i, st := range []step{
		{0, "a", true, 0},
		{0, "a", true, 0},
		{0, "a", true, 0},
		{0, "a", false, 500 * time.Millisecond},
		{0, "b", true, 0}, // another caller, another bucket
		{499 * time.Millisecond, "a", false, time.Millisecond},
		{time.Millisecond, "a", true, 0},
		{0, "a", false, 500 * time.Millisecond},
		{250 * time.Millisecond, "a", false, 250 * time.Millisecond}, // refusals take nothing
		{10 * time.Second, "a", true, 0},                             // refilled, to the burst only
		{0, "a", true, 0},
		{0, "a", true, 0},
		{0, "a", false, 500 * time.Millisecond},
	} {
		clock.add(st.after)
		ok, wait, _ := s.allow(st.caller)
		if ok != st.ok || wait != st.wait {
			t.Fatalf("step %d (%s): allowed %v, wait %v; want %v, %v", i, st.caller, ok, wait, st.ok, st.wait)
		}
	}
}

// TestSubmitLimiterBounded: the table keeps at most its maximum of
// callers; callers past it share one bucket; callers whose buckets have
// refilled are forgotten, at most once per sweep interval.
func TestSubmitLimiterBounded(t *testing.T) {
	clock := newFakeClock()
	s := newSubmitLimiter(1, 1, 2, clock.now)
	allow := func(caller string, want bool) {
		t.Helper()
		if ok, _, _ := s.allow(caller); ok != want {
			t.Fatalf("%s: allowed %v, want %v", caller, ok, want)
		}
	}
	allow("a", true)
	allow("b", true)
	allow("c", true)  // the table is full: the overflow bucket
	allow("d", false) // shares it with c
	if _, _, shared := s.allow("c"); !shared {
		t.Fatal("c is not in the overflow bucket")
	}
	if n := s.tracked(); n != 2 {
		t.Fatalf("%d callers tracked, want 2", n)
	}
	clock.add(submitterSweepEvery)
	allow("a", true) // refilled; still tracked
	clock.add(submitterSweepEvery / 2)
	// b is idle and full again; a is half-way to its next submit. e's
	// arrival sweeps b away and takes its place.
	allow("e", true)
	if n := s.tracked(); n != 2 {
		t.Fatalf("%d callers tracked after a sweep, want 2 (a, e)", n)
	}
	allow("f", true) // full again, and the next sweep is not due: overflow
	allow("g", false)
	clock.add(100 * time.Hour)
	allow("h", true) // everyone refilled: all forgotten but h
	if n := s.tracked(); n != 1 {
		t.Fatalf("%d callers tracked after a long idle, want 1", n)
	}
}

// retryDelay returns the RetryInfo delay of a status error, or 0.
func retryDelay(err error) time.Duration {
	for _, d := range status.Convert(err).Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			return ri.GetRetryDelay().AsDuration()
		}
	}
	return 0
}

// TestSubmitRateLimit: past its burst, a caller's submits are refused with
// RESOURCE_EXHAUSTED naming the flags and carrying when to retry; a
// retried submit with the same idempotency key counts too, and gets its
// job once the bucket has a submit again.
func TestSubmitRateLimit(t *testing.T) {
	h := newHarness(t, 4, 50, 1000)
	clock := newFakeClock()
	c := h.coordinator(func(cfg *Config) {
		cfg.Limits.MaxSubmitRate, cfg.Limits.MaxSubmitBurst = 0.5, 2
		cfg.now = clock.now
	})
	conn, err := grpc.NewClient(c.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	api := pb.NewCoordinatorServiceClient(conn)
	ctx := context.Background()
	submit := func(out, key string) (*pb.Job, error) {
		s := h.spec()
		s.OutUri = h.out.URI() + "/" + out
		resp, err := api.SubmitJob(ctx, &pb.SubmitJobRequest{Spec: s, IdempotencyKey: key})
		return resp.GetJob(), err
	}
	first, err := submit("a", "key-a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := submit("b", "key-b"); err != nil {
		t.Fatal(err)
	}
	_, err = submit("a", "key-a")
	wantRefused(t, "a third submit at once", err, codes.ResourceExhausted, "--max-submit-rate")
	if !strings.Contains(err.Error(), "ip:127.0.0.1") || !strings.Contains(err.Error(), "retry in 2s") {
		t.Errorf("refusal %q: want the caller and the wait named", err)
	}
	if d := retryDelay(err); d != 2*time.Second {
		t.Errorf("RetryInfo delay %v, want 2s", d)
	}
	clock.add(time.Second)
	_, err = submit("a", "key-a")
	if d := retryDelay(err); status.Code(err) != codes.ResourceExhausted || d != time.Second {
		t.Fatalf("half-way: %v (retry in %v), want refused, retry in 1s", err, d)
	}
	// Client surfaces the delay; with no time to wait it does not retry.
	cl := h.client(c)
	cl.ReconnectWindow = 0
	_, err = cl.SubmitWithKey(ctx, h.spec(), "key-c")
	if e := (*Error)(nil); !errors.As(err, &e) || e.Code != codes.ResourceExhausted || e.RetryDelay != time.Second {
		t.Fatalf("client error %#v, want RESOURCE_EXHAUSTED with a 1s delay", err)
	}
	if retryDelay(err) != time.Second {
		t.Errorf("the client's error lost its RetryInfo: %v", status.Convert(err).Details())
	}
	clock.add(time.Second)
	again, err := submit("a", "key-a")
	if err != nil || again.GetId() != first.GetId() {
		t.Fatalf("a retried submit once the bucket refilled: %v, %v; want job %s", again.GetId(), err, first.GetId())
	}
}

// TestSubmitRatePerIdentity: under mutual TLS each certificate identity
// has its own bucket: one operator over its rate does not hold up another.
func TestSubmitRatePerIdentity(t *testing.T) {
	h := newHarness(t, 4, 50, 1000)
	ca := testCA(t)
	clock := newFakeClock()
	c := h.coordinator(func(cfg *Config) {
		cfg.TLSSource = issue(t, ca, mtls.RoleCoordinator, "c1")
		cfg.Limits.MaxSubmitRate, cfg.Limits.MaxSubmitBurst = 1, 1
		cfg.now = clock.now
	})
	client := func(name string) *Client {
		cl, err := Dial(c.Addr(), 5*time.Second, WithTLS(issue(t, ca, mtls.RoleOperator, name)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cl.Close() })
		cl.ReconnectWindow = 0 // no waiting for the rate: the clock stands still
		return cl
	}
	alice, bob := client("alice"), client("bob")
	ctx := context.Background()
	spec := func(out string) *pb.JobSpec {
		s := h.spec()
		s.OutUri = h.out.URI() + "/" + out
		return s
	}
	if _, err := alice.Submit(ctx, spec("a1")); err != nil {
		t.Fatal(err)
	}
	_, err := alice.Submit(ctx, spec("a2"))
	wantRefused(t, "alice's second submit", err, codes.ResourceExhausted, "--max-submit-rate")
	if !strings.Contains(err.Error(), "spiffe://clickstream/operator/alice") {
		t.Errorf("refusal %q does not name alice's identity", err)
	}
	if _, err := bob.Submit(ctx, spec("b1")); err != nil {
		t.Fatalf("bob, under his own rate: %v", err)
	}
}

// TestClientWaitsForSubmitRate: Client.SubmitWithKey sends a submit
// refused with a retry delay again after that delay, within
// ReconnectWindow; refusals without a delay, or with one past the window,
// are returned at once.
func TestClientWaitsForSubmitRate(t *testing.T) {
	for _, tc := range []struct {
		name      string
		refusals  int
		delay     time.Duration // 0: no RetryInfo
		wantCalls int32
		wantErr   bool
	}{
		{"waits and retries", 3, 10 * time.Millisecond, 4, false},
		{"no delay given", 1, 0, 1, true},
		{"delay past the window", 1, time.Hour, 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := &refusingServer{refusals: int32(tc.refusals), delay: tc.delay}
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			g := grpc.NewServer()
			pb.RegisterCoordinatorServiceServer(g, srv)
			go func() { _ = g.Serve(lis) }()
			t.Cleanup(g.Stop)
			cl, err := Dial(lis.Addr().String(), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cl.Close() })
			j, err := cl.SubmitWithKey(context.Background(), &pb.JobSpec{}, "k")
			if calls := srv.calls.Load(); calls != tc.wantCalls {
				t.Errorf("%d calls, want %d", calls, tc.wantCalls)
			}
			switch {
			case tc.wantErr && status.Code(err) != codes.ResourceExhausted:
				t.Errorf("error %v, want RESOURCE_EXHAUSTED", err)
			case !tc.wantErr && (err != nil || j.GetId() != "job-1"):
				t.Errorf("job %v, error %v; want job-1", j, err)
			}
		})
	}
}

// refusingServer refuses its first refusals submits for the submit rate.
type refusingServer struct {
	pb.UnimplementedCoordinatorServiceServer
	refusals int32
	delay    time.Duration
	calls    atomic.Int32
}

func (s *refusingServer) SubmitJob(context.Context, *pb.SubmitJobRequest) (*pb.SubmitJobResponse, error) {
	if s.calls.Add(1) <= s.refusals {
		st := status.New(codes.ResourceExhausted, "too fast")
		if s.delay > 0 {
			st, _ = st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(s.delay)})
		}
		return nil, st.Err()
	}
	return &pb.SubmitJobResponse{Job: &pb.Job{Id: "job-1"}}, nil
}
