// Package cluster holds what the coordinator and the workers share about
// their meeting place, etcd: the key layout (Keys), the records stored
// there by workers (WorkerInfo) and by the coordinator for the workers
// (Settings), a client constructor that fails fast (Dial), and an embedded
// etcd server (StartEmbedded) for single-machine use and tests.
//
// Dial speaks TLS when EtcdAuth.TLS names etcd's CA (--etcd-ca), and logs
// in with a password (--etcd-user) or with a client certificate whose
// CommonName is the user (--etcd-cert, --etcd-key, on an etcd started with
// --client-cert-auth). SetupAuth creates the users and the per-cluster
// roles and turns authentication on (`clickstream etcd-auth`).
//
// The layout under a prefix (default /clickstream/v1):
//
//	<prefix>/workers/<worker>                  WorkerInfo, under the worker's lease
//	<prefix>/settings                          Settings, written by the leader
//	<prefix>/leader/<lease>                    election keys (clientv3/concurrency)
//	<prefix>/jobs/<job>                        a job record (coordinator)
//	<prefix>/active/<job>                      a marker of an unfinished job (coordinator)
//	<prefix>/tasks/<job>/<task>                a task record (coordinator)
//	<prefix>/leases/<job>/<task>/<attempt>     a running attempt, under the *worker's* lease
//
// Tasks and leases live in their own trees, not under jobs/<job>/, so that
// listing jobs reads job records only.
//
// Example, a test cluster on an embedded etcd:
//
//	srv, err := cluster.StartEmbedded(ctx, cluster.EmbeddedConfig{Dir: t.TempDir(), Fast: true})
//	...
//	defer srv.Close()
//	cli, err := cluster.Dial(ctx, srv.Endpoints(), cluster.EtcdAuth{})
//	...
//	keys := cluster.Keys{Prefix: cluster.DefaultPrefix}
//	resp, err := cli.Get(ctx, keys.Workers(), clientv3.WithPrefix())
package cluster
