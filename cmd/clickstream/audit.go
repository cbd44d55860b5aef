package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"github.com/spf13/cobra"

	"github.com/dataco/clickstream/coordinator"
	"github.com/dataco/clickstream/indexer"
	"github.com/dataco/clickstream/internal/audit"
	"github.com/dataco/clickstream/internal/flagenv"
	"github.com/dataco/clickstream/internal/icetable"
	"github.com/dataco/clickstream/internal/kafkaauth"
	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/results"
)

// auditFlags are the flags of clickstream audit.
type auditFlags struct {
	lake, catalog, catalogPW string
	s3                       lake.S3Options
	results                  []string
	out                      string
	window                   time.Duration
	from, to                 time.Time
	es                       indexer.Config
	kafka                    []string
	group                    string
	kafkaAuth                kafkaauth.Config
	json                     bool
	maxFiles, parallelism    int
}

// newAuditCmd: clickstream audit --lake URI [--from T --to T]
// [--results URI ... | --out BASE --window D] [--es URL] [--kafka BROKERS].
// It prints the ledger of the range hop by hop and exits 1 naming the
// first hop that differs.
func newAuditCmd() *cobra.Command {
	f := auditFlags{es: indexer.NewConfig(), kafkaAuth: kafkaauth.NewConfig()}
	cmd := &cobra.Command{
		Use:   "audit --lake URI [--from T --to T] [--results URI | --out BASE --window D] [--es URL] [flags]",
		Short: "check a window end to end, hop by hop: source positions, lake, job, result, Iceberg tables, Elasticsearch (exit 1 naming the first hop that differs)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runAudit(cmd, &f)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&f.lake, "lake", "", "data lake URI: s3://bucket/prefix or file:///dir")
	fs.StringVar(&f.catalog, "catalog", "", "Iceberg catalog of the lake's tables (default: the SQLite catalog at the root of a file:// lake, if any; \"none\": skip the table hops)")
	fs.StringVar(&f.catalogPW, "catalog-password-file", "", "file holding the password of a postgres:// --catalog")
	f.s3.AddFlags(fs)
	fs.TextVar(&f.from, "from", time.Time{}, "start of the range (RFC 3339; default: the window of the one --results)")
	fs.TextVar(&f.to, "to", time.Time{}, "end of the range, exclusive (RFC 3339)")
	fs.StringSliceVar(&f.results, "results", nil, "committed result(s) of the range's windows (output URIs of jobs), comma-separated or repeated")
	fs.StringVar(&f.out, "out", "", "base URI of the scheduler's results (<base>/window=<start>), with --window")
	fs.DurationVar(&f.window, "window", 0, "window length of the scheduler's results under --out")
	f.es.AddFlags(fs)
	flagenv.Alias(fs, "es", indexer.EnvURL)
	fs.StringVar(&f.es.Alias, "es-alias", f.es.Alias, "alias to query (same as --es-index)")
	fs.StringSliceVar(&f.kafka, "kafka", nil, "Kafka brokers: report each topic partition's lag behind the lake (information only)")
	fs.StringVar(&f.group, "group", "", "with --kafka: the lag against this consumer group's committed offsets instead of the partitions' end offsets")
	f.kafkaAuth.AddFlags(fs)
	fs.BoolVar(&f.json, "json", false, "print the report as JSON")
	fs.IntVar(&f.maxFiles, "max-files", audit.DefaultMaxFiles, "fail rather than read more lake data files than this")
	fs.IntVar(&f.parallelism, "parallelism", audit.DefaultParallelism, "lake data files read at once")
	// The audit only reads: the indexer's settings of writes, and creating
	// a bucket, do not apply (the flags stay accepted, as every command
	// sharing them takes them from the environment).
	for _, name := range []string{"es-flush-bytes", "es-flush-interval", "es-workers", "es-retry-timeout", "es-shards", "es-replicas", "s3-create-bucket"} {
		_ = fs.MarkHidden(name)
	}
	for _, name := range []string{"from", "to"} {
		fs.Lookup(name).DefValue = "" // not the zero time's text
	}
	return cmd
}

func runAudit(cmd *cobra.Command, f *auditFlags) error {
	ctx := cmd.Context()
	// Usage first: nothing is opened before the command line is known good.
	if f.lake == "" {
		return usageErrorf("--lake is required (s3://bucket/prefix or file:///dir)")
	}
	if f.from.IsZero() != f.to.IsZero() {
		return usageErrorf("--from and --to go together")
	}
	if !f.from.IsZero() && !f.from.Before(f.to) {
		return usageErrorf("--from %s is not before --to %s", f.from.Format(time.RFC3339), f.to.Format(time.RFC3339))
	}
	if len(f.results) > 0 && f.out != "" {
		return usageErrorf("give --results or --out, not both")
	}
	if (f.out != "") != (f.window > 0) {
		return usageErrorf("--out and --window go together")
	}
	if f.out != "" && f.from.IsZero() {
		return usageErrorf("--out needs --from and --to")
	}
	if f.from.IsZero() && len(f.results) != 1 {
		return usageErrorf("give --from and --to, or one --results whose window is audited")
	}
	if f.maxFiles <= 0 || f.parallelism <= 0 {
		return usageErrorf("--max-files and --parallelism must be positive")
	}
	f.s3.CreateBucket = false // read only
	if err := f.s3.Validate(); err != nil {
		return usageErrorf("%w", err)
	}
	useES := len(f.es.Addresses) > 0
	if useES {
		f.es.SecretsFromEnv(nil)
		if err := f.es.Validate(); err != nil {
			return usageErrorf("%w", err)
		}
	}
	if len(f.kafka) > 0 {
		f.kafkaAuth.SecretsFromEnv(nil)
		if err := kafkaauth.CheckBrokers(f.kafka); err != nil {
			return usageErrorf("%w", err)
		}
		if err := f.kafkaAuth.Validate(); err != nil {
			return usageErrorf("%w", err)
		}
	} else if f.group != "" {
		return usageErrorf("--group needs --kafka")
	}
	outs := f.results
	for i, r := range outs {
		uri, err := lake.ResolveURI(r)
		if err != nil {
			return usageErrorf("--results: %w", err)
		}
		outs[i] = uri
	}
	if f.out != "" {
		base, err := lake.ResolveURI(f.out)
		if err != nil {
			return usageErrorf("--out: %w", err)
		}
		for _, w := range coordinator.SplitWindows(f.from.UTC(), f.to.UTC(), f.window) {
			outs = append(outs, coordinator.WindowOut(base, w[0]))
		}
	}
	if err := requireStore("lake", f.lake); err != nil {
		return err
	}

	cfg := audit.Config{From: f.from, To: f.to, MaxFiles: f.maxFiles, Parallelism: f.parallelism, Logger: slog.Default()}
	var err error
	if cfg.Lake, err = lake.Open(ctx, f.lake, f.s3); err != nil {
		return fmt.Errorf("open lake: %w", err)
	}
	for i, uri := range outs {
		// A window folder of --out that was never written is a finding
		// of the audit, not an error; opening it would create it.
		if i >= len(f.results) && !storeExists(uri) {
			cfg.MissingResults = append(cfg.MissingResults, uri)
			continue
		}
		if err := requireStore("results", uri); err != nil {
			return err
		}
		s, err := lake.Open(ctx, uri, f.s3)
		if err != nil {
			return fmt.Errorf("open result %s: %w", uri, err)
		}
		cfg.Results = append(cfg.Results, s)
	}
	if cfg.From.IsZero() {
		m, err := results.ReadMeta(ctx, cfg.Results[0])
		if err != nil {
			return err
		}
		cfg.From, cfg.To = m.From, m.To
	}
	catURI := f.catalog
	if catURI == "" && icetable.HasDefaultCatalog(cfg.Lake.URI()) {
		catURI, _ = icetable.DefaultCatalogURI(cfg.Lake.URI())
	}
	if catURI != "" && catURI != icetable.NoCatalog {
		cat, err := icetable.OpenCatalog(ctx, catURI, icetable.CatalogOptions{Props: icetable.S3Props(f.s3), PasswordFile: f.catalogPW})
		if err != nil {
			return err
		}
		defer icetable.Close(cat)
		cfg.Catalog = cat
	}
	if useES {
		ix, err := indexer.New(f.es, slog.Default(), nil)
		if err != nil {
			return err
		}
		defer ix.Close(context.WithoutCancel(ctx))
		cfg.Index = esTotals{ix}
	}
	if len(f.kafka) > 0 {
		cfg.Offsets = kafkaOffsets{brokers: f.kafka, group: f.group, auth: f.kafkaAuth}
	}

	rep, err := audit.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if f.json {
		enc := json.NewEncoder(cmd.OutOrStdout())
		enc.SetIndent("", "  ")
		err = enc.Encode(rep)
	} else {
		err = rep.WriteTable(cmd.OutOrStdout())
	}
	if err != nil {
		return err
	}
	return rep.Err()
}

// storeExists tells whether a result store may exist: a file:// folder
// must; an s3:// prefix is judged by the audit (no _SUCCESS).
func storeExists(uri string) bool {
	c, err := lake.Canonical(uri)
	if err != nil {
		return false
	}
	dir, ok := strings.CutPrefix(c, "file://")
	if !ok {
		return true
	}
	fi, err := os.Stat(filepath.FromSlash(dir))
	return err == nil && fi.IsDir()
}

// esTotals is the audit's Elasticsearch hop through the indexer.
type esTotals struct{ ix *indexer.Indexer }

func (e esTotals) Totals(ctx context.Context, from, to time.Time) (docs, clicks int64, err error) {
	t, err := e.ix.RangeTotals(ctx, from, to)
	if errors.Is(err, indexer.ErrNoIndex) {
		return 0, 0, fmt.Errorf("alias %s does not exist: %w", e.ix.Alias(), audit.ErrNoIndex)
	}
	return t.Documents, t.Events(), err
}

// kafkaOffsets reads, for the lake's Kafka sources, the partitions' end
// offsets or a consumer group's committed offsets.
type kafkaOffsets struct {
	brokers []string
	group   string
	auth    kafkaauth.Config
}

// kafkaTimeout bounds each request to the brokers.
const kafkaTimeout = 10 * time.Second

func (k kafkaOffsets) Offsets(ctx context.Context, sources []string) (map[string]int64, string, error) {
	parts := map[string][]int32{}
	bySource := map[string]struct {
		topic string
		p     int32
	}{}
	for _, s := range sources {
		rest, ok := strings.CutPrefix(s, "kafka.")
		i := strings.LastIndexByte(rest, '.')
		if !ok || i < 0 {
			continue // a file source
		}
		p, err := strconv.ParseInt(rest[i+1:], 10, 32)
		if err != nil {
			continue
		}
		topic := rest[:i]
		parts[topic] = append(parts[topic], int32(p))
		bySource[s] = struct {
			topic string
			p     int32
		}{topic, int32(p)}
	}
	if len(bySource) == 0 {
		return nil, "", nil
	}
	sc := sarama.NewConfig()
	sc.Net.DialTimeout, sc.Net.ReadTimeout, sc.Net.WriteTimeout = kafkaTimeout, kafkaTimeout, kafkaTimeout
	sc.Metadata.Retry.Max = 2
	sc.ClientID = "clickstream-audit"
	if err := k.auth.Apply(sc); err != nil {
		return nil, "", err
	}
	client, err := sarama.NewClient(k.brokers, sc)
	if err != nil {
		return nil, "", fmt.Errorf("kafka: %w", kafkaauth.Explain(err))
	}
	defer client.Close()
	out := make(map[string]int64, len(bySource))
	if k.group != "" {
		admin, err := sarama.NewClusterAdminFromClient(client)
		if err != nil {
			return nil, "", fmt.Errorf("kafka: %w", err)
		}
		resp, err := admin.ListConsumerGroupOffsets(k.group, parts)
		if err != nil {
			return nil, "", fmt.Errorf("kafka: offsets of group %s: %w", k.group, err)
		}
		for s, tp := range bySource {
			if b := resp.GetBlock(tp.topic, tp.p); b != nil && b.Err == sarama.ErrNoError && b.Offset >= 0 {
				out[s] = b.Offset
			}
		}
		return out, "group " + k.group, nil
	}
	for s, tp := range bySource {
		if err := ctx.Err(); err != nil {
			return nil, "", err
		}
		off, err := client.GetOffset(tp.topic, tp.p, sarama.OffsetNewest)
		if err != nil {
			return nil, "", fmt.Errorf("kafka: end offset of %s/%d: %w", tp.topic, tp.p, err)
		}
		out[s] = off
	}
	return out, "end offset", nil
}
