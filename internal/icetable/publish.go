package icetable

import (
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"

	"github.com/dataco/clickstream/internal/lake"
)

// PositionsProperty is the table property in which the events table
// records, per source, the last lake commit it holds: a JSON object
// {"<source>": {"seq": N, "end": E}}. Every publication updates it in the
// commit that adds the files, so it always describes the current snapshot.
// (A table property rather than a snapshot summary property: one copy in
// the metadata, not one per snapshot, which would make every commit read
// and write a metadata file growing with sources × snapshots.)
const PositionsProperty = "clickstream.lake-positions"

// CommitsProperty is the snapshot summary property in which a snapshot
// made by Publish records the lake commits it added: a JSON object
// {"<source>": [first seq, last seq]}.
const CommitsProperty = "clickstream.lake-commits"

// Position is how far the table holds a source: every lake commit up to
// and including Seq, covering source positions up to End (exclusive).
type Position struct {
	Seq uint64 `json:"seq"`
	End int64  `json:"end"`
}

// MaxManifestsPerCommit bounds the lake commits one publication adds, so
// that a long backlog becomes several table commits of bounded size.
const MaxManifestsPerCommit = 4096

// publishAttempts bounds how often Publish re-reads the table after a
// commit lost to a concurrent one.
const publishAttempts = 20

// Published is what one Publish added to the table.
type Published struct {
	Manifests int   // lake commits added
	Files     int   // data files added
	Events    int64 // events added
	Snapshot  int64 // the new snapshot's id; 0 if nothing was added
	Retries   int   // commits lost to concurrent publishers and redone
}

// Publish adds to the events table every lake commit it does not hold
// yet, in one table commit per at most MaxManifestsPerCommit lake commits,
// and returns what it added.
//
// It is safe to run anywhere, any number of times, concurrently with
// other publishers and with ingest: the table's current snapshot says how
// far it holds every source (PositionsProperty), a commit adds only the
// lake commits after that, in sequence order without gaps, and it asserts
// that the table's main branch is still the snapshot it read; a commit
// that loses that race is recomputed from the new snapshot. So every lake
// commit enters the table exactly once, and with it exactly the data
// files its manifest names: the files of a failed or fenced ingest attempt
// are never referenced.
func Publish(ctx context.Context, cat catalog.Catalog, store lake.Store) (Published, error) {
	return publish(ctx, cat, store, EventsTable, dataFiles, listAll)
}

// How a publication finds the lake commits the table does not hold yet.
const (
	// listAll lists every manifest of the lake: O(manifests), and sure.
	listAll = iota
	// followWatermarks reads each source's watermark record and then only
	// the manifests after the table's position: O(sources + new commits).
	// A watermark record lags behind its manifest when writing it failed:
	// such commits wait for the source's next commit, or for a listAll
	// publication (a Publisher makes one when it starts and stops, and
	// every fullEvery publications).
	followWatermarks
)

// filesFunc describes, for a table, the data files of lake commits, and
// counts their rows.
type filesFunc func(ctx context.Context, tbl *table.Table, store lake.Store, ms []*lake.Manifest) ([]iceberg.DataFile, int64, error)

func publish(ctx context.Context, cat catalog.Catalog, store lake.Store, name string, files filesFunc, find int) (Published, error) {
	var total Published
	for {
		p, more, err := publishOnce(ctx, cat, store, name, files, find)
		total.Manifests += p.Manifests
		total.Files += p.Files
		total.Events += p.Events
		total.Retries += p.Retries
		if p.Snapshot != 0 {
			total.Snapshot = p.Snapshot
		}
		if err != nil || !more {
			return total, err
		}
	}
}

