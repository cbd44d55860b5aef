package lake

import (
	"encoding/binary"
	"fmt"
	"math"
	"path"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/twmb/murmur3"
)

// Key prefixes of the lake layout. Everything a reader may trust is reachable
// from a committed manifest; objects under EventsPrefix that no manifest
// names are leftovers of a crashed or fenced writer and are ignored.
const (
	MetaKey          = "_lake.json"
	EventsPrefix     = "events/"
	ManifestsPrefix  = "_manifests/"
	WatermarksPrefix = "_watermarks/"
	RejectedPrefix   = "_rejected/"
)

// HourFormat names an event-time hour in partition keys (UTC).
const HourFormat = "2006-01-02T15"

// DefaultBuckets is the user-bucket count of a new lake.
const DefaultBuckets = 16

// Bucket returns the user bucket of userID in a lake of n buckets: Apache
// Iceberg's bucket(n, user_id) partition transform, murmur3_x86_32 (seed 0)
// of the id's UTF-8 bytes, its sign bit cleared, modulo n. All events of a
// user share a bucket.
func Bucket(userID string, n int) int {
	return BucketOfHash(BucketHash(userID), n)
}

// BucketHash is the hash of userID that Bucket reduces: murmur3_x86_32,
// seed 0, of its bytes.
func BucketHash(userID string) uint32 {
	return murmur3.Sum32(unsafe.Slice(unsafe.StringData(userID), len(userID)))
}

// BucketOfHash returns the bucket of a BucketHash in a lake of n buckets.
func BucketOfHash(h uint32, n int) int {
	return int(int32(h)&math.MaxInt32) % n
}

// UserIDPrefix is the first 8 bytes of userID as a big-endian integer,
// zero-padded: an order-preserving key of the ids (a < b as strings implies
// UserIDPrefix(a) <= UserIDPrefix(b)), which sorts a data file's users by
// integer comparisons, the full ids breaking ties (SortOrder).
func UserIDPrefix(userID string) uint64 {
	if len(userID) >= 8 {
		return binary.BigEndian.Uint64(unsafe.Slice(unsafe.StringData(userID), 8))
	}
	var b [8]byte
	copy(b[:], userID)
	return binary.BigEndian.Uint64(b[:])
}

// Partition is one cell of the layout: an event-time hour and a user bucket.
type Partition struct {
	Hour   time.Time // truncated to the hour, UTC
	Bucket int
}

// FloorDiv is a / b rounded toward negative infinity, for b > 0: the
// hour, bucket or window index of a time before 1970 too.
func FloorDiv(a, b int64) int64 {
	q := a / b
	if a%b < 0 {
		q--
	}
	return q
}

// HourOf truncates an epoch-millisecond timestamp to its UTC hour.
func HourOf(tsMillis int64) time.Time {
	return time.UnixMilli(tsMillis).UTC().Truncate(time.Hour)
}

// Dir is the partition's folder: events/hour=2006-01-02T15/bucket=0007/.
func (p Partition) Dir() string {
	return fmt.Sprintf("%shour=%s/bucket=%04d/", EventsPrefix, p.Hour.UTC().Format(HourFormat), p.Bucket)
}

func (p Partition) String() string {
	return strings.TrimSuffix(strings.TrimPrefix(p.Dir(), EventsPrefix), "/")
}

// ParsePartitionDir parses the folder part of a data file key.
func ParsePartitionDir(key string) (Partition, error) {
	rest, ok := strings.CutPrefix(key, EventsPrefix)
	if !ok {
		return Partition{}, fmt.Errorf("lake: key %q is not under %s", key, EventsPrefix)
	}
	parts := strings.SplitN(rest, "/", 3)
	if len(parts) < 2 {
		return Partition{}, fmt.Errorf("lake: key %q has no partition folders", key)
	}
	hs, ok1 := strings.CutPrefix(parts[0], "hour=")
	bs, ok2 := strings.CutPrefix(parts[1], "bucket=")
	if !ok1 || !ok2 {
		return Partition{}, fmt.Errorf("lake: key %q: malformed partition folders", key)
	}
	h, err := time.Parse(HourFormat, hs)
	if err != nil {
		return Partition{}, fmt.Errorf("lake: key %q: hour: %w", key, err)
	}
	b, err := strconv.Atoi(bs)
	if err != nil {
		return Partition{}, fmt.Errorf("lake: key %q: bucket: %w", key, err)
	}
	return Partition{Hour: h.UTC(), Bucket: b}, nil
}

// DataFileKey names a data file written by one commit of a source.
// writer is unique per commit attempt (ingest: the process run's id and an
// attempt number), so that files of a fenced-off writer, or late writes of
// an attempt that failed, never collide with the files a manifest names.
func DataFileKey(p Partition, source string, seq uint64, writer, ext string) string {
	return path.Join(p.Dir(), fmt.Sprintf("%s-%012d-%s%s", sanitize(source), seq, writer, ext))
}

// ManifestKey names commit seq of a source. Commits are numbered from 1
// without gaps; the manifest is written with PutIfAbsent, which is what
// fences a zombie writer: of two writers committing the same seq, one wins.
func ManifestKey(source string, seq uint64) string {
	return fmt.Sprintf("%s%s/%012d.json", ManifestsPrefix, sanitize(source), seq)
}

// ManifestSourcePrefix is the folder holding every manifest of a source.
func ManifestSourcePrefix(source string) string {
	return ManifestsPrefix + sanitize(source) + "/"
}

// ParseManifestSeq returns the sequence number encoded in a manifest key.
func ParseManifestSeq(key string) (uint64, error) {
	base := path.Base(key)
	n, err := strconv.ParseUint(strings.TrimSuffix(base, ".json"), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("lake: manifest key %q: %w", key, err)
	}
	return n, nil
}

// WatermarkKey names the latest watermark record of a source.
func WatermarkKey(source string) string {
	return WatermarksPrefix + sanitize(source) + ".json"
}

// RejectedKey names the dead-letter file of one commit of a source.
func RejectedKey(source string, seq uint64, writer string) string {
	return fmt.Sprintf("%s%s/%012d-%s.ndjson", RejectedPrefix, sanitize(source), seq, writer)
}

// KafkaSource names the lake source of one Kafka topic partition.
func KafkaSource(topic string, partition int32) string {
	return fmt.Sprintf("kafka.%s.%d", topic, partition)
}

// sanitize keeps source names usable as a single key segment.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
			return r
		}
		return '_'
	}, s)
}
