package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dataco/clickstream/internal/cluster"
	"github.com/dataco/clickstream/internal/cluster/clustertest"
	"github.com/dataco/clickstream/internal/pki"
	"github.com/dataco/clickstream/internal/secret"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestEtcdRoles runs a real etcd process with authentication on: each
// role writes only where SetupAuth lets it, a wrong or missing password is
// refused as such, and a password file works like the variable.
func TestEtcdRoles(t *testing.T) {
	if testing.Short() {
		t.Skip("runs an etcd process; skipped with -short")
	}
	const prefix = "/clickstream/v1"
	e := clustertest.StartAuthEtcd(t, prefix)
	keys := cluster.Keys{Prefix: prefix}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dial := func(a cluster.EtcdAuth) (*clientv3.Client, error) {
		return cluster.Dial(ctx, []string{e.Endpoint}, a)
	}
	put := func(cli *clientv3.Client, k string) error { _, err := cli.Put(ctx, k, "x"); return err }
	get := func(cli *clientv3.Client, k string) error { _, err := cli.Get(ctx, k); return err }

	coord, err := dial(e.Coordinator())
	if err != nil {
		t.Fatal(err)
	}
	defer coord.Close()
	for _, k := range []string{keys.Job("j1"), keys.Settings(), keys.Lease("j1", 0, 1), keys.Worker("w1")} {
		if err := put(coord, k); err != nil {
			t.Errorf("coordinator writes %s: %v", k, err)
		}
	}
	for _, k := range []string{"/elsewhere/x", prefix + "0/jobs/x", prefix} {
		if err := put(coord, k); !denied(err) {
			t.Errorf("coordinator writes %s, outside its prefix: %v, want permission denied", k, err)
		}
	}

	pwFile := cluster.EtcdAuth{User: e.Users.Worker, PasswordFile: clustertest.PasswordFile(t, e.Users.WorkerPW)}
	w, err := dial(pwFile)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := put(w, keys.Worker("w2")); err != nil {
		t.Errorf("worker registers: %v", err)
	}
	for _, k := range []string{keys.Settings(), keys.Lease("j1", 0, 1)} {
		if err := get(w, k); err != nil {
			t.Errorf("worker reads %s: %v", k, err)
		}
	}
	for _, k := range []string{keys.Job("j2"), keys.Settings(), keys.Task("j1", 0), keys.Election() + "x", "/elsewhere/x"} {
		if err := put(w, k); !denied(err) {
			t.Errorf("worker writes %s: %v, want permission denied", k, err)
		}
	}
	if err := get(w, keys.Job("j1")); !denied(err) {
		t.Errorf("worker reads a job record: %v, want permission denied", err)
	}

	// The coordinator attaches an attempt to the worker's lease; the worker
	// can still put with its lease (draining) and revoke it (shutdown).
	g, err := w.Grant(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := coord.Put(ctx, keys.Lease("j1", 1, 1), "x", clientv3.WithLease(g.ID)); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Put(ctx, keys.Worker("w2"), "draining", clientv3.WithLease(g.ID)); err != nil {
		t.Errorf("worker marks itself draining with an attempt attached: %v", err)
	}
	if _, err := w.Revoke(ctx, g.ID); err != nil {
		t.Errorf("worker revokes its lease with an attempt attached: %v", err)
	}

	bad := e.Worker()
	bad.Password = "wrong"
	if _, err := dial(bad); !errors.Is(err, cluster.ErrEtcdAuth) || strings.Contains(err.Error(), "wrong") {
		t.Errorf("wrong password: %v, want ErrEtcdAuth without the password", err)
	}
	if _, err := dial(cluster.EtcdAuth{}); !errors.Is(err, cluster.ErrEtcdAuth) {
		t.Errorf("no credentials: %v, want ErrEtcdAuth", err)
	}
}

// TestEtcdTLS runs a real etcd process serving TLS, with authentication
// on: a user logs in with its password over TLS; a missing or wrong CA,
// and an http:// endpoint with TLS configured, are refused with errors
// that say which setting is at fault.
func TestEtcdTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("runs an etcd process; skipped with -short")
	}
	const prefix = "/clickstream/v1"
	e := clustertest.StartAuthEtcd(t, prefix, clustertest.WithTLS())
	if !strings.HasPrefix(e.Endpoint, "https://") {
		t.Fatalf("endpoint %s, want https://", e.Endpoint)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cli, err := cluster.Dial(ctx, []string{e.Endpoint}, e.Coordinator())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if _, err := cli.Put(ctx, cluster.Keys{Prefix: prefix}.Job("j1"), "x"); err != nil {
		t.Errorf("coordinator over TLS writes a job: %v", err)
	}
	// Scheme-less endpoints follow the TLS setting.
	hostport := strings.TrimPrefix(e.Endpoint, "https://")
	if cli, err := cluster.Dial(ctx, []string{hostport}, e.Worker()); err != nil {
		t.Errorf("endpoint without a scheme, with --etcd-ca: %v", err)
	} else {
		cli.Close()
	}

	noCA := e.Coordinator()
	noCA.TLS = cluster.EtcdTLS{}
	if _, err := cluster.Dial(ctx, []string{e.Endpoint}, noCA); err == nil || !strings.Contains(err.Error(), "--etcd-ca") {
		t.Errorf("https:// without a CA: %v, want an error naming --etcd-ca", err)
	}
	if _, err := cluster.Dial(ctx, []string{"http://" + hostport}, e.Coordinator()); err == nil || !strings.Contains(err.Error(), "use https://") {
		t.Errorf("http:// with a CA: %v, want an error asking for https://", err)
	}
	wrongCA := e.Coordinator()
	wrongCA.TLS.CA = caFile(t, newCA(t))
	_, err = cluster.Dial(ctx, []string{e.Endpoint}, wrongCA)
	if !errors.Is(err, cluster.ErrEtcdTLS) || !strings.Contains(err.Error(), "unknown authority") || !strings.Contains(err.Error(), "--etcd-ca") {
		t.Errorf("another CA: %v, want ErrEtcdTLS naming --etcd-ca", err)
	}
	if err != nil && strings.Contains(err.Error(), e.Users.CoordinatorPW) {
		t.Errorf("the error shows the password: %v", err)
	}
}

