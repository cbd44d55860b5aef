package clustertest

import (
	"context"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/dataco/clickstream/internal/cluster"
	"github.com/dataco/clickstream/internal/secret"
)

// AuthEtcd is an etcd server process with authentication on, and the
// users cluster.SetupAuth made for the cluster under Prefix.
type AuthEtcd struct {
	Endpoint string
	Prefix   string
	Users    cluster.AuthUsers
}

// Root, Coordinator and Worker are the credentials of the three users;
// each has a password file written for it too (CoordinatorFile,
// WorkerFile) for commands that take --etcd-password-file.
func (e *AuthEtcd) Root() cluster.EtcdAuth {
	return cluster.EtcdAuth{User: e.Users.Root, Password: secret.Secret(e.Users.RootPW)}
}

func (e *AuthEtcd) Coordinator() cluster.EtcdAuth {
	return cluster.EtcdAuth{User: e.Users.Coordinator, Password: secret.Secret(e.Users.CoordinatorPW)}
}

func (e *AuthEtcd) Worker() cluster.EtcdAuth {
	return cluster.EtcdAuth{User: e.Users.Worker, Password: secret.Secret(e.Users.WorkerPW)}
}

// StartAuthEtcd starts the etcd server binary ($CLICKSTREAM_ETCD_BINARY,
// else etcd on PATH: Debian's etcd-server, which `make dev-up` installs)
// as a process of the test, sets up the roles and users of a cluster
// under prefix and turns authentication on. The process is killed when
// the test ends.
func StartAuthEtcd(t testing.TB, prefix string) *AuthEtcd {
	t.Helper()
	bin := os.Getenv("CLICKSTREAM_ETCD_BINARY")
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("etcd"); err != nil {
			t.Fatalf("etcd server binary not found (`make dev-up` installs it; or set CLICKSTREAM_ETCD_BINARY): %v", err)
		}
	}
	dir := t.TempDir()
	client, peer := freeAddrs(t)
	cmd := exec.Command(bin, "--name", "auth", "--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", "http://"+client, "--advertise-client-urls", "http://"+client,
		"--listen-peer-urls", "http://"+peer, "--initial-advertise-peer-urls", "http://"+peer,
		"--initial-cluster", "auth=http://"+peer, "--log-level", "error", "--heartbeat-interval", "50", "--election-timeout", "500")
	log, err := os.Create(filepath.Join(dir, "etcd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start etcd: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		log.Close()
	})
	e := &AuthEtcd{Endpoint: "http://" + client, Prefix: prefix, Users: cluster.AuthUsers{
		Root: "root", Coordinator: "coordinator", Worker: "worker",
		RootPW: "root-pw-" + randHex(6), CoordinatorPW: "coordinator-pw-" + randHex(6), WorkerPW: "worker-pw-" + randHex(6),
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var cli interface{ Close() error }
	for {
		c, err := cluster.Dial(ctx, []string{e.Endpoint}, cluster.EtcdAuth{})
		if err == nil {
			if err := cluster.SetupAuth(ctx, c, prefix, e.Users); err != nil {
				c.Close()
				t.Fatal(err)
			}
			cli = c
			break
		}
		if ctx.Err() != nil {
			data, _ := os.ReadFile(log.Name())
			t.Fatalf("etcd at %s not ready: %v\n%s", e.Endpoint, err, data)
		}
		time.Sleep(100 * time.Millisecond)
	}
	cli.Close()
	return e
}

// PasswordFile writes pw to a file of the test and returns its path.
func PasswordFile(t testing.TB, pw string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(f, []byte(pw+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// freeAddrs returns two distinct loopback addresses that were free a
// moment ago (both probes are open at once, so they differ).
func freeAddrs(t testing.TB) (string, string) {
	t.Helper()
	a, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	return a.Addr().String(), b.Addr().String()
}

func randHex(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = "0123456789abcdef"[rand.IntN(16)]
	}
	return string(b)
}
