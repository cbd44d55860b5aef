// Package kafkatest gives tests of any package the local stack's Kafka
// (`make dev-up`): its PLAINTEXT listener ($CLICKSTREAM_KAFKA_BROKERS) or its
// SASL_SSL listener ($CLICKSTREAM_KAFKA_SASL_BROKERS, with the stack's CA, a
// SCRAM user and the file of its password), as broker addresses with the
// kafkaauth.Config that reaches them.
//
// Under `go test -short` the test is skipped. Otherwise missing variables
// fail the test: Kafka tests are never skipped silently.
package kafkatest

import (
	"os"
	"strings"
	"testing"

	"github.com/IBM/sarama"

	"github.com/dataco/clickstream/internal/kafkaauth"
)

// Variables of the stack's env file.
const (
	EnvBrokers          = "CLICKSTREAM_KAFKA_BROKERS"
	EnvSASLBrokers      = "CLICKSTREAM_KAFKA_SASL_BROKERS"
	EnvSASLCAFile       = "CLICKSTREAM_KAFKA_SASL_CA_FILE"
	EnvSASLUser         = "CLICKSTREAM_KAFKA_SASL_USER"
	EnvSASLPasswordFile = "CLICKSTREAM_KAFKA_SASL_PASSWORD_FILE"
)

// Kafka is a listener of the stack's broker and how to reach it.
type Kafka struct {
	Brokers []string
	Auth    kafkaauth.Config
}

// Plaintext returns the PLAINTEXT listener: no TLS, no authentication.
func Plaintext(t testing.TB) Kafka {
	t.Helper()
	return Kafka{Brokers: brokers(t, EnvBrokers), Auth: kafkaauth.NewConfig()}
}

// SASL returns the SASL_SSL listener with SCRAM-SHA-512: TLS verified
// against the stack's CA, the stack's user and its password file.
func SASL(t testing.TB) Kafka {
	t.Helper()
	b := brokers(t, EnvSASLBrokers)
	auth := kafkaauth.NewConfig()
	auth.TLS = true
	auth.CAFile, auth.User, auth.PasswordFile = os.Getenv(EnvSASLCAFile), os.Getenv(EnvSASLUser), os.Getenv(EnvSASLPasswordFile)
	if auth.CAFile == "" || auth.User == "" || auth.PasswordFile == "" {
		t.Fatalf("$%s is set but $%s, $%s or $%s is not: source the env file of `make dev-up` again", EnvSASLBrokers, EnvSASLCAFile, EnvSASLUser, EnvSASLPasswordFile)
	}
	return Kafka{Brokers: b, Auth: auth}
}

func brokers(t testing.TB, env string) []string {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: needs Kafka (make dev-up)")
	}
	v := os.Getenv(env)
	if v == "" {
		t.Fatalf("$%s is not set: start the local stack with 'make dev-up' (deploy/local/stack.sh up kafka upgrades an older one) and source its env file, or run 'make test'; or use go test -short to skip Kafka tests", env)
	}
	return strings.Split(v, ",")
}

// Args are the command-line flags of `clickstream ingest` and `gen` that
// reach the listener: --brokers and the --kafka-* flags (the password by
// its file, never on the command line).
func (k Kafka) Args() []string {
	args := []string{"--brokers", strings.Join(k.Brokers, ",")}
	a := k.Auth
	if a.TLS {
		args = append(args, "--kafka-tls")
	}
	for _, f := range []struct{ flag, v string }{
		{"--kafka-ca-file", a.CAFile}, {"--kafka-cert-file", a.CertFile}, {"--kafka-key-file", a.KeyFile},
		{"--kafka-user", a.User}, {"--kafka-password-file", a.PasswordFile},
	} {
		if f.v != "" {
			args = append(args, f.flag, f.v)
		}
	}
	if a.User != "" {
		args = append(args, "--kafka-sasl-mechanism", a.Mechanism)
	}
	return args
}

// Config returns a sarama configuration for the listener (for admin
// clients and consumers of tests).
func (k Kafka) Config(t testing.TB) *sarama.Config {
	t.Helper()
	sc := sarama.NewConfig()
	sc.Version = sarama.V3_6_0_0
	if err := k.Auth.Apply(sc); err != nil {
		t.Fatal(err)
	}
	return sc
}
