package event

import "testing"

func TestEncode(t *testing.T) {
	tests := []struct {
		name string
		e    Event
	}{
		{name: "plain", e: baseEvent},
		{name: "escapes", e: Event{UserID: "a\"b\\c\n", Timestamp: -1, URL: "/x?a=1&b=<2>\u2028", Country: "ÅLAND", City: "\x00\x1f\t\r", UserAgent: "😀"}},
		{name: "numeric user id", e: Event{UserID: "-0042", Timestamp: 1, URL: " ", Country: UnknownCountry}},
		{name: "range ends", e: Event{UserID: "u", Timestamp: MaxTimestamp, URL: "/", Country: "x"}},
		{name: "range start", e: Event{UserID: "u", Timestamp: MinTimestamp, URL: "/", Country: "x"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw := Encode(tc.e)
			got, err := Parse(raw)
			if err != nil {
				t.Fatalf("Parse(Encode(e)) = %v; message %s", err, raw)
			}
			if got != tc.e {
				t.Errorf("Parse(Encode(e)) = %+v, want %+v", got, tc.e)
			}
		})
	}
	if got, want := string(Encode(baseEvent)), base; got != want {
		t.Errorf("Encode(baseEvent) = %s, want %s", got, want)
	}
}
