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

// Indexer is called after a job's result is committed to out (meta is its
// _SUCCESS), e.g. to load it into a search index. An error is recorded in
// the job's status; the job still succeeds.
type Indexer interface {
	Index(ctx context.Context, out lake.Store, meta results.Meta) error
}

// IndexerFunc adapts a function to Indexer.
type IndexerFunc func(ctx context.Context, out lake.Store, meta results.Meta) error

// Index calls f.
func (f IndexerFunc) Index(ctx context.Context, out lake.Store, meta results.Meta) error {
	return f(ctx, out, meta)
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
