package coordinator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	pb "github.com/dataco/clickstream/proto/clickstream/v1"
)

// Client defaults.
const (
	DefaultAddr            = "127.0.0.1:7400"
	DefaultClientTimeout   = 10 * time.Second
	DefaultReconnectWindow = 30 * time.Second
)

// ErrUnreachable reports a coordinator that could not be reached.
var ErrUnreachable = errors.New("coordinator unreachable")

// Client calls a coordinator's API, failing fast when it is unreachable.
type Client struct {
	addr    string
	conn    *grpc.ClientConn
	api     pb.CoordinatorServiceClient
	timeout time.Duration
	// ReconnectWindow bounds how long Wait keeps trying to watch again
	// after the coordinator went away (a standby may take over).
	ReconnectWindow time.Duration
}

// Dial returns a client of the coordinator at addr. Each unary call is
// bounded by timeout (zero: DefaultClientTimeout); connection attempts
// give up after about 3 s, so an unreachable coordinator fails fast.
func Dial(addr string, timeout time.Duration) (*Client, error) {
	if addr == "" {
		addr = DefaultAddr
	}
	if timeout <= 0 {
		timeout = DefaultClientTimeout
	}
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 200 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
			MinConnectTimeout: 3 * time.Second,
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrUnreachable, addr, err)
	}
	return &Client{addr: addr, conn: conn, api: pb.NewCoordinatorServiceClient(conn), timeout: timeout, ReconnectWindow: DefaultReconnectWindow}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Addr returns the coordinator address.
func (c *Client) Addr() string { return c.addr }

// wrap turns transport failures into ErrUnreachable with a hint, and
// other statuses into plain errors carrying the server's message.
func (c *Client) wrap(err error) error {
	if err == nil {
		return nil
	}
	s, ok := status.FromError(err)
	if !ok {
		return err
	}
	switch s.Code() {
	case codes.Unavailable, codes.DeadlineExceeded:
		return fmt.Errorf("%w: %s: %s (is `clickstream coordinator` running there? set --coordinator or $CLICKSTREAM_COORDINATOR)", ErrUnreachable, c.addr, s.Message())
	case codes.Canceled:
		return context.Canceled
	}
	return &Error{Code: s.Code(), Message: s.Message()}
}

// Error is an error answered by the coordinator; status.Code works on it.
type Error struct {
	Code    codes.Code
	Message string
}

func (e *Error) Error() string { return e.Message }

// GRPCStatus returns the status the coordinator answered.
func (e *Error) GRPCStatus() *status.Status { return status.New(e.Code, e.Message) }

func (c *Client) unary(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.timeout)
}

// Submit submits a job and returns it, pending.
func (c *Client) Submit(ctx context.Context, spec *pb.JobSpec) (*pb.Job, error) {
	ctx, cancel := c.unary(ctx)
	defer cancel()
	resp, err := c.api.SubmitJob(ctx, &pb.SubmitJobRequest{Spec: spec})
	if err != nil {
		return nil, c.wrap(err)
	}
	return resp.GetJob(), nil
}

// Get returns a job's status.
func (c *Client) Get(ctx context.Context, id string) (*pb.Job, error) {
	ctx, cancel := c.unary(ctx)
	defer cancel()
	resp, err := c.api.GetJob(ctx, &pb.GetJobRequest{Id: id})
	if err != nil {
		return nil, c.wrap(err)
	}
	return resp.GetJob(), nil
}

// List returns up to limit jobs, newest first.
func (c *Client) List(ctx context.Context, limit int) ([]*pb.Job, error) {
	ctx, cancel := c.unary(ctx)
	defer cancel()
	resp, err := c.api.ListJobs(ctx, &pb.ListJobsRequest{Limit: int32(limit)})
	if err != nil {
		return nil, c.wrap(err)
	}
	return resp.GetJobs(), nil
}

// Cancel asks for a job to be cancelled and returns its status.
func (c *Client) Cancel(ctx context.Context, id string) (*pb.Job, error) {
	ctx, cancel := c.unary(ctx)
	defer cancel()
	resp, err := c.api.CancelJob(ctx, &pb.CancelJobRequest{Id: id})
	if err != nil {
		return nil, c.wrap(err)
	}
	return resp.GetJob(), nil
}

// Terminal reports whether a job state is final.
func Terminal(s pb.JobState) bool {
	return s == pb.JobState_JOB_STATE_SUCCEEDED || s == pb.JobState_JOB_STATE_FAILED || s == pb.JobState_JOB_STATE_CANCELLED
}

// Wait follows a job until it is terminal, calling update (if not nil) on
// every status, and returns the final status. When the coordinator goes
// away it watches again, for up to ReconnectWindow without success.
func (c *Client) Wait(ctx context.Context, id string, update func(*pb.Job)) (*pb.Job, error) {
	var last *pb.Job
	var since time.Time // first failure of the current outage
	delay := 200 * time.Millisecond
	for {
		stream, err := c.api.WatchJob(ctx, &pb.WatchJobRequest{Id: id})
		if err == nil {
			for {
				resp, rerr := stream.Recv()
				if rerr != nil {
					err = rerr
					break
				}
				since, delay = time.Time{}, 200*time.Millisecond
				last = resp.GetJob()
				if update != nil {
					update(last)
				}
				if Terminal(last.GetState()) {
					return last, nil
				}
			}
		}
		if ctx.Err() != nil {
			return last, ctx.Err()
		}
		if errors.Is(err, io.EOF) {
			err = status.Error(codes.Unavailable, "watch ended early")
		}
		if code := status.Code(err); code != codes.Unavailable && code != codes.DeadlineExceeded && code != codes.Internal {
			return last, c.wrap(err)
		}
		if since.IsZero() {
			since = time.Now()
		}
		if time.Since(since) > c.ReconnectWindow || last == nil && time.Since(since) > c.timeout {
			return last, c.wrap(err)
		}
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, 2*time.Second)
	}
}
