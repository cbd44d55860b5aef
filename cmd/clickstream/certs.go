package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/dataco/clickstream/internal/mtls"
	"github.com/dataco/clickstream/internal/pki"
)

// newCertsCmd creates a local CA and a certificate per process, for
// development and for clusters without a certificate manager.
func newCertsCmd() *cobra.Command {
	var (
		dir                                      string
		hosts                                    []string
		coordinators, workers, operators, viewer []string
		etcdNames                                []string
		validity, caValidity                     time.Duration
		secretDirs                               bool
	)
	cmd := &cobra.Command{
		Use:   "certs [--dir DIR] [--worker ID]... [--etcd NAME]... [--hosts H,...]",
		Short: "create a local CA and a certificate per role for mutual TLS (reuses DIR/ca.pem and ca-key.pem if present)",
		Long: `certs creates, in DIR, a CA (ca.pem, ca-key.pem) and, signed by it, a certificate and key per process:
<role>-<name>.pem and <role>-<name>-key.pem, naming spiffe://clickstream/<role>/<name>.
A CA already in DIR is reused, so running certs again renews the certificates, and
running processes pick the new files up on their next connection.

--etcd NAME issues etcd-<NAME>.pem and etcd-<NAME>-key.pem with the CommonName NAME
and no clickstream identity: for etcd's members (their server and peer certificate:
give their host names with --hosts), and for etcd users that log in with a client
certificate on an etcd started with --client-cert-auth (NAME is the user).

--secret-dirs writes each certificate as a directory instead, <role>-<name>/ or
etcd-<NAME>/, holding tls.crt, tls.key and ca.crt: the layout of the Secrets
cert-manager makes, so that the same paths serve both, and of
kubectl create secret generic NAME --from-file=DIR/<role>-<name>.

  clickstream certs --dir certs --worker worker-1 --worker worker-2
  clickstream coordinator --tls-ca certs/ca.pem --tls-cert certs/coordinator-local.pem --tls-key certs/coordinator-local-key.pem ...
  clickstream worker --tls-ca certs/ca.pem --tls-cert certs/worker-worker-1.pem --tls-key certs/worker-worker-1-key.pem ...
  clickstream status --tls-ca certs/ca.pem --tls-cert certs/viewer-local.pem --tls-key certs/viewer-local-key.pem

  clickstream certs --dir certs --etcd server --etcd root --etcd clickstream-coordinator --etcd clickstream-worker
  etcd --client-cert-auth --trusted-ca-file certs/ca.pem --cert-file certs/etcd-server.pem --key-file certs/etcd-server-key.pem ...
  clickstream worker --etcd https://127.0.0.1:2379 --etcd-ca certs/ca.pem --etcd-cert certs/etcd-clickstream-worker.pem --etcd-key certs/etcd-clickstream-worker-key.pem ...`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var reqs []pki.Request
			for _, g := range []struct {
				role  mtls.Role
				names []string
			}{{mtls.RoleCoordinator, coordinators}, {mtls.RoleWorker, workers}, {mtls.RoleOperator, operators}, {mtls.RoleViewer, viewer}} {
				for _, n := range g.names {
					id, err := mtls.NewIdentity(g.role, n)
					if err != nil {
						return usageError{err}
					}
					reqs = append(reqs, pki.Request{URI: id.URI()})
				}
			}
			for _, n := range etcdNames {
				if !validEtcdName(n) {
					return usageErrorf("--etcd %q: want letters, digits, '.', '_' or '-' (it names the files)", n)
				}
				reqs = append(reqs, pki.Request{CommonName: n})
			}
			var dns []string
			var ips []net.IP
			for _, h := range hosts {
				if ip := net.ParseIP(h); ip != nil {
					ips = append(ips, ip)
				} else {
					dns = append(dns, h)
				}
			}
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return err
			}
			ca, created, err := loadOrCreateCA(dir, caValidity)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if created {
				fmt.Fprintf(out, "created CA %s (valid until %s)\n", filepath.Join(dir, "ca.pem"), ca.Cert.NotAfter.Format(time.DateOnly))
			} else {
				fmt.Fprintf(out, "reusing CA %s\n", filepath.Join(dir, "ca.pem"))
			}
			for _, r := range reqs {
				r.DNSNames, r.IPs, r.NotAfter = dns, ips, time.Now().Add(validity)
				c, err := ca.Issue(r)
				if err != nil {
					return err
				}
				// spiffe://clickstream/<role>/<name> -> <role>-<name>; an
				// etcd certificate: etcd-<name>
				what, base := r.URI, "etcd-"+r.CommonName
				if r.URI != "" {
					base = strings.ReplaceAll(strings.TrimPrefix(r.URI, "spiffe://"+mtls.TrustDomain+"/"), "/", "-")
				} else {
					what = "CN=" + r.CommonName
				}
				base = filepath.Join(dir, base)
				files := []pemFile{{base + "-key.pem", c.KeyPEM, 0o600}, {base + ".pem", c.CertPEM, 0o644}}
				if secretDirs {
					if err := os.MkdirAll(base, 0o700); err != nil {
						return err
					}
					files = []pemFile{
						{filepath.Join(base, "tls.key"), c.KeyPEM, 0o600},
						{filepath.Join(base, "tls.crt"), c.CertPEM, 0o644},
						{filepath.Join(base, "ca.crt"), ca.CertPEM(), 0o644},
					}
				}
				// the key first: a certificate never names a key not yet written
				for _, f := range files {
					if err := writeFileAtomic(f.name, f.data, f.perm); err != nil {
						return err
					}
				}
				if secretDirs {
					fmt.Fprintf(out, "%s: %s/ (tls.crt, tls.key, ca.crt)\n", what, base)
				} else {
					fmt.Fprintf(out, "%s: %s.pem, %s-key.pem\n", what, base, base)
				}
			}
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&dir, "dir", "certs", "directory of the CA and the certificates")
	fs.StringSliceVar(&hosts, "hosts", []string{"localhost", "127.0.0.1", "::1"}, "DNS names and IPs added to every certificate, for tools that check host names")
	fs.StringSliceVar(&coordinators, "coordinator", []string{"local"}, "coordinator names (repeatable)")
	fs.StringSliceVar(&workers, "worker", []string{"worker-1", "worker-2"}, "worker ids (repeatable): a worker's certificate names its --id")
	fs.StringSliceVar(&operators, "operator", []string{"local"}, "operator names: may submit and cancel jobs (repeatable)")
	fs.StringSliceVar(&viewer, "viewer", []string{"local"}, "viewer names: may read jobs (repeatable)")
	fs.StringSliceVar(&etcdNames, "etcd", nil, "etcd certificates (repeatable): CommonName NAME, no clickstream identity; for etcd members, and for etcd users that log in by certificate")
	fs.BoolVar(&secretDirs, "secret-dirs", false, "write each certificate as a directory holding tls.crt, tls.key and ca.crt (the layout of a Kubernetes TLS Secret)")
	fs.DurationVar(&validity, "validity", pki.DefaultValidity, "validity of the certificates")
	fs.DurationVar(&caValidity, "ca-validity", 5*365*24*time.Hour, "validity of a new CA")
	return cmd
}

