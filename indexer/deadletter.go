// Dead letters: documents Elasticsearch refused for their content, kept
// with the reason in the dead-letter store instead of dropped.

package indexer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/dataco/clickstream/internal/aggregate"
	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/schema"
)

// DeadLetterPrefix is the folder of rejected documents in a dead-letter
// store: DeadLetterPrefix + <window> + "/" + <job> + ".ndjson".
const DeadLetterPrefix = "_index_rejected/"

// Rejection is a document Elasticsearch (or the encoder) refused, as
// written to the dead-letter store, one JSON object a line.
type Rejection struct {
	ID          string          `json:"id"`
	Index       string          `json:"index"`
	Job         string          `json:"job"`
	Status      int             `json:"status"` // HTTP status of the bulk item; 0: not sent (could not be encoded)
	ErrorType   string          `json:"error_type"`
	ErrorReason string          `json:"error_reason"`
	CauseType   string          `json:"caused_by_type,omitempty"`
	CauseReason string          `json:"caused_by_reason,omitempty"`
	Document    json.RawMessage `json:"document"`
	RejectedAt  time.Time       `json:"rejected_at"`
}

// DeadLetterKey is the dead-letter object of a window and a job.
func DeadLetterKey(w aggregate.Window, job string) string {
	if job == "" {
		job = "unknown-job"
	}
	job = strings.NewReplacer("/", "_", "\\", "_", "\x00", "_").Replace(job)
	return DeadLetterPrefix + compactTime(w.From) + "_" + compactTime(w.To) + "/" + job + ".ndjson"
}

func compactTime(t time.Time) string { return t.UTC().Format("20060102T150405.999999999Z") }

// rowForDeadLetter encodes a row that JSON cannot encode as is, with
// non-finite numbers as strings.
func rowForDeadLetter(r *schema.Row) json.RawMessage {
	num := func(f float64) any {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return strconv.FormatFloat(f, 'g', -1, 64)
		}
		return f
	}
	fields := make(map[string]any, len(schema.Columns))
	for _, c := range schema.Columns {
		switch v := c.Value(r).(type) {
		case time.Time:
			fields[c.Name] = v.UTC()
		case float64:
			fields[c.Name] = num(v)
		case *float64:
			fields[c.Name] = nil
			if v != nil {
				fields[c.Name] = num(*v)
			}
		default:
			fields[c.Name] = v
		}
	}
	data, err := json.Marshal(fields)
	if err != nil {
		return json.RawMessage(strconv.Quote(fmt.Sprintf("%+v", *r)))
	}
	return data
}

// writeDeadLetters replaces the dead-letter object of a window and job
// with rejections, or deletes it when there are none (a previous attempt's
// rejections no longer apply).
func writeDeadLetters(ctx context.Context, store lake.Store, key string, rejections []Rejection) error {
	if len(rejections) == 0 {
		if err := store.Delete(ctx, key); err != nil && !errors.Is(err, lake.ErrNotExist) {
			return fmt.Errorf("indexer: deleting stale dead letters %s: %w", key, err)
		}
		return nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for i := range rejections {
		if err := enc.Encode(&rejections[i]); err != nil {
			return fmt.Errorf("indexer: encoding dead letter %s: %w", rejections[i].ID, err)
		}
	}
	if err := store.Put(ctx, key, buf.Bytes()); err != nil {
		return fmt.Errorf("indexer: writing %d dead letters to %s in %s: %w", len(rejections), key, store.URI(), err)
	}
	return nil
}
