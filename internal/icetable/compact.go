package icetable

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"

	"github.com/dataco/clickstream/internal/event"
	"github.com/dataco/clickstream/internal/lake"
)

// compactedPrefix is where compaction writes the events table's large
// files: outside the lake's partition folders, whose files the lake's
// manifests name and vacuum judges.
const compactedPrefix = lake.EventsPrefix + "data/"

// CompactOptions bound a compaction.
type CompactOptions struct {
	// ClosedBefore: only hours that end at or before this time are
	// compacted (the open hours keep receiving appends).
	ClosedBefore time.Time
	// MaxPartitions bounds the partitions one compaction rewrites (and so
	// its memory: one partition's events at a time); 0: DefaultMaxCompactPartitions.
	MaxPartitions int
}

// DefaultMaxCompactPartitions is CompactOptions.MaxPartitions' default.
const DefaultMaxCompactPartitions = 256

// Compacted is what a compaction did.
type Compacted struct {
	Partitions  int   // (hour, bucket) partitions rewritten
	FilesBefore int   // their files before
	Events      int64 // events rewritten
	Bytes       int64 // bytes of the new files
	More        bool  // partitions remain beyond MaxPartitions
}

// Compact rewrites the small files of the events table's closed hours
// into one file per (hour, bucket) partition, in the table's sort order,
// and replaces them in one commit. The lake keeps the small files: its own
// manifests name them, and clickstream's jobs read those. A concurrent
// append (ingest publishing) does not undo the rewrite: appends remove no
// file, so the commit is redone on the new snapshot with the same files
// as long as every file it replaces is still in the table.
func Compact(ctx context.Context, cat catalog.Catalog, store lake.Store, opts CompactOptions) (Compacted, error) {
	if opts.MaxPartitions <= 0 {
		opts.MaxPartitions = DefaultMaxCompactPartitions
	}
	var res Compacted
	tbl, err := cat.LoadTable(ctx, Ident(EventsTable))
	if err != nil {
		return res, fmt.Errorf("icetable: compact: %w", err)
	}
	sf, err := partitionFields(tbl.Spec())
	if err != nil {
		return res, err
	}
	groups, err := smallFiles(ctx, tbl, sf, opts.ClosedBefore)
	if err != nil {
		return res, err
	}
	if len(groups) > opts.MaxPartitions {
		groups, res.More = groups[:opts.MaxPartitions], true
	}
	if len(groups) == 0 {
		return res, nil
	}
	root := strings.TrimSuffix(store.URI(), "/") + "/"
	snap := tbl.CurrentSnapshot().SnapshotID
	var old, added []iceberg.DataFile
	for i, g := range groups {
		var events []event.Event
		for _, f := range g.files {
			key, ok := strings.CutPrefix(f.FilePath(), root)
			if !ok {
				return res, fmt.Errorf("icetable: compact: file %s is not in the lake %s", f.FilePath(), store.URI())
			}
			data, err := store.GetSized(ctx, key, f.FileSizeBytes())
			if err != nil {
				return res, fmt.Errorf("icetable: compact: %w", err)
			}
			evs, err := lake.DecodeFile(key, data)
			if err != nil {
				return res, fmt.Errorf("icetable: compact: %w", err)
			}
			if int64(len(evs)) != f.Count() {
				return res, fmt.Errorf("icetable: compact: %s holds %d events, the table says %d", key, len(evs), f.Count())
			}
			events = append(events, evs...)
		}
		slices.SortFunc(events, func(a, b event.Event) int {
			return cmp.Or(strings.Compare(a.UserID, b.UserID), cmp.Compare(a.Timestamp, b.Timestamp))
		})
		data, err := lake.EncodeParquet(events)
		if err != nil {
			return res, fmt.Errorf("icetable: compact: %w", err)
		}
		key := fmt.Sprintf("%shour=%s/bucket=%04d/compacted-%d-%d.parquet", compactedPrefix,
			time.Unix(int64(g.hour)*3600, 0).UTC().Format(lake.HourFormat), g.bucket, snap, i)
		if err := store.Put(ctx, key, data); err != nil {
			return res, fmt.Errorf("icetable: compact: write %s: %w", key, err)
		}
		b, err := iceberg.NewDataFileBuilder(tbl.Spec(), iceberg.EntryContentData, root+key, iceberg.ParquetFile,
			map[int]any{sf.hour: g.hour, sf.bucket: g.bucket}, nil, nil, int64(len(events)), int64(len(data)))
		if err != nil {
			return res, fmt.Errorf("icetable: compact: %w", err)
		}
		lo, hi := events[0].Timestamp, events[0].Timestamp
		for _, e := range events {
			lo, hi = min(lo, e.Timestamp), max(hi, e.Timestamp)
		}
		b.ValueCounts(map[int]int64{FieldTs: int64(len(events))}).
			NullValueCounts(map[int]int64{FieldTs: 0}).
			LowerBoundValues(map[int][]byte{FieldTs: micros(lo)}).
			UpperBoundValues(map[int][]byte{FieldTs: micros(hi)}).
			SortOrderID(tbl.SortOrder().OrderID())
		added = append(added, b.Build())
		old = append(old, g.files...)
		res.Partitions++
		res.FilesBefore += len(g.files)
		res.Events += int64(len(events))
		res.Bytes += int64(len(data))
	}
	props := iceberg.Properties{"clickstream.compacted-from": fmt.Sprint(snap)}
	// A compaction is costly to redo and cheap to commit again, so it
	// keeps trying for a while rather than a number of times: publishers
	// that commit often (tests; a short --table-commit-interval) must not
	// starve it.
	deadline := time.Now().Add(compactRetryFor)
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			if time.Now().After(deadline) {
				return res, fmt.Errorf("icetable: compact: every commit for %v lost to concurrent commits (%d attempts)", compactRetryFor, attempt)
			}
			if tbl, err = cat.LoadTable(ctx, Ident(EventsTable)); err != nil {
				return res, fmt.Errorf("icetable: compact: %w", err)
			}
			if err := stillHeld(ctx, tbl, old); err != nil {
				return res, err
			}
		}
		tx := tbl.NewTransaction()
		if err := tx.AssertRefSnapshotID(table.MainBranch); err != nil {
			return res, fmt.Errorf("icetable: compact: %w", err)
		}
		if err := tx.ReplaceDataFilesWithDataFiles(ctx, old, added, props); err != nil {
			return res, fmt.Errorf("icetable: compact: %w", err)
		}
		if _, err := tx.Commit(ctx); err != nil {
			if err := sleepCtx(ctx, backoff(attempt)); err != nil {
				return res, err
			}
			continue
		}
		return res, nil
	}
}

