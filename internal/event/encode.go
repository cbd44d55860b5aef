package event

import (
	"time"

	"github.com/dataco/clickstream/internal/jsonstr"
)

// TimestampLayout is the RFC 3339 layout Encode writes: UTC, milliseconds.
const TimestampLayout = "2006-01-02T15:04:05.000Z07:00"

// Encode returns e as a message value that Parse accepts and turns back into
// e, provided e is itself valid: non-blank UserID, non-empty URL, trimmed
// non-empty Country, Timestamp within [MinTimestamp, MaxTimestamp]. The
// timestamp is written as RFC 3339 in UTC with milliseconds.
func Encode(e Event) []byte {
	return AppendEncode(make([]byte, 0, 64+len(e.UserID)+len(e.URL)+len(e.Country)+len(e.City)+len(e.UserAgent)), e)
}

// AppendEncode appends Encode(e) to dst and returns the extended slice.
func AppendEncode(dst []byte, e Event) []byte {
	dst = append(dst, `{"user_id":`...)
	dst = jsonstr.Append(dst, e.UserID)
	dst = append(dst, `,"timestamp":"`...)
	dst = time.UnixMilli(e.Timestamp).UTC().AppendFormat(dst, TimestampLayout)
	dst = append(dst, `","url":`...)
	dst = jsonstr.Append(dst, e.URL)
	dst = append(dst, `,"country":`...)
	dst = jsonstr.Append(dst, e.Country)
	dst = append(dst, `,"city":`...)
	dst = jsonstr.Append(dst, e.City)
	dst = append(dst, `,"user_agent":`...)
	dst = jsonstr.Append(dst, e.UserAgent)
	return append(dst, '}')
}
