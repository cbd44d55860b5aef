package event

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
	"unsafe"
)

// base is a valid message; cases below vary one field at a time.
const base = `{"user_id":"u1","timestamp":"2024-03-10T12:34:56.789Z","url":"https://shop.example.com/p/1","country":"DE","city":"Berlin","user_agent":"Mozilla/5.0"}`

// baseEvent is what base parses to.
var baseEvent = Event{
	UserID:    "u1",
	Timestamp: msOf(2024, 3, 10, 12, 34, 56, 789),
	URL:       "https://shop.example.com/p/1",
	Country:   "DE",
	City:      "Berlin",
	UserAgent: "Mozilla/5.0",
}

func msOf(y int, mo time.Month, d, h, mi, s, ms int) int64 {
	return time.Date(y, mo, d, h, mi, s, ms*1e6, time.UTC).UnixMilli()
}

// with returns base with field set to the raw JSON value v, or removed
// when v is "".
func with(field, v string) string {
	fields := []struct{ k, v string }{
		{"user_id", `"u1"`},
		{"timestamp", `"2024-03-10T12:34:56.789Z"`},
		{"url", `"https://shop.example.com/p/1"`},
		{"country", `"DE"`},
		{"city", `"Berlin"`},
		{"user_agent", `"Mozilla/5.0"`},
	}
	var parts []string
	for _, f := range fields {
		if f.k == field {
			f.v = v
		}
		if f.v != "" {
			parts = append(parts, fmt.Sprintf("%q:%s", f.k, f.v))
		}
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// edit returns baseEvent changed by fn.
func edit(fn func(*Event)) Event {
	e := baseEvent
	fn(&e)
	return e
}

type parseCase struct {
	name   string
	in     string
	want   Event  // when reason is ""
	reason Reason // expected rejection
}

var acceptCases = []parseCase{
	{name: "full event", in: base, want: baseEvent},
	{name: "surrounding white space", in: " \t\r\n" + base + "\n", want: baseEvent},
	{name: "field order free", in: `{"user_agent":"Mozilla/5.0","city":"Berlin","country":"DE","url":"https://shop.example.com/p/1","timestamp":"2024-03-10T12:34:56.789Z","user_id":"u1"}`, want: baseEvent},
	{name: "extra fields ignored", in: `{"session":{"id":[1,2,{"x":null}],"n":1.5e3},"user_id":"u1","ref":"","timestamp":"2024-03-10T12:34:56.789Z","url":"https://shop.example.com/p/1","country":"DE","city":"Berlin","user_agent":"Mozilla/5.0","ok":true,"no":false,"z":null}`, want: baseEvent},
	{name: "unknown duplicate keys ignored", in: `{"x":1,"x":2,` + base[1:], want: baseEvent},
	{name: "escaped key matches", in: `{"user\u005fid":"u9","timestamp":0,"url":"/"}`, want: Event{UserID: "u9", URL: "/", Country: UnknownCountry}},
	{name: "keys are case-sensitive", in: `{"USER_ID":"x","user_id":"u1","timestamp":0,"url":"/"}`, want: Event{UserID: "u1", URL: "/", Country: UnknownCountry}},
	{name: "only required fields", in: `{"user_id":"u1","timestamp":"2024-03-10T12:34:56.789Z","url":"https://shop.example.com/p/1"}`, want: edit(func(e *Event) { e.Country, e.City, e.UserAgent = UnknownCountry, "", "" })},

	// user_id
	{name: "integer user id", in: with("user_id", `42`), want: edit(func(e *Event) { e.UserID = "42" })},
	{name: "negative integer user id", in: with("user_id", `-7`), want: edit(func(e *Event) { e.UserID = "-7" })},
	{name: "zero user id", in: with("user_id", `0`), want: edit(func(e *Event) { e.UserID = "0" })},
	{name: "user id beyond int64 kept exactly", in: with("user_id", `123456789012345678901234567890`), want: edit(func(e *Event) { e.UserID = "123456789012345678901234567890" })},
	{name: "string user id not trimmed", in: with("user_id", `" u1 "`), want: edit(func(e *Event) { e.UserID = " u1 " })},
	{name: "numeric string user id", in: with("user_id", `"0042"`), want: edit(func(e *Event) { e.UserID = "0042" })},
	{name: "escaped user id", in: with("user_id", `"u\u00e9\n"`), want: edit(func(e *Event) { e.UserID = "ué\n" })},

	// timestamp
	{name: "offset +05:30 to UTC", in: with("timestamp", `"2024-03-10T18:04:56.789+05:30"`), want: baseEvent},
	{name: "offset -08:00 to UTC", in: with("timestamp", `"2024-03-10T04:34:56.789-08:00"`), want: baseEvent},
	{name: "offset crossing a day", in: with("timestamp", `"2024-03-09T23:00:00-14:00"`), want: edit(func(e *Event) { e.Timestamp = msOf(2024, 3, 10, 13, 0, 0, 0) })},
	{name: "offset -00:00", in: with("timestamp", `"2024-03-10T12:34:56.789-00:00"`), want: baseEvent},
	{name: "lower case t and z", in: with("timestamp", `"2024-03-10t12:34:56.789z"`), want: baseEvent},
	{name: "no fraction", in: with("timestamp", `"2024-03-10T12:34:56Z"`), want: edit(func(e *Event) { e.Timestamp = msOf(2024, 3, 10, 12, 34, 56, 0) })},
	{name: "one-digit fraction", in: with("timestamp", `"2024-03-10T12:34:56.7Z"`), want: edit(func(e *Event) { e.Timestamp = msOf(2024, 3, 10, 12, 34, 56, 700) })},
	{name: "nanosecond fraction truncated", in: with("timestamp", `"2024-03-10T12:34:56.789999999Z"`), want: baseEvent},
	{name: "sub-ms before 1970 truncated to earlier ms", in: with("timestamp", `"1969-12-31T23:59:59.0001Z"`), want: edit(func(e *Event) { e.Timestamp = -1000 })},
	{name: "last ms before 1970", in: with("timestamp", `"1969-12-31T23:59:59.9999Z"`), want: edit(func(e *Event) { e.Timestamp = -1 })},
	{name: "leap day", in: with("timestamp", `"2024-02-29T00:00:00Z"`), want: edit(func(e *Event) { e.Timestamp = msOf(2024, 2, 29, 0, 0, 0, 0) })},
	{name: "leap day of 2000", in: with("timestamp", `"2000-02-29T00:00:00Z"`), want: edit(func(e *Event) { e.Timestamp = msOf(2000, 2, 29, 0, 0, 0, 0) })},
	{name: "earliest RFC 3339", in: with("timestamp", `"0000-01-01T00:00:00Z"`), want: edit(func(e *Event) { e.Timestamp = MinTimestamp })},
	{name: "latest RFC 3339", in: with("timestamp", `"9999-12-31T23:59:59.999999999Z"`), want: edit(func(e *Event) { e.Timestamp = MaxTimestamp })},
	{name: "escaped timestamp string", in: with("timestamp", `"2024-03-10T12:34:56.789\u005a"`), want: baseEvent},
	{name: "epoch ms", in: with("timestamp", `1710074096789`), want: baseEvent},
	{name: "epoch ms zero", in: with("timestamp", `0`), want: edit(func(e *Event) { e.Timestamp = 0 })},
	{name: "epoch ms minus zero", in: with("timestamp", `-0`), want: edit(func(e *Event) { e.Timestamp = 0 })},
	{name: "negative epoch ms", in: with("timestamp", `-86400000`), want: edit(func(e *Event) { e.Timestamp = -86400000 })},
	{name: "epoch ms at max", in: with("timestamp", `253402300799999`), want: edit(func(e *Event) { e.Timestamp = MaxTimestamp })},
	{name: "epoch ms at min", in: with("timestamp", `-62167219200000`), want: edit(func(e *Event) { e.Timestamp = MinTimestamp })},

	// url
	{name: "url kept exactly", in: with("url", `" /a b?x=1&y=\u00e9 "`), want: edit(func(e *Event) { e.URL = " /a b?x=1&y=é " })},
	{name: "url escaped slashes", in: with("url", `"https:\/\/shop.example.com\/p\/1"`), want: baseEvent},
	{name: "blank url is non-empty", in: with("url", `" "`), want: edit(func(e *Event) { e.URL = " " })},

	// country
	{name: "country trimmed", in: with("country", `" DE\t"`), want: baseEvent},
	{name: "country escaped white space trimmed", in: with("country", `"\n\u00a0DE\r"`), want: baseEvent},
	{name: "blank country", in: with("country", `"  "`), want: edit(func(e *Event) { e.Country = UnknownCountry })},
	{name: "empty country", in: with("country", `""`), want: edit(func(e *Event) { e.Country = UnknownCountry })},
	{name: "null country", in: with("country", `null`), want: edit(func(e *Event) { e.Country = UnknownCountry })},
	{name: "missing country", in: with("country", ``), want: edit(func(e *Event) { e.Country = UnknownCountry })},

	// city, user_agent
	{name: "city kept as given", in: with("city", `" São Paulo "`), want: edit(func(e *Event) { e.City = " São Paulo " })},
	{name: "null city", in: with("city", `null`), want: edit(func(e *Event) { e.City = "" })},
	{name: "missing city", in: with("city", ``), want: edit(func(e *Event) { e.City = "" })},
	{name: "lone surrogate becomes U+FFFD", in: with("city", `"a\ud800b"`), want: edit(func(e *Event) { e.City = "a\uFFFDb" })},
	{name: "surrogate pair", in: with("city", `"\ud83d\ude00"`), want: edit(func(e *Event) { e.City = "😀" })},
	{name: "null user agent", in: with("user_agent", `null`), want: edit(func(e *Event) { e.UserAgent = "" })},
	{name: "missing user agent", in: with("user_agent", ``), want: edit(func(e *Event) { e.UserAgent = "" })},
}

var rejectCases = []parseCase{
	// size, encoding, syntax
	{name: "invalid UTF-8 in a field", in: with("city", "\"M\xfcnchen\""), reason: ReasonInvalidUTF8},
	{name: "invalid UTF-8 in an unknown field", in: `{"x":"` + "\xc3" + `",` + base[1:], reason: ReasonInvalidUTF8},
	{name: "invalid UTF-8 in broken JSON", in: "{\xff", reason: ReasonInvalidUTF8},
	{name: "empty message", in: ``, reason: ReasonMalformedJSON},
	{name: "white space only", in: " \n", reason: ReasonMalformedJSON},
	{name: "truncated", in: base[:len(base)-1], reason: ReasonMalformedJSON},
	{name: "trailing garbage", in: base + "x", reason: ReasonMalformedJSON},
	{name: "two objects", in: base + base, reason: ReasonMalformedJSON},
	{name: "trailing comma", in: `{"user_id":"u1",}`, reason: ReasonMalformedJSON},
	{name: "single quotes", in: `{'user_id':'u1'}`, reason: ReasonMalformedJSON},
	{name: "unquoted key", in: `{user_id:"u1"}`, reason: ReasonMalformedJSON},
	{name: "leading zero", in: with("user_id", `01`), reason: ReasonMalformedJSON},
	{name: "raw control character", in: with("city", "\"a\tb\""), reason: ReasonMalformedJSON},
	{name: "bad escape", in: with("city", `"\q"`), reason: ReasonMalformedJSON},
	{name: "short unicode escape", in: with("city", `"\u12"`), reason: ReasonMalformedJSON},
	{name: "bad literal", in: with("city", `nul`), reason: ReasonMalformedJSON},
	{name: "NaN", in: with("timestamp", `NaN`), reason: ReasonMalformedJSON},
	{name: "bad nested value", in: `{"x":[1,2,}],` + base[1:], reason: ReasonMalformedJSON},
	{name: "too deep", in: `{"x":` + strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth) + `}`, reason: ReasonMalformedJSON},
	{name: "deepest accepted", in: `{"x":` + strings.Repeat("[", maxDepth-1) + strings.Repeat("]", maxDepth-1) + `,` + base[1:], want: baseEvent},
	{name: "top-level array", in: `[` + base + `]`, reason: ReasonNotObject},
	{name: "top-level string", in: `"u1"`, reason: ReasonNotObject},
	{name: "top-level null", in: `null`, reason: ReasonNotObject},
	{name: "top-level number", in: ` 42 `, reason: ReasonNotObject},
	{name: "top-level bool", in: `true`, reason: ReasonNotObject},
	{name: "duplicate url", in: `{"url":"/a",` + base[1:], reason: ReasonDuplicateField},
	{name: "duplicate null country", in: base[:len(base)-1] + `,"country":null}`, reason: ReasonDuplicateField},
	{name: "duplicate before other errors", in: `{"city":1,"city":1}`, reason: ReasonDuplicateField},

	// user_id
	{name: "missing user id", in: with("user_id", ``), reason: ReasonMissingUserID},
	{name: "null user id", in: with("user_id", `null`), reason: ReasonMissingUserID},
	{name: "empty user id", in: with("user_id", `""`), reason: ReasonBadUserID},
	{name: "blank user id", in: with("user_id", `" \t\u00a0"`), reason: ReasonBadUserID},
	{name: "fractional user id", in: with("user_id", `1.5`), reason: ReasonBadUserID},
	{name: "integral float user id", in: with("user_id", `1.0`), reason: ReasonBadUserID},
	{name: "exponent user id", in: with("user_id", `1e3`), reason: ReasonBadUserID},
	{name: "bool user id", in: with("user_id", `true`), reason: ReasonBadUserID},
	{name: "object user id", in: with("user_id", `{"id":1}`), reason: ReasonBadUserID},
	{name: "array user id", in: with("user_id", `["u1"]`), reason: ReasonBadUserID},
	{name: "user id checked before url", in: `{"user_id":1.5,"timestamp":0,"url":7}`, reason: ReasonBadUserID},

	// timestamp
	{name: "missing timestamp", in: with("timestamp", ``), reason: ReasonMissingTimestamp},
	{name: "null timestamp", in: with("timestamp", `null`), reason: ReasonMissingTimestamp},
	{name: "no offset", in: with("timestamp", `"2024-03-10T12:34:56.789"`), reason: ReasonBadTimestamp},
	{name: "space separator", in: with("timestamp", `"2024-03-10 12:34:56Z"`), reason: ReasonBadTimestamp},
	{name: "date only", in: with("timestamp", `"2024-03-10"`), reason: ReasonBadTimestamp},
	{name: "US date", in: with("timestamp", `"03/10/2024 12:34:56"`), reason: ReasonBadTimestamp},
	{name: "RFC 1123", in: with("timestamp", `"Sun, 10 Mar 2024 12:34:56 GMT"`), reason: ReasonBadTimestamp},
	{name: "numeric string", in: with("timestamp", `"1710074096789"`), reason: ReasonBadTimestamp},
	{name: "one-digit hour", in: with("timestamp", `"2024-03-10T2:34:56Z"`), reason: ReasonBadTimestamp},
	{name: "offset without colon", in: with("timestamp", `"2024-03-10T12:34:56+0530"`), reason: ReasonBadTimestamp},
	{name: "offset hours only", in: with("timestamp", `"2024-03-10T12:34:56+05"`), reason: ReasonBadTimestamp},
	{name: "offset hour 24", in: with("timestamp", `"2024-03-10T12:34:56+24:00"`), reason: ReasonBadTimestamp},
	{name: "offset minute 60", in: with("timestamp", `"2024-03-10T12:34:56+05:60"`), reason: ReasonBadTimestamp},
	{name: "zone name", in: with("timestamp", `"2024-03-10T12:34:56 UTC"`), reason: ReasonBadTimestamp},
	{name: "February 30", in: with("timestamp", `"2024-02-30T00:00:00Z"`), reason: ReasonBadTimestamp},
	{name: "February 29 of 2023", in: with("timestamp", `"2023-02-29T00:00:00Z"`), reason: ReasonBadTimestamp},
	{name: "February 29 of 1900", in: with("timestamp", `"1900-02-29T00:00:00Z"`), reason: ReasonBadTimestamp},
	{name: "April 31", in: with("timestamp", `"2024-04-31T00:00:00Z"`), reason: ReasonBadTimestamp},
	{name: "month 13", in: with("timestamp", `"2024-13-01T00:00:00Z"`), reason: ReasonBadTimestamp},
	{name: "day 0", in: with("timestamp", `"2024-03-00T00:00:00Z"`), reason: ReasonBadTimestamp},
	{name: "hour 24", in: with("timestamp", `"2024-03-10T24:00:00Z"`), reason: ReasonBadTimestamp},
	{name: "leap second", in: with("timestamp", `"2016-12-31T23:59:60Z"`), reason: ReasonBadTimestamp},
	{name: "ten-digit fraction", in: with("timestamp", `"2024-03-10T12:34:56.1234567890Z"`), reason: ReasonBadTimestamp},
	{name: "empty fraction", in: with("timestamp", `"2024-03-10T12:34:56.Z"`), reason: ReasonBadTimestamp},
	{name: "comma fraction", in: with("timestamp", `"2024-03-10T12:34:56,789Z"`), reason: ReasonBadTimestamp},
	{name: "five-digit year", in: with("timestamp", `"10000-01-01T00:00:00Z"`), reason: ReasonBadTimestamp},
	{name: "after year 9999 in UTC", in: with("timestamp", `"9999-12-31T23:59:59-01:00"`), reason: ReasonBadTimestamp},
	{name: "before year 0000 in UTC", in: with("timestamp", `"0000-01-01T00:00:00+01:00"`), reason: ReasonBadTimestamp},
	{name: "float epoch", in: with("timestamp", `1710074096789.0`), reason: ReasonBadTimestamp},
	{name: "exponent epoch", in: with("timestamp", `1.710074096789e12`), reason: ReasonBadTimestamp},
	{name: "epoch ms above max", in: with("timestamp", `253402300800000`), reason: ReasonBadTimestamp},
	{name: "epoch ms below min", in: with("timestamp", `-62167219200001`), reason: ReasonBadTimestamp},
	{name: "epoch beyond int64", in: with("timestamp", `99999999999999999999`), reason: ReasonBadTimestamp},
	{name: "empty timestamp", in: with("timestamp", `""`), reason: ReasonBadTimestamp},
	{name: "bool timestamp", in: with("timestamp", `true`), reason: ReasonBadTimestamp},
	{name: "object timestamp", in: with("timestamp", `{"ms":0}`), reason: ReasonBadTimestamp},

	// url
	{name: "missing url", in: with("url", ``), reason: ReasonMissingURL},
	{name: "null url", in: with("url", `null`), reason: ReasonMissingURL},
	{name: "empty url", in: with("url", `""`), reason: ReasonBadURL},
	{name: "number url", in: with("url", `7`), reason: ReasonBadURL},
	{name: "array url", in: with("url", `["/a"]`), reason: ReasonBadURL},

	// optional fields of the wrong type
	{name: "number country", in: with("country", `49`), reason: ReasonBadCountry},
	{name: "object country", in: with("country", `{"code":"DE"}`), reason: ReasonBadCountry},
	{name: "bool country", in: with("country", `false`), reason: ReasonBadCountry},
	{name: "number city", in: with("city", `1`), reason: ReasonBadCity},
	{name: "array city", in: with("city", `[]`), reason: ReasonBadCity},
	{name: "number user agent", in: with("user_agent", `7`), reason: ReasonBadUserAgent},
	{name: "object user agent", in: with("user_agent", `{}`), reason: ReasonBadUserAgent},
}

func TestParse(t *testing.T) {
	for _, tc := range append(acceptCases, rejectCases...) {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse([]byte(tc.in))
			if ReasonOf(err) != tc.reason {
				t.Fatalf("Parse(%.80q) error = %v, want reason %q", tc.in, err, tc.reason)
			}
			if got != tc.want {
				t.Errorf("Parse(%.80q) = %+v, want %+v", tc.in, got, tc.want)
			}
			// Aliasing and interning change nothing, on a first or a
			// repeated value.
			in := NewInterner(0)
			for _, in := range []*Interner{nil, in, in} {
				if ag, aerr := (Parser{}).ParseAliased([]byte(tc.in), in); ag != got || ReasonOf(aerr) != ReasonOf(err) {
					t.Errorf("ParseAliased = %+v, %v; Parse = %+v, %v", ag, aerr, got, err)
				}
			}
			// The reference implementation agrees on every case.
			ref, refErr := referenceParse([]byte(tc.in), MaxSize)
			if ReasonOf(refErr) != tc.reason || ref != tc.want {
				t.Errorf("referenceParse = %+v, %v; want %+v, reason %q", ref, refErr, tc.want, tc.reason)
			}
		})
	}
}

