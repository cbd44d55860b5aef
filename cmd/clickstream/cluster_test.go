package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/dataco/clickstream/coordinator"
	"github.com/dataco/clickstream/internal/cluster"
	"github.com/dataco/clickstream/internal/cluster/clustertest"
	"github.com/dataco/clickstream/internal/lake/laketest"
	"github.com/dataco/clickstream/internal/results"
	"github.com/dataco/clickstream/internal/schema"
	pb "github.com/dataco/clickstream/proto/clickstream/v1"
	"github.com/dataco/clickstream/worker"
)

var (
	testFrom = time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	testTo   = time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)
)

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// TestLocalClusterMatchesReference runs jobs on a coordinator and three
// workers over loopback gRPC with an embedded etcd, on random data, and
// compares each result with aggregate.Compute over all events at once.
// dialCluster is a client of lc's coordinator, closed after the test.
func dialCluster(t *testing.T, lc *localCluster) *coordinator.Client {
	t.Helper()
	c, err := coordinator.Dial(lc.Coordinator.Addr(), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestLocalClusterMatchesReference(t *testing.T) {
	ctx := context.Background()
	lc, err := startLocalCluster(ctx, localClusterConfig{Workers: 3, Parallelism: 2, Logger: testLogger(t), LakeRoots: anyFile, OutputRoots: anyFile})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(lc.Close)
	c := dialCluster(t, lc)

	for _, tc := range []struct {
		name                   string
		seed                   uint64
		users, events, buckets int
		format                 pb.OutputFormat
	}{
		{"small", 1, 50, 2000, 4, pb.OutputFormat_OUTPUT_FORMAT_NDJSON},
		{"many-buckets", 2, 400, 30000, 16, pb.OutputFormat_OUTPUT_FORMAT_NDJSON},
		{"csv", 3, 100, 5000, 8, pb.OutputFormat_OUTPUT_FORMAT_CSV},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := laketest.NewFile(t)
			events := clustertest.Events(tc.seed, tc.users, tc.events, testFrom, testTo)
			clustertest.WriteLake(t, src, tc.buckets, 3, events)
			out := laketest.NewFile(t)
			j := submitAndWait(t, c, &pb.JobSpec{
				From: timestamppb.New(testFrom), To: timestamppb.New(testTo),
				OutUri: out.URI(), LakeUri: src.URI(), Format: tc.format,
			})
			if j.GetState() != pb.JobState_JOB_STATE_SUCCEEDED {
				t.Fatalf("job %s: %s", coordinator.StateName(j.GetState()), j.GetError())
			}
			got, meta, err := results.ReadResult(ctx, out)
			if err != nil {
				t.Fatal(err)
			}
			want := clustertest.Reference(events, testFrom, testTo, 30*time.Minute)
			if !slices.EqualFunc(got, want, schema.EqualMetrics) {
				t.Fatalf("result differs from the reference: %d rows, want %d", len(got), len(want))
			}
			if got[0].Revision != meta.Revision || got[0].Final || got[0].Watermark != nil {
				t.Errorf("row %+v: a submitted job's result is revision %d, not final, without a watermark", got[0], meta.Revision)
			}
			if meta.Partitions != tc.buckets || int(j.GetProgress().GetTasksTotal()) != tc.buckets {
				t.Errorf("partitions %d, tasks %d; want %d", meta.Partitions, j.GetProgress().GetTasksTotal(), tc.buckets)
			}
			if meta.EventsRead == 0 || meta.EventsRead != j.GetProgress().GetEventsRead() {
				t.Errorf("events read: meta %d, status %d", meta.EventsRead, j.GetProgress().GetEventsRead())
			}
			// Partials and plan are cleaned up after the commit.
			waitFor(t, "job leftovers removed", func() bool {
				objs, err := out.List(ctx, results.JobsPrefix)
				return err == nil && len(objs) == 0
			})
		})
	}
}

