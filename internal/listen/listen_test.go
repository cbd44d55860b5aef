package listen

import (
	"errors"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		addr     string
		insecure bool
		ok       bool
	}{
		{"", false, true},
		{"127.0.0.1:7400", false, true},
		{"127.8.9.10:0", false, true},
		{"[::1]:7400", false, true},
		{"localhost:7400", false, true},
		{"LocalHost:7400", false, true},
		{":7400", false, false},
		{"0.0.0.0:7400", false, false},
		{"[::]:7400", false, false},
		{"10.1.2.3:7400", false, false},
		{"coordinator:7400", false, false},
		{"127.0.0.1", false, false}, // no port: not an address
		{":7400", true, true},
		{"0.0.0.0:7400", true, true},
	} {
		err := Check("--listen", tc.addr, tc.insecure)
		if (err == nil) != tc.ok {
			t.Errorf("Check(%q, insecure %v) = %v, want ok %v", tc.addr, tc.insecure, err, tc.ok)
		}
		if err != nil && (!errors.Is(err, ErrNotLoopback) || !strings.Contains(err.Error(), "--listen "+tc.addr) || !strings.Contains(err.Error(), "--insecure")) {
			t.Errorf("Check(%q): %v should name the flag, the address and --insecure", tc.addr, err)
		}
	}
}
