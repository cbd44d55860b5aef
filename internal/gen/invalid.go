package gen

import (
	"bytes"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dataco/clickstream/internal/event"
	"github.com/dataco/clickstream/internal/jsonstr"
)

// invalidMix is the relative frequency of each rejection reason among
// invalid messages: common producer bugs are frequent, oversized messages
// (64 KiB each) rare.
var invalidMix = []struct {
	reason event.Reason
	weight int
}{
	{event.ReasonMalformedJSON, 20},
	{event.ReasonInvalidUTF8, 8},
	{event.ReasonNotObject, 5},
	{event.ReasonTooLarge, 1},
	{event.ReasonDuplicateField, 3},
	{event.ReasonMissingUserID, 8},
	{event.ReasonBadUserID, 6},
	{event.ReasonMissingTimestamp, 6},
	{event.ReasonBadTimestamp, 15},
	{event.ReasonMissingURL, 5},
	{event.ReasonBadURL, 4},
	{event.ReasonBadCountry, 6},
	{event.ReasonBadCity, 4},
	{event.ReasonBadUserAgent, 4},
}

// invalidMessage renders a message of u that breaks the contract in one way
// only, drawn from invalidMix.
func (g *Generator) invalidMessage(u *user, ts int64, url string) Message {
	reason := invalidMix[g.invalid.pick(g.rng)].reason
	fs, _ := g.fields(u, ts, url)
	c := u.client
	m := Message{Key: []byte(u.id), SentAt: time.UnixMilli(ts).UTC(), Reason: reason}
	pick := func(n int) int { return g.rng.IntN(n) }

	switch reason {
	case event.ReasonMalformedJSON:
		valid := writeObject(nil, fs, c.spaced)
		switch pick(7) {
		case 0: // truncated, at a character boundary
			cut := 1 + pick(len(valid)-1)
			for cut > 1 && !utf8.RuneStart(valid[cut]) {
				cut--
			}
			m.Value = valid[:cut]
		case 1: // two messages glued together
			m.Value = append(valid, valid...)
		case 2: // Python repr instead of JSON
			m.Value = bytes.ReplaceAll(valid, []byte(`"`), []byte(`'`))
		case 3: // trailing comma
			m.Value = append(append(valid[:len(valid)-1:len(valid)-1], ','), '}')
		case 4: // JavaScript NaN
			m.Value = writeObject(nil, set(fs, "timestamp", []byte("NaN")), c.spaced)
		case 5: // unescaped quote
			m.Value = writeObject(nil, set(fs, "city", []byte(`"5th "Avenue""`)), c.spaced)
		default: // raw tab inside a string
			m.Value = writeObject(nil, set(fs, "user_agent", []byte("\"Mozilla/5.0\t(X11)\"")), c.spaced)
		}
		return m

	case event.ReasonNotObject:
		valid := writeObject(nil, fs, c.spaced)
		switch pick(5) {
		case 0: // a batch instead of a message
			m.Value = append(append([]byte{'['}, valid...), ']')
		case 1: // JSON encoded twice
			m.Value = jsonstr.Append(nil, string(valid))
		case 2:
			m.Value = []byte("null")
		case 3:
			m.Value = strconv.AppendInt(nil, ts, 10)
		default:
			m.Value = []byte("true")
		}
		return m

	case event.ReasonTooLarge:
		// A valid message but for its size: a runaway user agent.
		base := len(writeObject(nil, fs, c.spaced))
		pad := g.cfg.MaxSize - base + 1 + pick(512)
		ua := u.ua + " " + strings.Repeat("X", max(pad, 1))
		m.Value = writeObject(nil, set(fs, "user_agent", g.str(c, ua)), c.spaced)
		return m

	case event.ReasonInvalidUTF8:
		switch l1, ok := latin1[u.city.name]; {
		case ok && pick(2) == 0: // city sent as Latin-1
			fs = set(fs, "city", []byte(`"`+l1+`"`))
		case pick(2) == 0: // a multi-byte character cut short
			fs = set(fs, "url", []byte(`"`+url+"?q=caf\xc3\""))
		default: // a stray byte
			fs = set(fs, "user_agent", []byte("\"Mozilla/5.0 \xff\""))
		}

	case event.ReasonDuplicateField:
		switch pick(3) {
		case 0:
			fs = append(fs, kv{"url", g.str(c, g.urls[g.zipf.Uint64()])})
		case 1:
			fs = append(fs, kv{"timestamp", strconv.AppendInt(nil, ts, 10)})
		default:
			fs = append(fs, kv{"user_id", g.str(c, u.id)})
		}

	case event.ReasonMissingUserID:
		m.Key = nil
		fs = dropOrNull(fs, "user_id", pick(2) == 0)
	case event.ReasonBadUserID:
		m.Key = nil
		bad := []string{`""`, `"   "`, `12.5`, `1e6`, `true`, `{"id":"` + u.id + `"}`, `["` + u.id + `"]`}
		fs = set(fs, "user_id", []byte(bad[pick(len(bad))]))

	case event.ReasonMissingTimestamp:
		fs = dropOrNull(fs, "timestamp", pick(2) == 0)
	case event.ReasonBadTimestamp:
		fs = set(fs, "timestamp", badTimestamp(ts, pick(11)))

	case event.ReasonMissingURL:
		fs = dropOrNull(fs, "url", pick(2) == 0)
	case event.ReasonBadURL:
		bad := []string{`""`, `404`, `["` + url + `"]`, `{"href":"` + url + `"}`}
		fs = set(fs, "url", []byte(bad[pick(len(bad))]))

	case event.ReasonBadCountry:
		code := countries[u.country].code
		bad := []string{`49`, `{"code":"` + code + `"}`, `["` + code + `"]`, `true`}
		fs = set(fs, "country", []byte(bad[pick(len(bad))]))
	case event.ReasonBadCity:
		bad := []string{`{"name":"Berlin"}`, `0`, `["Berlin","DE"]`, `false`}
		fs = set(fs, "city", []byte(bad[pick(len(bad))]))
	case event.ReasonBadUserAgent:
		bad := []string{`{"ua":"Mozilla/5.0"}`, `7`, `false`, `["Mozilla/5.0"]`}
		fs = set(fs, "user_agent", []byte(bad[pick(len(bad))]))
	}
	m.Value = writeObject(make([]byte, 0, objectSize(fs, c.spaced)), fs, c.spaced)
	return m
}

