package ingest

import (
	"fmt"

	"github.com/dataco/clickstream/internal/failpoint"
)

// EnvCrashAt names a fault-injection knob for crash tests: "POINT:N" kills
// the process with SIGKILL the Nth time it reaches POINT, where POINT is
// "before-manifest" (data files written, manifest not) or "after-manifest"
// (manifest written, Kafka offset not yet marked). "pause-before-manifest:N"
// stops the process with SIGSTOP instead, to be resumed with SIGCONT after
// its partitions have moved to another consumer: a zombie. Unset in
// production.
const EnvCrashAt = "CLICKSTREAM_INGEST_CRASH_AT"

func failpointFromEnv() (*failpoint.Point, error) {
	p, err := failpoint.FromEnv(EnvCrashAt, "before-manifest", "after-manifest")
	if err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	return p, nil
}
