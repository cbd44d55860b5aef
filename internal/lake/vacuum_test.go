package lake_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/lake/laketest"
)

func TestVacuum(t *testing.T) {
	t.Run("file", func(t *testing.T) { testVacuum(t, laketest.NewFile(t)) })
	t.Run("s3", func(t *testing.T) { testVacuum(t, laketest.NewS3(t)) })
}

// testVacuum builds a lake with committed files and orphans of two ages,
// and checks that a vacuum deletes exactly the old orphans — after a dry run
// that deletes nothing — and leaves every committed file readable.
func testVacuum(t *testing.T, s lake.Store) {
	ctx := context.Background()
	if _, err := lake.EnsureMeta(ctx, s, 4); err != nil {
		t.Fatal(err)
	}
	p := lake.Partition{Hour: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC), Bucket: 1}
	committed := lake.DataFileKey(p, "src", 1, "w1.1", ".parquet")
	rejected := lake.RejectedKey("src", 1, "w1.1")
	mustPut(t, s, committed, "committed data")
	mustPut(t, s, rejected, "committed dead letters")
	if err := lake.Commit(ctx, s, &lake.Manifest{Source: "src", Seq: 1, Writer: "w1", Start: 0, End: 10,
		Files: []lake.DataFile{{Key: committed, Bucket: 1, Hour: "2026-11-27T10"}}, Rejected: rejected}); err != nil {
		t.Fatal(err)
	}
	// The Iceberg table's metadata is no manifest's, and no orphan.
	tableMeta := "events/metadata/00001-x.metadata.json"
	mustPut(t, s, tableMeta, "table metadata")
	oldOrphans := []string{lake.DataFileKey(p, "src", 2, "w1.2", ".parquet"), lake.RejectedKey("src", 2, "w1.2")}
	for _, k := range oldOrphans {
		mustPut(t, s, k, "left by a failed attempt")
	}
	time.Sleep(2500 * time.Millisecond) // S3 times have a resolution of one second
	young := lake.DataFileKey(p, "src", 2, "w1.3", ".parquet")
	mustPut(t, s, young, "written by a commit in flight")

	dry, err := lake.Vacuum(ctx, s, 1500*time.Millisecond, true)
	if err != nil {
		t.Fatal(err)
	}
	var orphans []string
	for _, o := range dry.Orphans {
		orphans = append(orphans, o.Key)
	}
	slices.Sort(orphans)
	slices.Sort(oldOrphans)
	if !slices.Equal(orphans, oldOrphans) || dry.Referenced != 2 || dry.Young != 1 || dry.Deleted != 0 {
		t.Fatalf("dry run: orphans %v, referenced %d, young %d, deleted %d; want orphans %v, 2 referenced, 1 young, none deleted",
			orphans, dry.Referenced, dry.Young, dry.Deleted, oldOrphans)
	}
	for _, k := range oldOrphans {
		mustGet(t, s, k) // a dry run deletes nothing
	}

	rep, err := lake.Vacuum(ctx, s, 1500*time.Millisecond, false)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Deleted != len(oldOrphans) {
		t.Fatalf("deleted %d orphans, want %d", rep.Deleted, len(oldOrphans))
	}
	for _, k := range oldOrphans {
		if _, err := s.Get(ctx, k); err == nil {
			t.Errorf("orphan %s survived the vacuum", k)
		}
	}
	for k, want := range map[string]string{committed: "committed data", rejected: "committed dead letters", young: "written by a commit in flight", tableMeta: "table metadata"} {
		if got := mustGet(t, s, k); got != want {
			t.Errorf("%s = %q after the vacuum, want %q", k, got, want)
		}
	}
	if _, err := lake.Vacuum(ctx, s, 0, true); err == nil {
		t.Error("a vacuum with no minimum age was accepted")
	}
}