// pemFile is a file certs writes.
type pemFile struct {
	name string
	data []byte
	perm os.FileMode
}

// validEtcdName reports whether n may name an etcd certificate and its
// files.
func validEtcdName(n string) bool {
	if n == "" || len(n) > 128 || n == "." || n == ".." {
		return false
	}
	for _, r := range n {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// loadOrCreateCA returns the CA in dir, creating it if absent.
func loadOrCreateCA(dir string, validity time.Duration) (ca *pki.CA, created bool, err error) {
	certFile, keyFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")
	certPEM, err1 := os.ReadFile(certFile)
	keyPEM, err2 := os.ReadFile(keyFile)
	switch {
	case err1 == nil && err2 == nil:
		ca, err = pki.LoadCA(certPEM, keyPEM)
		return ca, false, err
	case !os.IsNotExist(err1) || !os.IsNotExist(err2):
		return nil, false, fmt.Errorf("CA in %s: need both ca.pem and ca-key.pem or neither: %v, %v", dir, err1, err2)
	}
	if ca, err = pki.NewCA("clickstream CA", validity); err != nil {
		return nil, false, err
	}
	key, err := ca.KeyPEM()
	if err != nil {
		return nil, false, err
	}
	if err := writeFileAtomic(keyFile, key, 0o600); err != nil {
		return nil, false, err
	}
	if err := writeFileAtomic(certFile, ca.CertPEM(), 0o644); err != nil {
		return nil, false, err
	}
	return ca, true, nil
}

// writeFileAtomic replaces name with data: a process reading it sees the
// old or the new content, never a part.
func writeFileAtomic(name string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(name), ".tmp-"+filepath.Base(name))
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), name)
}
