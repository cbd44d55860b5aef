package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/dataco/clickstream/internal/mtls"
)

// EtcdTLS names the PEM files of a TLS connection to etcd: the CA that
// signed etcd's server certificate and, optionally, a client certificate
// and its key. On an etcd started with --client-cert-auth, the client
// certificate is also the login: etcd takes the user name from its
// CommonName, and no password is needed. The zero value is plain text.
type EtcdTLS struct {
	CA, Cert, Key string
}

// AddFlags registers --etcd-ca, --etcd-cert and --etcd-key.
func (t *EtcdTLS) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&t.CA, "etcd-ca", t.CA, "PEM file of the CA of etcd's server certificate: turns on TLS to etcd (https:// endpoints)")
	fs.StringVar(&t.Cert, "etcd-cert", t.Cert, "PEM file of a client certificate for etcd (with --client-cert-auth, etcd's user is its CommonName); re-read when it changes")
	fs.StringVar(&t.Key, "etcd-key", t.Key, "PEM file of the etcd client certificate's key")
}

// Enabled reports whether TLS to etcd is on.
func (t EtcdTLS) Enabled() bool { return t.CA != "" || t.Cert != "" || t.Key != "" }

// Validate checks that the certificate and its key come together, and
// with the CA.
func (t EtcdTLS) Validate() error {
	switch {
	case (t.Cert == "") != (t.Key == ""):
		return errors.New("--etcd-cert and --etcd-key go together")
	case t.Enabled() && t.CA == "":
		return errors.New("--etcd-cert needs --etcd-ca, the CA of etcd's server certificate")
	}
	return nil
}

// CheckScheme checks that endpoints and TLS agree: https:// endpoints need
// the CA, and with TLS on an http:// endpoint is refused rather than
// silently spoken to in plain text. Endpoints without a scheme
// ("host:2379") follow the TLS setting.
func (t EtcdTLS) CheckScheme(endpoints []string) error {
	for i, e := range endpoints {
		scheme, _, ok := strings.Cut(e, "://")
		if !ok {
			continue
		}
		switch strings.ToLower(scheme) {
		case "https", "unixs":
			if t.CA == "" {
				return fmt.Errorf("etcd endpoint #%d is %s://: give the CA of etcd's server certificate with --etcd-ca", i+1, scheme)
			}
		case "http", "unix":
			if t.Enabled() {
				return fmt.Errorf("etcd endpoint #%d is %s:// (plain text) but --etcd-ca is set: use https:// endpoints", i+1, scheme)
			}
		}
	}
	return nil
}

// config returns the client's TLS configuration, or nil for plain text.
// The server is verified against the CA, read once: a new CA takes a
// restart. The client certificate is read again when its files change,
// so a rotated certificate is used from the next connection on.
func (t EtcdTLS) config() (*tls.Config, error) {
	if !t.Enabled() {
		return nil, nil
	}
	if err := t.Validate(); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	caPEM, err := os.ReadFile(t.CA)
	if err != nil {
		return nil, fmt.Errorf("cluster: etcd CA: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("cluster: etcd CA %s: no PEM certificate", t.CA)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots}
	if t.Cert != "" {
		kp, err := mtls.LoadKeyPair(t.Cert, t.Key)
		if err != nil {
			return nil, fmt.Errorf("cluster: etcd client certificate: %w", err)
		}
		cfg.GetClientCertificate = kp.GetClientCertificate
	}
	return cfg, nil
}

// user names who the client certificate logs in as, for errors.
func (t EtcdTLS) user() string {
	pair, err := tls.LoadX509KeyPair(t.Cert, t.Key)
	if err != nil || pair.Leaf == nil {
		return fmt.Sprintf("the CommonName of %s", t.Cert)
	}
	return fmt.Sprintf("%q (the CommonName of %s)", pair.Leaf.Subject.CommonName, t.Cert)
}

// ErrEtcdTLS reports that a TLS connection to etcd failed: etcd's
// certificate is not trusted, or etcd refused the client's.
var ErrEtcdTLS = errors.New("cluster: TLS with etcd failed")

// probeTLS explains why etcd did not answer over TLS, which gRPC reports
// only as a deadline: it opens a TLS connection to each endpoint with
// cfg and returns the first failure, or nil when every handshake
// succeeds. A server refuses a client certificate after the handshake
// (TLS 1.3), so a probe also waits briefly for that alert.
func probeTLS(ctx context.Context, endpoints []string, cfg *tls.Config) error {
	for _, e := range endpoints {
		_, hostport, ok := strings.Cut(e, "://")
		if !ok {
			hostport = e
		}
		host, _, err := net.SplitHostPort(hostport)
		if err != nil {
			continue
		}
		c := cfg.Clone()
		c.ServerName, c.NextProtos = host, []string{"h2"}
		dctx, cancel := context.WithTimeout(ctx, time.Second)
		conn, err := (&tls.Dialer{Config: c}).DialContext(dctx, "tcp", hostport)
		cancel()
		if err == nil {
			_ = conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			_, err = conn.Read(make([]byte, 1))
			conn.Close()
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				err = nil // nothing refused
			}
		}
		if err != nil && tlsFailure(err) {
			return fmt.Errorf("%w: %s: %w%s", ErrEtcdTLS, hostport, err, tlsHint(err, cfg.GetClientCertificate != nil))
		}
	}
	return nil
}

// tlsFailure reports whether err is a failure of TLS rather than of the
// network.
func tlsFailure(err error) bool {
	var (
		alert    tls.AlertError
		verify   *tls.CertificateVerificationError
		header   tls.RecordHeaderError
		hostname x509.HostnameError
	)
	return errors.As(err, &alert) || errors.As(err, &verify) || errors.As(err, &header) ||
		errors.As(err, &hostname) || strings.Contains(err.Error(), "remote error: tls:")
}

// tlsHint names the setting most likely at fault; clientCert tells
// whether the client had a certificate to offer.
func tlsHint(err error, clientCert bool) string {
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		header   tls.RecordHeaderError
	)
	msg := err.Error()
	switch {
	case errors.As(err, &unknown):
		return " (is --etcd-ca the CA that signed etcd's server certificate?)"
	case errors.As(err, &hostname):
		return " (etcd's server certificate does not name the endpoint's host)"
	case errors.As(err, &header):
		return " (etcd serves plain text there: use an http:// endpoint without --etcd-ca)"
	case !clientCert && strings.Contains(msg, "remote error: tls:"):
		return " (etcd requires a client certificate: --etcd-cert and --etcd-key)"
	case strings.Contains(msg, "bad certificate"), strings.Contains(msg, "unknown certificate authority"):
		return " (etcd refused the client certificate: is it signed by the CA of etcd's --trusted-ca-file?)"
	case strings.Contains(msg, "expired"):
		return " (a certificate has expired)"
	}
	return ""
}
