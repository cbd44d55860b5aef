package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dataco/clickstream/internal/cluster"
	"github.com/dataco/clickstream/internal/cluster/clustertest"
)

// TestCertsCommand: certs issues clickstream identities and, with --etcd,
// certificates whose CommonName is an etcd user and that name no
// identity.
func TestCertsCommand(t *testing.T) {
	dir := t.TempDir()
	args := []string{"--dir", dir, "--worker", "w-1", "--etcd", "clickstream-worker", "--etcd", "server", "--hosts", "etcd,127.0.0.1"}
	var out bytes.Buffer
	if err := runCommand(context.Background(), "certs", args, &out); err != nil {
		t.Fatalf("certs: %v\n%s", err, out.String())
	}
	for _, tc := range []struct {
		file, cn, uri string
	}{
		{"worker-w-1.pem", "spiffe://clickstream/worker/w-1", "spiffe://clickstream/worker/w-1"},
		{"etcd-clickstream-worker.pem", "clickstream-worker", ""},
		{"etcd-server.pem", "server", ""},
	} {
		cert := readCert(t, filepath.Join(dir, tc.file))
		var uris []string
		for _, u := range cert.URIs {
			uris = append(uris, u.String())
		}
		if cert.Subject.CommonName != tc.cn || strings.Join(uris, ",") != tc.uri {
			t.Errorf("%s: CN %q, URIs %q; want %q, %q", tc.file, cert.Subject.CommonName, uris, tc.cn, tc.uri)
		}
		if len(cert.DNSNames) != 1 || cert.DNSNames[0] != "etcd" || len(cert.IPAddresses) != 1 {
			t.Errorf("%s: hosts %v %v, want etcd and 127.0.0.1", tc.file, cert.DNSNames, cert.IPAddresses)
		}
		if fi, err := os.Stat(filepath.Join(dir, strings.TrimSuffix(tc.file, ".pem")+"-key.pem")); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("key of %s: %v, mode %v", tc.file, err, fi.Mode())
		}
	}
	if !strings.Contains(out.String(), "CN=clickstream-worker") {
		t.Errorf("output does not name the etcd certificate:\n%s", out.String())
	}
	// --secret-dirs: the layout of a Kubernetes TLS Secret, same CA.
	if err := runCommand(context.Background(), "certs", []string{"--dir", dir, "--secret-dirs", "--coordinator", "c", "--etcd", "root"}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"coordinator-c", "etcd-root"} {
		leaf := readCert(t, filepath.Join(dir, name, "tls.crt"))
		ca := readCert(t, filepath.Join(dir, name, "ca.crt"))
		pool := x509.NewCertPool()
		pool.AddCert(ca)
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Errorf("%s/tls.crt against %s/ca.crt: %v", name, name, err)
		}
		if !ca.Equal(readCert(t, filepath.Join(dir, "ca.pem"))) {
			t.Errorf("%s/ca.crt is not the CA of the directory", name)
		}
		if fi, err := os.Stat(filepath.Join(dir, name, "tls.key")); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s/tls.key: %v", name, err)
		}
	}
	err := runCommand(context.Background(), "certs", []string{"--dir", dir, "--etcd", "../x"}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "--etcd") {
		t.Errorf("--etcd ../x: %v, want a usage error", err)
	}
}

func readCert(t *testing.T, name string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(data)
	if b == nil {
		t.Fatalf("%s: no PEM", name)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestEtcdAuthCommandCertificatesOnly: on an etcd that requires client
// certificates, etcd-auth sets up authentication with root's certificate
// and no password at all; run again, it logs in the same way; the users
// log in by certificate, and no user logs in with an empty password.
func TestEtcdAuthCommandCertificatesOnly(t *testing.T) {
	if testing.Short() {
		t.Skip("runs an etcd process; skipped with -short")
	}
	const prefix = "/clickstream/v1"
	e := clustertest.StartAuthEtcd(t, prefix, clustertest.WithClientCertAuth(), clustertest.WithoutAuth())
	root := e.ClientCert(t, "root")
	ctx := context.Background()
	args := []string{"--etcd", e.Endpoint, "--etcd-prefix", prefix, "--etcd-ca", root.CA, "--etcd-cert", root.Cert, "--etcd-key", root.Key}
	for range 2 {
		if err := runCommand(ctx, "etcd-auth", args, &bytes.Buffer{}); err != nil {
			t.Fatalf("etcd-auth: %v", err)
		}
	}
	c, err := cluster.Dial(ctx, []string{e.Endpoint}, cluster.EtcdAuth{TLS: e.ClientCert(t, "clickstream-coordinator")})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Put(ctx, cluster.Keys{Prefix: prefix}.Job("j1"), "x"); err != nil {
		t.Errorf("coordinator writes a job: %v", err)
	}
	if _, err := c.Put(ctx, "/elsewhere", "x"); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("coordinator writes outside its prefix: %v, want permission denied (authentication on)", err)
	}
	noPW := cluster.EtcdAuth{User: "root", Password: "x", TLS: e.ClientCert(t, "nobody")}
	if _, err := cluster.Dial(ctx, []string{e.Endpoint}, noPW); !errors.Is(err, cluster.ErrEtcdAuth) {
		t.Errorf("root with a password: %v, want ErrEtcdAuth", err)
	}
	if err := runCommand(ctx, "etcd-auth", args[:6], &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "--root-password-file is required") {
		t.Errorf("neither a root password nor a certificate: %v", err)
	}
}

// TestEtcdAuthCommandTLS: etcd-auth speaks TLS to an etcd that requires
// client certificates, logging in with root's certificate; users given no
// password file log in by certificate only.
func TestEtcdAuthCommandTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("runs an etcd process; skipped with -short")
	}
	const prefix = "/clickstream/v1"
	e := clustertest.StartAuthEtcd(t, prefix, clustertest.WithClientCertAuth())
	root := e.ClientCert(t, e.Users.Root)
	ctx := context.Background()
	args := []string{"--etcd", e.Endpoint, "--etcd-prefix", prefix, "--root-password-file", clustertest.PasswordFile(t, e.Users.RootPW),
		"--etcd-ca", root.CA, "--etcd-cert", root.Cert, "--etcd-key", root.Key}
	var out bytes.Buffer
	if err := runCommand(ctx, "etcd-auth", args, &out); err != nil {
		t.Fatalf("etcd-auth: %v", err)
	}
	if !strings.Contains(out.String(), "clickstream-worker (role clickstream-worker:/clickstream/v1, certificate only)") {
		t.Errorf("etcd-auth output: %s", out.String())
	}
	w, err := cluster.Dial(ctx, []string{e.Endpoint}, cluster.EtcdAuth{TLS: e.ClientCert(t, "clickstream-worker")})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	keys := cluster.Keys{Prefix: prefix}
	if _, err := w.Put(ctx, keys.Worker("w1"), "x"); err != nil {
		t.Errorf("worker registers: %v", err)
	}
	if _, err := w.Put(ctx, keys.Job("j1"), "x"); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("worker writes a job: %v, want permission denied", err)
	}
	err = runCommand(ctx, "etcd-auth", args[:6], &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "--etcd-ca") {
		t.Errorf("https:// without --etcd-ca: %v, want an error naming --etcd-ca", err)
	}
}
