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
// (manifest written, Kafka offset not yet marked). Unset in production.
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
	if !ok || err != nil || n <= 0 || (point != "before-manifest" && point != "after-manifest") {
		return nil, fmt.Errorf("ingest: %s=%q: want before-manifest:N or after-manifest:N", EnvCrashAt, v)
	}
	return &failpoint{point: point, at: n}, nil
}

// hit kills the process if this is the configured point's Nth visit.
func (f *failpoint) hit(point string) {
	if f == nil || f.point != point {
		return
	}
	if f.n.Add(1) == f.at {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // never returns
	}
}
