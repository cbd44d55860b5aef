package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dataco/clickstream/indexer"
	"github.com/dataco/clickstream/internal/audit"
	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/results"
	"github.com/dataco/clickstream/internal/schema"
)

// TestAuditPipeline runs the pipeline on the real stack (a file lake,
// clickstream run, Elasticsearch) and audits its window: every hop agrees;
// then, one at a time, a document deleted from Elasticsearch, a manifest
// deleted from a copy of the lake and a committed data file deleted from
// the lake each make the audit exit 1 naming its hop.
func TestAuditPipeline(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs Elasticsearch")
	}
	esURL := strings.Split(stackEnv(t, indexer.EnvURL), ",")[0]
	isolateCommands(t)
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	alias := "cs-audit-" + hex.EncodeToString(b)
	t.Cleanup(func() {
		esRequest(t, esURL, http.MethodDelete, "/"+alias+"-*?expand_wildcards=all", 200, 404)
		esRequest(t, esURL, http.MethodDelete, "/_index_template/"+alias, 200, 404)
	})

	dir := t.TempDir()
	lakeDir := filepath.Join(dir, "lake")
	lakeURI := "file://" + filepath.ToSlash(lakeDir)
	outURI := "file://" + filepath.ToSlash(filepath.Join(dir, "out"))
	from, to := "2026-01-05T01:00:00Z", "2026-01-05T02:00:00Z" // gen's data spans 00:00 to about 03:45

	input := pipeRun(t, "gen", "--seed", "17", "--events", "20000", "--invalid-ratio", "0.01")
	file := filepath.Join(dir, "events.ndjson")
	if err := os.WriteFile(file, input, 0o644); err != nil {
		t.Fatal(err)
	}
	pipeRun(t, "ingest", "--from-file", file, "--lake", lakeURI, "--buckets", "4", "--flush-records", "2500")
	pipeRun(t, "run", "--lake", lakeURI, "--from", from, "--to", to, "--out", outURI, "--workers", "2")
	pipeRun(t, "index", "--results", outURI, "--es", esURL, "--es-index", alias, "--es-replicas", "0")

	auditArgs := func(extra ...string) []string {
		return append([]string{"audit", "--lake", lakeURI, "--results", outURI, "--es", esURL, "--es-index", alias}, extra...)
	}

	// 1. Every hop agrees: the table, then the JSON form.
	code, stdout, stderr := runArgs(t, auditArgs("--from", from, "--to", to)...)
	if code != 0 {
		t.Fatalf("audit: exit %d\n%s%s", code, stdout, stderr)
	}
	t.Logf("audit:\n%s", stdout)
	for _, hop := range []string{audit.HopPositions, audit.HopLake, audit.HopEventsTable, audit.HopJob, audit.HopResult, audit.HopAggregatesTable, audit.HopElasticsearch} {
		if !regexpLine(stdout, hop, "OK") {
			t.Errorf("no OK line for hop %s in\n%s", hop, stdout)
		}
	}
	if !strings.Contains(stdout, "all hops agree") {
		t.Errorf("no verdict in\n%s", stdout)
	}
	rep := auditJSON(t, auditArgs("--json")...) // the window from the result
	_, meta, err := readResult(outURI)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK || rep.From != meta.From || rep.To != meta.To {
		t.Fatalf("JSON report: ok %v, range [%s, %s); want ok over the result's window [%s, %s)", rep.OK, rep.From, rep.To, meta.From, meta.To)
	}
	for _, hop := range []string{audit.HopLake, audit.HopEventsTable, audit.HopJob, audit.HopResult, audit.HopAggregatesTable, audit.HopElasticsearch} {
		h := rep.Hop(hop)
		if h == nil || h.Events == nil || *h.Events != meta.EventsInWindow || meta.EventsInWindow == 0 {
			t.Errorf("hop %s: %+v; want %d events", hop, h, meta.EventsInWindow)
		}
	}
	for _, hop := range []string{audit.HopResult, audit.HopAggregatesTable, audit.HopElasticsearch} {
		if h := rep.Hop(hop); h.Rows == nil || *h.Rows != meta.Rows {
			t.Errorf("hop %s: rows %v, want %d", hop, h.Rows, meta.Rows)
		}
	}

	// 2. Inputs not given are skipped, clearly, and do not fail.
	t.Run("skipped", func(t *testing.T) {
		t.Setenv(indexer.EnvURL, "")
		code, stdout, stderr := runArgs(t, "audit", "--lake", lakeURI, "--from", from, "--to", to, "--catalog", "none")
		if code != 0 {
			t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
		}
		for _, hop := range []string{audit.HopEventsTable, audit.HopJob, audit.HopResult, audit.HopAggregatesTable, audit.HopElasticsearch} {
			if !regexpLine(stdout, hop, "SKIPPED") {
				t.Errorf("hop %s not reported skipped in\n%s", hop, stdout)
			}
		}
	})

	// An alias that does not exist holds no document: a difference.
	t.Run("no index", func(t *testing.T) {
		code, stdout, stderr := runArgs(t, "audit", "--lake", lakeURI, "--results", outURI, "--es", esURL, "--es-index", alias+"-none")
		if code != 1 || !strings.Contains(stderr, `hop "elasticsearch" differs`) || !strings.Contains(stderr, "does not exist") {
			t.Fatalf("exit %d, want 1 naming the elasticsearch hop\n%s%s", code, stdout, stderr)
		}
	})

	t.Run("usage", func(t *testing.T) {
		for _, args := range [][]string{
			{"audit", "--results", outURI},
			{"audit", "--lake", lakeURI, "--from", from},
			{"audit", "--lake", lakeURI, "--from", to, "--to", from},
			{"audit", "--lake", lakeURI, "--from", from, "--to", to, "--out", outURI},
			{"audit", "--lake", lakeURI},
		} {
			if code, _, stderr := runArgs(t, args...); code != 2 {
				t.Errorf("%v: exit %d, want 2\n%s", args, code, stderr)
			}
		}
	})

	// A range of the scheduler's windows: two 30-minute windows under
	// <base>/window=<start>, audited together.
	t.Run("range", func(t *testing.T) {
		base := "file://" + filepath.ToSlash(filepath.Join(dir, "scheduled"))
		var outs []string
		for _, w := range [][2]string{{"2026-01-05T00:00:00Z", "2026-01-05T00:30:00Z"}, {"2026-01-05T00:30:00Z", "2026-01-05T01:00:00Z"}} {
			start, _ := time.Parse(time.RFC3339, w[0])
			out := base + "/window=" + start.Format("20060102T150405Z")
			pipeRun(t, "run", "--lake", lakeURI, "--from", w[0], "--to", w[1], "--out", out, "--workers", "2")
			outs = append(outs, out)
		}
		// The indexer registers its metrics with the default registry once
		// per process: a fresh one for this second index command.
		prometheus.DefaultRegisterer = prometheus.NewRegistry()
		pipeRun(t, "index", "--results", outs[0], "--results", outs[1], "--es", esURL, "--es-index", alias, "--es-replicas", "0")
		rep := auditJSON(t, "audit", "--lake", lakeURI, "--out", base, "--window", "30m",
			"--from", "2026-01-05T00:00:00Z", "--to", "2026-01-05T01:00:00Z", "--es", esURL, "--es-index", alias, "--json")
		lakeHop, es := rep.Hop(audit.HopLake), rep.Hop(audit.HopElasticsearch)
		if !rep.OK || *lakeHop.Events == 0 || *es.Events != *lakeHop.Events || !strings.Contains(rep.Hop(audit.HopJob).Detail, "2 jobs") {
			t.Fatalf("range audit: %+v", rep)
		}
		// A range one of whose windows has no result names the job hop.
		code, stdout, stderr := runArgs(t, "audit", "--lake", lakeURI, "--out", base, "--window", "30m",
			"--from", "2026-01-05T00:00:00Z", "--to", "2026-01-05T01:30:00Z", "--catalog", "none", "--es-index", alias)
		if code != 1 || !strings.Contains(stderr, "no committed result") {
			t.Fatalf("a window without result: exit %d\n%s%s", code, stdout, stderr)
		}
	})

	// 3. One document deleted from Elasticsearch.
	t.Run("elasticsearch", func(t *testing.T) {
		rows, _, err := readResult(outURI)
		if err != nil {
			t.Fatal(err)
		}
		id := indexer.DocID(rows[0].WindowStart, rows[0].WindowEnd, rows[0].URL, rows[0].Country)
		esRequest(t, esURL, http.MethodDelete, "/"+alias+indexer.FirstIndexSuffix+"/_doc/"+id+"?refresh=true", 200)
		code, stdout, stderr := runArgs(t, auditArgs()...)
		t.Logf("audit after deleting document %s:\n%s%s", id, stdout, stderr)
		if code != 1 || !strings.Contains(stderr, `hop "elasticsearch" differs`) || !regexpLine(stdout, audit.HopElasticsearch, "DIFF") {
			t.Fatalf("exit %d, want 1 naming the elasticsearch hop\n%s%s", code, stdout, stderr)
		}
		if !strings.Contains(stderr, "-1 documents") {
			t.Errorf("the message does not say one document is missing: %s", stderr)
		}
	})

	// 4. A manifest deleted in a copy of the lake: a gap in the chain.
	t.Run("positions", func(t *testing.T) {
		copyDir := filepath.Join(dir, "lake-copy")
		if err := os.CopyFS(copyDir, os.DirFS(lakeDir)); err != nil {
			t.Fatal(err)
		}
		manifests, err := filepath.Glob(filepath.Join(copyDir, "_manifests", "*", "*.json"))
		if err != nil || len(manifests) < 3 {
			t.Fatalf("manifests %v, %v; want 3 or more", manifests, err)
		}
		if err := os.Remove(manifests[1]); err != nil {
			t.Fatal(err)
		}
		code, stdout, stderr := runArgs(t, "audit", "--lake", copyDir, "--catalog", "none", "--results", outURI, "--es", esURL, "--es-index", alias)
		t.Logf("audit of the copy:\n%s%s", stdout, stderr)
		if code != 1 || !strings.Contains(stderr, `hop "positions" differs`) || !strings.Contains(stdout, "are in no commit") {
			t.Fatalf("exit %d, want 1 naming the positions hop and the gap\n%s%s", code, stdout, stderr)
		}
	})

	// 5. A committed data file of the window deleted from the lake.
	t.Run("lake", func(t *testing.T) {
		store, err := lake.Open(context.Background(), lakeURI, lake.S3Options{})
		if err != nil {
			t.Fatal(err)
		}
		snap, err := lake.ReadSnapshot(context.Background(), store)
		if err != nil {
			t.Fatal(err)
		}
		var key string
		for _, files := range snap.FilesFor(meta.From, meta.To) {
			key = files[0].Key
			break
		}
		if key == "" {
			t.Fatal("no data file overlaps the window")
		}
		if err := store.Delete(context.Background(), key); err != nil {
			t.Fatal(err)
		}
		code, stdout, stderr := runArgs(t, auditArgs()...)
		t.Logf("audit after deleting %s:\n%s%s", key, stdout, stderr)
		if code != 1 || !strings.Contains(stderr, `hop "lake" differs`) || !strings.Contains(stdout, key+" is missing") {
			t.Fatalf("exit %d, want 1 naming the lake hop and %s\n%s%s", code, key, stdout, stderr)
		}
	})
}