// TestEtcdClientCertRoles runs a real etcd process with --client-cert-auth
// and authentication on: a client certificate logs in as the user of its
// CommonName, with that user's role and nothing more; a client without a
// certificate, or with one of another CA, is refused and told why; and a
// user made without a password logs in by certificate only.
func TestEtcdClientCertRoles(t *testing.T) {
	if testing.Short() {
		t.Skip("runs an etcd process; skipped with -short")
	}
	const prefix = "/clickstream/v1"
	e := clustertest.StartAuthEtcd(t, prefix, clustertest.WithClientCertAuth())
	keys := cluster.Keys{Prefix: prefix}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dial := func(a cluster.EtcdAuth) (*clientv3.Client, error) {
		return cluster.Dial(ctx, []string{e.Endpoint}, a)
	}
	byCert := func(user string) *clientv3.Client {
		t.Helper()
		cli, err := dial(cluster.EtcdAuth{TLS: e.ClientCert(t, user)})
		if err != nil {
			t.Fatalf("%s by certificate: %v", user, err)
		}
		t.Cleanup(func() { cli.Close() })
		return cli
	}
	put := func(cli *clientv3.Client, k string) error { _, err := cli.Put(ctx, k, "x"); return err }

	w := byCert(e.Users.Worker)
	if err := put(w, keys.Worker("w1")); err != nil {
		t.Errorf("worker (certificate) registers: %v", err)
	}
	for _, k := range []string{keys.Job("j1"), keys.Settings(), keys.Task("j1", 0), "/elsewhere/x", prefix + "0/workers/w1"} {
		if err := put(w, k); !denied(err) {
			t.Errorf("worker (certificate) writes %s: %v, want permission denied", k, err)
		}
	}
	c := byCert(e.Users.Coordinator)
	if err := put(c, keys.Job("j1")); err != nil {
		t.Errorf("coordinator (certificate) writes a job: %v", err)
	}
	if err := put(c, "/elsewhere/x"); !denied(err) {
		t.Errorf("coordinator (certificate) writes outside its prefix: %v, want permission denied", err)
	}

	if _, err := dial(cluster.EtcdAuth{TLS: e.ClientCert(t, "nobody")}); !errors.Is(err, cluster.ErrEtcdAuth) || !strings.Contains(err.Error(), `"nobody"`) {
		t.Errorf("a certificate naming no user: %v, want ErrEtcdAuth naming the CommonName", err)
	}
	_, err := dial(cluster.EtcdAuth{TLS: cluster.EtcdTLS{CA: e.CAFile}})
	if !errors.Is(err, cluster.ErrEtcdTLS) || !strings.Contains(err.Error(), "--etcd-cert") {
		t.Errorf("no client certificate: %v, want ErrEtcdTLS naming --etcd-cert", err)
	}
	other := newCA(t)
	foreign := clustertest.WriteCert(t, other, pki.Request{CommonName: e.Users.Root})
	foreign.CA = e.CAFile
	if _, err := dial(cluster.EtcdAuth{TLS: foreign}); !errors.Is(err, cluster.ErrEtcdTLS) || !strings.Contains(err.Error(), "refused the client certificate") {
		t.Errorf("a client certificate of another CA: %v, want ErrEtcdTLS", err)
	}

	// Users made without a password log in by certificate only.
	root, err := dial(e.Root())
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	const other2 = "/other/v1"
	if err := cluster.SetupAuth(ctx, root, other2, cluster.AuthUsers{Root: e.Users.Root, RootPW: e.Users.RootPW, Coordinator: "coordinator2", Worker: "worker2"}); err != nil {
		t.Fatal(err)
	}
	w2 := byCert("worker2")
	if err := put(w2, cluster.Keys{Prefix: other2}.Worker("w1")); err != nil {
		t.Errorf("certificate-only worker registers: %v", err)
	}
	if err := put(w2, keys.Worker("w9")); !denied(err) {
		t.Errorf("a worker of one cluster registers in another: %v, want permission denied", err)
	}
	withPassword := cluster.EtcdAuth{User: "worker2", Password: "guess", TLS: e.ClientCert(t, "worker2")}
	if _, err := dial(withPassword); !errors.Is(err, cluster.ErrEtcdAuth) {
		t.Errorf("a certificate-only user logs in with a password: %v, want ErrEtcdAuth", err)
	}
}

