package kafkaauth

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/IBM/sarama"
	"github.com/spf13/pflag"

	"github.com/dataco/clickstream/internal/secret"
)

// EnvPassword names the variable holding the SASL password; it has no flag,
// so that it never shows in a process list.
const EnvPassword = "CLICKSTREAM_KAFKA_PASSWORD"

// SASL mechanisms.
const (
	SCRAMSHA512 = "SCRAM-SHA-512"
	SCRAMSHA256 = "SCRAM-SHA-256"
	Plain       = "PLAIN"
)

// Mechanisms are the SASL mechanisms Apply knows, the default first.
var Mechanisms = []string{SCRAMSHA512, SCRAMSHA256, Plain}

// Errors that Explain wraps a connection error in.
var (
	// ErrAuthentication: the broker refused the user and password.
	ErrAuthentication = errors.New("kafkaauth: the broker refused the SASL authentication: wrong user, password or mechanism")
	// ErrUntrusted: the broker's certificate did not verify.
	ErrUntrusted = errors.New("kafkaauth: the broker's TLS certificate is not trusted (--kafka-ca-file) or does not name the broker address")
)

// Config is how a Kafka client secures its connections: TLS (always
// verifying the broker's certificate, TLS 1.2 or later) and SASL (a user
// and its password, given apart from the broker addresses). The zero value
// is a plain-text, unauthenticated connection.
type Config struct {
	// TLS turns TLS on.
	TLS bool
	// CAFile is a PEM file of the certificate authorities that sign the
	// brokers' certificates; they replace the system's. Empty: the system's.
	CAFile string
	// CertFile and KeyFile are a client certificate and its key (PEM), for
	// brokers that ask for one (ssl.client.auth). Both or neither.
	CertFile, KeyFile string

	// User turns SASL on with Mechanism (default SCRAM-SHA-512).
	User      string
	Mechanism string
	// Password, or PasswordFile holding it (one line): exactly one of
	// them with a User.
	Password     secret.Secret
	PasswordFile string
}

// NewConfig returns a Config with the default mechanism and nothing on.
func NewConfig() Config { return Config{Mechanism: SCRAMSHA512} }

// AddFlags binds the configuration to the --kafka-* flags; the password
// itself comes from --kafka-password-file or $CLICKSTREAM_KAFKA_PASSWORD
// (SecretsFromEnv), never from a flag.
func (c *Config) AddFlags(fs *pflag.FlagSet) {
	fs.BoolVar(&c.TLS, "kafka-tls", c.TLS, "connect to Kafka with TLS (the broker's certificate is always verified)")
	fs.StringVar(&c.CAFile, "kafka-ca-file", c.CAFile, "PEM file of the CAs that sign the Kafka brokers' certificates (default: the system's)")
	fs.StringVar(&c.CertFile, "kafka-cert-file", c.CertFile, "PEM client certificate for Kafka brokers that ask for one (with --kafka-key-file)")
	fs.StringVar(&c.KeyFile, "kafka-key-file", c.KeyFile, "PEM key of --kafka-cert-file")
	fs.StringVar(&c.Mechanism, "kafka-sasl-mechanism", c.Mechanism, "SASL mechanism with --kafka-user: "+strings.Join(Mechanisms, ", "))
	fs.StringVar(&c.User, "kafka-user", c.User, "Kafka SASL user; the password comes from --kafka-password-file or $"+EnvPassword)
	fs.StringVar(&c.PasswordFile, "kafka-password-file", c.PasswordFile, "file holding the Kafka SASL user's password")
}

// SecretsFromEnv sets the password from $CLICKSTREAM_KAFKA_PASSWORD when it
// is set and not empty. lookup is os.LookupEnv if nil.
func (c *Config) SecretsFromEnv(lookup func(string) (string, bool)) {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	if v, _ := lookup(EnvPassword); v != "" {
		c.Password = secret.Secret(v) // verbatim: secrets are opaque
	}
}

