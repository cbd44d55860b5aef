package ingest

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
)

// EnvCrashAt names a fault-injection knob for crash tests: "POINT:N" kills
// the process with SIGKILL the Nth time it reaches POINT, where POINT is
// "before-manifest" (data files written, manifest not) or "after-manifest"
// (manifest written, Kafka offset not yet marked). "pause-before-manifest:N"
// stops the process with SIGSTOP instead, to be resumed with SIGCONT after
// its partitions have moved to another consumer: a zombie. Unset in
// production.
const EnvCrashAt = "CLICKSTREAM_INGEST_CRASH_AT"

// failpoint kills the process at a named point of the commit protocol.
type failpoint struct {
	point string
	at    int64
	n     atomic.Int64
}

func failpointFromEnv() (*failpoint, error) {
	v := os.Getenv(EnvCrashAt)
	if v == "" {
		return nil, nil
	}
	point, count, ok := strings.Cut(v, ":")
	n, err := strconv.ParseInt(count, 10, 64)
	switch point {
	case "before-manifest", "after-manifest", "pause-before-manifest":
	default:
		ok = false
	}
	if !ok || err != nil || n <= 0 {
		return nil, fmt.Errorf("ingest: %s=%q: want before-manifest:N, after-manifest:N or pause-before-manifest:N", EnvCrashAt, v)
	}
	return &failpoint{point: point, at: n}, nil
}

// hit kills (or stops) the process if this is the configured point's Nth
// visit.
func (f *failpoint) hit(point string) {
	if f == nil {
		return
	}
	if f.point == "pause-"+point && f.n.Add(1) == f.at {
		_ = syscall.Kill(os.Getpid(), syscall.SIGSTOP) // returns after SIGCONT
		return
	}
	if f.point == point && f.n.Add(1) == f.at {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // never returns
	}
}
