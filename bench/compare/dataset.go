package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/dataco/clickstream/internal/icetable"
	"github.com/dataco/clickstream/internal/lake"
)

// dataset is one shape's events, landed once as a file:// lake with the
// Iceberg events table in its embedded SQLite catalog.
type dataset struct {
	Shape    string    `json:"shape"`
	Events   int       `json:"events"` // generated messages
	Users    int       `json:"users"`
	Buckets  int       `json:"buckets"`
	Compact  bool      `json:"compact"`
	Seed     int64     `json:"seed"`
	Accepted int64     `json:"accepted"` // events in the table (the rest were rejected by ingest)
	From     time.Time `json:"from"`     // the whole hours holding them: the job's window
	To       time.Time `json:"to"`
	Files    int       `json:"files"`    // data files of the table's current snapshot
	Metadata string    `json:"metadata"` // the events table's current metadata file
	Lake     string    `json:"-"`        // the lake's folder
}

func (d *dataset) lakeURI() string  { return "file://" + d.Lake }
func (d *dataset) tableDir() string { return filepath.Join(d.Lake, "events") }

// same reports whether a landed dataset was made with the same settings.
func (d *dataset) same(o *dataset) bool {
	return d.Shape == o.Shape && d.Events == o.Events && d.Users == o.Users && d.Buckets == o.Buckets &&
		d.Compact == o.Compact && d.Seed == o.Seed
}

var ingestWindow = regexp.MustCompile(`accepted=(\d+) .*window=--from=(\S+),--to=(\S+)`)

// land returns shape's dataset under cfg.Dir, generating and ingesting it
// unless a dataset of the same settings is there already.
func (h *harness) land(ctx context.Context, shape Shape) (*dataset, error) {
	c := h.cfg
	dir := filepath.Join(c.Dir, fmt.Sprintf("%s-%d", shape.Name, c.Events))
	want := &dataset{Shape: shape.Name, Events: c.Events, Users: shape.Users, Buckets: shape.Buckets,
		Compact: shape.Compact, Seed: c.Seed, Lake: filepath.Join(dir, "lake")}
	stamp := filepath.Join(dir, "dataset.json")
	if data, err := os.ReadFile(stamp); err == nil {
		var have dataset
		if json.Unmarshal(data, &have) == nil && have.same(want) {
			have.Lake = want.Lake
			h.log.Info("dataset: reusing", "shape", shape.Name, "dir", dir, "events", have.Accepted, "files", have.Files)
			return &have, nil
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	h.log.Info("dataset: generating and ingesting", "shape", shape.Name, "events", c.Events, "users", shape.Users, "buckets", shape.Buckets)
	start := time.Now()
	summary, err := h.genIngest(ctx, want, filepath.Join(dir, "land.log"))
	if err != nil {
		return nil, err
	}
	m := ingestWindow.FindStringSubmatch(summary)
	if m == nil {
		return nil, fmt.Errorf("dataset: no window in ingest's summary %q", summary)
	}
	want.Accepted, _ = strconv.ParseInt(m[1], 10, 64)
	if want.From, err = time.Parse(time.RFC3339, m[2]); err != nil {
		return nil, fmt.Errorf("dataset: ingest's window: %w", err)
	}
	if want.To, err = time.Parse(time.RFC3339, m[3]); err != nil {
		return nil, fmt.Errorf("dataset: ingest's window: %w", err)
	}
	if shape.Compact {
		cmd := command{Argv: []string{c.Bin, "compact", "--lake", want.lakeURI()}, Log: filepath.Join(dir, "compact.log")}
		if _, err := cmd.run(ctx); err != nil {
			return nil, fmt.Errorf("dataset: compact: %w", err)
		}
	}
	if want.Metadata, err = currentMetadata(ctx, want.lakeURI()); err != nil {
		return nil, err
	}
	files, err := planFiles(ctx, want.lakeURI(), want.From, want.To)
	if err != nil {
		return nil, err
	}
	for _, fs := range files {
		want.Files += len(fs)
	}
	data, _ := json.MarshalIndent(want, "", "  ")
	if err := os.WriteFile(stamp, data, 0o644); err != nil {
		return nil, err
	}
	h.log.Info("dataset: landed", "shape", shape.Name, "events", want.Accepted, "window", want.From.Format(time.RFC3339)+".."+want.To.Format(time.RFC3339),
		"took", time.Since(start).Round(time.Millisecond))
	return want, nil
}

// genIngest pipes `clickstream gen` into `clickstream ingest --from-file -`
// and returns ingest's summary line.
func (h *harness) genIngest(ctx context.Context, d *dataset, logPath string) (string, error) {
	c := h.cfg
	log, err := os.Create(logPath)
	if err != nil {
		return "", err
	}
	defer log.Close()
	// No bot users: the other engines' queries count every event as a
	// person's click (they do not read is_bot), and the rows are compared
	// row for row; with bots, ours would set them apart into bot_clicks.
	gen := exec.CommandContext(ctx, c.Bin, "gen", "--events", strconv.Itoa(d.Events), "--users", strconv.Itoa(d.Users),
		"--seed", strconv.FormatInt(d.Seed, 10), "--bot-share", "0")
	ingest := exec.CommandContext(ctx, c.Bin, "ingest", "--from-file", "-", "--lake", d.lakeURI(), "--buckets", strconv.Itoa(d.Buckets))
	pipe, err := gen.StdoutPipe()
	if err != nil {
		return "", err
	}
	ingest.Stdin = pipe
	var summary strings.Builder
	gen.Stderr, ingest.Stderr = log, log
	ingest.Stdout = &summary
	if err := ingest.Start(); err != nil {
		return "", fmt.Errorf("dataset: ingest: %w", err)
	}
	if err := gen.Run(); err != nil {
		_ = ingest.Wait()
		return "", fmt.Errorf("dataset: gen: %w (log: %s)", err, logPath)
	}
	if err := ingest.Wait(); err != nil {
		return "", fmt.Errorf("dataset: ingest: %w (log: %s)", err, logPath)
	}
	fmt.Fprint(log, summary.String())
	return summary.String(), nil
}

// currentMetadata returns the local path of the events table's current
// metadata file, from the lake's embedded catalog.
func currentMetadata(ctx context.Context, lakeURI string) (string, error) {
	uri, err := icetable.DefaultCatalogURI(lakeURI)
	if err != nil {
		return "", fmt.Errorf("dataset: catalog: %w", err)
	}
	cat, err := icetable.OpenCatalog(ctx, uri, icetable.CatalogOptions{})
	if err != nil {
		return "", fmt.Errorf("dataset: catalog: %w", err)
	}
	defer icetable.Close(cat)
	tbl, err := cat.LoadTable(ctx, icetable.Ident(icetable.EventsTable))
	if err != nil {
		return "", fmt.Errorf("dataset: events table: %w", err)
	}
	return strings.TrimPrefix(tbl.MetadataLocation(), "file://"), nil
}

// planFiles returns the events table's current files over [from, to) per
// user bucket, as the coordinator plans them.
func planFiles(ctx context.Context, lakeURI string, from, to time.Time) (map[int][]lake.DataFile, error) {
	store, err := lake.Open(ctx, lakeURI, lake.S3Options{})
	if err != nil {
		return nil, err
	}
	files, _, ok, err := icetable.TablePlanner{}.PlanFiles(ctx, lakeURI, store, from, to, 0)
	if err != nil {
		return nil, fmt.Errorf("plan: %w", err)
	}
	if !ok {
		return nil, fmt.Errorf("plan: %s has no events table", lakeURI)
	}
	return files, nil
}
