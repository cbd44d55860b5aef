package coordinator

import (
	"fmt"
	"io"
	"strings"
	"time"

	pb "github.com/dataco/clickstream/proto/clickstream/v1"
)

// Progress renders job updates on a terminal as one live line (a bar with
// tasks done/total, workers, retries and an ETA), or elsewhere as one plain
// line per change.
type Progress struct {
	w        io.Writer
	tty      bool
	last     string
	drawn    int // width of the live line
	now      func() time.Time
	lastDone int32
}

// NewProgress returns a renderer writing to w; tty selects the live line.
func NewProgress(w io.Writer, tty bool) *Progress {
	return &Progress{w: w, tty: tty, now: time.Now, lastDone: -1}
}

// Update renders j.
func (p *Progress) Update(j *pb.Job) {
	pr := j.GetProgress()
	state := StateName(j.GetState())
	total, done := pr.GetTasksTotal(), pr.GetTasksDone()
	var b strings.Builder
	fmt.Fprintf(&b, "%s %-9s", j.GetId(), state)
	if p.tty {
		const width = 24
		fill := 0
		if total > 0 {
			fill = int(int64(done) * width / int64(total))
		} else if Terminal(j.GetState()) {
			fill = width
		}
		b.WriteString(" [" + strings.Repeat("#", fill) + strings.Repeat(".", width-fill) + "]")
	}
	fmt.Fprintf(&b, " %d/%d tasks, %d running, %d workers, %d retries", done, total, pr.GetTasksRunning(), pr.GetWorkers(), pr.GetRetries())
	if n := pr.GetBackups(); n > 0 {
		fmt.Fprintf(&b, ", %d backups", n)
	}
	if j.GetState() == pb.JobState_JOB_STATE_RUNNING && pr.GetClusterWorkers() == 0 {
		b.WriteString(" - no worker in the cluster: start `clickstream worker`")
	}
	key := b.String()
	if eta := p.eta(j); eta != "" {
		fmt.Fprintf(&b, ", ETA %s", eta)
	}
	line := b.String()
	if !p.tty {
		if key != p.last { // one line per change, not per refresh
			fmt.Fprintln(p.w, line)
			p.last = key
		}
		return
	}
	pad := max(0, p.drawn-len(line))
	fmt.Fprintf(p.w, "\r%s%s", line, strings.Repeat(" ", pad))
	p.drawn = len(line)
}

// eta extrapolates the time left from the tasks done since the job
// started.
func (p *Progress) eta(j *pb.Job) string {
	pr := j.GetProgress()
	if j.GetState() != pb.JobState_JOB_STATE_RUNNING || pr.GetTasksDone() == 0 || j.GetStarted() == nil {
		return ""
	}
	elapsed := p.now().Sub(j.GetStarted().AsTime())
	left := pr.GetTasksTotal() - pr.GetTasksDone()
	d := time.Duration(float64(elapsed) / float64(pr.GetTasksDone()) * float64(left))
	if d < time.Second {
		return "<1s"
	}
	return d.Round(time.Second).String()
}

// Done ends the live line.
func (p *Progress) Done() {
	if p.tty && p.drawn > 0 {
		fmt.Fprintln(p.w)
		p.drawn = 0
	}
}

// StateName is the lower-case name of a job state: "running".
func StateName(s pb.JobState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "JOB_STATE_"))
}

// FormatSummary writes the outcome of a finished job in a few lines.
func FormatSummary(w io.Writer, j *pb.Job) {
	pr := j.GetProgress()
	took := ""
	if j.GetStarted() != nil && j.GetFinished() != nil {
		took = " in " + j.GetFinished().AsTime().Sub(j.GetStarted().AsTime()).Round(time.Millisecond).String()
	}
	fmt.Fprintf(w, "job %s %s%s\n", j.GetId(), StateName(j.GetState()), took)
	if r := j.GetResult(); r != nil {
		fmt.Fprintf(w, "  rows:        %d\n", r.GetRows())
		fmt.Fprintf(w, "  revision:    %s\n", revisionString(r))
		fmt.Fprintf(w, "  events:      %d read, %d in window\n", pr.GetEventsRead(), r.GetEvents())
		if j.GetSpec().GetIncludeBots() {
			fmt.Fprintf(w, "  bots:        included in clicks, users and time spent\n")
		}
		fmt.Fprintf(w, "  result:      %s (%d files under %s)\n", r.GetSuccessUri(), len(r.GetFiles()), r.GetRun())
		if ru := j.GetSpec().GetRollup(); ru != nil {
			fmt.Fprintf(w, "  roll-up:     %s; %d exact, %d approximate rows; largest set %s: %d users (%d bytes as a union)\n",
				ru.GetGrain(), r.GetRows()-r.GetApproximateRows(), r.GetApproximateRows(), r.GetLargestSet(), r.GetLargestSetUsers(), 8*r.GetLargestSetUsers())
		}
	}
	what := "user buckets"
	if j.GetSpec().GetRollup() != nil {
		what = "key ranges"
	}
	fmt.Fprintf(w, "  partitions:  %d (%s)\n", pr.GetTasksTotal(), what)
	fmt.Fprintf(w, "  attempts:    %d (%d retries, %d backups)\n", pr.GetAttempts(), pr.GetRetries(), pr.GetBackups())
	for _, p := range j.GetPublications() {
		fmt.Fprintf(w, "  published:   %s: %s\n", p.GetPublisher(), p.GetStatus())
	}
	if s := j.GetWarning(); s != "" {
		fmt.Fprintf(w, "  warning:     %s\n", s)
	}
	if s := j.GetError(); s != "" {
		fmt.Fprintf(w, "  error:       %s\n", s)
	}
}

