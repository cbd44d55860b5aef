package worker

import (
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/results"
	pb "github.com/dataco/clickstream/proto/clickstream/v1"
)

// TestCheckRollupTask: a roll-up's task reads its windows under the
// worker's --output-root or --lake-root only, for a key range of its
// shards and a window that is one period of its grain, and reads no lake
// files.
func TestCheckRollupTask(t *testing.T) {
	lakeRoots, _ := lake.CanonicalRoots([]string{"file:///data/lake"})
	outRoots, _ := lake.CanonicalRoots([]string{"file:///data/out"})
	day := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	good := &pb.RunTaskRequest{
		JobId: "j", TaskId: 1, Bucket: 1, Attempt: 1, PartialUri: "file:///data/out/r", PartialKey: results.PartialKey("j", 1),
		WindowFrom: timestamppb.New(day), WindowTo: timestamppb.New(day.Add(24 * time.Hour)),
		Rollup: &pb.RollupSpec{Grain: "day", WindowsUri: "file:///data/out/hourly", Shards: 2},
	}
	for _, c := range []struct {
		name   string
		change func(*pb.RunTaskRequest)
		want   error
	}{
		{"good", func(*pb.RunTaskRequest) {}, nil},
		{"windows under the lake root", func(r *pb.RunTaskRequest) { r.Rollup.WindowsUri = "file:///data/lake/hourly" }, nil},
		{"windows outside the roots", func(r *pb.RunTaskRequest) { r.Rollup.WindowsUri = "file:///etc" }, ErrForbidden},
		{"windows leading out", func(r *pb.RunTaskRequest) { r.Rollup.WindowsUri = "file:///data/out/../../etc" }, ErrForbidden},
		{"partial outside", func(r *pb.RunTaskRequest) { r.PartialUri = "file:///data/lake/r" }, ErrForbidden},
		{"key range", func(r *pb.RunTaskRequest) { r.Rollup.Shards = 1 }, ErrBadRequest},
		{"too many key ranges", func(r *pb.RunTaskRequest) { r.Rollup.Shards = 5000 }, ErrBadRequest},
		{"grain", func(r *pb.RunTaskRequest) { r.Rollup.Grain = "hour" }, ErrBadRequest},
		{"not a period", func(r *pb.RunTaskRequest) { r.WindowTo = timestamppb.New(day.Add(time.Hour)) }, ErrBadRequest},
		{"lake files", func(r *pb.RunTaskRequest) { r.LakeUri = "file:///data/lake" }, ErrBadRequest},
		{"negative budget", func(r *pb.RunTaskRequest) { r.Rollup.MemoryBudget = -1 }, ErrBadRequest},
		{"keeping sets", func(r *pb.RunTaskRequest) { r.Rollup.KeepSets = true }, nil},
		{"a week from days", func(r *pb.RunTaskRequest) {
			r.Rollup.Grain, r.Rollup.InputGrain, r.Rollup.WindowsUri = "week", "day", "file:///data/out/rollup/grain=day"
			r.WindowFrom, r.WindowTo = timestamppb.New(day.Add(-4*24*time.Hour)), timestamppb.New(day.Add(3*24*time.Hour))
		}, nil},
		{"a day from days", func(r *pb.RunTaskRequest) { r.Rollup.InputGrain = "day" }, ErrBadRequest},
		{"input grain", func(r *pb.RunTaskRequest) { r.Rollup.InputGrain = "hour" }, ErrBadRequest},
	} {
		t.Run(c.name, func(t *testing.T) {
			req := proto.Clone(good).(*pb.RunTaskRequest)
			c.change(req)
			_, err := checkTask(req, lakeRoots, outRoots)
			if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("err %v, want %v", err, c.want)
			}
		})
	}
}
