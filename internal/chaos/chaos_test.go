package chaos

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dataco/clickstream/internal/aggregate"
	"github.com/dataco/clickstream/internal/aggregate/aggtest"
	"github.com/dataco/clickstream/internal/cluster/clustertest"
	"github.com/dataco/clickstream/internal/gen"
	"github.com/dataco/clickstream/internal/leaktest"
	"github.com/dataco/clickstream/internal/schema"
)

// binary is the clickstream binary built by TestMain (not with -short).
var binary string

func TestMain(m *testing.M) {
	flag.Parse()
	code := func() int {
		if !testing.Short() {
			dir, err := os.MkdirTemp("", "clickstream-chaos-bin-")
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			defer os.RemoveAll(dir)
			binary = filepath.Join(dir, "clickstream")
			out, err := exec.Command("go", "build", "-o", binary, "github.com/dataco/clickstream/cmd/clickstream").CombinedOutput()
			if err != nil {
				fmt.Fprintf(os.Stderr, "build clickstream: %v\n%s", err, out)
				return 1
			}
		}
		code := m.Run()
		if code == 0 {
			if err := leaktest.Check(); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
		return code
	}()
	os.Exit(code)
}

// TestChaosSubset runs a representative subset of the fault classes, one
// run each, against real processes: its own etcd and versitygw, the
// shared stack's Kafka and Elasticsearch (a fresh topic and alias; never
// stopped). Every run must end with the fault-free result, nothing lost
// or duplicated, and job states that agree with what is committed.
func TestChaosSubset(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the pipeline as real processes under faults; skipped with -short")
	}
	brokers, es := os.Getenv("CLICKSTREAM_KAFKA_BROKERS"), os.Getenv("CLICKSTREAM_ES_URL")
	if brokers == "" || es == "" {
		t.Fatal("CLICKSTREAM_KAFKA_BROKERS or CLICKSTREAM_ES_URL is empty: run `make dev-up` and source its env, or use -short")
	}
	seed := uint64(time.Now().UnixNano() % 1_000_000)
	if v := os.Getenv("CHAOS_SEED"); v != "" {
		if _, err := fmt.Sscan(v, &seed); err != nil {
			t.Fatalf("CHAOS_SEED=%q: %v", v, err)
		}
	}
	t.Logf("seed %d (CHAOS_SEED=%d replays this schedule)", seed, seed)
	dir, err := os.MkdirTemp("", "clickstream-chaos-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs and data kept in %s", dir)
			return
		}
		os.RemoveAll(dir)
	})
	h, err := New(Config{Binary: binary, Brokers: brokers, ESURL: es, Dir: dir, Seed: seed,
		Events: 20_000, Windows: 2, JobTimeout: 2 * time.Minute, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	classes, err := Select(strings.Join(SubsetNames, ","))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	rep, err := h.Matrix(ctx, classes, 0, func(o *Outcome) { t.Log(o.Summary()) })
	var md strings.Builder
	_ = rep.WriteMarkdown(&md)
	t.Logf("\n%s", md.String())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(rep.Outcomes), len(classes)+1; got != want {
		t.Fatalf("%d runs, want %d", got, want)
	}
	for _, row := range rep.Rows() {
		if !row.Identical || row.Lost != 0 || row.Duplicated != 0 || row.StatusMismatches != 0 || row.Unfinished != 0 || row.AuditDiffs != 0 || row.Errors != 0 {
			t.Errorf("%s: identical %v, lost %d, duplicated %d, status mismatches %d, unfinished %d, audit differences %d, errors %d",
				row.Class, row.Identical, row.Lost, row.Duplicated, row.StatusMismatches, row.Unfinished, row.AuditDiffs, row.Errors)
		}
	}
	for _, o := range rep.Failed() {
		t.Errorf("%s (logs in %s)", o.Summary(), o.Dir)
	}
}

// TestScheduleReplays: a seed gives the same run seeds and the same fault
// choices; another seed gives others.
func TestScheduleReplays(t *testing.T) {
	if a, b := subSeed(1, "worker-kill", 0), subSeed(1, "worker-kill", 0); a != b {
		t.Fatalf("subSeed is not a function of its arguments: %d, %d", a, b)
	}
	seen := map[uint64]string{}
	for _, c := range Classes() {
		for n := range 3 {
			s := subSeed(42, c.Name, n)
			if prev, dup := seen[s]; dup {
				t.Fatalf("%s/%d and %s share seed %d", c.Name, n, prev, s)
			}
			seen[s] = fmt.Sprintf("%s/%d", c.Name, n)
		}
	}
	draw := func(seed uint64) string {
		rng := rand.New(rand.NewPCG(seed, 0xc4a05))
		var b strings.Builder
		for _, c := range []func(*rand.Rand) Topology{workerFailpoint, coordinatorFailpoint, ingestFailpoint} {
			topo := c(rng)
			for _, f := range []func(int) []string{topo.WorkerEnv, topo.CoordinatorEnv, topo.IngestEnv} {
				if f != nil {
					fmt.Fprint(&b, f(0), " ")
				}
			}
			fmt.Fprint(&b, topo.Coordinators, " ", Jitter(rng, time.Second, 5*time.Second), "; ")
		}
		return b.String()
	}
	a := draw(subSeed(7, "x", 0))
	if b := draw(subSeed(7, "x", 0)); a != b {
		t.Fatalf("same seed, different schedules:\n%s\n%s", a, b)
	}
	differs := false
	for n := 1; n < 10 && !differs; n++ {
		differs = draw(subSeed(7, "x", n)) != a
	}
	if !differs {
		t.Errorf("ten seeds gave one schedule: %s", a)
	}
}

func TestSelect(t *testing.T) {
	all, err := Select("all")
	if err != nil || len(all) != len(Classes()) {
		t.Fatalf("all: %d classes, %v", len(all), err)
	}
	sub, err := Select(strings.Join(SubsetNames, ","))
	if err != nil || len(sub) != len(SubsetNames) {
		t.Fatalf("subset: %v", err)
	}
	for _, c := range sub {
		if c.Stack {
			t.Errorf("subset class %s stops a shared stack service", c.Name)
		}
	}
	if _, err := Select("worker-kill,nope"); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("unknown class: %v", err)
	}
	names := map[string]bool{}
	for _, c := range Classes() {
		if names[c.Name] || c.Doc == "" {
			t.Errorf("class %q: duplicate name or no doc", c.Name)
		}
		names[c.Name] = true
	}
}

