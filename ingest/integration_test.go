package ingest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dataco/clickstream/internal/bots"
	"github.com/dataco/clickstream/internal/event"
	"github.com/dataco/clickstream/internal/icetable"
	"github.com/dataco/clickstream/internal/kafkaauth"
	"github.com/dataco/clickstream/internal/kafkaauth/kafkatest"
	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/lake/laketest"
	"github.com/dataco/clickstream/internal/obs"
)

// The integration tests run against the local stack (make dev-up): Kafka and
// versitygw, found through the environment the stack script writes.

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// clickstreamBinary builds the clickstream command once per test binary.
func clickstreamBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "clickstream-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "clickstream")
		out, err := exec.Command("go", "build", "-race", "-o", binPath, "github.com/dataco/clickstream/cmd/clickstream").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// createTopic creates a fresh topic with the given partition count.
func createTopic(t *testing.T, k kafkatest.Kafka, partitions int32) string {
	t.Helper()
	topic := fmt.Sprintf("test-%s-%d", strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")), time.Now().UnixNano())
	sc := k.Config(t)
	admin, err := sarama.NewClusterAdmin(k.Brokers, sc)
	if err != nil {
		t.Fatalf("kafka admin: %v", err)
	}
	defer admin.Close()
	if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: 1}, false); err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
	t.Cleanup(func() {
		if a, err := sarama.NewClusterAdmin(k.Brokers, sc); err == nil {
			_ = a.DeleteTopic(topic)
			a.Close()
		}
	})
	return topic
}

// genNDJSON runs `clickstream gen` to stdout and returns its lines: the
// exact stream the same flags produce into Kafka.
func genNDJSON(t *testing.T, args ...string) [][]byte {
	t.Helper()
	out, err := exec.Command(clickstreamBinary(t), append([]string{"gen"}, args...)...).Output()
	if err != nil {
		t.Fatalf("clickstream gen: %v", err)
	}
	var lines [][]byte
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		lines = append(lines, bytes.Clone(sc.Bytes()))
	}
	return lines
}

// expected splits raw messages by the contract, and flags the bots' events
// as ingest does.
func expected(lines [][]byte) (valid []event.Event, rejected int) {
	classifier := bots.New(nil)
	for _, l := range lines {
		ev, err := event.Parse(l)
		if err != nil {
			rejected++
			continue
		}
		ev.IsBot = classifier.IsBot(ev.UserAgent)
		valid = append(valid, ev)
	}
	return valid, rejected
}

// produce runs `clickstream gen` with genArgs into topic, through k.
func produce(t *testing.T, k kafkatest.Kafka, topic string, genArgs ...string) {
	t.Helper()
	runCmd(t, slices.Concat([]string{"gen"}, k.Args(), []string{"--topic", topic}, genArgs)...)
}

// kafkaConfig is an ingest configuration that consumes topic through k
// into the lake at lakeURI, in the consumer group named after the topic.
func kafkaConfig(k kafkatest.Kafka, topic, lakeURI string) Config {
	cfg := NewConfig()
	cfg.Brokers, cfg.Kafka, cfg.Topic, cfg.Group, cfg.Lake = k.Brokers, k.Auth, topic, topic, lakeURI
	cfg.S3 = laketest.S3Options()
	return cfg
}