// publishOnce makes one table commit, retrying lost races; more reports
// that commits remain beyond MaxManifestsPerCommit.
func publishOnce(ctx context.Context, cat catalog.Catalog, store lake.Store, name string, filesOf filesFunc, find int) (p Published, more bool, err error) {
	ident := Ident(name)
	for attempt := range publishAttempts {
		tbl, err := cat.LoadTable(ctx, ident)
		if err != nil {
			return p, false, fmt.Errorf("icetable: publish: %w", err)
		}
		held, err := Positions(tbl)
		if err != nil {
			return p, false, err
		}
		pending, more, err := pendingManifests(ctx, store, held)
		if find == followWatermarks {
			pending, more, err = pendingByWatermarks(ctx, store, held)
		}
		if err != nil {
			return p, false, err
		}
		if len(pending) == 0 {
			return p, false, nil
		}
		files, events, err := filesOf(ctx, tbl, store, pending)
		if err != nil {
			return p, false, err
		}
		next := maps.Clone(held)
		added := map[string][2]uint64{}
		for _, m := range pending {
			src := sourceKey(m.Source)
			next[src] = Position{Seq: m.Seq, End: m.End}
			r, ok := added[src]
			if !ok {
				r[0] = m.Seq
			}
			r[1] = m.Seq
			added[src] = r
		}
		positions, err := json.Marshal(next)
		if err != nil {
			return p, false, fmt.Errorf("icetable: %s: %w", PositionsProperty, err)
		}
		commits, err := json.Marshal(added)
		if err != nil {
			return p, false, fmt.Errorf("icetable: %s: %w", CommitsProperty, err)
		}
		props := iceberg.Properties{CommitsProperty: string(commits)}
		tx := tbl.NewTransaction()
		if err := tx.AssertRefSnapshotID(table.MainBranch); err != nil {
			return p, false, fmt.Errorf("icetable: publish: %w", err)
		}
		if err := tx.SetProperties(iceberg.Properties{PositionsProperty: string(positions)}); err != nil {
			return p, false, fmt.Errorf("icetable: publish: %w", err)
		}
		// Commits of rejected records only add no file: the positions
		// alone record that the table holds them.
		if len(files) > 0 {
			if err := tx.AddDataFiles(ctx, files, props, table.WithoutDuplicateCheck()); err != nil {
				return p, false, fmt.Errorf("icetable: publish: %w", err)
			}
		}
		committed, err := tx.Commit(ctx)
		if err != nil {
			// Lost to a concurrent commit, or unknown: either way the table
			// says what it holds, and the next attempt starts from there.
			p.Retries++
			if err := sleepCtx(ctx, backoff(attempt)); err != nil {
				return p, false, err
			}
			continue
		}
		p.Manifests, p.Files, p.Events = len(pending), len(files), events
		if s := committed.CurrentSnapshot(); s != nil {
			p.Snapshot = s.SnapshotID
		}
		return p, more, nil
	}
	return p, false, fmt.Errorf("icetable: publish: %d commits lost to concurrent publishers in a row", publishAttempts)
}

