package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/dataco/clickstream/internal/secret"
	"github.com/spf13/pflag"
	"go.etcd.io/etcd/api/v3/authpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// EnvEtcdPassword names the variable holding the etcd password; it has no
// flag, so that it never shows in a process list.
const EnvEtcdPassword = "CLICKSTREAM_ETCD_PASSWORD"

// EtcdAuth is how a process connects to etcd: TLS, and a user with its
// password, given apart from the endpoints (an endpoint URL carrying them
// is refused, see CheckEndpoints). On an etcd with --client-cert-auth, the
// client certificate (TLS.Cert) logs in instead of a user and password:
// etcd takes the user from its CommonName. The zero value is plain text
// and authenticates no one.
type EtcdAuth struct {
	User         string
	Password     secret.Secret
	PasswordFile string
	TLS          EtcdTLS
}

// AddFlags binds the user and the password file to --etcd-user and
// --etcd-password-file (the password itself comes from the file or
// $CLICKSTREAM_ETCD_PASSWORD, see SecretsFromEnv), and TLS to --etcd-ca,
// --etcd-cert and --etcd-key.
func (a *EtcdAuth) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&a.User, "etcd-user", a.User, "etcd user (etcd with authentication); the password comes from --etcd-password-file or $"+EnvEtcdPassword)
	fs.StringVar(&a.PasswordFile, "etcd-password-file", a.PasswordFile, "file holding the etcd user's password")
	a.TLS.AddFlags(fs)
}

// SecretsFromEnv sets the password from $CLICKSTREAM_ETCD_PASSWORD when
// it is set and not empty. lookup is os.LookupEnv if nil.
func (a *EtcdAuth) SecretsFromEnv(lookup func(string) (string, bool)) {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	if v, _ := lookup(EnvEtcdPassword); v != "" {
		a.Password = secret.Secret(v)
	}
}

// Validate checks that a user comes with exactly one source of password,
// and the TLS files (EtcdTLS.Validate).
func (a *EtcdAuth) Validate() error {
	switch {
	case a.Password != "" && a.PasswordFile != "":
		return fmt.Errorf("both $%s and --etcd-password-file are set: give one", EnvEtcdPassword)
	case a.User == "" && (a.Password != "" || a.PasswordFile != ""):
		return errors.New("an etcd password is set but no --etcd-user")
	case a.User != "" && a.Password == "" && a.PasswordFile == "" && a.TLS.Cert != "":
		return fmt.Errorf("--etcd-user %s has no password: to log in with the client certificate (--etcd-cert, on an etcd with --client-cert-auth), leave --etcd-user out: etcd takes the user from the certificate's CommonName", a.User)
	case a.User != "" && a.Password == "" && a.PasswordFile == "":
		return fmt.Errorf("--etcd-user %s has no password: set --etcd-password-file or $%s", a.User, EnvEtcdPassword)
	}
	return a.TLS.Validate()
}

// CheckEndpoints checks endpoints (comma-separated) for credentials
// (see CheckEndpoints) and against the TLS setting (EtcdTLS.CheckScheme).
func (a *EtcdAuth) CheckEndpoints(endpoints string) error {
	if err := CheckEndpoints(endpoints); err != nil {
		return err
	}
	return a.TLS.CheckScheme(ParseEndpoints(endpoints))
}

// resolve returns the user and the password, reading the password file.
func (a EtcdAuth) resolve() (string, string, error) {
	if a.User == "" {
		return "", "", nil
	}
	if a.PasswordFile == "" {
		return a.User, a.Password.Reveal(), nil
	}
	b, err := os.ReadFile(a.PasswordFile)
	if err != nil {
		return "", "", fmt.Errorf("cluster: etcd password file: %w", err)
	}
	pw := strings.TrimRight(string(b), "\r\n")
	if pw == "" {
		return "", "", fmt.Errorf("cluster: etcd password file %s is empty", a.PasswordFile)
	}
	return a.User, pw, nil
}

// CheckEndpoints refuses etcd endpoints that carry credentials
// ("http://user:pw@host:2379"): etcd's client would ignore them, and they
// would show wherever the endpoints are logged. The error numbers the
// endpoint rather than showing it.
func CheckEndpoints(s string) error {
	for i, e := range ParseEndpoints(s) {
		if strings.Contains(e, "@") {
			// Never echoed: where the password starts is anyone's guess.
			return fmt.Errorf("etcd endpoint #%d carries credentials (user@host): give the user with --etcd-user and the password with --etcd-password-file or $%s", i+1, EnvEtcdPassword)
		}
	}
	return nil
}

// Roles of an etcd cluster with authentication (SetupAuth), per cluster:
// RoleCoordinator+prefix, RoleWorker+prefix.
const (
	RoleCoordinator = "clickstream-coordinator:"
	RoleWorker      = "clickstream-worker:"
	// PingKey is the key Dial reads to prove a quorum answers: every role
	// may read it.
	PingKey = "/clickstream-ping"
)

