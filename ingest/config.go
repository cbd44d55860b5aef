package ingest

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/dataco/clickstream/internal/bots"
	"github.com/dataco/clickstream/internal/event"
	"github.com/dataco/clickstream/internal/icetable"
	"github.com/dataco/clickstream/internal/kafkaauth"
	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/listen"
	"github.com/dataco/clickstream/internal/obs"
)

// Defaults of a new Config.
const (
	DefaultTopic         = "clicks"
	DefaultGroup         = "clickstream-ingest"
	DefaultFlushRecords  = 100_000
	MaxFlushRecords      = 1 << 24 // records of a batch are indexed by int32
	DefaultFlushBytes    = 32 << 20
	DefaultFlushInterval = 10 * time.Second
	DefaultUploads       = 16
	DefaultCommitTimeout = 2 * time.Minute
)

// Config configures an ingest process. Exactly one source is used: Kafka
// (Brokers, Topic, Group) or a file (FromFile).
type Config struct {
	// Kafka source.
	Brokers []string
	Topic   string
	Group   string
	// InstanceID, if set, makes this process a static member of the group
	// (KIP-345): a restarted process with the same id takes its partitions
	// back at once instead of waiting for a rebalance. Use the pod name.
	InstanceID string
	// SessionTimeout is the group session timeout: how long the broker waits
	// for a silent member before giving its partitions to others.
	SessionTimeout time.Duration
	// Kafka secures the connections to the brokers: TLS and SASL.
	Kafka kafkaauth.Config
	// FromFile reads NDJSON from a file instead of Kafka; "-" is stdin.
	FromFile string
	// SourceID names a file source in the lake. Re-ingesting with the same
	// id resumes, or does nothing if the source was fully committed. Empty:
	// derived from the file's content (a hash), random for stdin.
	SourceID string
	// Input, if set, is read as the NDJSON of a file source instead of
	// FromFile, which then only names it in messages; SourceID is required
	// (a program's stream, e.g. `clickstream migrate`'s).
	Input io.Reader `json:"-"`

	// Lake is the data lake URI: s3://bucket/prefix or file:///dir.
	Lake string
	S3   lake.S3Options
	// Buckets is the user-bucket count of a new lake; 0 takes the lake's
	// (or the default for a new one). It cannot change once the lake exists.
	Buckets int
	Format  lake.Format
	// Catalog is the Iceberg catalog the lake is published to as a table
	// (see package icetable); empty: the lake's embedded default (an SQLite
	// catalog at the root of a file:// lake; none for other lakes);
	// NoCatalog: not published.
	Catalog string
	// CatalogPasswordFile holds the password of a postgres:// catalog
	// (icetable.CatalogOptions).
	CatalogPasswordFile string
	// TableCommitInterval spaces the commits to the Iceberg table (lake
	// commits are each immediate); TableSnapshotRetention is how long its
	// snapshots are kept for time travel.
	TableCommitInterval    time.Duration
	TableSnapshotRetention time.Duration

	FlushRecords  int
	FlushBytes    int
	FlushInterval time.Duration
	Uploads       int
	MaxRecordSize int
	// BotAgentsFile names a file of user-agent substrings that flag an
	// event as a bot's (is_bot), one a line, on top of the user-agent
	// library and bots.DefaultPatterns (see bots.ParsePatterns).
	BotAgentsFile string
	// CommitTimeout bounds one commit attempt (its uploads and its
	// manifest): a commit that takes longer fails, and its source resumes
	// from the lake's position.
	CommitTimeout time.Duration

	// ExitWhenIdle, if positive, makes the process commit and exit once no
	// record has arrived for that long (backfills and tests).
	ExitWhenIdle time.Duration
	// MetricsListen serves /metrics on this address if not empty.
	MetricsListen string
	// Pprof serves profiles on MetricsListen, a loopback address.
	Pprof bool
	// Insecure allows a metrics listener beyond loopback.
	Insecure bool

	// Progress, if set, is kept up to date by a file ingest (no flag: the
	// command that shows progress sets it).
	Progress *Progress
}

