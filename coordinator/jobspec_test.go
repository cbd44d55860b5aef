package coordinator

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/dataco/clickstream/internal/aggregate"
	"github.com/dataco/clickstream/internal/aggregate/aggtest"
	"github.com/dataco/clickstream/internal/results"
	pb "github.com/dataco/clickstream/proto/clickstream/v1"
)

func TestJobSpecFlags(t *testing.T) {
	parse := func(t *testing.T, args ...string) (*pb.JobSpec, error) {
		t.Helper()
		var f JobSpecFlags
		fs := pflag.NewFlagSet("submit", pflag.ContinueOnError)
		f.AddFlags(fs, "lake URI")
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		return f.Spec()
	}
	const from, to = "2026-11-27T00:00:00Z", "2026-11-27T03:00:00Z"
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no from", []string{"--to", to, "--out", "file:///x"}, "--from is required"},
		{"no to", []string{"--from", from, "--out", "file:///x"}, "--to is required"},
		{"to before from", []string{"--from", to, "--to", from, "--out", "file:///x"}, "bad time range"},
		{"empty range", []string{"--from", from, "--to", from, "--out", "file:///x"}, "bad time range"},
		{"unparsable", []string{"--from", "2026-11-27", "--to", to, "--out", "file:///x"}, "not an RFC 3339 time"},
		{"no out", []string{"--from", from, "--to", to}, "--out is required"},
		{"bad format", []string{"--from", from, "--to", to, "--out", "file:///x", "--format", "xml"}, "--format"},
		{"negative attempts", []string{"--from", from, "--to", to, "--out", "file:///x", "--max-attempts", "-1"}, "must not be negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse(t, tc.args...)
			if !errors.Is(err, ErrJobSpec) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrJobSpec containing %q", err, tc.want)
			}
		})
	}

	t.Run("good", func(t *testing.T) {
		s, err := parse(t, "--from", "2026-11-27T01:00:00+01:00", "--to", to, "--out", "file://./out",
			"--lake", "s3://lake/clicks", "--format", "csv", "--session-timeout", "10m", "--max-attempts", "4", "--user-sets", "--include-bots")
		if err != nil {
			t.Fatal(err)
		}
		wd, _ := os.Getwd()
		if got := s.GetFrom().AsTime(); !got.Equal(time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)) {
			t.Errorf("from = %v", got)
		}
		if s.GetOutUri() != "file://"+filepath.ToSlash(filepath.Join(wd, "out")) || s.GetLakeUri() != "s3://lake/clicks" {
			t.Errorf("out %q, lake %q", s.GetOutUri(), s.GetLakeUri())
		}
		if s.GetFormat() != pb.OutputFormat_OUTPUT_FORMAT_CSV || s.GetSessionTimeout().AsDuration() != 10*time.Minute || s.GetMaxAttempts() != 4 || !s.GetUserSets() || !s.GetIncludeBots() {
			t.Errorf("spec = %v", s)
		}
	})
}

// TestIncludeBotsReachesTheTasks: a job that includes bots hands the wish
// to every task it runs, and its result counts bots like anyone: no
// bot_clicks, and clicks that add up to the default job's clicks plus bot
// clicks.
func TestIncludeBotsReachesTheTasks(t *testing.T) {
	h := newHarness(t, 4, 50, 1000)
	var with atomic.Int32
	h.worker("w", 4, func(ctx context.Context, req *pb.RunTaskRequest) (*pb.RunTaskResponse, error) {
		if req.GetIncludeBots() {
			with.Add(1)
		}
		return computeTask(ctx, req)
	})
	cl := h.client(h.coordinator(nil))
	sum := func() (clicks, bots int64) {
		t.Helper()
		rows, meta, err := results.ReadResult(context.Background(), h.out)
		if err != nil {
			t.Fatal(err)
		}
		if meta.IncludeBots != (with.Load() > 0) {
			t.Errorf("the result's include_bots is %v", meta.IncludeBots)
		}
		for _, r := range rows {
			clicks += r.Clicks
			bots += r.BotClicks
		}
		return clicks, bots
	}
	h.checkResult(h.run(cl, h.spec()))
	c0, b0 := sum()
	if with.Load() != 0 {
		t.Fatalf("a default job: %d tasks asked to include bots", with.Load())
	}
	spec := h.spec()
	spec.IncludeBots = true
	j := h.run(cl, spec)
	if j.GetState() != pb.JobState_JOB_STATE_SUCCEEDED {
		t.Fatalf("job %s: %s", StateName(j.GetState()), j.GetError())
	}
	if with.Load() != 4 {
		t.Fatalf("a job including bots: %d tasks asked for it, want 4", with.Load())
	}
	if !j.GetSpec().GetIncludeBots() {
		t.Error("the job's recorded spec lost include_bots")
	}
	c1, b1 := sum()
	if b0 == 0 || b1 != 0 || c1 != c0+b0 {
		t.Fatalf("clicks/bot clicks: %d/%d set apart, %d/%d included; want some bots, then all in clicks", c0, b0, c1, b1)
	}
}

