package event

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// Timestamp bounds: the instants RFC 3339 can write, years 0000 to 9999 in
// UTC. Epoch-millisecond timestamps outside them are rejected too, so that
// every accepted event can be written back as RFC 3339 (see Encode).
const (
	MinTimestamp int64 = -62167219200000 // 0000-01-01T00:00:00.000Z
	MaxTimestamp int64 = 253402300799999 // 9999-12-31T23:59:59.999Z
)

// maxDepth is the deepest nesting of arrays and objects accepted, counting
// the top-level object; it is encoding/json's limit.
const maxDepth = 10000

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

// DefaultInternerBytes is the memory an Interner's strings may take unless
// told otherwise.
const DefaultInternerBytes = 4 << 20

// maxInterned is the longest string an Interner keeps.
const maxInterned = 1 << 10

// Interner holds the strings that ParseAliased has seen, to hand the same
// string out again. Its strings take at most its budget of bytes; when full
// it starts afresh, so that a field with unbounded values costs a map reset
// now and then, never unbounded memory. An Interner is not safe for
// concurrent use: give each parsing goroutine its own.
type Interner struct {
	m      map[string]string
	bytes  int // held by the strings of m
	budget int
	// recent is a direct-mapped cache in front of m, indexed by a hash of
	// a few of a value's bytes: most lookups end here, at the cost of one
	// comparison instead of hashing the whole value.
	recent [internRecent]string
}

// internRecent is the number of recent-cache slots, a power of two.
const internRecent = 1024

// NewInterner returns an Interner whose strings take at most budget bytes;
// budget <= 0 means DefaultInternerBytes.
func NewInterner(budget int) *Interner {
	if budget <= 0 {
		budget = DefaultInternerBytes
	}
	return &Interner{m: make(map[string]string), budget: budget}
}

// intern returns b as a string: the one it returned before if it has one,
// else a copy.
func (in *Interner) intern(b []byte) string {
	slot := &in.recent[sampleHash(b)&(internRecent-1)]
	if *slot == string(b) {
		return *slot
	}
	s, ok := in.m[string(b)]
	if !ok {
		s = string(b)
		if len(b) > maxInterned {
			return s
		}
		if in.bytes+len(b) > in.budget {
			clear(in.m)
			in.bytes = 0
		}
		in.m[s] = s
		in.bytes += len(b)
	}
	*slot = s
	return s
}

// sampleHash hashes b's length and three 8-byte samples of it (start,
// middle, end): cheap, and enough to tell apart the values of one field.
func sampleHash(b []byte) uint64 {
	n := len(b)
	var x uint64
	if n < 8 {
		for _, c := range b {
			x = x<<8 | uint64(c)
		}
	} else {
		x = binary.LittleEndian.Uint64(b) ^
			bits.RotateLeft64(binary.LittleEndian.Uint64(b[(n-8)/2:]), 21) ^
			bits.RotateLeft64(binary.LittleEndian.Uint64(b[n-8:]), 42)
	}
	x ^= uint64(n) << 56
	x *= 0x9e3779b97f4a7c15
	return x ^ x>>29
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

func isNumberStart(c byte) bool { return c == '-' || ('0' <= c && c <= '9') }

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

// parseMillis parses a valid JSON number as integer epoch milliseconds
// within [MinTimestamp, MaxTimestamp].
func parseMillis(b []byte) (int64, bool) {
	neg := b[0] == '-'
	if neg {
		b = b[1:]
	}
	// 16 digits already exceed MaxTimestamp: no overflow below that.
	if len(b) > 16 {
		return 0, false
	}
	var v int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	if neg {
		v = -v
	}
	if v < MinTimestamp || v > MaxTimestamp {
		return 0, false
	}
	return v, true
}

// parseRFC3339 parses YYYY-MM-DDTHH:MM:SS[.F{1,9}](Z|±HH:MM) into epoch
// milliseconds, truncating the fraction toward the earlier millisecond.
func parseRFC3339[S string | []byte](s S) (int64, bool) {
	if len(s) < len("2006-01-02T15:04:05Z") {
		return 0, false
	}
	year, ok1 := digits(s[0:4])
	month, ok2 := digits2(s[5], s[6])
	day, ok3 := digits2(s[8], s[9])
	hour, ok4 := digits2(s[11], s[12])
	minute, ok5 := digits2(s[14], s[15])
	sec, ok6 := digits2(s[17], s[18])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) ||
		s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':' {
		return 0, false
	}
	if month < 1 || month > 12 || day < 1 || day > daysIn(month, year) ||
		hour > 23 || minute > 59 || sec > 59 {
		return 0, false
	}
	rest := s[19:]
	var milli int64
	if rest[0] == '.' {
		n := 1
		for n < len(rest) && '0' <= rest[n] && rest[n] <= '9' {
			n++
		}
		if n == 1 || n > 10 {
			return 0, false
		}
		for k := 1; k <= 3; k++ {
			milli *= 10
			if k < n {
				milli += int64(rest[k] - '0')
			}
		}
		rest = rest[n:]
	}
	var offset int64 // seconds east of UTC
	switch {
	case len(rest) == 1 && (rest[0] == 'Z' || rest[0] == 'z'):
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		oh, ok1 := digits2(rest[1], rest[2])
		om, ok2 := digits2(rest[4], rest[5])
		if !ok1 || !ok2 || oh > 23 || om > 59 {
			return 0, false
		}
		offset = oh*3600 + om*60
		if rest[0] == '-' {
			offset = -offset
		}
	default:
		return 0, false
	}
	secs := daysFromCivil(year, month, day)*86400 + hour*3600 + minute*60 + sec - offset
	ms := secs*1000 + milli
	if ms < MinTimestamp || ms > MaxTimestamp {
		return 0, false
	}
	return ms, true
}

