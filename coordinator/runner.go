package coordinator

import (
	"context"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/mtls"
	"github.com/dataco/clickstream/internal/results"
	"github.com/dataco/clickstream/internal/schema"
	pb "github.com/dataco/clickstream/proto/clickstream/v1"
)

// TaskRunner runs one task attempt on the worker registered as workerID
// at addr. The gRPC implementation is the default; tests plug in fakes.
type TaskRunner interface {
	RunTask(ctx context.Context, workerID, addr string, req *pb.RunTaskRequest) (*pb.RunTaskResponse, error)
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

// RowsPublisher is a Publisher that may be handed the result's rows by
// the leader that merged them, instead of reading them back from the
// output store. Publish stays for a leader that takes a job over.
type RowsPublisher interface {
	Publisher
	PublishRows(ctx context.Context, out lake.Store, meta results.Meta, rows []schema.Row) error
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
// With TLS, a connection is made only to a server whose certificate names
// the worker id of the registration (mtls.Expect): a registration that
// points at another process gets no task.
type grpcRunner struct {
	tls *mtls.Source // nil: plain text

	mu    sync.Mutex
	conns map[workerAddr]*grpc.ClientConn
}

type workerAddr struct{ id, addr string }

func newGRPCRunner(tls *mtls.Source) *grpcRunner {
	return &grpcRunner{tls: tls, conns: make(map[workerAddr]*grpc.ClientConn)}
}

func (r *grpcRunner) conn(w workerAddr) (*grpc.ClientConn, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.conns[w]; ok {
		return c, nil
	}
	creds := grpc.WithTransportCredentials(insecure.NewCredentials())
	if r.tls != nil {
		id, err := mtls.NewIdentity(mtls.RoleWorker, w.id)
		if err != nil {
			return nil, fmt.Errorf("worker %q: %w", w.id, err)
		}
		creds = mtls.DialOption(r.tls, mtls.Expect(id))
	}
	c, err := grpc.NewClient(w.addr, creds,
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 10 * time.Second, Timeout: 5 * time.Second, PermitWithoutStream: true}),
	)
	if err != nil {
		return nil, err
	}
	r.conns[w] = c
	return c, nil
}

// VerifyWorker checks, with TLS, that addr proves the identity of worker
// workerID in a TLS handshake (mtls.Probe); without TLS there is nothing to
// check.
func (r *grpcRunner) VerifyWorker(ctx context.Context, workerID, addr string) error {
	if r.tls == nil {
		return nil
	}
	id, err := mtls.NewIdentity(mtls.RoleWorker, workerID)
	if err != nil {
		return fmt.Errorf("worker %q: %w", workerID, err)
	}
	_, err = mtls.Probe(ctx, r.tls, addr, mtls.Expect(id))
	return err
}

// workerVerifier is a TaskRunner that can tell, before any task goes to a
// worker, whether the address of its registration serves that worker
// (grpcRunner with TLS). The leader gives no task to a worker it has not
// verified.
type workerVerifier interface {
	VerifyWorker(ctx context.Context, workerID, addr string) error
}

func (r *grpcRunner) RunTask(ctx context.Context, workerID, addr string, req *pb.RunTaskRequest) (*pb.RunTaskResponse, error) {
	c, err := r.conn(workerAddr{workerID, addr})
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "%v", err)
	}
	return pb.NewWorkerServiceClient(c).RunTask(ctx, req)
}

// ProbeWorker asks the worker's gRPC health service whether it serves
// WorkerService: a worker that answers SERVING takes tasks.
func (r *grpcRunner) ProbeWorker(ctx context.Context, workerID, addr string) error {
	c, err := r.conn(workerAddr{workerID, addr})
	if err != nil {
		return status.Errorf(codes.Unavailable, "%v", err)
	}
	resp, err := healthpb.NewHealthClient(c).Check(ctx, &healthpb.HealthCheckRequest{Service: pb.WorkerService_ServiceDesc.ServiceName})
	if err != nil {
		return fmt.Errorf("worker %s: health check: %w", workerID, err)
	}
	if st := resp.GetStatus(); st != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("worker %s: %v", workerID, st)
	}
	return nil
}

// forget closes the connections to a worker that left.
func (r *grpcRunner) forget(workerID string) {
	r.mu.Lock()
	var gone []*grpc.ClientConn
	for w, c := range r.conns {
		if w.id == workerID {
			gone = append(gone, c)
			delete(r.conns, w)
		}
	}
	r.mu.Unlock()
	for _, c := range gone {
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