// AuthUsers are the users SetupAuth creates, with their passwords. A user
// without one can log in only with a client certificate naming it
// (CommonName), on an etcd started with --client-cert-auth.
type AuthUsers struct {
	Root, Coordinator, Worker       string // user names
	RootPW, CoordinatorPW, WorkerPW string
}

// SetupAuth creates the roles of the cluster under prefix and their
// users, then turns authentication on. A coordinator may read and write
// every key under prefix+"/"; a worker may write only worker registrations
// (Keys.Workers) and attempt leases (Keys.AllLeases: the coordinator
// attaches them to the worker's etcd lease, and etcd lets only a user who
// may write every key attached to a lease revoke it or put with it), and
// read the cluster's settings. Roles are named per prefix, so that one
// etcd can hold several clusters; give each cluster users of its own. It
// is idempotent: roles, users and grants that exist are kept, passwords are
// set again (root's last: a client logged in as root with a password
// cannot be used after that on etcd 3.4). A user given no password is
// created without one (it logs in by certificate only); if it exists
// already, it is left as it is.
func SetupAuth(ctx context.Context, cli *clientv3.Client, prefix string, u AuthUsers) error {
	keys := Keys{Prefix: prefix}
	root := keys.root() + "/"
	type grant struct {
		key, end string
		perm     clientv3.PermissionType
	}
	prefixEnd := func(k string) string { return clientv3.GetPrefixRangeEnd(k) }
	roleCoordinator, roleWorker := RoleCoordinator+keys.root(), RoleWorker+keys.root()
	roles := map[string][]grant{
		roleCoordinator: {
			{root, prefixEnd(root), clientv3.PermissionType(authpb.READWRITE)},
			{PingKey, "", clientv3.PermissionType(authpb.READ)},
		},
		roleWorker: {
			{keys.Workers(), prefixEnd(keys.Workers()), clientv3.PermissionType(authpb.READWRITE)},
			{keys.Settings(), "", clientv3.PermissionType(authpb.READ)},
			{keys.AllLeases(), prefixEnd(keys.AllLeases()), clientv3.PermissionType(authpb.READWRITE)},
			{PingKey, "", clientv3.PermissionType(authpb.READ)},
		},
	}
	for role, grants := range roles {
		if _, err := cli.RoleAdd(ctx, role); err != nil && !strings.Contains(err.Error(), "already exists") {
			return fmt.Errorf("cluster: add role %s: %w", role, err)
		}
		for _, g := range grants {
			if _, err := cli.RoleGrantPermission(ctx, role, g.key, g.end, g.perm); err != nil {
				return fmt.Errorf("cluster: grant %s on %s: %w", role, g.key, err)
			}
		}
	}
	// Root comes last, and its password is set after everything else:
	// setting the password of the user cli is logged in as (a run with
	// authentication on already) ends cli's session, and etcd's client
	// then waits for a new token instead of failing.
	users := []struct{ name, pw, role string }{
		{u.Coordinator, u.CoordinatorPW, roleCoordinator},
		{u.Worker, u.WorkerPW, roleWorker},
		{u.Root, u.RootPW, "root"},
	}
	rootPW := false // root exists: set its password last
	for _, us := range users {
		switch {
		case us.name == "":
			return fmt.Errorf("cluster: user for role %s needs a name", us.role)
		case us.pw == "":
			opts := &clientv3.UserAddOptions{NoPassword: true}
			if _, err := cli.UserAddWithOptions(ctx, us.name, "", opts); err != nil && !strings.Contains(err.Error(), "already exists") {
				return fmt.Errorf("cluster: add user %s: %w", us.name, err)
			}
		default:
			if _, err := cli.UserAdd(ctx, us.name, us.pw); err != nil {
				if !strings.Contains(err.Error(), "already exists") {
					return fmt.Errorf("cluster: add user %s: %w", us.name, err)
				}
				if us.role == "root" {
					rootPW = true
				} else if _, err := cli.UserChangePassword(ctx, us.name, us.pw); err != nil {
					return fmt.Errorf("cluster: set password of %s: %w", us.name, err)
				}
			}
		}
		if _, err := cli.UserGrantRole(ctx, us.name, us.role); err != nil {
			return fmt.Errorf("cluster: grant role %s to %s: %w", us.role, us.name, err)
		}
	}
	if _, err := cli.AuthEnable(ctx); err != nil {
		return fmt.Errorf("cluster: enable authentication: %w", err)
	}
	// Last: cli may be logged in as root, and etcd 3.4 ends the sessions of
	// a user whose password changes in a way the client never recovers
	// from (every later request waits for its deadline).
	if rootPW {
		if _, err := cli.UserChangePassword(ctx, u.Root, u.RootPW); err != nil {
			return fmt.Errorf("cluster: set password of %s: %w", u.Root, err)
		}
	}
	return nil
}
