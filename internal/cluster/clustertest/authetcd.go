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
	"github.com/dataco/clickstream/internal/pki"
	"github.com/dataco/clickstream/internal/secret"
)

// AuthEtcd is an etcd server process with authentication on, and the
// users cluster.SetupAuth made for the cluster under Prefix.
type AuthEtcd struct {
	Endpoint string // http://, or https:// with TLS
	Prefix   string
	Users    cluster.AuthUsers
	// CA signed the server's certificate, and client certificates
	// (ClientCert); CAFile holds its certificate. Both are zero without
	// TLS.
	CA     *pki.CA
	CAFile string

	clientCertAuth bool
	userCerts      map[string]cluster.EtcdTLS // by user; "": the server's
}

// Root, Coordinator and Worker are the credentials of the three users,
// with the CA when etcd serves TLS, and a client certificate naming the
// user when etcd requires one (WithClientCertAuth). PasswordFile writes a
// password to a file, for commands that take --etcd-password-file.
func (e *AuthEtcd) Root() cluster.EtcdAuth {
	return e.auth(e.Users.Root, e.Users.RootPW)
}

func (e *AuthEtcd) Coordinator() cluster.EtcdAuth {
	return e.auth(e.Users.Coordinator, e.Users.CoordinatorPW)
}

func (e *AuthEtcd) Worker() cluster.EtcdAuth {
	return e.auth(e.Users.Worker, e.Users.WorkerPW)
}

func (e *AuthEtcd) auth(user, pw string) cluster.EtcdAuth {
	a := cluster.EtcdAuth{User: user, Password: secret.Secret(pw)}
	if e.CA != nil {
		a.TLS.CA = e.CAFile
	}
	if e.clientCertAuth {
		a.TLS = e.certFiles(user)
	}
	return a
}

