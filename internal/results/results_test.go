package results

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/lake/laketest"
	"github.com/dataco/clickstream/internal/schema"
)

func rows(n int) []schema.Row {
	from := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	out := make([]schema.Row, n)
	for i := range out {
		out[i] = schema.Row{
			WindowStart: from, WindowEnd: from.Add(time.Hour),
			URL: "https://x.example/" + strings.Repeat("p", i+1), Country: "DE",
			Clicks: int64(10 + i), UniqueUsers: int64(1 + i), TotalTimeSpentS: 1.5 * float64(i), TimeSpentSamples: int64(i),
		}
		if i > 0 {
			avg := out[i].TotalTimeSpentS / float64(i)
			out[i].AvgTimeSpentS = &avg
		}
	}
	return out
}

func TestCommitAndRead(t *testing.T) {
	ctx := context.Background()
	for _, format := range []Format{NDJSON, CSV} {
		for _, n := range []int{0, 1, 5} {
			t.Run(string(format)+"/"+strings.Repeat("r", n), func(t *testing.T) {
				out := laketest.NewFile(t)
				want := rows(n)
				m, err := Commit(ctx, out, want, Meta{Job: "j1", Run: RunName("j1", 1), Format: format, RowsPerFile: 2})
				if err != nil {
					t.Fatal(err)
				}
				if wantFiles := max(1, (n+1)/2); len(m.Files) != wantFiles {
					t.Errorf("%d files, want %d", len(m.Files), wantFiles)
				}
				got, meta, err := ReadResult(ctx, out)
				if err != nil {
					t.Fatal(err)
				}
				if len(want) == 0 {
					want = nil
				}
				if len(got) == 0 {
					got = nil
				}
				if !reflect.DeepEqual(got, want) || meta.Rows != int64(n) || meta.Format != format {
					t.Fatalf("read back %d rows (meta %+v), want %d", len(got), meta, n)
				}
			})
		}
	}
}

func TestReplaceAndPrune(t *testing.T) {
	ctx := context.Background()
	out := laketest.NewFile(t)
	var metas []Meta
	for i := 1; i <= 3; i++ {
		m, err := Commit(ctx, out, rows(i), Meta{Job: "j", Run: RunName("j", i)})
		if err != nil {
			t.Fatal(err)
		}
		if err := Prune(ctx, out); err != nil {
			t.Fatal(err)
		}
		metas = append(metas, m)
	}
	if metas[1].Previous != metas[0].Run || metas[2].Previous != metas[1].Run {
		t.Errorf("previous runs: %q %q", metas[1].Previous, metas[2].Previous)
	}
	objs, err := out.List(ctx, RunsPrefix)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if strings.Contains(o.Key, metas[0].Run+"/") {
			t.Errorf("%s not pruned", o.Key)
		}
	}
	got, _, err := ReadResult(ctx, out)
	if err != nil || len(got) != 3 {
		t.Fatalf("%d rows, %v", len(got), err)
	}
	// Garbage of a failed commit is pruned too.
	if err := out.Put(ctx, RunsPrefix+"crashed-1/part-00000.ndjson", []byte("{}\n")); err != nil {
		t.Fatal(err)
	}
	if err := Prune(ctx, out); err != nil {
		t.Fatal(err)
	}
	if _, err := out.Get(ctx, RunsPrefix+"crashed-1/part-00000.ndjson"); !errors.Is(err, lake.ErrNotExist) {
		t.Errorf("garbage run kept: %v", err)
	}
}

