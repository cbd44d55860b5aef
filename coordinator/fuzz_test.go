package coordinator

import (
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/dataco/clickstream/internal/aggregate"
	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/rollup"
	"github.com/dataco/clickstream/internal/schema"
	pb "github.com/dataco/clickstream/proto/clickstream/v1"
)

// FuzzValidSpec feeds job specs to the submission checks and checks what
// they accept: an output under --output-root, canonical (canonical again
// gives the same) and apart from the lake; a window, session timeout and
// attempts within the limits. They refuse with ErrInvalidJob only, never
// panic, and accept the JobSpec of what they accepted as that very spec.
func FuzzValidSpec(f *testing.F) {
	from := tFrom.Unix()
	f.Add(from, int32(0), from+3*3600, int32(0), "file:///results/hourly", "", int32(0), int64(0), true, int32(0))
	f.Add(from, int32(0), from+3600, int32(5), "s3://results/jobs/x/", "s3://lake/clicks", int32(2), int64(10*time.Minute), true, int32(3))
	f.Add(from, int32(0), from+3600, int32(0), "file:///results/../etc", "file:///data/lake", int32(1), int64(-1), true, int32(101))
	f.Add(from, int32(-1), from, int32(0), "file:///results", "file:///results/lake", int32(9), int64(0), false, int32(-1))
	f.Add(from, int32(0), from+32*24*3600, int32(0), "file://./results", "gopher://x", int32(0), int64(25*time.Hour), true, int32(1))
	cfg := NewConfig()
	cfg.Lake = "file:///data/lake"
	roots, err := lake.CanonicalRoots([]string{"file:///results", "s3://results/jobs"})
	if err != nil {
		f.Fatal(err)
	}
	cfg.OutputRoots = roots
	f.Fuzz(func(t *testing.T, fromSec int64, fromNanos int32, toSec int64, toNanos int32, out, lakeURI string,
		format int32, sessionTimeout int64, withSession bool, maxAttempts int32) {
		s := &pb.JobSpec{
			From:   &timestamppb.Timestamp{Seconds: fromSec, Nanos: fromNanos},
			To:     &timestamppb.Timestamp{Seconds: toSec, Nanos: toNanos},
			OutUri: out, LakeUri: lakeURI, Format: pb.OutputFormat(format), MaxAttempts: maxAttempts,
		}
		if withSession {
			s.SessionTimeout = durationpb.New(time.Duration(sessionTimeout))
		}
		js, err := validSpec(&cfg, s)
		if err != nil {
			if !errors.Is(err, ErrInvalidJob) {
				t.Fatalf("error %v does not match ErrInvalidJob", err)
			}
			return
		}
		if !lake.Under(js.Out, cfg.OutputRoots) || overlaps(js.Out, js.Lake) {
			t.Fatalf("accepted output %s (lake %s) for roots %v", js.Out, js.Lake, cfg.OutputRoots)
		}
		for _, uri := range []string{js.Out, js.Lake} {
			if c, err := lake.Canonical(uri); err != nil || c != uri {
				t.Fatalf("accepted store %s canonicalises to %q, %v", uri, c, err)
			}
		}
		if (aggregate.Window{From: js.From, To: js.To}).Validate() != nil || js.To.Sub(js.From) > cfg.Limits.MaxWindow {
			t.Fatalf("accepted window [%v, %v)", js.From, js.To)
		}
		if js.SessionTimeout <= 0 || js.SessionTimeout > cfg.Limits.MaxSessionTimeout || js.MaxAttempts < 1 || js.MaxAttempts > 100 {
			t.Fatalf("accepted session timeout %v, max attempts %d", js.SessionTimeout, js.MaxAttempts)
		}
		again, err := validSpec(&cfg, &pb.JobSpec{
			From: timestamppb.New(js.From), To: timestamppb.New(js.To), OutUri: js.Out, LakeUri: js.Lake,
			Format: formatToPB(js.Format), SessionTimeout: durationpb.New(js.SessionTimeout), MaxAttempts: int32(js.MaxAttempts),
		})
		if err != nil || again != js {
			t.Fatalf("the accepted spec %+v validates to %+v, %v", js, again, err)
		}
	})
}

