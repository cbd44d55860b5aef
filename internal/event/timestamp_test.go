package event

import "testing"

// FuzzTimestamp compares the RFC 3339 parser with the time-package
// reference directly, which reaches odd dates faster than FuzzParse.
func FuzzTimestamp(f *testing.F) {
	for _, s := range []string{
		"2024-03-10T12:34:56.789Z", "2024-03-10T18:04:56.789+05:30", "1969-12-31T23:59:59.9999z",
		"0000-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999-00:00", "2024-02-29T00:00:00+23:59",
		"2100-02-29T00:00:00Z", "2024-03-10T12:34:56.1234567890Z", "2024-03-10t12:34:56+05:60",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := parseRFC3339(s)
		gotB, okB := parseRFC3339([]byte(s))
		want, wantOK := referenceRFC3339(s)
		if ok != wantOK || got != want || okB != ok || gotB != got {
			t.Fatalf("parseRFC3339(%q) = %d, %v; []byte: %d, %v; reference %d, %v", s, got, ok, gotB, okB, want, wantOK)
		}
	})
}
