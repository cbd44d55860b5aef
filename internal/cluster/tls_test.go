package cluster

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dataco/clickstream/internal/pki"
)

func TestEtcdTLSValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		tls  EtcdTLS
		want string // "" = valid
	}{
		{"off", EtcdTLS{}, ""},
		{"CA only", EtcdTLS{CA: "ca"}, ""},
		{"client certificate", EtcdTLS{CA: "ca", Cert: "c", Key: "k"}, ""},
		{"certificate without key", EtcdTLS{CA: "ca", Cert: "c"}, "go together"},
		{"key without certificate", EtcdTLS{CA: "ca", Key: "k"}, "go together"},
		{"certificate without CA", EtcdTLS{Cert: "c", Key: "k"}, "needs --etcd-ca"},
	} {
		err := tc.tls.Validate()
		if (err == nil) != (tc.want == "") || err != nil && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	for _, tc := range []struct {
		endpoints string
		tls       EtcdTLS
		want      string
	}{
		{"http://a:2379,b:2379", EtcdTLS{}, ""},
		{"https://a:2379,b:2379", EtcdTLS{CA: "ca"}, ""},
		{"a:2379", EtcdTLS{CA: "ca"}, ""},
		{"https://a:2379", EtcdTLS{}, "#1 is https://: give the CA"},
		{"a:2379,HTTPS://b:2379", EtcdTLS{}, "#2 is HTTPS://"},
		{"https://a:2379,http://b:2379", EtcdTLS{CA: "ca"}, "#2 is http:// (plain text) but --etcd-ca is set"},
	} {
		err := tc.tls.CheckScheme(ParseEndpoints(tc.endpoints))
		if (err == nil) != (tc.want == "") || err != nil && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("CheckScheme(%q, %+v) = %v, want %q", tc.endpoints, tc.tls, err, tc.want)
		}
	}
	a := EtcdAuth{User: "u", TLS: EtcdTLS{CA: "ca", Cert: "c", Key: "k"}}
	if err := a.Validate(); err == nil || !strings.Contains(err.Error(), "CommonName") {
		t.Errorf("a user without password, with a client certificate: %v, want a hint at the CommonName", err)
	}
}

// TestClientCertReload: the client certificate is read again when its
// files change; a half-written rotation keeps the previous one.
func TestClientCertReload(t *testing.T) {
	ca, err := pki.NewCA("test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tf := EtcdTLS{CA: filepath.Join(dir, "ca.pem"), Cert: filepath.Join(dir, "cert.pem"), Key: filepath.Join(dir, "key.pem")}
	write := func(name string, data []byte, mod time.Time) {
		t.Helper()
		if err := os.WriteFile(name, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(name, mod, mod); err != nil {
			t.Fatal(err)
		}
	}
	issue := func(cn string, mod time.Time) pki.Cert {
		t.Helper()
		c, err := ca.Issue(pki.Request{CommonName: cn})
		if err != nil {
			t.Fatal(err)
		}
		write(tf.Cert, c.CertPEM, mod)
		write(tf.Key, c.KeyPEM, mod)
		return c
	}
	now := time.Now()
	write(tf.CA, ca.CertPEM(), now)
	issue("first", now.Add(-time.Hour))
	cfg, err := tf.config()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MinVersion != tls.VersionTLS12 || cfg.RootCAs == nil || cfg.InsecureSkipVerify {
		t.Fatalf("config: min version %x, roots %v, insecure %v", cfg.MinVersion, cfg.RootCAs, cfg.InsecureSkipVerify)
	}
	cn := func() string {
		t.Helper()
		c, err := cfg.GetClientCertificate(nil)
		if err != nil {
			t.Fatal(err)
		}
		return c.Leaf.Subject.CommonName
	}
	if got := cn(); got != "first" {
		t.Fatalf("client certificate %q, want first", got)
	}
	second := issue("second", now)
	if got := cn(); got != "second" {
		t.Fatalf("after rotation: %q, want second", got)
	}
	// A new certificate whose key has not arrived yet: the pair in use stays.
	third, err := ca.Issue(pki.Request{CommonName: "third"})
	if err != nil {
		t.Fatal(err)
	}
	write(tf.Cert, third.CertPEM, now.Add(time.Minute))
	write(tf.Key, second.KeyPEM, now.Add(time.Minute))
	if got := cn(); got != "second" {
		t.Fatalf("half-way through a rotation: %q, want second", got)
	}
	write(tf.Key, third.KeyPEM, now.Add(2*time.Minute))
	if got := cn(); got != "third" {
		t.Fatalf("rotation completed: %q, want third", got)
	}
}