// TestCompareReference: lost and duplicated clicks are counted per key
// against the reference.
func TestCompareReference(t *testing.T) {
	from := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	w := Window{From: from, To: from.Add(time.Hour)}
	events := clustertest.Events(3, 50, 2000, w.From, w.To)
	in := &Input{Valid: events, Windows: []Window{w}}
	rows := aggregate.Compute(events, aggregate.Window{From: w.From, To: w.To}, gen.SessionTimeout).Result(aggregate.Window{From: w.From, To: w.To})
	if lost, dup, diff := compareReference(rows, in, w); lost != 0 || dup != 0 || diff != "" {
		t.Fatalf("the computed result: lost %d dup %d diff %q", lost, dup, diff)
	}
	ref := aggtest.Reference(events, w.From, w.To, gen.SessionTimeout)
	if len(ref) != len(rows) || len(rows) < 3 {
		t.Fatalf("%d reference rows, %d rows", len(ref), len(rows))
	}
	// One row missing, one row twice, one row with a click too many.
	bad := slices.Clone(rows[1:])
	bad = append(bad, rows[1])
	bad[1].Clicks++
	// Bot clicks count as clicks: lost and duplicated events alike.
	lost, dup, diff := compareReference(bad, in, w)
	wantLost, wantDup := rows[0].Clicks+rows[0].BotClicks, rows[1].Clicks+rows[1].BotClicks+1
	if lost != wantLost || dup != wantDup || diff == "" {
		t.Fatalf("lost %d (want %d) dup %d (want %d) diff %q", lost, wantLost, dup, wantDup, diff)
	}
}

