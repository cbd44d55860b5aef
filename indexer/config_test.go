package indexer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dataco/clickstream/internal/flagenv"
	"github.com/spf13/pflag"
)

const (
	testPassword = "hunter2-very-secret"
	testAPIKey   = "VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw=="
)

func TestConfigRedactsSecrets(t *testing.T) {
	cfg := NewConfig()
	cfg.Addresses = []string{"https://es.example:9200"}
	cfg.Username = "ingest"
	cfg.Password = testPassword
	withKey := NewConfig()
	withKey.Addresses = cfg.Addresses
	withKey.APIKey = testAPIKey

	for name, c := range map[string]Config{"basic": cfg, "api key": withKey} {
		t.Run(name, func(t *testing.T) {
			var outs []string
			for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
				outs = append(outs, fmt.Sprintf(verb, c), fmt.Sprintf(verb, &c))
			}
			outs = append(outs, c.String(), fmt.Sprint(c.Password, c.APIKey), fmt.Sprintf("%#v %#v", c.Password, c.APIKey))
			data, err := json.Marshal(c)
			if err != nil {
				t.Fatal(err)
			}
			outs = append(outs, string(data))
			var text, js bytes.Buffer
			slog.New(slog.NewTextHandler(&text, nil)).Info("config", "cfg", c, "ptr", &c, "password", c.Password, "key", c.APIKey)
			slog.New(slog.NewJSONHandler(&js, nil)).Info("config", "cfg", c, "ptr", &c, "password", c.Password, "key", c.APIKey)
			outs = append(outs, text.String(), js.String())
			for _, out := range outs {
				for _, secret := range []string{testPassword, testAPIKey, "hunter2", "VnVhQ2ZH"} {
					if strings.Contains(out, secret) || strings.Contains(out, fmt.Sprintf("%x", secret)) {
						t.Errorf("secret %q leaked in %q", secret, out)
					}
				}
			}
			if !strings.Contains(c.String(), "[REDACTED]") || !strings.Contains(text.String(), "[REDACTED]") || !strings.Contains(js.String(), "[REDACTED]") {
				t.Errorf("no %s marker in String %q / slog %q %q", "[REDACTED]", c.String(), text.String(), js.String())
			}
		})
	}
	if got := Secret("").String(); got != "" {
		t.Errorf("empty secret prints %q", got)
	}
	if got := Secret("x").Reveal(); got != "x" {
		t.Errorf("Reveal = %q", got)
	}
}

