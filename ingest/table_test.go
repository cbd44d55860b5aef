package ingest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/dataco/clickstream/internal/icetable"
	"github.com/dataco/clickstream/internal/icetable/icetabletest"
	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/lake/laketest"
)

// assertTable checks that the lake's Iceberg events table holds exactly
// the data files the lake's manifests name, each once with its event
// count: what an outside reader of the table sees is what ingest
// committed, whatever crashed attempts left in the lake's folders.
func assertTable(t *testing.T, store lake.Store, catalogURI string, opts icetable.CatalogOptions, c lakeContent) {
	t.Helper()
	ctx := context.Background()
	opts.Props = icetable.S3Props(laketest.S3Options())
	cat, err := icetable.OpenCatalog(ctx, catalogURI, opts)
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

// TestTableExactlyOnceForOutsideReaders kills file ingests at each
// failpoint (data files written but no manifest; manifest written but not
// published to the table), resumes to the end, and then reads the lake's
// Iceberg table as outside users do: pyiceberg and DuckDB count exactly
// the committed events, and see ts as a timestamp with time zone.
func TestTableExactlyOnceForOutsideReaders(t *testing.T) {
	icetabletest.Python(t) // before any work: skip or fail early
	store := laketest.NewFile(t)
	got := ingestWithCrashes(t, store, 20000)
	catalogURI, err := icetable.DefaultCatalogURI(store.URI())
	if err != nil {
		t.Fatal(err)
	}
	assertTable(t, store, catalogURI, icetable.CatalogOptions{}, got)
	if orphanDataFiles(t, store, got) == 0 {
		t.Fatal("the before-manifest crashes left no orphaned data file behind: the test proves nothing")
	}

	pyiceberg, duckdb := icetabletest.Read(t, catalogURI, icetable.Namespace+"."+icetable.EventsTable, "user_id", "ts", "url", "country")
	users := map[string]bool{}
	minTs, maxTs := got.events[0].Timestamp, got.events[0].Timestamp
	for _, e := range got.events {
		users[e.UserID] = true
		minTs, maxTs = min(minTs, e.Timestamp), max(maxTs, e.Timestamp)
	}
	want := icetabletest.View{Rows: int64(len(got.events)), Distinct: int64(len(users)), Min: minTs, Max: maxTs}
	for name, v := range map[string]icetabletest.View{"pyiceberg": pyiceberg, "duckdb": duckdb} {
		if v.Rows != want.Rows || v.Distinct != want.Distinct || v.Min != want.Min || v.Max != want.Max {
			t.Errorf("%s sees %d rows, %d users, ts %d..%d; committed: %d events, %d users, ts %d..%d",
				name, v.Rows, v.Distinct, v.Min, v.Max, want.Rows, want.Distinct, want.Min, want.Max)
		}
	}
	if pyiceberg.Checksum != duckdb.Checksum {
		t.Errorf("pyiceberg and DuckDB read different rows: checksums %d and %d", pyiceberg.Checksum, duckdb.Checksum)
	}
	// Compacted, the table holds the same rows in fewer files, and a job
	// on the lake is unaffected (the lake keeps its files).
	runCmd(t, "compact", "--lake", store.URI(), "--closed-after", "0s")
	cPy, cDuck := icetabletest.Read(t, catalogURI, icetable.Namespace+"."+icetable.EventsTable, "user_id", "ts", "url", "country")
	if cPy != pyiceberg || cDuck != duckdb {
		t.Errorf("after compaction the readers see %+v and %+v; before, %+v and %+v", cPy, cDuck, pyiceberg, duckdb)
	}
	if again := readLake(t, store); len(again.events) != len(got.events) {
		t.Errorf("after compaction the lake reads %d events, before %d", len(again.events), len(got.events))
	}

	// The dead letters: every rejected record once, in the rejected table.
	rejPy, rejDuck := icetabletest.Read(t, catalogURI, icetable.Namespace+"."+icetable.RejectedTable, "reason", "ingest_time", "source", "position", "raw")
	for name, v := range map[string]icetabletest.View{"pyiceberg": rejPy, "duckdb": rejDuck} {
		if v.Rows != int64(len(got.rejected)) {
			t.Errorf("%s sees %d dead letters, the lake holds %d", name, v.Rows, len(got.rejected))
		}
	}
	if rejPy.Checksum != rejDuck.Checksum || len(got.rejected) == 0 {
		t.Errorf("dead letters: checksums %d (pyiceberg) and %d (DuckDB) over %d records", rejPy.Checksum, rejDuck.Checksum, len(got.rejected))
	}
	if !strings.Contains(pyiceberg.Type, "tz=") || duckdb.Type != "TIMESTAMP WITH TIME ZONE" {
		t.Errorf("ts is %q to pyiceberg and %q to DuckDB; want a timestamp with time zone", pyiceberg.Type, duckdb.Type)
	}
}

// TestTableExactlyOnceOnPostgresCatalog: file ingests publishing to a
// PostgreSQL catalog, killed at each failpoint and resumed, leave the
// table holding every committed data file once.
func TestTableExactlyOnceOnPostgresCatalog(t *testing.T) {
	catalogURI, opts := icetabletest.Postgres(t)
	store := laketest.NewFile(t)
	got := ingestWithCrashes(t, store, 10000, "--catalog", catalogURI, "--catalog-password-file", opts.PasswordFile)
	assertTable(t, store, catalogURI, opts, got)
	// Outside readers find the table through the PostgreSQL catalog too.
	t.Setenv(icetabletest.EnvCatalogPasswordFile, opts.PasswordFile)
	py, duck := icetabletest.Read(t, catalogURI, icetable.Namespace+"."+icetable.EventsTable, "user_id", "ts", "url", "country")
	if py.Rows != int64(len(got.events)) || duck.Rows != py.Rows || duck.Checksum != py.Checksum {
		t.Errorf("through the PostgreSQL catalog pyiceberg sees %+v, DuckDB %+v; the lake holds %d events", py, duck, len(got.events))
	}
}

// ingestWithCrashes ingests a file of events into store with a commit
// every 1000 records, killing ingest at each failpoint (data files
// written but no manifest; manifest written but not published to the
// table) and resuming, then once to the end; it returns what the lake
// holds, checked against the file.
func ingestWithCrashes(t *testing.T, store lake.Store, events int, flags ...string) lakeContent {
	t.Helper()
	lines := genNDJSON(t, "--seed", "5", "--events", strconv.Itoa(events), "--invalid-ratio", "0.01")
	input := filepath.Join(t.TempDir(), "events.ndjson")
	var data []byte
	for _, l := range lines {
		data = append(append(data, l...), '\n')
	}
	if err := os.WriteFile(input, data, 0o644); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"ingest", "--from-file", input, "--lake", store.URI(), "--flush-records", "1000"}, flags...)
	for _, crash := range []string{"before-manifest:3", "after-manifest:2", "before-manifest:1", "after-manifest:4"} {
		cmd := exec.Command(clickstreamBinary(t), args...)
		cmd.Env = append(os.Environ(), EnvCrashAt+"="+crash)
		out, err := cmd.CombinedOutput()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("run crashing at %s ended without SIGKILL: %v\n%s", crash, err, out)
		}
	}
	runCmd(t, args...)
	return assertLake(t, store, lines)
}
