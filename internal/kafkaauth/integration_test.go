package kafkaauth_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/dataco/clickstream/internal/kafkaauth"
	"github.com/dataco/clickstream/internal/kafkaauth/kafkatest"
)

// The integration tests run against the local stack's Kafka (make dev-up):
// its SASL_SSL listener, with the stack's CA and SCRAM user.

// connect opens a sarama client with auth and lists the topics.
func connect(t *testing.T, brokers []string, auth kafkaauth.Config) error {
	t.Helper()
	if err := auth.Validate(); err != nil {
		t.Fatal(err)
	}
	sc := sarama.NewConfig()
	sc.Version = sarama.V3_6_0_0
	sc.Metadata.Retry.Max = 1
	sc.Metadata.Retry.Backoff = 100 * time.Millisecond
	if err := auth.Apply(sc); err != nil {
		t.Fatal(err)
	}
	cl, err := sarama.NewClient(brokers, sc)
	if err != nil {
		return kafkaauth.Explain(err)
	}
	defer cl.Close()
	_, err = cl.Topics()
	return kafkaauth.Explain(err)
}

func TestSASLSSL(t *testing.T) {
	k := kafkatest.SASL(t)
	for _, m := range []string{kafkaauth.SCRAMSHA512, kafkaauth.SCRAMSHA256} {
		t.Run(m, func(t *testing.T) {
			auth := k.Auth
			auth.Mechanism = m
			if err := connect(t, k.Brokers, auth); err != nil {
				t.Fatalf("%s over TLS: %v", m, err)
			}
		})
	}
	t.Run("password from the environment", func(t *testing.T) {
		pw, err := os.ReadFile(k.Auth.PasswordFile)
		if err != nil {
			t.Fatal(err)
		}
		t.Setenv(kafkaauth.EnvPassword, strings.TrimSpace(string(pw)))
		auth := k.Auth
		auth.PasswordFile = ""
		auth.SecretsFromEnv(nil)
		if err := connect(t, k.Brokers, auth); err != nil {
			t.Fatal(err)
		}
	})
}

// TestWrongPasswordRefused: a wrong password (or user) fails at once with
// ErrAuthentication, and the error never holds the password.
func TestWrongPasswordRefused(t *testing.T) {
	k := kafkatest.SASL(t)
	const wrong = "not-the-password-4711"
	for _, tc := range []struct {
		name string
		edit func(*kafkaauth.Config)
	}{
		{"wrong password", func(a *kafkaauth.Config) { a.PasswordFile, a.Password = "", wrong }},
		{"unknown user", func(a *kafkaauth.Config) { a.User = "nobody-" + wrong[:3] }},
		{"wrong password, SCRAM-SHA-256", func(a *kafkaauth.Config) { a.PasswordFile, a.Password, a.Mechanism = "", wrong, kafkaauth.SCRAMSHA256 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			auth := k.Auth
			tc.edit(&auth)
			start := time.Now()
			err := connect(t, k.Brokers, auth)
			if !errors.Is(err, kafkaauth.ErrAuthentication) || !errors.Is(err, sarama.ErrSASLAuthenticationFailed) {
				t.Fatalf("connect = %v; want ErrAuthentication", err)
			}
			if !strings.Contains(err.Error(), "wrong user, password or mechanism") || strings.Contains(err.Error(), wrong) {
				t.Fatalf("error %q: want a clear cause, and never the password", err)
			}
			if d := time.Since(start); d > 20*time.Second {
				t.Errorf("refused after %v; want at once", d)
			}
		})
	}
}

// TestUntrustedBroker: without the stack's CA (the system's CAs instead) or
// with another CA, TLS verification fails, with ErrUntrusted.
func TestUntrustedBroker(t *testing.T) {
	k := kafkatest.SASL(t)
	for _, tc := range []struct {
		name string
		ca   string
	}{
		{"system CAs", ""},
		{"another CA", otherCA(t)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			auth := k.Auth
			auth.CAFile = tc.ca
			err := connect(t, k.Brokers, auth)
			if !errors.Is(err, kafkaauth.ErrUntrusted) {
				t.Fatalf("connect = %v; want ErrUntrusted", err)
			}
			var unknown x509.UnknownAuthorityError
			if !errors.As(err, &unknown) {
				t.Errorf("error %v: want the x509 cause", err)
			}
		})
	}
}

// otherCA writes a CA certificate that signed nothing of the stack's.
func otherCA(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "clickstream local stack CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "other-ca.pem")
	if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}
