package event

import (
	"fmt"
	"unicode/utf8"
)

// Parser parses raw message values into events. The zero value is ready to
// use and applies the default size limit.
type Parser struct {
	// MaxSize is the largest message accepted, in bytes; 0 or less means
	// the package default MaxSize.
	MaxSize int
}

// Parse parses one raw message value with the default size limit. See
// Parser.Parse for the contract.
func Parse(raw []byte) (Event, error) {
	return Parser{}.Parse(raw)
}

// Parse validates raw against the event contract and returns the event. Any
// error is a *RejectError; its Reason tells which rule was broken. Checks
// run in this order, and the first that fails decides the reason: size,
// UTF-8 validity of the whole message, JSON syntax (one value, only white
// space around it, nesting at most 10000 deep), object-ness, duplicate
// contract fields, then user_id, timestamp, url, country, city, user_agent.
//
// The contract:
//
//   - The message is one JSON object. Keys match exactly (case-sensitive,
//     after unescaping). Unknown keys are ignored, whatever their value and
//     however often they repeat; a contract key appearing twice is rejected
//     (duplicate_field), even if both values agree.
//   - user_id (required): a string with at least one non-space character,
//     kept as given (not trimmed); or a JSON integer literal, kept as its
//     exact digits, whatever its size (42 -> "42", -7 -> "-7"). Numbers with a
//     fraction or exponent (1.5, 1e3, 1.0) are rejected. A blank or empty
//     string is bad_user_id; null is missing_user_id.
//   - timestamp (required): an RFC 3339 string, YYYY-MM-DDTHH:MM:SS with
//     an optional fraction of 1 to 9 digits and a mandatory offset (Z or
//     ±HH:MM; 'T' and 'Z' may be lower case, as RFC 3339 allows), leap
//     second 60 rejected; or a JSON integer of epoch milliseconds, negative
//     (before 1970) included. Both must lie within [MinTimestamp,
//     MaxTimestamp] once in UTC. Sub-millisecond fractions are truncated
//     toward the earlier millisecond. Numeric strings, floats, other date
//     formats and times without offset are bad_timestamp.
//   - url (required): a non-empty string, kept exactly as given. A string of
//     spaces is accepted: the contract only asks for non-empty.
//   - country (optional): a string, trimmed of surrounding white space
//     (Unicode); missing, null or blank becomes UnknownCountry.
//   - city, user_agent (optional): strings kept as given; missing or null
//     becomes "".
//
// String escapes are decoded as encoding/json does, including its
// replacement of unpaired surrogate escapes (\ud800) by U+FFFD. The string
// fields of one event share a single allocation (so holding on to one of
// them keeps all of them in memory); none aliases raw.
func (p Parser) Parse(raw []byte) (Event, error) {
	return p.parse(raw, false, nil)
}

// ParseAliased is Parse without copying: the strings of the event that raw
// holds verbatim (without escapes) share raw's memory, so parsing costs no
// allocation for most messages. raw must not change for as long as the
// event is in use; holding on to the event keeps all of raw in memory.
//
// If in is not nil, the url, country, city and user_agent strings come
// from it instead: a stream repeats those values, and one shared copy of
// each is compact and stays in cache for whoever reads the events next.
func (p Parser) ParseAliased(raw []byte, in *Interner) (Event, error) {
	return p.parse(raw, true, in)
}

// parse checks the size and encoding of raw, scans it, and validates the
// contract fields it found.
func (p Parser) parse(raw []byte, alias bool, in *Interner) (Event, error) {
	limit := p.MaxSize
	if limit <= 0 {
		limit = MaxSize
	}
	if len(raw) > limit {
		return Event{}, reject(ReasonTooLarge, fmt.Sprintf("%d bytes, limit %d", len(raw), limit))
	}
	if !utf8.Valid(raw) {
		return Event{}, reject(ReasonInvalidUTF8, "message is not valid UTF-8")
	}
	var f fields
	i := skipSpace(raw, 0)
	if i < len(raw) && raw[i] == '{' {
		end, err := f.scanObject(raw, i)
		if err != nil {
			return Event{}, err
		}
		i = end
	} else {
		end, err := skipValue(raw, i, 0)
		if err != nil {
			return Event{}, err
		}
		if j := skipSpace(raw, end); j != len(raw) {
			return Event{}, syntaxError(raw, j)
		}
		return Event{}, reject(ReasonNotObject, "message is "+kindOf(raw[i]))
	}
	if j := skipSpace(raw, i); j != len(raw) {
		return Event{}, syntaxError(raw, j)
	}
	if f.dup != "" {
		return Event{}, reject(ReasonDuplicateField, "field "+f.dup+" appears more than once")
	}
	return f.event(raw, alias, in)
}
