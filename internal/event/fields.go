package event

import "strings"

// Field indexes into fields.val.
const (
	fUserID = iota
	fTimestamp
	fURL
	fCountry
	fCity
	fUserAgent
	numFields
)

// fieldNames are the contract keys, by field index.
var fieldNames = [numFields]string{"user_id", "timestamp", "url", "country", "city", "user_agent"}

// span locates a raw JSON value inside the message. A zero span (end == 0)
// means the field was absent: no value can end at offset 0.
type span struct {
	start, end int
	escaped    bool // a string containing backslash escapes
}

// fields collects the raw values of the contract fields of one object.
type fields struct {
	val [numFields]span
	dup string // first contract field seen twice
}

// fieldIndex returns the index of a contract key, or -1.
func fieldIndex(key []byte) int {
	switch string(key) {
	case "user_id":
		return fUserID
	case "timestamp":
		return fTimestamp
	case "url":
		return fURL
	case "country":
		return fCountry
	case "city":
		return fCity
	case "user_agent":
		return fUserAgent
	}
	return -1
}

// scanObject validates the top-level object starting at raw[i] == '{' and
// records the spans of contract fields. It returns the offset after '}'.
func (f *fields) scanObject(raw []byte, i int) (int, error) {
	i = skipSpace(raw, i+1)
	if i < len(raw) && raw[i] == '}' {
		return i + 1, nil
	}
	for {
		if i >= len(raw) || raw[i] != '"' {
			return 0, syntaxError(raw, i)
		}
		kEnd, kEsc, ok := skipString(raw, i)
		if !ok {
			return 0, syntaxError(raw, kEnd)
		}
		key := raw[i+1 : kEnd-1]
		var idx int
		if kEsc {
			var sb strings.Builder
			writeUnquoted(&sb, key)
			idx = fieldIndex([]byte(sb.String()))
		} else {
			idx = fieldIndex(key)
		}

		i = skipSpace(raw, kEnd)
		if i >= len(raw) || raw[i] != ':' {
			return 0, syntaxError(raw, i)
		}
		i = skipSpace(raw, i+1)
		vStart := i
		var vEnd int
		var vEsc bool
		if i < len(raw) && raw[i] == '"' { // the common case, inline
			var ok bool
			if vEnd, vEsc, ok = skipString(raw, i); !ok {
				return 0, syntaxError(raw, vEnd)
			}
		} else {
			var err error
			if vEnd, err = skipValue(raw, i, 1); err != nil {
				return 0, err
			}
		}
		if idx >= 0 {
			if f.val[idx].end != 0 && f.dup == "" {
				f.dup = fieldNames[idx]
			}
			f.val[idx] = span{start: vStart, end: vEnd, escaped: vEsc}
		}

		i = skipSpace(raw, vEnd)
		if i >= len(raw) {
			return 0, syntaxError(raw, i)
		}
		switch raw[i] {
		case ',':
			i = skipSpace(raw, i+1)
		case '}':
			return i + 1, nil
		default:
			return 0, syntaxError(raw, i)
		}
	}
}
