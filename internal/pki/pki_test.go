package pki_test

import (
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/dataco/clickstream/internal/pki"
)

func TestIssue(t *testing.T) {
	ca, err := pki.NewCA("test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		req     pki.Request
		wantCN  string
		wantURI string
		wantErr string
	}{
		{"identity", pki.Request{URI: "spiffe://clickstream/worker/w-1"}, "spiffe://clickstream/worker/w-1", "spiffe://clickstream/worker/w-1", ""},
		{"identity and etcd user", pki.Request{URI: "spiffe://clickstream/worker/w-1", CommonName: "clickstream-worker"}, "clickstream-worker", "spiffe://clickstream/worker/w-1", ""},
		{"etcd user only", pki.Request{CommonName: "clickstream-worker"}, "clickstream-worker", "", ""},
		{"nothing", pki.Request{}, "", "", "a URI SAN or a CommonName"},
		{"relative URI", pki.Request{URI: "worker/w-1"}, "", "", "not an absolute URI"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ca.Issue(tc.req)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Issue: %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			b, _ := pem.Decode(c.CertPEM)
			cert, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			if cert.Subject.CommonName != tc.wantCN {
				t.Errorf("CommonName %q, want %q", cert.Subject.CommonName, tc.wantCN)
			}
			var uris []string
			for _, u := range cert.URIs {
				uris = append(uris, u.String())
			}
			if got := strings.Join(uris, ","); got != tc.wantURI {
				t.Errorf("URI SANs %q, want %q", got, tc.wantURI)
			}
			if _, err := cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
				t.Errorf("not a client certificate of the CA: %v", err)
			}
			if _, err := c.TLS(); err != nil {
				t.Errorf("certificate and key: %v", err)
			}
		})
	}
}
