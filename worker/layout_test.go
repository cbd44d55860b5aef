package worker

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dataco/clickstream/internal/lake/laketest"
	"github.com/dataco/clickstream/internal/results"
)

// TestRunTaskOldLayoutFile: a data file of lake layout 1 (timestamp_ms,
// no ts column) fails the task with an error naming the missing ts
// column, rather than counting its events at time zero.
func TestRunTaskOldLayoutFile(t *testing.T) {
	f := newFixture(t)
	_, c, _ := f.start(nil)
	ctx := context.Background()
	old := laketest.LayoutOneFile(t, 1795741200000)
	const key = "events/hour=2026-11-27T00/bucket=0000/old.parquet"
	if err := f.src.Put(ctx, key, old); err != nil {
		t.Fatal(err)
	}
	req := f.request(0, 1)
	req.JobId = "job-old-layout"
	req.PartialKey = results.PartialKey(req.JobId, 0)
	req.FileKeys, req.FileSizes = append(req.FileKeys, key), append(req.FileSizes, int64(len(old)))
	_, err := c.RunTask(ctx, req)
	if status.Code(err) != codes.DataLoss || !strings.Contains(err.Error(), `no column "ts"`) {
		t.Fatalf("err = %v, want DataLoss naming the missing ts column", err)
	}
}
