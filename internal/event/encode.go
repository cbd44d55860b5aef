package event

import (
	"time"
	"unicode/utf8"
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
	dst = AppendString(dst, e.UserID)
	dst = append(dst, `,"timestamp":"`...)
	dst = time.UnixMilli(e.Timestamp).UTC().AppendFormat(dst, TimestampLayout)
	dst = append(dst, `","url":`...)
	dst = AppendString(dst, e.URL)
	dst = append(dst, `,"country":`...)
	dst = AppendString(dst, e.Country)
	dst = append(dst, `,"city":`...)
	dst = AppendString(dst, e.City)
	dst = append(dst, `,"user_agent":`...)
	dst = AppendString(dst, e.UserAgent)
	return append(dst, '}')
}

// AppendString appends s as a JSON string. It escapes '"', '\' and control
// characters, and replaces invalid UTF-8 with U+FFFD, as encoding/json does;
// it does not escape HTML characters.
func AppendString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r != utf8.RuneError || size != 1 {
				i += size
				continue
			}
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		i++
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
