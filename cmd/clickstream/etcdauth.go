package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dataco/clickstream/internal/cluster"
	"github.com/dataco/clickstream/internal/flagenv"
	"github.com/dataco/clickstream/internal/secret"
)

// newEtcdAuthCmd sets up etcd's users and roles for a cluster and turns
// authentication on (cluster.SetupAuth); run again, it sets the passwords
// again, logging in as root.
func newEtcdAuthCmd() *cobra.Command {
	var (
		etcd, prefix                          string
		users                                 cluster.AuthUsers
		rootFile, coordinatorFile, workerFile string
		tlsFiles                              cluster.EtcdTLS
	)
	cmd := &cobra.Command{
		Use:   "etcd-auth --etcd ENDPOINTS {--root-password-file F | --etcd-cert ROOT.pem --etcd-key K} [--coordinator-password-file F] [--worker-password-file F]",
		Short: "create etcd's users and roles for the cluster (coordinator: its prefix; worker: its registration) and enable authentication",
		Long: `etcd-auth creates the roles of the cluster under --etcd-prefix, the users root, the
coordinators' and the workers', and turns authentication on. Run again, it sets the
passwords again, logging in as root.

A user given no password file is created without a password: it logs in only with a
client certificate whose CommonName is its name, on an etcd started with
--client-cert-auth (see clickstream certs --etcd). On such an etcd, etcd-auth itself
needs a client certificate too (--etcd-cert): one naming root works before and after
authentication is on, and root then needs no password at all. A user that exists keeps
its password when given none.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			conn := cluster.EtcdAuth{TLS: tlsFiles}
			if err := conn.Validate(); err != nil {
				return usageError{err}
			}
			if err := conn.CheckEndpoints(etcd); err != nil {
				return usageError{err}
			}
			if len(cluster.ParseEndpoints(etcd)) == 0 {
				return usageErrorf("--etcd is required")
			}
			if err := cluster.ValidatePrefix(prefix); err != nil {
				return usageError{err}
			}
			if rootFile == "" && tlsFiles.Cert == "" {
				return usageErrorf("--root-password-file is required, unless root logs in with its client certificate (--etcd-cert)")
			}
			for _, f := range []struct {
				flag, file string
				pw         *string
			}{{"--root-password-file", rootFile, &users.RootPW}, {"--coordinator-password-file", coordinatorFile, &users.CoordinatorPW}, {"--worker-password-file", workerFile, &users.WorkerPW}} {
				if f.file == "" {
					continue // a user who logs in by certificate
				}
				b, err := os.ReadFile(f.file)
				if err != nil {
					return fmt.Errorf("%s: %w", f.flag, err)
				}
				if *f.pw = strings.TrimRight(string(b), "\r\n"); *f.pw == "" {
					return fmt.Errorf("%s: %s is empty", f.flag, f.file)
				}
			}
			ctx := cmd.Context()
			endpoints := cluster.ParseEndpoints(etcd)
			cli, err := cluster.Dial(ctx, endpoints, conn)
			if errors.Is(err, cluster.ErrEtcdAuth) && users.RootPW != "" { // on already: log in as root
				conn.User, conn.Password = users.Root, secret.Secret(users.RootPW)
				cli, err = cluster.Dial(ctx, endpoints, conn)
			}
			if err != nil {
				return err
			}
			defer cli.Close()
			if err := cluster.SetupAuth(ctx, cli, prefix, users); err != nil {
				return err
			}
			login := func(pw string) string {
				if pw == "" {
					return "certificate only"
				}
				return "password"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "etcd authentication on: user %s (role %s, %s), user %s (role %s, %s), under %s\n",
				users.Coordinator, cluster.RoleCoordinator+prefix, login(users.CoordinatorPW),
				users.Worker, cluster.RoleWorker+prefix, login(users.WorkerPW), prefix)
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&etcd, "etcd", "", "etcd endpoints, comma-separated")
	fs.StringVar(&prefix, "etcd-prefix", cluster.DefaultPrefix, "prefix of the cluster's etcd keys")
	fs.StringVar(&users.Root, "root-user", "root", "etcd's root user (created; authentication needs it)")
	fs.StringVar(&rootFile, "root-password-file", "", "file holding the root user's password (none: root logs in by client certificate only; needs --etcd-cert)")
	fs.StringVar(&users.Coordinator, "coordinator-user", "clickstream-coordinator", "user of the coordinators (--etcd-user of coordinator)")
	fs.StringVar(&coordinatorFile, "coordinator-password-file", "", "file holding the coordinators' password (none: the user logs in by client certificate only)")
	fs.StringVar(&users.Worker, "worker-user", "clickstream-worker", "user of the workers (--etcd-user of worker)")
	fs.StringVar(&workerFile, "worker-password-file", "", "file holding the workers' password (none: the user logs in by client certificate only)")
	tlsFiles.AddFlags(fs)
	flagenv.Alias(fs, "etcd", envEtcdEndpoints)
	return cmd
}
