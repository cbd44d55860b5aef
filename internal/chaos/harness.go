package chaos

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/IBM/sarama"

	"github.com/dataco/clickstream/coordinator"
	"github.com/dataco/clickstream/internal/faultproxy"
	"github.com/dataco/clickstream/internal/lake"
)

// Defaults of Config.
const (
	DefaultEvents     = 30_000
	DefaultWindows    = 3
	DefaultJobTimeout = 3 * time.Minute
)

// Config configures a Harness.
type Config struct {
	// Binary is the clickstream binary to run.
	Binary string
	// Brokers and ESURL are the shared stack's Kafka and Elasticsearch:
	// each run uses a fresh topic and a fresh alias there.
	Brokers string
	ESURL   string
	// Dir holds every run's data and logs.
	Dir string
	// Seed fixes the input and every fault schedule.
	Seed uint64
	// Events is the number of messages generated for every run; Windows
	// the number of jobs (consecutive windows of WindowLength) per run.
	Events  int
	Windows int
	// JobTimeout bounds a run's job phase before faults are healed.
	JobTimeout time.Duration
	// StackFaults allows faults that stop the shared stack's services
	// (Kafka, Elasticsearch): never set it where other tests share them.
	StackFaults bool
	// StackScript is deploy/local/stack.sh, for the stack faults.
	StackScript string
	Logger      *slog.Logger
}