func runCmd(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command(clickstreamBinary(t), args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("clickstream %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func assertLake(t *testing.T, store lake.Store, lines [][]byte) lakeContent {
	t.Helper()
	got := readLake(t, store)
	if err := got.checkChains(); err != nil {
		t.Fatal(err)
	}
	valid, rejected := expected(lines)
	assertSameEvents(t, got.events, valid)
	if len(got.rejected) != rejected {
		t.Fatalf("dead-letter area holds %d records, want %d", len(got.rejected), rejected)
	}
	for _, r := range got.rejected {
		if r.Reason == "" || (r.Raw == "" && r.RawBase64 == "" && r.Reason != string(event.ReasonMalformedJSON)) {
			t.Fatalf("dead letter without reason or raw bytes: %+v", r)
		}
	}
	return got
}

// TestKafkaToS3 is the straight path: gen → Kafka → ingest → versitygw, and
// the lake read back holds every valid event once and every invalid one in
// the dead-letter area with its reason. Kafka is the stack's SASL_SSL
// listener: TLS verified against the stack's CA, SCRAM-SHA-512.
func TestKafkaToS3(t *testing.T) {
	k := kafkatest.SASL(t)
	store := laketest.NewS3(t)
	topic := createTopic(t, k, 4)
	genArgs := []string{"--seed", "7", "--events", "20000", "--invalid-ratio", "0.02"}
	lines := genNDJSON(t, genArgs...)
	produce(t, k, topic, genArgs...)

	cfg := kafkaConfig(k, topic, store.URI())
	cfg.FlushRecords, cfg.FlushInterval, cfg.ExitWhenIdle = 3000, 500*time.Millisecond, 3*time.Second
	cfg.SessionTimeout = 6 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sum, err := Ingest(ctx, cfg, obs.Runtime{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	got := assertLake(t, store, lines)
	if sum.Accepted != int64(len(got.events)) || sum.Rejected != int64(len(got.rejected)) {
		t.Fatalf("summary %v disagrees with the lake (%d events, %d rejected)", sum, len(got.events), len(got.rejected))
	}
	// The summary of a Kafka ingest: rejects by reason, where they went,
	// and the event-time range, as a file ingest's.
	var byReason int64
	for _, n := range sum.RejectedBy {
		byReason += n
	}
	lo, hi := got.events[0].Timestamp, got.events[0].Timestamp
	for _, e := range got.events {
		lo, hi = min(lo, e.Timestamp), max(hi, e.Timestamp)
	}
	if byReason != sum.Rejected || sum.DeadLetters != store.URI()+"/"+lake.RejectedPrefix ||
		sum.FirstEvent.UnixMilli() != lo || sum.LastEvent.UnixMilli() != hi {
		t.Errorf("summary %v: want rejects by reason summing to %d, dead letters in %s/%s, events %d..%d",
			sum, sum.Rejected, store.URI(), lake.RejectedPrefix, lo, hi)
	}
}

// TestKafkaIngestSurvivesKills kills the ingest process again and again —
// at its failpoints (between writing data files and the manifest, and
// between the manifest and the Kafka offset) and, in between, with SIGKILL a
// few commits into a run — while a second consumer of the group joins and
// leaves; the lake ends up with every event exactly once.
//
// No kill depends on a timer: a failpoint run is waited for until its
// failpoint fires, and a plain run is killed once the lake holds a
// seeded-random number of new manifests, so every run does the work the
// test counts on however slowly the machine starts it.
//
// Every process goes through the stack's SASL_SSL listener (TLS, SCRAM).
func TestKafkaIngestSurvivesKills(t *testing.T) {
	k := kafkatest.SASL(t)
	store := laketest.NewS3(t)
	topic := createTopic(t, k, 4)
	genArgs := []string{"--seed", "11", "--events", "60000", "--invalid-ratio", "0.01"}
	lines := genNDJSON(t, genArgs...)
	produce(t, k, topic, genArgs...)

	// Every run publishes to the lake's Iceberg table, through an SQLite
	// catalog beside the test.
	catalogURI := "sqlite://" + filepath.Join(t.TempDir(), "catalog.db")
	ingestArgs := slices.Concat([]string{"ingest"}, k.Args(), []string{"--topic", topic, "--group", topic,
		"--lake", store.URI(), "--catalog", catalogURI, "--flush-records", "1500", "--flush-interval", "200ms",
		"--instance-id", "ingest-a", "--kafka-session-timeout", "6s"})
	rng := rand.New(rand.NewPCG(1, 2))
	// 60,000 events in 4 partitions of at most 1,500 per commit: 40 commits
	// or more. The runs below commit at most ~25 of them, so every
	// failpoint is reached while the topic still has records.
	crashes := []string{"before-manifest:3", "", "after-manifest:2", "", "before-manifest:1", ""}
	const withSecondMember = 3 // the run during which a second consumer joins and leaves

	// A guard, not a timing: far longer than any run takes.
	const guard = 3 * time.Minute
	killed := 0
	for i, crash := range crashes {
		runStart := time.Now()
		before := countManifests(t, store)
		cmd := exec.Command(clickstreamBinary(t), ingestArgs...)
		cmd.Env = append(os.Environ(), EnvCrashAt+"="+crash)
		var stderr lockedBuffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()

		var stopSecond func()
		if i == withSecondMember {
			stopSecond = startSecondMember(t, k, topic, store.URI())
		}
		if crash != "" {
			select {
			case err := <-done: // crashed at its failpoint
				if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
					t.Fatalf("run %d (%s) ended without SIGKILL: %v\n%s", i, crash, err, stderr.String())
				}
			case <-time.After(guard):
				_ = cmd.Process.Kill()
				<-done
				t.Fatalf("run %d never reached its failpoint %s\n%s", i, crash, stderr.String())
			}
		} else {
			want := before + 1 + rng.IntN(3)
			deadline := time.Now().Add(guard)
			for countManifests(t, store) < want {
				select {
				case err := <-done:
					t.Fatalf("run %d exited by itself: %v\n%s", i, err, stderr.String())
				case <-time.After(50 * time.Millisecond):
				}
				if time.Now().After(deadline) {
					_ = cmd.Process.Kill()
					<-done
					t.Fatalf("run %d: the lake never reached %d manifests\n%s", i, want, stderr.String())
				}
			}
			_ = cmd.Process.Kill()
			<-done
		}
		if stopSecond != nil {
			stopSecond()
		}
		killed++
		t.Logf("run %d (%q): killed after %v; %d manifests", i, crash, time.Since(runStart).Round(time.Millisecond), countManifests(t, store))
	}

	// A clean run finishes the topic.
	runCmd(t, append(ingestArgs, "--exit-when-idle", "5s")...)
	got := assertLake(t, store, lines)
	t.Logf("%d kills; %d manifests; %d events; %d rejected", killed, len(got.manifests), len(got.events), len(got.rejected))

	// The before-manifest failpoints left uncommitted files behind, which
	// readers ignore, the table's readers too.
	if orphans := orphanDataFiles(t, store, got); orphans == 0 {
		t.Fatal("no orphaned data files: the before-manifest crash left nothing behind")
	}
	assertTable(t, store, catalogURI, icetable.CatalogOptions{}, got)
}

// startSecondMember runs a second consumer of the group in process until
// the returned function is called; it fails the test if that consumer fails.
func startSecondMember(t *testing.T, k kafkatest.Kafka, topic, lakeURI string) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		cfg := kafkaConfig(k, topic, lakeURI)
		cfg.FlushRecords, cfg.FlushInterval, cfg.SessionTimeout = 1000, 200*time.Millisecond, 6*time.Second
		if _, err := Ingest(ctx, cfg, obs.Runtime{Logger: testLogger(t).With("member", "b")}); err != nil && ctx.Err() == nil {
			t.Errorf("second consumer: %v", err)
		}
	}()
	return func() { cancel(); <-done }
}

// countManifests counts the lake's committed manifests.
func countManifests(t *testing.T, store lake.Store) int {
	t.Helper()
	objs, err := store.List(context.Background(), lake.ManifestsPrefix)
	if err != nil {
		t.Fatal(err)
	}
	return len(objs)
}

// orphanDataFiles counts data files that no manifest names.
func orphanDataFiles(t *testing.T, store lake.Store, c lakeContent) int {
	t.Helper()
	named := map[string]bool{}
	for _, m := range c.manifests {
		for _, f := range m.Files {
			named[f.Key] = true
		}
	}
	objs, err := store.List(context.Background(), lake.EventsPrefix)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, o := range objs {
		if !named[o.Key] && strings.HasPrefix(o.Key, lake.EventsPrefix+"hour=") {
			n++
		}
	}
	return n
}

// TestFileIngestSameOnFileAndS3 ingests one NDJSON file into a file:// lake
// and an s3:// lake: both hold the same events, and a second run adds nothing.
func TestFileIngestSameOnFileAndS3(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs versitygw (make dev-up)")
	}
	lines := genNDJSON(t, "--seed", "3", "--events", "5000", "--invalid-ratio", "0.05")
	path := filepath.Join(t.TempDir(), "events.ndjson")
	if err := os.WriteFile(path, append(bytes.Join(lines, []byte("\n")), '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	fileLake := laketest.NewFile(t)
	s3Lake := laketest.NewS3(t)
	for _, store := range []lake.Store{fileLake, s3Lake} {
		for run := 0; run < 2; run++ {
			out, err := exec.Command(clickstreamBinary(t), "ingest", "--from-file", path, "--lake", store.URI(), "--flush-records", "700").Output()
			if err != nil {
				t.Fatalf("ingest into %s: %v", store.URI(), err)
			}
			valid, rejected := expected(lines)
			want := fmt.Sprintf("accepted=%d rejected=%d", len(valid), rejected)
			if run == 1 {
				want = "accepted=0 rejected=0"
			}
			if !strings.Contains(string(out), want) {
				t.Fatalf("run %d into %s printed %q, want %q", run, store.URI(), out, want)
			}
		}
		assertLake(t, store, lines)
	}
	a, b := readLake(t, fileLake), readLake(t, s3Lake)
	assertSameEvents(t, a.events, b.events)
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.DiscardHandler)
}

// TestKafkaZombieIsFenced makes a real zombie: consumer A stops itself
// (SIGSTOP) with a batch written but its manifest not yet committed; the
// group gives A's partitions to consumer B, which commits past A's batch;
// then A resumes and tries to commit. The conditional manifest fences A, and
// the lake still holds every event exactly once.
func TestKafkaZombieIsFenced(t *testing.T) {
	k := kafkatest.Plaintext(t)
	store := laketest.NewS3(t)
	topic := createTopic(t, k, 2)
	genArgs := []string{"--seed", "13", "--events", "30000", "--invalid-ratio", "0.01"}
	lines := genNDJSON(t, genArgs...)
	produce(t, k, topic, genArgs...)
	// Both consumers publish to the lake's Iceberg table, which must end
	// up holding the topic exactly once for outside readers too.
	catalogURI := "sqlite://" + filepath.Join(t.TempDir(), "catalog.db")
	args := slices.Concat([]string{"ingest"}, k.Args(), []string{"--topic", topic, "--group", topic,
		"--lake", store.URI(), "--flush-records", "2000", "--flush-interval", "200ms", "--kafka-session-timeout", "6s",
		"--catalog", catalogURI, "--table-commit-interval", "100ms"})

	a := exec.Command(clickstreamBinary(t), args...)
	a.Env = append(os.Environ(), EnvCrashAt+"=pause-before-manifest:2", "CLICKSTREAM_LOG_LEVEL=info")
	var aErr lockedBuffer
	a.Stderr = &aErr
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Process.Kill(); _ = a.Wait() })
	waitFor(t, 60*time.Second, "consumer A to stop itself", func() bool { return processState(a.Process.Pid) == "T" })

	// B takes over once A's session times out, and commits past A's batch.
	ctx, cancel := context.WithCancel(context.Background())
	bDone := make(chan error, 1)
	go func() {
		cfg := kafkaConfig(k, topic, store.URI())
		cfg.FlushRecords, cfg.FlushInterval, cfg.SessionTimeout = 2000, 200*time.Millisecond, 6*time.Second
		cfg.Catalog, cfg.TableCommitInterval = catalogURI, 100*time.Millisecond
		_, err := Ingest(ctx, cfg, obs.Runtime{Logger: testLogger(t).With("member", "b")})
		bDone <- err
	}()
	waitFor(t, 90*time.Second, "consumer B to commit the whole topic", func() bool {
		return committedEnd(context.Background(), store) >= int64(len(lines))
	})

	// A wakes up as a zombie and tries to commit its stale batch.
	if err := a.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "zombie A to be fenced", func() bool {
		return strings.Contains(aErr.String(), "commit fenced by another writer")
	})
	_ = a.Process.Signal(syscall.SIGTERM)
	cancel()
	if err := <-bDone; err != nil {
		t.Fatalf("consumer B: %v", err)
	}
	got := assertLake(t, store, lines)
	if orphanDataFiles(t, store, got) == 0 {
		t.Fatal("the zombie's batch left no orphaned files: it was never written")
	}
	assertTable(t, store, catalogURI, icetable.CatalogOptions{}, got)
}

