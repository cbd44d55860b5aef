package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/dataco/clickstream/indexer"
	"github.com/dataco/clickstream/internal/aggregate/aggtest"
	"github.com/dataco/clickstream/internal/audit"
	"github.com/dataco/clickstream/internal/event"
	"github.com/dataco/clickstream/internal/gen"
	"github.com/dataco/clickstream/internal/icetable"
	"github.com/dataco/clickstream/internal/icetable/icetabletest"
	"github.com/dataco/clickstream/internal/kafkaauth/kafkatest"
	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/lake/laketest"
	"github.com/dataco/clickstream/internal/results"
	"github.com/dataco/clickstream/internal/schema"
)

// TestBotsEndToEnd runs generated traffic with crawlers through the real
// stack — `clickstream gen` into Kafka, `clickstream ingest` into an S3
// lake published to a PostgreSQL Iceberg catalog, `clickstream run` with
// and without --include-bots, `clickstream index` into Elasticsearch, and
// `clickstream audit` — and checks every count of bots against the
// generator's truth (gen.Message.Bot): ingest's bot events, the result's
// bot_clicks and clicks, the aggregates table's and Elasticsearch's sums.
func TestBotsEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs Kafka, S3, PostgreSQL and Elasticsearch")
	}
	esURL := strings.Split(stackEnv(t, indexer.EnvURL), ",")[0]
	isolateCommands(t)
	ctx := context.Background()
	const (
		seed    = 33
		events  = 30_000
		users   = 3_000
		timeout = 30 * time.Minute
	)

	// The generator's truth: the valid events, flagged by who sent them.
	cfg := gen.NewConfig()
	cfg.Seed, cfg.Events, cfg.Users = seed, events, users
	g, err := gen.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var truth []event.Event
	var truthBots int64
	for {
		m, ok := g.Next()
		if !ok {
			break
		}
		if !m.Valid {
			continue
		}
		e := m.Event
		e.IsBot = m.Bot
		if e.IsBot {
			truthBots++
		}
		truth = append(truth, e)
	}
	first := slices.MinFunc(truth, func(a, b event.Event) int { return int(a.Timestamp - b.Timestamp) })
	from := time.UnixMilli(first.Timestamp).UTC().Truncate(time.Hour).Add(time.Hour)
	to := from.Add(time.Hour)
	var inHuman, inBots int64
	for _, e := range truth {
		if ts := time.UnixMilli(e.Timestamp); !ts.Before(from) && ts.Before(to) {
			if e.IsBot {
				inBots++
			} else {
				inHuman++
			}
		}
	}
	if inBots < 100 || inHuman < 1000 {
		t.Fatalf("the window [%s, %s) holds %d human and %d bot events: too few to test", from, to, inHuman, inBots)
	}
	t.Logf("truth: %d valid events, %d of bots; window [%s, %s): %d human, %d bot", len(truth), truthBots, from.Format(time.RFC3339), to.Format(time.RFC3339), inHuman, inBots)

	// 1. gen into Kafka, ingest into an S3 lake and a PostgreSQL catalog.
	k := kafkatest.Plaintext(t)
	topic := botsTopic(t, k)
	pipeRun(t, slices.Concat([]string{"gen"}, k.Args(), []string{"--topic", topic, "--seed", strconv.Itoa(seed),
		"--events", strconv.Itoa(events), "--users", strconv.Itoa(users)})...)
	lakeURI := laketest.NewS3(t).URI()
	outURI := laketest.NewS3(t).URI()
	catURI, catOpts := icetabletest.Postgres(t)
	catArgs := []string{"--catalog", catURI}
	if catOpts.PasswordFile != "" {
		catArgs = append(catArgs, "--catalog-password-file", catOpts.PasswordFile)
	}
	out := pipeRun(t, slices.Concat([]string{"ingest"}, k.Args(), []string{"--topic", topic, "--group", topic,
		"--lake", lakeURI, "--buckets", "4", "--flush-interval", "1s", "--exit-when-idle", "5s"}, catArgs)...)
	m := regexp.MustCompile(`ingest: accepted=(\d+) rejected=\d+ consumed=\d+ bots=(\d+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("ingest summary without bots in %q", out)
	}
	if acc, _ := strconv.Atoi(string(m[1])); acc != len(truth) {
		t.Fatalf("ingest accepted %d events, the generator made %d valid ones", acc, len(truth))
	}
	if n, _ := strconv.ParseInt(string(m[2]), 10, 64); n != truthBots {
		t.Fatalf("ingest flagged %d bot events, the generator sent %d", n, truthBots)
	}

	// 2. run: bots set apart, then folded in; each against the reference
	// over the truth, and bot_clicks and clicks against the truth's counts.
	catOpts.Props = icetable.S3Props(laketest.S3Options())
	cat, err := icetable.OpenCatalog(ctx, catURI, catOpts)
	if err != nil {
		t.Fatal(err)
	}
	defer icetable.Close(cat)
	for _, include := range []bool{false, true} {
		args := slices.Concat([]string{"run", "--lake", lakeURI, "--from", from.Format(time.RFC3339), "--to", to.Format(time.RFC3339),
			"--out", outURI, "--workers", "2", "--session-timeout", timeout.String()}, catArgs)
		if include {
			args = append(args, "--include-bots")
		}
		if summary := pipeRun(t, args...); !bytes.Contains(summary, []byte("succeeded")) {
			t.Fatalf("run summary:\n%s", summary)
		}
		store, err := lake.Open(ctx, outURI, laketest.S3Options())
		if err != nil {
			t.Fatal(err)
		}
		rows, meta, err := results.ReadResult(ctx, store)
		if err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("include-bots=%v", include)
		pipeCompare(t, name, rows, aggtest.ReferenceWith(truth, from, to, timeout, include), from, to)
		clicks, bots := sumRows(rows)
		wantClicks, wantBots := inHuman, inBots
		if include {
			wantClicks, wantBots = inHuman+inBots, 0
		}
		if meta.IncludeBots != include {
			t.Errorf("%s: the result's _SUCCESS says include_bots %v", name, meta.IncludeBots)
		}
		if clicks != wantClicks || bots != wantBots || meta.EventsInWindow != inHuman+inBots {
			t.Errorf("%s: %d clicks, %d bot clicks, %d events counted; truth %d clicks, %d bot clicks, %d events",
				name, clicks, bots, meta.EventsInWindow, wantClicks, wantBots, inHuman+inBots)
		}
		agg, err := icetable.ReadAggregatesRange(ctx, cat, from, to)
		if err != nil {
			t.Fatal(err)
		}
		tableRows := make([]schema.Row, len(agg))
		for i := range agg {
			tableRows[i] = agg[i].Row
		}
		if c, b := sumRows(tableRows); c != wantClicks || b != wantBots {
			t.Errorf("%s: the aggregates table sums %d clicks, %d bot clicks; truth %d, %d", name, c, b, wantClicks, wantBots)
		}
		t.Logf("%s: %d rows, %d clicks, %d bot clicks", name, len(rows), clicks, bots)
	}

	// 3. The default result again, indexed into Elasticsearch, and the
	// audit's ledger: every event is one click or one bot click.
	if summary := pipeRun(t, slices.Concat([]string{"run", "--lake", lakeURI, "--from", from.Format(time.RFC3339), "--to", to.Format(time.RFC3339),
		"--out", outURI, "--workers", "2", "--session-timeout", timeout.String()}, catArgs)...); !bytes.Contains(summary, []byte("succeeded")) {
		t.Fatalf("run summary:\n%s", summary)
	}
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	alias := "cs-bots-" + hex.EncodeToString(b)
	t.Cleanup(func() {
		esRequest(t, esURL, http.MethodDelete, "/"+alias+"-*?expand_wildcards=all", 200, 404)
		esRequest(t, esURL, http.MethodDelete, "/_index_template/"+alias, 200, 404)
	})
	pipeRun(t, "index", "--results", outURI, "--es", esURL, "--es-index", alias, "--es-replicas", "0")
	tot := esRangeTotals(t, esURL, alias, from, to)
	if tot.Clicks != inHuman || tot.BotClicks != inBots {
		t.Errorf("Elasticsearch sums %d clicks, %d bot clicks; truth %d, %d", tot.Clicks, tot.BotClicks, inHuman, inBots)
	}
	rep := auditJSON(t, slices.Concat([]string{"audit", "--lake", lakeURI, "--results", outURI, "--es", esURL, "--es-index", alias, "--json"}, catArgs)...)
	for _, hop := range []string{audit.HopLake, audit.HopEventsTable, audit.HopJob, audit.HopResult, audit.HopAggregatesTable, audit.HopElasticsearch} {
		if h := rep.Hop(hop); h == nil || h.Status != audit.OK || h.Events == nil || *h.Events != inHuman+inBots {
			t.Errorf("audit hop %s: %+v; want OK with %d events", hop, h, inHuman+inBots)
		}
	}
}

// sumRows sums the clicks and bot clicks of rows.
func sumRows(rows []schema.Row) (clicks, bots int64) {
	for _, r := range rows {
		clicks += r.Clicks
		bots += r.BotClicks
	}
	return clicks, bots
}

// botsTopic creates a fresh topic of 4 partitions for the test.
func botsTopic(t *testing.T, k kafkatest.Kafka) string {
	t.Helper()
	topic := fmt.Sprintf("test-bots-%d", time.Now().UnixNano())
	admin, err := sarama.NewClusterAdmin(k.Brokers, k.Config(t))
	if err != nil {
		t.Fatalf("kafka admin: %v", err)
	}
	defer admin.Close()
	if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 4, ReplicationFactor: 1}, false); err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
	t.Cleanup(func() {
		if a, err := sarama.NewClusterAdmin(k.Brokers, k.Config(t)); err == nil {
			_ = a.DeleteTopic(topic)
			a.Close()
		}
	})
	return topic
}

// esRangeTotals asks Elasticsearch for the audit's totals of [from, to)
// (indexer.TotalsQuery) through alias.
func esRangeTotals(t *testing.T, esURL, alias string, from, to time.Time) indexer.Totals {
	t.Helper()
	res, err := http.Post(strings.TrimRight(esURL, "/")+"/"+alias+"/_search", "application/json", bytes.NewReader(indexer.TotalsQuery(from, to)))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("totals: status %d, %v: %s", res.StatusCode, err, body)
	}
	tot, err := indexer.ParseTotals(body)
	if err != nil {
		t.Fatal(err)
	}
	return tot
}
