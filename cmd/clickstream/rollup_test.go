package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dataco/clickstream/coordinator"
	"github.com/dataco/clickstream/internal/aggregate"
	"github.com/dataco/clickstream/internal/cluster/clustertest"
	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/results"
	"github.com/dataco/clickstream/internal/rollup"
	"github.com/dataco/clickstream/internal/schema"
)

// TestRollupCommand: clickstream rollup over a bare path of hourly
// windows (as the scheduler lays them out) commits the day and reports
// it; a bad grain is a usage error; a day with a missing window fails
// unless --allow-gaps.
func TestRollupCommand(t *testing.T) {
	ctx := context.Background()
	base := filepath.Join(t.TempDir(), "hourly")
	day := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	events := clustertest.Events(4, 80, 2_000, day, day.Add(24*time.Hour))
	for hr := range 24 {
		if hr == 13 {
			continue // not processed
		}
		w := aggregate.Window{From: day.Add(time.Duration(hr) * time.Hour), To: day.Add(time.Duration(hr+1) * time.Hour)}
		out, err := lake.Open(ctx, coordinator.WindowOut("file://"+base, w.From), lake.S3Options{})
		if err != nil {
			t.Fatal(err)
		}
		p := aggregate.Compute(events, w, 0)
		m := results.Meta{Job: "j", Run: "j-1", From: w.From, To: w.To, SessionTimeout: aggregate.DefaultSessionTimeout.String()}
		if err := results.WriteSets(ctx, out, &m, p.UserSetEntries()); err != nil {
			t.Fatal(err)
		}
		if _, err := results.Commit(ctx, out, p.Result(w), m); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"rollup", "--out", base, "--from", "2026-01-05T10:00:00Z", "--grain", "day"}
	if code, _, stderr := runArgs(t, append(args, "--grain", "fortnight")...); code != 2 || !strings.Contains(stderr, "grain") {
		t.Fatalf("bad grain: exit %d, %s", code, stderr)
	}
	if code, _, stderr := runArgs(t, args...); code != 1 || !strings.Contains(stderr, "do not cover") {
		t.Fatalf("a missing window: exit %d, %s", code, stderr)
	}
	code, stdout, stderr := runArgs(t, append(args, "--allow-gaps", "--memory-budget", "4096", "--shards", "2")...)
	if code != 0 || !strings.Contains(stdout, "rollup day 2026-01-05: 23 windows") || !strings.Contains(stdout, "1 gaps") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	out, err := lake.Open(ctx, rollup.OutURI("file://"+base+"/rollup", schema.GrainDay, day), lake.S3Options{})
	if err != nil {
		t.Fatal(err)
	}
	rows, m, err := results.ReadResult(ctx, out)
	if err != nil || m.Grain != schema.GrainDay || m.Warning == "" || len(rows) == 0 {
		t.Fatalf("committed day: %d rows, meta %+v, %v", len(rows), m, err)
	}
	if last := rows[0]; last.URL != schema.All || last.Country != schema.All || last.Grain != schema.GrainDay {
		t.Fatalf("first row %+v: want everything's", last)
	}
}
