package ui

import (
	"context"
	"errors"
	"time"
)

// Cluster is what the UI reads: the cluster's state as etcd and the lake
// record it. The coordinator implements it over its own record decoding;
// every method does bounded work and honours ctx.
type Cluster interface {
	// Jobs returns at most limit jobs, newest first, older than the job
	// before (all when empty); more reports whether older ones exist.
	Jobs(ctx context.Context, limit int, before string) (jobs []Job, more bool, err error)
	// Job returns a job with at most maxTasks of its tasks; ErrNotFound if
	// there is no such job.
	Job(ctx context.Context, id string, maxTasks int) (*JobDetail, error)
	// Workers returns the registered workers.
	Workers(ctx context.Context) ([]Worker, error)
	// Schedule returns the scheduler's settings and at most limit of its
	// windows, newest first.
	Schedule(ctx context.Context, limit int) (*Schedule, error)
	// Ingest returns the watermark records of the lake's sources; nil when
	// the coordinator has no lake.
	Ingest(ctx context.Context) (*Ingest, error)
}

// Errors a Cluster's methods may wrap: the pages answer 404 and 400.
var (
	// ErrNotFound: no such job.
	ErrNotFound = errors.New("ui: not found")
	// ErrInvalid: a request's parameter (a job id, a page's cursor) is
	// malformed.
	ErrInvalid = errors.New("ui: invalid request")
)

// Job is one job as its record and its tasks' records show it.
type Job struct {
	ID           string    `json:"id"`
	State        string    `json:"state"` // pending, running, merging, committing, succeeded, failed, cancelled
	From         time.Time `json:"from"`
	To           time.Time `json:"to"`
	Out          string    `json:"out"`
	Created      time.Time `json:"created"`
	Started      time.Time `json:"started,omitzero"`
	Finished     time.Time `json:"finished,omitzero"`
	TasksTotal   int       `json:"tasks_total"`
	TasksDone    int       `json:"tasks_done"`
	TasksRunning int       `json:"tasks_running"`
	Attempts     int       `json:"attempts"`
	Retries      int       `json:"retries"`
	Backups      int       `json:"backups"`
	Workers      int       `json:"workers"` // workers running its tasks now
	EventsRead   int64     `json:"events_read"`
	BytesRead    int64     `json:"bytes_read"`
	HasResult    bool      `json:"has_result"`
	Rows         int64     `json:"rows"`
	// Revision and Final of its result, as committed by the job (a
	// provisional result finalized later is recorded by its window).
	Revision        int64  `json:"revision,omitempty"`
	Final           bool   `json:"final,omitempty"`
	Indexed         string `json:"indexed,omitempty"` // "", pending, ok, or "error: ..."
	SubmittedBy     string `json:"submitted_by,omitempty"`
	CancelRequested bool   `json:"cancel_requested,omitempty"`
	Error           string `json:"error,omitempty"`
	Warning         string `json:"warning,omitempty"`
}

// Terminal reports whether the job has ended.
func (j Job) Terminal() bool {
	return j.State == "succeeded" || j.State == "failed" || j.State == "cancelled"
}

// Percent is the share of its tasks done, 0 to 100.
func (j Job) Percent() int {
	if j.TasksTotal == 0 {
		if j.State == "succeeded" {
			return 100
		}
		return 0
	}
	return j.TasksDone * 100 / j.TasksTotal
}

// JobDetail is a job and its tasks.
type JobDetail struct {
	Job   Job    `json:"job"`
	Tasks []Task `json:"tasks"`
	// MoreTasks: the job has tasks beyond Tasks.
	MoreTasks bool `json:"more_tasks,omitempty"`
	// TasksCleaned: the job has finished and its task records are gone
	// (only its final counters remain); Tasks is empty.
	TasksCleaned bool `json:"tasks_cleaned,omitempty"`
}

