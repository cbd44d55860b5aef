package indexer

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dataco/clickstream/internal/lake/laketest"
)

// TestSecuredElasticsearch indexes over TLS with each kind of credentials.
// The stack's Elasticsearch runs without security; in front of it sits an
// HTTPS endpoint, with a certificate from a test CA, that refuses requests
// without the right credentials as a secured cluster does (401,
// security_exception) and passes the others through. The indexer must
// trust the CA it is given, send its credentials on every request, and
// fail at once, saying why, on wrong credentials or an untrusted
// certificate.
func TestSecuredElasticsearch(t *testing.T) {
	target, err := url.Parse(esURL(t))
	if err != nil {
		t.Fatal(err)
	}
	caFile, serverTLS := testPKI(t)
	const user, password, apiKey = "clickstream", "s3cret pass", "aWQ6YXBpLWtleQ=="
	var refused, passed atomic.Int32
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, basic := r.BasicAuth()
		scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		keyOK := strings.EqualFold(scheme, "ApiKey") && token == apiKey // schemes are case-insensitive
		if !(basic && u == user && p == password) && !keyOK {
			refused.Add(1)
			w.Header().Set("X-Elastic-Product", "Elasticsearch")
			w.Header().Set("WWW-Authenticate", `Basic realm="security" charset="UTF-8"`)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"error":{"root_cause":[{"type":"security_exception","reason":"unable to authenticate user"}],"type":"security_exception","reason":"unable to authenticate user"},"status":401}`))
			return
		}
		passed.Add(1)
		r.Header.Del("Authorization")
		proxy.ServeHTTP(w, r)
	}))
	srv.TLS = serverTLS
	srv.StartTLS()
	t.Cleanup(srv.Close)

	for _, tc := range []struct {
		name  string
		creds func(*Config)
	}{
		{"basic", func(c *Config) { c.Username, c.Password = user, Secret(password) }},
		{"api key", func(c *Config) { c.APIKey = Secret(apiKey) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.Addresses, cfg.CACert = []string{srv.URL}, caFile
			tc.creds(&cfg)
			ix := newTestIndexer(t, cfg, hooks{})
			before := passed.Load()
			rows := makeRows(winA, 40)
			rep, err := ix.IndexResult(testCtx(t, 2*time.Minute), rows, metaOf("job-tls", winA, rows), laketest.NewFile(t))
			if err != nil {
				t.Fatal(err)
			}
			if rep.Indexed != 40 || rep.Count != 40 {
				t.Fatalf("indexed over TLS: %s (count %d)", rep, rep.Count)
			}
			if got := windowCount(t, cfg.Alias, winA); got != 40 { // read directly from Elasticsearch
				t.Fatalf("Elasticsearch holds %d documents of the window, want 40", got)
			}
			if passed.Load() == before {
				t.Fatal("no request went through the secured endpoint")
			}
		})
	}

	t.Run("wrong password", func(t *testing.T) {
		cfg := testConfig(t)
		cfg.Addresses, cfg.CACert = []string{srv.URL}, caFile
		cfg.Username, cfg.Password = user, "wrong"
		start, before := time.Now(), refused.Load()
		err := indexOnce(t, cfg)
		if err == nil || !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "unable to authenticate") {
			t.Fatalf("wrong password: %v, want a 401 naming the cause", err)
		}
		if n := refused.Load() - before; n > 3 {
			t.Errorf("%d refused requests: a 401 must not be retried", n)
		}
		if d := time.Since(start); d > 30*time.Second {
			t.Errorf("took %v to give up on a 401", d)
		}
	})
	t.Run("untrusted certificate", func(t *testing.T) {
		cfg := testConfig(t)
		cfg.Addresses = []string{srv.URL} // no CACert: the test CA is unknown
		cfg.Username, cfg.Password = user, password
		start := time.Now()
		err := indexOnce(t, cfg)
		if err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("untrusted certificate: %v, want a certificate error", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("took %v to give up on a certificate that does not verify: retried?", d)
		}
	})
}

// indexOnce indexes a small result with cfg and returns the error.
func indexOnce(t *testing.T, cfg Config) error {
	t.Helper()
	ix, err := newIndexer(cfg, testLogger(t), nil, hooks{})
	if err != nil {
		return err
	}
	t.Cleanup(func() { ix.Close(testCtx(t, time.Minute)) })
	rows := makeRows(winA, 5)
	_, err = ix.IndexResult(testCtx(t, 2*time.Minute), rows, metaOf("job-x", winA, rows), laketest.NewFile(t))
	return err
}

// testPKI makes a CA and a certificate for 127.0.0.1 signed by it; it
// returns the CA's PEM file and the server's TLS configuration.
func testPKI(t *testing.T) (caFile string, server *tls.Config) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "clickstream test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "elasticsearch"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return caFile, &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}
