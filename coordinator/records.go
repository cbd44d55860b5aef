package coordinator

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/dataco/clickstream/internal/results"
	pb "github.com/dataco/clickstream/proto/clickstream/v1"
)

// Job states as stored in etcd.
const (
	statePending = "pending"
	stateRunning = "running"
	stateMerging = "merging"
	// Recorded before the result is written; a cancel cannot enter it.
	stateCommitting = "committing"
	stateSucceeded  = "succeeded"
	stateFailed     = "failed"
	stateCancelled  = "cancelled"
)

func terminal(state string) bool {
	return state == stateSucceeded || state == stateFailed || state == stateCancelled
}

// Task states as stored in etcd. A task without a record is pending.
const (
	taskRunning = "running"
	taskDone    = "done"
)

// Publication statuses recorded in a job; a failed one is "error: ...".
const (
	indexPending = "pending"
	indexOK      = "ok"
)

// publication is a publisher's outcome for a succeeded job.
type publication struct {
	Publisher string `json:"publisher"`
	Status    string `json:"status"`
}

// publishPending reports whether a publisher has yet to publish the job's
// result.
func (r *jobRecord) publishPending() bool {
	for _, p := range r.Publications {
		if p.Status == indexPending {
			return true
		}
	}
	return false
}

// publicationSummary sums up publications in one status: "" if none,
// pending if one is, ok if all are, else the first error with its
// publisher's name.
func publicationSummary(ps []publication) string {
	if len(ps) == 0 {
		return ""
	}
	summary := indexOK
	for _, p := range ps {
		switch {
		case p.Status == indexPending:
			return indexPending
		case p.Status != indexOK && summary == indexOK:
			summary = "error: " + p.Publisher + ": " + strings.TrimPrefix(p.Status, "error: ")
		}
	}
	return summary
}

// jobSpec is a validated, normalized JobSpec.
type jobSpec struct {
	From           time.Time      `json:"from"`
	To             time.Time      `json:"to"`
	Out            string         `json:"out"`
	Lake           string         `json:"lake"`
	Format         results.Format `json:"format"`
	SessionTimeout time.Duration  `json:"session_timeout_ns"`
	MaxAttempts    int            `json:"max_attempts"`
	// EventsSnapshot: the events table snapshot to read; 0: the current.
	EventsSnapshot int64 `json:"events_snapshot,omitempty"`
	// UserSets: the partials carry each key's set of user hashes.
	UserSets bool `json:"user_sets,omitempty"`
	// Watermark is the ingest watermark the scheduler saw when it
	// submitted the job; nil for a job submitted by hand, which knows none.
	Watermark *time.Time `json:"watermark,omitempty"`
	// Final: the watermark had passed the window's end + session timeout
	// + allowed lateness (the scheduler's judgement); false for a
	// provisional window and for a job submitted by hand.
	Final bool `json:"final,omitempty"`
	// IncludeBots: bots' events count like anyone's (no bot_clicks).
	IncludeBots bool `json:"include_bots,omitempty"`
	// Rollup: the job rolls up the committed windows of the period
	// [From, To) instead of reading events (Lake is then empty).
	Rollup *rollupSpec `json:"rollup,omitempty"`
}

// jobRecord is the value of Keys.Job. Any coordinator creates it (submit)
// and sets CancelRequested; only the leader changes anything else.
type jobRecord struct {
	ID              string    `json:"id"`
	Spec            jobSpec   `json:"spec"`
	State           string    `json:"state"`
	Created         time.Time `json:"created"`
	Started         time.Time `json:"started,omitzero"`
	Finished        time.Time `json:"finished,omitzero"`
	Tasks           int       `json:"tasks"`
	Error           string    `json:"error,omitempty"`
	Warning         string    `json:"warning,omitempty"`
	CancelRequested bool      `json:"cancel_requested,omitempty"`
	// IdempotencyKey is the client's key of the submit that created the
	// job, if it gave one (Keys.Submission).
	IdempotencyKey string `json:"idempotency_key,omitempty"`
	// SubmittedBy names who submitted the job: the SPIFFE URI of the
	// client's certificate under mutual TLS, else "ip:<address>", or
	// "scheduler" for the windows of --schedule.
	SubmittedBy string `json:"submitted_by,omitempty"`
	// MergeAttempt numbers the result commits tried, so that each writes
	// its own run folder.
	MergeAttempt int           `json:"merge_attempt,omitempty"`
	Result       *results.Meta `json:"result,omitempty"`
	// Publications are the publishers' outcomes, set when the job
	// succeeds (pending) and as each publisher ends.
	Publications []publication `json:"publications,omitempty"`
	// Cleaned: the job's folder (plan, partials) is deleted from its
	// output store. A leader takes up a finished job that is not.
	Cleaned bool           `json:"cleaned,omitempty"`
	Final   *finalCounters `json:"final,omitempty"`
}