// TestUserSetsReachTheTasks: a job that asks for user sets hands the wish
// to every task it runs; one that does not, to none.
func TestUserSetsReachTheTasks(t *testing.T) {
	h := newHarness(t, 4, 50, 1000)
	var with, without atomic.Int32
	h.worker("w", 4, func(ctx context.Context, req *pb.RunTaskRequest) (*pb.RunTaskResponse, error) {
		if req.GetUserSets() {
			with.Add(1)
		} else {
			without.Add(1)
		}
		return computeTask(ctx, req)
	})
	cl := h.client(h.coordinator(nil))
	h.checkResult(h.run(cl, h.spec()))
	if with.Load() != 0 || without.Load() != 4 {
		t.Fatalf("a job without user sets: %d tasks asked for them, %d not; want 0 and 4", with.Load(), without.Load())
	}
	ctx := context.Background()
	if m, err := results.ReadMeta(ctx, h.out); err != nil || len(m.Sets) != 0 {
		t.Fatalf("a job without user sets committed sets %v (%v)", m.Sets, err)
	}
	spec := h.spec()
	spec.UserSets = true
	j := h.run(cl, spec)
	h.checkResult(j)
	if with.Load() != 4 {
		t.Fatalf("a job with user sets: %d tasks asked for them, want 4", with.Load())
	}
	if !j.GetSpec().GetUserSets() {
		t.Error("the job's recorded spec lost user_sets")
	}
	// The committed run keeps each key's set: the hashes of exactly the
	// users the reference finds, with the result's counters.
	rows, m, err := results.ReadResult(ctx, h.out)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := results.ReadSets(ctx, h.out, m)
	if err != nil {
		t.Fatal(err)
	}
	ref := aggtest.Reference(h.events, tFrom, tTo, aggregate.DefaultSessionTimeout)
	n := 0
	for _, r := range rs {
		for rec, ok := r.Next(); ok; rec, ok = r.Next() {
			want := ref[aggtest.Key{URL: rec.URL, Country: rec.Country}]
			if want == nil {
				t.Fatalf("set of (%q, %q), a key the reference does not have", rec.URL, rec.Country)
			}
			var hashes []uint64
			for u := range want.Users {
				hashes = append(hashes, aggregate.UserHash(u))
			}
			slices.Sort(hashes)
			if got := rec.AppendHashes(nil); !slices.Equal(got, hashes) || rec.Clicks != want.Clicks ||
				rec.TimeSpentMs != want.Ms || rec.Samples != want.Samples || rec.Users != int64(len(want.Users)) {
				t.Fatalf("(%q, %q): %d hashes, counters %+v; want %d users, %+v", rec.URL, rec.Country, len(got), rec.Entry, len(hashes), want)
			}
			n++
		}
	}
	if n != len(rows) || n != len(ref) || m.SetHashes == 0 {
		t.Fatalf("%d sets, %d rows, %d reference keys, %d hashes", n, len(rows), len(ref), m.SetHashes)
	}
}
