package lake

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ManifestVersion is the current manifest format.
const ManifestVersion = 1

// Manifest is one commit of a source: the source positions [Start, End) it
// covers and every object those positions produced. A commit exists iff its
// manifest exists; data files named by no manifest are garbage.
type Manifest struct {
	Version int    `json:"version"`
	Source  string `json:"source"`
	Seq     uint64 `json:"seq"`
	Writer  string `json:"writer"`
	// Start and End delimit the source positions covered: Kafka offsets, or
	// line numbers of a file. The next commit starts where this one ends.
	Start int64 `json:"start"`
	End   int64 `json:"end"`
	// Files lists the data files of this commit.
	Files []DataFile `json:"files"`
	// Rejected names the dead-letter file of this commit, if any record was rejected.
	Rejected      string `json:"rejected,omitempty"`
	ValidCount    int64  `json:"valid"`
	RejectedCount int64  `json:"rejected_count"`
	// Watermark is the highest event time (epoch ms) the source has
	// delivered up to and including this commit; it never decreases.
	Watermark int64 `json:"watermark_ms"`
	// Hours maps each event-time hour touched by this commit to its mark.
	Hours     map[string]HourMark `json:"hours,omitempty"`
	Committed time.Time           `json:"committed"`
}

// DataFile is one data file of a commit.
type DataFile struct {
	Key    string `json:"key"`
	Bucket int    `json:"bucket"`
	Hour   string `json:"hour"` // HourFormat
	Events int64  `json:"events"`
	Bytes  int64  `json:"bytes"`
	MinTs  int64  `json:"min_ts_ms"`
	MaxTs  int64  `json:"max_ts_ms"`
}

// Partition returns the data file's partition.
func (f DataFile) Partition() (Partition, error) {
	h, err := time.Parse(HourFormat, f.Hour)
	if err != nil {
		return Partition{}, fmt.Errorf("lake: data file %s: hour %q: %w", f.Key, f.Hour, err)
	}
	return Partition{Hour: h.UTC(), Bucket: f.Bucket}, nil
}

// HourMark records, for one source and event-time hour, how many events a
// commit added and the latest event time seen in that hour so far.
type HourMark struct {
	Events int64 `json:"events"`
	MaxTs  int64 `json:"max_ts_ms"`
}

// Watermark is the record a source keeps at WatermarkKey: how far in event
// time, and in source position, ingest has come.
type Watermark struct {
	Source    string    `json:"source"`
	Seq       uint64    `json:"seq"`
	End       int64     `json:"end"`
	Watermark int64     `json:"watermark_ms"`
	Updated   time.Time `json:"updated"`
}

// LayoutVersion is the layout of the lakes this package writes and reads,
// recorded in Meta.Version:
//
//	1  FNV-1a 64 buckets, Parquet column timestamp_ms (epoch ms), files
//	   sorted by user-id hash (no longer read)
//	2  Iceberg bucket(n, user_id) buckets (murmur3), Parquet field ids and
//	   a ts column of microseconds (timestamptz), files sorted by
//	   user_id, ts (SortOrder)
const LayoutVersion = 2

// ErrLayout is matched by the error of ReadMeta (and so of EnsureMeta and
// ReadSnapshot) for a lake of another layout than LayoutVersion.
var ErrLayout = errors.New("lake: unsupported layout")

// layoutNames describes the layouts in errors.
var layoutNames = map[int]string{
	1: "1: FNV buckets, timestamp_ms files",
}

// Meta is the lake's own record at MetaKey, fixed when the lake is created.
// Version is its layout (LayoutVersion).
type Meta struct {
	Version int       `json:"version"`
	Buckets int       `json:"buckets"`
	Created time.Time `json:"created"`
}

// ErrFenced reports that another writer committed the sequence number this
// writer tried to commit: this writer's view of the source is stale.
var ErrFenced = errors.New("lake: commit fenced by another writer")

// ErrWatermark reports a commit whose manifest was written but whose
// watermark record could not be updated.
var ErrWatermark = errors.New("watermark record not updated")

// EnsureMeta returns the lake's metadata, creating it with buckets if the
// lake is new. A lake's bucket count never changes: asking for a different
// non-zero count than the lake has is an error.
func EnsureMeta(ctx context.Context, s Store, buckets int) (Meta, error) {
	if buckets < 0 {
		return Meta{}, fmt.Errorf("lake: bucket count %d must be positive", buckets)
	}
	m, err := ReadMeta(ctx, s)
	if errors.Is(err, ErrNotExist) {
		n := buckets
		if n == 0 {
			n = DefaultBuckets
		}
		m = Meta{Version: LayoutVersion, Buckets: n, Created: time.Now().UTC()}
		data, _ := json.Marshal(m)
		err = s.PutIfAbsent(ctx, MetaKey, data)
		if errors.Is(err, ErrExists) { // another writer created it first
			m, err = ReadMeta(ctx, s)
		}
	}
	if err != nil {
		return Meta{}, err
	}
	if buckets != 0 && buckets != m.Buckets {
		return Meta{}, fmt.Errorf("lake %s has %d buckets, not %d: the bucket count is fixed when a lake is created", s.URI(), m.Buckets, buckets)
	}
	return m, nil
}

