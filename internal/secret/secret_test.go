package secret

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestNeverPrinted(t *testing.T) {
	s := Secret("hunter2")
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("x", "s", s)
	js, _ := json.Marshal(struct{ S Secret }{s})
	for _, out := range []string{fmt.Sprint(s), fmt.Sprintf("%v %s %q %#v %+v", s, s, s, s, s), logged.String(), string(js)} {
		if strings.Contains(out, "hunter2") {
			t.Errorf("printed: %s", out)
		}
	}
	if s.Reveal() != "hunter2" || Secret("").String() != "" {
		t.Fatal("Reveal or the empty secret")
	}
}

func TestRefuseInAddresses(t *testing.T) {
	if err := RefuseInAddresses("--brokers", "use SASL", "a:9092", "b:9092"); err != nil {
		t.Fatal(err)
	}
	for _, addrs := range [][]string{{"a:9092", "user:hunter2@b:9092"}, {"http://user:hunter2@s3:7070"}, {"user:hunter2 with spaces@b"}} {
		err := RefuseInAddresses("--flag", "give them elsewhere", addrs...)
		if !errors.Is(err, ErrInAddress) || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "--flag") {
			t.Errorf("%q: %v", addrs, err)
		}
	}
}
