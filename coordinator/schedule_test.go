package coordinator

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/iceberg-go/catalog"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dataco/clickstream/indexer"
	"github.com/dataco/clickstream/ingest"
	"github.com/dataco/clickstream/internal/aggregate/aggtest"
	"github.com/dataco/clickstream/internal/event"
	"github.com/dataco/clickstream/internal/icetable"
	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/lake/laketest"
	"github.com/dataco/clickstream/internal/obs"
	"github.com/dataco/clickstream/internal/results"
	"github.com/dataco/clickstream/internal/schema"
	pb "github.com/dataco/clickstream/proto/clickstream/v1"
)

// TestScheduleWindowsLateDataAndIndex is the acceptance test of periodic
// processing: with a lake fed by file ingests of several sources, the
// scheduler runs one job per complete 1-minute event-time window, in window
// order and one at a time, only once the lowest source watermark has passed
// the window's end + session timeout + lateness; a late event (from a new
// source, then from a source already ahead) re-runs its done window, and
// only that window; and after every step each document in Elasticsearch
// equals an independent computation over the events ingested so far, one
// document per result row, from the window's latest job.
//
// It runs twice: with jobs planned and late data told by the lake's
// manifests, and by the lake's Iceberg events table and its snapshots;
// with the table, a compaction of the closed hours afterwards re-runs no
// window (it rewrites files, and appends no event).
func TestScheduleWindowsLateDataAndIndex(t *testing.T) {
	t.Run("manifests", func(t *testing.T) { testScheduleWindows(t, false) })
	t.Run("table", func(t *testing.T) { testScheduleWindows(t, true) })
}

