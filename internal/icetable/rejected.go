package icetable

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/table"
	"github.com/twmb/avro/atype"

	"github.com/dataco/clickstream/internal/lake"
)

// RejectedTable names the table of the dead letters: the records ingest
// rejected, with the reason.
const RejectedTable = "rejected"

// rejectedPrefix is the rejected table's folder in the lake.
const rejectedPrefix = "rejected/"

// rejectedRow is a dead letter as the rejected table's Parquet files hold
// it.
type rejectedRow struct {
	Raw        []byte `parquet:"raw,id(1)"`
	Reason     string `parquet:"reason,dict,id(2)"`
	Error      string `parquet:"error,id(3)"`
	Source     string `parquet:"source,dict,id(4)"`
	Position   int64  `parquet:"position,id(5)"`
	IngestTime int64  `parquet:"ingest_time,timestamp(microsecond),id(6)"`
}

// RejectedSchema is the schema of the rejected table: the raw bytes of a
// rejected record, why it was rejected, and where and when it came from.
func RejectedSchema() *iceberg.Schema {
	req := required
	return iceberg.NewSchema(0,
		req(1, "raw", iceberg.PrimitiveTypes.Binary),
		req(2, "reason", iceberg.PrimitiveTypes.String),
		req(3, "error", iceberg.PrimitiveTypes.String),
		req(4, "source", iceberg.PrimitiveTypes.String),
		req(5, "position", iceberg.PrimitiveTypes.Int64),
		req(6, "ingest_time", iceberg.PrimitiveTypes.TimestampTz),
	)
}

// EnsureRejected returns the rejected table of the lake at store, creating
// it if needed: located at the lake's rejected/ folder, partitioned by
// day(ingest_time).
func EnsureRejected(ctx context.Context, cat catalog.Catalog, store lake.Store) (*table.Table, error) {
	return ensureDayTable(ctx, cat, store, RejectedTable, RejectedSchema(), 6, "ingest_day", rejectedPrefix)
}

// PublishRejected adds to the rejected table the dead letters of every
// lake commit it does not hold yet, with the protocol of Publish: each
// commit's dead letters enter once, in one snapshot. The lake keeps them
// as NDJSON; each commit's become one Parquet file of the table, written
// under a name of the commit's, so that redoing a publication rewrites the
// same file.
func PublishRejected(ctx context.Context, cat catalog.Catalog, store lake.Store) (Published, error) {
	return publish(ctx, cat, store, RejectedTable, rejectedFiles, listAll)
}

// maxDeadLetterFile bounds the dead-letter file of one commit that
// PublishRejected reads.
const maxDeadLetterFile = 1 << 30

func rejectedFiles(ctx context.Context, tbl *table.Table, store lake.Store, ms []*lake.Manifest) ([]iceberg.DataFile, int64, error) {
	spec := tbl.Spec()
	if spec.NumFields() != 1 {
		return nil, 0, fmt.Errorf("icetable: table %s: partition spec %s is not day(ingest_time)", RejectedTable, spec)
	}
	root := strings.TrimSuffix(store.URI(), "/") + "/"
	var (
		files []iceberg.DataFile
		rows  int64
	)
	for _, m := range ms {
		if m.Rejected == "" {
			continue
		}
		data, err := store.Get(ctx, m.Rejected)
		if err != nil {
			return nil, 0, fmt.Errorf("icetable: dead letters of %s/%d: %w", m.Source, m.Seq, err)
		}
		if len(data) > maxDeadLetterFile {
			return nil, 0, fmt.Errorf("icetable: dead letters %s: %d bytes, more than %d", m.Rejected, len(data), maxDeadLetterFile)
		}
		letters, err := decodeDeadLetters(data, m.Committed.UnixMicro())
		if err != nil {
			return nil, 0, fmt.Errorf("icetable: dead letters %s: %w", m.Rejected, err)
		}
		if int64(len(letters)) != m.RejectedCount {
			return nil, 0, fmt.Errorf("icetable: dead letters %s: %d records, the manifest says %d", m.Rejected, len(letters), m.RejectedCount)
		}
		pq, err := encodeRows(letters, "dead letters")
		if err != nil {
			return nil, 0, err
		}
		key := fmt.Sprintf("%sdata/%s/%012d.parquet", rejectedPrefix, sourceKey(m.Source), m.Seq)
		if err := store.Put(ctx, key, pq); err != nil {
			return nil, 0, fmt.Errorf("icetable: write %s: %w", key, err)
		}
		day := int32(m.Committed.UTC().Unix() / 86400)
		b, err := iceberg.NewDataFileBuilder(spec, iceberg.EntryContentData, root+key, iceberg.ParquetFile,
			map[int]any{spec.Field(0).FieldID: iceberg.Date(day)}, map[int]string{spec.Field(0).FieldID: atype.Date},
			nil, int64(len(letters)), int64(len(pq)))
		if err != nil {
			return nil, 0, fmt.Errorf("icetable: rejected file %s: %w", key, err)
		}
		at := timeBound(m.Committed)
		b.LowerBoundValues(map[int][]byte{6: at}).UpperBoundValues(map[int][]byte{6: at})
		files = append(files, b.Build())
		rows += int64(len(letters))
	}
	return files, rows, nil
}

// deadLetter is a line of the lake's dead-letter files (package ingest).
type deadLetter struct {
	Source    string `json:"source"`
	Position  int64  `json:"position"`
	Reason    string `json:"reason"`
	Error     string `json:"error"`
	Raw       string `json:"raw"`
	RawBase64 string `json:"raw_base64"`
}

func decodeDeadLetters(data []byte, ingestMicros int64) ([]rejectedRow, error) {
	var rows []rejectedRow
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), len(data)+1)
	for line := 1; sc.Scan(); line++ {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var d deadLetter
		if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		raw := []byte(d.Raw)
		if d.RawBase64 != "" {
			var err error
			if raw, err = base64.StdEncoding.DecodeString(d.RawBase64); err != nil {
				return nil, fmt.Errorf("line %d: raw_base64: %w", line, err)
			}
		}
		rows = append(rows, rejectedRow{Raw: raw, Reason: d.Reason, Error: d.Error, Source: d.Source,
			Position: d.Position, IngestTime: ingestMicros})
	}
	return rows, sc.Err()
}
