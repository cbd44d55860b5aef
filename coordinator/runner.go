package coordinator

import (
	"context"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"

	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/results"
	pb "github.com/dataco/clickstream/proto/clickstream/v1"
)

// TaskRunner runs one task attempt on the worker at addr. The gRPC
// implementation is the default; tests plug in fakes.
type TaskRunner interface {
	RunTask(ctx context.Context, addr string, req *pb.RunTaskRequest) (*pb.RunTaskResponse, error)
}

// Publisher publishes a job's committed result (meta is its _SUCCESS in
// out) to a sink, e.g. a search index. After a job's success is recorded,
// the leader runs every publisher in order and records each outcome in
// the job (Job.publications); a failed publication does not fail the job.
// Publish must be idempotent: a new leader publishes a result again when
// its predecessor died before recording the outcome.
type Publisher interface {
	// Name names the publisher in job records and status, e.g.
	// "elasticsearch"; unique within a coordinator.
	Name() string
	Publish(ctx context.Context, out lake.Store, meta results.Meta) error
}

// NewPublisher returns a Publisher named name that calls publish.
func NewPublisher(name string, publish func(ctx context.Context, out lake.Store, meta results.Meta) error) Publisher {
	return funcPublisher{name, publish}
}

type funcPublisher struct {
	name    string
	publish func(ctx context.Context, out lake.Store, meta results.Meta) error
}

func (p funcPublisher) Name() string { return p.name }

func (p funcPublisher) Publish(ctx context.Context, out lake.Store, meta results.Meta) error {
	return p.publish(ctx, out, meta)
}

// grpcRunner calls WorkerService over one cached connection per worker.
type grpcRunner struct {
	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

func newGRPCRunner() *grpcRunner { return &grpcRunner{conns: make(map[string]*grpc.ClientConn)} }

func (r *grpcRunner) conn(addr string) (*grpc.ClientConn, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.conns[addr]; ok {
		return c, nil
	}
	c, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 10 * time.Second, Timeout: 5 * time.Second, PermitWithoutStream: true}),
	)
	if err != nil {
		return nil, err
	}
	r.conns[addr] = c
	return c, nil
}

func (r *grpcRunner) RunTask(ctx context.Context, addr string, req *pb.RunTaskRequest) (*pb.RunTaskResponse, error) {
	c, err := r.conn(addr)
	if err != nil {
		return nil, err
	}
	return pb.NewWorkerServiceClient(c).RunTask(ctx, req)
}

// forget closes the connection to a worker that left.
func (r *grpcRunner) forget(addr string) {
	r.mu.Lock()
	c := r.conns[addr]
	delete(r.conns, addr)
	r.mu.Unlock()
	if c != nil {
		c.Close()
	}
}

func (r *grpcRunner) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for a, c := range r.conns {
		c.Close()
		delete(r.conns, a)
	}
}