// processState returns the state letter of a process (R, S, T, Z, ...).
func processState(pid int) string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return ""
	}
	return s[i+2 : i+3]
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// lockedBuffer is a bytes.Buffer safe for a writer process and a reader test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestKafkaIngestSIGTERMDrains stops ingest with SIGTERM mid-run: it stops
// consuming, commits what it holds, prints its summary and exits 0; what it
// reports as consumed is exactly what the lake's manifests cover.
func TestKafkaIngestSIGTERMDrains(t *testing.T) {
	k := kafkatest.Plaintext(t)
	store := laketest.NewS3(t)
	topic := createTopic(t, k, 2)
	genArgs := []string{"--seed", "17", "--events", "400000", "--invalid-ratio", "0.01"}
	produce(t, k, topic, genArgs...)

	cmd := exec.Command(clickstreamBinary(t), slices.Concat([]string{"ingest"}, k.Args(), []string{"--topic", topic,
		"--group", topic, "--lake", store.URI(), "--flush-records", "50000", "--flush-interval", "1m"})...)
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Interrupt once the first commit is in: records are in flight, and
	// (flush interval one minute) some are only in memory.
	waitFor(t, 60*time.Second, "a first commit", func() bool { return committedEnd(context.Background(), store) > 0 })
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("ingest after SIGTERM: %v (want exit 0)\n%s", err, stdout.String())
	}
	var accepted, rejected, consumed int64
	if _, err := fmt.Sscanf(strings.TrimSpace(stdout.String()), "ingest: accepted=%d rejected=%d consumed=%d", &accepted, &rejected, &consumed); err != nil {
		t.Fatalf("summary line %q: %v", stdout.String(), err)
	}
	got := readLake(t, store)
	if err := got.checkChains(); err != nil {
		t.Fatal(err)
	}
	if int64(len(got.events)) != accepted || int64(len(got.rejected)) != rejected || accepted+rejected != consumed {
		t.Fatalf("summary accepted=%d rejected=%d consumed=%d, lake holds %d events and %d dead letters",
			accepted, rejected, consumed, len(got.events), len(got.rejected))
	}
	if end := committedEnd(context.Background(), store); end != consumed {
		t.Fatalf("manifests cover %d records, ingest consumed %d", end, consumed)
	}
	if consumed == 400000 {
		t.Log("the whole topic was consumed before SIGTERM arrived; the drain was not exercised mid-stream")
	}
}

