package ingest

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestReadLine(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		limit int
		want  []string
		long  []bool
	}{
		{"lf", "a\nbb\n", 10, []string{"a", "bb"}, []bool{false, false}},
		{"crlf", "a\r\nbb\r\n", 10, []string{"a", "bb"}, []bool{false, false}},
		{"no final newline", "a\nbb", 10, []string{"a", "bb"}, []bool{false, false}},
		{"blank lines kept", "a\n\n\nb\n", 10, []string{"a", "", "", "b"}, []bool{false, false, false, false}},
		{"at limit", "abcd\n", 4, []string{"abcd"}, []bool{false}},
		{"over limit", "abcde\nx\n", 4, []string{"abcd", "x"}, []bool{true, false}},
		{"over limit last line", "x\nabcdefgh", 4, []string{"x", "abcd"}, []bool{false, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := bufio.NewReaderSize(strings.NewReader(tt.in), 16)
			var got []string
			var long []bool
			for {
				line, err := readLine(r, tt.limit)
				if errors.Is(err, io.EOF) && line == nil {
					break
				}
				if err != nil && !errors.Is(err, errTooLong) {
					t.Fatal(err)
				}
				got = append(got, string(line))
				long = append(long, errors.Is(err, errTooLong))
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") || len(got) != len(tt.want) {
				t.Fatalf("lines = %q, want %q", got, tt.want)
			}
			for i := range long {
				if long[i] != tt.long[i] {
					t.Fatalf("line %d too long = %v, want %v", i, long[i], tt.long[i])
				}
			}
		})
	}
}

func TestReadLineLongerThanBuffer(t *testing.T) {
	long := strings.Repeat("x", 100)
	r := bufio.NewReaderSize(strings.NewReader(long+"\nok\n"), 16)
	line, err := readLine(r, 1000)
	if err != nil || string(line) != long {
		t.Fatalf("got %d bytes, err %v", len(line), err)
	}
	line, err = readLine(r, 1000)
	if err != nil || string(line) != "ok" {
		t.Fatalf("got %q, err %v", line, err)
	}
}
