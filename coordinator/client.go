package coordinator

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/dataco/clickstream/internal/mtls"
	pb "github.com/dataco/clickstream/proto/clickstream/v1"
)

// Client defaults.
const (
	DefaultAddr            = "127.0.0.1:7400"
	DefaultClientTimeout   = 10 * time.Second
	DefaultReconnectWindow = 30 * time.Second
)

// ErrUnreachable reports that no coordinator could be reached.
var ErrUnreachable = errors.New("coordinator unreachable")

// Client calls a cluster's coordinators: any of them answers the API from
// etcd, so a call that cannot reach one tries the next. The client starts
// with the addresses it is given and learns the others from the answers
// (Job.coordinators), so that it follows a failover to a standby it was
// not told of.
type Client struct {
	timeout time.Duration
	creds   grpc.DialOption
	tls     bool // creds are mutual TLS
	// ReconnectWindow bounds how long Submit and Wait keep trying while no
	// coordinator answers (a standby may be taking over).
	ReconnectWindow time.Duration

	mu    sync.Mutex
	addrs []string // given first, then learned
	conns map[string]*grpc.ClientConn
	cur   int // index in addrs of the coordinator to call first
}

// A DialOption configures Dial.
type DialOption func(*Client)

// WithTLS makes the client use mutual TLS with src's certificate, and
// talk only to servers whose certificate has the coordinator role.
func WithTLS(src *mtls.Source) DialOption {
	return func(c *Client) {
		if src != nil {
			c.creds, c.tls = mtls.DialOption(src, mtls.ExpectRole(mtls.RoleCoordinator)), true
		}
	}
}

// Dial returns a client of the coordinators at addrs, a comma-separated
// list of host:port. Each unary call is bounded by timeout (zero:
// DefaultClientTimeout); connection attempts give up after about 3 s, so
// an unreachable coordinator fails fast and the next is tried. Without
// WithTLS the connections are plain text.
func Dial(addrs string, timeout time.Duration, opts ...DialOption) (*Client, error) {
	if addrs == "" {
		addrs = DefaultAddr
	}
	if timeout <= 0 {
		timeout = DefaultClientTimeout
	}
	c := &Client{timeout: timeout, ReconnectWindow: DefaultReconnectWindow, conns: map[string]*grpc.ClientConn{},
		creds: grpc.WithTransportCredentials(insecure.NewCredentials())}
	for _, o := range opts {
		o(c)
	}
	for _, a := range strings.Split(addrs, ",") {
		a = strings.TrimSpace(a)
		if _, _, err := net.SplitHostPort(a); err != nil {
			return nil, fmt.Errorf("coordinator address %q: %w", a, err)
		}
		if !slices.Contains(c.addrs, a) {
			c.addrs = append(c.addrs, a)
		}
	}
	return c, nil
}

// conn returns the connection to addr, made on first use.
func (c *Client) conn(addr string) (pb.CoordinatorServiceClient, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cc := c.conns[addr]; cc != nil {
		return pb.NewCoordinatorServiceClient(cc), nil
	}
	cc, err := grpc.NewClient(addr,
		c.creds,
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 200 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
			MinConnectTimeout: 3 * time.Second,
		}),
		// A coordinator that stops answering (stopped, cut off) is noticed
		// on an idle stream too.
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 10 * time.Second, Timeout: 5 * time.Second, PermitWithoutStream: true}),
	)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrUnreachable, addr, err)
	}
	c.conns[addr] = cc
	return pb.NewCoordinatorServiceClient(cc), nil
}

// Close closes the connections.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for _, cc := range c.conns {
		errs = append(errs, cc.Close())
	}
	c.conns = map[string]*grpc.ClientConn{}
	return errors.Join(errs...)
}

// Addr returns the address of the coordinator the client calls first.
func (c *Client) Addr() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.addrs[c.cur]
}

// Addrs returns every coordinator address the client knows.
func (c *Client) Addrs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.addrs)
}

// order returns the known addresses, the one to call first first.
func (c *Client) order() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append(slices.Clone(c.addrs[c.cur:]), c.addrs[:c.cur]...)
}

// answered records that addr answered, and learns the coordinators a job
// status names.
func (c *Client) answered(addr string, j *pb.Job) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, a := range j.GetCoordinators() {
		if a != "" && !slices.Contains(c.addrs, a) {
			c.addrs = append(c.addrs, a)
		}
	}
	if i := slices.Index(c.addrs, addr); i >= 0 {
		c.cur = i
	}
}

// unreachable reports a transport failure: try another coordinator.
func unreachable(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded:
		return true
	}
	return false
}

// connectGrace is how long a call that may retry keeps trying while no
// coordinator can even be connected to: long enough for a restarting
// coordinator to listen again, short enough to fail fast at a wrong
// address.
const connectGrace = 3 * time.Second

// neverSent reports a failure to connect: the request reached no
// coordinator.
func neverSent(err error) bool {
	msg := status.Convert(err).Message()
	return strings.Contains(msg, "Error while dialing") || strings.Contains(msg, "connection refused")
}