// Validate reports every inconsistency of the configuration; it reads no
// file (Apply does).
func (c Config) Validate() error {
	var errs []error
	if !c.TLS && (c.CAFile != "" || c.CertFile != "" || c.KeyFile != "") {
		errs = append(errs, errors.New("--kafka-ca-file, --kafka-cert-file and --kafka-key-file need --kafka-tls"))
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		errs = append(errs, errors.New("--kafka-cert-file and --kafka-key-file go together"))
	}
	switch {
	case c.Password != "" && c.PasswordFile != "":
		errs = append(errs, fmt.Errorf("both $%s and --kafka-password-file are set: give one", EnvPassword))
	case c.User == "" && (c.Password != "" || c.PasswordFile != ""):
		errs = append(errs, errors.New("a Kafka password is set but no --kafka-user"))
	case c.User != "" && c.Password == "" && c.PasswordFile == "":
		errs = append(errs, fmt.Errorf("--kafka-user %s has no password: set --kafka-password-file or $%s", c.User, EnvPassword))
	}
	if c.User != "" {
		switch {
		case !slices.Contains(Mechanisms, c.Mechanism):
			errs = append(errs, fmt.Errorf("--kafka-sasl-mechanism %q: want one of %s", c.Mechanism, strings.Join(Mechanisms, ", ")))
		case c.Mechanism == Plain && !c.TLS:
			errs = append(errs, errors.New("--kafka-sasl-mechanism PLAIN sends the password as it is: it needs --kafka-tls"))
		}
	}
	return errors.Join(errs...)
}

// CheckBrokers refuses broker addresses that carry credentials
// ("user:pw@host:9092"): Kafka clients take host:port only, and such an
// address would show wherever the brokers are logged. The error numbers the
// address rather than showing it.
func CheckBrokers(brokers []string) error {
	return secret.RefuseInAddresses("--brokers", "give the user with --kafka-user and the password with --kafka-password-file or $"+EnvPassword, brokers...)
}

// Apply sets sc's TLS and SASL settings from the configuration, reading the
// CA, certificate, key and password files. Call Validate first.
func (c Config) Apply(sc *sarama.Config) error {
	if c.TLS {
		tc, err := c.tlsConfig()
		if err != nil {
			return err
		}
		sc.Net.TLS.Enable = true
		sc.Net.TLS.Config = tc
	}
	if c.User == "" {
		return nil
	}
	pw, err := c.password()
	if err != nil {
		return err
	}
	sc.Net.SASL.Enable = true
	sc.Net.SASL.User = c.User
	sc.Net.SASL.Password = pw
	switch c.Mechanism {
	case SCRAMSHA512:
		sc.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA512
		sc.Net.SASL.SCRAMClientGeneratorFunc = newSCRAMClient(sha512Hash)
	case SCRAMSHA256:
		sc.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA256
		sc.Net.SASL.SCRAMClientGeneratorFunc = newSCRAMClient(sha256Hash)
	case Plain:
		sc.Net.SASL.Mechanism = sarama.SASLTypePlaintext
	default:
		return fmt.Errorf("kafkaauth: unknown SASL mechanism %q", c.Mechanism)
	}
	return nil
}

// tlsConfig verifies the broker against CAFile's CAs (or the system's),
// with TLS 1.2 at least, and presents the client certificate if any. The
// server name comes from the broker address (sarama sets it per broker).
func (c Config) tlsConfig() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("kafkaauth: --kafka-ca-file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("kafkaauth: --kafka-ca-file %s holds no PEM certificate", c.CAFile)
		}
		tc.RootCAs = pool
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("kafkaauth: --kafka-cert-file/--kafka-key-file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// password returns the password, from PasswordFile if set (its first line).
func (c Config) password() (string, error) {
	if c.PasswordFile == "" {
		if c.Password == "" {
			return "", fmt.Errorf("kafkaauth: --kafka-user %s has no password", c.User)
		}
		return c.Password.Reveal(), nil
	}
	b, err := os.ReadFile(c.PasswordFile)
	if err != nil {
		return "", fmt.Errorf("kafkaauth: --kafka-password-file: %w", err)
	}
	pw := strings.TrimRight(string(b), "\r\n")
	if pw == "" {
		return "", fmt.Errorf("kafkaauth: --kafka-password-file %s is empty", c.PasswordFile)
	}
	return pw, nil
}

// Explain wraps an error of connecting to Kafka in ErrAuthentication or
// ErrUntrusted when it is one, so that the message says what to fix; other
// errors come back as they are.
func Explain(err error) error {
	var (
		unknownCA *x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		verify    *tls.CertificateVerificationError
	)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, sarama.ErrSASLAuthenticationFailed):
		return fmt.Errorf("%w: %w", ErrAuthentication, err)
	case errors.As(err, &unknownCA), errors.As(err, &hostname), errors.As(err, &invalid), errors.As(err, &verify):
		return fmt.Errorf("%w: %w", ErrUntrusted, err)
	}
	return err
}
