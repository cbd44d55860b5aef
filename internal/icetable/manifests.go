package icetable

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"

	"github.com/dataco/clickstream/internal/lake"
)

// ManifestCache keeps the live data files of the events table's manifests
// already read, by manifest path. A manifest never changes once written,
// so a planner that plans job after job from one table (the scheduler's
// windows) reads and decodes each manifest once; what is left of planning
// is the snapshot's manifest list and a pass over the cached files of the
// manifests whose hours overlap the window. Safe for concurrent use.
type ManifestCache struct {
	mu       sync.Mutex
	maxFiles int
	files    int
	byPath   map[string][]lake.DataFile
	order    []string // paths, oldest first: the first to go
}

// NewManifestCache returns a cache of at most maxFiles data files (about
// 150 bytes each, plus their keys).
func NewManifestCache(maxFiles int) *ManifestCache {
	return &ManifestCache{maxFiles: maxFiles, byPath: make(map[string][]lake.DataFile)}
}

// DefaultManifestCacheFiles bounds a coordinator's manifest cache: a
// million files, some 250 MB.
const DefaultManifestCacheFiles = 1 << 20

func (c *ManifestCache) get(path string) ([]lake.DataFile, bool) {
	if c == nil {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	f, ok := c.byPath[path]
	return f, ok
}

func (c *ManifestCache) put(path string, files []lake.DataFile) {
	if c == nil || len(files) > c.maxFiles {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.byPath[path]; ok {
		return
	}
	for c.files+len(files) > c.maxFiles && len(c.order) > 0 {
		old := c.order[0]
		c.order = c.order[1:]
		c.files -= len(c.byPath[old])
		delete(c.byPath, old)
	}
	c.byPath[path] = files
	c.order = append(c.order, path)
	c.files += len(files)
}

// errPlanUnsupported: a table this planner does not read itself (delete
// files, another partition spec); iceberg-go's scan plans it.
var errPlanUnsupported = errors.New("icetable: plan: table layout not planned from cached manifests")

// planFiles lists the files of a snapshot of the events table whose
// events may lie in [from, to), per bucket, sorted by key, as tableFiles
// does, reading through cache: it prunes manifests by the hour bounds of
// their partition summaries, then files by their ts bounds.
func planFiles(ctx context.Context, tbl *table.Table, src lake.Store, snapshot int64, from, to time.Time, cache *ManifestCache) (map[int][]lake.DataFile, error) {
	s := tbl.SnapshotByID(snapshot)
	if s == nil {
		return nil, fmt.Errorf("icetable: plan: no snapshot %d", snapshot)
	}
	spec := tbl.Spec()
	sf, err := partitionFields(spec)
	if err != nil {
		return nil, err
	}
	hourAt := -1 // the hour field's place in the partition tuple
	for i, f := range spec.Fields() {
		if f.FieldID == sf.hour {
			hourAt = i
		}
	}
	fs, err := tbl.FS(ctx)
	if err != nil {
		return nil, fmt.Errorf("icetable: plan: %w", err)
	}
	manifests, err := s.Manifests(fs)
	if err != nil {
		return nil, fmt.Errorf("icetable: plan: snapshot %d: %w", snapshot, err)
	}
	root := strings.TrimSuffix(src.URI(), "/") + "/"
	fromMs, toMs := from.UnixMilli(), to.UnixMilli()
	firstHour, lastHour := int32(lake.FloorDiv(fromMs, 3_600_000)), int32(lake.FloorDiv(toMs-1, 3_600_000))
	out := map[int][]lake.DataFile{}
	for _, m := range manifests {
		if m.ManifestContent() != iceberg.ManifestContentData || int(m.PartitionSpecID()) != spec.ID() {
			return nil, errPlanUnsupported
		}
		if sums := m.Partitions(); hourAt < len(sums) {
			lo, hi := sums[hourAt].LowerBound, sums[hourAt].UpperBound
			if lo != nil && hi != nil && len(*lo) == 4 && len(*hi) == 4 &&
				(int32(binary.LittleEndian.Uint32(*hi)) < firstHour || int32(binary.LittleEndian.Uint32(*lo)) > lastHour) {
				continue // no file of this manifest is in the window's hours
			}
		}
		files, ok := cache.get(m.FilePath())
		if !ok {
			if files, err = manifestFiles(m, fs, sf, root, false); err != nil {
				return nil, fmt.Errorf("icetable: plan: %w", err)
			}
			cache.put(m.FilePath(), files)
		}
		for _, f := range files {
			if f.MaxTs >= fromMs && f.MinTs < toMs {
				out[f.Bucket] = append(out[f.Bucket], f)
			}
		}
	}
	for b := range out {
		slices.SortFunc(out[b], func(x, y lake.DataFile) int { return strings.Compare(x.Key, y.Key) })
	}
	return out, nil
}
