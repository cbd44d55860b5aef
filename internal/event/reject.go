package event

import "errors"

// Reason is a short, stable code naming why a message was rejected. Reasons
// are safe to use as metric labels and as keys of the rejected-records area of
// the lake: they never change once published.
type Reason string

// The rejection reasons, in the order Parse checks them.
const (
	ReasonTooLarge         Reason = "too_large"         // message longer than the size limit
	ReasonInvalidUTF8      Reason = "invalid_utf8"      // message bytes are not valid UTF-8
	ReasonMalformedJSON    Reason = "malformed_json"    // not one well-formed JSON value
	ReasonNotObject        Reason = "not_object"        // well-formed JSON, but not an object
	ReasonDuplicateField   Reason = "duplicate_field"   // a contract field appears twice
	ReasonMissingUserID    Reason = "missing_user_id"   // user_id absent or null
	ReasonBadUserID        Reason = "bad_user_id"       // user_id blank, non-integer number or wrong type
	ReasonMissingTimestamp Reason = "missing_timestamp" // timestamp absent or null
	ReasonBadTimestamp     Reason = "bad_timestamp"     // timestamp not RFC 3339 nor integer epoch ms, or out of range
	ReasonMissingURL       Reason = "missing_url"       // url absent or null
	ReasonBadURL           Reason = "bad_url"           // url empty or not a string
	ReasonBadCountry       Reason = "bad_country"       // country not a string
	ReasonBadCity          Reason = "bad_city"          // city not a string
	ReasonBadUserAgent     Reason = "bad_user_agent"    // user_agent not a string
)

// Reasons returns every rejection reason, in the order Parse checks them.
// It is meant for pre-registering metric label values and for tests.
func Reasons() []Reason {
	return []Reason{
		ReasonTooLarge, ReasonInvalidUTF8, ReasonMalformedJSON, ReasonNotObject,
		ReasonDuplicateField, ReasonMissingUserID, ReasonBadUserID,
		ReasonMissingTimestamp, ReasonBadTimestamp, ReasonMissingURL, ReasonBadURL,
		ReasonBadCountry, ReasonBadCity, ReasonBadUserAgent,
	}
}

// RejectError reports a message that breaks the event contract. Every error
// returned by Parse is a *RejectError; match it with errors.As or ReasonOf.
type RejectError struct {
	Reason Reason // stable code, see the Reason constants
	Detail string // human-readable detail; not stable, do not match on it
}

// Error returns "event: <reason>: <detail>".
func (e *RejectError) Error() string {
	return "event: " + string(e.Reason) + ": " + e.Detail
}

// ReasonOf returns the Reason of the *RejectError in err's chain, or "" if
// there is none (including when err is nil).
func ReasonOf(err error) Reason {
	var re *RejectError
	if errors.As(err, &re) {
		return re.Reason
	}
	return ""
}

func reject(r Reason, detail string) error {
	return &RejectError{Reason: r, Detail: detail}
}