// badTimestamp renders ts in one of the formats the contract refuses.
func badTimestamp(ts int64, variant int) []byte {
	t := time.UnixMilli(ts).UTC()
	q := func(s string) []byte { return []byte(`"` + s + `"`) }
	switch variant {
	case 0: // SQL
		return q(t.Format("2006-01-02 15:04:05"))
	case 1: // no offset
		return q(t.Format("2006-01-02T15:04:05.000"))
	case 2: // numeric string
		return q(strconv.FormatInt(ts, 10))
	case 3: // JavaScript Date.now()/1000
		return strconv.AppendFloat(nil, float64(ts)/1000, 'f', 3, 64)
	case 4: // HTTP date
		return q(t.Format(time.RFC1123))
	case 5: // US style
		return q(t.Format("01/02/2006 15:04:05"))
	case 6: // impossible date
		return q(t.Format("2006") + "-02-30T" + t.Format("15:04:05") + "Z")
	case 7: // float milliseconds
		return []byte(strconv.FormatInt(ts, 10) + ".0")
	case 8: // too many fraction digits
		return q(t.Format("2006-01-02T15:04:05") + ".1234567890Z")
	case 9:
		return q("")
	default: // offset without colon
		return q(t.Format("2006-01-02T15:04:05.000-0700"))
	}
}

// set returns fs with key's value replaced by v, or v appended if absent.
func set(fs []kv, key string, v []byte) []kv {
	out := make([]kv, len(fs), len(fs)+1)
	copy(out, fs)
	for i := range out {
		if out[i].k == key {
			out[i].v = v
			return out
		}
	}
	return append(out, kv{key, v})
}

// dropOrNull removes key from fs, or sets it to null.
func dropOrNull(fs []kv, key string, null bool) []kv {
	if null {
		return set(fs, key, []byte("null"))
	}
	out := fs[:0:0]
	for _, f := range fs {
		if f.k != key {
			out = append(out, f)
		}
	}
	return out
}
