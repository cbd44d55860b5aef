package indexer

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/dataco/clickstream/internal/secret"
	"github.com/spf13/pflag"
)

// Defaults of a new Config.
const (
	// DefaultAlias is the alias that readers query and the indexer writes
	// through; its first concrete index is DefaultAlias + FirstIndexSuffix.
	DefaultAlias = "clickstream-aggregates"
	// FirstIndexSuffix names the concrete index created on first start.
	FirstIndexSuffix = "-v1"

	DefaultFlushBytes     = 5 << 20
	DefaultFlushInterval  = 5 * time.Second
	DefaultWorkers        = 2
	DefaultMaxRetries     = 5
	DefaultRetryTimeout   = 3 * time.Minute
	DefaultRequestTimeout = 90 * time.Second
	DefaultShards         = 1
	DefaultReplicas       = 1
)

// Environment variables of the configuration. The command fills every flag
// --es-x from CLICKSTREAM_ES_X (and --es from EnvURL where it says so);
// secrets (the password and the API key) can only come from the
// environment (SecretsFromEnv) or from a file, never from a flag: flags
// show in ps and in shell history.
const (
	EnvURL          = "CLICKSTREAM_ES_URL"           // comma-separated node URLs
	EnvIndex        = "CLICKSTREAM_ES_INDEX"         // the alias
	EnvUsername     = "CLICKSTREAM_ES_USERNAME"      // basic auth user
	EnvPassword     = "CLICKSTREAM_ES_PASSWORD"      // basic auth password (secret)
	EnvPasswordFile = "CLICKSTREAM_ES_PASSWORD_FILE" // file holding the password
	EnvAPIKey       = "CLICKSTREAM_ES_API_KEY"       // base64 API key (secret)
	EnvAPIKeyFile   = "CLICKSTREAM_ES_API_KEY_FILE"  // file holding the API key
	EnvCACert       = "CLICKSTREAM_ES_CA_CERT"       // PEM CA certificate file
)

// ErrInvalidConfig wraps every error of Config.Validate.
var ErrInvalidConfig = errors.New("indexer: invalid config")

// Secret is a credential that never prints (secret.Secret).
type Secret = secret.Secret

// Config configures an Indexer: where Elasticsearch is, how to
// authenticate, the alias to write through, and the bulk and retry
// settings.
type Config struct {
	// Addresses are the Elasticsearch node URLs (http:// or https://),
	// without credentials.
	Addresses []string
	// Alias is the alias that documents are written through and queried
	// with. Concrete indices are named Alias + "-" + suffix, and the index
	// template (named Alias) matches Alias + "-*".
	Alias string

	// Basic authentication: Username with Password or PasswordFile.
	Username     string
	Password     Secret
	PasswordFile string
	// API key authentication (the base64 "id:key" token): APIKey or
	// APIKeyFile. Exclusive with basic authentication.
	APIKey     Secret
	APIKeyFile string
	// CACert is a PEM file of the certificate authorities to trust for
	// https:// addresses, in addition to the system's.
	CACert string

	// The one bulk indexer of the process: it sends a bulk request when a
	// worker's buffer reaches FlushBytes, or FlushInterval after its last
	// flush. IndexResult flushes at its end, so FlushInterval only matters
	// to concurrent callers sharing the indexer.
	FlushBytes    int
	FlushInterval time.Duration
	Workers       int

	// MaxRetries is how often the client retries one HTTP request on a
	// network error, 429 or 5xx, with exponential backoff and jitter.
	MaxRetries int
	// RetryTimeout bounds the whole of one IndexResult's retries: documents
	// that failed with a 429, a 5xx or a network error (including whole
	// bulk requests whose client retries ran out) are sent again with
	// backoff until they land or RetryTimeout has passed since the call
	// started.
	RetryTimeout time.Duration
	// RequestTimeout is how long to wait for the response headers of one
	// HTTP request.
	RequestTimeout time.Duration

	// Shards and Replicas of indices the indexer creates.
	Shards   int
	Replicas int
}

// NewConfig returns a Config with the defaults and no address.
func NewConfig() Config {
	return Config{
		Alias:          DefaultAlias,
		FlushBytes:     DefaultFlushBytes,
		FlushInterval:  DefaultFlushInterval,
		Workers:        DefaultWorkers,
		MaxRetries:     DefaultMaxRetries,
		RetryTimeout:   DefaultRetryTimeout,
		RequestTimeout: DefaultRequestTimeout,
		Shards:         DefaultShards,
		Replicas:       DefaultReplicas,
	}
}