// call runs f against each known coordinator in turn until one answers
// (an answer may be an error of the API), for at most one round. With
// retry, it goes on round after round, with a backoff: for up to
// ReconnectWindow once a request may have reached a coordinator that then
// failed to answer (it died mid-call; a retry must be safe), for up to
// connectGrace while no coordinator could be connected to at all.
func (c *Client) call(ctx context.Context, retry bool, f func(ctx context.Context, api pb.CoordinatorServiceClient) (*pb.Job, error)) (*pb.Job, error) {
	start := time.Now()
	delay := 200 * time.Millisecond
	var failures []string
	reached := false
	for {
		for _, addr := range c.order() {
			api, err := c.conn(addr)
			if err != nil {
				return nil, err
			}
			cctx, cancel := context.WithTimeout(ctx, c.timeout)
			j, err := f(cctx, api)
			cancel()
			if err == nil || !unreachable(err) {
				if err == nil {
					c.answered(addr, j)
				}
				return j, c.wrap(err)
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			reached = reached || !neverSent(err)
			failures = append(failures, addr+": "+status.Convert(err).Message())
		}
		window := connectGrace
		if reached {
			window = c.ReconnectWindow
		}
		if !retry || time.Since(start) > window {
			last := lastN(failures, len(c.Addrs()))
			return nil, fmt.Errorf("%w: %s (%s)", ErrUnreachable, strings.Join(last, "; "), c.hint(last))
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, 2*time.Second)
	}
}

func lastN(s []string, n int) []string { return s[max(0, len(s)-n):] }

// hint says what may be wrong when no coordinator answered with failures.
func (c *Client) hint(failures []string) string {
	for _, f := range failures {
		switch {
		case !c.tls && strings.Contains(f, "server preface"):
			// A TLS server closes a connection whose first bytes are not a
			// TLS handshake.
			return "does the coordinator require mutual TLS? give the client a certificate with --tls-ca, --tls-cert and --tls-key"
		case c.tls && strings.Contains(f, "first record does not look like a TLS handshake"):
			return "the coordinator serves plain text: drop --tls-ca, --tls-cert and --tls-key, or start it with them"
		}
	}
	return "is `clickstream coordinator` running there? set --coordinator or $CLICKSTREAM_COORDINATOR"
}

// wrap turns statuses into plain errors carrying the server's message.
func (c *Client) wrap(err error) error {
	if err == nil {
		return nil
	}
	s, ok := status.FromError(err)
	if !ok {
		return err
	}
	if s.Code() == codes.Canceled {
		return context.Canceled
	}
	e := &Error{Code: s.Code(), Message: s.Message()}
	for _, d := range s.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok && ri.GetRetryDelay().IsValid() {
			e.RetryDelay = ri.GetRetryDelay().AsDuration()
		}
	}
	return e
}

// Error is an error answered by the coordinator; status.Code works on it.
type Error struct {
	Code    codes.Code
	Message string
	// RetryDelay, if positive, is when the coordinator said the request
	// may be sent again (a submit refused for its caller's rate).
	RetryDelay time.Duration
}

func (e *Error) Error() string { return e.Message }

// GRPCStatus returns the status the coordinator answered.
func (e *Error) GRPCStatus() *status.Status {
	s := status.New(e.Code, e.Message)
	if e.RetryDelay > 0 {
		if d, err := s.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(e.RetryDelay)}); err == nil {
			s = d
		}
	}
	return s
}

// NewIdempotencyKey returns a random key for SubmitWithKey.
func NewIdempotencyKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Submit submits a job and returns it, pending, under a new idempotency
// key: see SubmitWithKey.
func (c *Client) Submit(ctx context.Context, spec *pb.JobSpec) (*pb.Job, error) {
	return c.SubmitWithKey(ctx, spec, NewIdempotencyKey())
}