// TestKafkaRetentionGapIsReported deletes records from a partition (as
// retention would) after ingest committed some and before it read the
// rest: ingest reports exactly the lost records, in its log and metric, and
// goes on with what Kafka still holds, each record exactly once.
func TestKafkaRetentionGapIsReported(t *testing.T) {
	k := kafkatest.Plaintext(t)
	store := laketest.NewFile(t)
	topic := createTopic(t, k, 1)
	first := []string{"--seed", "11", "--events", "1000", "--invalid-ratio", "0"}
	second := []string{"--seed", "12", "--events", "500", "--invalid-ratio", "0"}
	lines1, lines2 := genNDJSON(t, first...), genNDJSON(t, second...)
	ingest := func() *prometheus.Registry {
		cfg := kafkaConfig(k, topic, store.URI())
		cfg.FlushInterval, cfg.ExitWhenIdle, cfg.SessionTimeout = 500*time.Millisecond, 3*time.Second, 6*time.Second
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		reg := prometheus.NewRegistry()
		if _, err := Ingest(ctx, cfg, obs.Runtime{Logger: testLogger(t), Registerer: reg}); err != nil {
			t.Fatal(err)
		}
		return reg
	}
	produce(t, k, topic, first...)
	ingest()
	produce(t, k, topic, second...)
	const lost = 200
	admin, err := sarama.NewClusterAdmin(k.Brokers, k.Config(t))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := admin.DeleteRecords(topic, map[int32]int64{0: int64(len(lines1) + lost)}); err != nil {
		t.Fatalf("delete records: %v", err)
	}
	reg := ingest()

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var gap float64
	for _, mf := range mfs {
		if mf.GetName() == "clickstream_ingest_retention_gap_records_total" {
			for _, m := range mf.GetMetric() {
				gap += m.GetCounter().GetValue()
			}
		}
	}
	if gap != lost {
		t.Errorf("retention gap metric = %v, want %d", gap, lost)
	}
	assertLake(t, store, append(slices.Clone(lines1), lines2[lost:]...))
}