// FuzzValidRollupSpec feeds roll-up job specs to the submission checks:
// what they accept is one period of a known grain, 1 to 1024 key ranges,
// budgets not negative, an output and windows canonical and under
// --output-root, the windows not inside the output; they refuse with
// ErrInvalidJob only, never panic, and accept the JobSpec of what they
// accepted as that very spec.
func FuzzValidRollupSpec(f *testing.F) {
	day := tFrom.Unix()
	f.Add(day, day+24*3600, "day", "file:///results/hourly", "file:///results/hourly/rollup/grain=day/period=x", int32(4), int64(0), int64(0), "", "", false)
	f.Add(day, day+7*24*3600, "week", "s3://results/jobs/w", "s3://results/jobs/r", int32(1024), int64(1<<20), int64(1000), "", "day", true)
	f.Add(day, day+3600, "day", "file:///results/hourly", "file:///results/r", int32(2), int64(0), int64(0), "", "", false)
	f.Add(day, day+24*3600, "fortnight", "file:///etc", "file:///results/r", int32(0), int64(-1), int64(-1), "file:///data/lake", "hour", false)
	f.Add(day, day+24*3600, "day", "file:///results/r/w", "file:///results/r", int32(1025), int64(0), int64(0), "", "", false)
	f.Add(day, day+24*3600, "day", "file:///results/r/rollup/grain=day", "file:///results/r/rollup/grain=day/period=x", int32(2), int64(0), int64(0), "", "day", true)
	cfg := NewConfig()
	cfg.Lake = "file:///data/lake"
	roots, err := lake.CanonicalRoots([]string{"file:///results", "s3://results/jobs"})
	if err != nil {
		f.Fatal(err)
	}
	cfg.OutputRoots = roots
	f.Fuzz(func(t *testing.T, fromSec, toSec int64, grain, windows, out string, shards int32, budget, exact int64, lakeURI, inputGrain string, keepSets bool) {
		s := &pb.JobSpec{
			From: &timestamppb.Timestamp{Seconds: fromSec}, To: &timestamppb.Timestamp{Seconds: toSec}, OutUri: out, LakeUri: lakeURI,
			Rollup: &pb.RollupSpec{Grain: grain, WindowsUri: windows, Shards: shards, MemoryBudget: budget, ExactLimit: exact,
				InputGrain: inputGrain, KeepSets: keepSets},
		}
		js, err := validSpec(&cfg, s)
		if err != nil {
			if !errors.Is(err, ErrInvalidJob) {
				t.Fatalf("error %v does not match ErrInvalidJob", err)
			}
			return
		}
		r := js.Rollup
		pf, pt, perr := rollup.Period(grain, js.From)
		switch {
		case r == nil || perr != nil || !pf.Equal(js.From) || !pt.Equal(js.To):
			t.Fatalf("accepted [%v, %v) of grain %q", js.From, js.To, grain)
		case r.Shards < 1 || r.Shards > maxRollupShards || r.MemoryBudget < 0 || r.ExactLimit < 0:
			t.Fatalf("accepted %+v", r)
		case r.InputGrain != "" && (r.InputGrain != schema.GrainDay || grain == schema.GrainDay) || r.KeepSets != keepSets:
			t.Fatalf("accepted input grain %q (given %q) into %q, keeping sets %v (given %v)", r.InputGrain, inputGrain, grain, r.KeepSets, keepSets)
		case !lake.Under(js.Out, roots) || !lake.Under(r.Windows, roots) || lake.Under(r.Windows, []string{js.Out}) || js.Lake != "":
			t.Fatalf("accepted output %s, windows %s, lake %q for roots %v", js.Out, r.Windows, js.Lake, roots)
		}
		for _, uri := range []string{js.Out, r.Windows} {
			if c, err := lake.Canonical(uri); err != nil || c != uri {
				t.Fatalf("accepted store %s canonicalises to %q, %v", uri, c, err)
			}
		}
		rec := jobRecord{ID: "j", Spec: js}
		again, err := validSpec(&cfg, rec.toPB(nil, nil).GetSpec())
		if err != nil || encode(again) != encode(js) {
			t.Fatalf("the accepted spec %+v validates to %+v, %v", js, again, err)
		}
	})
}
