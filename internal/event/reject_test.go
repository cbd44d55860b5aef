package event

import (
	"errors"
	"fmt"
	"testing"
)

func TestRejectError(t *testing.T) {
	_, err := Parse([]byte(`[]`))
	var re *RejectError
	if !errors.As(err, &re) {
		t.Fatalf("error %T is not a *RejectError", err)
	}
	if re.Reason != ReasonNotObject {
		t.Errorf("Reason = %q, want %q", re.Reason, ReasonNotObject)
	}
	if got, want := err.Error(), "event: not_object: message is an array"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	wrapped := fmt.Errorf("partition 3 offset 7: %w", err)
	if got := ReasonOf(wrapped); got != ReasonNotObject {
		t.Errorf("ReasonOf(wrapped) = %q", got)
	}
	if got := ReasonOf(nil); got != "" {
		t.Errorf("ReasonOf(nil) = %q", got)
	}
	if got := ReasonOf(errors.New("other")); got != "" {
		t.Errorf("ReasonOf(other) = %q", got)
	}
}

func TestReasonsCovered(t *testing.T) {
	seen := map[Reason]bool{ReasonTooLarge: true} // covered by TestParserMaxSize
	for _, tc := range rejectCases {
		seen[tc.reason] = true
	}
	for _, r := range Reasons() {
		if !seen[r] {
			t.Errorf("no test case for reason %q", r)
		}
	}
}