func submitAndWait(t *testing.T, c *coordinator.Client, spec *pb.JobSpec) *pb.Job {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	j, err := c.Submit(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	j, err = c.Wait(ctx, j.GetId(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRunCommand runs `clickstream run` end to end, then again over the
// same output, which replaces the result whole.
func TestRunCommand(t *testing.T) {
	src := laketest.NewFile(t)
	events := clustertest.Events(7, 100, 5000, testFrom, testTo)
	clustertest.WriteLake(t, src, 8, 2, events)
	out := laketest.NewFile(t)
	args := []string{"--lake", src.URI(), "--from", testFrom.Format(time.RFC3339), "--to", testTo.Format(time.RFC3339), "--out", out.URI(), "--workers", "2"}
	var stdout bytes.Buffer
	if err := runLocal(context.Background(), args, &stdout); err != nil {
		t.Fatalf("run: %v\n%s", err, stdout.String())
	}
	if !strings.Contains(stdout.String(), "succeeded") || !strings.Contains(stdout.String(), "rows:") {
		t.Errorf("summary:\n%s", stdout.String())
	}
	first, err := results.ReadMeta(context.Background(), out)
	if err != nil {
		t.Fatal(err)
	}
	stdout.Reset()
	if err := runLocal(context.Background(), append(args, "--format", "csv"), &stdout); err != nil {
		t.Fatalf("second run: %v", err)
	}
	got, meta, err := results.ReadResult(context.Background(), out)
	if err != nil {
		t.Fatal(err)
	}
	if meta.Format != results.CSV || meta.Previous != first.Run || meta.Job == first.Job {
		t.Errorf("second result: format %s, previous %q (want %q)", meta.Format, meta.Previous, first.Run)
	}
	if want := clustertest.Reference(events, testFrom, testTo, 30*time.Minute); !slices.EqualFunc(got, want, schema.EqualMetrics) {
		t.Errorf("second result differs from the reference")
	}
	if meta.Revision != first.Revision+1 || got[0].Revision != meta.Revision {
		t.Errorf("second result: revision %d (rows %d), first %d", meta.Revision, got[0].Revision, first.Revision)
	}
}

// TestRunEmptyWindow: a window without data succeeds with an empty result
// and a warning.
func TestRunEmptyWindow(t *testing.T) {
	src := laketest.NewFile(t)
	clustertest.WriteLake(t, src, 4, 1, clustertest.Events(1, 10, 100, testFrom, testTo))
	out := laketest.NewFile(t)
	from := testFrom.Add(-72 * time.Hour)
	args := []string{"--lake", src.URI(), "--from", from.Format(time.RFC3339), "--to", from.Add(time.Hour).Format(time.RFC3339), "--out", out.URI(), "--workers", "1"}
	var stdout bytes.Buffer
	if err := runLocal(context.Background(), args, &stdout); err != nil {
		t.Fatalf("run: %v", err)
	}
	if !strings.Contains(stdout.String(), "warning:") {
		t.Errorf("no warning in summary:\n%s", stdout.String())
	}
	rows, meta, err := results.ReadResult(context.Background(), out)
	if err != nil || len(rows) != 0 || meta.Rows != 0 || meta.Warning == "" {
		t.Fatalf("rows %d, meta %+v, err %v", len(rows), meta, err)
	}
}

// TestClusterCommandErrors: bad ranges and times are usage errors found
// before any network call; an unreachable coordinator fails fast.
func TestClusterCommandErrors(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		cmd  func(context.Context, []string, *bytes.Buffer) error
		args []string
		want string
	}{
		{"to before from", submitCmd, []string{"--from", "2026-11-27T03:00:00Z", "--to", "2026-11-27T00:00:00Z", "--out", "file:///tmp/x"}, "bad time range"},
		{"empty range", submitCmd, []string{"--from", "2026-11-27T03:00:00Z", "--to", "2026-11-27T03:00:00Z", "--out", "file:///tmp/x"}, "bad time range"},
		{"unparsable", submitCmd, []string{"--from", "2026-11-27", "--to", "2026-11-28T00:00:00Z", "--out", "file:///tmp/x"}, "not an RFC 3339 time"},
		{"no out", submitCmd, []string{"--from", "2026-11-27T00:00:00Z", "--to", "2026-11-28T00:00:00Z"}, "--out is required"},
		{"run no lake", runCmd, []string{"--from", "2026-11-27T00:00:00Z", "--to", "2026-11-28T00:00:00Z", "--out", "file:///tmp/x"}, "--lake is required"},
		{"cancel no job", cancelCmd, nil, "exactly one job"},
		{"coordinator on every interface", coordinatorCmd, []string{"--listen", ":7400", "--etcd", "http://127.0.0.1:1"}, "--insecure"},
		{"worker on every interface", workerCmd, []string{"--listen", "0.0.0.0:7401", "--etcd", "http://127.0.0.1:1"}, "--insecure"},
		{"https etcd without its CA", workerCmd, []string{"--etcd", "https://127.0.0.1:1", "--lake-root", "file:///l", "--output-root", "file:///o"}, "--etcd-ca"},
		{"http etcd with a CA", coordinatorCmd, []string{"--etcd", "http://127.0.0.1:1", "--etcd-ca", "/ca.pem"}, "use https://"},
		{"etcd certificate without key", workerCmd, []string{"--etcd", "https://127.0.0.1:1", "--etcd-ca", "/ca.pem", "--etcd-cert", "/c.pem", "--lake-root", "file:///l", "--output-root", "file:///o"}, "--etcd-cert and --etcd-key go together"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cmd(ctx, tc.args, &bytes.Buffer{})
			var ue usageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want a usage error containing %q", err, tc.want)
			}
		})
	}

	t.Run("unreachable coordinator", func(t *testing.T) {
		start := time.Now()
		err := runSubmit(ctx, []string{"--coordinator", "127.0.0.1:1", "--from", "2026-11-27T00:00:00Z",
			"--to", "2026-11-28T00:00:00Z", "--out", "file:///tmp/x", "--wait"}, &bytes.Buffer{})
		if !errors.Is(err, coordinator.ErrUnreachable) || !strings.Contains(err.Error(), "127.0.0.1:1") {
			t.Fatalf("err = %v, want ErrUnreachable naming the address", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("took %v to fail", d)
		}
		err = runStatus(ctx, []string{"--coordinator", "127.0.0.1:1"}, &bytes.Buffer{})
		if !errors.Is(err, coordinator.ErrUnreachable) {
			t.Fatalf("status: err = %v", err)
		}
	})
}

func submitCmd(ctx context.Context, args []string, w *bytes.Buffer) error {
	return runSubmit(ctx, args, w)
}
func runCmd(ctx context.Context, args []string, w *bytes.Buffer) error { return runLocal(ctx, args, w) }
func cancelCmd(ctx context.Context, args []string, w *bytes.Buffer) error {
	return runCancel(ctx, args, w)
}

// TestCancelCommand cancels a running job with `clickstream cancel`; the
// workers stop its tasks.
func TestCancelCommand(t *testing.T) {
	ctx := context.Background()
	src := laketest.NewFile(t)
	clustertest.WriteLake(t, src, 4, 1, clustertest.Events(9, 50, 1000, testFrom, testTo))
	lc, err := startLocalCluster(ctx, localClusterConfig{Workers: 2, Parallelism: 2, Logger: testLogger(t),
		LakeRoots: anyFile, OutputRoots: anyFile, Worker: func(_ int, c *worker.Config) { c.Slow = time.Minute }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(lc.Close)
	c := dialCluster(t, lc)
	out := laketest.NewFile(t)
	j, err := c.Submit(ctx, &pb.JobSpec{From: timestamppb.New(testFrom), To: timestamppb.New(testTo), OutUri: out.URI(), LakeUri: src.URI()})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "tasks running", func() bool {
		j, err := c.Get(ctx, j.GetId())
		return err == nil && j.GetProgress().GetTasksRunning() == 4
	})
	var stdout bytes.Buffer
	if err := runCancel(ctx, []string{"--coordinator", lc.Coordinator.Addr(), j.GetId()}, &stdout); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), "cancelled") {
		t.Errorf("cancel output: %q", stdout.String())
	}
	j, err = c.Get(ctx, j.GetId())
	if err != nil || j.GetState() != pb.JobState_JOB_STATE_CANCELLED {
		t.Fatalf("state %v, err %v", j.GetState(), err)
	}
	if _, err := results.ReadMeta(ctx, out); !errors.Is(err, results.ErrNoResult) {
		t.Errorf("cancelled job left a result: %v", err)
	}
	stdout.Reset()
	if err := runStatus(ctx, []string{j.GetId(), "--coordinator", lc.Coordinator.Addr()}, &stdout); err != nil ||
		!strings.Contains(stdout.String(), "state:       cancelled") {
		t.Errorf("status: %v\n%s", err, stdout.String())
	}
	stdout.Reset()
	if err := runStatus(ctx, []string{"--coordinator", lc.Coordinator.Addr()}, &stdout); err != nil || !strings.Contains(stdout.String(), j.GetId()) {
		t.Errorf("status list: %v\n%s", err, stdout.String())
	}
}

// runCommand runs `clickstream <name> <args>` in this process and returns
// the command's error (not the exit status).
func runCommand(ctx context.Context, name string, args []string, stdout io.Writer) error {
	_, err := execute(ctx, append([]string{name}, args...), stdout, io.Discard)
	return err
}

func runLocal(ctx context.Context, args []string, stdout io.Writer) error {
	return runCommand(ctx, "run", args, stdout)
}
func runSubmit(ctx context.Context, args []string, stdout io.Writer) error {
	return runCommand(ctx, "submit", args, stdout)
}
func runStatus(ctx context.Context, args []string, stdout io.Writer) error {
	return runCommand(ctx, "status", args, stdout)
}
func runCancel(ctx context.Context, args []string, stdout io.Writer) error {
	return runCommand(ctx, "cancel", args, stdout)
}

func coordinatorCmd(ctx context.Context, args []string, w *bytes.Buffer) error {
	return runCommand(ctx, "coordinator", args, w)
}
func workerCmd(ctx context.Context, args []string, w *bytes.Buffer) error {
	return runCommand(ctx, "worker", args, w)
}

// TestEtcdAuthCommand: etcd-auth turns authentication on with the roles,
// and run again (authentication on) sets the passwords again as root.
func TestEtcdAuthCommand(t *testing.T) {
	endpoints := clustertest.StartEtcd(t)
	const prefix = "/clickstream/v1"
	files := map[string]string{"root": "r00t-pw", "coordinator": "c00rd-pw", "worker": "w0rker-pw"}
	args := []string{"--etcd", strings.Join(endpoints, ","), "--etcd-prefix", prefix}
	for role, pw := range files {
		args = append(args, "--"+role+"-password-file", clustertest.PasswordFile(t, pw))
	}
	ctx := context.Background()
	for range 2 {
		var out bytes.Buffer
		if err := runCommand(ctx, "etcd-auth", args, &out); err != nil {
			t.Fatalf("etcd-auth: %v", err)
		}
	}
	keys := cluster.Keys{Prefix: prefix}
	w, err := cluster.Dial(ctx, endpoints, cluster.EtcdAuth{User: "clickstream-worker", Password: "w0rker-pw"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Put(ctx, keys.Worker("w1"), "x"); err != nil {
		t.Errorf("worker registers: %v", err)
	}
	if _, err := w.Put(ctx, keys.Job("j1"), "x"); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("worker writes a job: %v, want permission denied", err)
	}
	if _, err := cluster.Dial(ctx, endpoints, cluster.EtcdAuth{}); !errors.Is(err, cluster.ErrEtcdAuth) {
		t.Errorf("anonymous: %v, want ErrEtcdAuth", err)
	}
	if err := runCommand(ctx, "etcd-auth", args[:4], &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "--root-password-file is required") {
		t.Errorf("no password files: %v", err)
	}
}

// anyFile lets a local cluster's workers use any file:// store: the tests'
// stores are temporary folders.
var anyFile = []string{"file:///"}
