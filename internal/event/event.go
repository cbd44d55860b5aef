package event

// MaxSize is the default limit on a raw message value, in bytes.
const MaxSize = 64 << 10

// UnknownCountry replaces a missing or blank country.
const UnknownCountry = "unknown"

// Event is one validated click. Timestamp is UTC epoch milliseconds. The
// lake stores it as a lake.Row (microseconds, Parquet field ids), or as
// this JSON.
type Event struct {
	UserID    string `json:"user_id"`
	Timestamp int64  `json:"timestamp_ms"`
	URL       string `json:"url"`
	Country   string `json:"country"`
	City      string `json:"city"`
	UserAgent string `json:"user_agent"`
	// IsBot marks the event of a crawler or automation tool: ingest's
	// verdict on UserAgent (package bots), not a field of the message
	// (Parse leaves it false).
	IsBot bool `json:"is_bot,omitempty"`
}
