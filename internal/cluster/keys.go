package cluster

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// DefaultPrefix roots every key of a cluster in etcd.
const DefaultPrefix = "/clickstream/v1"

// ErrBadKey reports an etcd key that does not parse as the expected kind.
var ErrBadKey = errors.New("cluster: malformed key")

// ValidatePrefix checks a key prefix: it must start with '/', must not end
// with one, and must not contain empty segments or spaces.
func ValidatePrefix(p string) error {
	switch {
	case p == "" || p[0] != '/':
		return fmt.Errorf("cluster: etcd prefix %q must start with '/'", p)
	case strings.HasSuffix(p, "/"):
		return fmt.Errorf("cluster: etcd prefix %q must not end with '/'", p)
	case strings.Contains(p, "//") || strings.ContainsAny(p, " \t\n"):
		return fmt.Errorf("cluster: etcd prefix %q has an empty segment or a space", p)
	}
	return nil
}

// ValidateID checks a job or worker id: 1 to 128 characters among letters,
// digits, '.', '_' and '-', so that it is one key segment.
func ValidateID(kind, id string) error {
	if id == "" || len(id) > 128 {
		return fmt.Errorf("cluster: %s id %q must have 1 to 128 characters", kind, id)
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("cluster: %s id %q: only letters, digits, '.', '_' and '-' are allowed", kind, id)
		}
	}
	return nil
}

// Keys builds the etcd keys of one cluster. The zero value uses
// DefaultPrefix.
type Keys struct {
	Prefix string
}

func (k Keys) root() string {
	if k.Prefix == "" {
		return DefaultPrefix
	}
	return strings.TrimSuffix(k.Prefix, "/")
}

// Active is the prefix of the markers of unfinished jobs: one key per job
// from its submit to its terminal record, so that counting them is cheap.
func (k Keys) Active() string { return k.root() + "/active/" }

// ActiveJob is the marker of an unfinished job.
func (k Keys) ActiveJob(job string) string { return k.Active() + job }

// Submissions is the prefix of the idempotency keys of submitted jobs.
func (k Keys) Submissions() string { return k.root() + "/submissions/" }

// Submission is the key recording which job a client's idempotency key
// (checked with ValidateID) created.
func (k Keys) Submission(key string) string { return k.Submissions() + key }

// Workers is the prefix of every worker registration.
func (k Keys) Workers() string { return k.root() + "/workers/" }

// Worker is the registration key of one worker.
func (k Keys) Worker(id string) string { return k.Workers() + id }

// WorkerID returns the worker id of a registration key.
func (k Keys) WorkerID(key string) (string, error) {
	id, ok := strings.CutPrefix(key, k.Workers())
	if !ok || id == "" || strings.Contains(id, "/") {
		return "", fmt.Errorf("%w: %q is not a worker key", ErrBadKey, key)
	}
	return id, nil
}

// Settings is the key of the cluster-wide Settings record.
func (k Keys) Settings() string { return k.root() + "/settings" }

// Election is the prefix of the coordinators' leader election.
func (k Keys) Election() string { return k.root() + "/leader/" }

// Jobs is the prefix of every job record.
func (k Keys) Jobs() string { return k.root() + "/jobs/" }

// Job is the record key of one job.
func (k Keys) Job(id string) string { return k.Jobs() + id }

// JobID returns the job id of a job record key.
func (k Keys) JobID(key string) (string, error) {
	id, ok := strings.CutPrefix(key, k.Jobs())
	if !ok || id == "" || strings.Contains(id, "/") {
		return "", fmt.Errorf("%w: %q is not a job key", ErrBadKey, key)
	}
	return id, nil
}

// AllTasks is the prefix of the task records of every job.
func (k Keys) AllTasks() string { return k.root() + "/tasks/" }

// Tasks is the prefix of one job's task records.
func (k Keys) Tasks(job string) string { return k.AllTasks() + job + "/" }

// Task is the record key of one task of a job.
func (k Keys) Task(job string, task int) string { return fmt.Sprintf("%s%05d", k.Tasks(job), task) }

// TaskID returns the job and task of a task record key.
func (k Keys) TaskID(key string) (job string, task int, err error) {
	rest, ok := strings.CutPrefix(key, k.AllTasks())
	if !ok {
		return "", 0, fmt.Errorf("%w: %q is not a task key", ErrBadKey, key)
	}
	job, ts, ok := strings.Cut(rest, "/")
	if !ok || job == "" {
		return "", 0, fmt.Errorf("%w: %q is not a task key", ErrBadKey, key)
	}
	task, err = strconv.Atoi(ts)
	if err != nil || task < 0 {
		return "", 0, fmt.Errorf("%w: %q is not a task key", ErrBadKey, key)
	}
	return job, task, nil
}

// AllLeases is the prefix of the attempt leases of every job.
func (k Keys) AllLeases() string { return k.root() + "/leases/" }

// Leases is the prefix of one job's attempt leases.
func (k Keys) Leases(job string) string { return k.AllLeases() + job + "/" }

// TaskLeases is the prefix of the attempt leases of one task.
func (k Keys) TaskLeases(job string, task int) string {
	return fmt.Sprintf("%s%05d/", k.Leases(job), task)
}

// Lease is the key of one running attempt of a task. It is written under
// the lease of the worker running the attempt, so it vanishes when that
// worker dies.
func (k Keys) Lease(job string, task, attempt int) string {
	return fmt.Sprintf("%s%03d", k.TaskLeases(job, task), attempt)
}

// LeaseID returns the job, task and attempt of an attempt lease key.
func (k Keys) LeaseID(key string) (job string, task, attempt int, err error) {
	rest, ok := strings.CutPrefix(key, k.AllLeases())
	parts := strings.Split(rest, "/")
	if !ok || len(parts) != 3 || parts[0] == "" {
		return "", 0, 0, fmt.Errorf("%w: %q is not an attempt lease key", ErrBadKey, key)
	}
	task, err1 := strconv.Atoi(parts[1])
	attempt, err2 := strconv.Atoi(parts[2])
	if err1 != nil || err2 != nil || task < 0 || attempt < 1 {
		return "", 0, 0, fmt.Errorf("%w: %q is not an attempt lease key", ErrBadKey, key)
	}
	return parts[0], task, attempt, nil
}

// WorkerInfo is the value of a worker's registration key.
type WorkerInfo struct {
	ID   string `json:"id"`
	Addr string `json:"addr"` // host:port of its WorkerService
	// Parallelism is how many tasks the worker runs at once; the leader
	// never gives it more.
	Parallelism int       `json:"parallelism"`
	Started     time.Time `json:"started"`
	// Draining is set while the worker shuts down: it finishes its running
	// tasks but takes no new ones.
	Draining bool   `json:"draining,omitempty"`
	Host     string `json:"host,omitempty"`
	PID      int    `json:"pid,omitempty"`
	// TasksDone and TasksFailed count the task attempts the worker has
	// finished and failed since it started (cancelled ones in neither);
	// the worker updates its registration with them as they change, at
	// most once per keep-alive of its lease.
	TasksDone   int64 `json:"tasks_done,omitempty"`
	TasksFailed int64 `json:"tasks_failed,omitempty"`
}

// Settings is the cluster-wide record the leading coordinator writes at
// Keys.Settings. Workers read it when they register.
type Settings struct {
	// WorkerTTLSeconds is the lease TTL a worker registers with, unless the
	// worker was given its own: how long a dead worker keeps its tasks.
	WorkerTTLSeconds int `json:"worker_ttl_seconds"`
}
