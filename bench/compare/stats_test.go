package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestStats(t *testing.T) {
	for _, tc := range []struct {
		name           string
		xs             []float64
		median, lo, hi float64
	}{
		{"none", nil, 0, 0, 0},
		{"one", []float64{2}, 2, 2, 2},
		{"odd", []float64{3, 1, 2}, 2, 1, 3},
		{"even", []float64{4, 1, 3, 2}, 2.5, 1, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := append([]float64(nil), tc.xs...)
			m, lo, hi := stats(tc.xs)
			if m != tc.median || lo != tc.lo || hi != tc.hi {
				t.Fatalf("stats(%v) = %v, %v, %v; want %v, %v, %v", tc.xs, m, lo, hi, tc.median, tc.lo, tc.hi)
			}
			for i := range in {
				if in[i] != tc.xs[i] {
					t.Fatal("stats reordered its input")
				}
			}
		})
	}
}

func TestSummarizeAndJSON(t *testing.T) {
	r := Result{Contender: "run-w2", Shape: "heavy", RowsEqual: true, Check: "rows", PeakMiB: mib(200 << 20), Events: 1_000_000}
	r.summarize([]time.Duration{3 * time.Second, 1 * time.Second, 2 * time.Second},
		[]time.Duration{4 * time.Second, 2 * time.Second, 5 * time.Second})
	if r.MedianS != 2 || r.MinS != 1 || r.MaxS != 3 || len(r.Seconds) != 3 || r.Seconds[0] != 3 {
		t.Fatalf("summarize: %+v", r)
	}
	if r.MedianCPUS != 4 || r.CPUPerEvent() != 4 {
		t.Fatalf("summarize: median CPU %v s, %v µs/event; want 4 s, 4 µs/event", r.MedianCPUS, r.CPUPerEvent())
	}
	dir := t.TempDir()
	if err := writeJSON(dir, []Result{r}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "compare.json"))
	if err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"contender", "shape", "median_s", "min_s", "max_s", "peak_mib", "rows_equal", "median_cpu_s"} {
		if _, ok := got[0][k]; !ok {
			t.Errorf("compare.json lacks %q: %s", k, data)
		}
	}
	if got[0]["peak_mib"] != 200.0 || got[0]["rows_equal"] != true {
		t.Errorf("compare.json: %s", data)
	}
}

func TestPrintTable(t *testing.T) {
	results := []Result{
		{Contender: "run-w2", Shape: "heavy", MedianS: 2, MinS: 1.5, MaxS: 3, PeakMiB: 150, RowsEqual: true, Check: "rows"},
		{Contender: "duckdb", Shape: "heavy", MedianS: 5, MinS: 4, MaxS: 6, PeakMiB: 120, RowsEqual: true, Check: "rows"},
		{Contender: "polars", Shape: "heavy", MedianS: 7, MinS: 7, MaxS: 7, PeakMiB: 300, RowsEqual: false, Check: "rows"},
		{Contender: "chdb", Shape: "heavy", Error: "boom", Check: "rows"},
		{Contender: "floor-duckdb", Shape: "heavy", MedianS: 1, MinS: 1, MaxS: 1, PeakMiB: 80, RowsEqual: true, Check: "events"},
	}
	var b bytes.Buffer
	printTable(&b, results)
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 2+len(results) {
		t.Fatalf("%d lines:\n%s", len(lines), b.String())
	}
	for i, want := range []string{"| heavy | run-w2", "| heavy | duckdb", "| heavy | polars", "| heavy | chdb", "| heavy | floor-duckdb"} {
		if !strings.HasPrefix(lines[2+i], want) {
			t.Errorf("line %d = %q, want it to start with %q", 2+i, lines[2+i], want)
		}
	}
	for i, want := range []string{"2.50", "NO", "FAILED", "yes (events)"} {
		if !strings.Contains(lines[3+i], want) {
			t.Errorf("line %d = %q, want %q in it", 3+i, lines[3+i], want)
		}
	}
	if w := len([]rune(lines[0])); w != len([]rune(lines[1])) || w != len([]rune(lines[4])) {
		t.Errorf("columns not aligned:\n%s", b.String())
	}
}

func TestConfig(t *testing.T) {
	t.Setenv("BENCH_EVENTS", "1_000_000")
	t.Setenv("BENCH_USERS", "")
	t.Setenv("BENCH_SHAPES", "light")
	c := NewConfig()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Events != 1_000_000 || len(c.Shapes) != 1 || c.Shapes[0] != knownShapes["light"] || !filepath.IsAbs(c.Dir) {
		t.Fatalf("config: %+v", c)
	}
	c = NewConfig()
	c.shapes, c.Contenders, c.Rounds = "heavy,tiny", []string{"duckdb", "excel"}, 0
	err := c.Validate()
	for _, want := range []string{`shape "tiny"`, `contender "excel"`, "rounds 0"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want %q in it", err, want)
		}
	}
}

func TestReadUsage(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.rss")
	if err := os.WriteFile(p, []byte("2048 1500000000"), 0o644); err != nil {
		t.Fatal(err)
	}
	if rss, cpu := readUsage(p); rss != 2048 || cpu != 1500*time.Millisecond {
		t.Fatalf("readUsage = %d, %v; want 2048, 1.5s", rss, cpu)
	}
	if rss, cpu := readUsage(filepath.Join(t.TempDir(), "missing")); rss != 0 || cpu != 0 {
		t.Fatalf("readUsage of a missing file = %d, %v", rss, cpu)
	}
}

func TestProcCPUOfThisProcess(t *testing.T) {
	before, err := procCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// Busy on another thread than the main one: the process's time counts
	// all its threads.
	done := make(chan int)
	go func() {
		runtime.LockOSThread()
		x := 0
		for i := range 200_000_000 {
			x += i
		}
		done <- x
	}()
	<-done
	after, err := procCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if after <= before {
		t.Fatalf("schedstat did not grow over a busy loop: %v then %v", before, after)
	}
}

func TestChildPIDs(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	kids, err := childPIDs(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(kids, cmd.Process.Pid) {
		t.Fatalf("childPIDs(self) = %v, want it to hold %d", kids, cmd.Process.Pid)
	}
}