// ReadMeta reads the lake's metadata; ErrNotExist if the lake is new.
func ReadMeta(ctx context.Context, s Store) (Meta, error) {
	m, err := readMeta(ctx, s)
	if err != nil {
		return Meta{}, err
	}
	if err := checkLayout(s, m.Version); err != nil {
		return Meta{}, err
	}
	return m, nil
}

// readMeta reads the lake's meta record, of any layout.
func readMeta(ctx context.Context, s Store) (Meta, error) {
	data, err := s.Get(ctx, MetaKey)
	if err != nil {
		return Meta{}, fmt.Errorf("lake: read %s: %w", MetaKey, err)
	}
	var m Meta
	if err := json.Unmarshal(data, &m); err != nil {
		return Meta{}, fmt.Errorf("lake: decode %s: %w", MetaKey, err)
	}
	if m.Buckets <= 0 {
		return Meta{}, fmt.Errorf("lake: %s: invalid bucket count %d", MetaKey, m.Buckets)
	}
	return m, nil
}

// checkLayout fails for a lake of another layout than LayoutVersion.
func checkLayout(s Store, version int) error {
	switch {
	case version == LayoutVersion:
		return nil
	case version < LayoutVersion:
		name, ok := layoutNames[version]
		if !ok {
			name = strconv.Itoa(version)
		}
		return fmt.Errorf("lake %[1]s was written by an older layout (%[2]s); this version reads layout %[3]d only: re-ingest the events into a new lake (clickstream migrate --from %[1]s --lake NEW): %[4]w",
			s.URI(), name, LayoutVersion, ErrLayout)
	default:
		return fmt.Errorf("lake %s was written by a newer layout (%d); this version reads layout %d only: upgrade clickstream: %w",
			s.URI(), version, LayoutVersion, ErrLayout)
	}
}

// Commit writes m as the manifest of its source and sequence number. It
// returns ErrFenced if that sequence number is already committed. After a
// successful commit it updates the source's watermark record; if that fails
// the error wraps ErrWatermark, and the commit stands: the manifest is the
// truth, the record a cheap summary of it that the next commit rewrites.
func Commit(ctx context.Context, s Store, m *Manifest) error {
	m.Version = ManifestVersion
	if m.Committed.IsZero() {
		m.Committed = time.Now().UTC()
	}
	data, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("lake: encode manifest: %w", err)
	}
	key := ManifestKey(m.Source, m.Seq)
	if err := s.PutIfAbsent(ctx, key, data); err != nil {
		if errors.Is(err, ErrExists) {
			return fmt.Errorf("lake: commit %s: %w", key, ErrFenced)
		}
		return fmt.Errorf("lake: commit %s: %w", key, err)
	}
	wm, _ := json.Marshal(Watermark{Source: m.Source, Seq: m.Seq, End: m.End, Watermark: m.Watermark, Updated: m.Committed})
	if err := s.Put(ctx, WatermarkKey(m.Source), wm); err != nil {
		return fmt.Errorf("lake: commit %s: %w: %w", key, ErrWatermark, err)
	}
	return nil
}

// ReadManifest reads one manifest by key.
func ReadManifest(ctx context.Context, s Store, key string) (*Manifest, error) {
	data, err := s.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("lake: read manifest: %w", err)
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("lake: decode manifest %s: %w", key, err)
	}
	if m.Version != ManifestVersion {
		return nil, fmt.Errorf("lake: manifest %s: unsupported version %d", key, m.Version)
	}
	return &m, nil
}

// LastManifest returns the newest committed manifest of source, or nil if
// the source has never committed.
func LastManifest(ctx context.Context, s Store, source string) (*Manifest, error) {
	objs, err := s.List(ctx, ManifestSourcePrefix(source))
	if err != nil {
		return nil, fmt.Errorf("lake: list manifests of %s: %w", source, err)
	}
	var last string
	var lastSeq uint64
	for _, o := range objs {
		seq, err := ParseManifestSeq(o.Key)
		if err != nil {
			continue // not a manifest
		}
		if seq >= lastSeq {
			last, lastSeq = o.Key, seq
		}
	}
	if last == "" {
		return nil, nil
	}
	return ReadManifest(ctx, s, last)
}

// Snapshot is the committed content of the lake at one moment: every
// manifest of every source.
type Snapshot struct {
	Meta      Meta
	Manifests []*Manifest // sorted by (source, seq)
}

