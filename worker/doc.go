// Package worker runs aggregation tasks for the leading coordinator.
//
// A worker serves WorkerService (proto/clickstream/v1) over gRPC and keeps
// itself registered in etcd at <prefix>/workers/<id> under a lease it keeps
// alive (TTL --ttl, else the cluster's --worker-ttl, else 5 s). The leader
// attaches each attempt it gives the worker to that same lease, so a worker
// that dies takes its attempts with it and the leader re-leases them. A
// worker that loses its lease (etcd unreachable for longer than the TTL)
// registers again with a new one.
//
// A task is one user bucket of the lake over the job window. RunTask checks
// the request (checkTask: stores under --lake-root and --output-root, data
// file keys relative to the lake, one recorded size each, the task's own
// partial key), reads the named data files (FetchParallelism at a time,
// each only at the size its manifest recorded, opening the lake under its
// root: lake.OpenUnder, cached), aggregates them (aggregate.ColumnReader
// for Parquet, one file at a time), and commits the encoded partial with
// put-if-absent at a key that depends only on the job and the bucket: the
// same input gives the same bytes, the first attempt to commit wins, and
// every later or concurrent attempt (a backup, a retry, a fenced-off copy)
// finds the key taken with its own bytes and succeeds with
// already_committed; other bytes there fail the task (DATA_LOSS). The
// answer carries the SHA-256 of the partial's bytes, which the coordinator
// checks before merging. At most Parallelism tasks run at once; calls for
// an attempt already running join it.
//
// Memory grows with the partition, not the job: FetchParallelism files in
// flight, about 16 bytes per kept event of the bucket, and the bucket's
// partial. Size buckets (the lake's bucket count, fixed at creation) so
// that one bucket over the largest window fits a worker's slots.
//
// Running a worker:
//
//	cfg := worker.NewConfig()
//	cfg.Etcd, cfg.Listen = "http://etcd:2379", ":7401"
//	err := worker.Run(ctx, cfg, obs.Runtime{Logger: slog.Default()}) // until ctx ends; then drains and deregisters
//
// or, to embed one, New, Start and Close (see Close for the stop order).
package worker
