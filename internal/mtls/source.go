package mtls

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"

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
// changes of the files: the certificate and key as a KeyPair, the CA
// likewise; a certificate without a clickstream identity, or a CA file
// without a certificate, keeps the previous material.
type Source struct {
	files Files    // zero for a static source
	pair  *KeyPair // nil for a static source

	mu      sync.Mutex
	cert    *tls.Certificate
	id      Identity
	roots   *x509.CertPool
	caStamp []stamp
	certErr error // why the pair in use is not the files' one
	caErr   error // why the CA in use is not the file's one
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
	pair, err := LoadKeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, err
	}
	s := &Source{files: f, pair: pair}
	s.refresh()
	switch {
	case s.certErr != nil:
		return nil, s.certErr
	case s.caErr != nil:
		return nil, s.caErr
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
// changed.
func (s *Source) current() (*tls.Certificate, *x509.CertPool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refresh()
	return s.cert, s.roots
}

// ReloadError returns why the files last failed to load, or nil when the
// material in use is that of the files as they are.
func (s *Source) ReloadError() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refresh()
	if s.pair == nil {
		return nil
	}
	return errors.Join(s.pair.Err(), s.certErr, s.caErr)
}

// refresh takes up changed files; called with s.mu held, or before s is
// shared.
func (s *Source) refresh() {
	if s.pair == nil {
		return
	}
	if cert := s.pair.Current(); cert != s.cert {
		if id, err := IdentityOf(cert.Leaf); err != nil {
			s.certErr = fmt.Errorf("mtls: certificate %s: %w", s.files.Cert, err)
		} else {
			s.cert, s.id, s.certErr = cert, id, nil
		}
	}
	st, err := statFiles(s.files.CA)
	if err != nil {
		s.caErr = err
		return
	}
	if s.roots != nil && slices.Equal(st, s.caStamp) {
		return
	}
	caPEM, err := os.ReadFile(s.files.CA)
	if err != nil {
		s.caErr = fmt.Errorf("mtls: CA: %w", err)
		return
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		s.caErr = fmt.Errorf("mtls: CA %s: no PEM certificate", s.files.CA)
		return
	}
	s.roots, s.caStamp, s.caErr = roots, st, nil
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
