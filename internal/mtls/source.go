package mtls

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/spf13/pflag"

	"github.com/dataco/clickstream/internal/pki"
)

// Files names the PEM files of a process's certificate, its key and the
// CA it trusts.
type Files struct {
	CA, Cert, Key string
}

// AddFlags registers --tls-ca, --tls-cert and --tls-key.
func (f *Files) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&f.CA, "tls-ca", f.CA, "PEM file of the cluster CA; with --tls-cert and --tls-key, turns on mutual TLS")
	fs.StringVar(&f.Cert, "tls-cert", f.Cert, "PEM file of this process's certificate (URI SAN spiffe://clickstream/<role>/<name>); re-read when it changes")
	fs.StringVar(&f.Key, "tls-key", f.Key, "PEM file of the certificate's private key; re-read when it changes")
}

// Enabled reports whether any file is named.
func (f Files) Enabled() bool { return f.CA != "" || f.Cert != "" || f.Key != "" }

// ErrConfig is matched by configuration errors.
var ErrConfig = errors.New("tls config")

// Validate checks that the files are named all three or not at all.
func (f Files) Validate() error {
	if f.Enabled() && (f.CA == "" || f.Cert == "" || f.Key == "") {
		return fmt.Errorf("%w: --tls-ca, --tls-cert and --tls-key go together", ErrConfig)
	}
	return nil
}

// Source is a process's TLS material: its certificate and identity, and
// the CA pool it verifies peers against. Sources loaded from files follow
// changes of the files.
type Source struct {
	files Files // zero for a static source

	mu     sync.Mutex
	stamps [3]stamp
	cert   *tls.Certificate
	id     Identity
	roots  *x509.CertPool
	err    error // the last reload's failure, while the previous pair is kept
}

type stamp struct {
	mod  time.Time
	size int64
}

// Load reads the files; they must hold a certificate with a clickstream
// identity, its key and at least one CA certificate.
func Load(f Files) (*Source, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	if !f.Enabled() {
		return nil, fmt.Errorf("%w: no --tls-ca, --tls-cert, --tls-key", ErrConfig)
	}
	s := &Source{files: f}
	stamps, err := s.stat()
	if err != nil {
		return nil, err
	}
	if err := s.load(stamps); err != nil {
		return nil, err
	}
	return s, nil
}

// Static returns a source of fixed material, e.g. certificates made in
// memory for a single-process cluster.
func Static(cert tls.Certificate, roots *x509.CertPool) (*Source, error) {
	leaf, err := leafOf(&cert)
	if err != nil {
		return nil, err
	}
	id, err := IdentityOf(leaf)
	if err != nil {
		return nil, fmt.Errorf("mtls: %w", err)
	}
	return &Source{cert: &cert, id: id, roots: roots}, nil
}

// Identity returns the identity of the current certificate.
func (s *Source) Identity() Identity {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.id
}

// current returns the material, reloading it first when the files
// changed. A failed reload keeps the previous material.
func (s *Source) current() (*tls.Certificate, *x509.CertPool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.files.Enabled() {
		if stamps, err := s.stat(); err == nil && stamps != s.stamps {
			s.err = s.load(stamps)
		}
	}
	return s.cert, s.roots
}

// ReloadError returns why the files last failed to load, or nil when the
// material in use is that of the files as they are.
func (s *Source) ReloadError() error {
	s.current()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func (s *Source) stat() ([3]stamp, error) {
	var st [3]stamp
	for i, name := range []string{s.files.CA, s.files.Cert, s.files.Key} {
		fi, err := os.Stat(name)
		if err != nil {
			return st, fmt.Errorf("mtls: %w", err)
		}
		st[i] = stamp{fi.ModTime(), fi.Size()}
	}
	return st, nil
}

// load reads the files and, when they are consistent, installs them and
// their stamps. Called with s.mu held, or before s is shared.
func (s *Source) load(stamps [3]stamp) error {
	caPEM, err := os.ReadFile(s.files.CA)
	if err != nil {
		return fmt.Errorf("mtls: CA: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return fmt.Errorf("mtls: CA %s: no PEM certificate", s.files.CA)
	}
	cert, err := tls.LoadX509KeyPair(s.files.Cert, s.files.Key)
	if err != nil {
		return fmt.Errorf("mtls: certificate %s and key %s: %w", s.files.Cert, s.files.Key, err)
	}
	leaf, err := leafOf(&cert)
	if err != nil {
		return err
	}
	id, err := IdentityOf(leaf)
	if err != nil {
		return fmt.Errorf("mtls: certificate %s: %w", s.files.Cert, err)
	}
	s.cert, s.roots, s.id, s.stamps = &cert, roots, id, stamps
	return nil
}

func leafOf(c *tls.Certificate) (*x509.Certificate, error) {
	if c.Leaf != nil {
		return c.Leaf, nil
	}
	if len(c.Certificate) == 0 {
		return nil, fmt.Errorf("%w: empty certificate", ErrConfig)
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("mtls: certificate: %w", err)
	}
	c.Leaf = leaf
	return leaf, nil
}

// verify checks a peer's chain against the current CA for usage and
// returns the identity of its leaf.
func (s *Source) verify(chain []*x509.Certificate, usage x509.ExtKeyUsage) (Identity, error) {
	if len(chain) == 0 {
		return Identity{}, ErrNoCertificate
	}
	_, roots := s.current()
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
		return Identity{}, fmt.Errorf("%w: %w", ErrUntrusted, err)
	}
	return IdentityOf(chain[0])
}

// Errors of peer verification.
var (
	ErrNoCertificate = errors.New("no client certificate")
	ErrUntrusted     = errors.New("certificate not trusted")
)

// Issue returns a static source holding a new certificate for id signed
// by ca, and trusting ca: the material of a process in a cluster whose CA
// lives in memory (clickstream run, tests).
func Issue(ca *pki.CA, id Identity, dnsNames ...string) (*Source, error) {
	c, err := ca.Issue(pki.Request{URI: id.URI(), DNSNames: dnsNames})
	if err != nil {
		return nil, err
	}
	tc, err := c.TLS()
	if err != nil {
		return nil, fmt.Errorf("mtls: %w", err)
	}
	return Static(tc, ca.Pool())
}