// finalCounters freeze a finished job's progress, so that its status does
// not depend on task records.
type finalCounters struct {
	Done, Attempts, Retries, Backups int
	EventsRead, BytesRead            int64
}

// taskRecord is the value of Keys.Task, written by the leader when a task
// first starts and whenever it changes.
type taskRecord struct {
	Task     int    `json:"task"`
	Bucket   int    `json:"bucket"`
	State    string `json:"state"`
	Attempts int    `json:"attempts"` // started, backups included; the last attempt's number
	Failures int    `json:"failures"` // attempts that failed with an error
	Lost     int    `json:"lost"`     // attempts lost with their worker
	Backups  int    `json:"backups"`
	// LastError is the last attempt error, for status and for the job
	// error when the task gives up.
	LastError string `json:"last_error,omitempty"`
	// Set when done.
	Worker     string    `json:"worker,omitempty"`
	EventsRead int64     `json:"events_read,omitempty"`
	BytesRead  int64     `json:"bytes_read,omitempty"`
	Seconds    float64   `json:"seconds,omitempty"`
	Started    time.Time `json:"started,omitzero"`
	Finished   time.Time `json:"finished,omitzero"`
	// PartialSHA256 (hex) and PartialBytes are the digest and size of the
	// partial's bytes as the worker that finished the task answered them:
	// the merge takes the stored partial only if it has them. A task
	// recorded done without them is run again by a new leader.
	PartialSHA256 string `json:"partial_sha256,omitempty"`
	PartialBytes  int64  `json:"partial_bytes,omitempty"`
	// History lists the task's last maxHistory ended attempts, oldest
	// first: what the UI's timeline draws.
	History []attemptRecord `json:"history,omitempty"`
}

// attemptRecord is an ended attempt of a task.
type attemptRecord struct {
	N       int       `json:"n"`
	Worker  string    `json:"worker"`
	Backup  bool      `json:"backup,omitempty"`
	Started time.Time `json:"started"`
	Ended   time.Time `json:"ended"`
	Outcome string    `json:"outcome"` // ok, duplicate, failed, lost, cancelled
}

// maxHistory bounds a task record's History.
const maxHistory = 8

// ended records attempt a of the task as ended with outcome at now.
func (r *taskRecord) ended(a *attemptRun, outcome string, now time.Time) {
	r.History = append(r.History, attemptRecord{
		N: a.n, Worker: a.worker.info.ID, Backup: a.backup, Started: a.started, Ended: now.UTC(), Outcome: outcome,
	})
	if n := len(r.History); n > maxHistory {
		r.History = slices.Clone(r.History[n-maxHistory:])
	}
}

// digest returns the partial's recorded digest, if the task is done with
// one.
func (r *taskRecord) digest() (partialDigest, bool) {
	sum, err := hex.DecodeString(r.PartialSHA256)
	if r.State != taskDone || err != nil || len(sum) != sha256.Size || r.PartialBytes < 0 {
		return partialDigest{}, false
	}
	return partialDigest{sha256: [sha256.Size]byte(sum), bytes: r.PartialBytes}, true
}

// partialDigest is what a worker vouched for about the partial it
// committed: the SHA-256 of its bytes, and their number.
type partialDigest struct {
	sha256 [sha256.Size]byte
	bytes  int64
}

// leaseRecord is the value of Keys.Lease: one running attempt, attached to
// the lease of the worker running it.
type leaseRecord struct {
	Worker  string    `json:"worker"`
	Addr    string    `json:"addr"`
	Attempt int       `json:"attempt"`
	Backup  bool      `json:"backup,omitempty"`
	Started time.Time `json:"started"`
}

