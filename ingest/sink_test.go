package ingest

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dataco/clickstream/internal/bots"
	"github.com/dataco/clickstream/internal/event"
	"github.com/dataco/clickstream/internal/lake"
)

func newTestSink(t testing.TB, store lake.Store, writer string) *sink {
	t.Helper()
	meta, err := lake.EnsureMeta(context.Background(), store, 4)
	if err != nil {
		t.Fatal(err)
	}
	return &sink{store: store, buckets: meta.Buckets, format: lake.FormatParquet, writer: writer,
		parser: event.Parser{MaxSize: event.MaxSize}, bots: bots.New(nil), uploads: 2, cpu: make(chan struct{}, 2), metrics: newMetrics(nil), log: slog.New(slog.DiscardHandler)}
}

// fill adds testMessage(from) … testMessage(to-1), parsed by s, to b.
func fill(s *sink, b *batch, from, to int) {
	for i := from; i < to; i++ {
		b.add(s.parse(int64(i), testMessage(i), nil), len(testMessage(i)))
	}
}

// startFileSource returns a sink writing to a fresh file:// lake through
// wrap (a fault-injecting store, or nil), the lake itself, the state of
// source "file.x" and an empty batch at its end.
func startFileSource(t *testing.T, wrap func(lake.Store) lake.Store) (*sink, lake.Store, sourceState, *batch) {
	t.Helper()
	store, err := lake.NewFileStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := newTestSink(t, store, "aaaa")
	if wrap != nil {
		s.store = wrap(store)
	}
	st, err := s.recover(context.Background(), "file.x")
	if err != nil {
		t.Fatal(err)
	}
	b := &batch{}
	b.reset(st.end)
	return s, store, st, b
}

func testMessage(i int) []byte {
	if i%7 == 3 {
		return []byte(fmt.Sprintf(`{"user_id":"u%d","url":"/missing-timestamp"}`, i))
	}
	ts := time.Date(2026, 11, 27, 1, 0, 0, 0, time.UTC).Add(time.Duration(i) * 13 * time.Second)
	return []byte(fmt.Sprintf(`{"user_id":"u%d","timestamp":"%s","url":"/p/%d","country":"FR"}`, i%11, ts.Format(time.RFC3339), i%5))
}

// TestFencedWriterCommitsEachPositionOnce plays the zombie scenario: two
// writers believe they own one source. Whoever commits a sequence number
// first wins; the other re-reads the lake, keeps only the records the winner
// did not cover, and commits those. Every position lands exactly once.
func TestFencedWriterCommitsEachPositionOnce(t *testing.T) {
	ctx := context.Background()
	store, err := lake.NewFileStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const source = "kafka.clicks.0"
	a, b := newTestSink(t, store, "aaaa"), newTestSink(t, store, "bbbb")
	stA, _ := a.recover(ctx, source)
	stB, _ := b.recover(ctx, source)

	// A (the new owner) commits [0, 100).
	ba := &batch{}
	ba.reset(stA.end)
	fill(a, ba, 0, 100)
	if _, err := a.flush(ctx, &stA, ba); err != nil {
		t.Fatal(err)
	}
	// B (the zombie) still holds [0, 150) and tries to commit seq 1.
	bb := &batch{}
	bb.reset(stB.end)
	fill(b, bb, 0, 150)
	res, err := b.flush(ctx, &stB, bb)
	if err != nil {
		t.Fatal(err)
	}
	if !res.fenced {
		t.Fatal("zombie commit was not fenced")
	}
	if stB.seq != 2 || stB.end != 150 {
		t.Fatalf("zombie state after resync = seq %d end %d, want seq 2 end 150", stB.seq, stB.end)
	}
	// A, unaware, commits [100, 120): fenced in turn, and nothing is new.
	ba.reset(stA.end)
	fill(a, ba, 100, 120)
	if _, err := a.flush(ctx, &stA, ba); err != nil {
		t.Fatal(err)
	}
	if stA.end != 150 || stA.seq != 2 {
		t.Fatalf("owner state = seq %d end %d, want seq 2 end 150", stA.seq, stA.end)
	}

	got := readLake(t, store)
	if err := got.checkChains(); err != nil {
		t.Fatal(err)
	}
	var msgs [][]byte
	for i := range 150 {
		msgs = append(msgs, testMessage(i))
	}
	wantValid, wantRejected := expected(msgs)
	assertSameEvents(t, got.events, wantValid)
	if len(got.rejected) != wantRejected {
		t.Fatalf("rejected = %d, want %d", len(got.rejected), wantRejected)
	}
}

// lakeContent is everything committed in a lake, read through manifests.
type lakeContent struct {
	manifests []*lake.Manifest
	events    []event.Event
	rejected  []rejectedRecord
}

