package coordinator

import (
	"context"

	"github.com/dataco/clickstream/internal/failpoint"
)

// EnvCrashAt names a fault-injection knob for crash tests: "POINT:N" kills
// the coordinator with SIGKILL the Nth time it reaches POINT, one of the
// steps of merging and committing a job's result:
//
//	before-merge   every task done and recorded; no partial read yet
//	before-commit  merged and recorded as committing; nothing written yet
//	after-commit   _SUCCESS names the job; success not yet recorded in etcd
//	after-record   success recorded in etcd; plan and partials not yet cleaned up
//
// "pause-POINT:N" stops it with SIGSTOP instead. Unset in production.
const EnvCrashAt = "CLICKSTREAM_COORDINATOR_CRASH_AT"

// The failpoints of a merge and commit, in order.
const (
	pointBeforeMerge  = "before-merge"
	pointBeforeCommit = "before-commit"
	pointAfterCommit  = "after-commit"
	pointAfterRecord  = "after-record"
)

// pointLoad is reached by a planner as it starts loading a job, with the
// job's context; only Config.testHook sees it.
const pointLoad = "load"

func crashFromEnv() (*failpoint.Point, error) {
	return failpoint.FromEnv(EnvCrashAt, pointBeforeMerge, pointBeforeCommit, pointAfterCommit, pointAfterRecord)
}

// hit passes a failpoint: the process's (from EnvCrashAt) and the test
// hook's, if any.
func (c *Coordinator) hit(ctx context.Context, point string) {
	c.crash.Hit(point)
	if c.cfg.testHook != nil {
		c.cfg.testHook(ctx, point)
	}
}
