package ingest

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/dataco/clickstream/internal/icetable"
	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/lake/laketest"
)

// assertTable checks that the lake's Iceberg events table holds exactly
// the data files the lake's manifests name, each once with its event
// count: what an outside reader of the table sees is what ingest
// committed, whatever crashed attempts left in the lake's folders.
func assertTable(t *testing.T, store lake.Store, catalogURI string, c lakeContent) {
	t.Helper()
	ctx := context.Background()
	cat, err := icetable.OpenCatalog(ctx, catalogURI, icetable.S3Props(laketest.S3Options()))
	if err != nil {
		t.Fatal(err)
	}
	defer icetable.Close(cat)
	tbl, err := cat.LoadTable(ctx, icetable.Ident(icetable.EventsTable))
	if err != nil {
		t.Fatal(err)
	}
	tasks, err := tbl.Scan().PlanFiles(ctx)
	if err != nil {
		t.Fatal(err)
	}
	inTable := map[string]int64{}
	for _, task := range tasks {
		p := task.File.FilePath()
		if _, dup := inTable[p]; dup {
			t.Errorf("table holds %s twice", p)
		}
		inTable[p] = task.File.Count()
	}
	named := map[string]int64{}
	for _, m := range c.manifests {
		for _, f := range m.Files {
			named[store.URI()+"/"+f.Key] = f.Events
		}
	}
	for p, n := range named {
		if got, ok := inTable[p]; !ok || got != n {
			t.Errorf("committed file %s (%d events): table has it %v with %d", p, n, ok, got)
		}
	}
	for p := range inTable {
		if _, ok := named[p]; !ok {
			t.Errorf("table holds %s, which no manifest names", p)
		}
	}
	pos, err := icetable.Positions(tbl)
	if err != nil {
		t.Fatal(err)
	}
	last := map[string]*lake.Manifest{}
	for _, m := range c.manifests {
		if l := last[m.Source]; l == nil || m.Seq > l.Seq {
			last[m.Source] = m
		}
	}
	for src, m := range last {
		var got icetable.Position
		for k, p := range pos {
			if strings.HasSuffix(lake.ManifestSourcePrefix(src), "/"+k+"/") {
				got = p
			}
		}
		if got != (icetable.Position{Seq: m.Seq, End: m.End}) {
			t.Errorf("table records source %s at %+v, the lake at seq %d end %d", src, got, m.Seq, m.End)
		}
	}
}

// readersPython is the Python with the outside readers (pyiceberg,
// DuckDB) that the local stack installs.
func readersPython(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("outside readers: not under -short")
	}
	py := os.Getenv("CLICKSTREAM_READERS_PYTHON")
	if py == "" {
		t.Fatal("CLICKSTREAM_READERS_PYTHON is not set: run deploy/local/stack.sh up (or tools) and source its env file")
	}
	return py
}

// readerView is what one outside reader saw of the events table.
type readerView struct {
	Rows     int64  `json:"rows"`
	Users    int64  `json:"users"`
	MinTs    int64  `json:"min_ts"`
	MaxTs    int64  `json:"max_ts"`
	Checksum int64  `json:"checksum"`
	TsType   string `json:"ts_type"`
}

// readWithOutsideReaders reads the events table with pyiceberg (through
// the catalog) and DuckDB (from the metadata file).
func readWithOutsideReaders(t *testing.T, catalogURI string) (pyiceberg, duckdb readerView) {
	t.Helper()
	py := readersPython(t)
	script, err := filepath.Abs(filepath.Join("..", "internal", "icetable", "testdata", "readers.py"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(py, script, catalogURI, icetable.Namespace+"."+icetable.EventsTable,
		"user_id", "ts", "url", "country").Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("readers.py: %v\n%s", err, stderr)
	}
	var views struct {
		Metadata  string     `json:"metadata"`
		PyIceberg readerView `json:"pyiceberg"`
		DuckDB    readerView `json:"duckdb"`
	}
	if err := json.Unmarshal(out, &views); err != nil {
		t.Fatalf("readers.py output %q: %v", out, err)
	}
	t.Logf("outside readers of %s: pyiceberg %+v, duckdb %+v", views.Metadata, views.PyIceberg, views.DuckDB)
	return views.PyIceberg, views.DuckDB
}

// TestTableExactlyOnceForOutsideReaders kills file ingests at each
// failpoint (data files written but no manifest; manifest written but not
// published to the table), resumes to the end, and then reads the lake's
// Iceberg table as outside users do: pyiceberg and DuckDB count exactly
// the committed events, and see ts as a timestamp with time zone.
func TestTableExactlyOnceForOutsideReaders(t *testing.T) {
	readersPython(t) // before any work: skip or fail early
	store := laketest.NewFile(t)
	lines := genNDJSON(t, "--seed", "5", "--events", "20000", "--invalid-ratio", "0.01")
	input := filepath.Join(t.TempDir(), "events.ndjson")
	var data []byte
	for _, l := range lines {
		data = append(append(data, l...), '\n')
	}
	if err := os.WriteFile(input, data, 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"ingest", "--from-file", input, "--lake", store.URI(), "--flush-records", "1000"}
	for _, crash := range []string{"before-manifest:3", "after-manifest:2", "before-manifest:1", "after-manifest:4"} {
		cmd := exec.Command(clickstreamBinary(t), args...)
		cmd.Env = append(os.Environ(), EnvCrashAt+"="+crash)
		out, err := cmd.CombinedOutput()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("run crashing at %s ended without SIGKILL: %v\n%s", crash, err, out)
		}
	}
	runCmd(t, args...)
	got := assertLake(t, store, lines)
	catalogURI, err := icetable.DefaultCatalogURI(store.URI())
	if err != nil {
		t.Fatal(err)
	}
	assertTable(t, store, catalogURI, got)
	if orphanDataFiles(t, store, got) == 0 {
		t.Fatal("the before-manifest crashes left no orphaned data file behind: the test proves nothing")
	}

	pyiceberg, duckdb := readWithOutsideReaders(t, catalogURI)
	users := map[string]bool{}
	minTs, maxTs := got.events[0].Timestamp, got.events[0].Timestamp
	for _, e := range got.events {
		users[e.UserID] = true
		minTs, maxTs = min(minTs, e.Timestamp), max(maxTs, e.Timestamp)
	}
	want := readerView{Rows: int64(len(got.events)), Users: int64(len(users)), MinTs: minTs, MaxTs: maxTs}
	for name, v := range map[string]readerView{"pyiceberg": pyiceberg, "duckdb": duckdb} {
		if v.Rows != want.Rows || v.Users != want.Users || v.MinTs != want.MinTs || v.MaxTs != want.MaxTs {
			t.Errorf("%s sees %d rows, %d users, ts %d..%d; committed: %d events, %d users, ts %d..%d",
				name, v.Rows, v.Users, v.MinTs, v.MaxTs, want.Rows, want.Users, want.MinTs, want.MaxTs)
		}
	}
	if pyiceberg.Checksum != duckdb.Checksum {
		t.Errorf("pyiceberg and DuckDB read different rows: checksums %d and %d", pyiceberg.Checksum, duckdb.Checksum)
	}
	if !strings.Contains(pyiceberg.TsType, "tz=") || !slices.Contains([]string{"TIMESTAMP WITH TIME ZONE"}, duckdb.TsType) {
		t.Errorf("ts is %q to pyiceberg and %q to DuckDB; want a timestamp with time zone", pyiceberg.TsType, duckdb.TsType)
	}
}
