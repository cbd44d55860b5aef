package indexer

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dataco/clickstream/internal/aggregate"
	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/lake/laketest"
	"github.com/dataco/clickstream/internal/obs"
	"github.com/dataco/clickstream/internal/results"
	"github.com/dataco/clickstream/internal/schema"
)

func TestSetupCreatesIndexAliasAndStrictTemplate(t *testing.T) {
	cfg := testConfig(t)
	ix := newTestIndexer(t, cfg, hooks{})
	ctx := testCtx(t, 2*time.Minute)
	for range 2 { // idempotent
		if err := ix.Setup(ctx); err != nil {
			t.Fatal(err)
		}
		ix.setupDone = false
	}
	got, err := ix.AliasIndices(ctx)
	if err != nil || !slices.Equal(got, []string{cfg.Alias + FirstIndexSuffix}) {
		t.Fatalf("alias points at %v, %v", got, err)
	}
	m := esDo(t, http.MethodGet, "/"+cfg.Alias+FirstIndexSuffix+"/_mapping", nil)
	mp := m[cfg.Alias+FirstIndexSuffix].(map[string]any)["mappings"].(map[string]any)
	props := mp["properties"].(map[string]any)
	url := props["url"].(map[string]any)
	if mp["dynamic"] != "strict" || url["type"] != "keyword" || url["fields"].(map[string]any)["text"].(map[string]any)["type"] != "text" ||
		props["window_start"].(map[string]any)["type"] != "date" || props["avg_time_spent_s"].(map[string]any)["type"] != "double" ||
		props["clicks"].(map[string]any)["type"] != "long" || props["job"].(map[string]any)["type"] != "keyword" {
		t.Errorf("mapping = %v", mp)
	}
	tmpl := esDo(t, http.MethodGet, "/_index_template/"+cfg.Alias, nil)
	if !strings.Contains(jsonString(t, tmpl), `"index_patterns":["`+cfg.Alias+`-*"]`) {
		t.Errorf("template = %s", jsonString(t, tmpl))
	}

	// A concrete index with the alias's name is refused.
	cfg2 := testConfig(t)
	esDo(t, http.MethodPut, "/"+cfg2.Alias, nil)
	t.Cleanup(func() { esDo(t, http.MethodDelete, "/"+cfg2.Alias, nil, 200, 404) })
	ix2 := newTestIndexer(t, cfg2, hooks{})
	if err := ix2.Setup(ctx); !errors.Is(err, ErrAliasIsIndex) {
		t.Errorf("Setup with an index named like the alias: %v", err)
	}
}

