package kafkaauth

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/spf13/pflag"
	"github.com/xdg-go/scram"

	"github.com/dataco/clickstream/internal/secret"
)

// pki is a CA and a certificate it signed, as PEM files.
type pki struct {
	caFile, certFile, keyFile string
}

// newPKI writes a fresh CA and a certificate for 127.0.0.1 into a temporary
// folder.
func newPKI(t *testing.T) pki {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "client"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	pk8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	p := pki{filepath.Join(dir, "ca.pem"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")}
	for _, f := range []struct {
		path, typ string
		der       []byte
	}{{p.caFile, "CERTIFICATE", caDER}, {p.certFile, "CERTIFICATE", der}, {p.keyFile, "PRIVATE KEY", pk8}} {
		if err := os.WriteFile(f.path, pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(f, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestValidate(t *testing.T) {
	base := func(f func(*Config)) Config {
		c := NewConfig()
		f(&c)
		return c
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		want string // a part of the error; "" for none
	}{
		{"zero: plain text, no authentication", NewConfig(), ""},
		{"TLS only", base(func(c *Config) { c.TLS = true }), ""},
		{"TLS with a CA and a client certificate", base(func(c *Config) { c.TLS, c.CAFile, c.CertFile, c.KeyFile = true, "ca", "c", "k" }), ""},
		{"SCRAM over TLS, password file", base(func(c *Config) { c.TLS, c.User, c.PasswordFile = true, "u", "pw" }), ""},
		{"SCRAM without TLS", base(func(c *Config) { c.User, c.Password = "u", "pw" }), ""},
		{"SCRAM-SHA-256", base(func(c *Config) { c.User, c.Password, c.Mechanism = "u", "pw", SCRAMSHA256 }), ""},
		{"PLAIN over TLS", base(func(c *Config) { c.TLS, c.User, c.Password, c.Mechanism = true, "u", "pw", Plain }), ""},
		{"PLAIN without TLS", base(func(c *Config) { c.User, c.Password, c.Mechanism = "u", "pw", Plain }), "PLAIN sends the password"},
		{"unknown mechanism", base(func(c *Config) { c.User, c.Password, c.Mechanism = "u", "pw", "GSSAPI" }), `--kafka-sasl-mechanism "GSSAPI"`},
		{"a mechanism without a user is unused", base(func(c *Config) { c.Mechanism = "nonsense" }), ""},
		{"CA file without TLS", base(func(c *Config) { c.CAFile = "ca" }), "need --kafka-tls"},
		{"certificate without its key", base(func(c *Config) { c.TLS, c.CertFile = true, "c" }), "go together"},
		{"key without its certificate", base(func(c *Config) { c.TLS, c.KeyFile = true, "k" }), "go together"},
		{"user without password", base(func(c *Config) { c.User = "u" }), "has no password"},
		{"password without user", base(func(c *Config) { c.Password = "pw" }), "no --kafka-user"},
		{"password file without user", base(func(c *Config) { c.PasswordFile = "pw" }), "no --kafka-user"},
		{"two passwords", base(func(c *Config) { c.User, c.Password, c.PasswordFile = "u", "pw", "pw" }), "give one"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Validate = %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// TestApply checks the translation into sarama's configuration, which
// sarama itself must then accept.
func TestApply(t *testing.T) {
	p := newPKI(t)
	pwFile := writeFile(t, "s3cret\n")
	type want struct {
		tls, sasl, clientCert, ownCAs bool
		mechanism                     sarama.SASLMechanism
		scram                         bool
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		want want
	}{
		{"nothing", NewConfig(), want{}},
		{"TLS, system CAs", Config{TLS: true}, want{tls: true}},
		{"TLS, own CA, client certificate", Config{TLS: true, CAFile: p.caFile, CertFile: p.certFile, KeyFile: p.keyFile},
			want{tls: true, ownCAs: true, clientCert: true}},
		{"SCRAM-SHA-512 over TLS", Config{TLS: true, CAFile: p.caFile, User: "u", Mechanism: SCRAMSHA512, PasswordFile: pwFile},
			want{tls: true, ownCAs: true, sasl: true, mechanism: sarama.SASLTypeSCRAMSHA512, scram: true}},
		{"SCRAM-SHA-256, password from the environment", Config{User: "u", Mechanism: SCRAMSHA256, Password: "s3cret"},
			want{sasl: true, mechanism: sarama.SASLTypeSCRAMSHA256, scram: true}},
		{"PLAIN over TLS", Config{TLS: true, User: "u", Mechanism: Plain, Password: "s3cret"},
			want{tls: true, sasl: true, mechanism: sarama.SASLTypePlaintext}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			sc := sarama.NewConfig()
			if err := tc.cfg.Apply(sc); err != nil {
				t.Fatal(err)
			}
			if err := sc.Validate(); err != nil {
				t.Fatalf("sarama refuses the configuration: %v", err)
			}
			w := tc.want
			if sc.Net.TLS.Enable != w.tls {
				t.Errorf("TLS.Enable = %v, want %v", sc.Net.TLS.Enable, w.tls)
			}
			if w.tls {
				tc := sc.Net.TLS.Config
				if tc == nil || tc.MinVersion != tls.VersionTLS12 || tc.InsecureSkipVerify {
					t.Fatalf("TLS config %+v: want TLS 1.2 at least, verifying", tc)
				}
				if (tc.RootCAs != nil) != w.ownCAs || (len(tc.Certificates) == 1) != w.clientCert {
					t.Errorf("RootCAs set %v, client certificates %d; want own CAs %v, client certificate %v",
						tc.RootCAs != nil, len(tc.Certificates), w.ownCAs, w.clientCert)
				}
			}
			if sc.Net.SASL.Enable != w.sasl {
				t.Fatalf("SASL.Enable = %v, want %v", sc.Net.SASL.Enable, w.sasl)
			}
			if !w.sasl {
				return
			}
			if sc.Net.SASL.Mechanism != w.mechanism || sc.Net.SASL.User != "u" || sc.Net.SASL.Password != "s3cret" {
				t.Errorf("SASL %s user %q: want %s, user u and the password (without its newline)", sc.Net.SASL.Mechanism, sc.Net.SASL.User, w.mechanism)
			}
			if (sc.Net.SASL.SCRAMClientGeneratorFunc != nil) != w.scram {
				t.Errorf("SCRAM client set: %v, want %v", sc.Net.SASL.SCRAMClientGeneratorFunc != nil, w.scram)
			}
		})
	}
}

func TestApplyFileErrors(t *testing.T) {
	p := newPKI(t)
	missing := filepath.Join(t.TempDir(), "missing")
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"missing CA file", Config{TLS: true, CAFile: missing}, "--kafka-ca-file"},
		{"CA file without PEM", Config{TLS: true, CAFile: writeFile(t, "not a certificate")}, "holds no PEM certificate"},
		{"key of another certificate", Config{TLS: true, CertFile: p.caFile, KeyFile: p.keyFile}, "--kafka-cert-file/--kafka-key-file"},
		{"missing password file", Config{User: "u", Mechanism: SCRAMSHA512, PasswordFile: missing}, "--kafka-password-file"},
		{"empty password file", Config{User: "u", Mechanism: SCRAMSHA512, PasswordFile: writeFile(t, "\n")}, "is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Apply(sarama.NewConfig())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Apply = %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func TestCheckBrokers(t *testing.T) {
	if err := CheckBrokers([]string{"127.0.0.1:9092", "kafka-0.example:9093"}); err != nil {
		t.Fatal(err)
	}
	err := CheckBrokers([]string{"a:9092", "admin:hunter2@b:9092"})
	if err == nil || !strings.Contains(err.Error(), "--brokers #2 carries credentials") || !errors.Is(err, secret.ErrInAddress) || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("CheckBrokers = %v; want the second broker refused without echoing it", err)
	}
}

// TestPasswordNeverPrinted formats and logs a configuration that holds a
// password: only the password file's name may show.
func TestPasswordNeverPrinted(t *testing.T) {
	c := Config{TLS: true, User: "u", Mechanism: SCRAMSHA512, Password: "hunter2"}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("config", "kafka", c)
	js, _ := json.Marshal(c)
	for _, out := range []string{fmt.Sprintf("%v %+v %#v", c, c, c), logged.String(), string(js)} {
		if strings.Contains(out, "hunter2") {
			t.Errorf("printed: %s", out)
		}
	}
}

func TestSecretsFromEnv(t *testing.T) {
	c := NewConfig()
	c.SecretsFromEnv(func(k string) (string, bool) { return "", false })
	if c.Password != "" {
		t.Fatal("a password from nowhere")
	}
	c.SecretsFromEnv(func(k string) (string, bool) { return " from env ", k == EnvPassword })
	if c.Password != secret.Secret(" from env ") {
		t.Fatalf("password %q, want it verbatim", c.Password.Reveal())
	}
}

func TestFlags(t *testing.T) {
	c := NewConfig()
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	c.AddFlags(fs)
	if fs.Lookup("kafka-password") != nil {
		t.Fatal("a flag for the password itself: it would show in ps")
	}
	err := fs.Parse([]string{"--kafka-tls", "--kafka-ca-file", "ca", "--kafka-sasl-mechanism", "SCRAM-SHA-256", "--kafka-user", "u", "--kafka-password-file", "pw"})
	if err != nil {
		t.Fatal(err)
	}
	want := Config{TLS: true, CAFile: "ca", Mechanism: SCRAMSHA256, User: "u", PasswordFile: "pw"}
	if c != want {
		t.Fatalf("flags gave %+v, want %+v", c, want)
	}
}

func TestExplain(t *testing.T) {
	if Explain(nil) != nil {
		t.Fatal("Explain(nil) != nil")
	}
	auth := sarama.Wrap(sarama.ErrOutOfBrokers, sarama.ErrSASLAuthenticationFailed)
	untrusted := sarama.Wrap(sarama.ErrOutOfBrokers, &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}})
	other := sarama.Wrap(sarama.ErrOutOfBrokers, errors.New("connection refused"))
	for _, tc := range []struct {
		err  error
		want error
	}{
		{auth, ErrAuthentication},
		{fmt.Errorf("dial: %w", x509.HostnameError{Certificate: &x509.Certificate{}, Host: "h"}), ErrUntrusted},
		{untrusted, ErrUntrusted},
		{other, nil},
	} {
		got := Explain(tc.err)
		if !errors.Is(got, tc.err) {
			t.Errorf("Explain(%v) = %v: lost the cause", tc.err, got)
		}
		for _, e := range []error{ErrAuthentication, ErrUntrusted} {
			if errors.Is(got, e) != (e == tc.want) {
				t.Errorf("Explain(%v) = %v; is %v: %v", tc.err, got, e, errors.Is(got, e))
			}
		}
	}
}

// TestSCRAMConversation runs the client against a SCRAM server of the same
// library: the right password completes, a wrong one fails.
func TestSCRAMConversation(t *testing.T) {
	for _, tc := range []struct {
		name string
		hash scram.HashGeneratorFcn
	}{{SCRAMSHA512, sha512Hash}, {SCRAMSHA256, sha256Hash}} {
		t.Run(tc.name, func(t *testing.T) {
			stored, err := tc.hash.NewClient("u", "right", "")
			if err != nil {
				t.Fatal(err)
			}
			creds, err := stored.GetStoredCredentialsWithError(scram.KeyFactors{Salt: "salt-of-the-test", Iters: 4096})
			if err != nil {
				t.Fatal(err)
			}
			srv, err := tc.hash.NewServer(func(string) (scram.StoredCredentials, error) { return creds, nil })
			if err != nil {
				t.Fatal(err)
			}
			for _, pw := range []string{"right", "wrong"} {
				cl := newSCRAMClient(tc.hash)()
				if err := cl.Begin("u", pw, ""); err != nil {
					t.Fatal(err)
				}
				conv := srv.NewConversation()
				var challenge string
				var stepErr error
				for stepErr == nil {
					var resp string
					if resp, stepErr = cl.Step(challenge); stepErr != nil || cl.Done() {
						break // the client checked the server's final message
					}
					challenge, stepErr = conv.Step(resp)
				}
				if ok := stepErr == nil && conv.Valid(); ok != (pw == "right") {
					t.Errorf("password %s: authenticated %v (%v)", pw, ok, stepErr)
				}
			}
		})
	}
}
