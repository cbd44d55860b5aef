package icetable

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"

	"github.com/dataco/clickstream/internal/lake"
)

// TablePlanner plans jobs from a lake's events table instead of its
// manifests (a coordinator.FilePlanner): it first publishes what the table
// does not hold yet, so the plan covers every lake commit made before it,
// then lets the table's metadata prune by hour and by the files' ts
// bounds, and names the snapshot it read. Compacted files replace the
// small ones they were made from. A lake without a table is planned from
// its manifests.
type TablePlanner struct {
	// Catalog and PasswordFile: as ResultPublisher's.
	Catalog, PasswordFile string
	S3                    lake.S3Options
	// Manifests keeps the manifests read, for the next plans; nil: none.
	Manifests *ManifestCache
}

// PlanFiles returns, per user bucket, the events table's files whose
// events may lie in [from, to), and the snapshot they are from; ok is
// false if the lake has no events table (plan from the manifests).
// A snapshot other than 0 is read as it is, without publishing: time
// travel to the data an earlier job read.
func (p TablePlanner) PlanFiles(ctx context.Context, lakeURI string, src lake.Store, from, to time.Time, snapshot int64) (files map[int][]lake.DataFile, planned int64, ok bool, err error) {
	cat, ok, err := p.openEvents(ctx, lakeURI)
	if err != nil || !ok {
		return nil, 0, false, err
	}
	defer Close(cat)
	if snapshot == 0 {
		if _, err := Publish(ctx, cat, src); err != nil {
			return nil, 0, false, fmt.Errorf("icetable: plan: publish the lake's last commits: %w", err)
		}
	}
	tbl, err := cat.LoadTable(ctx, Ident(EventsTable))
	if err != nil {
		return nil, 0, false, fmt.Errorf("icetable: plan: %w", err)
	}
	if snapshot == 0 {
		s := tbl.CurrentSnapshot()
		if s == nil {
			return map[int][]lake.DataFile{}, 0, true, nil
		}
		snapshot = s.SnapshotID
	} else if tbl.SnapshotByID(snapshot) == nil {
		return nil, 0, false, fmt.Errorf("icetable: plan: snapshot %d is not one of the events table's (expired after --table-snapshot-retention, or another lake's)", snapshot)
	}
	// A planner that plans again and again reads manifests once and keeps
	// them; a single plan lets iceberg-go's scan read them (in parallel).
	err = errPlanUnsupported
	if p.Manifests != nil {
		files, err = planFiles(ctx, tbl, src, snapshot, from, to, p.Manifests)
	}
	if errors.Is(err, errPlanUnsupported) {
		files, err = tableFiles(ctx, tbl, src, snapshot, from, to)
	}
	return files, snapshot, err == nil, err
}

// lakeFile describes a data file of the events table as the lake does,
// named key: its partition, events, size and event-time bounds (its
// hour's if the file has no ts bounds).
func lakeFile(f iceberg.DataFile, sf specFields, key string) (lake.DataFile, error) {
	part := f.Partition()
	hour, ok1 := part[sf.hour].(int32)
	bucket, ok2 := part[sf.bucket].(int32)
	if !ok1 || !ok2 {
		return lake.DataFile{}, fmt.Errorf("file %s has partition %v", key, part)
	}
	h := time.Unix(int64(hour)*3600, 0).UTC()
	lo, hi := h.UnixMilli(), h.Add(time.Hour).UnixMilli()-1
	if b, ok := f.LowerBoundValues()[FieldTs]; ok && len(b) == 8 {
		lo = int64(binary.LittleEndian.Uint64(b)) / 1000
	}
	if b, ok := f.UpperBoundValues()[FieldTs]; ok && len(b) == 8 {
		hi = int64(binary.LittleEndian.Uint64(b)) / 1000
	}
	return lake.DataFile{Key: key, Bucket: int(bucket), Hour: h.Format(lake.HourFormat),
		Events: f.Count(), Bytes: f.FileSizeBytes(), MinTs: lo, MaxTs: hi}, nil
}

// openEvents opens the catalog of lakeURI's events table; ok is false if
// the lake has none (no catalog, or no table in it). The caller closes
// the catalog with Close.
func (p TablePlanner) openEvents(ctx context.Context, lakeURI string) (_ catalog.Catalog, ok bool, err error) {
	catURI := p.Catalog
	if catURI == "" {
		if catURI, err = DefaultCatalogURI(lakeURI); err != nil {
			return nil, false, nil
		}
	}
	if catURI == NoCatalog || !CatalogExists(catURI) {
		return nil, false, nil
	}
	cat, err := OpenCatalog(ctx, catURI, CatalogOptions{Props: S3Props(p.S3), PasswordFile: p.PasswordFile})
	if err != nil {
		return nil, false, err
	}
	if exists, err := cat.CheckTableExists(ctx, Ident(EventsTable)); err != nil || !exists {
		Close(cat)
		return nil, false, err
	}
	return cat, true, nil
}

// tableFiles lists the files of a snapshot of the events table whose
// events may lie in [from, to), per bucket, sorted by key.
func tableFiles(ctx context.Context, tbl *table.Table, src lake.Store, snapshot int64, from, to time.Time) (map[int][]lake.DataFile, error) {
	sf, err := partitionFields(tbl.Spec())
	if err != nil {
		return nil, err
	}
	filter := iceberg.NewAnd(
		iceberg.GreaterThanEqual(iceberg.Reference("ts"), iceberg.Timestamp(from.UnixMicro())),
		iceberg.LessThan(iceberg.Reference("ts"), iceberg.Timestamp(to.UnixMicro())))
	tasks, err := tbl.Scan(table.WithSnapshotID(snapshot), table.WithRowFilter(filter)).PlanFiles(ctx)
	if err != nil {
		return nil, fmt.Errorf("icetable: plan: %w", err)
	}
	root := strings.TrimSuffix(src.URI(), "/") + "/"
	out := map[int][]lake.DataFile{}
	seen := map[string]bool{}
	for _, t := range tasks {
		f := t.File
		if seen[f.FilePath()] {
			continue // a file split into several tasks
		}
		seen[f.FilePath()] = true
		key, ok := strings.CutPrefix(f.FilePath(), root)
		if !ok {
			return nil, fmt.Errorf("icetable: plan: table file %s is not in the lake %s", f.FilePath(), src.URI())
		}
		df, err := lakeFile(f, sf, key)
		if err != nil {
			return nil, fmt.Errorf("icetable: plan: %w", err)
		}
		out[df.Bucket] = append(out[df.Bucket], df)
	}
	for b := range out {
		slices.SortFunc(out[b], func(x, y lake.DataFile) int { return strings.Compare(x.Key, y.Key) })
	}
	return out, nil
}
