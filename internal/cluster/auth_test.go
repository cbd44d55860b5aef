package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/dataco/clickstream/internal/cluster"
	"github.com/dataco/clickstream/internal/cluster/clustertest"
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