// SecretsFromEnv sets the password and the API key from EnvPassword and
// EnvAPIKey when they are set and not empty; they have no flags. lookup is
// os.LookupEnv if nil.
func (c *Config) SecretsFromEnv(lookup func(string) (string, bool)) {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	// Secrets are taken verbatim (no trimming): they are opaque.
	if v, _ := lookup(EnvPassword); v != "" {
		c.Password = Secret(v)
	}
	if v, _ := lookup(EnvAPIKey); v != "" {
		c.APIKey = Secret(v)
	}
}

// AddFlags binds the configuration to flags, all named --es*.
func (c *Config) AddFlags(fs *pflag.FlagSet) {
	fs.Func("es", "Elasticsearch URL(s), comma-separated", func(s string) error {
		c.Addresses = splitList(s)
		return nil
	})
	fs.StringVar(&c.Alias, "es-index", c.Alias, "alias to write through and query; concrete indices are <alias>-<suffix>")
	fs.StringVar(&c.Username, "es-username", c.Username, "basic auth user; the password comes from "+EnvPassword+" or --es-password-file")
	fs.StringVar(&c.PasswordFile, "es-password-file", c.PasswordFile, "file holding the basic auth password")
	fs.StringVar(&c.APIKeyFile, "es-api-key-file", c.APIKeyFile, "file holding the base64 API key; or set "+EnvAPIKey+"")
	fs.StringVar(&c.CACert, "es-ca-cert", c.CACert, "PEM file of CA certificates to trust for https")
	fs.IntVar(&c.FlushBytes, "es-flush-bytes", c.FlushBytes, "bulk request size that triggers a flush")
	fs.DurationVar(&c.FlushInterval, "es-flush-interval", c.FlushInterval, "flush a bulk worker's buffer at least this often")
	fs.IntVar(&c.Workers, "es-workers", c.Workers, "concurrent bulk workers")
	fs.IntVar(&c.MaxRetries, "es-max-retries", c.MaxRetries, "retries of one HTTP request on network errors, 429 and 5xx")
	fs.DurationVar(&c.RetryTimeout, "es-retry-timeout", c.RetryTimeout, "give up re-sending failed documents after this long")
	fs.DurationVar(&c.RequestTimeout, "es-request-timeout", c.RequestTimeout, "wait this long for the response of one request")
	fs.IntVar(&c.Shards, "es-shards", c.Shards, "primary shards of the indices the indexer creates")
	fs.IntVar(&c.Replicas, "es-replicas", c.Replicas, "replicas of the indices the indexer creates")
}

// Validate reports every problem with the configuration, wrapped in
// ErrInvalidConfig. It reads no file.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Addresses) == 0 {
		errs = append(errs, fmt.Errorf("--es is required (or %s)", EnvURL))
	}
	for _, a := range c.Addresses {
		if err := checkAddress(a); err != nil {
			errs = append(errs, err)
		}
	}
	if err := checkIndexName(c.Alias + FirstIndexSuffix); err != nil {
		errs = append(errs, fmt.Errorf("--es-index %q: %w", c.Alias, err))
	}
	basic := c.Username != "" || c.Password != "" || c.PasswordFile != ""
	apiKey := c.APIKey != "" || c.APIKeyFile != ""
	switch {
	case basic && apiKey:
		errs = append(errs, errors.New("basic auth (username/password) and an API key are exclusive: give one"))
	case basic && c.Username == "":
		errs = append(errs, errors.New("a password is set but --es-username is not"))
	case basic && c.Password == "" && c.PasswordFile == "":
		errs = append(errs, fmt.Errorf("--es-username is set but no password (%s or --es-password-file)", EnvPassword))
	}
	if c.Password != "" && c.PasswordFile != "" {
		errs = append(errs, fmt.Errorf("both %s and --es-password-file are set: give one", EnvPassword))
	}
	if c.APIKey != "" && c.APIKeyFile != "" {
		errs = append(errs, fmt.Errorf("both %s and --es-api-key-file are set: give one", EnvAPIKey))
	}
	if c.FlushBytes < 1024 {
		errs = append(errs, fmt.Errorf("--es-flush-bytes %d: must be at least 1024", c.FlushBytes))
	}
	if c.FlushInterval <= 0 {
		errs = append(errs, fmt.Errorf("--es-flush-interval %s: must be positive", c.FlushInterval))
	}
	if c.Workers <= 0 || c.Workers > 64 {
		errs = append(errs, fmt.Errorf("--es-workers %d: must be in [1, 64]", c.Workers))
	}
	if c.MaxRetries < 0 || c.MaxRetries > 100 {
		errs = append(errs, fmt.Errorf("--es-max-retries %d: must be in [0, 100]", c.MaxRetries))
	}
	if c.RetryTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--es-retry-timeout %s: must be positive", c.RetryTimeout))
	}
	if c.RequestTimeout < time.Second {
		errs = append(errs, fmt.Errorf("--es-request-timeout %s: must be at least 1s", c.RequestTimeout))
	}
	if c.Shards <= 0 {
		errs = append(errs, fmt.Errorf("--es-shards %d: must be positive", c.Shards))
	}
	if c.Replicas < 0 {
		errs = append(errs, fmt.Errorf("--es-replicas %d: must not be negative", c.Replicas))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return nil
}

