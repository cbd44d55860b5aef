// Documents: what a result row becomes in Elasticsearch, under which id.

package indexer

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/dataco/clickstream/internal/schema"
)

// document is what is indexed for one result row: the row's fields
// (schema.Columns), then which job and call indexed it, and when. The
// mapping (mapping.go) lists the same fields.
type document struct {
	schema.Row
	Job        string    `json:"job"`
	Generation string    `json:"generation"`
	IndexedAt  time.Time `json:"indexed_at"`
}

// DocID is the document id of a result row: the first 32 hex digits of
// the SHA-256 of its window (epoch milliseconds) and its URL and country
// (length-prefixed). Re-indexing a window replaces its documents.
func DocID(windowStart, windowEnd time.Time, url, country string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%d\n%d\n%d:%s%d:%s", windowStart.UnixMilli(), windowEnd.UnixMilli(), len(url), url, len(country), country)
	return hex.EncodeToString(h.Sum(nil))[:32]
}

// RowDocID is the document id of a row: DocID for a window row (as
// before rows had a grain), and for a roll-up row the same hash with its
// grain first, so that a day's roll-up never replaces a one-day window's
// documents, nor a (url, all countries) row one of another grain.
func RowDocID(r *schema.Row) string {
	g := rowGrain(r.Grain)
	if g == schema.GrainWindow {
		return DocID(r.WindowStart, r.WindowEnd, r.URL, r.Country)
	}
	h := sha256.New()
	fmt.Fprintf(h, "grain=%d:%s\n%d\n%d\n%d:%s%d:%s", len(g), g, r.WindowStart.UnixMilli(), r.WindowEnd.UnixMilli(), len(r.URL), r.URL, len(r.Country), r.Country)
	return hex.EncodeToString(h.Sum(nil))[:32]
}

// pending is one encoded document.
type pending struct {
	id   string
	body []byte
}

// encode turns rows into documents. A row that cannot be encoded (a NaN
// or infinite number) is rejected here; duplicate rows fail the call.
func (w *Writer) encode(rows []schema.Row, job, gen string, now time.Time) ([]pending, []Rejection, error) {
	docs := make([]pending, 0, len(rows))
	var rejections []Rejection
	seen := make(map[string]int, len(rows))
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for i := range rows {
		r := &rows[i]
		id := RowDocID(r)
		if j, dup := seen[id]; dup {
			return nil, nil, fmt.Errorf("%w: rows %d and %d are both url %q country %q", ErrBadResult, j, i, truncate(r.URL, 200), r.Country)
		}
		seen[id] = i
		buf.Reset()
		doc := document{Row: *r, Job: job, Generation: gen, IndexedAt: now}
		doc.WindowStart, doc.WindowEnd = r.WindowStart.UTC(), r.WindowEnd.UTC()
		doc.Grain = rowGrain(r.Grain) // rows read from results older than the column
		err := enc.Encode(&doc)
		if err != nil {
			rejections = append(rejections, Rejection{
				ID: id, Index: w.index, Job: job, ErrorType: "client_encoding_error", ErrorReason: err.Error(),
				Document: rowForDeadLetter(r), RejectedAt: now,
			})
			w.ix.metrics.documents.WithLabelValues(outcomeRejected).Inc()
			continue
		}
		body := bytes.Clone(bytes.TrimRight(buf.Bytes(), "\n"))
		if w.ix.hooks.docBody != nil {
			body = w.ix.hooks.docBody(id, body)
		}
		docs = append(docs, pending{id: id, body: body})
	}
	return docs, rejections, nil
}
