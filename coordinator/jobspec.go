package coordinator

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/pflag"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/results"
	pb "github.com/dataco/clickstream/proto/clickstream/v1"
)

// ErrJobSpec is matched by every error of JobSpecFlags.Spec: the flags do
// not describe a job.
var ErrJobSpec = errors.New("coordinator: bad job spec")

// jobSpecError is an error of Spec; its message is err's.
type jobSpecError struct{ err error }

func (e jobSpecError) Error() string   { return e.err.Error() }
func (e jobSpecError) Unwrap() []error { return []error{e.err, ErrJobSpec} }

func specErrorf(format string, a ...any) error { return jobSpecError{fmt.Errorf(format, a...)} }

// JobSpecFlags are the command-line form of a JobSpec, shared by the
// client commands that describe a job (submit, run). Spec checks them on the
// client, before any call, with the messages a user needs; the coordinator
// normalizes what it receives again (see the service).
type JobSpecFlags struct {
	From, To       string // RFC 3339
	Out, Lake      string // store URIs
	Format         string // ndjson or csv
	SessionTimeout time.Duration
	MaxAttempts    int
	EventsSnapshot int64 // 0: the current snapshot
	UserSets       bool
	IncludeBots    bool
}

// AddFlags binds the flags --from, --to, --out, --lake (described by
// lakeUsage), --format, --session-timeout and --max-attempts.
func (f *JobSpecFlags) AddFlags(fs *pflag.FlagSet, lakeUsage string) {
	if f.Format == "" {
		f.Format = "ndjson"
	}
	fs.StringVar(&f.From, "from", f.From, "start of the window, inclusive (RFC 3339, e.g. 2026-11-27T00:00:00Z)")
	fs.StringVar(&f.To, "to", f.To, "end of the window, exclusive (RFC 3339)")
	fs.StringVar(&f.Out, "out", f.Out, "output URI (s3://bucket/prefix or file:///dir); a re-run replaces the result")
	fs.StringVar(&f.Lake, "lake", f.Lake, lakeUsage)
	fs.StringVar(&f.Format, "format", f.Format, "result format: ndjson or csv")
	fs.DurationVar(&f.SessionTimeout, "session-timeout", f.SessionTimeout, "session timeout (0: the coordinator's default, 30m)")
	fs.IntVar(&f.MaxAttempts, "max-attempts", f.MaxAttempts, "failed attempts of a task before the job fails (0: the coordinator's default)")
	fs.Int64Var(&f.EventsSnapshot, "snapshot", f.EventsSnapshot, "read this snapshot of the lake's Iceberg events table (time travel; 0: the current one)")
	fs.BoolVar(&f.UserSets, "user-sets", f.UserSets, "keep each (url, country)'s set of user hashes in the tasks' partials, for roll-ups (unique users are exact without it)")
	fs.BoolVar(&f.IncludeBots, "include-bots", f.IncludeBots, "count bots' events (crawler and automation user agents) in clicks, unique users and time spent; by default they count only in bot_clicks")
}

// Spec validates the flags into a JobSpec; its errors match ErrJobSpec.
// Relative file:// URIs are made absolute here, against the working
// directory of the client, where they were meant.
func (f *JobSpecFlags) Spec() (*pb.JobSpec, error) {
	from, err := parseRFC3339("from", f.From)
	if err != nil {
		return nil, err
	}
	to, err := parseRFC3339("to", f.To)
	if err != nil {
		return nil, err
	}
	if !to.After(from) {
		return nil, specErrorf("bad time range: --to %s must be after --from %s", f.To, f.From)
	}
	if f.Out == "" {
		return nil, specErrorf("--out is required")
	}
	format, err := results.ParseFormat(f.Format)
	if err != nil {
		return nil, specErrorf("--format: %w", err)
	}
	if f.SessionTimeout < 0 || f.MaxAttempts < 0 || f.EventsSnapshot < 0 {
		return nil, specErrorf("--session-timeout, --max-attempts and --snapshot must not be negative")
	}
	s := &pb.JobSpec{
		From: timestamppb.New(from), To: timestamppb.New(to),
		OutUri: AbsFileURI(f.Out), LakeUri: AbsFileURI(f.Lake),
		Format: pb.OutputFormat_OUTPUT_FORMAT_NDJSON, MaxAttempts: int32(f.MaxAttempts), EventsSnapshot: f.EventsSnapshot,
		UserSets: f.UserSets, IncludeBots: f.IncludeBots,
	}
	if format == results.CSV {
		s.Format = pb.OutputFormat_OUTPUT_FORMAT_CSV
	}
	if f.SessionTimeout > 0 {
		s.SessionTimeout = durationpb.New(f.SessionTimeout)
	}
	return s, nil
}

func parseRFC3339(name, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, specErrorf("--%s is required (RFC 3339, e.g. 2026-11-27T00:00:00Z)", name)
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, specErrorf("--%s %q is not an RFC 3339 time such as 2026-11-27T00:00:00Z or 2026-11-27T01:00:00+01:00", name, v)
	}
	return t.UTC(), nil
}

// AbsFileURI turns a bare path ("data/lake", "/data/lake") or a
// file://./rel URI into file:///abs, resolved against the working directory
// of this process (lake.ResolveURI); other URIs, and those it refuses, are
// returned as they are, for the coordinator to judge.
func AbsFileURI(uri string) string {
	if abs, err := lake.ResolveURI(uri); err == nil {
		return abs
	}
	return uri
}