func backoff(attempt int) time.Duration {
	return min(time.Duration(attempt+1)*20*time.Millisecond, 500*time.Millisecond)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Positions returns how far the table holds every source.
func Positions(tbl *table.Table) (map[string]Position, error) {
	pos := map[string]Position{}
	v, ok := tbl.Properties()[PositionsProperty]
	if !ok {
		return pos, nil
	}
	if err := json.Unmarshal([]byte(v), &pos); err != nil {
		return nil, fmt.Errorf("icetable: table property %s: %w", PositionsProperty, err)
	}
	return pos, nil
}

// sourceKey is the name a source's manifests are filed under.
func sourceKey(source string) string {
	return strings.TrimSuffix(strings.TrimPrefix(lake.ManifestSourcePrefix(source), lake.ManifestsPrefix), "/")
}

// maxSources bounds the sources a watermark-following publication reads.
const maxSources = 1 << 16

// pendingByWatermarks is pendingManifests that finds the sources with new
// commits from their watermark records (followWatermarks).
func pendingByWatermarks(ctx context.Context, store lake.Store, held map[string]Position) (pending []*lake.Manifest, more bool, err error) {
	wms, _, err := lake.ReadWatermarks(ctx, store, maxSources)
	if err != nil {
		return nil, false, fmt.Errorf("icetable: %w", err)
	}
	for _, wm := range wms {
		src := sourceKey(wm.Source)
		for seq := held[src].Seq + 1; seq <= wm.Seq; seq++ {
			if len(pending) == MaxManifestsPerCommit {
				return pending, true, nil
			}
			m, err := lake.ReadManifest(ctx, store, lake.ManifestKey(wm.Source, seq))
			if err != nil {
				return nil, false, fmt.Errorf("icetable: %w", err)
			}
			pending = append(pending, m)
		}
	}
	return pending, false, nil
}

// pendingManifests reads the lake commits after held, per source in
// sequence order and stopping at a gap, at most MaxManifestsPerCommit of
// them; more reports that others remain.
func pendingManifests(ctx context.Context, store lake.Store, held map[string]Position) (pending []*lake.Manifest, more bool, err error) {
	objs, err := store.List(ctx, lake.ManifestsPrefix)
	if err != nil {
		return nil, false, fmt.Errorf("icetable: list manifests: %w", err)
	}
	type entry struct {
		key string
		seq uint64
	}
	bySource := map[string][]entry{}
	for _, o := range objs {
		src := path.Dir(strings.TrimPrefix(o.Key, lake.ManifestsPrefix))
		seq, err := lake.ParseManifestSeq(o.Key)
		if err != nil || src == "." || strings.Contains(src, "/") {
			continue // not a manifest: nothing a commit wrote
		}
		if seq > held[src].Seq {
			bySource[src] = append(bySource[src], entry{o.Key, seq})
		}
	}
	for _, src := range slices.Sorted(maps.Keys(bySource)) {
		es := bySource[src]
		slices.SortFunc(es, func(a, b entry) int { return cmp.Compare(a.seq, b.seq) })
		want := held[src].Seq + 1
		for _, e := range es {
			if e.seq != want {
				break // a gap: the commit before is not visible yet
			}
			if len(pending) == MaxManifestsPerCommit {
				return pending, true, nil
			}
			m, err := lake.ReadManifest(ctx, store, e.key)
			if err != nil {
				return nil, false, fmt.Errorf("icetable: %w", err)
			}
			if sourceKey(m.Source) != src || m.Seq != e.seq {
				return nil, false, fmt.Errorf("icetable: manifest %s names source %q seq %d", e.key, m.Source, m.Seq)
			}
			pending = append(pending, m)
			want++
		}
	}
	return pending, false, nil
}

// dataFiles describes the data files of the manifests for the table,
// from what the manifests recorded: no file is read.
func dataFiles(_ context.Context, tbl *table.Table, store lake.Store, ms []*lake.Manifest) ([]iceberg.DataFile, int64, error) {
	spec := tbl.Spec()
	sf, err := partitionFields(spec)
	if err != nil {
		return nil, 0, err
	}
	root := strings.TrimSuffix(store.URI(), "/") + "/"
	var (
		files  []iceberg.DataFile
		events int64
	)
	for _, m := range ms {
		for _, f := range m.Files {
			if !strings.HasSuffix(f.Key, lake.FormatParquet.Ext()) {
				return nil, 0, fmt.Errorf("icetable: %s: commit %s/%d has data file %s: Iceberg tables need Parquet data files (ingest --format parquet)",
					EventsTable, m.Source, m.Seq, f.Key)
			}
			part, err := f.Partition()
			if err != nil {
				return nil, 0, err
			}
			b, err := iceberg.NewDataFileBuilder(spec, iceberg.EntryContentData, root+f.Key, iceberg.ParquetFile,
				map[int]any{
					sf.hour:   int32(part.Hour.Unix() / 3600),
					sf.bucket: int32(part.Bucket),
				}, nil, nil, f.Events, f.Bytes)
			if err != nil {
				return nil, 0, fmt.Errorf("icetable: data file %s: %w", f.Key, err)
			}
			// Event-time bounds let every engine prune files by ts.
			b.ValueCounts(map[int]int64{FieldTs: f.Events}).
				NullValueCounts(map[int]int64{FieldTs: 0}).
				LowerBoundValues(map[int][]byte{FieldTs: micros(f.MinTs)}).
				UpperBoundValues(map[int][]byte{FieldTs: micros(f.MaxTs)})
			files = append(files, b.Build())
			events += f.Events
		}
	}
	return files, events, nil
}

// micros encodes an epoch-millisecond time as an Iceberg timestamptz
// bound.
func micros(ms int64) []byte { return timeBound(time.UnixMilli(ms)) }

// timeBound encodes t as an Iceberg timestamptz bound: microseconds,
// 8 bytes little-endian.
func timeBound(t time.Time) []byte {
	return binary.LittleEndian.AppendUint64(nil, uint64(t.UnixMicro()))
}