// Validate fills defaults and checks the configuration.
func (c *Config) Validate() error {
	if c.Events <= 0 {
		c.Events = DefaultEvents
	}
	if c.Windows <= 0 {
		c.Windows = DefaultWindows
	}
	if c.JobTimeout <= 0 {
		c.JobTimeout = DefaultJobTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	var errs []error
	if c.Binary == "" {
		errs = append(errs, errors.New("no clickstream binary"))
	}
	if c.Brokers == "" {
		errs = append(errs, errors.New("no Kafka brokers (CLICKSTREAM_KAFKA_BROKERS)"))
	}
	if c.ESURL == "" {
		errs = append(errs, errors.New("no Elasticsearch URL (CLICKSTREAM_ES_URL)"))
	}
	if c.Dir == "" {
		errs = append(errs, errors.New("no work dir"))
	}
	if c.StackFaults && c.StackScript == "" {
		errs = append(errs, errors.New("stack faults need the stack script"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("chaos: invalid config: %w", err)
	}
	return nil
}

// Harness runs fault classes against real processes and reports.
type Harness struct {
	cfg    Config
	creds  Credentials
	input  *Input
	token  string // makes topic and alias names unique per harness
	logger *slog.Logger

	baseline *Outcome
}

// New prepares a harness: it checks the configuration and generates the
// input.
func New(cfg Config) (*Harness, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	creds, err := CredentialsFromEnv()
	if err != nil {
		return nil, err
	}
	if _, err := EtcdBinary(); err != nil {
		return nil, err
	}
	if _, err := VersitygwBinary(); err != nil {
		return nil, err
	}
	in, err := NewInput(int64(cfg.Seed%1_000_000_007)+1, cfg.Events, cfg.Windows)
	if err != nil {
		return nil, err
	}
	var b [4]byte
	for i := range b {
		b[i] = "abcdefghijklmnopqrstuvwxyz"[rand.IntN(26)] // not from the seed: names only
	}
	return &Harness{cfg: cfg, creds: creds, input: in, token: string(b[:]), logger: cfg.Logger}, nil
}

// Input is the harness's input data.
func (h *Harness) Input() *Input { return h.input }

// subSeed derives the seed of run n of a class from the harness seed.
func subSeed(seed uint64, class string, n int) uint64 {
	f := fnv.New64a()
	fmt.Fprintf(f, "%d/%s/%d", seed, class, n)
	return f.Sum64()
}

// Baseline runs the pipeline without faults; later runs are compared with
// it.
func (h *Harness) Baseline(ctx context.Context) (*Outcome, error) {
	o := h.RunClass(ctx, NoFaults, 0)
	if o.Err != nil {
		return o, fmt.Errorf("chaos: fault-free run: %w", o.Err)
	}
	if !o.Identical || o.Lost != 0 || o.Duplicated != 0 || o.StatusMismatches != 0 || o.Unfinished != 0 {
		return o, fmt.Errorf("chaos: the fault-free run is wrong: %s", o.Summary())
	}
	h.baseline = o
	return o, nil
}

// RunClass runs the pipeline once under fault class c; n numbers the run
// within its class (it picks the run's seed).
func (h *Harness) RunClass(ctx context.Context, c *Class, n int) (o *Outcome) {
	seed := subSeed(h.cfg.Seed, c.Name, n)
	id := fmt.Sprintf("%s-%d", c.Name, n)
	o = &Outcome{Class: c.Name, Run: id, Seed: seed}
	logger := h.logger.With("run", id)
	dir := filepath.Join(h.cfg.Dir, id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		o.Err = err
		return o
	}
	r := &Run{
		ID: id, Seed: seed, Rand: rand.New(rand.NewPCG(seed, 0xc4a05)), SubmitRand: rand.New(rand.NewPCG(seed, 0x5b317)),
		dir: dir, h: h, logger: logger,
		Sup:     NewSupervisor(dir, logger),
		Topic:   "chaos-" + h.token + "-" + id,
		Lake:    "s3://lake/clicks",
		OutBase: "s3://results/" + id,
		Alias:   strings.ToLower("chaos-" + h.token + "-" + id),
	}
	r.Group = r.Topic
	defer func() {
		if p := recover(); p != nil {
			o.Err = fmt.Errorf("panic: %v", p)
		}
		r.Close()
		h.cleanupStack(r)
		o.Dir = dir
		if o.Err != nil {
			logger.Error("run failed", "err", o.Err, "logs", dir)
		}
	}()
	if c.Topology != nil {
		r.topo = c.Topology(r.Rand)
	}
	r.topo.defaults()
	logger.Info("run", "class", c.Name, "seed", seed, "topology", fmt.Sprintf("%+v", r.topo))
	if err := h.setup(ctx, r); err != nil {
		o.Err = err
		return o
	}
	start := time.Now()
	if err := h.ingest(ctx, r, c); err != nil {
		o.Err = err
		return o
	}
	if err := h.jobs(ctx, r, c); err != nil {
		o.Err = err
	}
	o.Duration = time.Since(start)
	o.Injections = int(r.injections.Load() + r.Proxy.Injected())
	vctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Minute)
	defer cancel()
	h.verify(vctx, r, o)
	r.mu.Lock()
	o.Notes = append(o.Notes, r.notes...)
	r.mu.Unlock()
	return o
}

// setup starts the run's etcd, versitygw and S3 proxy, creates its
// buckets and produces its topic.
func (h *Harness) setup(ctx context.Context, r *Run) error {
	var err error
	if r.Etcd, err = StartEtcd(ctx, r.Sup, filepath.Join(r.dir, "etcd"), r.topo.EtcdMembers); err != nil {
		return err
	}
	if r.S3, err = StartS3(ctx, r.Sup, filepath.Join(r.dir, "s3"), h.creds); err != nil {
		return err
	}
	if r.Proxy, err = faultproxy.NewHTTP(r.S3.URL, r.Seed, r.logger); err != nil {
		return err
	}
	for _, b := range []string{"s3://lake", "s3://results"} {
		if _, err := lake.Open(ctx, b, lake.S3Options{Endpoint: r.S3.URL, CreateBucket: true}); err != nil {
			return fmt.Errorf("chaos: bucket %s: %w", b, err)
		}
	}
	gen, err := r.Sup.Start(r.ID+"-gen", h.cfg.Binary, childEnv(), "gen", "--brokers", h.cfg.Brokers, "--topic", r.Topic,
		"--seed", fmt.Sprint(h.input.Seed), "--events", fmt.Sprint(h.input.Messages))
	if err != nil {
		return err
	}
	gctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if err := gen.Wait(gctx); err != nil {
		return fmt.Errorf("chaos: gen: %w", err)
	}
	if gen.ExitCode() != 0 {
		return fmt.Errorf("chaos: gen exited %d (log %s)", gen.ExitCode(), gen.LogPath())
	}
	return nil
}

// ingest runs the ingest phase: the class's ingest faults, then restarts
// of ingest until the lake holds every message.
func (h *Harness) ingest(ctx context.Context, r *Run, c *Class) error {
	for i := range r.topo.Ingests {
		var env []string
		if r.topo.IngestEnv != nil {
			env = r.topo.IngestEnv(i)
		}
		if _, err := r.StartIngest(i, env...); err != nil {
			return err
		}
	}
	if c.Ingest != nil {
		fctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		err := c.Ingest(fctx, r)
		cancel()
		if err != nil {
			return fmt.Errorf("chaos: ingest fault: %w", err)
		}
	}
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		// Wait for every ingest process to exit (idle), bounded.
		wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		for _, p := range r.Sup.Procs() {
			if strings.Contains(p.Name, "-ingest-") {
				if p.Wait(wctx) != nil {
					r.Note("ingest %s did not exit within 3m: killed", p.Name)
					_ = p.Kill()
				}
			}
		}
		cancel()
		st, err := h.lakeState(ctx, r)
		if err == nil && st.messages >= int64(h.input.Messages) {
			if st.messages > int64(h.input.Messages) {
				r.Note("lake holds %d messages of %d: duplicated by ingest", st.messages, h.input.Messages)
			}
			return nil
		}
		if attempt >= 8 {
			r.Note("lake incomplete after %d ingest restarts: %d of %d messages (%v)", attempt, st.messages, h.input.Messages, err)
			return nil
		}
		r.logger.Info("lake incomplete: restarting ingest", "messages", st.messages, "err", err)
		r.mu.Lock()
		first := r.Ingests[0]
		r.mu.Unlock()
		if err := first.Restart(); err != nil {
			return err
		}
	}
}

// lakeFacts is what the lake's manifests say.
type lakeFacts struct {
	messages, valid int64
	overlaps        int // manifests whose range overlaps an earlier one of the source
}

func (h *Harness) lakeState(ctx context.Context, r *Run) (lakeFacts, error) {
	var f lakeFacts
	st, err := r.directStore(ctx, r.Lake)
	if err != nil {
		return f, err
	}
	sn, err := lake.ReadSnapshot(ctx, st)
	if err != nil {
		return f, err
	}
	end := map[string]int64{}
	for _, m := range sn.Manifests {
		f.messages += m.ValidCount + m.RejectedCount
		f.valid += m.ValidCount
		if e, ok := end[m.Source]; ok && m.Start < e {
			f.overlaps++
		}
		end[m.Source] = max(end[m.Source], m.End)
	}
	return f, nil
}

// jobs runs the job phase: the cluster, the submits, the class's job
// faults, healing, and the wait for every job to end and be indexed.
func (h *Harness) jobs(ctx context.Context, r *Run, c *Class) error {
	for i := range r.topo.Coordinators {
		var env []string
		if r.topo.CoordinatorEnv != nil {
			env = r.topo.CoordinatorEnv(i)
		}
		if _, err := r.StartCoordinator(i, env...); err != nil {
			return err
		}
	}
	for i := range r.topo.Workers {
		var env []string
		if r.topo.WorkerEnv != nil {
			env = r.topo.WorkerEnv(i)
		}
		if _, err := r.StartWorker(i, env...); err != nil {
			return err
		}
	}
	cl, err := r.Client()
	if err != nil {
		return err
	}
	defer cl.Close()
	fctx, cancel := context.WithTimeout(ctx, h.cfg.JobTimeout)
	defer cancel()
	submit := c.Submit
	if submit == nil {
		submit = SubmitAll
	}
	faultDone := make(chan error, 1)
	if c.Jobs != nil {
		go func() { // owned here: waited for below
			faultDone <- c.Jobs(fctx, r)
		}()
	} else {
		faultDone <- nil
	}
	if err := submit(fctx, r, cl); err != nil {
		r.Note("submit: %v", err)
	}
	h.waitJobs(fctx, r, cl, false)
	cancel()
	ferr := <-faultDone
	if ferr != nil && !errors.Is(ferr, context.Canceled) && !errors.Is(ferr, context.DeadlineExceeded) {
		r.Note("fault: %v", ferr)
	}
	if err := r.heal(ctx); err != nil {
		r.Note("heal: %v", err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 2*time.Minute)
	defer wcancel()
	h.waitJobs(wctx, r, cl, true)
	return nil
}

// SubmitAll submits one job per window of the input.
func SubmitAll(ctx context.Context, r *Run, cl *coordinator.Client) error {
	var errs []error
	for _, w := range r.h.input.Windows {
		if _, err := r.Submit(ctx, cl, w, r.ID+"-"+w.String()); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// waitJobs waits until every job of the run has ended (and, with indexed,
// every succeeded one has an indexing outcome), or ctx ends.
func (h *Harness) waitJobs(ctx context.Context, r *Run, cl *coordinator.Client, indexed bool) {
	for {
		pending := false
		for _, j := range r.JobList() {
			st, err := cl.Get(ctx, j.ID)
			if err != nil || !coordinator.Terminal(st.GetState()) {
				pending = true
				break
			}
			if indexed && isIndexPending(st.GetIndexerStatus()) && st.GetState().String() == "JOB_STATE_SUCCEEDED" {
				pending = true
				break
			}
		}
		if !pending && len(r.JobList()) > 0 {
			return
		}
		if !sleepCtx(ctx, 200*time.Millisecond) {
			return
		}
	}
}

func isIndexPending(s string) bool { return s == "" || s == "pending" }

// cleanupStack deletes the run's topic and Elasticsearch indices from the
// shared stack.
func (h *Harness) cleanupStack(r *Run) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := esDelete(ctx, h.cfg.ESURL, r.Alias+"-*"); err != nil {
		r.logger.Warn("delete indices", "err", err)
	}
	cfg := sarama.NewConfig()
	cfg.Admin.Timeout = 10 * time.Second
	adm, err := sarama.NewClusterAdmin(strings.Split(h.cfg.Brokers, ","), cfg)
	if err != nil {
		r.logger.Warn("kafka admin", "err", err)
		return
	}
	defer adm.Close()
	if err := adm.DeleteTopic(r.Topic); err != nil {
		r.logger.Warn("delete topic", "topic", r.Topic, "err", err)
	}
}

// Matrix runs the baseline and then rounds over classes until minutes
// have passed (at least one run of each class), and returns the report.
func (h *Harness) Matrix(ctx context.Context, classes []*Class, minutes float64, progress func(*Outcome)) (*Report, error) {
	rep := &Report{Seed: h.cfg.Seed, Events: h.input.Messages, Windows: len(h.input.Windows)}
	base, err := h.Baseline(ctx)
	if progress != nil && base != nil {
		progress(base)
	}
	if err != nil {
		return rep, err
	}
	rep.Baseline = base.Duration
	rep.Outcomes = append(rep.Outcomes, base)
	deadline := time.Now().Add(time.Duration(minutes * float64(time.Minute)))
	classes = slices.DeleteFunc(slices.Clone(classes), func(c *Class) bool {
		if c.Stack && !h.cfg.StackFaults {
			rep.Skipped = append(rep.Skipped, c.Name+" (needs the stack faults of make chaos)")
			return true
		}
		return c == NoFaults
	})
	for round := 0; ; round++ {
		for _, c := range classes {
			if ctx.Err() != nil {
				return rep, ctx.Err()
			}
			if round > 0 && time.Now().After(deadline) {
				return rep, nil
			}
			o := h.RunClass(ctx, c, round)
			rep.Outcomes = append(rep.Outcomes, o)
			if progress != nil {
				progress(o)
			}
		}
		if time.Now().After(deadline) {
			return rep, nil
		}
	}
}