func readLake(t testing.TB, store lake.Store) lakeContent {
	t.Helper()
	ctx := context.Background()
	sn, err := lake.ReadSnapshot(ctx, store)
	if err != nil {
		t.Fatal(err)
	}
	var out lakeContent
	out.manifests = sn.Manifests
	for _, m := range sn.Manifests {
		for _, f := range m.Files {
			data, err := store.Get(ctx, f.Key)
			if err != nil {
				t.Fatal(err)
			}
			evs, err := lake.DecodeFile(f.Key, data)
			if err != nil {
				t.Fatal(err)
			}
			if int64(len(evs)) != f.Events {
				t.Fatalf("%s holds %d events, manifest says %d", f.Key, len(evs), f.Events)
			}
			for i, e := range evs {
				p := lake.Partition{Hour: lake.HourOf(e.Timestamp), Bucket: lake.Bucket(e.UserID, sn.Meta.Buckets)}
				if want, _ := f.Partition(); p != want {
					t.Fatalf("event %+v in partition %s, belongs in %s", e, want, p)
				}
				if i > 0 && compareSortOrder(&evs[i-1], &e) > 0 {
					t.Fatalf("%s: event %d %+v after %+v: not in the lake's sort order (user_id, ts)", f.Key, i, e, evs[i-1])
				}
			}
			out.events = append(out.events, evs...)
		}
		if m.Rejected != "" {
			data, err := store.Get(ctx, m.Rejected)
			if err != nil {
				t.Fatal(err)
			}
			rs, err := decodeRejected(data)
			if err != nil {
				t.Fatal(err)
			}
			out.rejected = append(out.rejected, rs...)
		}
	}
	return out
}

// compareSortOrder orders events as lake.SortOrder says data files are
// sorted: by user id (bytes), then time.
func compareSortOrder(a, b *event.Event) int {
	return cmp.Or(strings.Compare(a.UserID, b.UserID), cmp.Compare(a.Timestamp, b.Timestamp))
}

// TestFileSortOrder commits users whose ids share long prefixes (the 8
// bytes the sort's radix passes look at, and more), ids that are prefixes
// of others, and users whose ids collide in those 8 bytes: each data file
// holds its events by user id, then time, each user's events together.
func TestFileSortOrder(t *testing.T) {
	s, store, st, b := startFileSource(t, nil)
	rng := rand.New(rand.NewPCG(5, 6))
	ids := []string{"abcdefgh", "abcdefghi", "abcdefgh0", "abc", "abc ", "ab", "b", "Z", "é", "东京", "customer-"}
	for i := range 300 {
		ids = append(ids, fmt.Sprintf("customer-%012d", rng.IntN(1000)), fmt.Sprintf("%d", 100000+i*7919%900000),
			fmt.Sprintf("abcdefgh%d", i))
	}
	hour := time.Date(2026, 11, 27, 1, 0, 0, 0, time.UTC)
	var msgs [][]byte
	for i := range 6000 {
		ts := hour.Add(time.Duration(rng.Int64N(int64(2 * time.Hour)))).Truncate(time.Millisecond)
		msg := fmt.Sprintf(`{"user_id":%q,"timestamp":"%s","url":"/p/%d","country":"FR"}`,
			ids[rng.IntN(len(ids))], ts.Format(time.RFC3339Nano), rng.IntN(3))
		msgs = append(msgs, []byte(msg))
		b.add(s.parse(int64(i), []byte(msg), nil), len(msg))
	}
	if _, err := s.flush(context.Background(), &st, b); err != nil {
		t.Fatal(err)
	}
	got := readLake(t, store) // checks each file's order
	want, _ := expected(msgs)
	assertSameEvents(t, got.events, want)
	files := 0
	for _, m := range got.manifests {
		files += len(m.Files)
	}
	if files < 8 {
		t.Fatalf("%d files: test data is off", files)
	}
}

// checkChains verifies that each source's manifests form one gapless chain
// of positions: seq 1..n, each starting where the previous ended.
func (c lakeContent) checkChains() error {
	last := map[string]*lake.Manifest{}
	for _, m := range c.manifests {
		prev := last[m.Source]
		switch {
		case prev == nil && m.Seq != 1:
			return fmt.Errorf("%s: first manifest has seq %d", m.Source, m.Seq)
		case prev != nil && m.Seq != prev.Seq+1:
			return fmt.Errorf("%s: seq %d follows %d", m.Source, m.Seq, prev.Seq)
		case prev != nil && m.Start != prev.End:
			return fmt.Errorf("%s: seq %d starts at %d, previous ended at %d", m.Source, m.Seq, m.Start, prev.End)
		case m.End <= m.Start:
			return fmt.Errorf("%s: seq %d covers the empty range [%d, %d)", m.Source, m.Seq, m.Start, m.End)
		}
		last[m.Source] = m
	}
	return nil
}

