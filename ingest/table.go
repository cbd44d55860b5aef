package ingest

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/apache/iceberg-go/catalog"

	"github.com/dataco/clickstream/internal/icetable"
	"github.com/dataco/clickstream/internal/lake"
)

// catalogURI returns the Iceberg catalog ingest publishes to: the
// configured one, or the lake's embedded default; "" means none (a lake
// that has no default, or publishing turned off).
func catalogURI(cfg *Config, store lake.Store, log *slog.Logger) (string, error) {
	switch cfg.Catalog {
	case icetable.NoCatalog:
		return "", nil
	case "":
		uri, err := icetable.DefaultCatalogURI(store.URI())
		if err != nil {
			log.Info("the lake is not published as an Iceberg table: no --catalog given", "lake", store.URI())
			return "", nil
		}
		return uri, nil
	}
	return cfg.Catalog, nil
}

// startPublisher opens the catalog and the events table and starts
// publishing the lake's commits to it; nil if there is no catalog.
func startPublisher(ctx context.Context, cfg *Config, store lake.Store, buckets int, m *metrics, log *slog.Logger) (*icetable.Publisher, catalog.Catalog, error) {
	uri, err := catalogURI(cfg, store, log)
	if err != nil || uri == "" {
		return nil, nil, err
	}
	if cfg.Format != lake.FormatParquet {
		return nil, nil, fmt.Errorf("ingest: --format %s: the lake's Iceberg table needs Parquet data files (or --catalog %s)", cfg.Format, icetable.NoCatalog)
	}
	cat, err := icetable.OpenCatalog(ctx, uri, icetable.S3Props(cfg.S3))
	if err != nil {
		return nil, nil, fmt.Errorf("ingest: %w", err)
	}
	if _, err := icetable.EnsureEvents(ctx, cat, store, buckets); err != nil {
		icetable.Close(cat)
		return nil, nil, fmt.Errorf("ingest: %w", err)
	}
	if _, err := icetable.EnsureRejected(ctx, cat, store); err != nil {
		icetable.Close(cat)
		return nil, nil, fmt.Errorf("ingest: %w", err)
	}
	log.Info("publishing the lake as an Iceberg table", "catalog", redactCatalog(uri), "table", icetable.Namespace+"."+icetable.EventsTable)
	pub := icetable.StartPublisher(cat, store, icetable.PublisherOptions{
		CommitInterval:    cfg.TableCommitInterval,
		SnapshotRetention: cfg.TableSnapshotRetention,
		Log:               log,
		Published: func(p icetable.Published, err error) {
			if err != nil {
				m.tablePublishFailures.Inc()
				return
			}
			if p.Manifests > 0 {
				m.tableCommits.Inc()
				m.tableCommitRetries.Add(float64(p.Retries))
			}
		},
	})
	return pub, cat, nil
}

// redactCatalog drops what a catalog URI may carry after '?' or before
// '@' (parameters, credentials) from what is logged.
func redactCatalog(uri string) string {
	if i := strings.IndexAny(uri, "?@"); i >= 0 {
		return uri[:i] + "…"
	}
	return uri
}
