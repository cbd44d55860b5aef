package coordinator

import (
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/dataco/clickstream/internal/aggregate"
	"github.com/dataco/clickstream/internal/lake"
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
