package event

import (
	"fmt"
	"strings"
	"unsafe"
)

// event checks the collected fields against the contract. With alias,
// strings that raw holds verbatim point into raw, or come from in for the
// fields from url on.
func (f *fields) event(raw []byte, alias bool, in *Interner) (Event, error) {
	direct := func(k int) bool { return alias && !f.val[k].escaped }
	// Decode every other string field into one buffer, then share it.
	// Decoded strings are never longer than their raw JSON.
	var sb strings.Builder
	n := 0
	for k, s := range f.val {
		if (k != fTimestamp || s.escaped) && !direct(k) {
			n += s.end - s.start
		}
	}
	if n > 0 {
		sb.Grow(n)
	}
	var off [numFields][2]int // decoded [start, end) in sb, for string values
	for k, s := range f.val {
		if s.end == 0 || raw[s.start] != '"' || (k == fTimestamp && !s.escaped) || direct(k) {
			continue // not a string, parsed in place, or aliased
		}
		off[k][0] = sb.Len()
		body := raw[s.start+1 : s.end-1]
		if s.escaped {
			writeUnquoted(&sb, body)
		} else {
			sb.Write(body)
		}
		off[k][1] = sb.Len()
	}
	all := sb.String()
	str := func(k int) string {
		if direct(k) {
			if in != nil && k >= fURL {
				return in.intern(raw[f.val[k].start+1 : f.val[k].end-1])
			}
			return aliasString(raw[f.val[k].start+1 : f.val[k].end-1])
		}
		return all[off[k][0]:off[k][1]]
	}

	var e Event

	// user_id
	switch s := f.val[fUserID]; {
	case s.end == 0 || raw[s.start] == 'n':
		return Event{}, reject(ReasonMissingUserID, "user_id is missing")
	case raw[s.start] == '"':
		e.UserID = str(fUserID)
		if strings.TrimSpace(e.UserID) == "" {
			return Event{}, reject(ReasonBadUserID, "user_id is blank")
		}
	case isNumberStart(raw[s.start]):
		if !isIntegerLiteral(raw[s.start:s.end]) {
			return Event{}, reject(ReasonBadUserID, "user_id is not an integer: "+string(raw[s.start:s.end]))
		}
		if alias {
			e.UserID = aliasString(raw[s.start:s.end])
		} else {
			e.UserID = string(raw[s.start:s.end])
		}
	default:
		return Event{}, reject(ReasonBadUserID, "user_id is "+kindOf(raw[s.start]))
	}

	// timestamp
	switch s := f.val[fTimestamp]; {
	case s.end == 0 || raw[s.start] == 'n':
		return Event{}, reject(ReasonMissingTimestamp, "timestamp is missing")
	case raw[s.start] == '"':
		var ok bool
		if s.escaped {
			e.Timestamp, ok = parseRFC3339(str(fTimestamp))
		} else {
			e.Timestamp, ok = parseRFC3339(raw[s.start+1 : s.end-1])
		}
		if !ok {
			return Event{}, reject(ReasonBadTimestamp, "timestamp is not RFC 3339 with offset within years 0000-9999: "+quoteDetail(string(raw[s.start+1:s.end-1])))
		}
	case isNumberStart(raw[s.start]):
		ms, ok := parseMillis(raw[s.start:s.end])
		if !ok {
			return Event{}, reject(ReasonBadTimestamp, "timestamp is not integer epoch milliseconds within years 0000-9999: "+string(raw[s.start:s.end]))
		}
		e.Timestamp = ms
	default:
		return Event{}, reject(ReasonBadTimestamp, "timestamp is "+kindOf(raw[s.start]))
	}

	// url
	switch s := f.val[fURL]; {
	case s.end == 0 || raw[s.start] == 'n':
		return Event{}, reject(ReasonMissingURL, "url is missing")
	case raw[s.start] == '"':
		e.URL = str(fURL)
		if e.URL == "" {
			return Event{}, reject(ReasonBadURL, "url is empty")
		}
	default:
		return Event{}, reject(ReasonBadURL, "url is "+kindOf(raw[s.start]))
	}

	// country
	e.Country = UnknownCountry
	switch s := f.val[fCountry]; {
	case s.end == 0 || raw[s.start] == 'n':
	case raw[s.start] == '"':
		if c := strings.TrimSpace(str(fCountry)); c != "" {
			e.Country = c
		}
	default:
		return Event{}, reject(ReasonBadCountry, "country is "+kindOf(raw[s.start]))
	}

	// city
	switch s := f.val[fCity]; {
	case s.end == 0 || raw[s.start] == 'n':
	case raw[s.start] == '"':
		e.City = str(fCity)
	default:
		return Event{}, reject(ReasonBadCity, "city is "+kindOf(raw[s.start]))
	}

	// user_agent
	switch s := f.val[fUserAgent]; {
	case s.end == 0 || raw[s.start] == 'n':
	case raw[s.start] == '"':
		e.UserAgent = str(fUserAgent)
	default:
		return Event{}, reject(ReasonBadUserAgent, "user_agent is "+kindOf(raw[s.start]))
	}
	return e, nil
}

// aliasString returns a string sharing b's memory.
func aliasString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// quoteDetail shortens s for an error detail.
func quoteDetail(s string) string {
	const max = 64
	if len(s) > max {
		s = strings.ToValidUTF8(s[:max], "") + "..."
	}
	return fmt.Sprintf("%q", s)
}

// kindOf names the JSON kind of a value from its first byte.
func kindOf(c byte) string {
	switch {
	case c == '{':
		return "an object"
	case c == '[':
		return "an array"
	case c == '"':
		return "a string"
	case c == 't' || c == 'f':
		return "a boolean"
	case c == 'n':
		return "null"
	case isNumberStart(c):
		return "a number"
	}
	return "invalid"
}

// isIntegerLiteral reports whether a syntactically valid JSON number has no
// fraction and no exponent.
func isIntegerLiteral(b []byte) bool {
	for _, c := range b {
		if c == '.' || c == 'e' || c == 'E' {
			return false
		}
	}
	return true
}