func sortEvents(evs []event.Event) {
	slices.SortFunc(evs, func(a, b event.Event) int {
		if a.UserID != b.UserID {
			if a.UserID < b.UserID {
				return -1
			}
			return 1
		}
		if a.Timestamp != b.Timestamp {
			if a.Timestamp < b.Timestamp {
				return -1
			}
			return 1
		}
		switch {
		case a.URL < b.URL:
			return -1
		case a.URL > b.URL:
			return 1
		}
		return 0
	})
}

func assertSameEvents(t testing.TB, got, want []event.Event) {
	t.Helper()
	got, want = slices.Clone(got), slices.Clone(want)
	sortEvents(got)
	sortEvents(want)
	if len(got) != len(want) {
		t.Fatalf("lake holds %d events, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("event %d: lake has %+v, want %+v", i, got[i], want[i])
		}
	}
}

// hangingStore is a real store whose manifest writes hang until their
// context ends, as a stuck S3 request would.
type hangingStore struct {
	lake.Store
}

func (h hangingStore) PutIfAbsent(ctx context.Context, key string, data []byte) error {
	if strings.HasPrefix(key, lake.ManifestsPrefix) {
		<-ctx.Done()
		return ctx.Err()
	}
	return h.Store.PutIfAbsent(ctx, key, data)
}

// TestCommitTimeout checks that a commit whose store call hangs fails
// after the commit timeout, with the deadline as its cause, and commits
// nothing: the same batch then commits in full once the store answers.
func TestCommitTimeout(t *testing.T) {
	ctx := context.Background()
	s, store, st, b := startFileSource(t, func(s lake.Store) lake.Store { return hangingStore{s} })
	s.timeout = 200 * time.Millisecond
	fill(s, b, 0, 50)
	// Without the commit timeout, only this outer one would end the hang.
	outer, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	start := time.Now()
	_, err := s.flush(outer, &st, b)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("flush on a hanging store = %v, want a deadline error", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("flush took %v with a 200ms commit timeout", took)
	}
	if st.seq != 0 || st.end != 0 {
		t.Fatalf("state advanced to seq %d end %d by a failed commit", st.seq, st.end)
	}
	s.store = store
	res, err := s.flush(ctx, &st, b)
	if err != nil {
		t.Fatal(err)
	}
	if res.valid+res.rejected != 50 || st.end != 50 {
		t.Fatalf("retry committed %d valid + %d rejected up to %d, want 50 records", res.valid, res.rejected, st.end)
	}
}

// failingWatermarks is a real store that cannot write watermark records.
type failingWatermarks struct {
	lake.Store
}

func (f failingWatermarks) Put(ctx context.Context, key string, data []byte) error {
	if strings.HasPrefix(key, lake.WatermarksPrefix) {
		return errors.New("injected: watermark write failed")
	}
	return f.Store.Put(ctx, key, data)
}

// TestCommitStandsWhenWatermarkFails checks that a commit whose manifest is
// written counts as committed even if its watermark record cannot be
// updated, and that the next commit brings the record up to date.
func TestCommitStandsWhenWatermarkFails(t *testing.T) {
	ctx := context.Background()
	s, store, st, b := startFileSource(t, func(s lake.Store) lake.Store { return failingWatermarks{s} })
	fill(s, b, 0, 30)
	if _, err := s.flush(ctx, &st, b); err != nil {
		t.Fatalf("flush with a failing watermark write = %v, want the commit to stand", err)
	}
	if st.seq != 1 || st.end != 30 {
		t.Fatalf("state after the commit: seq %d end %d, want 1 and 30", st.seq, st.end)
	}
	if m, err := lake.LastManifest(ctx, store, "file.x"); err != nil || m == nil || m.End != 30 {
		t.Fatalf("last manifest = %+v, %v; want one ending at 30", m, err)
	}
	s.store = store
	fill(s, b, 30, 40)
	if _, err := s.flush(ctx, &st, b); err != nil {
		t.Fatal(err)
	}
	data, err := store.Get(ctx, lake.WatermarkKey("file.x"))
	if err != nil {
		t.Fatal(err)
	}
	var w lake.Watermark
	if err := json.Unmarshal(data, &w); err != nil || w.Seq != 2 || w.End != 40 {
		t.Fatalf("watermark record %s (%v), want seq 2 end 40", data, err)
	}
}

// manifestOnceFails is a real store that refuses the first manifest write
// after writing nothing, and records every data file key written.
type manifestOnceFails struct {
	lake.Store
	mu     sync.Mutex
	failed bool
	puts   []string
}