func TestCompareDocs(t *testing.T) {
	rows := []schema.Row{{URL: "a", Country: "DE", Clicks: 3, UniqueUsers: 2}, {URL: "b", Country: "FR", Clicks: 5, UniqueUsers: 1}}
	docs := []schema.Row{{URL: "a", Country: "DE", Clicks: 3, UniqueUsers: 2}, {URL: "b", Country: "FR", Clicks: 5, UniqueUsers: 1}}
	if lost, dup, diff := compareDocs(rows, docs); lost != 0 || dup != 0 || diff != "" {
		t.Fatalf("equal: %d %d %q", lost, dup, diff)
	}
	if lost, dup, _ := compareDocs(rows, docs[:1]); lost != 5 || dup != 0 {
		t.Fatalf("missing document: lost %d dup %d", lost, dup)
	}
	extra := append(slices.Clone(docs), schema.Row{URL: "c", Country: "GB", Clicks: 7})
	if lost, dup, _ := compareDocs(rows, extra); lost != 0 || dup != 7 {
		t.Fatalf("extra document: lost %d dup %d", lost, dup)
	}
}

func TestReportMarkdown(t *testing.T) {
	rep := &Report{Seed: 9, Events: 100, Windows: 2, Baseline: 10 * time.Second, Outcomes: []*Outcome{
		{Class: "none", Run: "none-0", Duration: 10 * time.Second, Identical: true},
		{Class: "worker-kill", Run: "worker-kill-0", Seed: 5, Injections: 2, Duration: 15 * time.Second, Identical: true},
		{Class: "worker-kill", Run: "worker-kill-1", Seed: 6, Injections: 1, Duration: 25 * time.Second, Identical: false, Lost: 4, Notes: []string{"w: differs"}},
	}}
	var b strings.Builder
	if err := rep.WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	s := b.String()
	for _, want := range []string{
		"seed 9 (rerun with CHAOS_SEED=9)",
		"| none | 0 | 1 | 1.00× | yes | 0 | 0 | 0 | 0 | 0 |",
		"| worker-kill | 3 | 2 | 2.00× | **no** | 4 | 0 | 0 | 0 | 0 |",
		"`worker-kill-1` (run seed 6)",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("report lacks %q:\n%s", want, s)
		}
	}
}

// TestSupervisor: processes are killed, stopped, resumed and restarted by
// process group, and Close kills what is left.
func TestSupervisor(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep binary")
	}
	sup := NewSupervisor(t.TempDir(), nil)
	defer sup.Close()
	p, err := sup.Start("sleeper", sleep, childEnv(), "60")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if !WaitStopped(ctx, p) {
		t.Fatal("SIGSTOP did not stop the process")
	}
	if err := p.Cont(); err != nil {
		t.Fatal(err)
	}
	if err := p.Restart(); err != nil {
		t.Fatal(err)
	}
	if !p.Alive() || !strings.Contains(p.Log(), "---- start 2") {
		t.Fatalf("restart: alive %v, log %q", p.Alive(), p.Log())
	}
	if err := p.Terminate(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if p.Alive() {
		t.Fatal("alive after Terminate")
	}
	q, err := sup.Start("other", sleep, childEnv(), "60")
	if err != nil {
		t.Fatal(err)
	}
	sup.Close()
	if q.Alive() {
		t.Fatal("alive after Close")
	}
	if _, err := sup.Start("late", sleep, childEnv(), "1"); err == nil {
		t.Fatal("Start after Close worked")
	}
}

// testLogger logs to the test's log until the test ends.
func testLogger(t *testing.T) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct {
	t    *testing.T
	mu   sync.Mutex
	done bool
}

func (w *testWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(b), "\n"))
	}
	return len(b), nil
}

// TestFreePortsDistinct: ports handed out are never handed out twice in a
// row, even when the kernel offers a port again at once.
func TestFreePortsDistinct(t *testing.T) {
	seen := map[int]bool{}
	for range 500 {
		p, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
	}
}
