package worker

import "github.com/dataco/clickstream/internal/failpoint"

// EnvCrashAt names a fault-injection knob for crash tests: "POINT:N" kills
// the worker with SIGKILL the Nth time it reaches POINT: "before-partial"
// (a task's partial computed, not yet committed) or "after-partial"
// (committed, not yet reported to the coordinator). "pause-POINT:N" stops
// it with SIGSTOP instead. Unset in production.
const EnvCrashAt = "CLICKSTREAM_WORKER_CRASH_AT"

const (
	pointBeforePartial = "before-partial"
	pointAfterPartial  = "after-partial"
)

func crashFromEnv() (*failpoint.Point, error) {
	return failpoint.FromEnv(EnvCrashAt, pointBeforePartial, pointAfterPartial)
}