// regexpLine reports whether out has a table line for hop with status.
func regexpLine(out, hop string, status audit.Status) bool {
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 4 && f[0] == hop && f[3] == string(status) {
			return true
		}
	}
	return false
}

func auditJSON(t *testing.T, args ...string) audit.Report {
	t.Helper()
	code, stdout, stderr := runArgs(t, args...)
	if code != 0 {
		t.Fatalf("%v: exit %d\n%s%s", args, code, stdout, stderr)
	}
	var rep audit.Report
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("JSON report: %v\n%s", err, stdout)
	}
	return rep
}

func readResult(uri string) ([]schema.Row, results.Meta, error) {
	store, err := lake.Open(context.Background(), uri, lake.S3Options{})
	if err != nil {
		return nil, results.Meta{}, err
	}
	return results.ReadResult(context.Background(), store)
}

// esRequest sends a request without a body to Elasticsearch; a status not
// in want fails the test.
func esRequest(t *testing.T, esURL, method, path string, want ...int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(esURL, "/")+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 1<<16))
	for _, w := range want {
		if res.StatusCode == w {
			return
		}
	}
	t.Fatalf("%s %s: status %d: %s", method, path, res.StatusCode, bytes.TrimSpace(body))
}

// TestAuditKafkaOffsets: the lag of the positions hop reads each lake
// source's end offset from the brokers, here of a topic gen filled.
func TestAuditKafkaOffsets(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs Kafka")
	}
	brokers := stackEnv(t, "CLICKSTREAM_KAFKA_BROKERS")
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	topic := "cs-audit-" + hex.EncodeToString(b)
	const n = 500
	if code, _, stderr := runArgs(t, "gen", "--brokers", brokers, "--topic", topic, "--events", strconv.Itoa(n), "--seed", "3"); code != 0 {
		t.Fatalf("gen: exit %d\n%s", code, stderr)
	}
	client, err := sarama.NewClient(strings.Split(brokers, ","), sarama.NewConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	t.Cleanup(func() {
		if admin, err := sarama.NewClusterAdmin(strings.Split(brokers, ","), sarama.NewConfig()); err == nil {
			_ = admin.DeleteTopic(topic)
			admin.Close()
		}
	})
	parts, err := client.Partitions(topic)
	if err != nil || len(parts) == 0 {
		t.Fatalf("partitions of %s: %v, %v", topic, parts, err)
	}
	sources := []string{"file.0123abcd"} // not Kafka: left out
	for _, p := range parts {
		sources = append(sources, lake.KafkaSource(topic, p))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	got, what, err := kafkaOffsets{brokers: strings.Split(brokers, ",")}.Offsets(ctx, sources)
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	for _, off := range got {
		sum += off
	}
	if what != "end offset" || len(got) != len(parts) || sum != n {
		t.Fatalf("offsets %v (%s); want the end offsets of %d partitions, %d in all", got, what, len(parts), n)
	}
	// A group that committed nothing has no offsets: no lag is reported.
	got, what, err = kafkaOffsets{brokers: strings.Split(brokers, ","), group: topic + "-nobody"}.Offsets(ctx, sources)
	if err != nil || len(got) != 0 || !strings.HasPrefix(what, "group ") {
		t.Fatalf("offsets of a group without commits: %v (%s), %v", got, what, err)
	}
}

// TestAuditKafkaIngest audits a lake that ingest filled from Kafka: every
// partition's commits form one chain, and the lag behind the topic's end
// offsets and behind ingest's consumer group is zero once ingest is idle.
func TestAuditKafkaIngest(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs Kafka")
	}
	brokers := stackEnv(t, "CLICKSTREAM_KAFKA_BROKERS")
	isolateCommands(t)
	t.Setenv(indexer.EnvURL, "") // no Elasticsearch hop
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	topic := "cs-audit-" + hex.EncodeToString(b)
	group := topic + "-ingest"
	t.Cleanup(func() {
		if admin, err := sarama.NewClusterAdmin(strings.Split(brokers, ","), sarama.NewConfig()); err == nil {
			_ = admin.DeleteConsumerGroup(group)
			_ = admin.DeleteTopic(topic)
			admin.Close()
		}
	})
	const n = 3000
	if code, _, stderr := runArgs(t, "gen", "--brokers", brokers, "--topic", topic, "--events", strconv.Itoa(n), "--seed", "5"); code != 0 {
		t.Fatalf("gen: exit %d\n%s", code, stderr)
	}
	lakeURI := "file://" + filepath.ToSlash(filepath.Join(t.TempDir(), "lake"))
	pipeRun(t, "ingest", "--brokers", brokers, "--topic", topic, "--group", group, "--lake", lakeURI, "--buckets", "4",
		"--flush-records", "700", "--exit-when-idle", "5s")

	rep := auditJSON(t, "audit", "--lake", lakeURI, "--from", "2026-01-01T00:00:00Z", "--to", "2026-02-01T00:00:00Z",
		"--kafka", brokers, "--group", group, "--json")
	if !rep.OK || len(rep.Sources) == 0 {
		t.Fatalf("audit: %+v", rep)
	}
	var positions int64
	for _, s := range rep.Sources {
		positions += s.Positions
		if !strings.HasPrefix(s.Source, "kafka."+topic+".") || s.Lag == nil || *s.Lag != 0 || s.LagOf != "group "+group {
			t.Errorf("source %+v: want a partition of %s with lag 0 behind group %s", s, topic, group)
		}
	}
	if positions != n {
		t.Errorf("the commits cover %d positions, the topic holds %d messages", positions, n)
	}
	code, stdout, stderr := runArgs(t, "audit", "--lake", lakeURI, "--from", "2026-01-01T00:00:00Z", "--to", "2026-02-01T00:00:00Z", "--kafka", brokers)
	if code != 0 || !strings.Contains(stdout, "end offset") {
		t.Fatalf("exit %d, want 0 and the lag behind the end offsets\n%s%s", code, stdout, stderr)
	}
	t.Logf("audit of a Kafka ingest:\n%s", stdout)
}
