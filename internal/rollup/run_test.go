package rollup

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dataco/clickstream/internal/cluster/clustertest"
	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/lake/laketest"
	"github.com/dataco/clickstream/internal/results"
	"github.com/dataco/clickstream/internal/schema"
)

type fakePublisher struct {
	metas []results.Meta
	fail  error
}

func (p *fakePublisher) Name() string { return "fake" }
func (p *fakePublisher) Publish(ctx context.Context, out lake.Store, m results.Meta) error {
	rows, got, err := results.ReadResult(ctx, out)
	if err != nil {
		return err
	}
	if got.Run != m.Run || int64(len(rows)) != m.Rows {
		return errors.New("published meta is not the committed one")
	}
	p.metas = append(p.metas, m)
	return p.fail
}

// TestRunOnS3: windows laid out as the scheduler does in the real S3
// store; Run finds the day's windows (not the next day's), commits the
// roll-up to its own folder, publishes it, and a second run replaces it.
func TestRunOnS3(t *testing.T) {
	ctx := context.Background()
	base := laketest.NewS3(t)
	from, to, _ := Period(schema.GrainDay, time.Date(2026, 11, 27, 5, 0, 0, 0, time.UTC))
	events := clustertest.Events(21, 200, 6_000, from, to.Add(2*time.Hour))
	var windows []Window
	for h := from; h.Before(to.Add(2 * time.Hour)); h = h.Add(time.Hour) {
		ws, err := lake.Open(ctx, base.URI()+"/"+windowFolder(h), laketest.S3Options())
		if err != nil {
			t.Fatal(err)
		}
		w := commitWindowTo(t, ws, events, h, h.Add(time.Hour))
		if h.Before(to) {
			windows = append(windows, w)
		}
	}
	want, _, err := Compute(ctx, Config{Shards: 1}, schema.GrainDay, from, to, windows)
	if err != nil {
		t.Fatal(err)
	}
	pub := &fakePublisher{}
	cfg := NewRunConfig()
	cfg.Windows, cfg.From, cfg.S3, cfg.Shards = base.URI(), from.Add(3*time.Hour), laketest.S3Options(), 2
	cfg.Publishers = []Publisher{pub}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	for run := 1; run <= 3; run++ {
		reps, err := Run(ctx, cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(reps) != 1 || reps[0].Stats.Windows != 24 || !reps[0].From.Equal(from) || reps[0].Published[0] != "fake: ok" {
			t.Fatalf("run %d: reports %+v", run, reps)
		}
		out, err := lake.Open(ctx, OutURI(base.URI()+"/rollup", schema.GrainDay, from), laketest.S3Options())
		if err != nil {
			t.Fatal(err)
		}
		rows, m, err := results.ReadResult(ctx, out)
		if err != nil {
			t.Fatal(err)
		}
		if m.Grain != schema.GrainDay || len(m.RollupOf) != 24 || !m.From.Equal(from) || !m.To.Equal(to) || m.Lake != "" && m.SessionTimeout == "" {
			t.Fatalf("meta %+v", m)
		}
		if len(rows) != len(want) {
			t.Fatalf("%d rows committed, want %d", len(rows), len(want))
		}
		for i := range rows {
			if !schema.EqualMetrics(rows[i], want[i]) {
				t.Fatalf("row %d: %+v, want %+v", i, rows[i], want[i])
			}
			// Each run is the period's next revision; windows that say
			// nothing of their watermark make a roll-up that is not final.
			if rows[i].Revision != int64(run) || rows[i].Final || rows[i].Watermark != nil {
				t.Fatalf("run %d: row %d: revision %d, final %v, watermark %v; want revision %d, not final, no watermark",
					run, i, rows[i].Revision, rows[i].Final, rows[i].Watermark, run)
			}
		}
		if m.Revision != int64(run) {
			t.Fatalf("run %d: revision %d", run, m.Revision)
		}
		// Bot clicks add up: the (all, all) row holds every window's.
		var bots, windowBots int64
		for _, r := range rows {
			if r.URL == schema.All && r.Country == schema.All {
				bots = r.BotClicks
			}
		}
		for _, w := range windows {
			wrows, _, err := results.ReadResult(ctx, w.Out)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range wrows {
				windowBots += r.BotClicks
			}
		}
		if bots != windowBots || bots == 0 {
			t.Fatalf("run %d: the day's bot clicks %d, the windows' %d (want equal, not 0)", run, bots, windowBots)
		}
		objs, err := out.List(ctx, results.RunsPrefix)
		if err != nil {
			t.Fatal(err)
		}
		runs := map[string]bool{}
		for _, o := range objs {
			r, _, _ := strings.Cut(strings.TrimPrefix(o.Key, results.RunsPrefix), "/")
			runs[r] = true
		}
		if len(runs) != min(run, 2) {
			t.Errorf("run %d: %d runs kept, want %d (the committed one and the one it replaced)", run, len(runs), min(run, 2))
		}
		time.Sleep(2 * time.Millisecond) // run names are in milliseconds
	}
	if len(pub.metas) != 3 {
		t.Fatalf("%d publications, want 3", len(pub.metas))
	}
}

// TestWeekFromDays: the days' roll-ups keep their sets, and a week rolled
// up from its seven days equals the week rolled up from its windows, row
// for row.
func TestWeekFromDays(t *testing.T) {
	ctx := context.Background()
	base := laketest.NewFile(t)
	from, to, _ := Period(schema.GrainWeek, time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC))
	events := clustertest.Events(41, 300, 20_000, from, to)
	for h := from; h.Before(to); h = h.Add(6 * time.Hour) {
		ws, err := lake.Open(ctx, base.URI()+"/"+windowFolder(h), lake.S3Options{})
		if err != nil {
			t.Fatal(err)
		}
		commitWindowTo(t, ws, events, h, h.Add(6*time.Hour))
	}
	run := func(grain, input, out string) []schema.Row {
		t.Helper()
		cfg := NewRunConfig()
		cfg.Windows, cfg.Out, cfg.Grain, cfg.InputGrain, cfg.From, cfg.To = base.URI(), out, grain, input, from, to
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		reps, err := Run(ctx, cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		o, err := lake.Open(ctx, reps[len(reps)-1].Out, lake.S3Options{})
		if err != nil {
			t.Fatal(err)
		}
		rows, m, err := results.ReadResult(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Sets) == 0 || m.SetHashes == 0 {
			t.Fatalf("%s roll-up of %ss kept no sets", grain, input)
		}
		return rows
	}
	days := base.URI() + "/rollup"
	if n := len(run(schema.GrainDay, schema.GrainWindow, days)); n == 0 {
		t.Fatal("no day rows")
	}
	fromDays := run(schema.GrainWeek, schema.GrainDay, days)
	fromWindows := run(schema.GrainWeek, schema.GrainWindow, base.URI()+"/rollup-direct")
	if len(fromDays) != len(fromWindows) {
		t.Fatalf("%d rows from days, %d from windows", len(fromDays), len(fromWindows))
	}
	for i := range fromDays {
		if !schema.EqualMetrics(fromDays[i], fromWindows[i]) {
			t.Fatalf("row %d: from days %+v, from windows %+v", i, fromDays[i], fromWindows[i])
		}
	}
}