// ClientCert returns the TLS files of a client certificate whose
// CommonName is user, signed by the test's CA: on an etcd started
// WithClientCertAuth, it logs in as user without a password.
func (e *AuthEtcd) ClientCert(t testing.TB, user string) cluster.EtcdTLS {
	t.Helper()
	if e.CA == nil {
		t.Fatal("clustertest: ClientCert of an etcd without TLS")
	}
	tf, err := writeCert(t.TempDir(), e.CA, pki.Request{CommonName: user}, e.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	return tf
}

// WriteCert issues r with ca and writes the certificate, its key and the
// CA into files of the test.
func WriteCert(t testing.TB, ca *pki.CA, r pki.Request) cluster.EtcdTLS {
	t.Helper()
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, ca.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	tf, err := writeCert(dir, ca, r, caFile)
	if err != nil {
		t.Fatal(err)
	}
	return tf
}

// certFiles is ClientCert for the users made at start.
func (e *AuthEtcd) certFiles(user string) cluster.EtcdTLS {
	return e.userCerts[user]
}

// An EtcdOption changes the etcd StartAuthEtcd runs.
type EtcdOption func(*etcdOptions)

type etcdOptions struct{ tls, clientCertAuth, noAuth bool }

// WithoutAuth leaves authentication off and creates no users: for tests
// of setting it up (AuthEtcd.Users is then what SetupAuth would be
// given; ClientCert works with WithClientCertAuth).
func WithoutAuth() EtcdOption { return func(o *etcdOptions) { o.noAuth = true } }

// WithTLS serves clients over TLS (https://), with a server certificate
// for 127.0.0.1 and localhost signed by a CA of the test (AuthEtcd.CA).
func WithTLS() EtcdOption { return func(o *etcdOptions) { o.tls = true } }

// WithClientCertAuth is WithTLS, and etcd requires a client certificate
// signed by the test's CA and takes the user from its CommonName
// (--client-cert-auth).
func WithClientCertAuth() EtcdOption {
	return func(o *etcdOptions) { o.tls, o.clientCertAuth = true, true }
}

// StartAuthEtcd starts the etcd server binary ($CLICKSTREAM_ETCD_BINARY,
// else etcd on PATH: Debian's etcd-server, which `make dev-up` installs)
// as a process of the test, sets up the roles and users of a cluster
// under prefix and turns authentication on (unless WithoutAuth). The
// process is killed when the test ends.
func StartAuthEtcd(t testing.TB, prefix string, opts ...EtcdOption) *AuthEtcd {
	t.Helper()
	var o etcdOptions
	for _, opt := range opts {
		opt(&o)
	}
	bin := os.Getenv("CLICKSTREAM_ETCD_BINARY")
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("etcd"); err != nil {
			t.Fatalf("etcd server binary not found (`make dev-up` installs it; or set CLICKSTREAM_ETCD_BINARY): %v", err)
		}
	}
	dir := t.TempDir()
	client, peer := freeAddrs(t)
	e := &AuthEtcd{Endpoint: "http://" + client, Prefix: prefix, Users: cluster.AuthUsers{
		Root: "root", Coordinator: "coordinator", Worker: "worker",
		RootPW: "root-pw-" + randHex(6), CoordinatorPW: "coordinator-pw-" + randHex(6), WorkerPW: "worker-pw-" + randHex(6),
	}}
	var tlsArgs []string
	if o.tls {
		e.Endpoint = "https://" + client
		if err := e.makeCerts(dir, o.clientCertAuth); err != nil {
			t.Fatal(err)
		}
		server := e.userCerts[""]
		tlsArgs = []string{"--cert-file", server.Cert, "--key-file", server.Key}
		if o.clientCertAuth {
			tlsArgs = append(tlsArgs, "--client-cert-auth", "--trusted-ca-file", e.CAFile)
		}
	}
	args := append([]string{"--name", "auth", "--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", e.Endpoint, "--advertise-client-urls", e.Endpoint,
		"--listen-peer-urls", "http://" + peer, "--initial-advertise-peer-urls", "http://" + peer,
		"--initial-cluster", "auth=http://" + peer, "--log-level", "error", "--heartbeat-interval", "50", "--election-timeout", "500"},
		tlsArgs...)
	cmd := exec.Command(bin, args...)
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
	// Before authentication is on, anyone may set it up; with client
	// certificates required, root's certificate is the way in.
	setup := cluster.EtcdAuth{TLS: cluster.EtcdTLS{CA: e.CAFile}}
	if o.clientCertAuth {
		setup.TLS = e.certFiles(e.Users.Root)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var cli interface{ Close() error }
	for {
		c, err := cluster.Dial(ctx, []string{e.Endpoint}, setup)
		if err == nil {
			if o.noAuth {
				cli = c
				break
			}
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

// makeCerts creates the test's CA, etcd's server certificate (under the
// user "") and, with client certificates, one per user.
func (e *AuthEtcd) makeCerts(dir string, clientCerts bool) error {
	ca, err := pki.NewCA("clustertest etcd CA", time.Hour)
	if err != nil {
		return err
	}
	e.CA, e.CAFile = ca, filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(e.CAFile, ca.CertPEM(), 0o600); err != nil {
		return err
	}
	e.clientCertAuth = clientCerts
	e.userCerts = map[string]cluster.EtcdTLS{}
	reqs := map[string]pki.Request{"": {CommonName: "etcd", DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv6loopback, net.IPv4(127, 0, 0, 1)}}}
	if clientCerts {
		for _, u := range []string{e.Users.Root, e.Users.Coordinator, e.Users.Worker} {
			reqs[u] = pki.Request{CommonName: u}
		}
	}
	for user, r := range reqs {
		d := filepath.Join(dir, "cert-"+user)
		if err := os.Mkdir(d, 0o700); err != nil {
			return err
		}
		if e.userCerts[user], err = writeCert(d, ca, r, e.CAFile); err != nil {
			return err
		}
	}
	return nil
}

// writeCert issues r and writes it into dir.
func writeCert(dir string, ca *pki.CA, r pki.Request, caFile string) (cluster.EtcdTLS, error) {
	c, err := ca.Issue(r)
	if err != nil {
		return cluster.EtcdTLS{}, err
	}
	tf := cluster.EtcdTLS{CA: caFile, Cert: filepath.Join(dir, "cert.pem"), Key: filepath.Join(dir, "key.pem")}
	if err := os.WriteFile(tf.Cert, c.CertPEM, 0o600); err != nil {
		return cluster.EtcdTLS{}, err
	}
	return tf, os.WriteFile(tf.Key, c.KeyPEM, 0o600)
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