// ReadSnapshot reads every manifest of the lake, concurrently.
func ReadSnapshot(ctx context.Context, s Store) (*Snapshot, error) {
	return NewSnapshotReader(s).Read(ctx)
}

// SnapshotReader reads snapshots of one lake again and again, as a
// scheduler polling it does: manifests are written once and never change,
// so each Read lists the manifests but reads only those it has not read
// before. Not safe for concurrent use.
type SnapshotReader struct {
	store  Store
	read   map[string]*Manifest // by key
	layout int                  // of the lake read; 0: LayoutVersion
}

// NewSnapshotReader returns a reader of s's snapshots.
func NewSnapshotReader(s Store) *SnapshotReader {
	return &SnapshotReader{store: s, read: make(map[string]*Manifest)}
}

// Read returns the lake's snapshot now.
func (r *SnapshotReader) Read(ctx context.Context) (*Snapshot, error) {
	var meta Meta
	var err error
	if r.layout == 0 {
		meta, err = ReadMeta(ctx, r.store)
	} else if meta, err = readMeta(ctx, r.store); err == nil && meta.Version != r.layout {
		err = fmt.Errorf("lake %s has layout %d, not %d", r.store.URI(), meta.Version, r.layout)
	}
	if err != nil {
		return nil, err
	}
	objs, err := r.store.List(ctx, ManifestsPrefix)
	if err != nil {
		return nil, fmt.Errorf("lake: list manifests: %w", err)
	}
	listed := make(map[string]bool, len(objs))
	var keys []string // not read yet
	for _, o := range objs {
		if !strings.HasSuffix(o.Key, ".json") {
			continue
		}
		listed[o.Key] = true
		if r.read[o.Key] == nil {
			keys = append(keys, o.Key)
		}
	}
	got := make([]*Manifest, len(keys))
	errs := make([]error, len(keys))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i, k := range keys {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			got[i], errs[i] = ReadManifest(ctx, r.store, k)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for i, k := range keys {
		r.read[k] = got[i]
	}
	for k := range r.read {
		if !listed[k] {
			delete(r.read, k) // gone from the store (a lake rebuilt in place)
		}
	}
	out := make([]*Manifest, 0, len(r.read))
	for _, m := range r.read {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Source != out[j].Source {
			return out[i].Source < out[j].Source
		}
		return out[i].Seq < out[j].Seq
	})
	return &Snapshot{Meta: meta, Manifests: out}, nil
}

// FilesFor returns, per user bucket, the committed data files holding events
// whose time lies in [from, to), sorted by key. Files are selected by their
// recorded time range, so an hour partially inside the range is included.
func (sn *Snapshot) FilesFor(from, to time.Time) map[int][]DataFile {
	lo, hi := from.UnixMilli(), to.UnixMilli()
	out := make(map[int][]DataFile)
	for _, m := range sn.Manifests {
		for _, f := range m.Files {
			if f.MaxTs < lo || f.MinTs >= hi {
				continue
			}
			out[f.Bucket] = append(out[f.Bucket], f)
		}
	}
	for b := range out {
		slices.SortFunc(out[b], func(x, y DataFile) int { return strings.Compare(x.Key, y.Key) })
	}
	return out
}

// Watermarks returns the latest watermark of every source in the snapshot.
func (sn *Snapshot) Watermarks() map[string]Watermark {
	out := make(map[string]Watermark)
	for _, m := range sn.Manifests {
		w := out[m.Source]
		if m.Seq >= w.Seq {
			out[m.Source] = Watermark{Source: m.Source, Seq: m.Seq, End: m.End, Watermark: m.Watermark, Updated: m.Committed}
		}
	}
	return out
}

// ReadWatermarks reads the watermark records of at most limit sources (the
// first by key), the cheap view of ingest's progress that each commit
// updates: one small object per source, no manifest. A record that cannot
// be read or decoded is skipped; more reports whether sources were left
// out.
func ReadWatermarks(ctx context.Context, s Store, limit int) (_ []Watermark, more bool, _ error) {
	objs, err := s.List(ctx, WatermarksPrefix)
	if err != nil {
		return nil, false, fmt.Errorf("lake: list watermarks: %w", err)
	}
	slices.SortFunc(objs, func(a, b ObjectInfo) int { return strings.Compare(a.Key, b.Key) })
	if len(objs) > limit {
		objs, more = objs[:limit], true
	}
	out := make([]Watermark, 0, len(objs))
	for _, o := range objs {
		data, err := s.Get(ctx, o.Key)
		if err != nil {
			if ctx.Err() != nil {
				return nil, false, ctx.Err()
			}
			continue
		}
		var w Watermark
		if json.Unmarshal(data, &w) == nil && w.Source != "" {
			out = append(out, w)
		}
	}
	return out, more, nil
}