// compactRetryFor is how long a compaction tries to commit its rewrite.
const compactRetryFor = 5 * time.Minute

// fileGroup is the files of one partition.
type fileGroup struct {
	hour, bucket int32
	files        []iceberg.DataFile
}

// smallFiles returns the partitions of hours closed by closedBefore that
// have more than one file, in partition order.
func smallFiles(ctx context.Context, tbl *table.Table, sf specFields, closedBefore time.Time) ([]fileGroup, error) {
	tasks, err := tbl.Scan().PlanFiles(ctx)
	if err != nil {
		return nil, fmt.Errorf("icetable: compact: %w", err)
	}
	type key struct{ hour, bucket int32 }
	byPart := map[key][]iceberg.DataFile{}
	for _, t := range tasks {
		part := t.File.Partition()
		hour, ok1 := part[sf.hour].(int32)
		bucket, ok2 := part[sf.bucket].(int32)
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("icetable: compact: file %s has partition %v", t.File.FilePath(), part)
		}
		if time.Unix(int64(hour+1)*3600, 0).After(closedBefore) {
			continue // an open hour
		}
		k := key{hour, bucket}
		byPart[k] = append(byPart[k], t.File)
	}
	var groups []fileGroup
	for k, files := range byPart {
		if len(files) > 1 {
			groups = append(groups, fileGroup{hour: k.hour, bucket: k.bucket, files: files})
		}
	}
	slices.SortFunc(groups, func(a, b fileGroup) int { return cmp.Or(cmp.Compare(a.hour, b.hour), cmp.Compare(a.bucket, b.bucket)) })
	return groups, nil
}

// stillHeld checks that every file a compaction replaces is still in the
// table: only then may its commit be redone on a newer snapshot.
func stillHeld(ctx context.Context, tbl *table.Table, files []iceberg.DataFile) error {
	tasks, err := tbl.Scan().PlanFiles(ctx)
	if err != nil {
		return fmt.Errorf("icetable: compact: %w", err)
	}
	held := make(map[string]bool, len(tasks))
	for _, t := range tasks {
		held[t.File.FilePath()] = true
	}
	for _, f := range files {
		if !held[f.FilePath()] {
			return fmt.Errorf("icetable: compact: %s left the table meanwhile (another compaction?): run it again", f.FilePath())
		}
	}
	return nil
}