// digits parses a short run of ASCII digits.
func digits[S string | []byte](s S) (int64, bool) {
	var v int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	return v, true
}

// digits2 parses two ASCII digits.
func digits2(a, b byte) (int64, bool) {
	a -= '0'
	b -= '0'
	return int64(a)*10 + int64(b), a <= 9 && b <= 9
}

func daysIn(month, year int64) int64 {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil returns the days since 1970-01-01 of a proleptic Gregorian
// date (Howard Hinnant's algorithm).
func daysFromCivil(y, m, d int64) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era = (y - 399) / 400
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}

// syntaxError reports malformed JSON at offset i.
func syntaxError(raw []byte, i int) error {
	if i >= len(raw) {
		return reject(ReasonMalformedJSON, fmt.Sprintf("unexpected end of input at offset %d", len(raw)))
	}
	r, _ := utf8.DecodeRune(raw[i:])
	return reject(ReasonMalformedJSON, fmt.Sprintf("unexpected %q at offset %d", r, i))
}

func skipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// skipString scans the string starting at b[i] == '"'. It returns the
// offset after the closing quote and whether it holds escapes; on a syntax
// error ok is false and end is the offending offset.
func skipString(b []byte, i int) (end int, escaped, ok bool) {
	i++
	for i < len(b) {
		// Skip plain bytes eight at a time.
		for i+8 <= len(b) {
			w := binary.LittleEndian.Uint64(b[i:])
			if m := specialBytes(w); m != 0 {
				i += bits.TrailingZeros64(m) / 8
				break
			}
			i += 8
		}
		if i >= len(b) {
			break
		}
		c := b[i]
		switch {
		case c == '"':
			return i + 1, escaped, true
		case c == '\\':
			escaped = true
			if i+1 >= len(b) {
				return len(b), escaped, false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if getu4(b[i:]) < 0 {
					for k := i + 2; k < i+6; k++ {
						if k >= len(b) || !isHex(b[k]) {
							return k, escaped, false
						}
					}
				}
				i += 6
			default:
				return i + 1, escaped, false
			}
		case c < 0x20:
			return i, escaped, false
		default:
			i++
		}
	}
	return len(b), escaped, false
}

// specialBytes flags, in the high bit of each byte, the bytes of w that
// need attention inside a string: '"', '\\' and control characters. Bytes
// above the first flagged one may be flagged wrongly (borrows), so only the
// lowest flag is meaningful.
func specialBytes(w uint64) uint64 {
	const (
		ones  = 0x0101010101010101
		highs = 0x8080808080808080
	)
	q := w ^ (ones * '"')
	bs := w ^ (ones * '\\')
	return ((q-ones)&^q | (bs-ones)&^bs | (w-ones*0x20)&^w) & highs
}

// skipNumber scans the JSON number starting at b[i]; ok is false on a
// syntax error, with end the offending offset.
func skipNumber(b []byte, i int) (end int, ok bool) {
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		i = skipDigits(b, i+1)
	default:
		return i, false
	}
	if i < len(b) && b[i] == '.' {
		j := skipDigits(b, i+1)
		if j == i+1 {
			return j, false
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := skipDigits(b, i)
		if j == i {
			return j, false
		}
		i = j
	}
	return i, true
}

func skipDigits(b []byte, i int) int {
	for i < len(b) && '0' <= b[i] && b[i] <= '9' {
		i++
	}
	return i
}