// revisionString is a result's revision and whether it was final, e.g.
// "2 (final)", "1 (provisional)"; a result committed before revisions
// existed says "-".
func revisionString(r *pb.JobResult) string {
	if r.GetRevision() == 0 {
		return "-"
	}
	if r.GetFinal() {
		return fmt.Sprintf("%d (final)", r.GetRevision())
	}
	return fmt.Sprintf("%d (provisional)", r.GetRevision())
}

// FormatStatus writes everything about a job.
func FormatStatus(w io.Writer, j *pb.Job) {
	s, pr := j.GetSpec(), j.GetProgress()
	fmt.Fprintf(w, "job:         %s\n", j.GetId())
	fmt.Fprintf(w, "state:       %s\n", StateName(j.GetState()))
	fmt.Fprintf(w, "window:      [%s, %s)\n", fmtTime(s.GetFrom().AsTime()), fmtTime(s.GetTo().AsTime()))
	fmt.Fprintf(w, "lake:        %s\n", s.GetLakeUri())
	fmt.Fprintf(w, "out:         %s (%s)\n", s.GetOutUri(), strings.ToLower(strings.TrimPrefix(s.GetFormat().String(), "OUTPUT_FORMAT_")))
	fmt.Fprintf(w, "tasks:       %d/%d done, %d running, %d pending\n", pr.GetTasksDone(), pr.GetTasksTotal(), pr.GetTasksRunning(), pr.GetTasksPending())
	fmt.Fprintf(w, "attempts:    %d (%d retries, %d backups)\n", pr.GetAttempts(), pr.GetRetries(), pr.GetBackups())
	if !Terminal(j.GetState()) {
		fmt.Fprintf(w, "workers:     %d on this job, %d in the cluster\n", pr.GetWorkers(), pr.GetClusterWorkers())
	}
	fmt.Fprintf(w, "events read: %d (%d bytes)\n", pr.GetEventsRead(), pr.GetBytesRead())
	fmt.Fprintf(w, "created:     %s\n", fmtTime(j.GetCreated().AsTime()))
	if j.GetStarted() != nil {
		fmt.Fprintf(w, "started:     %s\n", fmtTime(j.GetStarted().AsTime()))
	}
	if j.GetFinished() != nil {
		fmt.Fprintf(w, "finished:    %s\n", fmtTime(j.GetFinished().AsTime()))
	}
	if r := j.GetResult(); r != nil {
		fmt.Fprintf(w, "result:      %s: %d rows, %d events in window, revision %s\n", r.GetSuccessUri(), r.GetRows(), r.GetEvents(), revisionString(r))
	}
	for _, p := range j.GetPublications() {
		fmt.Fprintf(w, "published:   %s: %s\n", p.GetPublisher(), p.GetStatus())
	}
	if v := j.GetWarning(); v != "" {
		fmt.Fprintf(w, "warning:     %s\n", v)
	}
	if v := j.GetError(); v != "" {
		fmt.Fprintf(w, "error:       %s\n", v)
	}
	if v := j.GetLeader(); v != "" {
		fmt.Fprintf(w, "leader:      %s\n", v)
	}
}

// FormatList writes one line per job.
func FormatList(w io.Writer, jobs []*pb.Job) {
	fmt.Fprintf(w, "%-26s %-10s %-11s %-41s %-9s %s\n", "JOB", "STATE", "TASKS", "WINDOW", "INDEXED", "OUT")
	for _, j := range jobs {
		s, pr := j.GetSpec(), j.GetProgress()
		indexed := "-"
		switch st := j.GetIndexerStatus(); {
		case st == indexOK:
			indexed = "yes"
		case st == indexPending:
			indexed = "pending"
		case st != "":
			indexed = "failed"
		}
		fmt.Fprintf(w, "%-26s %-10s %-11s %-41s %-9s %s\n", j.GetId(), StateName(j.GetState()),
			fmt.Sprintf("%d/%d", pr.GetTasksDone(), pr.GetTasksTotal()),
			fmtTime(s.GetFrom().AsTime())+"/"+fmtTime(s.GetTo().AsTime()), indexed, s.GetOutUri())
	}
}

func fmtTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }
