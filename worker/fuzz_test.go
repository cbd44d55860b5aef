package worker

import (
	"errors"
	"path"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/results"
	"github.com/dataco/clickstream/internal/rollup"
	pb "github.com/dataco/clickstream/proto/clickstream/v1"
)

// FuzzCheckTask feeds RunTask requests to the worker's validation and
// checks what it accepts: every store under the worker's roots, in
// canonical form (canonical again gives the same); every file key a
// clean relative key under events/ that stays, joined to its lake, under
// the lake; one recorded size per key; the task's own partial key. It
// refuses with ErrBadRequest or ErrForbidden only, never panics, and
// accepts its own normalised request again, unchanged.
func FuzzCheckTask(f *testing.F) {
	const key = "events/hour=2026-11-27T00/bucket=0001/kafka.clicks.0-000000000001-w1.parquet"
	f.Add("job-1", int32(1), int32(1), int32(1), "file:///data/lake", "file:///data/out", results.PartialKey("job-1", 1), key, int64(1234), 0, int64(0), int64(3600))
	f.Add("job-1", int32(0), int32(0), int32(2), "file://localhost/data/lake/", "s3://results/jobs/j", results.PartialKey("job-1", 0), key+"\n"+key, int64(7), 0, int64(0), int64(60))
	f.Add("..", int32(0), int32(0), int32(1), "file:///data/lake/../etc", "file:///data/out/../../tmp", "_jobs/../partials/task-00000.bin", "/etc/passwd\nevents/../x.parquet", int64(1), 1, int64(10), int64(5))
	f.Add("j", int32(3), int32(3), int32(1), "s3://lake/clicks/sub", "file:///data/out/x", results.PartialKey("j", 3), "events/a.ndjson.gz", int64(-1), -1, int64(0), int64(1))
	f.Add("j", int32(0), int32(0), int32(1), "file://./rel", "s3://results", results.PartialKey("j", 0), "", int64(0), 0, int64(0), int64(1))
	lakeRoots, err := lake.CanonicalRoots([]string{"file:///data/lake", "s3://lake/clicks"})
	if err != nil {
		f.Fatal(err)
	}
	outRoots, err := lake.CanonicalRoots([]string{"file:///data/out/", "s3://results"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, job string, taskID, bucket, attempt int32, lakeURI, outURI, partialKey, keys string,
		size int64, extraSizes int, fromSec, windowSec int64) {
		req := &pb.RunTaskRequest{
			JobId: job, TaskId: taskID, Bucket: bucket, Attempt: attempt,
			LakeUri: lakeURI, PartialUri: outURI, PartialKey: partialKey,
			WindowFrom:     timestamppb.New(time.Unix(fromSec, 0)),
			WindowTo:       timestamppb.New(time.Unix(fromSec+windowSec, 0)),
			SessionTimeout: durationpb.New(30 * time.Minute),
		}
		if keys != "" {
			req.FileKeys = strings.Split(keys, "\n")
		}
		n := max(0, len(req.FileKeys)+max(-2, min(2, extraSizes)))
		for i := range n {
			req.FileSizes = append(req.FileSizes, size+int64(i))
		}
		tk, err := checkTask(req, lakeRoots, outRoots)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) && !errors.Is(err, ErrForbidden) {
				t.Fatalf("error %v matches neither ErrBadRequest nor ErrForbidden", err)
			}
			return
		}
		for _, s := range []struct {
			uri   string
			roots []string
		}{{tk.lake, lakeRoots}, {tk.out, outRoots}} {
			if !lake.Under(s.uri, s.roots) {
				t.Fatalf("accepted store %s is not under %v", s.uri, s.roots)
			}
			if c, err := lake.Canonical(s.uri); err != nil || c != s.uri {
				t.Fatalf("canonical store %s canonicalises to %q, %v", s.uri, c, err)
			}
		}
		if len(req.FileSizes) != len(req.FileKeys) {
			t.Fatalf("accepted %d keys with %d sizes", len(req.FileKeys), len(req.FileSizes))
		}
		lakeDir, isFile := strings.CutPrefix(tk.lake, "file://")
		for i, k := range req.FileKeys {
			if lake.CheckKey(k) != nil || path.Clean(k) != k || !strings.HasPrefix(k, lake.EventsPrefix) || req.FileSizes[i] < 0 {
				t.Fatalf("accepted file key %q, size %d", k, req.FileSizes[i])
			}
			if joined := path.Join(lakeDir, k); isFile && !strings.HasPrefix(joined, strings.TrimSuffix(lakeDir, "/")+"/") {
				t.Fatalf("file key %q leads out of the lake %s to %s", k, tk.lake, joined)
			}
		}
		if own := results.PartialKey(job, int(bucket)); partialKey != own || lake.CheckKey(own) != nil {
			t.Fatalf("accepted partial key %q for job %q bucket %d", partialKey, job, bucket)
		}
		again := proto.Clone(req).(*pb.RunTaskRequest)
		again.LakeUri, again.PartialUri = tk.lake, tk.out
		tk2, err := checkTask(again, lakeRoots, outRoots)
		if err != nil || tk2.lake != tk.lake || tk2.out != tk.out {
			t.Fatalf("normalised request: %v, stores %s %s; first %s %s", err, tk2.lake, tk2.out, tk.lake, tk.out)
		}
	})
}