// NewConfig returns a Config with the defaults.
func NewConfig() Config {
	return Config{
		Topic:          DefaultTopic,
		Group:          DefaultGroup,
		SessionTimeout: 10 * time.Second,
		Kafka:          kafkaauth.NewConfig(),
		Format:         lake.FormatParquet,
		FlushRecords:   DefaultFlushRecords,
		FlushBytes:     DefaultFlushBytes,
		FlushInterval:  DefaultFlushInterval,
		Uploads:        DefaultUploads,
		MaxRecordSize:  event.MaxSize,
		CommitTimeout:  DefaultCommitTimeout,

		TableCommitInterval:    icetable.DefaultCommitInterval,
		TableSnapshotRetention: icetable.DefaultSnapshotRetention,
	}
}

// Validate reports the first problem with the configuration.
func (c *Config) Validate() error {
	var errs []error
	if c.Lake == "" {
		errs = append(errs, errors.New("--lake is required (s3://bucket/prefix or file:///dir)"))
	}
	if err := obs.CheckPprof(c.MetricsListen, c.Pprof); err != nil {
		errs = append(errs, err)
	}
	if err := listen.Check("--metrics-listen", c.MetricsListen, c.Insecure); err != nil {
		errs = append(errs, err)
	}
	if err := c.S3.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Input != nil && (c.FromFile == "" || c.SourceID == "") {
		errs = append(errs, errors.New("an input stream needs a name (FromFile) and a source id"))
	}
	if c.FromFile == "" {
		if len(c.Brokers) == 0 {
			errs = append(errs, errors.New("--brokers is required unless --from-file is given"))
		}
		if c.Topic == "" {
			errs = append(errs, errors.New("--topic must not be empty"))
		}
		if c.SessionTimeout < time.Second {
			errs = append(errs, errors.New("--kafka-session-timeout must be at least 1s"))
		}
		if c.Group == "" {
			errs = append(errs, errors.New("--group must not be empty"))
		}
		if err := kafkaauth.CheckBrokers(c.Brokers); err != nil {
			errs = append(errs, err)
		}
		if err := c.Kafka.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := lake.ParseFormat(string(c.Format)); err != nil {
		errs = append(errs, err)
	}
	if c.Buckets < 0 || c.Buckets > 65536 {
		errs = append(errs, fmt.Errorf("--buckets %d out of range [0, 65536]", c.Buckets))
	}
	if c.Format == lake.FormatNDJSONGzip && c.FlushBytes > lake.MaxDecompressed {
		errs = append(errs, fmt.Errorf("--flush-bytes %d: an %s file may hold at most %d bytes (lake.MaxDecompressed)", c.FlushBytes, lake.FormatNDJSONGzip, lake.MaxDecompressed))
	}
	if c.FlushRecords <= 0 || c.FlushBytes <= 0 || c.FlushInterval <= 0 {
		errs = append(errs, errors.New("--flush-records, --flush-bytes and --flush-interval must be positive"))
	}
	if c.FlushRecords > MaxFlushRecords {
		errs = append(errs, fmt.Errorf("--flush-records %d over the maximum %d", c.FlushRecords, MaxFlushRecords))
	}
	if c.MaxRecordSize <= 0 {
		errs = append(errs, errors.New("--max-record-size must be positive"))
	}
	if c.Uploads <= 0 {
		errs = append(errs, errors.New("--uploads must be positive"))
	}
	if c.CommitTimeout <= 0 {
		errs = append(errs, errors.New("--commit-timeout must be positive"))
	}
	if c.TableCommitInterval < 0 || c.TableSnapshotRetention < 0 {
		errs = append(errs, errors.New("--table-commit-interval and --table-snapshot-retention must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("ingest: invalid config: %w", err)
	}
	return nil
}

// AddFlags binds the configuration to command-line flags.
func (c *Config) AddFlags(fs *pflag.FlagSet) {
	fs.Func("brokers", "Kafka bootstrap brokers, comma-separated", func(s string) error {
		c.Brokers = splitList(s)
		return nil
	})
	fs.StringVar(&c.Topic, "topic", c.Topic, "Kafka topic to consume")
	fs.StringVar(&c.Group, "group", c.Group, "Kafka consumer group")
	fs.StringVar(&c.InstanceID, "instance-id", c.InstanceID, "static group membership id, e.g. the pod name (empty: dynamic membership)")
	fs.DurationVar(&c.SessionTimeout, "kafka-session-timeout", c.SessionTimeout, "consumer group session timeout (the broker allows 6s to 30m by default)")
	c.Kafka.AddFlags(fs)
	fs.StringVar(&c.FromFile, "from-file", c.FromFile, "ingest NDJSON from this file instead of Kafka ('-' for stdin)")
	fs.StringVar(&c.SourceID, "source-id", c.SourceID, "lake source name of a file ingest (default: from the file's content hash)")
	fs.StringVar(&c.Lake, "lake", c.Lake, "data lake URI: s3://bucket/prefix or file:///dir")
	c.S3.AddFlags(fs)
	fs.StringVar(&c.Catalog, "catalog", c.Catalog, "Iceberg catalog the lake is published to, sqlite:///path.db or postgres://user@host:port/db?sslmode=… (default: an SQLite catalog at the root of a file:// lake); 'none': not published")
	fs.StringVar(&c.CatalogPasswordFile, "catalog-password-file", c.CatalogPasswordFile, "file holding the password of a postgres:// --catalog (default: $PGPASSWORD, or ~/.pgpass)")
	fs.DurationVar(&c.TableCommitInterval, "table-commit-interval", c.TableCommitInterval, "least time between two commits to the Iceberg table (each lake commit is immediate; the last one is published before ingest exits)")
	fs.DurationVar(&c.TableSnapshotRetention, "table-snapshot-retention", c.TableSnapshotRetention, "keep the Iceberg table's snapshots this long for time travel (0: forever)")
	fs.IntVar(&c.Buckets, "buckets", c.Buckets, "user buckets of a new lake (0: the lake's own, or 16 for a new lake)")
	fs.Func("format", "data file format: parquet or ndjson.gz (default parquet)", func(s string) error {
		f, err := lake.ParseFormat(s)
		c.Format = f
		return err
	})
	fs.IntVar(&c.FlushRecords, "flush-records", c.FlushRecords, "commit a source after this many records")
	fs.IntVar(&c.FlushBytes, "flush-bytes", c.FlushBytes, "commit a source after this many raw bytes")
	fs.DurationVar(&c.FlushInterval, "flush-interval", c.FlushInterval, "commit a source at least this often")
	fs.IntVar(&c.Uploads, "uploads", c.Uploads, "concurrent object uploads per commit")
	fs.DurationVar(&c.CommitTimeout, "commit-timeout", c.CommitTimeout, "give up a commit that takes longer than this; the source resumes from the lake")
	fs.IntVar(&c.MaxRecordSize, "max-record-size", c.MaxRecordSize, "reject records larger than this many bytes")
	fs.StringVar(&c.BotAgentsFile, "bot-agents-file", c.BotAgentsFile, "file of user-agent substrings (one a line, case-insensitive, # comments) that flag events as bots', besides the built-in list and the user-agent library")
	fs.DurationVar(&c.ExitWhenIdle, "exit-when-idle", c.ExitWhenIdle, "commit and exit after no record arrived for this long (0: run until stopped)")
	fs.StringVar(&c.MetricsListen, "metrics-listen", c.MetricsListen, "serve Prometheus /metrics on this address (beyond loopback only with --insecure)")
	obs.AddPprofFlag(fs, &c.Pprof)
	fs.BoolVar(&c.Insecure, "insecure", c.Insecure, "allow a plain-text metrics listener beyond loopback")
}

// botClassifier returns the classifier of the built-in bot agents and
// those of BotAgentsFile.
func (c *Config) botClassifier() (*bots.Classifier, error) {
	if c.BotAgentsFile == "" {
		return bots.New(nil), nil
	}
	f, err := os.Open(c.BotAgentsFile)
	if err != nil {
		return nil, fmt.Errorf("ingest: --bot-agents-file: %w", err)
	}
	defer f.Close()
	extra, err := bots.ParsePatterns(f)
	if err != nil {
		return nil, fmt.Errorf("ingest: --bot-agents-file %s: %w", c.BotAgentsFile, err)
	}
	return bots.New(extra), nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