func TestParserMaxSize(t *testing.T) {
	tests := []struct {
		name    string
		maxSize int
		in      string
		reason  Reason
	}{
		{name: "at the limit", maxSize: len(base), in: base},
		{name: "one byte over", maxSize: len(base) - 1, in: base, reason: ReasonTooLarge},
		{name: "checked before UTF-8", maxSize: 1, in: "\xff\xff", reason: ReasonTooLarge},
		{name: "zero means default", maxSize: 0, in: base},
		{name: "default limit", maxSize: 0, in: with("city", `"`+strings.Repeat("a", MaxSize)+`"`), reason: ReasonTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parser{MaxSize: tc.maxSize}.Parse([]byte(tc.in))
			if got := ReasonOf(err); got != tc.reason {
				t.Errorf("reason = %q (%v), want %q", got, err, tc.reason)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, tc := range append(acceptCases, rejectCases...) {
		if len(tc.in) < 1024 {
			f.Add([]byte(tc.in))
		}
	}
	// One interner across inputs, small enough to be reset now and then.
	in := NewInterner(64)
	f.Fuzz(func(t *testing.T, raw []byte) {
		for _, limit := range []int{MaxSize, 64} {
			got, err := Parser{MaxSize: limit}.Parse(raw)
			want, wantErr := referenceParse(raw, limit)
			if ReasonOf(err) != ReasonOf(wantErr) || got != want {
				t.Fatalf("limit %d: Parse(%q)\n = %+v, %v\nreference %+v, %v", limit, raw, got, err, want, wantErr)
			}
			for _, in := range []*Interner{nil, in} {
				if ag, aerr := (Parser{MaxSize: limit}).ParseAliased(raw, in); ag != got || ReasonOf(aerr) != ReasonOf(err) {
					t.Fatalf("limit %d: ParseAliased(%q) = %+v, %v; Parse = %+v, %v", limit, raw, ag, aerr, got, err)
				}
			}
			if err != nil {
				var re *RejectError
				if !errors.As(err, &re) || re.Reason == "" {
					t.Fatalf("error %v (%T) is not a *RejectError with a reason", err, err)
				}
				continue
			}
			if strings.TrimSpace(got.UserID) == "" || got.URL == "" ||
				got.Country == "" || got.Country != strings.TrimSpace(got.Country) ||
				got.Timestamp < MinTimestamp || got.Timestamp > MaxTimestamp {
				t.Fatalf("accepted event breaks the invariants: %+v", got)
			}
			for _, s := range []string{got.UserID, got.URL, got.Country, got.City, got.UserAgent} {
				if !utf8.ValidString(s) {
					t.Fatalf("accepted event has invalid UTF-8: %+v", got)
				}
			}
			again, err := Parse(Encode(got))
			if err != nil || again != got {
				t.Fatalf("Parse(Encode(%+v)) = %+v, %v", got, again, err)
			}
		}
	})
}

// benchMessages are typical message shapes, about 250 bytes each.
var benchMessages = []string{
	`{"user_id":"u_5f3a9c2e71d4","timestamp":"2026-11-27T10:15:32.417Z","url":"https://shop.example.com/product/8812?ref=home","country":"US","city":"Seattle","user_agent":"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"}`,
	`{"user_id":184467,"timestamp":1795774532417,"url":"https://shop.example.com/category/shoes","country":"DE","city":"München","user_agent":"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"}`,
	`{"timestamp":"2026-11-27T15:45:32.417+05:30","user_id":"u_0b77e1a2c9f0","url":"https://shop.example.com/search?q=red+dress\u0026page=2","city":"Bengaluru","country":" IN ","user_agent":"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36","session_id":"s-91c2"}`,
	`{"user_id":"u_2d1e0f9a8b7c","timestamp":"2026-11-27T02:15:32.417-08:00","url":"https://shop.example.com/","country":"","user_agent":"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_7_1) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15"}`,
}

func BenchmarkParse(b *testing.B) {
	benchmarkParse(b, func(raw []byte) (Event, error) { return Parse(raw) })
}

func BenchmarkParseAliased(b *testing.B) {
	benchmarkParse(b, func(raw []byte) (Event, error) { return Parser{}.ParseAliased(raw, nil) })
}

func BenchmarkParseAliasedInterned(b *testing.B) {
	in := NewInterner(0)
	benchmarkParse(b, func(raw []byte) (Event, error) { return Parser{}.ParseAliased(raw, in) })
}

func BenchmarkParseReference(b *testing.B) {
	benchmarkParse(b, func(raw []byte) (Event, error) { return referenceParse(raw, MaxSize) })
}

func benchmarkParse(b *testing.B, parse func([]byte) (Event, error)) {
	msgs := make([][]byte, len(benchMessages))
	size := 0
	for i, m := range benchMessages {
		msgs[i] = []byte(m)
		size += len(m)
		if _, err := parse(msgs[i]); err != nil {
			b.Fatalf("message %d: %v", i, err)
		}
	}
	b.SetBytes(int64(size / len(msgs)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := parse(msgs[i%len(msgs)]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// TestParseAliased checks what ParseAliased shares with the message: the
// strings it holds verbatim, not the ones it had to unescape, and Parse
// shares nothing.
func TestParseAliased(t *testing.T) {
	raw := []byte(`{"user_id":"u1","timestamp":0,"url":"/a\u00e9","country":" DE ","city":"Köln","user_agent":"ua"}`)
	inRaw := func(s string) bool {
		p := uintptr(unsafe.Pointer(unsafe.StringData(s)))
		lo := uintptr(unsafe.Pointer(&raw[0]))
		return len(s) > 0 && p >= lo && p < lo+uintptr(len(raw))
	}
	e, err := Parser{}.ParseAliased(raw, nil)
	if err != nil {
		t.Fatal(err)
	}
	if e.URL != "/a\u00e9" || e.Country != "DE" || e.City != "Köln" {
		t.Fatalf("ParseAliased = %+v", e)
	}
	for _, s := range []string{e.UserID, e.Country, e.City, e.UserAgent} {
		if !inRaw(s) {
			t.Errorf("%q was copied, not aliased", s)
		}
	}
	if inRaw(e.URL) {
		t.Errorf("escaped url %q aliases the message", e.URL)
	}
	c, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{c.UserID, c.URL, c.Country, c.City, c.UserAgent} {
		if inRaw(s) {
			t.Errorf("Parse shares %q with the message", s)
		}
	}
	plain := []byte(benchMessages[0])
	if n := testing.AllocsPerRun(100, func() { _, _ = Parser{}.ParseAliased(plain, nil) }); n != 0 {
		t.Errorf("ParseAliased of a message without escapes allocates %v times", n)
	}

	// With an interner, the fields from url on are shared between events,
	// and the user id still aliases the message; the interner keeps copies.
	in := NewInterner(0)
	a, _ := Parser{}.ParseAliased(raw, in)
	b, _ := Parser{}.ParseAliased(slices.Clone(raw), in)
	if a != b {
		t.Fatalf("events differ: %+v, %+v", a, b)
	}
	for _, p := range [][2]string{{a.Country, b.Country}, {a.City, b.City}, {a.UserAgent, b.UserAgent}} {
		if unsafe.StringData(p[0]) != unsafe.StringData(p[1]) {
			t.Errorf("repeated value %q was not shared", p[0])
		}
	}
	if !inRaw(a.UserID) {
		t.Errorf("user id %q was copied, not aliased", a.UserID)
	}
	for _, v := range in.m {
		if inRaw(v) {
			t.Errorf("the interner holds %q, which points into a message", v)
		}
	}
}