// Task is one task of a job.
type Task struct {
	Task       int       `json:"task"`
	Bucket     int       `json:"bucket"` // -1 before it first runs
	State      string    `json:"state"`  // pending, running, done
	Worker     string    `json:"worker,omitempty"`
	Attempts   int       `json:"attempts"`
	Failures   int       `json:"failures"`
	Lost       int       `json:"lost"`
	Backups    int       `json:"backups"`
	Started    time.Time `json:"started,omitzero"`
	Finished   time.Time `json:"finished,omitzero"`
	Seconds    float64   `json:"seconds,omitempty"`
	EventsRead int64     `json:"events_read"`
	BytesRead  int64     `json:"bytes_read"`
	LastError  string    `json:"last_error,omitempty"`
	// Runs are its attempts, ended (as far as recorded) and running, in
	// order.
	Runs []Attempt `json:"runs,omitempty"`
}

// Attempt is one attempt of a task.
type Attempt struct {
	N       int       `json:"n"`
	Worker  string    `json:"worker"`
	Backup  bool      `json:"backup,omitempty"`
	Started time.Time `json:"started"`
	Ended   time.Time `json:"ended,omitzero"`
	Outcome string    `json:"outcome"` // running, ok, duplicate, failed, lost, cancelled
}

// Worker is a registered worker.
type Worker struct {
	ID          string `json:"id"`
	Addr        string `json:"addr"`
	Host        string `json:"host,omitempty"`
	PID         int    `json:"pid,omitempty"`
	Parallelism int    `json:"parallelism"`
	Running     int    `json:"running"` // attempts leased to it now
	// TasksDone and TasksFailed count the attempts it finished and failed
	// since it started, as its registration last reported them.
	TasksDone   int64     `json:"tasks_done"`
	TasksFailed int64     `json:"tasks_failed"`
	Draining    bool      `json:"draining,omitempty"`
	Started     time.Time `json:"started"`
	// LastHeartbeat is when its registration lease was last renewed, as
	// far as the lease's remaining TTL tells; zero if unknown.
	LastHeartbeat time.Time     `json:"last_heartbeat,omitzero"`
	TTL           time.Duration `json:"ttl_ns,omitempty"`
}

// Schedule is the scheduler's settings and windows.
type Schedule struct {
	Enabled  bool          `json:"enabled"`
	Window   time.Duration `json:"window_ns"`
	Lateness time.Duration `json:"lateness_ns"`
	Out      string        `json:"out,omitempty"`
	Windows  []Window      `json:"windows"`
	More     bool          `json:"more,omitempty"`
}

// Window is one window of the scheduler.
type Window struct {
	From     time.Time `json:"from"`
	To       time.Time `json:"to"`
	Job      string    `json:"job"`
	State    string    `json:"state"` // running, done, failed
	Input    string    `json:"input"` // fingerprint of the lake data it read
	Runs     int       `json:"runs"`
	Failures int       `json:"failures"` // in a row
	Error    string    `json:"error,omitempty"`
	Updated  time.Time `json:"updated"`
	// Provisional: its result was published before the allowed lateness
	// passed (final=false) and is not finalized yet (--provisional).
	Provisional bool `json:"provisional,omitempty"`
}

// Reruns is how often the window ran again after its first run.
func (w Window) Reruns() int { return max(0, w.Runs-1) }

// Ingest is the lake's sources as their watermark records show them.
type Ingest struct {
	Lake    string   `json:"lake"`
	Sources []Source `json:"sources"`
	More    bool     `json:"more,omitempty"`
	// IdleAfter: a source that committed nothing for this long does not
	// hold the scheduler's watermark back.
	IdleAfter time.Duration `json:"idle_after_ns"`
}

// Source is one ingest source (a Kafka partition, a file).
type Source struct {
	Source     string    `json:"source"`
	Seq        uint64    `json:"seq"` // commits so far
	End        int64     `json:"end"` // source position committed up to
	Watermark  time.Time `json:"watermark,omitzero"`
	LastCommit time.Time `json:"last_commit"`
}
