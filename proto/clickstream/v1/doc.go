// Package clickstreamv1 is the generated Go code of the clickstream cluster
// API (clickstream.proto): CoordinatorService, called by the CLI, and
// WorkerService, called by the leading coordinator. Regenerate it with
// proto/gen.sh (make proto) after editing the .proto file; never edit the
// *.pb.go files by hand.
//
// A client of the coordinator:
//
//	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
//	...
//	c := clickstreamv1.NewCoordinatorServiceClient(conn)
//	resp, err := c.GetJob(ctx, &clickstreamv1.GetJobRequest{Id: id})
package clickstreamv1
