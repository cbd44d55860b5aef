package icetable

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/apache/iceberg-go"
	iceio "github.com/apache/iceberg-go/io"
	"github.com/apache/iceberg-go/table"

	"github.com/dataco/clickstream/internal/lake"
)

// InputTracker follows a lake's events table snapshot by snapshot for the
// scheduler's late-data detection (a coordinator.InputTracker): which
// data each append snapshot added, and what the table holds. It reads
// each snapshot's own manifests once; a compaction (a snapshot with
// compactedFromProperty in its summary) appends nothing and leaves the
// files it rewrote standing in for the compacted ones, so that compacting
// never makes a window look changed. Safe for concurrent use.
type InputTracker struct {
	// Catalog and PasswordFile: as TablePlanner's.
	Catalog, PasswordFile string
	S3                    lake.S3Options

	mu       sync.Mutex
	snapshot int64                       // the snapshot files describes; 0: none read yet
	files    []lake.DataFile             // the table's data as of snapshot
	appends  map[int64]*lake.TableAppend // by snapshot id, of the lineage
}

// compactedFromProperty marks the snapshots Compact commits.
const compactedFromProperty = "clickstream.compacted-from"

// TableInputs publishes what the lake's events table does not hold yet
// (so that the table is as recent as the lake's commits), then returns
// what its snapshots tell; ok is false if the lake has no events table.
func (t *InputTracker) TableInputs(ctx context.Context, lakeURI string, src lake.Store) (in lake.TableInputs, ok bool, err error) {
	cat, ok, err := TablePlanner{Catalog: t.Catalog, PasswordFile: t.PasswordFile, S3: t.S3}.openEvents(ctx, lakeURI)
	if err != nil || !ok {
		return in, false, err
	}
	defer Close(cat)
	if _, err := publish(ctx, cat, src, EventsTable, dataFiles, followWatermarks); err != nil {
		return in, false, fmt.Errorf("icetable: table inputs: publish the lake's last commits: %w", err)
	}
	tbl, err := cat.LoadTable(ctx, Ident(EventsTable))
	if err != nil {
		return in, false, fmt.Errorf("icetable: table inputs: %w", err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	in, err = t.follow(ctx, tbl, strings.TrimSuffix(src.URI(), "/")+"/")
	if err != nil {
		return in, false, fmt.Errorf("icetable: table inputs: %w", err)
	}
	return in, true, nil
}

// follow brings the tracker to tbl's current snapshot; root prefixes the
// lake's keys in the table's file paths.
func (t *InputTracker) follow(ctx context.Context, tbl *table.Table, root string) (lake.TableInputs, error) {
	cur := tbl.CurrentSnapshot()
	if cur == nil {
		t.snapshot, t.files, t.appends = 0, nil, nil
		return lake.TableInputs{}, nil
	}
	sf, err := partitionFields(tbl.Spec())
	if err != nil {
		return lake.TableInputs{}, err
	}
	fs, err := tbl.FS(ctx)
	if err != nil {
		return lake.TableInputs{}, err
	}
	// The lineage still in the table, newest first.
	var lineage []*table.Snapshot
	for s := cur; s != nil; {
		lineage = append(lineage, s)
		if s.ParentSnapshotID == nil {
			break
		}
		s = tbl.SnapshotByID(*s.ParentSnapshotID)
	}
	appends := make(map[int64]*lake.TableAppend, len(t.appends))
	files := t.files
	known := t.snapshot != 0 // files describes a snapshot of the lineage
	if known {
		known = slices.ContainsFunc(lineage, func(s *table.Snapshot) bool { return s.SnapshotID == t.snapshot })
	}
	seen := !known // past t.snapshot, walking from the oldest
	in := lake.TableInputs{Seq: cur.SequenceNumber, Horizon: lineage[len(lineage)-1].SequenceNumber}
	for _, s := range slices.Backward(lineage) {
		var a *lake.TableAppend
		switch {
		case isCompaction(s):
		case s.Summary != nil && s.Summary.Operation == table.OpAppend:
			if a = t.appends[s.SnapshotID]; a == nil {
				if a, err = appended(s, fs, sf, root); err != nil {
					return lake.TableInputs{}, err
				}
			}
			appends[s.SnapshotID] = a
			in.Appends = append(in.Appends, *a)
		default:
			if seen {
				known = false // a change other than appends and compactions: read the files again
			}
		}
		if seen && known && a != nil {
			files = append(files, a.Files...)
		}
		seen = seen || s.SnapshotID == t.snapshot
	}
	if !known {
		if files, err = liveFiles(cur, fs, sf, root); err != nil {
			return lake.TableInputs{}, err
		}
	}
	t.snapshot, t.files, t.appends = cur.SnapshotID, slices.Clip(files), appends
	in.Files = t.files
	return in, nil
}

func isCompaction(s *table.Snapshot) bool {
	return s.Summary != nil && s.Summary.Properties[compactedFromProperty] != ""
}

// appended returns the data files snapshot s added: the entries of the
// manifests it wrote.
func appended(s *table.Snapshot, fs iceio.IO, sf specFields, root string) (*lake.TableAppend, error) {
	files, err := snapshotFiles(s, fs, sf, root, func(m iceberg.ManifestFile) bool { return m.SnapshotID() == s.SnapshotID }, true)
	if err != nil {
		return nil, err
	}
	return &lake.TableAppend{Seq: s.SequenceNumber, Files: files}, nil
}

// liveFiles returns the data files of snapshot s.
func liveFiles(s *table.Snapshot, fs iceio.IO, sf specFields, root string) ([]lake.DataFile, error) {
	return snapshotFiles(s, fs, sf, root, func(iceberg.ManifestFile) bool { return true }, false)
}

// snapshotFiles returns the live data files of the manifests of s that
// pick selects; with added, only the entries those manifests added.
func snapshotFiles(s *table.Snapshot, fs iceio.IO, sf specFields, root string, pick func(iceberg.ManifestFile) bool, added bool) ([]lake.DataFile, error) {
	manifests, err := s.Manifests(fs)
	if err != nil {
		return nil, fmt.Errorf("snapshot %d: %w", s.SnapshotID, err)
	}
	var out []lake.DataFile
	for _, m := range manifests {
		if m.ManifestContent() != iceberg.ManifestContentData || !pick(m) {
			continue
		}
		files, err := manifestFiles(m, fs, sf, root, added)
		if err != nil {
			return nil, fmt.Errorf("snapshot %d: %w", s.SnapshotID, err)
		}
		out = append(out, files...)
	}
	return out, nil
}

// manifestFiles returns the live data files of data manifest m as the
// lake describes them (lakeFile), keyed relative to the lake's root; with
// added, only the entries m added. A file outside the lake is an error.
func manifestFiles(m iceberg.ManifestFile, fs iceio.IO, sf specFields, root string, added bool) ([]lake.DataFile, error) {
	var out []lake.DataFile
	for e, err := range m.Entries(fs, true) {
		if err != nil {
			return nil, fmt.Errorf("manifest %s: %w", m.FilePath(), err)
		}
		if added && e.Status() != iceberg.EntryStatusADDED {
			continue
		}
		path := e.DataFile().FilePath()
		key, ok := strings.CutPrefix(path, root)
		if !ok {
			return nil, fmt.Errorf("table file %s is not in the lake %s", path, root)
		}
		f, err := lakeFile(e.DataFile(), sf, key)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}