func TestConfigValidate(t *testing.T) {
	valid := func() Config {
		c := NewConfig()
		c.Addresses = []string{"http://127.0.0.1:9200"}
		return c
	}
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string // substring of the error; "" = valid
	}{
		{"defaults with an address", func(*Config) {}, ""},
		{"basic auth", func(c *Config) { c.Username, c.Password = "u", "p" }, ""},
		{"basic auth from a file", func(c *Config) { c.Username, c.PasswordFile = "u", "/run/secrets/pw" }, ""},
		{"api key", func(c *Config) { c.APIKey = "k" }, ""},
		{"https with a CA", func(c *Config) { c.Addresses, c.CACert = []string{"https://a:9200", "https://b:9200"}, "/ca.pem" }, ""},
		{"no address", func(c *Config) { c.Addresses = nil }, "--es is required"},
		{"credentials in the URL", func(c *Config) { c.Addresses = []string{"http://elastic:" + testPassword + "@h:9200"} }, "credentials in the URL"},
		{"bad scheme", func(c *Config) { c.Addresses = []string{"ftp://h"} }, "scheme"},
		{"no host", func(c *Config) { c.Addresses = []string{"http://"} }, "no host"},
		{"uppercase alias", func(c *Config) { c.Alias = "Clicks" }, "lowercase"},
		{"alias with a star", func(c *Config) { c.Alias = "clicks*" }, "contains"},
		{"alias starting with _", func(c *Config) { c.Alias = "_clicks" }, "starts with"},
		{"basic and api key", func(c *Config) { c.Username, c.Password, c.APIKey = "u", "p", "k" }, "exclusive"},
		{"password without user", func(c *Config) { c.Password = "p" }, "--es-username is not"},
		{"user without password", func(c *Config) { c.Username = "u" }, "no password"},
		{"password twice", func(c *Config) { c.Username, c.Password, c.PasswordFile = "u", "p", "/f" }, "both"},
		{"api key twice", func(c *Config) { c.APIKey, c.APIKeyFile = "k", "/f" }, "both"},
		{"tiny flush", func(c *Config) { c.FlushBytes = 10 }, "--es-flush-bytes"},
		{"zero interval", func(c *Config) { c.FlushInterval = 0 }, "--es-flush-interval"},
		{"no workers", func(c *Config) { c.Workers = 0 }, "--es-workers"},
		{"negative retries", func(c *Config) { c.MaxRetries = -1 }, "--es-max-retries"},
		{"zero retry timeout", func(c *Config) { c.RetryTimeout = 0 }, "--es-retry-timeout"},
		{"short request timeout", func(c *Config) { c.RequestTimeout = time.Millisecond }, "--es-request-timeout"},
		{"no shards", func(c *Config) { c.Shards = 0 }, "--es-shards"},
		{"negative replicas", func(c *Config) { c.Replicas = -1 }, "--es-replicas"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.mutate(&c)
			err := c.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate = %v, want an error containing %q", err, tt.want)
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("error %v does not wrap ErrInvalidConfig", err)
			}
			if strings.Contains(err.Error(), testPassword) {
				t.Errorf("error leaks the password: %v", err)
			}
		})
	}
	// Several problems are all reported.
	c := NewConfig()
	c.Workers, c.Shards = 0, 0
	err := c.Validate()
	for _, want := range []string{"--es is required", "--es-workers", "--es-shards"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %v, want it to mention %q", err, want)
		}
	}
}

func TestConfigEnvAndFlags(t *testing.T) {
	env := map[string]string{
		EnvURL: "http://a:9200, http://b:9200", EnvIndex: "clicks", EnvUsername: "ingest",
		EnvPassword: testPassword, EnvCACert: "/etc/ca.pem",
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	t.Setenv(EnvAPIKey, "")
	c := NewConfig()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	c.AddFlags(fs)
	flagenv.Alias(fs, "es", EnvURL)
	if err := fs.Parse([]string{"--es-index", "clicks-override", "--es-workers", "3", "--es-flush-interval", "2s"}); err != nil {
		t.Fatal(err)
	}
	if err := flagenv.Apply(fs, "CLICKSTREAM", os.LookupEnv); err != nil {
		t.Fatal(err)
	}
	c.SecretsFromEnv(nil)
	if got := strings.Join(c.Addresses, " "); got != "http://a:9200 http://b:9200" {
		t.Errorf("addresses = %q", got)
	}
	if c.Alias != "clicks-override" || c.Username != "ingest" || c.Password.Reveal() != testPassword ||
		c.CACert != "/etc/ca.pem" || c.Workers != 3 || c.FlushInterval != 2*time.Second {
		t.Errorf("config = %s", c)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	// No flag takes a secret value.
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Name == "es-password" || f.Name == "es-api-key" {
			t.Errorf("flag --%s takes a secret on the command line", f.Name)
		}
	})
}

func TestCredentialsFromFiles(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte(testPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := NewConfig()
	c.Addresses, c.Username, c.PasswordFile = []string{"http://h:9200"}, "u", pw
	_, got, err := c.credentials()
	if err != nil || got != testPassword {
		t.Fatalf("credentials = %q, %v", got, err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.PasswordFile = empty
	if _, err := New(c, nil, nil); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("New with an empty password file: %v", err)
	}
	c.PasswordFile = filepath.Join(dir, "missing")
	if _, err := New(c, nil, nil); err == nil {
		t.Error("New with a missing password file succeeded")
	}
	c.PasswordFile = pw
	c.CACert = pw // not PEM
	if _, err := New(c, nil, nil); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("New with a non-PEM CA file: %v", err)
	}
}
