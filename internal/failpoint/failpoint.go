// Package failpoint stops a process at a named point of a protocol, for
// crash tests: a test sets an environment variable to "POINT:N", and the
// process kills itself with SIGKILL the Nth time it reaches POINT, or, for
// "pause-POINT:N", stops itself with SIGSTOP (a zombie, to be resumed with
// SIGCONT). Unset in production, where every Hit is a nil check.
//
// A failpoint fires at a place in the code, never at a time: the test that
// sets it knows what the process had done when it died.
package failpoint

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
)

// Point is the failpoint a process was started with; nil fires never.
type Point struct {
	name  string // without "pause-"
	pause bool
	at    int64
	n     atomic.Int64
}

// FromEnv reads the failpoint in the environment variable env, one of
// points (each also valid as "pause-"+point). It returns nil if env is
// unset or empty.
func FromEnv(env string, points ...string) (*Point, error) {
	return Parse(env, os.Getenv(env), points...)
}

// Parse parses v ("POINT:N" or "pause-POINT:N", N ≥ 1) as FromEnv does;
// env only names the setting in errors.
func Parse(env, v string, points ...string) (*Point, error) {
	if v == "" {
		return nil, nil
	}
	name, count, ok := strings.Cut(v, ":")
	n, err := strconv.ParseInt(count, 10, 64)
	p := &Point{name: name, at: n}
	if rest, found := strings.CutPrefix(name, "pause-"); found {
		p.name, p.pause = rest, true
	}
	if !ok || err != nil || n <= 0 || !slices.Contains(points, p.name) {
		return nil, fmt.Errorf("%s=%q: want POINT:N or pause-POINT:N with N ≥ 1 and POINT one of %s",
			env, v, strings.Join(points, ", "))
	}
	return p, nil
}

// Hit counts a visit to point and kills (or stops) the process if this is
// the configured point's Nth visit. A stopped process returns from Hit
// when it is continued.
func (p *Point) Hit(point string) {
	if p == nil || p.name != point || p.n.Add(1) != p.at {
		return
	}
	if p.pause {
		_ = syscall.Kill(os.Getpid(), syscall.SIGSTOP)
		return
	}
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // never returns
}