func TestReadErrors(t *testing.T) {
	ctx := context.Background()
	out := laketest.NewFile(t)
	if _, _, err := ReadResult(ctx, out); !errors.Is(err, ErrNoResult) {
		t.Fatalf("empty store: %v", err)
	}
	for _, bad := range []string{"{", `{"version":9,"run":"x","format":"ndjson"}`, `{"version":1,"run":"","format":"ndjson"}`, `{"version":1,"run":"x","format":"xml"}`} {
		if err := out.Put(ctx, SuccessKey, []byte(bad)); err != nil {
			t.Fatal(err)
		}
		if _, _, err := ReadResult(ctx, out); !errors.Is(err, ErrBadMeta) {
			t.Errorf("%s: %v", bad, err)
		}
	}
	// _SUCCESS naming a missing file.
	if err := out.Put(ctx, SuccessKey, []byte(`{"version":1,"run":"x","format":"ndjson","files":["_runs/x/part-00000.ndjson"],"rows":1}`)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ReadResult(ctx, out); !errors.Is(err, lake.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	if _, err := Commit(ctx, out, nil, Meta{Run: "a/b"}); err == nil {
		t.Error("bad run name accepted")
	}
}

func TestParseFormat(t *testing.T) {
	for in, want := range map[string]Format{"": NDJSON, "ndjson": NDJSON, "JSON": NDJSON, "csv": CSV, " CSV ": CSV} {
		if got, err := ParseFormat(in); err != nil || got != want {
			t.Errorf("ParseFormat(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseFormat("parquet"); err == nil {
		t.Error("parquet accepted")
	}
	if got := PartialKey("j", 7); got != "_jobs/j/partials/task-00007.bin" {
		t.Errorf("PartialKey = %s", got)
	}
}

// Each job that commits to an output makes a new revision; a retried
// commit of the same job and a finalization keep it. Every row carries
// its result's provenance.
func TestRevisions(t *testing.T) {
	ctx := context.Background()
	for _, format := range []Format{NDJSON, CSV} {
		t.Run(string(format), func(t *testing.T) {
			out := laketest.NewFile(t)
			wm := time.Date(2026, 11, 27, 1, 35, 0, 0, time.UTC)
			check := func(what string, m Meta, rev int64, final bool, watermark *time.Time) {
				t.Helper()
				got, read, err := ReadResult(ctx, out)
				if err != nil {
					t.Fatal(err)
				}
				if m.Revision != rev || read.Revision != rev || read.Final != final || m.Final != final {
					t.Errorf("%s: revision %d (read %d), final %v (read %v); want %d, %v", what, m.Revision, read.Revision, m.Final, read.Final, rev, final)
				}
				if (read.Watermark == nil) != (watermark == nil) || (watermark != nil && !read.Watermark.Equal(*watermark)) {
					t.Errorf("%s: watermark %v, want %v", what, read.Watermark, watermark)
				}
				if len(got) != 3 {
					t.Fatalf("%s: %d rows", what, len(got))
				}
				for _, r := range got {
					if r.Revision != rev || r.Final != final || !r.ComputedAt.Equal(read.ComputedAt) || r.EventsSnapshot != read.EventsSnapshot ||
						(r.Watermark == nil) != (watermark == nil) || (watermark != nil && !r.Watermark.Equal(*watermark)) {
						t.Errorf("%s: row %+v, meta %+v", what, r, read)
					}
				}
			}
			m1, err := Commit(ctx, out, rows(3), Meta{Job: "a", Run: RunName("a", 1), Format: format, EventsSnapshot: 42})
			if err != nil {
				t.Fatal(err)
			}
			check("first", m1, 1, false, nil)
			if m1.ComputedAt.IsZero() {
				t.Error("no computed_at")
			}
			// The same job's commit again (a retried commit attempt).
			m1b, err := Commit(ctx, out, rows(3), Meta{Job: "a", Run: RunName("a", 2), Format: format, EventsSnapshot: 42})
			if err != nil {
				t.Fatal(err)
			}
			check("retried commit", m1b, 1, false, nil)
			if !m1b.ComputedAt.Equal(m1.ComputedAt) {
				t.Errorf("retried commit: computed_at %v, want %v", m1b.ComputedAt, m1.ComputedAt)
			}
			// Another job: a re-run.
			m2, err := Commit(ctx, out, rows(3), Meta{Job: "b", Run: RunName("b", 1), Format: format, Watermark: &wm})
			if err != nil {
				t.Fatal(err)
			}
			check("re-run", m2, 2, false, &wm)
			// Finalizing keeps the revision and computed_at, moves the
			// watermark, and is idempotent.
			later := wm.Add(time.Hour)
			if _, err := Finalize(ctx, out, "a", later); !errors.Is(err, ErrSuperseded) {
				t.Errorf("finalizing a replaced job's result: %v", err)
			}
			check("after a superseded finalize", m2, 2, false, &wm)
			f, err := Finalize(ctx, out, "b", later)
			if err != nil {
				t.Fatal(err)
			}
			check("finalized", f, 2, true, &later)
			if !f.ComputedAt.Equal(m2.ComputedAt) || f.Previous != m2.Run || f.Run == m2.Run {
				t.Errorf("finalized: %+v after %+v", f, m2)
			}
			again, err := Finalize(ctx, out, "b", later.Add(time.Hour))
			if err != nil || again.Run != f.Run {
				t.Errorf("finalizing again: %+v, %v", again, err)
			}
			check("finalized twice", again, 2, true, &later)
			if err := Prune(ctx, out); err != nil {
				t.Fatal(err)
			}
			// A late re-run after that: a new, provisional revision.
			m3, err := Commit(ctx, out, rows(3), Meta{Job: "c", Run: RunName("c", 1), Format: format, Watermark: &later, Final: true})
			if err != nil {
				t.Fatal(err)
			}
			check("late re-run", m3, 3, true, &later)
		})
	}
}

// A result committed before revisions existed counts as revision 1.
func TestRevisionAfterOlderResult(t *testing.T) {
	ctx := context.Background()
	out := laketest.NewFile(t)
	if _, err := Commit(ctx, out, rows(1), Meta{Job: "old", Run: RunName("old", 1)}); err != nil {
		t.Fatal(err)
	}
	data, err := out.Get(ctx, SuccessKey)
	if err != nil {
		t.Fatal(err)
	}
	legacy := strings.Replace(string(data), `"revision": 1,`, "", 1)
	if legacy == string(data) {
		t.Fatalf("no revision in %s", data)
	}
	if err := out.Put(ctx, SuccessKey, []byte(legacy)); err != nil {
		t.Fatal(err)
	}
	m, err := Commit(ctx, out, rows(1), Meta{Job: "new", Run: RunName("new", 1)})
	if err != nil || m.Revision != 2 {
		t.Errorf("after a result without a revision: revision %d, %v", m.Revision, err)
	}
}
