// Package coordinator plans aggregation jobs, leases their tasks to
// workers through etcd, and merges and commits their results. It also
// holds the client side of its API (Client, Progress) used by the CLI.
//
// # Roles
//
// Every coordinator serves CoordinatorService from etcd: submissions are
// recorded as pending job records, status is read from job and task
// records. Coordinators elect a leader with clientv3/concurrency (election
// prefix <prefix>/leader/, session TTL LeaderTTL); only the leader runs
// jobs. Standbys take over when the leader's session ends: at once when it
// shuts down cleanly (it resigns), within LeaderTTL when it dies.
//
// # Keys (see package internal/cluster)
//
//	<prefix>/jobs/<job>                    job record: spec, state, counters, result
//	<prefix>/tasks/<job>/<task>            task record: state, attempts, failures, lost, backups
//	<prefix>/leases/<job>/<task>/<attempt> a running attempt, attached to the worker's lease
//	<prefix>/workers/<worker>              worker registration, under its lease
//	<prefix>/settings                      the worker TTL the leader publishes
//
// Every write of the leader is a transaction guarded by its election key
// (create revision unchanged): a deposed leader cannot change anything.
//
// # Lease protocol
//
// To start an attempt the leader writes, guarded by the worker's
// registration (same create revision), the attempt key with the worker's
// own lease ID and the task record, then calls RunTask. The attempt key
// vanishes with the worker's lease, so a dead worker's attempts show up as
// deletions on the leader's watch within the worker TTL; a RunTask failing
// with UNAVAILABLE (refused, shutting down) is treated the same way, and
// makes the worker suspect: it gets no new task until it answers a probe
// of its gRPC health service or writes its registration again. A lost
// attempt is re-leased to another worker and counted in Lost (bounded by
// MaxLost); an attempt failing with an error is counted in Failures, and
// the job fails with that error after MaxAttempts. When an attempt
// succeeds the leader records the task done and deletes its attempt keys
// together; other attempts of the task are cancelled.
//
// The leader's event loop does not wait for these writes: it queues them,
// and one goroutine at a time commits the queue in batches of up to 128
// operations, each a transaction guarded by the election key (writes.go).
// RunTask is called once the attempt's record is committed; any other
// transaction of the leader first commits what is queued, so etcd sees
// the writes in the order the leader decided them.
//
// # Workers' identities
//
// With mutual TLS (Config.TLS), a worker's registration is only a claim:
// whoever may write registrations in etcd could point one at another
// worker's address, or at a server of their own. The leader gives a newly
// registered worker no task until a TLS handshake with the registration's
// address proves the identity of its worker id
// (spiffe://clickstream/worker/<id>, package mtls); a failed check is
// logged and repeated every few seconds while the registration lasts. Each
// RunTask connection checks that identity again.
//
// # Resuming
//
// A new leader reads every unfinished job and queues it for loading, which
// PlanningParallelism planner goroutines do in the order the jobs were
// queued (new submissions join the same queue): a pending job is planned
// (the plan is kept in the output store with put-if-absent, so a
// predecessor's plan is reused); a running job gets its task records and
// its attempt keys: attempts whose worker still lives are joined again by
// calling RunTask with the same attempt number (the worker attaches the
// call to the running computation), the rest are re-queued. A task is done
// only with the partial digest its worker answered: a partial committed
// but never recorded runs again, and its worker vouches for it only if it
// holds the bytes it computes. A merging job is merged again, unless its
// _SUCCESS already names it.
//
// # Backups
//
// When at most max(BackupRemaining, BackupFraction × tasks) tasks of a job
// remain and none waits for a worker, a task whose single attempt has run
// longer than max(BackupAfter, 2 × the median duration of the job's
// finished tasks) gets a backup attempt on another worker. Both compute the
// same bytes; the first commit wins and the loser is cancelled.
//
// # Results
//
// When every task is done the leader reads the partials, each only if its
// bytes have the size and SHA-256 its worker answered (a partial replaced
// since fails the job at once, naming its task, and nothing is merged),
// merges them,
// writes the result files under <out>/_runs/<job>-<n>/ and commits by
// replacing <out>/_SUCCESS (package internal/results), records the job
// succeeded, deletes the job's partials and older runs, and runs each of
// Config.Publishers (the Elasticsearch indexer with --es) on the result,
// recording each one's outcome in the job status.
//
// # Web UI
//
// Run serves a live web UI of the whole cluster (package ui: jobs, tasks
// and their attempts, workers, windows, ingest) on the coordinator's one
// HTTP listener (Config.HTTPListen, beside /metrics, /healthz and
// /readyz), read from etcd and the lake by uiCluster with the decoding the
// API uses; UI returns its handler for other servers. Under mutual TLS the
// listener is HTTPS and the UI requires a viewer's, operator's or
// coordinator's certificate.
//
// # Use
//
//	cfg := coordinator.NewConfig()
//	cfg.Etcd, cfg.Lake = "http://etcd:2379", "s3://lake/clicks"
//	err := coordinator.Run(ctx, cfg, obs.Runtime{Logger: slog.Default()}) // until ctx ends
//
// In process (tests, `clickstream run`): New with an etcd client, Start,
// Close. Clients: Dial(addr, timeout), then Submit, Wait, Get, List, Cancel.
package coordinator