// skipLiteral scans lit (true, false, null) at b[i].
func skipLiteral(b []byte, i int, lit string) (end int, ok bool) {
	for k := 0; k < len(lit); k++ {
		if i+k >= len(b) || b[i+k] != lit[k] {
			return i + k, false
		}
	}
	return i + len(lit), true
}

// skipValue validates the JSON value starting at b[i] (white space already
// skipped) and returns the offset after it. depth is the number of
// containers already open around it. It does not recurse.
func skipValue(b []byte, i, depth int) (int, error) {
	var stackBuf [64]byte
	stack := stackBuf[:0] // closing byte of each open container
	for {
		// Expect a value at i.
		if i >= len(b) {
			return 0, syntaxError(b, i)
		}
		var ok bool
		switch c := b[i]; {
		case c == '{' || c == '[':
			if depth+len(stack)+1 > maxDepth {
				return 0, reject(ReasonMalformedJSON, fmt.Sprintf("nesting deeper than %d at offset %d", maxDepth, i))
			}
			closing := byte('}')
			if c == '[' {
				closing = ']'
			}
			stack = append(stack, closing)
			i = skipSpace(b, i+1)
			if i < len(b) && b[i] == closing {
				i++
				stack = stack[:len(stack)-1]
				ok = true
				break
			}
			if c == '{' {
				if i, ok = skipKey(b, i); !ok {
					return 0, syntaxError(b, i)
				}
			}
			continue // a value follows
		case c == '"':
			i, _, ok = skipString(b, i)
		case isNumberStart(c):
			i, ok = skipNumber(b, i)
		case c == 't':
			i, ok = skipLiteral(b, i, "true")
		case c == 'f':
			i, ok = skipLiteral(b, i, "false")
		case c == 'n':
			i, ok = skipLiteral(b, i, "null")
		}
		if !ok {
			return 0, syntaxError(b, i)
		}
		// A value is complete: close containers or move to the next element.
		for {
			if len(stack) == 0 {
				return i, nil
			}
			i = skipSpace(b, i)
			if i >= len(b) {
				return 0, syntaxError(b, i)
			}
			top := stack[len(stack)-1]
			if b[i] == top {
				i++
				stack = stack[:len(stack)-1]
				continue
			}
			if b[i] != ',' {
				return 0, syntaxError(b, i)
			}
			i = skipSpace(b, i+1)
			if top == '}' {
				if i, ok = skipKey(b, i); !ok {
					return 0, syntaxError(b, i)
				}
			}
			break
		}
	}
}

// skipKey scans `"key" :` and the white space after it, returning the
// offset of the value that follows.
func skipKey(b []byte, i int) (int, bool) {
	if i >= len(b) || b[i] != '"' {
		return i, false
	}
	i, _, ok := skipString(b, i)
	if !ok {
		return i, false
	}
	i = skipSpace(b, i)
	if i >= len(b) || b[i] != ':' {
		return i, false
	}
	return skipSpace(b, i+1), true
}

func isHex(c byte) bool {
	return ('0' <= c && c <= '9') || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F')
}

// getu4 decodes \uXXXX at the start of s, or returns -1.
func getu4(s []byte) rune {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return -1
	}
	var r rune
	for _, c := range s[2:6] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r<<4 | rune(c)
	}
	return r
}

// writeUnquoted writes the decoded body of a syntactically valid JSON
// string (without its quotes) to sb, exactly as encoding/json decodes it.
func writeUnquoted(sb *strings.Builder, s []byte) {
	for len(s) > 0 {
		n := 0
		for n < len(s) && s[n] != '\\' {
			n++
		}
		sb.Write(s[:n])
		if n == len(s) {
			return
		}
		s = s[n:] // s[0] is a backslash
		switch s[1] {
		case 'b':
			sb.WriteByte('\b')
		case 'f':
			sb.WriteByte('\f')
		case 'n':
			sb.WriteByte('\n')
		case 'r':
			sb.WriteByte('\r')
		case 't':
			sb.WriteByte('\t')
		case 'u':
			rr := getu4(s)
			s = s[6:]
			if utf16.IsSurrogate(rr) {
				if dec := utf16.DecodeRune(rr, getu4(s)); dec != utf8.RuneError {
					s = s[6:]
					sb.WriteRune(dec)
					continue
				}
				rr = utf8.RuneError
			}
			sb.WriteRune(rr)
			continue
		default: // '"', '\\', '/'
			sb.WriteByte(s[1])
		}
		s = s[2:]
	}
}