func testScheduleWindows(t *testing.T, table bool) {
	esBase := scheduleESURL(t)
	ctx := context.Background()

	const (
		window   = time.Minute
		timeout  = 30 * time.Second
		lateness = time.Second
		interval = 200 * time.Millisecond
		buckets  = 4
	)
	t0 := time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC) // window-aligned, in the past (the scheduler never lets the watermark pass the wall clock)
	w1, w2, w3, w4 := t0, t0.Add(window), t0.Add(2*window), t0.Add(3*window)
	// Window k is complete once the watermark reaches its end + 31 s.
	wmA := t0.Add(3*time.Minute + 40*time.Second)  // completes w1..w3, not w4
	wmB1 := t0.Add(2*time.Minute + 40*time.Second) // completes w1, w2, not w3
	wmB2 := t0.Add(3*time.Minute + 50*time.Second)

	h := newHarness(t, buckets, 0, 0) // embedded etcd + an empty lake of 4 buckets
	dir := t.TempDir()

	// Events: users of source a, users of source b, and users whose events
	// are split between both (all of a user's events share a bucket in the
	// lake whatever source brought them).
	r := mrand.New(mrand.NewPCG(2026, 11))
	var evA, evB []event.Event
	for i := range 16 {
		evA = append(evA, schedUserEvents(r, fmt.Sprintf("a-user-%02d", i), t0, wmA)...)
	}
	for i := range 8 {
		evB = append(evB, schedUserEvents(r, fmt.Sprintf("b-user-%02d", i), t0, wmB2)...)
	}
	for i := range 4 {
		for _, e := range schedUserEvents(r, fmt.Sprintf("shared-%d", i), t0, wmB2) {
			if r.IntN(2) == 0 && e.Timestamp < wmA.UnixMilli() {
				evA = append(evA, e)
			} else {
				evB = append(evB, e)
			}
		}
	}
	// Events exactly at the intended watermarks, so that they are exact.
	evA = append(evA, schedEvent("a-user-00", wmA, "/home", "US"))
	evB = append(evB, schedEvent("b-user-00", wmB1, "/home", "DE"), schedEvent("b-user-01", wmB2, "/cart", "FR"))
	var evB1, evB2 []event.Event
	for _, e := range evB {
		if e.Timestamp <= wmB1.UnixMilli() {
			evB1 = append(evB1, e)
		} else {
			evB2 = append(evB2, e)
		}
	}
	// Files are written in shuffled line order: ingest must not care.
	r.Shuffle(len(evA), func(i, j int) { evA[i], evA[j] = evA[j], evA[i] })
	r.Shuffle(len(evB1), func(i, j int) { evB1[i], evB1[j] = evB1[j], evB1[i] })

	fileA, fileB := filepath.Join(dir, "a.ndjson"), filepath.Join(dir, "b.ndjson")
	var ingested []event.Event // everything committed to the lake so far, as parsed
	ingested = append(ingested, schedIngest(t, h.src, fileA, "a", evA)...)
	ingested = append(ingested, schedIngest(t, h.src, fileB, "b", evB1)...)

	// Elasticsearch: a fresh alias, removed with its indices and template
	// at the end (after the indexer and the coordinator are closed: cleanups
	// run last-in first-out).
	icfg := indexer.NewConfig()
	icfg.Addresses = []string{esBase}
	icfg.Alias = "cs-sched-test-" + schedRandHex(5)
	icfg.Replicas = 0
	icfg.RetryTimeout = 30 * time.Second
	t.Cleanup(func() {
		schedES(t, http.MethodDelete, esBase+"/"+icfg.Alias+"-*?expand_wildcards=all", nil, nil, 200, 404)
		schedES(t, http.MethodDelete, esBase+"/_index_template/"+icfg.Alias, nil, nil, 200, 404)
	})
	ix, err := indexer.New(icfg, testLogger(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := ix.Close(cctx); err != nil {
			t.Errorf("close indexer: %v", err)
		}
	})

	h.worker("w1", 2, nil)
	h.worker("w2", 2, nil)
	outDir := t.TempDir()
	sched := Schedule{
		Enabled: true, Window: window, Lateness: lateness,
		Out:      "file://" + filepath.ToSlash(outDir),
		Interval: interval, IdleSource: time.Hour, Format: "ndjson",
	}
	start := time.Now()
	if table {
		cat := schedEventsTable(t, h.src, buckets)
		defer icetable.Close(cat)
	}
	c := h.coordinator(func(cfg *Config) {
		cfg.SessionTimeout = timeout
		cfg.Schedule = sched
		cfg.Publishers = []Publisher{ix}
		if table {
			cfg.Planner = icetable.TablePlanner{}
			cfg.Inputs = &icetable.InputTracker{}
		}
	})

	// --- 1. The lake's watermark (min of a and b = wmB1) completes w1 and
	// w2 only: both are processed, in order, one at a time; w3 is not.
	waitUntil(t, "windows 1 and 2 done", 30*time.Second, func() bool {
		return schedWindowState(t, c, w1) == windowDone && schedWindowState(t, c, w2) == windowDone
	})
	// Let the scheduler look at the lake again after w2 was recorded done
	// (it submits nothing, below); its watermark is the lower one, b's.
	schedAwaitTicks(t, c, wmB1)
	jobs := schedJobs(t, c)
	schedCheckJobs(t, jobs, []time.Time{w1, w2}, window)
	schedCheckES(t, esBase, icfg.Alias, c, sched, ingested, []time.Time{w1, w2}, timeout, window)
	t.Logf("windows 1-2 done and indexed after %v", time.Since(start).Round(time.Millisecond))

	// --- 2. Source b catches up: the watermark becomes min(wmA, wmB2) =
	// wmA, which completes w3 but not w4. w3 is processed; w1 and w2, whose
	// input did not change, are not run again.
	ingested = append(ingested, schedIngest(t, h.src, fileB, "b", evB2)...)
	waitUntil(t, "window 3 done", 30*time.Second, func() bool { return schedWindowState(t, c, w3) == windowDone })
	schedAwaitTicks(t, c, wmA)
	jobs = schedJobs(t, c)
	schedCheckJobs(t, jobs, []time.Time{w1, w2, w3}, window)
	if st := schedWindowState(t, c, w4); st != "" {
		t.Fatalf("window 4 (incomplete: watermark %s) has state %q", wmA.Format(time.RFC3339), st)
	}
	beforeLate := schedCheckES(t, esBase, icfg.Alias, c, sched, ingested, []time.Time{w1, w2, w3}, timeout, window)
	t.Logf("window 3 done and indexed after %v", time.Since(start).Round(time.Millisecond))

	// --- 3. A late event for window 1 arrives from a new source, alone.
	// That source's watermark is the late event's time, so the scheduler's
	// watermark falls back into window 1; window 1 was complete once, so it
	// runs again all the same, and no window after it starts early. The
	// late event is of a user with clicks around it, on a new (url,
	// country): it adds a document to window 1 and changes the time spent
	// of that user's previous click.
	lateUser := "a-user-03"
	lateEv := schedEvent(lateUser, w1.Add(45*time.Second+123*time.Millisecond), "/late-arrival", "NZ")
	ingested = append(ingested, schedIngest(t, h.src, filepath.Join(dir, "late.ndjson"), "late", []event.Event{lateEv})...)
	waitUntil(t, "window 1 re-run", 30*time.Second, func() bool {
		recs, err := c.windowRecords(ctx)
		if err != nil {
			t.Fatal(err)
		}
		rec := recs[w1.Unix()]
		return rec != nil && rec.Runs == 2 && rec.State == windowDone
	})
	schedAwaitTicks(t, c, time.UnixMilli(lateEv.Timestamp))
	jobs = schedJobs(t, c)
	schedCheckJobs(t, jobs, []time.Time{w1, w2, w3, w1}, window)
	afterLate := schedCheckES(t, esBase, icfg.Alias, c, sched, ingested, []time.Time{w1, w2, w3}, timeout, window)

	// The late event is visible in window 1, and only there.
	key := schedDocKey{w1.UnixMilli(), "/late-arrival", "NZ"}
	if d, ok := afterLate[key]; !ok || d.Clicks != 1 || d.UniqueUsers != 1 {
		t.Errorf("late event's document: %+v (found %v), want 1 click of 1 user", d, ok)
	}
	if _, ok := beforeLate[key]; ok {
		t.Errorf("late event's document existed before the late event")
	}
	changed := 0
	for k, d := range afterLate {
		if b, ok := beforeLate[k]; k != key && (!ok || b.Clicks != d.Clicks || b.TotalTimeSpentS != d.TotalTimeSpentS || b.TimeSpentSamples != d.TimeSpentSamples) {
			if k.window != w1.UnixMilli() {
				t.Errorf("document %+v of another window changed with the late event", k)
			}
			changed++
		}
	}
	if len(afterLate) != len(beforeLate)+1 {
		t.Errorf("%d documents after the late event, %d before: want one more", len(afterLate), len(beforeLate))
	}
	t.Logf("late event re-run and re-indexed after %v; %d other window-1 documents changed (time spent of the previous click)",
		time.Since(start).Round(time.Millisecond), changed)

	// --- 4. A late event on a source that is already ahead (a Kafka
	// partition delivering a late record; here source a resumes its file):
	// its watermark stays, window 2 is re-run and the event's existing
	// (url, country) document counts one more click. At 1m45s into window
	// 2, the event is outside window 1's input ([from, to + timeout)), so
	// window 1 is not run again.
	var key2 schedDocKey
	for k := range afterLate {
		if k.window == w2.UnixMilli() && (key2.url == "" || k.url+k.country < key2.url+key2.country) {
			key2 = k
		}
	}
	late2 := schedEvent("a-user-05", w2.Add(45*time.Second+456*time.Millisecond), key2.url, key2.country)
	ingested = append(ingested, schedIngest(t, h.src, fileA, "a", []event.Event{late2})...)
	waitUntil(t, "window 2 re-run", 30*time.Second, func() bool {
		recs, err := c.windowRecords(ctx)
		if err != nil {
			t.Fatal(err)
		}
		rec := recs[w2.Unix()]
		return rec != nil && rec.Runs == 2 && rec.State == windowDone
	})
	schedAwaitTicks(t, c, time.UnixMilli(lateEv.Timestamp)) // the late source still holds it back
	jobs = schedJobs(t, c)
	schedCheckJobs(t, jobs, []time.Time{w1, w2, w3, w1, w2}, window)
	final := schedCheckES(t, esBase, icfg.Alias, c, sched, ingested, []time.Time{w1, w2, w3}, timeout, window)
	if got, was := final[key2].Clicks, afterLate[key2].Clicks; got != was+1 {
		t.Errorf("%q/%q in window 2: %d clicks after the late event, %d before", key2.url, key2.country, got, was)
	}
	t.Logf("second late event re-run and re-indexed after %v", time.Since(start).Round(time.Millisecond))
	if !table {
		return
	}

	// --- 5. Compacting the table's closed hours rewrites every file the
	// windows read but adds no event: no window runs again.
	cat := schedEventsTable(t, h.src, buckets)
	defer icetable.Close(cat)
	res, err := icetable.Compact(ctx, cat, h.src, icetable.CompactOptions{ClosedBefore: time.Now()})
	if err != nil || res.Partitions == 0 {
		t.Fatalf("compaction: %+v, %v; want partitions rewritten", res, err)
	}
	schedAwaitTicks(t, c, time.UnixMilli(lateEv.Timestamp))
	schedAwaitTicks(t, c, time.UnixMilli(lateEv.Timestamp))
	schedCheckJobs(t, schedJobs(t, c), []time.Time{w1, w2, w3, w1, w2}, window)
	recs, err := c.windowRecords(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []time.Time{w1, w2, w3} {
		if in := recs[w.Unix()].Input; inputKind(in) != "table-seq" {
			t.Errorf("window %s was run with input %q, not told by the table", w.Format(time.TimeOnly), in)
		}
	}
}

