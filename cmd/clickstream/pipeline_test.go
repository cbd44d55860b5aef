package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dataco/clickstream/internal/aggregate/aggtest"
	"github.com/dataco/clickstream/internal/bots"
	"github.com/dataco/clickstream/internal/event"
	"github.com/dataco/clickstream/internal/icetable"
	"github.com/dataco/clickstream/internal/icetable/icetabletest"
	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/lake/laketest"
	"github.com/dataco/clickstream/internal/results"
	"github.com/dataco/clickstream/internal/schema"
)

// TestPipelineCLIMatchesReference is the CLI acceptance test:
// `clickstream gen` output plus hand-written edge cases, through
// `clickstream ingest --from-file` and `clickstream run` (NDJSON and CSV),
// gives exactly the rows of an independent reference computed here from
// the lines event.Parse accepts.
func TestPipelineCLIMatchesReference(t *testing.T) {
	isolateCommands(t)

	dir := t.TempDir()
	lakeURI := "file://" + filepath.ToSlash(filepath.Join(dir, "lake"))
	from := time.Date(2026, 1, 5, 1, 0, 0, 0, time.UTC) // gen's data spans 00:00 to about 03:45
	to := time.Date(2026, 1, 5, 2, 30, 0, 0, time.UTC)
	const timeout = 30 * time.Minute

	// 1. Generated data, then the edge cases.
	start := time.Now()
	genOut := pipeRun(t, "gen", "--seed", "21", "--events", "50000", "--invalid-ratio", "0.02")
	if n := bytes.Count(genOut, []byte("\n")); n != 50000 {
		t.Fatalf("gen wrote %d lines, want 50000", n)
	}
	edge, want := pipeEdgeCases(from)
	input := append(slices.Clip(genOut), edge...)
	file := filepath.Join(dir, "events.ndjson")
	if err := os.WriteFile(file, input, 0o644); err != nil {
		t.Fatal(err)
	}

	// What ingest must make of each line, by event.Parse: the edge-case
	// users must be new to the generated data, so that their rows are
	// exactly the hand-computed ones.
	var valid []event.Event
	accepted, rejected := 0, 0
	classifier := bots.New(nil) // ingest's verdicts on user agents
	for _, line := range pipeLines(input) {
		e, err := event.Parse(line)
		if err != nil {
			rejected++
			continue
		}
		accepted++
		e.IsBot = classifier.IsBot(e.UserAgent)
		valid = append(valid, e)
	}
	edgeUsers := map[string]bool{}
	for _, e := range mustParseLines(t, edge) {
		edgeUsers[e.UserID] = true
	}
	for _, e := range mustParseLines(t, genOut) {
		if edgeUsers[e.UserID] {
			t.Fatalf("generated data has edge-case user %q", e.UserID)
		}
	}
	if rejected < 500 || accepted < 45000 {
		t.Fatalf("event.Parse: %d accepted, %d rejected: not the generated mix", accepted, rejected)
	}
	// The window cuts through the data: events before it, in it, in its
	// look-ahead and after that.
	var pre, in, ahead, after int
	for _, e := range valid {
		switch ts := time.UnixMilli(e.Timestamp); {
		case ts.Before(from):
			pre++
		case ts.Before(to):
			in++
		case ts.Before(to.Add(timeout)):
			ahead++
		default:
			after++
		}
	}
	if pre < 1000 || in < 1000 || ahead < 1000 || after < 1000 {
		t.Fatalf("valid events before/in/look-ahead/after the window: %d/%d/%d/%d", pre, in, ahead, after)
	}
	t.Logf("generated %d lines + %d edge-case lines in %v; valid events before/in/look-ahead/after the window: %d/%d/%d/%d",
		50000, len(pipeLines(edge)), time.Since(start).Round(time.Millisecond), pre, in, ahead, after)

	// 2. ingest --from-file: the summary counts are event.Parse's.
	start = time.Now()
	out := pipeRun(t, "ingest", "--from-file", file, "--lake", lakeURI, "--buckets", "8", "--flush-records", "9000")
	m := regexp.MustCompile(`ingest: accepted=(\d+) rejected=(\d+) consumed=(\d+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("ingest summary not found in %q", out)
	}
	gotAcc, _ := strconv.Atoi(string(m[1]))
	gotRej, _ := strconv.Atoi(string(m[2]))
	gotCons, _ := strconv.Atoi(string(m[3]))
	if gotAcc != accepted || gotRej != rejected || gotCons != accepted+rejected {
		t.Fatalf("ingest: accepted=%d rejected=%d consumed=%d; event.Parse: %d accepted, %d rejected", gotAcc, gotRej, gotCons, accepted, rejected)
	}
	t.Logf("ingest: %d accepted, %d rejected in %v", gotAcc, gotRej, time.Since(start).Round(time.Millisecond))

	// 3. The independent reference agrees with the hand-computed edge rows.
	ref := aggtest.Reference(valid, from, to, timeout)
	for k, w := range want {
		r, ok := ref[k]
		switch {
		case w == nil && ok:
			t.Errorf("reference counts %q/%q, which is outside the window", k.URL, k.Country)
		case w != nil && !ok:
			t.Errorf("reference lacks %q/%q", k.URL, k.Country)
		case w != nil && (r.Clicks != w.Clicks || int64(len(r.Users)) != w.nUsers || r.Samples != w.Samples || r.Ms != w.Ms):
			t.Errorf("reference %q/%q: clicks %d users %d samples %d ms %d; by hand %d %d %d %d",
				k.URL, k.Country, r.Clicks, len(r.Users), r.Samples, r.Ms, w.Clicks, w.nUsers, w.Samples, w.Ms)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// 4. clickstream run, NDJSON then CSV, each against the reference.
	var ndjson []schema.Row
	for _, format := range []string{"ndjson", "csv"} {
		start = time.Now()
		outURI := "file://" + filepath.ToSlash(filepath.Join(dir, "out-"+format))
		summary := pipeRun(t, "run", "--lake", lakeURI, "--from", from.Format(time.RFC3339), "--to", to.Format(time.RFC3339),
			"--out", outURI, "--workers", "3", "--session-timeout", "30m", "--format", format)
		if !bytes.Contains(summary, []byte("succeeded")) {
			t.Errorf("run summary:\n%s", summary)
		}
		store, err := lake.Open(context.Background(), outURI, laketest.S3Options())
		if err != nil {
			t.Fatal(err)
		}
		rows, meta, err := results.ReadResult(context.Background(), store)
		if err != nil {
			t.Fatal(err)
		}
		if string(meta.Format) != format || meta.Rows != int64(len(rows)) || meta.SessionTimeout != timeout.String() {
			t.Errorf("%s result meta: format %s, rows %d of %d, session timeout %s", format, meta.Format, meta.Rows, len(rows), meta.SessionTimeout)
		}
		pipeCompare(t, format, rows, ref, from, to)
		var events int64
		for _, r := range ref {
			events += r.Clicks + r.BotClicks
		}
		if meta.EventsInWindow != events || meta.EventsRead < events+int64(ahead) {
			t.Errorf("%s result: %d events in the window and %d read; reference %d in the window, %d in the look-ahead",
				format, meta.EventsInWindow, meta.EventsRead, events, ahead)
		}
		if format == "ndjson" {
			ndjson = rows
		} else if !slices.EqualFunc(ndjson, rows, schema.EqualMetrics) {
			t.Errorf("the CSV result's rows differ from the NDJSON result's")
		}
		t.Logf("run --format %s: %d rows, %d events in the window, in %v", format, len(rows), events, time.Since(start).Round(time.Millisecond))
	}

	// 5. The lake's Iceberg tables: the events ingest committed, and the
	// window's result once, from its latest run (the CSV one).
	lakeStore, err := lake.Open(context.Background(), lakeURI, lake.S3Options{})
	if err != nil {
		t.Fatal(err)
	}
	catURI, err := icetable.DefaultCatalogURI(lakeStore.URI())
	if err != nil {
		t.Fatal(err)
	}
	cat, err := icetable.OpenCatalog(context.Background(), catURI, icetable.CatalogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer icetable.Close(cat)
	events, err := cat.LoadTable(context.Background(), icetable.Ident(icetable.EventsTable))
	if err != nil {
		t.Fatal(err)
	}
	if n := events.CurrentSnapshot().Summary.Properties["total-records"]; n != strconv.Itoa(accepted) {
		t.Errorf("the events table holds %s records, ingest accepted %d", n, accepted)
	}
	agg, err := icetable.ReadAggregates(context.Background(), cat)
	if err != nil {
		t.Fatal(err)
	}
	tableRows := make([]schema.Row, len(agg))
	jobs := map[string]bool{}
	for i, r := range agg {
		tableRows[i], jobs[r.Job] = r.Row, true
		// The job planned from the events table: its rows name the snapshot.
		if r.EventsSnapshot == 0 || events.SnapshotByID(r.EventsSnapshot) == nil {
			t.Fatalf("aggregates row %+v: events snapshot %d is not one of the events table's", r.Row, r.EventsSnapshot)
		}
	}
	if len(jobs) != 1 {
		t.Errorf("the aggregates table holds the window from jobs %v, want one job's", jobs)
	}
	pipeCompare(t, "aggregates table", tableRows, ref, from, to)

	// 6. Outside readers see the same result rows.
	pyiceberg, duckdb := icetabletest.Read(t, catURI, icetable.Namespace+"."+icetable.AggregatesTable,
		"url", "window_start", "country", "clicks", "unique_users", "total_time_spent_s")
	urls := map[string]bool{}
	for _, r := range tableRows {
		urls[r.URL] = true
	}
	for name, v := range map[string]icetabletest.View{"pyiceberg": pyiceberg, "duckdb": duckdb} {
		if v.Rows != int64(len(tableRows)) || v.Distinct != int64(len(urls)) || v.Min != from.UnixMilli() || v.Max != from.UnixMilli() {
			t.Errorf("%s reads the aggregates table as %+v; want %d rows, %d urls, window_start %d", name, v, len(tableRows), len(urls), from.UnixMilli())
		}
	}
	if pyiceberg.Checksum != duckdb.Checksum {
		t.Errorf("pyiceberg and DuckDB read different aggregates: checksums %d and %d", pyiceberg.Checksum, duckdb.Checksum)
	}
}

// pipeRun runs a clickstream command in this process, as main does, and
// returns its standard output; it fails the test unless it exits 0.
func pipeRun(t *testing.T, args ...string) []byte {
	t.Helper()
	var stdout, stderr lockedBuffer
	if code := run(context.Background(), args, &stdout, &stderr); code != 0 {
		t.Fatalf("clickstream %s: exit %d\n%s", strings.Join(args, " "), code, stderr.Bytes())
	}
	return stdout.Bytes()
}

// lockedBuffer is a bytes.Buffer safe for concurrent writers (loggers).
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

// pipeLines splits input into records the way ingest reads a file: lines
// end with "\n" (a "\r" before it is dropped); the last may lack it.
func pipeLines(input []byte) [][]byte {
	var out [][]byte
	for len(input) > 0 {
		line, rest, found := bytes.Cut(input, []byte("\n"))
		if found {
			line = bytes.TrimSuffix(line, []byte("\r"))
		}
		out = append(out, line)
		input = rest
	}
	return out
}

func mustParseLines(t *testing.T, input []byte) []event.Event {
	t.Helper()
	var out []event.Event
	for _, line := range pipeLines(input) {
		if e, err := event.Parse(line); err == nil {
			out = append(out, e)
		}
	}
	return out
}

type pipeKey = aggtest.Key

// pipeWant is a hand-computed row; nil means "no row".
type pipeWant struct {
	Clicks, nUsers, Samples, Ms int64
}

// pipeEdgeCases returns NDJSON lines covering the edge cases of the
// semantics and of the contract, around the window starting at from
// (01:00Z; the window ends at 02:30Z, the session timeout is 30 min), and
// the rows they must give, computed by hand. Lines are deliberately out of
// time order.
func pipeEdgeCases(from time.Time) ([]byte, map[pipeKey]*pipeWant) {
	at := func(d string) time.Time { // offset from 00:00Z of the day
		dd, err := time.ParseDuration(d)
		if err != nil {
			panic(err)
		}
		return from.Add(-time.Hour).Add(dd)
	}
	z := func(d string) string { return `"` + at(d).Format("2006-01-02T15:04:05.000Z07:00") + `"` }
	ms := func(d string) string { return strconv.FormatInt(at(d).UnixMilli(), 10) }
	const u = "https://edge.example"
	line := func(user, ts, url string, country ...string) string {
		s := `{"user_id":` + user + `,"timestamp":` + ts + `,"url":"` + u + url + `"`
		if len(country) > 0 {
			s += `,"country":` + country[0]
		}
		return s + "}\n"
	}
	var b strings.Builder
	w := func(s ...string) {
		for _, x := range s {
			b.WriteString(x)
		}
	}
	want := map[pipeKey]*pipeWant{}
	row := func(url, country string, clicks, users, samples, ms int64) {
		want[pipeKey{URL: u + url, Country: country}] = &pipeWant{clicks, users, samples, ms}
	}
	none := func(url, country string) { want[pipeKey{URL: u + url, Country: country}] = nil }

	// Ties: one user, one millisecond, three (url, country); ordered by
	// (url, country): a/AT, a/FR, b/DE, each the next's predecessor with
	// a gap of 0; then tie/next 5 s later, the user's last click (exit).
	w(line(`"edge-tie"`, z("1h10m5s"), "/tie/next", `"DE"`),
		line(`"edge-tie"`, z("1h10m"), "/tie/b", `"DE"`),
		line(`"edge-tie"`, `"2026-01-05T01:10:00Z"`, "/tie/a", `"FR"`),
		line(`"edge-tie"`, ms("1h10m"), "/tie/a", `"AT"`))
	row("/tie/a", "AT", 1, 1, 1, 0)
	row("/tie/a", "FR", 1, 1, 1, 0)
	row("/tie/b", "DE", 1, 1, 1, 5000)
	row("/tie/next", "DE", 1, 1, 0, 0)

	// A gap of exactly the session timeout is an exit; 1 ms less is not.
	w(line(`"edge-gap"`, z("2h19m59.999s"), "/gap/end", `"US"`),
		line(`"edge-gap"`, z("1h50m"), "/gap/under", `"US"`),
		line(`"edge-gap"`, z("1h20m"), "/gap/exact", `"US"`))
	row("/gap/exact", "US", 1, 1, 0, 0)
	row("/gap/under", "US", 1, 1, 1, 1_799_999)
	row("/gap/end", "US", 1, 1, 0, 0)

	// Just before from: not counted, and not anyone's successor that counts.
	w(line(`"edge-pre"`, z("1h10s"), "/pre/second", `"FR"`),
		line(`"edge-pre"`, z("59m59.999s"), "/pre/before", `"FR"`),
		line(`"edge-pre"`, z("1h0m"), "/pre/first", `"FR"`))
	none("/pre/before", "FR")
	row("/pre/first", "FR", 1, 1, 1, 10_000)
	row("/pre/second", "FR", 1, 1, 0, 0)

	// Last in-window clicks followed by events after to (look-ahead): at
	// to itself, 5 s after, 30 min - 1 ms after, exactly 30 min after.
	w(line(`"edge-at-to"`, z("2h30m"), "/at-to/at", `"JP"`),
		line(`"edge-at-to"`, z("2h29m59.999s"), "/at-to/last-in", `"JP"`),
		line(`"edge-look"`, z("2h29m50s"), "/look/last", `"JP"`),
		line(`"edge-look"`, z("2h30m5s"), "/look/after", `"JP"`),
		line(`"edge-look-far"`, z("2h59m29.999s"), "/look/far-after", `"JP"`),
		line(`"edge-look-far"`, z("2h29m30s"), "/look/far-last", `"JP"`),
		line(`"edge-look-exit"`, z("2h29m30s"), "/look/exit-last", `"JP"`),
		line(`"edge-look-exit"`, z("2h59m30s"), "/look/exit-after", `"JP"`))
	row("/at-to/last-in", "JP", 1, 1, 1, 1)
	none("/at-to/at", "JP")
	row("/look/last", "JP", 1, 1, 1, 15_000)
	none("/look/after", "JP")
	row("/look/far-last", "JP", 1, 1, 1, 1_799_999)
	none("/look/far-after", "JP")
	row("/look/exit-last", "JP", 1, 1, 0, 0)
	none("/look/exit-after", "JP")

	// Country: blank, missing and null become "unknown" (as does
	// "unknown" itself); surrounding white space is trimmed.
	w(line(`"edge-country"`, z("1h30m3s"), "/country", `" DE "`),
		line(`"edge-country"`, z("1h30m"), "/country", `"   "`),
		line(`"edge-country"`, z("1h30m1s"), "/country"),
		line(`"edge-country"`, z("1h30m2s"), "/country", `null`),
		line(`"edge-country"`, z("1h30m4s"), "/country", `"unknown"`))
	row("/country", "unknown", 4, 1, 3, 3000)
	row("/country", "DE", 1, 1, 1, 1000)
	none("/country", " DE ")

	// Integer user ids are their digits: 42 and "42" are one user, as are
	// -7 and "-7" (so the first clicks have a successor, and /int/shared
	// has one user).
	w(line(`"42"`, z("1h42m30s"), "/int/shared", `"US"`),
		line(`42`, z("1h40m"), "/int/first", `"US"`),
		line(`42`, z("1h42m"), "/int/shared", `"US"`),
		line(`"42"`, z("1h40m10s"), "/int/second", `"US"`),
		line(`"-7"`, z("1h41m20s"), "/int/neg-second", `"US"`),
		line(`-7`, z("1h41m"), "/int/neg-first", `"US"`))
	row("/int/first", "US", 1, 1, 1, 10_000)
	row("/int/second", "US", 1, 1, 1, 110_000)
	row("/int/shared", "US", 2, 1, 1, 30_000)
	row("/int/neg-first", "US", 1, 1, 1, 20_000)
	row("/int/neg-second", "US", 1, 1, 0, 0)

	// Timestamp forms: offsets, epoch milliseconds, lower-case t and z,
	// fractions finer than a millisecond (truncated), one-digit fractions.
	w(line(`"edge-ts"`, `"2026-01-05t01:50:15.1239z"`, "/ts/lower", `"BR"`),
		line(`"edge-ts"`, `"2026-01-05T02:50:00.000+01:00"`, "/ts/plus", `"BR"`),
		line(`"edge-ts"`, ms("1h50m10s"), "/ts/epoch", `"BR"`),
		line(`"edge-ts"`, `"2026-01-04T20:20:05-05:30"`, "/ts/minus", `"BR"`),
		line(`"edge-ts"`, `"2026-01-05T01:50:20.5Z"`, "/ts/frac", `"BR"`))
	row("/ts/plus", "BR", 1, 1, 1, 5000)
	row("/ts/minus", "BR", 1, 1, 1, 5000)
	row("/ts/epoch", "BR", 1, 1, 1, 5123)
	row("/ts/lower", "BR", 1, 1, 1, 5377)
	row("/ts/frac", "BR", 1, 1, 0, 0)

	// The same click twice (one a tie of the other, gap 0), a CRLF line
	// end, white space around the object, an empty line (rejected), and
	// unknown fields.
	dup := line(`"edge-dup"`, z("1h55m"), "/dup", `"GB"`)
	w(dup, "\n", dup,
		strings.TrimSuffix(line(`"edge-crlf"`, z("1h56m"), "/crlf", `"GB"`), "\n")+"\r\n",
		"  "+strings.TrimSuffix(line(`"edge-space"`, z("1h57m"), "/space", `"GB"`), "\n")+" \t\n",
		`{"extra":[1,{"user_id":"nested"}],"user_id":"edge-extra","timestamp":`+z("1h58m")+`,"url":"`+u+`/extra","country":"GB","consent":null}`+"\n")
	row("/dup", "GB", 2, 1, 1, 0)
	row("/crlf", "GB", 1, 1, 0, 0)
	row("/space", "GB", 1, 1, 0, 0)
	row("/extra", "GB", 1, 1, 0, 0)

	// The file's last line without a newline.
	w(strings.TrimSuffix(line(`"edge-last"`, z("1h59m"), "/last-line", `"GB"`), "\n"))
	row("/last-line", "GB", 1, 1, 0, 0)
	return []byte(b.String()), want
}

// pipeCompare checks rows against the reference: the same keys, once
// each, in (url, country) order; equal counts; times within 1e-9 relative.
func pipeCompare(t *testing.T, name string, rows []schema.Row, ref map[pipeKey]*aggtest.Row, from, to time.Time) {
	t.Helper()
	if len(rows) != len(ref) {
		t.Errorf("%s: %d rows, reference %d", name, len(rows), len(ref))
	}
	seen := map[pipeKey]bool{}
	bad := 0
	for i, r := range rows {
		k := pipeKey{URL: r.URL, Country: r.Country}
		if i > 0 && (rows[i-1].URL > r.URL || rows[i-1].URL == r.URL && rows[i-1].Country >= r.Country) {
			t.Errorf("%s: rows out of (url, country) order at %q/%q", name, r.URL, r.Country)
		}
		if seen[k] {
			t.Errorf("%s: duplicate row %q/%q", name, r.URL, r.Country)
		}
		seen[k] = true
		w, ok := ref[k]
		if !ok {
			t.Errorf("%s: row %q/%q not in the reference", name, r.URL, r.Country)
			continue
		}
		if msg := w.Diff(r, from, to); msg != "" {
			if bad++; bad <= 20 {
				t.Errorf("%s: %q/%q: %s", name, r.URL, r.Country, msg)
			}
		}
	}
	for k := range ref {
		if !seen[k] {
			if bad++; bad <= 20 {
				t.Errorf("%s: reference row %q/%q missing", name, k.URL, k.Country)
			}
		}
	}
	if bad > 20 {
		t.Errorf("%s: %d bad rows in all", name, bad)
	}
}