func (m *manifestOnceFails) Put(ctx context.Context, key string, data []byte) error {
	m.mu.Lock()
	m.puts = append(m.puts, key)
	m.mu.Unlock()
	return m.Store.Put(ctx, key, data)
}

func (m *manifestOnceFails) PutIfAbsent(ctx context.Context, key string, data []byte) error {
	m.mu.Lock()
	fail := strings.HasPrefix(key, lake.ManifestsPrefix) && !m.failed
	m.failed = m.failed || fail
	m.mu.Unlock()
	if fail {
		return errors.New("injected: manifest write failed")
	}
	return m.Store.PutIfAbsent(ctx, key, data)
}

// TestRetriedCommitWritesNewObjects checks that a commit retried under the
// same sequence number writes objects under new names: a late write of the
// failed attempt can then only land on its own orphan, never on a file the
// committed manifest names.
func TestRetriedCommitWritesNewObjects(t *testing.T) {
	ctx := context.Background()
	var store *manifestOnceFails
	s, base, st, b := startFileSource(t, func(s lake.Store) lake.Store {
		store = &manifestOnceFails{Store: s}
		return store
	})
	fill(s, b, 0, 40)
	if _, err := s.flush(ctx, &st, b); err == nil {
		t.Fatal("the first attempt committed although its manifest write failed")
	}
	first := slices.Clone(store.puts)
	if len(first) == 0 {
		t.Fatal("the failed attempt wrote no objects")
	}
	if _, err := s.flush(ctx, &st, b); err != nil {
		t.Fatal(err)
	}
	m, err := lake.LastManifest(ctx, base, "file.x")
	if err != nil || m == nil || m.Seq != 1 {
		t.Fatalf("last manifest = %+v, %v; want seq 1", m, err)
	}
	named := []string{m.Rejected}
	for _, f := range m.Files {
		named = append(named, f.Key)
	}
	for _, k := range named {
		if slices.Contains(first, k) {
			t.Errorf("the committed manifest names %s, which the failed attempt also wrote", k)
		}
	}
}

// TestParseFlagsBots: parse flags the events of bot agents (the library's,
// the built-in patterns, a --bot-agents-file's), with and without a cache,
// and the flag reaches the lake and the summary.
func TestParseFlagsBots(t *testing.T) {
	file := filepath.Join(t.TempDir(), "bots.txt")
	if err := os.WriteFile(file, []byte("# ours\nAcmeMonitor\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := NewConfig()
	cfg.BotAgentsFile = file
	classifier, err := cfg.botClassifier()
	if err != nil {
		t.Fatal(err)
	}
	store, err := lake.NewFileStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := newTestSink(t, store, "bots")
	s.bots = classifier
	agents := []struct {
		ua  string
		bot bool
	}{
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", false},
		{"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", true},
		{"python-requests/2.32.3", true},
		{"AcmeMonitor/1.0 (+https://acme.example/ops)", true},
		{"", false},
	}
	pc := s.newParseCache()
	b := &batch{}
	b.reset(0)
	wantBots := int64(0)
	for i := range 50 {
		a := agents[i%len(agents)]
		msg := event.Encode(event.Event{UserID: fmt.Sprint("u", i%7), Timestamp: 1_764_000_000_000 + int64(i), URL: "/", Country: "DE", UserAgent: a.ua})
		for _, c := range []*parseCache{pc, nil} {
			if r := s.parse(int64(i), msg, c); r.err != nil || r.ev.IsBot != a.bot {
				t.Fatalf("parse(%q) = is_bot %v, err %v; want is_bot %v", a.ua, r.ev.IsBot, r.err, a.bot)
			}
		}
		b.add(s.parse(int64(i), msg, pc), len(msg))
		if a.bot {
			wantBots++
		}
	}
	if pc.bots.Misses != len(agents)-1 {
		t.Errorf("%d agents classified, want %d (one each)", pc.bots.Misses, len(agents)-1)
	}
	st, err := s.recover(context.Background(), "bots.0")
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.flush(context.Background(), &st, b)
	if err != nil {
		t.Fatal(err)
	}
	if res.bots != wantBots {
		t.Errorf("commit counts %d bot events, want %d", res.bots, wantBots)
	}
	var lakeBots int64
	for _, e := range readLake(t, store).events {
		if e.IsBot {
			lakeBots++
		}
	}
	if lakeBots != wantBots {
		t.Errorf("the lake holds %d bot events, want %d", lakeBots, wantBots)
	}

	cfg.BotAgentsFile = filepath.Join(t.TempDir(), "missing")
	if _, err := cfg.botClassifier(); err == nil {
		t.Error("a missing --bot-agents-file is no error")
	}
}
