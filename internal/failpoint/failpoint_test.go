package failpoint

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
)

func TestParse(t *testing.T) {
	points := []string{"before", "after"}
	for _, tc := range []struct {
		v     string
		name  string
		pause bool
		at    int64
		bad   bool
	}{
		{v: ""},
		{v: "before:1", name: "before", at: 1},
		{v: "after:12", name: "after", at: 12},
		{v: "pause-before:3", name: "before", pause: true, at: 3},
		{v: "before", bad: true},
		{v: "before:0", bad: true},
		{v: "before:-1", bad: true},
		{v: "before:x", bad: true},
		{v: "elsewhere:1", bad: true},
		{v: "pause-:1", bad: true},
	} {
		p, err := Parse("X", tc.v, points...)
		switch {
		case tc.bad:
			if err == nil {
				t.Errorf("%q: no error", tc.v)
			}
		case err != nil:
			t.Errorf("%q: %v", tc.v, err)
		case tc.v == "":
			if p != nil {
				t.Errorf("empty: %+v, want nil", p)
			}
		case p.name != tc.name || p.pause != tc.pause || p.at != tc.at:
			t.Errorf("%q: got %s pause=%v at %d", tc.v, p.name, p.pause, p.at)
		}
	}
}

// TestHitKillsOnTheNthVisit runs this test binary as a child that visits
// a point until the failpoint kills it, and checks it died by SIGKILL on
// the visit asked for.
func TestHitKillsOnTheNthVisit(t *testing.T) {
	if os.Getenv("FAILPOINT_CHILD") == "1" {
		p, err := FromEnv("FAILPOINT_TEST", "step")
		if err != nil {
			os.Exit(3)
		}
		for i := 1; i <= 5; i++ {
			p.Hit("other")
			os.Stdout.Write([]byte{byte('0' + i)})
			p.Hit("step")
		}
		os.Exit(0)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHitKillsOnTheNthVisit$")
	cmd.Env = append(os.Environ(), "FAILPOINT_CHILD=1", "FAILPOINT_TEST=step:3")
	out, err := cmd.Output()
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if err == nil || !ok || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v, want SIGKILL", err)
	}
	if string(out) != "123" {
		t.Fatalf("child got to %q before dying, want 123", out)
	}
}

func TestNilNeverFires(t *testing.T) {
	var p *Point
	p.Hit("anything")
}