// FuzzCheckRollupTask feeds roll-up tasks to the worker's validation:
// what it accepts reads windows under its --output-root or --lake-root
// and writes its own partial under --output-root, both canonical, for a
// key range of 1 to 1024 and a window that is one period of its grain;
// it refuses with ErrBadRequest or ErrForbidden only and never panics.
func FuzzCheckRollupTask(f *testing.F) {
	day := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC).Unix()
	f.Add("job-1", int32(1), "day", "file:///data/out/hourly", "file:///data/out/r", results.PartialKey("job-1", 1), day, int64(24*3600), int32(4), int64(0), "")
	f.Add("job-1", int32(0), "week", "file:///data/lake/w", "s3://results/r", results.PartialKey("job-1", 0), day-3*24*3600, int64(7*24*3600), int32(1), int64(4096), "")
	f.Add("j", int32(4), "day", "file:///etc", "file:///data/out/r", results.PartialKey("j", 4), day, int64(24*3600), int32(4), int64(-1), "file:///data/lake")
	f.Add("j", int32(0), "month", "file:///data/out/../../etc", "file:///data/out/r", results.PartialKey("j", 0), day, int64(3600), int32(0), int64(0), "")
	lakeRoots, err := lake.CanonicalRoots([]string{"file:///data/lake", "s3://lake/clicks"})
	if err != nil {
		f.Fatal(err)
	}
	outRoots, err := lake.CanonicalRoots([]string{"file:///data/out/", "s3://results"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, job string, bucket int32, grain, windows, outURI, partialKey string, fromSec, periodSec int64, shards int32, budget int64, lakeURI string) {
		req := &pb.RunTaskRequest{
			JobId: job, TaskId: bucket, Bucket: bucket, Attempt: 1, LakeUri: lakeURI, PartialUri: outURI, PartialKey: partialKey,
			WindowFrom: timestamppb.New(time.Unix(fromSec, 0)), WindowTo: timestamppb.New(time.Unix(fromSec+periodSec, 0)),
			Rollup: &pb.RollupSpec{Grain: grain, WindowsUri: windows, Shards: shards, MemoryBudget: budget},
		}
		tk, err := checkTask(req, lakeRoots, outRoots)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) && !errors.Is(err, ErrForbidden) {
				t.Fatalf("error %v matches neither ErrBadRequest nor ErrForbidden", err)
			}
			return
		}
		if !lake.Under(tk.lake, outRoots) && !lake.Under(tk.lake, lakeRoots) || !lake.Under(tk.out, outRoots) {
			t.Fatalf("accepted windows %s, output %s", tk.lake, tk.out)
		}
		for _, uri := range []string{tk.lake, tk.out} {
			if c, err := lake.Canonical(uri); err != nil || c != uri {
				t.Fatalf("canonical store %s canonicalises to %q, %v", uri, c, err)
			}
		}
		from, to, perr := rollup.Period(grain, tk.window.From)
		if perr != nil || !from.Equal(tk.window.From) || !to.Equal(tk.window.To) || bucket < 0 || bucket >= shards || shards > maxRollupShards || budget < 0 || lakeURI != "" {
			t.Fatalf("accepted %s of grain %q, key range %d of %d, budget %d, lake %q", tk.window, grain, bucket, shards, budget, lakeURI)
		}
		if own := results.PartialKey(job, int(bucket)); partialKey != own {
			t.Fatalf("accepted partial key %q for job %q bucket %d", partialKey, job, bucket)
		}
	})
}