func checkAddress(a string) error {
	u, err := url.Parse(a)
	if err != nil {
		// url.Parse quotes the input, which could hold a password.
		return fmt.Errorf("--es: an address is not a URL")
	}
	if u.User != nil {
		return fmt.Errorf("--es %s: credentials in the URL are not accepted: use --es-username with %s or an API key", u.Redacted(), EnvPassword)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("--es %q: the scheme must be http or https", a)
	}
	if u.Host == "" {
		return fmt.Errorf("--es %q: no host", a)
	}
	return nil
}

// checkIndexName applies Elasticsearch's rules for index and alias names.
func checkIndexName(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return fmt.Errorf("empty, . or .. is not an index name")
	case len(name) > 255:
		return fmt.Errorf("longer than 255 bytes")
	case strings.ContainsAny(name, `\/*?"<>| ,#:`):
		return fmt.Errorf(`contains a space or one of the characters \ / * ? " < > | , # : (not allowed)`)
	case strings.IndexAny(name[:1], "-_+.") == 0:
		return fmt.Errorf("starts with '-', '_', '+' or '.'")
	case strings.ToLower(name) != name:
		return fmt.Errorf("must be lowercase")
	}
	return nil
}

// String describes the configuration with secrets redacted.
func (c Config) String() string {
	return fmt.Sprintf("es=%s index=%s username=%s password=%s password_file=%s api_key=%s api_key_file=%s ca_cert=%s "+
		"flush_bytes=%d flush_interval=%s workers=%d max_retries=%d retry_timeout=%s request_timeout=%s shards=%d replicas=%d",
		strings.Join(c.Addresses, ","), c.Alias, c.Username, c.Password, c.PasswordFile, c.APIKey, c.APIKeyFile, c.CACert,
		c.FlushBytes, c.FlushInterval, c.Workers, c.MaxRetries, c.RetryTimeout, c.RequestTimeout, c.Shards, c.Replicas)
}

// GoString redacts %#v the same way as String.
func (c Config) GoString() string { return "indexer.Config{" + c.String() + "}" }

// LogValue logs the configuration as a group with secrets redacted.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("es", strings.Join(c.Addresses, ",")),
		slog.String("index", c.Alias),
		slog.String("username", c.Username),
		slog.String("password", c.Password.String()),
		slog.String("password_file", c.PasswordFile),
		slog.String("api_key", c.APIKey.String()),
		slog.String("api_key_file", c.APIKeyFile),
		slog.String("ca_cert", c.CACert),
		slog.Int("flush_bytes", c.FlushBytes),
		slog.Duration("flush_interval", c.FlushInterval),
		slog.Int("workers", c.Workers),
		slog.Int("max_retries", c.MaxRetries),
		slog.Duration("retry_timeout", c.RetryTimeout),
		slog.Duration("request_timeout", c.RequestTimeout),
		slog.Int("shards", c.Shards),
		slog.Int("replicas", c.Replicas),
	)
}

// credentials returns the API key and the password, read from their files
// when the values are not set directly. Trailing newlines and spaces of a
// file are dropped.
func (c *Config) credentials() (apiKey, password string, err error) {
	read := func(path, what string) (string, error) {
		data, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("indexer: reading the %s file: %w", what, err)
		}
		v := strings.TrimRight(string(data), "\r\n\t ")
		if v == "" {
			return "", fmt.Errorf("indexer: the %s file %s is empty", what, path)
		}
		return v, nil
	}
	apiKey, password = c.APIKey.Reveal(), c.Password.Reveal()
	if c.APIKeyFile != "" {
		if apiKey, err = read(c.APIKeyFile, "API key"); err != nil {
			return "", "", err
		}
	}
	if c.PasswordFile != "" {
		if password, err = read(c.PasswordFile, "password"); err != nil {
			return "", "", err
		}
	}
	return apiKey, password, nil
}

func splitList(s string) []string {
	var out []string
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