// schedEventsTable opens the catalog of a file lake, creating its events
// table if need be; the caller closes it.
func schedEventsTable(t *testing.T, src lake.Store, buckets int) catalog.Catalog {
	t.Helper()
	uri, err := icetable.DefaultCatalogURI(src.URI())
	if err != nil {
		t.Fatal(err)
	}
	cat, err := icetable.OpenCatalog(context.Background(), uri, icetable.CatalogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := icetable.EnsureEvents(context.Background(), cat, src, buckets); err != nil {
		t.Fatal(err)
	}
	return cat
}

// schedUserEvents returns the clicks of one user in [from, until): think
// times mostly under the 30 s session timeout, some over it (exits), and a
// few ties (same millisecond, another page).
func schedUserEvents(r *mrand.Rand, user string, from, until time.Time) []event.Event {
	urls := []string{"/home", "/search", "/p/1", "/p/2", "/p/3", "/cart", "/checkout"}
	countries := []string{"US", "DE", "FR", "JP", event.UnknownCountry}
	country := countries[r.IntN(len(countries))]
	ts := from.UnixMilli() + r.Int64N(20_000)
	var out []event.Event
	for ts < until.UnixMilli() {
		c := country
		if r.IntN(10) == 0 { // a user seen from another country now and then
			c = countries[r.IntN(len(countries))]
		}
		out = append(out, event.Event{UserID: user, Timestamp: ts, URL: urls[r.IntN(len(urls))], Country: c, City: "Springfield", UserAgent: "test"})
		switch p := r.IntN(100); {
		case p < 5: // a tie
		case p < 80:
			ts += 1 + int64(r.ExpFloat64()*6000)
		default:
			ts += 20_000 + r.Int64N(30_000) // around the session timeout
		}
	}
	return out
}

func schedEvent(user string, ts time.Time, url, country string) event.Event {
	return event.Event{UserID: user, Timestamp: ts.UnixMilli(), URL: url, Country: country, City: "Springfield", UserAgent: "test"}
}

// schedIngest appends events to an NDJSON file and ingests the file as
// source id, the way `clickstream ingest --from-file F --source-id id`
// does: a re-run resumes after the lines already committed. It returns the
// events as ingest parsed them.
func schedIngest(t *testing.T, store lake.Store, file, source string, events []event.Event) []event.Event {
	t.Helper()
	var buf bytes.Buffer
	parsed := make([]event.Event, 0, len(events))
	for _, e := range events {
		line := event.Encode(e)
		p, err := event.Parse(line)
		if err != nil {
			t.Fatalf("encoded event does not parse: %v: %s", err, line)
		}
		parsed = append(parsed, p)
		buf.Write(line)
		buf.WriteByte('\n')
	}
	f, err := os.OpenFile(file, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	cfg := ingest.NewConfig()
	cfg.FromFile, cfg.SourceID, cfg.Lake = file, source, store.URI()
	cfg.S3 = laketest.S3Options()
	sum, err := ingest.Ingest(context.Background(), cfg, obs.Runtime{Logger: testLogger()})
	if err != nil {
		t.Fatalf("ingest %s: %v", source, err)
	}
	if sum.Accepted != int64(len(events)) || sum.Rejected != 0 || sum.Consumed != int64(len(events)) {
		t.Fatalf("ingest %s: %s; want %d accepted", source, sum, len(events))
	}
	return parsed
}

func schedWindowState(t *testing.T, c *Coordinator, from time.Time) string {
	t.Helper()
	recs, err := c.windowRecords(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rec := recs[from.Unix()]; rec != nil {
		return rec.State
	}
	return ""
}

// schedAwaitTicks waits until the scheduler has run a whole tick after
// the call, and checks the watermark that tick saw. Every tick sets the
// lag gauge to its start time minus the watermark, a new value each time:
// the tick that set the second new value started after the one that set
// the first had ended, and that one started after this call.
func schedAwaitTicks(t *testing.T, c *Coordinator, wantWatermark time.Time) {
	t.Helper()
	lag := func() float64 {
		var m dto.Metric
		if err := c.metrics.scheduleLag.Write(&m); err != nil {
			t.Fatal(err)
		}
		return m.GetGauge().GetValue()
	}
	last, changes := lag(), 0
	waitUntil(t, "two scheduler ticks", 10*time.Second, func() bool {
		if v := lag(); v != last {
			last, changes = v, changes+1
		}
		return changes >= 2
	})
	// lag = tick start - watermark, and the tick started less than a few
	// intervals ago: the watermark is now - lag, give or take that.
	wm := time.Now().Add(-time.Duration(last * float64(time.Second)))
	if d := wm.Sub(wantWatermark); d < -time.Second || d > 5*time.Second {
		t.Fatalf("the scheduler's watermark is about %s, want %s (the lowest source watermark)",
			wm.Format(time.RFC3339Nano), wantWatermark.Format(time.RFC3339Nano))
	}
	// The same tick set the watermark gauge to the watermark itself.
	var m dto.Metric
	if err := c.metrics.scheduleWatermark.Write(&m); err != nil {
		t.Fatal(err)
	}
	if got, want := m.GetGauge().GetValue(), float64(wantWatermark.UnixMilli())/1000; got != want {
		t.Fatalf("watermark gauge = %v, want %v (%s)", got, want, wantWatermark.Format(time.RFC3339Nano))
	}
}

// schedJobs lists every job in submission order.
func schedJobs(t *testing.T, c *Coordinator) []*pb.Job {
	t.Helper()
	resp, err := c.ListJobs(context.Background(), &pb.ListJobsRequest{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	jobs := resp.GetJobs()
	slices.SortFunc(jobs, func(a, b *pb.Job) int { return a.GetCreated().AsTime().Compare(b.GetCreated().AsTime()) })
	return jobs
}

// schedCheckJobs checks that the jobs are, in submission order, one per
// window of want, each succeeded and indexed, each submitted after the
// previous one finished.
func schedCheckJobs(t *testing.T, jobs []*pb.Job, want []time.Time, window time.Duration) {
	t.Helper()
	var got []string
	for _, j := range jobs {
		got = append(got, j.GetSpec().GetFrom().AsTime().UTC().Format("15:04:05"))
	}
	var wantS []string
	for _, w := range want {
		wantS = append(wantS, w.Format("15:04:05"))
	}
	if !slices.Equal(got, wantS) {
		t.Fatalf("jobs by submission, by window start: %v, want %v", got, wantS)
	}
	for i, j := range jobs {
		if j.GetState() != pb.JobState_JOB_STATE_SUCCEEDED || j.GetIndexerStatus() != indexOK {
			t.Errorf("job %s (window %s): %s, indexer %q, error %q", j.GetId(), got[i], StateName(j.GetState()), j.GetIndexerStatus(), j.GetError())
		}
		if d := j.GetSpec().GetTo().AsTime().Sub(j.GetSpec().GetFrom().AsTime()); d != window {
			t.Errorf("job %s: window length %v", j.GetId(), d)
		}
		if i > 0 && j.GetCreated().AsTime().Before(jobs[i-1].GetFinished().AsTime()) {
			t.Errorf("job %s (window %s) was submitted at %s, before job %s finished at %s", j.GetId(), got[i],
				j.GetCreated().AsTime().Format(time.RFC3339Nano), jobs[i-1].GetId(), jobs[i-1].GetFinished().AsTime().Format(time.RFC3339Nano))
		}
	}
}

// schedDoc is an indexed document, as read back from Elasticsearch.
type schedDoc struct {
	schema.Row
	Job string `json:"job"`
}

type schedDocKey struct {
	window       int64 // window start, epoch ms
	url, country string
}

// schedCheckES reads every document of the alias and compares it with the
// reference over events for each window of windows: the same keys, equal
// counts, times within 1e-9 relative; one document per result row, each
// from the window's latest job. It returns the documents.
func schedCheckES(t *testing.T, esBase, alias string, c *Coordinator, s Schedule, events []event.Event, windows []time.Time, timeout, window time.Duration) map[schedDocKey]schedDoc {
	t.Helper()
	ctx := context.Background()
	schedES(t, http.MethodPost, esBase+"/"+alias+"/_refresh", nil, nil, 200)
	var resp struct {
		Hits struct {
			Total struct {
				Value int64 `json:"value"`
			} `json:"total"`
			Hits []struct {
				ID     string   `json:"_id"`
				Source schedDoc `json:"_source"`
			} `json:"hits"`
		} `json:"hits"`
	}
	schedES(t, http.MethodPost, esBase+"/"+alias+"/_search",
		map[string]any{"size": 10000, "track_total_hits": true, "query": map[string]any{"match_all": map[string]any{}}}, &resp, 200)
	if int64(len(resp.Hits.Hits)) != resp.Hits.Total.Value {
		t.Fatalf("search returned %d of %d documents", len(resp.Hits.Hits), resp.Hits.Total.Value)
	}
	docs := map[schedDocKey]schedDoc{}
	perWindow := map[int64]int{}
	for _, h := range resp.Hits.Hits {
		d := h.Source
		k := schedDocKey{d.WindowStart.UnixMilli(), d.URL, d.Country}
		if _, dup := docs[k]; dup {
			t.Errorf("duplicate document for %+v", k)
		}
		if want := indexer.DocID(d.WindowStart, d.WindowEnd, d.URL, d.Country); h.ID != want {
			t.Errorf("document %+v has id %s, want %s", k, h.ID, want)
		}
		docs[k] = d
		perWindow[k.window]++
	}
	recs, err := c.windowRecords(ctx)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, from := range windows {
		to := from.Add(window)
		// The committed result of the window: as many rows as documents,
		// and the documents come from its job.
		out, err := lake.Open(ctx, s.WindowOut(from), laketest.S3Options())
		if err != nil {
			t.Fatal(err)
		}
		rows, meta, err := results.ReadResult(ctx, out)
		if err != nil {
			t.Fatalf("window %s: %v", from.Format(time.RFC3339), err)
		}
		if perWindow[from.UnixMilli()] != len(rows) {
			t.Errorf("window %s: %d documents, %d result rows", from.Format(time.RFC3339), perWindow[from.UnixMilli()], len(rows))
		}
		want := aggtest.Reference(events, from, to, timeout)
		if len(want) != len(rows) {
			t.Errorf("window %s: %d result rows, reference has %d keys", from.Format(time.RFC3339), len(rows), len(want))
		}
		for k, w := range want {
			d, ok := docs[schedDocKey{from.UnixMilli(), k.URL, k.Country}]
			if !ok {
				t.Errorf("window %s: no document for %q/%q (reference %+v)", from.Format(time.RFC3339), k.URL, k.Country, w)
				continue
			}
			if msg := schedCompare(d, w, from, to); msg != "" {
				t.Errorf("window %s, %q/%q: %s", from.Format(time.RFC3339), k.URL, k.Country, msg)
			}
			if d.Job != meta.Job {
				t.Errorf("window %s, %q/%q: document of job %s, the result is job %s's", from.Format(time.RFC3339), k.URL, k.Country, d.Job, meta.Job)
			}
			if d.Revision != meta.Revision || d.Final != meta.Final || d.Watermark == nil || meta.Watermark == nil || !d.Watermark.Equal(*meta.Watermark) {
				t.Errorf("window %s, %q/%q: document revision %d, final %v, watermark %v; the result's %d, %v, %v",
					from.Format(time.RFC3339), k.URL, k.Country, d.Revision, d.Final, d.Watermark, meta.Revision, meta.Final, meta.Watermark)
			}
		}
		// Each run of the window is a job, and the next revision; the result
		// is final unless the window is provisional.
		if rec := recs[from.Unix()]; rec == nil || int64(rec.Runs) != meta.Revision || rec.Provisional == meta.Final {
			t.Errorf("window %s: record %+v, result revision %d, final %v", from.Format(time.RFC3339), rec, meta.Revision, meta.Final)
		}
		total += len(want)
	}
	if len(docs) != total {
		for k := range docs {
			if !slices.ContainsFunc(windows, func(w time.Time) bool { return w.UnixMilli() == k.window }) {
				t.Errorf("document of an unexpected window: %+v", k)
			}
		}
		t.Fatalf("%d documents in %s, want %d", len(docs), alias, total)
	}
	return docs
}

func schedCompare(d schedDoc, w *aggtest.Row, from, to time.Time) string {
	return w.Diff(d.Row, from, to)
}

// scheduleESURL is the local stack's Elasticsearch: the test skips under
// -short and fails without it.
func scheduleESURL(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: needs Elasticsearch (make dev-up)")
	}
	u := os.Getenv(indexer.EnvURL)
	if strings.TrimSpace(u) == "" {
		t.Fatalf("$%s is not set: start the local stack with `make dev-up` and source its env file "+
			"(set -a; . ~/.local/state/clickstream/env; set +a), or run `make test`; go test -short skips this test", indexer.EnvURL)
	}
	return strings.TrimSuffix(strings.TrimSpace(strings.Split(u, ",")[0]), "/")
}

func schedRandHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// schedES sends a request to Elasticsearch and decodes the response into
// out (if not nil); the status must be one of ok.
func schedES(t *testing.T, method, url string, body, out any, ok ...int) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	if !slices.Contains(ok, resp.StatusCode) {
		t.Fatalf("%s %s: status %d: %s", method, url, resp.StatusCode, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: decoding %s: %v", method, url, data, err)
		}
	}
}

// TestSubmitWindowOnce checks that a window's job and the window's record
// are written together, and only over the record the scheduler read: a
// scheduler holding a stale record (a leader that lost its lease, or read
// before another one submitted) submits nothing, and of two schedulers
// submitting the same window at once exactly one job results.
func TestSubmitWindowOnce(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, 4, 0, 0)
	c := h.coordinator(nil) // no schedule: the test drives submitWindow
	s := Schedule{Out: "file://" + filepath.ToSlash(t.TempDir()), Format: "ndjson", Window: time.Minute}
	from := time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)
	fresh := func() *windowRecord {
		recs, err := c.windowRecords(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if r := recs[from.Unix()]; r != nil {
			return r
		}
		return &windowRecord{From: from, To: from.Add(time.Minute)}
	}

	// Read, then someone else records the window: the stale read submits
	// nothing and leaves the record alone.
	stale := fresh()
	if err := c.putWindow(ctx, &windowRecord{From: from, To: from.Add(time.Minute), State: windowDone, Input: "files=1,events=1"}); err != nil {
		t.Fatal(err)
	}
	if err := c.submitWindow(ctx, s, stale, "files=2,events=5", from, true); err != nil {
		t.Fatal(err)
	}
	if jobs := schedJobs(t, c); len(jobs) != 0 {
		t.Fatalf("a stale window record submitted %d jobs", len(jobs))
	}
	if got := fresh(); got.State != windowDone || got.Input != "files=1,events=1" {
		t.Fatalf("a stale submission changed the window record to %+v", got)
	}

	// Two schedulers with the same, current read at once: one job, and the
	// window names it.
	a, b := fresh(), fresh()
	errs := make(chan error, 2)
	for _, r := range []*windowRecord{a, b} {
		go func() { errs <- c.submitWindow(ctx, s, r, "files=2,events=5", from, true) }()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	jobs := schedJobs(t, c)
	if len(jobs) != 1 {
		t.Fatalf("two concurrent submissions of one window made %d jobs, want 1", len(jobs))
	}
	rec := fresh()
	if rec.State != windowRunning || rec.Job != jobs[0].GetId() || rec.Input != "files=2,events=5" || rec.Runs != 1 {
		t.Fatalf("window record %+v after submitting job %s", rec, jobs[0].GetId())
	}
	if got, want := jobs[0].GetSpec().GetOutUri(), s.WindowOut(from); got != want {
		t.Fatalf("job writes to %s, want %s", got, want)
	}
}

// TestScheduleRetriesFailedWindow: a window whose job keeps failing is
// tried scheduleMaxFailures times in a row, then left alone for
// RetryFailed, then run again — and once the failure has gone, done.
func TestScheduleRetriesFailedWindow(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, 2, 20, 300) // events over [tFrom, tTo): one 3 h window
	var failing atomic.Bool
	failing.Store(true)
	h.worker("w1", 2, func(ctx context.Context, req *pb.RunTaskRequest) (*pb.RunTaskResponse, error) {
		if failing.Load() {
			return nil, status.Error(codes.Internal, "injected failure")
		}
		return computeTask(ctx, req)
	})
	const retry = 2 * time.Second
	sched := Schedule{
		Enabled: true, Window: 3 * time.Hour, Start: tFrom,
		Out:      "file://" + filepath.ToSlash(t.TempDir()),
		Interval: 50 * time.Millisecond, IdleSource: time.Millisecond, Format: "ndjson",
		RetryFailed: retry,
	}
	c := h.coordinator(func(cfg *Config) {
		cfg.SessionTimeout = time.Minute
		cfg.Schedule = sched
	})
	window := func() *windowRecord {
		recs, err := c.windowRecords(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if r := recs[tFrom.Unix()]; r != nil {
			return r
		}
		return &windowRecord{}
	}
	waitUntil(t, "three failures of the window", time.Minute, func() bool {
		r := window()
		return r.State == windowFailed && r.Failures >= scheduleMaxFailures
	})
	failed := window()
	if failed.Runs != scheduleMaxFailures || failed.Failures != scheduleMaxFailures {
		t.Fatalf("after the quick retries: %d runs, %d failures in a row, want %d and %d",
			failed.Runs, failed.Failures, scheduleMaxFailures, scheduleMaxFailures)
	}
	failing.Store(false)
	waitUntil(t, "the window done", time.Minute, func() bool { return window().State == windowDone })
	done := window()
	if done.Runs != scheduleMaxFailures+1 || done.Failures != 0 {
		t.Fatalf("done after %d runs with %d failures in a row, want %d and 0", done.Runs, done.Failures, scheduleMaxFailures+1)
	}
	var jobs []*pb.Job // of the window
	for _, j := range schedJobs(t, c) {
		if j.GetSpec().GetFrom().AsTime().Equal(tFrom) {
			jobs = append(jobs, j)
		}
	}
	if len(jobs) != scheduleMaxFailures+1 {
		t.Fatalf("%d jobs of the window, want %d", len(jobs), scheduleMaxFailures+1)
	}
	for i, j := range jobs {
		want := pb.JobState_JOB_STATE_FAILED
		if i == len(jobs)-1 {
			want = pb.JobState_JOB_STATE_SUCCEEDED
		}
		if j.GetState() != want {
			t.Errorf("job %d: %v, want %v", i, j.GetState(), want)
		}
	}
	if retried := jobs[len(jobs)-1].GetCreated().AsTime(); retried.Before(failed.Updated.Add(retry)) {
		t.Errorf("retried at %v, less than %v after the third failure (%v)", retried, retry, failed.Updated)
	}
	var m dto.Metric
	if err := c.metrics.scheduleReruns.Write(&m); err != nil || m.GetCounter().GetValue() != 0 {
		t.Errorf("reruns for late data: %v (%v), want 0: retries of a failed window are not reruns", m.GetCounter().GetValue(), err)
	}
}

func TestRetryDue(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	s := Schedule{RetryFailed: 15 * time.Minute}
	failed := func(failures int, ago time.Duration, invalid bool) *windowRecord {
		return &windowRecord{State: windowFailed, Failures: failures, Updated: now.Add(-ago), Invalid: invalid}
	}
	for _, tc := range []struct {
		name string
		rec  *windowRecord
		s    Schedule
		want bool
	}{
		{"due", failed(scheduleMaxFailures, 15*time.Minute, false), s, true},
		{"not yet", failed(scheduleMaxFailures, 14*time.Minute, false), s, false},
		{"failed again: twice the wait", failed(scheduleMaxFailures+1, 29*time.Minute, false), s, false},
		{"failed again: waited twice", failed(scheduleMaxFailures+1, 30*time.Minute, false), s, true},
		{"failed 4 more times", failed(scheduleMaxFailures+4, 3*time.Hour, false), s, false},
		{"failed 4 more times: waited 16x", failed(scheduleMaxFailures+4, 4*time.Hour, false), s, true},
		{"failing for ever: a day at most", failed(scheduleMaxFailures+60, 24*time.Hour, false), s, true},
		{"invalid job", failed(scheduleMaxFailures, time.Hour, true), s, false},
		{"retries off", failed(scheduleMaxFailures, time.Hour, false), Schedule{}, false},
		{"done", &windowRecord{State: windowDone, Updated: now.Add(-time.Hour)}, s, false},
		{"running", &windowRecord{State: windowRunning, Failures: scheduleMaxFailures, Updated: now.Add(-time.Hour)}, s, false},
	} {
		if got := retryDue(tc.rec, tc.s, now); got != tc.want {
			t.Errorf("%s: retryDue = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestAwaitWindowJobGone: a running window whose job record no longer
// exists (expired under --job-retention while no scheduler watched) is
// marked failed with its input cleared, so the next tick runs it again.
func TestAwaitWindowJobGone(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, 2, 0, 0)
	c := h.coordinator(nil)
	s := Schedule{Out: "file://" + filepath.ToSlash(t.TempDir()), Format: "ndjson", Window: time.Hour}
	rec := &windowRecord{From: tFrom, To: tFrom.Add(time.Hour), Job: "20260101-000000-deadbeef",
		State: windowRunning, Input: "files=1,events=10", Runs: 1}
	if err := c.putWindow(ctx, rec); err != nil {
		t.Fatal(err)
	}
	changed, err := c.awaitWindow(ctx, s, rec)
	if err != nil || !changed {
		t.Fatalf("awaitWindow: changed %v, err %v", changed, err)
	}
	recs, err := c.windowRecords(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := recs[tFrom.Unix()]
	if got == nil || got.State != windowFailed || got.Input != "" || !strings.Contains(got.Error, "job record gone") {
		t.Fatalf("window record %+v, want failed with its input cleared", got)
	}
}

// TestPutWindowStale: a scheduler writing back a window record it read
// before another one moved the window on (a new leader submitted the next
// job) leaves the newer record alone.
func TestPutWindowStale(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, 2, 0, 0)
	c := h.coordinator(nil)
	first := &windowRecord{From: tFrom, To: tFrom.Add(time.Hour), Job: "20260101-000000-00000001", State: windowRunning, Input: "in", Runs: 1}
	if err := c.putWindow(ctx, first); err != nil {
		t.Fatal(err)
	}
	stale := *first // read by the old leader
	newer := *first // the new leader's: the job failed, the next one runs
	newer.Job, newer.Runs = "20260101-000000-00000002", 2
	if err := c.putWindow(ctx, &newer); err != nil {
		t.Fatal(err)
	}
	stale.State, stale.Failures, stale.Input = windowFailed, 1, ""
	if err := c.putWindow(ctx, &stale); err != nil {
		t.Fatal(err)
	}
	recs, err := c.windowRecords(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := recs[tFrom.Unix()]; got.Job != newer.Job || got.State != windowRunning || got.Runs != 2 {
		t.Fatalf("window record %+v: a stale write replaced the newer one", got)
	}
}

// inputFingerprint is the window-by-window definition that windowInputs
// computes in one pass: the files FilesFor selects for [from, to) and
// their events.
func inputFingerprint(sn *lake.Snapshot, from, to time.Time) (string, int64) {
	var files, events int64
	for _, fs := range sn.FilesFor(from, to) {
		for _, f := range fs {
			files++
			events += f.Events
		}
	}
	return fmt.Sprintf("files=%d,events=%d", files, events), events
}

// TestWindowInputs checks the one-pass fingerprints against the definition
// for every window, over random files (hour files, files straddling
// windows, files before the first window and after the last, late files)
// and window lengths shorter and longer than an hour.
func TestWindowInputs(t *testing.T) {
	r := mrand.New(mrand.NewPCG(4, 2))
	base := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	for round := range 40 {
		window := []time.Duration{time.Minute, 10 * time.Minute, time.Hour, 3 * time.Hour}[round%4]
		ahead := time.Duration(r.IntN(3)) * 17 * time.Minute
		sn := &lake.Snapshot{}
		for range 1 + r.IntN(4) {
			m := &lake.Manifest{}
			for range r.IntN(30) {
				lo := base.Add(time.Duration(r.Int64N(int64(30*time.Hour))) - 3*time.Hour).UnixMilli()
				hi := lo + r.Int64N(int64(time.Hour/time.Millisecond))
				m.Files = append(m.Files, lake.DataFile{MinTs: lo, MaxTs: hi, Events: 1 + r.Int64N(1000)})
			}
			sn.Manifests = append(sn.Manifests, m)
		}
		first := base.Add(time.Duration(r.IntN(4)) * time.Hour).Truncate(window)
		until := base.Add(20 * time.Hour)
		// Files exactly on the edges of window 2 and its look-ahead.
		w2 := first.Add(2 * window).UnixMilli()
		w2end := w2 + (window + ahead).Milliseconds()
		sn.Manifests = append(sn.Manifests, &lake.Manifest{Files: []lake.DataFile{
			{MinTs: w2 - 5000, MaxTs: w2, Events: 1},        // ends at its first millisecond
			{MinTs: w2 - 5000, MaxTs: w2 - 1, Events: 2},    // ends just before it
			{MinTs: w2end, MaxTs: w2end + 5000, Events: 4},  // starts where its look-ahead ends
			{MinTs: w2end - 1, MaxTs: w2end + 1, Events: 8}, // starts in its last millisecond
		}})
		in := newWindowInputs(sn, first, window, ahead, until)
		for from := first; !from.After(until); from = from.Add(window) {
			want, wantEvents := inputFingerprint(sn, from, from.Add(window+ahead))
			got, gotEvents := in.at(from)
			if got != want || gotEvents != wantEvents {
				t.Fatalf("round %d, window %v at %v (look-ahead %v): %s (%d events), want %s (%d)",
					round, window, from, ahead, got, gotEvents, want, wantEvents)
			}
		}
	}
}