// TestKafkaWrongPasswordRefused runs `clickstream ingest` and `gen` against
// the stack's SASL_SSL listener with a wrong password, from a file and from
// $CLICKSTREAM_KAFKA_PASSWORD: each exits 1 at once and says that the broker
// refused the authentication, without ever printing the password; Ingest
// in process returns kafkaauth.ErrAuthentication.
func TestKafkaWrongPasswordRefused(t *testing.T) {
	k := kafkatest.SASL(t)
	store := laketest.NewFile(t)
	const wrong = "not-the-password-4711"
	pwFile := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(pwFile, []byte(wrong+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	inFile, inEnv := k, k
	inFile.Auth.PasswordFile = pwFile
	inEnv.Auth.PasswordFile = ""
	for _, tc := range []struct {
		name string
		k    kafkatest.Kafka
		env  []string
	}{
		{"password file", inFile, nil},
		{"password from the environment", inEnv, []string{kafkaauth.EnvPassword + "=" + wrong}},
	} {
		for _, args := range [][]string{
			slices.Concat([]string{"ingest"}, tc.k.Args(), []string{"--topic", "never-read", "--lake", store.URI()}),
			slices.Concat([]string{"gen", "--events", "10"}, tc.k.Args(), []string{"--topic", "never-written"}),
		} {
			t.Run(tc.name+"/"+args[0], func(t *testing.T) {
				cmd := exec.Command(clickstreamBinary(t), args...)
				cmd.Env = append(os.Environ(), tc.env...)
				out, err := cmd.CombinedOutput()
				var ee *exec.ExitError
				if !errors.As(err, &ee) || ee.ExitCode() != 1 {
					t.Fatalf("clickstream %s: %v, want exit status 1\n%s", args[0], err, out)
				}
				if !strings.Contains(string(out), "refused the SASL authentication: wrong user, password or mechanism") {
					t.Errorf("output does not say the authentication was refused:\n%s", out)
				}
				if strings.Contains(string(out), wrong) {
					t.Errorf("output holds the password:\n%s", out)
				}
			})
		}
	}

	cfg := kafkaConfig(k, "never-read", store.URI())
	cfg.Kafka.PasswordFile, cfg.Kafka.Password = "", wrong
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var logged bytes.Buffer
	_, err := Ingest(ctx, cfg, obs.Runtime{Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	if !errors.Is(err, kafkaauth.ErrAuthentication) {
		t.Fatalf("Ingest = %v, want kafkaauth.ErrAuthentication", err)
	}
	if strings.Contains(err.Error()+logged.String(), wrong) {
		t.Fatalf("the error or the log holds the password: %v\n%s", err, logged.String())
	}
}
