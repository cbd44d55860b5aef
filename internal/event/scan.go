package event

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// maxDepth is the deepest nesting of arrays and objects accepted, counting
// the top-level object; it is encoding/json's limit.
const maxDepth = 10000

// syntaxError reports malformed JSON at offset i.
func syntaxError(raw []byte, i int) error {
	if i >= len(raw) {
		return reject(ReasonMalformedJSON, fmt.Sprintf("unexpected end of input at offset %d", len(raw)))
	}
	r, _ := utf8.DecodeRune(raw[i:])
	return reject(ReasonMalformedJSON, fmt.Sprintf("unexpected %q at offset %d", r, i))
}

// skipSpace returns the offset of the first byte at or after i that is not
// JSON white space.
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

// isNumberStart reports whether c can start a JSON number.
func isNumberStart(c byte) bool { return c == '-' || ('0' <= c && c <= '9') }

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

// skipDigits returns the offset of the first byte at or after i that is not
// an ASCII digit.
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

// isHex reports whether c is an ASCII hexadecimal digit.
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
