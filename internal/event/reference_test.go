package event

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// referenceParse is the plain encoding/json-based implementation of the
// contract that Parser.Parse is fuzzed against. It favours obviousness over
// speed and shares no code with the parser beyond the types and constants.
func referenceParse(raw []byte, limit int) (Event, error) {
	if len(raw) > limit {
		return Event{}, reject(ReasonTooLarge, "too large")
	}
	if !utf8.Valid(raw) {
		return Event{}, reject(ReasonInvalidUTF8, "invalid UTF-8")
	}
	if !json.Valid(raw) {
		return Event{}, reject(ReasonMalformedJSON, "invalid JSON")
	}
	if bytes.TrimLeft(raw, " \t\r\n")[0] != '{' {
		return Event{}, reject(ReasonNotObject, "not an object")
	}

	// Walk the top-level object token by token to keep exact keys and see
	// duplicates, which a map or struct target would hide.
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil {
		return Event{}, fmt.Errorf("reference: %w", err)
	}
	vals := map[string]json.RawMessage{}
	dup := ""
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return Event{}, fmt.Errorf("reference: %w", err)
		}
		key := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return Event{}, fmt.Errorf("reference: %w", err)
		}
		switch key {
		case "user_id", "timestamp", "url", "country", "city", "user_agent":
			if _, seen := vals[key]; seen && dup == "" {
				dup = key
			}
			vals[key] = v
		}
	}
	if dup != "" {
		return Event{}, reject(ReasonDuplicateField, dup)
	}

	kind := func(key string) byte { // 0 for absent or null
		v, ok := vals[key]
		if !ok || string(v) == "null" {
			return 0
		}
		return v[0]
	}
	str := func(key string) string {
		var s string
		if err := json.Unmarshal(vals[key], &s); err != nil {
			panic(err)
		}
		return s
	}
	isNumber := func(c byte) bool { return c == '-' || (c >= '0' && c <= '9') }

	var e Event
	switch c := kind("user_id"); {
	case c == 0:
		return Event{}, reject(ReasonMissingUserID, "")
	case c == '"':
		e.UserID = str("user_id")
		if strings.TrimSpace(e.UserID) == "" {
			return Event{}, reject(ReasonBadUserID, "blank")
		}
	case isNumber(c) && !bytes.ContainsAny(vals["user_id"], ".eE"):
		e.UserID = string(vals["user_id"])
	default:
		return Event{}, reject(ReasonBadUserID, "")
	}

	switch c := kind("timestamp"); {
	case c == 0:
		return Event{}, reject(ReasonMissingTimestamp, "")
	case c == '"':
		ms, ok := referenceRFC3339(str("timestamp"))
		if !ok {
			return Event{}, reject(ReasonBadTimestamp, "")
		}
		e.Timestamp = ms
	case isNumber(c):
		ms, err := strconv.ParseInt(string(vals["timestamp"]), 10, 64)
		if err != nil || ms < MinTimestamp || ms > MaxTimestamp {
			return Event{}, reject(ReasonBadTimestamp, "")
		}
		e.Timestamp = ms
	default:
		return Event{}, reject(ReasonBadTimestamp, "")
	}

	switch c := kind("url"); {
	case c == 0:
		return Event{}, reject(ReasonMissingURL, "")
	case c == '"' && str("url") != "":
		e.URL = str("url")
	default:
		return Event{}, reject(ReasonBadURL, "")
	}

	e.Country = UnknownCountry
	switch c := kind("country"); {
	case c == 0:
	case c == '"':
		if s := strings.TrimSpace(str("country")); s != "" {
			e.Country = s
		}
	default:
		return Event{}, reject(ReasonBadCountry, "")
	}

	switch c := kind("city"); {
	case c == 0:
	case c == '"':
		e.City = str("city")
	default:
		return Event{}, reject(ReasonBadCity, "")
	}

	switch c := kind("user_agent"); {
	case c == 0:
	case c == '"':
		e.UserAgent = str("user_agent")
	default:
		return Event{}, reject(ReasonBadUserAgent, "")
	}
	return e, nil
}

var referenceRFC3339Re = regexp.MustCompile(
	`^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|([+-])(\d{2}):(\d{2}))$`)

// referenceRFC3339 parses an RFC 3339 timestamp with the time package.
func referenceRFC3339(s string) (int64, bool) {
	m := referenceRFC3339Re.FindStringSubmatch(s)
	if m == nil {
		return 0, false
	}
	n := func(s string) int { v, _ := strconv.Atoi(s); return v }
	year, month, day, hour, minute, sec := n(m[1]), n(m[2]), n(m[3]), n(m[4]), n(m[5]), n(m[6])
	if month < 1 || month > 12 || hour > 23 || minute > 59 || sec > 59 {
		return 0, false
	}
	nsec := 0
	if m[7] != "" {
		nsec = n((m[7][1:] + "000000000")[:9])
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC)
	if t.Day() != day { // time.Date normalised an impossible date
		return 0, false
	}
	if m[9] != "" {
		oh, om := n(m[10]), n(m[11])
		if oh > 23 || om > 59 {
			return 0, false
		}
		off := time.Duration(oh)*time.Hour + time.Duration(om)*time.Minute
		if m[9] == "-" {
			off = -off
		}
		t = t.Add(-off)
	}
	ms := t.UnixMilli()
	if ms < MinTimestamp || ms > MaxTimestamp {
		return 0, false
	}
	return ms, true
}
