package jsonstr

import (
	"bytes"
	"encoding/json"
	"testing"
)

// reference is encoding/json's string literal of s, HTML escaping off.
func reference(t *testing.T, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

func TestAppendIsEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "plain", "<a href='x'>&amp;</a>", "q\" b\\ /", "\x00\x01\x08\x0c\x1f\x7f\t\n\r",
		"é 中 🙂", "bad \xff \xc3", "\xe2\x80", "\u2028\u2029", "a\xffb"} {
		if got, want := Append([]byte("x"), s), append([]byte("x"), reference(t, s)...); !bytes.Equal(got, want) {
			t.Errorf("Append(%q) = %s, encoding/json %s", s, got, want)
		}
	}
}

// FuzzAppend: any string is written as encoding/json writes it.
func FuzzAppend(f *testing.F) {
	for _, s := range []string{"", "a\"b", "\x08\x0c", "\u2028", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := Append(nil, s), reference(t, s); !bytes.Equal(got, want) {
			t.Fatalf("Append(%q) = %s, encoding/json %s", s, got, want)
		}
	})
}
