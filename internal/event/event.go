package event

// MaxSize is the default limit on a raw message value, in bytes.
const MaxSize = 64 << 10

// UnknownCountry replaces a missing or blank country.
const UnknownCountry = "unknown"

// Event is one validated click, as stored in the lake. Timestamp is UTC
// epoch milliseconds. Every field is tagged: parquet-go reads untagged
// fields back empty.
type Event struct {
	UserID    string `parquet:"user_id,dict" json:"user_id"`
	Timestamp int64  `parquet:"timestamp_ms" json:"timestamp_ms"`
	URL       string `parquet:"url,dict" json:"url"`
	Country   string `parquet:"country,dict" json:"country"`
	City      string `parquet:"city,dict" json:"city"`
	UserAgent string `parquet:"user_agent,dict" json:"user_agent"`
}