func newCA(t *testing.T) *pki.CA {
	t.Helper()
	ca, err := pki.NewCA("another CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// caFile writes ca's certificate to a file of the test.
func caFile(t *testing.T, ca *pki.CA) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(f, ca.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func denied(err error) bool {
	return err != nil && strings.Contains(err.Error(), "permission denied")
}

func TestCheckEndpoints(t *testing.T) {
	for _, ok := range []string{"", "127.0.0.1:2379", "http://a:2379,https://b:2379"} {
		if err := cluster.CheckEndpoints(ok); err != nil {
			t.Errorf("CheckEndpoints(%q): %v", ok, err)
		}
	}
	err := cluster.CheckEndpoints("http://a:2379,http://root:s3cret@b:2379")
	if err == nil || strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "--etcd-user") {
		t.Fatalf("credentials in an endpoint: %v, want an error that names --etcd-user and hides the password", err)
	}
	err = cluster.CheckEndpoints("root:s3cret@etcd:2379")
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("credentials in an endpoint: %v, want an error that names --etcd-user and hides the password", err)
	}
}

func TestEtcdAuthValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		a    cluster.EtcdAuth
		ok   bool
	}{
		{"none", cluster.EtcdAuth{}, true},
		{"password", cluster.EtcdAuth{User: "u", Password: "p"}, true},
		{"file", cluster.EtcdAuth{User: "u", PasswordFile: "/f"}, true},
		{"user without password", cluster.EtcdAuth{User: "u"}, false},
		{"password without user", cluster.EtcdAuth{Password: "p"}, false},
		{"both sources", cluster.EtcdAuth{User: "u", Password: "p", PasswordFile: "/f"}, false},
	} {
		if err := tc.a.Validate(); (err == nil) != tc.ok {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	a := cluster.EtcdAuth{}
	a.SecretsFromEnv(func(k string) (string, bool) { return "from-env", k == cluster.EnvEtcdPassword })
	if a.Password != "from-env" {
		t.Fatalf("password from the environment: %q", a.Password)
	}
	var logged strings.Builder
	slog.New(slog.NewTextHandler(&logged, nil)).Info("x", "auth", a.Password, "fmt", fmt.Sprint(a.Password))
	if strings.Contains(logged.String(), "from-env") {
		t.Fatalf("a password shows in a log: %s", logged.String())
	}
}

// TestSetupAuthAgain: SetupAuth run again on an etcd with authentication
// on, logged in as root, returns and sets the passwords it is given.
func TestSetupAuthAgain(t *testing.T) {
	if testing.Short() {
		t.Skip("runs an etcd process; skipped with -short")
	}
	const prefix = "/clickstream/v1"
	e := clustertest.StartAuthEtcd(t, prefix)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	root, err := cluster.Dial(ctx, []string{e.Endpoint}, e.Root())
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	users := e.Users
	users.CoordinatorPW = "new-" + users.CoordinatorPW
	if err := cluster.SetupAuth(ctx, root, prefix, users); err != nil {
		t.Fatalf("SetupAuth again: %v", err)
	}
	if _, err := cluster.Dial(ctx, []string{e.Endpoint}, e.Coordinator()); !errors.Is(err, cluster.ErrEtcdAuth) {
		t.Errorf("the old coordinator password: %v, want ErrEtcdAuth", err)
	}
	for _, a := range []cluster.EtcdAuth{{User: users.Coordinator, Password: secret.Secret(users.CoordinatorPW)}, e.Worker(), e.Root()} {
		cli, err := cluster.Dial(ctx, []string{e.Endpoint}, a)
		if err != nil {
			t.Errorf("user %s after SetupAuth again: %v", a.User, err)
			continue
		}
		cli.Close()
	}
}
