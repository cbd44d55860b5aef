// Package pki creates the certificates of a clickstream cluster: a CA and,
// signed by it, one certificate per process. Each certificate names its
// holder's identity as a SPIFFE URI SAN (see package mtls), e.g.
// spiffe://clickstream/worker/w-1.
//
//	ca, err := pki.NewCA("clickstream local CA", 365*24*time.Hour)
//	cert, err := ca.Issue(pki.Request{URI: "spiffe://clickstream/worker/w-1", DNSNames: []string{"localhost"}})
//
// Keys are ECDSA P-256. The package serves development and tests; in
// production, certificates usually come from cert-manager or a SPIFFE
// implementation, and the cluster only needs their files.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"time"
)

// CA is a certificate authority: its certificate and signing key.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// NewCA returns a new self-signed CA valid for validity from now.
func NewCA(name string, validity time.Duration) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pki: CA key: %w", err)
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name, Organization: []string{"clickstream"}},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("pki: CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: CA certificate: %w", err)
	}
	return &CA{Cert: cert, Key: key}, nil
}

// Request describes a certificate to issue.
type Request struct {
	// URI is the holder's identity, a URI SAN such as
	// spiffe://clickstream/worker/w-1. Required unless CommonName is set.
	URI string
	// CommonName is the subject's CommonName; empty means URI. etcd's
	// --client-cert-auth takes the etcd user from it, and an etcd member's
	// certificate needs no URI: such certificates set CommonName alone.
	CommonName string
	// DNSNames and IPs are further SANs, so that tools verifying host
	// names (grpcurl, curl) accept the certificate.
	DNSNames []string
	IPs      []net.IP
	// NotBefore and NotAfter bound validity; zero: from a minute ago for
	// DefaultValidity.
	NotBefore, NotAfter time.Time
}

// DefaultValidity is the validity of an issued certificate when the
// request does not say.
const DefaultValidity = 90 * 24 * time.Hour

// Cert is an issued certificate in PEM, with its private key.
type Cert struct {
	CertPEM []byte
	KeyPEM  []byte // PKCS#8
}

// TLS returns c as a tls.Certificate.
func (c Cert) TLS() (tls.Certificate, error) {
	return tls.X509KeyPair(c.CertPEM, c.KeyPEM)
}

// Issue returns a certificate for r signed by ca, usable by servers and by
// clients.
func (ca *CA) Issue(r Request) (Cert, error) {
	var uris []*url.URL
	switch u, err := url.Parse(r.URI); {
	case r.URI == "" && r.CommonName == "":
		return Cert{}, errors.New("pki: a certificate needs a URI SAN or a CommonName")
	case err != nil || (r.URI != "" && u.Scheme == ""):
		return Cert{}, fmt.Errorf("pki: identity URI %q: %w", r.URI, errors.Join(errors.New("not an absolute URI"), err))
	case r.URI != "":
		uris = []*url.URL{u}
	}
	name := r.CommonName
	if name == "" {
		name = r.URI
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Cert{}, fmt.Errorf("pki: key: %w", err)
	}
	serial, err := serialNumber()
	if err != nil {
		return Cert{}, err
	}
	nb, na := r.NotBefore, r.NotAfter
	if nb.IsZero() {
		nb = time.Now().Add(-time.Minute)
	}
	if na.IsZero() {
		na = nb.Add(DefaultValidity)
	}
	if na.After(ca.Cert.NotAfter) {
		na = ca.Cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name, Organization: []string{"clickstream"}},
		NotBefore:    nb,
		NotAfter:     na,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		URIs:         uris,
		DNSNames:     r.DNSNames,
		IPAddresses:  r.IPs,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return Cert{}, fmt.Errorf("pki: certificate for %s: %w", name, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return Cert{}, fmt.Errorf("pki: key for %s: %w", name, err)
	}
	return Cert{
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

// CertPEM returns the CA's certificate in PEM.
func (ca *CA) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})
}

// KeyPEM returns the CA's private key in PEM (PKCS#8).
func (ca *CA) KeyPEM() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(ca.Key)
	if err != nil {
		return nil, fmt.Errorf("pki: CA key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// Pool returns a pool holding the CA's certificate.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// LoadCA reads a CA written by CertPEM and KeyPEM.
func LoadCA(certPEM, keyPEM []byte) (*CA, error) {
	cb, _ := pem.Decode(certPEM)
	if cb == nil || cb.Type != "CERTIFICATE" {
		return nil, errors.New("pki: CA certificate: no PEM CERTIFICATE block")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pki: CA certificate: %w", err)
	}
	if !cert.IsCA {
		return nil, errors.New("pki: CA certificate: not a CA")
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return nil, errors.New("pki: CA key: no PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pki: CA key: %w", err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, errors.New("pki: CA key: not a signing key")
	}
	return &CA{Cert: cert, Key: signer}, nil
}

func serialNumber() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("pki: serial number: %w", err)
	}
	return n, nil
}