// plan is a job's task list, fixed when the job starts running and kept in
// the output store (results.JobPrefix + "plan.json"), so that etcd holds
// only small, changing state.
type plan struct {
	Version int    `json:"version"`
	Job     string `json:"job"`
	Lake    string `json:"lake"`
	Buckets int    `json:"buckets"`
	// Snapshot is the Iceberg events table snapshot the plan lists the
	// files of (Config.Planner); 0: the lake's manifests.
	Snapshot int64      `json:"events_snapshot,omitempty"`
	Tasks    []planTask `json:"tasks"`
}

type planTask struct {
	Task   int      `json:"task"`
	Bucket int      `json:"bucket"`
	Files  []string `json:"files"`
	// Sizes are the sizes of Files, in order, as the lake's manifests
	// record them: a worker reads no more of a file, and fails on a file
	// of another size. Plans written before sizes were recorded lack
	// them; loadPlan fills them in from the manifests.
	Sizes  []int64 `json:"sizes,omitempty"`
	Bytes  int64   `json:"bytes"`
	Events int64   `json:"events"`
}

func planKey(job string) string { return results.JobPrefix(job) + "plan.json" }

func decode[T any](data []byte, what string) (*T, error) {
	var v T
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("coordinator: decode %s: %w", what, err)
	}
	return &v, nil
}

func encode(v any) string {
	data, err := json.Marshal(v)
	if err != nil {
		panic(err) // records are plain data
	}
	return string(data)
}

var stateToPB = map[string]pb.JobState{
	statePending:    pb.JobState_JOB_STATE_PENDING,
	stateRunning:    pb.JobState_JOB_STATE_RUNNING,
	stateMerging:    pb.JobState_JOB_STATE_MERGING,
	stateCommitting: pb.JobState_JOB_STATE_COMMITTING,
	stateSucceeded:  pb.JobState_JOB_STATE_SUCCEEDED,
	stateFailed:     pb.JobState_JOB_STATE_FAILED,
	stateCancelled:  pb.JobState_JOB_STATE_CANCELLED,
}

func formatToPB(f results.Format) pb.OutputFormat {
	if f == results.CSV {
		return pb.OutputFormat_OUTPUT_FORMAT_CSV
	}
	return pb.OutputFormat_OUTPUT_FORMAT_NDJSON
}

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// toPB renders a job record and its progress as the API's Job;
// coordinators lists the cluster's coordinators, the leader first.
func (r *jobRecord) toPB(p *pb.JobProgress, coordinators []string) *pb.Job {
	var leader string
	if len(coordinators) > 0 {
		leader = coordinators[0]
	}
	j := &pb.Job{
		Id: r.ID,
		Spec: &pb.JobSpec{
			From: ts(r.Spec.From), To: ts(r.Spec.To), OutUri: r.Spec.Out, LakeUri: r.Spec.Lake,
			Format: formatToPB(r.Spec.Format), SessionTimeout: durationpb.New(r.Spec.SessionTimeout),
			MaxAttempts: int32(r.Spec.MaxAttempts), EventsSnapshot: r.Spec.EventsSnapshot,
			UserSets: r.Spec.UserSets, IncludeBots: r.Spec.IncludeBots, Rollup: r.Spec.Rollup.toPB(),
		},
		State:         stateToPB[r.State],
		Progress:      p,
		Created:       ts(r.Created),
		Started:       ts(r.Started),
		Finished:      ts(r.Finished),
		Error:         r.Error,
		Warning:       r.Warning,
		IndexerStatus: publicationSummary(r.Publications),
		Leader:        leader,
		Coordinators:  coordinators,
	}
	for _, p := range r.Publications {
		j.Publications = append(j.Publications, &pb.Publication{Publisher: p.Publisher, Status: p.Status})
	}
	if m := r.Result; m != nil {
		j.Result = &pb.JobResult{
			SuccessUri: strings.TrimSuffix(r.Spec.Out, "/") + "/" + results.SuccessKey, Run: results.RunsPrefix + m.Run,
			Files: m.Files, Rows: m.Rows, Events: m.EventsInWindow, Revision: m.Revision, Final: m.Final,
			ApproximateRows: int64(m.ApproximateRows), LargestSet: m.LargestSet, LargestSetUsers: m.LargestSetUsers,
		}
	}
	return j
}