// SubmitWithKey submits a job under the idempotency key and returns it.
// A submit whose answer was lost (the coordinator died mid-call) is sent
// again, to any coordinator, until one answers or ReconnectWindow passes:
// the key makes the retries one job. A submit refused with a delay to
// retry after (RESOURCE_EXHAUSTED for the caller's submit rate) is sent
// again after that delay, as long as the waits add up to at most
// ReconnectWindow; other refusals (such as a cluster holding all the
// unfinished jobs it takes) are returned.
func (c *Client) SubmitWithKey(ctx context.Context, spec *pb.JobSpec, key string) (*pb.Job, error) {
	var waited time.Duration
	for {
		j, err := c.call(ctx, true, func(ctx context.Context, api pb.CoordinatorServiceClient) (*pb.Job, error) {
			resp, err := api.SubmitJob(ctx, &pb.SubmitJobRequest{Spec: spec, IdempotencyKey: key})
			return resp.GetJob(), err
		})
		var e *Error
		if !errors.As(err, &e) || e.Code != codes.ResourceExhausted || e.RetryDelay <= 0 || waited+e.RetryDelay > c.ReconnectWindow {
			return j, err
		}
		t := time.NewTimer(e.RetryDelay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
		waited += e.RetryDelay
	}
}

// Get returns a job's status.
func (c *Client) Get(ctx context.Context, id string) (*pb.Job, error) {
	return c.call(ctx, false, func(ctx context.Context, api pb.CoordinatorServiceClient) (*pb.Job, error) {
		resp, err := api.GetJob(ctx, &pb.GetJobRequest{Id: id})
		return resp.GetJob(), err
	})
}

// List returns up to limit jobs, newest first.
func (c *Client) List(ctx context.Context, limit int) ([]*pb.Job, error) {
	var jobs []*pb.Job
	_, err := c.call(ctx, false, func(ctx context.Context, api pb.CoordinatorServiceClient) (*pb.Job, error) {
		resp, err := api.ListJobs(ctx, &pb.ListJobsRequest{Limit: int32(limit)})
		jobs = resp.GetJobs()
		if len(jobs) > 0 {
			return jobs[0], err
		}
		return nil, err
	})
	return jobs, err
}

// Cancel asks for a job to be cancelled and returns its status. Asking
// twice is asking once, so a call that reached no coordinator is retried.
func (c *Client) Cancel(ctx context.Context, id string) (*pb.Job, error) {
	return c.call(ctx, true, func(ctx context.Context, api pb.CoordinatorServiceClient) (*pb.Job, error) {
		resp, err := api.CancelJob(ctx, &pb.CancelJobRequest{Id: id})
		return resp.GetJob(), err
	})
}

// Terminal reports whether a job state is final.
func Terminal(s pb.JobState) bool {
	return s == pb.JobState_JOB_STATE_SUCCEEDED || s == pb.JobState_JOB_STATE_FAILED || s == pb.JobState_JOB_STATE_CANCELLED
}

// pollInterval is how often Wait polls a job while the coordinator has no
// room for another watch stream.
const pollInterval = time.Second

// watchIdle is how long Wait waits for the next status on a watch before
// it takes the coordinator for gone: a coordinator sends one at least
// every watchRefresh.
const watchIdle = 5 * watchRefresh

// Wait follows a job until it is terminal, calling update (if not nil) on
// every status, and returns the final status. When the coordinator it
// watches through goes away or stops answering, it watches through the
// next one it knows, and keeps trying for up to ReconnectWindow without
// an answer from any.
func (c *Client) Wait(ctx context.Context, id string, update func(*pb.Job)) (*pb.Job, error) {
	var last *pb.Job
	var since time.Time // first failure of the current outage
	delay := 200 * time.Millisecond
follow:
	for {
		var err error
		for _, addr := range c.order() {
			var j *pb.Job
			j, err = c.watch(ctx, addr, id, func(j *pb.Job) {
				since, delay = time.Time{}, 200*time.Millisecond
				last = j
				if update != nil {
					update(j)
				}
			})
			if j != nil && Terminal(j.GetState()) {
				return j, nil
			}
			if ctx.Err() != nil {
				return last, ctx.Err()
			}
			if errors.Is(err, io.EOF) {
				err = status.Error(codes.Unavailable, "watch ended early")
			}
			if status.Code(err) == codes.ResourceExhausted {
				// The coordinator holds all the watch streams it takes:
				// poll the job instead, and watch again later.
				j, perr := c.Get(ctx, id)
				if perr != nil {
					return last, perr
				}
				last, since = j, time.Time{}
				if update != nil {
					update(j)
				}
				if Terminal(j.GetState()) {
					return j, nil
				}
				select {
				case <-ctx.Done():
					return last, ctx.Err()
				case <-time.After(pollInterval):
				}
				continue follow
			}
			if code := status.Code(err); code != codes.Unavailable && code != codes.DeadlineExceeded && code != codes.Internal {
				return last, c.wrap(err)
			}
		}
		if since.IsZero() {
			since = time.Now()
		}
		if time.Since(since) > c.ReconnectWindow || last == nil && time.Since(since) > c.timeout {
			return last, fmt.Errorf("%w: following job %s: %s", ErrUnreachable, id, status.Convert(err).Message())
		}
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, 2*time.Second)
	}
}

// watch follows the job through the coordinator at addr until the job is
// terminal, the stream fails, or no status came for watchIdle. It returns
// the last status received on this stream.
func (c *Client) watch(ctx context.Context, addr, id string, update func(*pb.Job)) (*pb.Job, error) {
	api, err := c.conn(addr)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	idle := time.AfterFunc(watchIdle, func() { cancel(errWatchIdle) })
	defer idle.Stop()
	stream, err := api.WatchJob(ctx, &pb.WatchJobRequest{Id: id})
	if err != nil {
		return nil, err
	}
	var last *pb.Job
	for {
		resp, err := stream.Recv()
		if err != nil {
			if context.Cause(ctx) == errWatchIdle {
				err = status.Error(codes.Unavailable, errWatchIdle.Error())
			}
			return last, err
		}
		idle.Reset(watchIdle)
		last = resp.GetJob()
		c.answered(addr, last)
		update(last)
		if Terminal(last.GetState()) {
			return last, nil
		}
	}
}

var errWatchIdle = errors.New("no status for " + watchIdle.String())
