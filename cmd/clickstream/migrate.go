package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/dataco/clickstream/ingest"
	"github.com/dataco/clickstream/internal/event"
	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/obs"
)

func newMigrateCmd() *cobra.Command {
	cfg := ingest.NewConfig()
	var from string
	cmd := &cobra.Command{
		Use:   "migrate --from OLD_LAKE --lake NEW_LAKE [flags]",
		Short: "copy the committed events of a lake of an older layout into a new lake (and its Iceberg tables), exactly once",
		Long: `migrate reads the committed events of a lake written by an older layout (1: FNV
buckets, timestamp_ms files), in its manifests' order, and ingests them into a new lake
of today's layout as one file source. A run that stops resumes where it stopped; a
finished one does nothing. The old lake is only read; its dead letters stay there.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if from == "" || cfg.Lake == "" {
				return usageErrorf("--from and --lake are required (s3://bucket/prefix or file:///dir)")
			}
			if from == cfg.Lake {
				return usageErrorf("--from and --lake must be different lakes")
			}
			if err := requireStore("from", from); err != nil {
				return err
			}
			ctx := cmd.Context()
			old, err := lake.Open(ctx, from, cfg.S3)
			if err != nil {
				return fmt.Errorf("open --from: %w", err)
			}
			sn, err := lake.ReadLayoutOneSnapshot(ctx, old)
			if err != nil {
				return fmt.Errorf("--from: %w", err)
			}
			if cfg.Buckets == 0 {
				cfg.Buckets = sn.Meta.Buckets
			}
			// The old lake is one source of the new lake, named after its
			// creation (not its URI, which a later run may spell otherwise).
			sum := sha256.Sum256(fmt.Appendf(nil, "%s/%d", sn.Meta.Created.UTC().Format(time.RFC3339Nano), sn.Meta.Buckets))
			cfg.SourceID = "migrate." + hex.EncodeToString(sum[:8])
			cfg.FromFile = "migrate:" + old.URI()
			if err := cfg.Validate(); err != nil {
				return usageErrorf("%w", err)
			}
			read, isum, err := migrate(ctx, cfg, old, sn, runtimeOf(cmd))
			fmt.Fprintf(cmd.OutOrStdout(), "migrate: read %d commits, %d files, %d events from %s\n", read.commits, read.files, read.events, old.URI())
			fmt.Fprintf(cmd.OutOrStdout(), "ingest: %s\n", isum)
			return err
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&from, "from", "", "the lake of an older layout to read: s3://bucket/prefix or file:///dir")
	fs.StringVar(&cfg.Lake, "lake", "", "the new lake: s3://bucket/prefix or file:///dir")
	fs.IntVar(&cfg.Buckets, "buckets", 0, "user buckets of the new lake (0: the old lake's)")
	fs.StringVar(&cfg.Catalog, "catalog", cfg.Catalog, "Iceberg catalog the new lake is published to, sqlite:///path.db or postgres://user@host:port/db?sslmode=… (default: an SQLite catalog at the root of a file:// lake); 'none': not published")
	fs.StringVar(&cfg.CatalogPasswordFile, "catalog-password-file", "", "file holding the password of a postgres:// --catalog (default: $PGPASSWORD, or ~/.pgpass)")
	cfg.S3.AddFlags(fs)
	return cmd
}

// migrated counts what migrate read of the old lake.
type migrated struct{ commits, files, events int64 }

// migrate streams the committed events of the layout-1 lake old (snapshot
// sn), as NDJSON in the manifests' order (by source, then sequence number;
// files and events in their recorded order), into ingest's file source
// cfg.SourceID: the order is the same in every run, so ingest's positions
// (line numbers) make a re-run resume.
func migrate(ctx context.Context, cfg ingest.Config, old lake.Store, sn *lake.Snapshot, rt obs.Runtime) (migrated, ingest.Summary, error) {
	pr, pw := io.Pipe()
	cfg.Input = pr
	var read migrated
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		pw.CloseWithError(streamLayoutOne(ctx, pw, old, sn, &read))
	}()
	sum, err := ingest.Ingest(ctx, cfg, rt)
	// Stop the writer if ingest stopped reading early.
	pr.CloseWithError(errors.New("migrate: ingest stopped"))
	wg.Wait()
	return read, sum, err
}

// streamLayoutOne writes the events of sn's data files to w as NDJSON.
func streamLayoutOne(ctx context.Context, w io.Writer, old lake.Store, sn *lake.Snapshot, read *migrated) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	var line []byte
	for _, m := range sn.Manifests {
		read.commits++
		for _, f := range m.Files {
			data, err := old.Get(ctx, f.Key)
			if err != nil {
				return fmt.Errorf("migrate: read %s: %w", f.Key, err)
			}
			events, err := lake.DecodeLayoutOneFile(f.Key, data)
			if err != nil {
				return fmt.Errorf("migrate: %w", err)
			}
			if int64(len(events)) != f.Events {
				return fmt.Errorf("migrate: %s holds %d events, its manifest says %d", f.Key, len(events), f.Events)
			}
			read.files++
			for _, e := range events {
				line = append(event.AppendEncode(line[:0], e), '\n')
				if _, err := bw.Write(line); err != nil {
					return fmt.Errorf("migrate: %w", err)
				}
				read.events++
			}
		}
	}
	return bw.Flush()
}