func jsonString(t testing.TB, v any) string {
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// Indexing a window again replaces its documents: same ids, same count,
// and rows gone from the new result are deleted; other windows untouched.
func TestIndexResultReplacesWindow(t *testing.T) {
	cfg := testConfig(t)
	ix := newTestIndexer(t, cfg, hooks{})
	ctx := testCtx(t, 4*time.Minute)
	dl := laketest.NewFile(t)
	rows := makeRows(winA, 500)
	want := map[string]bool{}
	for _, r := range rows {
		want[DocID(r.WindowStart, r.WindowEnd, r.URL, r.Country)] = true
	}

	rep1, err := ix.IndexResult(ctx, rows, metaOf("job-1", winA, rows), dl)
	if err != nil {
		t.Fatal(err)
	}
	if rep1.Indexed != 500 || rep1.Rejected != 0 || rep1.Count != 500 || rep1.Stale != 0 || rep1.DeadLetters != "" {
		t.Fatalf("first index: %s (count %d)", rep1, rep1.Count)
	}
	ids1 := windowIDs(t, cfg.Alias, winA)
	if len(ids1) != 500 || !mapsEqual(ids1, want) {
		t.Fatalf("ids after the first index: %d, not the expected DocIDs", len(ids1))
	}
	rowsB := makeRows(winB, 50)
	if _, err := ix.IndexResult(ctx, rowsB, metaOf("job-b", winB, rowsB), dl); err != nil {
		t.Fatal(err)
	}

	// The same window again, from another job: replaced, not duplicated.
	rep2, err := ix.IndexResult(ctx, rows, metaOf("job-2", winA, rows), dl)
	if err != nil {
		t.Fatal(err)
	}
	if rep2.Indexed != 500 || rep2.Count != 500 || rep2.Stale != 0 || rep2.Generation == rep1.Generation {
		t.Fatalf("second index: %s (count %d)", rep2, rep2.Count)
	}
	if ids2 := windowIDs(t, cfg.Alias, winA); !mapsEqual(ids2, ids1) {
		t.Fatal("ids changed after re-indexing the same window")
	}
	anyID := DocID(rows[7].WindowStart, rows[7].WindowEnd, rows[7].URL, rows[7].Country)
	doc := esDo(t, http.MethodGet, "/"+cfg.Alias+"/_doc/"+anyID, nil)["_source"].(map[string]any)
	if doc["job"] != "job-2" || doc["generation"] != rep2.Generation || doc["url"] != rows[7].URL || doc["clicks"].(float64) != float64(rows[7].Clicks) {
		t.Errorf("document %s = %v", anyID, doc)
	}

	// A result with fewer rows (and other numbers): the missing rows'
	// documents are deleted, the others updated.
	rows3 := slices.Clone(rows[:480])
	for i := range rows3 {
		rows3[i].Clicks += 1000
	}
	rep3, err := ix.IndexResult(ctx, rows3, metaOf("job-3", winA, rows3), dl)
	if err != nil {
		t.Fatal(err)
	}
	if rep3.Indexed != 480 || rep3.Stale != 20 || rep3.Count != 480 {
		t.Fatalf("third index: %s (count %d)", rep3, rep3.Count)
	}
	if got, want := windowClicks(t, cfg.Alias, winA), sumClicks(rows3); got != want {
		t.Errorf("clicks of window A = %d, want %d", got, want)
	}
	if got := windowCount(t, cfg.Alias, winB); got != 50 {
		t.Errorf("window B has %d documents after re-indexing A, want 50", got)
	}

	// An empty result empties its window.
	rep4, err := ix.IndexResult(ctx, nil, metaOf("job-4", winA, nil), dl)
	if err != nil || rep4.Stale != 480 || rep4.Count != 0 {
		t.Fatalf("empty result: %s (count %d), %v", rep4, rep4.Count, err)
	}
	if got := windowCount(t, cfg.Alias, winB); got != 50 {
		t.Errorf("window B has %d documents, want 50", got)
	}
}

func mapsEqual(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

// Documents Elasticsearch refuses are dead-lettered with their reason;
// the others land and the count check accounts for the rejected ones.
func TestRejectedDocumentsAreDeadLettered(t *testing.T) {
	for _, store := range []struct {
		name string
		new  func(testing.TB) lake.Store
	}{{"file", laketest.NewFile}, {"s3", laketest.NewS3}} {
		t.Run(store.name, func(t *testing.T) {
			cfg := testConfig(t)
			dl := store.new(t)
			rows := makeRows(winA, 100)
			// A URL over Lucene's 32766-byte term limit: refused by the url
			// keyword field (events may be up to 64 KiB).
			rows[10].URL = "https://huge.example/?q=" + strings.Repeat("a", 40000)
			// A field the strict mapping does not know.
			strictID := DocID(rows[20].WindowStart, rows[20].WindowEnd, rows[20].URL, rows[20].Country)
			// A number JSON cannot carry.
			rows[30].TotalTimeSpentS = math.NaN()
			ix := newTestIndexer(t, cfg, hooks{docBody: func(id string, body []byte) []byte {
				if id == strictID {
					return append(bytes.TrimSuffix(body, []byte("}")), []byte(`,"referrer":"https://evil.example"}`)...)
				}
				return body
			}})
			ctx := testCtx(t, 3*time.Minute)
			meta := metaOf("job-rej", winA, rows)
			rep, err := ix.IndexResult(ctx, rows, meta, dl)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Rejected != 3 || rep.Indexed != 97 || rep.Count != 97 {
				t.Fatalf("report: %s (count %d)", rep, rep.Count)
			}
			key := DeadLetterKey(winA, "job-rej")
			if want := strings.TrimSuffix(dl.URI(), "/") + "/" + key; rep.DeadLetters != want {
				t.Errorf("DeadLetters = %q, want %q", rep.DeadLetters, want)
			}
			data, err := dl.Get(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]Rejection{}
			sc := bufio.NewScanner(bytes.NewReader(data))
			sc.Buffer(nil, 1<<20)
			for sc.Scan() {
				var r Rejection
				if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
					t.Fatalf("dead letter line: %v", err)
				}
				got[r.ID] = r
			}
			idOf := func(i int) string { return DocID(rows[i].WindowStart, rows[i].WindowEnd, rows[i].URL, rows[i].Country) }
			immense, strict, nan := got[idOf(10)], got[strictID], got[idOf(30)]
			if len(got) != 3 {
				t.Fatalf("%d dead letters: %v", len(got), got)
			}
			t.Logf("immense: %d %s: %.150s", immense.Status, immense.ErrorType, immense.ErrorReason)
			t.Logf("strict: %d %s: %.200s", strict.Status, strict.ErrorType, strict.ErrorReason)
			if immense.Status != 400 || !strings.Contains(immense.ErrorReason+immense.CauseReason, "immense term") ||
				!strings.Contains(string(immense.Document), rows[10].URL) || immense.Job != "job-rej" {
				t.Errorf("immense-term dead letter: %d %s %.200s", immense.Status, immense.ErrorType, immense.ErrorReason)
			}
			if strict.Status != 400 || !strings.Contains(strict.ErrorType+strict.ErrorReason, "strict") ||
				!strings.Contains(string(strict.Document), `"referrer"`) {
				t.Errorf("strict-mapping dead letter: %+v", strict)
			}
			if nan.Status != 0 || nan.ErrorType != "client_encoding_error" || !strings.Contains(string(nan.Document), `"NaN"`) {
				t.Errorf("NaN dead letter: %+v", nan)
			}
			if windowCount(t, cfg.Alias, winA) != 97 {
				t.Error("not 97 documents in the window")
			}

			// The same job again with the rows fixed: nothing rejected, and
			// the stale dead letters are gone.
			ix.hooks.docBody = nil // no bulk flush is running between calls
			fixed := makeRows(winA, 100)
			rep, err = ix.IndexResult(ctx, fixed, meta, dl)
			if err != nil || rep.Rejected != 0 || rep.Count != 100 || rep.DeadLetters != "" {
				t.Fatalf("fixed result: %s (count %d), %v", rep, rep.Count, err)
			}
			if _, err := dl.Get(ctx, key); !errors.Is(err, lake.ErrNotExist) {
				t.Errorf("dead letters still there after a clean re-index: %v", err)
			}
		})
	}
}

// Rebuild fills a new index and swaps the alias atomically: a reader
// polling through the alias during swaps always sees exactly one index.
func TestRebuildSwapsAliasAtomically(t *testing.T) {
	cfg := testConfig(t)
	ix := newTestIndexer(t, cfg, hooks{})
	ctx := testCtx(t, 4*time.Minute)
	dl := laketest.NewFile(t)
	v1, v2 := cfg.Alias+FirstIndexSuffix, cfg.Alias+"-v2"
	rows := makeRows(winA, 200)
	if _, err := ix.IndexResult(ctx, rows, metaOf("job-1", winA, rows), dl); err != nil {
		t.Fatal(err)
	}

	doubled := slices.Clone(rows)
	for i := range doubled {
		doubled[i].Clicks *= 2
	}
	rowsB := makeRows(winB, 30)
	prev, err := ix.Rebuild(ctx, v2, func(ctx context.Context, w *Writer) error {
		if w.Index() != v2 {
			t.Errorf("writer index %s, want %s", w.Index(), v2)
		}
		for _, r := range []struct {
			rows []schema.Row
			win  aggregate.Window
		}{{doubled, winA}, {rowsB, winB}} {
			rep, err := w.IndexResult(ctx, r.rows, metaOf("rebuild", r.win, r.rows), dl)
			if err != nil {
				return err
			}
			if rep.Index != v2 || rep.Count != int64(len(r.rows)) {
				t.Errorf("rebuild report %s (count %d)", rep, rep.Count)
			}
		}
		// Not visible through the alias before the swap.
		if got := windowCount(t, cfg.Alias, winB); got != 0 {
			t.Errorf("window B visible through the alias before the swap: %d", got)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(prev, []string{v1}) {
		t.Errorf("previous indices %v, want [%s]", prev, v1)
	}
	if got, _ := ix.AliasIndices(ctx); !slices.Equal(got, []string{v2}) {
		t.Fatalf("alias points at %v, want [%s]", got, v2)
	}
	aliases := esDo(t, http.MethodGet, "/_alias/"+cfg.Alias, nil)
	if w := aliases[v2].(map[string]any)["aliases"].(map[string]any)[cfg.Alias].(map[string]any)["is_write_index"]; w != true {
		t.Errorf("is_write_index = %v", w)
	}
	if got, want := windowClicks(t, cfg.Alias, winA), sumClicks(doubled); got != want {
		t.Errorf("clicks through the alias = %d, want the rebuilt %d", got, want)
	}
	if got, want := windowClicks(t, v1, winA), sumClicks(rows); got != want {
		t.Errorf("old index clicks = %d, want %d (kept as it was)", got, want)
	}

	// New results go through the alias to the new index.
	rowsC := makeRows(winC, 10)
	if _, err := ix.IndexResult(ctx, rowsC, metaOf("job-c", winC, rowsC), dl); err != nil {
		t.Fatal(err)
	}
	if windowCount(t, v2, winC) != 10 || windowCount(t, v1, winC) != 0 {
		t.Error("a result indexed after the swap did not land in the new index only")
	}

	// Errors: an existing index, a name outside the alias's pattern, a
	// failing fill (the alias stays).
	if _, err := ix.Rebuild(ctx, v2, func(context.Context, *Writer) error { return nil }); !errors.Is(err, ErrIndexExists) {
		t.Errorf("rebuild into an existing index: %v", err)
	}
	if _, err := ix.Rebuild(ctx, "other-v9", func(context.Context, *Writer) error { return nil }); err == nil {
		t.Error("rebuild into an index outside the alias's pattern succeeded")
	}
	boom := errors.New("boom")
	if _, err := ix.Rebuild(ctx, cfg.Alias+"-v3", func(context.Context, *Writer) error { return boom }); !errors.Is(err, boom) {
		t.Errorf("failed fill: %v", err)
	}
	if got, _ := ix.AliasIndices(ctx); !slices.Equal(got, []string{v2}) {
		t.Fatalf("alias points at %v after a failed rebuild", got)
	}

	// Atomicity: swap back and forth while a reader counts window A
	// through the alias; both indices hold its 200 documents, so any
	// other count (0, 400) or a missing alias would expose a torn swap.
	var stop atomic.Bool
	var wg sync.WaitGroup
	var reads atomic.Int64
	var bad atomic.Value
	base, query := esURL(t), `{"query":`+jsonString(t, windowQuery(winA, ""))+`}`
	wg.Go(func() {
		for !stop.Load() {
			res, err := http.Post(base+"/"+cfg.Alias+"/_count", "application/json", strings.NewReader(query))
			if err != nil {
				bad.Store(err.Error())
				return
			}
			var out struct{ Count *int64 }
			err = json.NewDecoder(res.Body).Decode(&out)
			res.Body.Close()
			if err != nil || out.Count == nil || *out.Count != 200 {
				bad.Store(fmt.Sprintf("status %d, count %v, %v", res.StatusCode, out.Count, err))
			}
			reads.Add(1)
		}
	})
	for i := range 6 {
		target := []string{v1, v2}[i%2]
		p, err := ix.SwapAlias(ctx, target)
		if err != nil {
			t.Error(err)
			break
		}
		if want := []string{v1, v2}[(i+1)%2]; !slices.Equal(p, []string{want}) {
			t.Errorf("swap %d: previous %v, want [%s]", i, p, want)
		}
	}
	stop.Store(true)
	wg.Wait()
	if b := bad.Load(); b != nil {
		t.Errorf("a reader saw a torn alias during the swaps: %v", b)
	}
	t.Logf("%d reads during 6 swaps", reads.Load())
	if got, _ := ix.AliasIndices(ctx); !slices.Equal(got, []string{v2}) {
		t.Errorf("alias points at %v, want [%s]", got, v2)
	}
}

func TestTopURLs(t *testing.T) {
	cfg := testConfig(t)
	ix := newTestIndexer(t, cfg, hooks{})
	ctx := testCtx(t, 2*time.Minute)
	dl := laketest.NewFile(t)
	row := func(win aggregate.Window, url, country string, clicks int64) schema.Row {
		return schema.Row{WindowStart: win.From, WindowEnd: win.To, URL: url, Country: country, Clicks: clicks, UniqueUsers: 1}
	}
	a := []schema.Row{
		row(winA, "/a", "US", 10), row(winA, "/b", "US", 30), row(winA, "/c", "US", 20), row(winA, "/d", "US", 20),
		row(winA, "/a", "DE", 5),
	}
	b := []schema.Row{row(winB, "/a", "US", 100), row(winB, "/z", "FR", 1)}
	for _, r := range [][]schema.Row{a, b} {
		if _, err := ix.IndexResult(ctx, r, metaOf("j", aggregate.Window{From: r[0].WindowStart, To: r[0].WindowEnd}, r), dl); err != nil {
			t.Fatal(err)
		}
	}
	got, err := TopURLs(ctx, ix.Client(), cfg.Alias, &winA, 2)
	if err != nil {
		t.Fatal(err)
	}
	want := []CountryTop{
		{Country: "US", Clicks: 80, URLs: []URLClicks{{"/b", 30}, {"/c", 20}}}, // /c before /d: ties by URL
		{Country: "DE", Clicks: 5, URLs: []URLClicks{{"/a", 5}}},
	}
	if jsonString(t, got) != jsonString(t, want) {
		t.Errorf("TopURLs(window A) =\n %s\nwant\n %s", jsonString(t, got), jsonString(t, want))
	}
	got, err = TopURLs(ctx, ix.Client(), cfg.Alias, nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	want = []CountryTop{
		{Country: "US", Clicks: 180, URLs: []URLClicks{{"/a", 110}}},
		{Country: "DE", Clicks: 5, URLs: []URLClicks{{"/a", 5}}},
		{Country: "FR", Clicks: 1, URLs: []URLClicks{{"/z", 1}}},
	}
	if jsonString(t, got) != jsonString(t, want) {
		t.Errorf("TopURLs(all windows) =\n %s\nwant\n %s", jsonString(t, got), jsonString(t, want))
	}

	// The curl command runs and answers the same aggregation.
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("no curl on PATH")
	}
	cmd := TopURLsCurl(esURL(t), cfg.Alias, &winA, 2)
	out, err := exec.CommandContext(ctx, "sh", "-c", cmd).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, out)
	}
	if !strings.Contains(string(out), `"key" : "/b"`) || !strings.Contains(string(out), `"value" : 30.0`) {
		t.Errorf("curl output:\n%s", out)
	}
}

// Run, the body of `clickstream index`: reads a committed result, prints
// the summary, and fails with ErrRejected when documents were rejected.
func TestRunIndexesCommittedResult(t *testing.T) {
	cfg := testConfig(t)
	ctx := testCtx(t, 3*time.Minute)
	out := laketest.NewFile(t)
	rows := makeRows(winA, 120)
	if _, err := results.Commit(ctx, out, rows, results.Meta{Job: "job-run", Run: "job-run-1", From: winA.From, To: winA.To}); err != nil {
		t.Fatal(err)
	}
	rc := NewRunConfig()
	rc.ES = cfg
	rc.Results = []string{out.URI()}
	rc.Top = 1
	if err := rc.Validate(); err != nil {
		t.Fatal(err)
	}
	var stdout bytes.Buffer
	if err := Run(ctx, rc, obs.Runtime{Stdout: &stdout, Logger: testLogger(t)}); err != nil {
		t.Fatalf("Run: %v\n%s", err, stdout.String())
	}
	t.Logf("stdout:\n%s", stdout.String())
	if !strings.HasPrefix(stdout.String(), "indexed=120 rejected=0 window=2026-11-27T00:00:00Z/2026-11-27T01:00:00Z index="+cfg.Alias+" ") ||
		!strings.Contains(stdout.String(), "query: curl ") {
		t.Errorf("stdout:\n%s", stdout.String())
	}

	// A rejected document: summary printed, ErrRejected, dead letter in
	// the results store.
	rows[3].URL = strings.Repeat("x", 33000)
	if _, err := results.Commit(ctx, out, rows, results.Meta{Job: "job-run2", Run: "job-run2-1", From: winA.From, To: winA.To}); err != nil {
		t.Fatal(err)
	}
	rc.Top = 0
	stdout.Reset()
	err := Run(ctx, rc, obs.Runtime{Stdout: &stdout, Logger: testLogger(t)})
	if !errors.Is(err, ErrRejected) || !strings.HasPrefix(stdout.String(), "indexed=119 rejected=1 ") {
		t.Fatalf("Run with a rejected document: %v\n%s", err, stdout.String())
	}
	if _, err := out.Get(ctx, DeadLetterKey(winA, "job-run2")); err != nil {
		t.Errorf("dead letter: %v", err)
	}

	// --rebuild: a new index, the alias swapped to it.
	rows[3].URL = "/fixed"
	if _, err := results.Commit(ctx, out, rows, results.Meta{Job: "job-run3", Run: "job-run3-1", From: winA.From, To: winA.To}); err != nil {
		t.Fatal(err)
	}
	rc.Rebuild, rc.RebuildIndex = true, cfg.Alias+"-rebuilt"
	stdout.Reset()
	if err := Run(ctx, rc, obs.Runtime{Stdout: &stdout, Logger: testLogger(t)}); err != nil {
		t.Fatalf("Run --rebuild: %v\n%s", err, stdout.String())
	}
	if !strings.Contains(stdout.String(), "rebuild: alias "+cfg.Alias+" -> "+cfg.Alias+"-rebuilt (previous: "+cfg.Alias+"-v1, kept)") {
		t.Errorf("stdout:\n%s", stdout.String())
	}
	if windowCount(t, cfg.Alias, winA) != 120 {
		t.Error("the rebuilt index behind the alias does not hold the 120 documents")
	}
}

func TestCloseRefusesCalls(t *testing.T) {
	cfg := testConfig(t)
	ix := newTestIndexer(t, cfg, hooks{})
	ctx := testCtx(t, time.Minute)
	if err := ix.Close(ctx); err != nil {
		t.Fatal(err)
	}
	rows := makeRows(winA, 1)
	if _, err := ix.IndexResult(ctx, rows, metaOf("j", winA, rows), laketest.NewFile(t)); !errors.Is(err, ErrClosed) {
		t.Errorf("IndexResult after Close: %v", err)
	}
	if err := ix.Close(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close: %v", err)
	}
}

// Close interrupts a call in flight once its context is done: the call
// returns ErrClosed and the bulk workers stop.
func TestCloseInterruptsCallInFlight(t *testing.T) {
	cfg := testConfig(t)
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	ix, err := newIndexer(cfg, testLogger(t), nil, hooks{flushStart: func() {
		once.Do(func() {
			close(entered)
			<-release
		})
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t, 2*time.Minute)
	if err := ix.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	rows := makeRows(winA, 10)
	errc := make(chan error, 1)
	go func() {
		_, err := ix.IndexResult(ctx, rows, metaOf("j", winA, rows), laketest.NewFile(t))
		errc <- err
	}()
	<-entered // the call's flush is stuck in the hook
	cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	closed := make(chan error, 1)
	go func() { closed <- ix.Close(cctx) }()
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Errorf("IndexResult interrupted by Close: %v", err)
	}
	close(release)
	if err := <-closed; err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close: %v", err)
	}
}
