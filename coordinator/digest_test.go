package coordinator

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/lake/laketest"
	"github.com/dataco/clickstream/internal/results"
	pb "github.com/dataco/clickstream/proto/clickstream/v1"
)

// TestForgedPartialNeverMerged: a partial replaced in the output store
// after its worker committed it, and before the merge (the before-merge
// failpoint: every task done and recorded, no partial read yet), is never
// merged: the job fails at once, naming the task, and no result is
// committed. The forgeries: another bucket's partial (a valid partial of
// another size), and the partial with one byte changed (its size).
func TestForgedPartialNeverMerged(t *testing.T) {
	h := newHarness(t, 4, 50, 1000)
	h.worker("a", 4, nil)
	var mu sync.Mutex
	var forge func(ctx context.Context) // what the failpoint does, per job
	c := h.coordinator(func(cfg *Config) {
		cfg.testHook = func(ctx context.Context, point string) {
			mu.Lock()
			f := forge
			mu.Unlock()
			if point == pointBeforeMerge && f != nil {
				f(ctx)
			}
		}
	})
	cl := h.client(c)
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		forge func(victim, other []byte) []byte
	}{
		{"another partial", func(_, other []byte) []byte { return other }},
		{"one byte changed", func(victim, _ []byte) []byte {
			b := bytes.Clone(victim)
			b[len(b)/2] ^= 1
			return b
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := lake.Sub(h.out, strings.ReplaceAll(tc.name, " ", "-"))
			var forged []string
			mu.Lock()
			forge = func(ctx context.Context) {
				objs, err := out.List(ctx, results.JobsPrefix)
				if err != nil {
					t.Error(err)
					return
				}
				var victim, other []byte
				var key string
				for _, o := range objs {
					switch {
					case strings.HasSuffix(o.Key, "/task-00002.bin"):
						key = o.Key
						victim, err = out.Get(ctx, o.Key)
					case strings.HasSuffix(o.Key, "/task-00001.bin"):
						other, err = out.Get(ctx, o.Key)
					}
					if err != nil {
						t.Error(err)
						return
					}
				}
				if victim == nil || other == nil {
					t.Errorf("partials at the merge: %v", objs)
					return
				}
				if err := out.Put(ctx, key, tc.forge(victim, other)); err != nil {
					t.Error(err)
				}
				forged = append(forged, key)
			}
			mu.Unlock()
			spec := h.spec()
			spec.OutUri = out.URI()
			start := time.Now()
			j := h.run(cl, spec)
			if len(forged) != 1 {
				t.Fatalf("forged %v at the merge, want one partial", forged)
			}
			if j.GetState() != pb.JobState_JOB_STATE_FAILED || !strings.Contains(j.GetError(), "task 2 (bucket 2)") ||
				!strings.Contains(j.GetError(), errPartialDigest.Error()) {
				t.Fatalf("job %s: %s, want failed naming task 2 and the digest", StateName(j.GetState()), j.GetError())
			}
			if d := time.Since(start); d > storeRetryBase {
				t.Errorf("the job took %v to fail: a forged partial is not a store to retry", d)
			}
			if _, err := results.ReadMeta(ctx, out); !errors.Is(err, results.ErrNoResult) {
				t.Fatalf("a result was committed from a forged partial: %v", err)
			}
		})
	}
	mu.Lock()
	forge = nil
	mu.Unlock()
	h.checkResult(h.run(cl, h.spec())) // without forgery, the same jobs succeed
}

// TestAnswerWithoutDigest: a worker's success answer without the digest of
// its partial does not finish the task: the attempt fails, and so does the
// job after its attempts.
func TestAnswerWithoutDigest(t *testing.T) {
	h := newHarness(t, 4, 50, 1000)
	h.worker("a", 4, func(ctx context.Context, req *pb.RunTaskRequest) (*pb.RunTaskResponse, error) {
		resp, err := computeTask(ctx, req)
		if err == nil && req.GetBucket() == 1 {
			resp.PartialSha256 = resp.PartialSha256[:16]
		}
		return resp, err
	})
	spec := h.spec()
	spec.MaxAttempts = 2
	j := h.run(h.client(h.coordinator(nil)), spec)
	if j.GetState() != pb.JobState_JOB_STATE_FAILED || !strings.Contains(j.GetError(), "without the SHA-256") {
		t.Fatalf("job %s: %s, want failed for the missing digest", StateName(j.GetState()), j.GetError())
	}
}

// TestPlanSizes: a plan records each file's size from the manifests, and
// a plan written before plans recorded sizes gets them from the manifests
// when loaded; a file no manifest records makes the plan bad.
func TestPlanSizes(t *testing.T) {
	h := newHarness(t, 4, 50, 1000)
	c := &Coordinator{cfg: NewConfig(), stores: lake.NewStores(laketest.S3Options())}
	ctx := context.Background()
	rec := &jobRecord{ID: "job-1", Spec: jobSpec{From: tFrom, To: tTo, SessionTimeout: 30 * time.Minute, Lake: h.src.URI(), Out: h.out.URI()}}
	p, err := c.makePlan(ctx, rec)
	if err != nil {
		t.Fatal(err)
	}
	var files int
	for _, pt := range p.Tasks {
		var sum int64
		for i, f := range pt.Files {
			data, err := h.src.Get(ctx, f)
			if err != nil || int64(len(data)) != pt.Sizes[i] {
				t.Fatalf("%s: planned size %d, stored %d bytes (%v)", f, pt.Sizes[i], len(data), err)
			}
			sum += pt.Sizes[i]
		}
		if sum != pt.Bytes {
			t.Errorf("task %d: sizes sum to %d, Bytes %d", pt.Task, sum, pt.Bytes)
		}
		files += len(pt.Files)
	}
	if files == 0 {
		t.Fatal("an empty plan")
	}
	old := *p
	old.Tasks = slices.Clone(p.Tasks)
	for i := range old.Tasks {
		old.Tasks[i].Sizes = nil
	}
	if err := c.fillSizes(ctx, rec, &old); err != nil {
		t.Fatal(err)
	}
	for i := range old.Tasks {
		if !slices.Equal(old.Tasks[i].Sizes, p.Tasks[i].Sizes) {
			t.Fatalf("task %d: filled sizes %v, planned %v", i, old.Tasks[i].Sizes, p.Tasks[i].Sizes)
		}
	}
	old.Tasks[0].Sizes, old.Tasks[0].Files = nil, append(slices.Clone(old.Tasks[0].Files), "events/never.parquet")
	if err := c.fillSizes(ctx, rec, &old); !errors.Is(err, errBadPlan) {
		t.Fatalf("a file no manifest records: %v, want errBadPlan", err)
	}
}
