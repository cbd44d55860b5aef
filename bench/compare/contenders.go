package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// contender is one way of computing the aggregate (or, for a floor, of
// reading its input).
type contender struct {
	name  string
	about string // for the report
	floor bool   // reads only: checked by the events it read
	// session: all rounds run in one process after its own warm-up, which
	// reports each round's time (Spark warm).
	session bool
	python  bool // needs the bench virtualenv
	// setup starts what lives across rounds (the cluster) and returns its
	// teardown, which reports the peak RSS in bytes of what it started.
	setup func(ctx context.Context, h *harness, d *dataset) (teardown func() int64, err error)
	round func(ctx context.Context, h *harness, d *dataset, r int) (measurement, outcome, error)
}

// outcome is what a round produced besides its measurement.
type outcome struct {
	rows    []Row
	events  int64     // a floor's events read
	seconds []float64 // a session's own timings of its rounds
	note    string
}

// contenders in the order of a round (rotated round by round).
func contenders() []*contender {
	cluster := func(workers int) *contender {
		cl := &clusterRun{workers: workers}
		return &contender{name: fmt.Sprintf("cluster-w%d", workers),
			about: fmt.Sprintf("coordinator (embedded etcd) + %d worker processes, timed as clickstream submit --wait", workers),
			setup: cl.setup, round: cl.round}
	}
	return []*contender{
		{name: "run-w1", about: "clickstream run --workers 1", round: runLocal(1)},
		{name: "run-w2", about: "clickstream run --workers 2", round: runLocal(2)},
		cluster(1), cluster(2), cluster(4),
		{name: "spark-cold", about: "PySpark, spark-submit, whole process", python: true, round: sparkCold},
		{name: "spark-warm", about: "PySpark, the job again in a live session", python: true, session: true, round: sparkWarm},
		{name: "duckdb", about: "DuckDB SQL over iceberg_scan", python: true, round: pythonJob("duckdb_job.py", "job")},
		{name: "polars", about: "Polars lazy frames over scan_iceberg", python: true, round: pythonJob("polars_job.py", "job")},
		{name: "chdb", about: "chDB SQL over icebergLocal", python: true, round: pythonJob("chdb_job.py", "job")},
		{name: "floor-clickstream", about: "read + decode the four columns with the worker's reader, no aggregation", floor: true, round: floorGo},
		{name: "floor-duckdb", about: "DuckDB: read + decode the four columns, no aggregation", floor: true, python: true, round: pythonJob("duckdb_job.py", "floor")},
	}
}

func contenderNames() []string {
	var names []string
	for _, c := range contenders() {
		names = append(names, c.name)
	}
	return names
}

func knownContender(name string) bool {
	for _, n := range contenderNames() {
		if n == name {
			return true
		}
	}
	return false
}

// workDir is where a contender's round writes (emptied first).
func (h *harness) workDir(d *dataset, name string, r int) (string, error) {
	dir := filepath.Join(h.cfg.Out, "work", d.Shape, name, fmt.Sprintf("r%d", r))
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	return dir, os.MkdirAll(dir, 0o755)
}

func (h *harness) logPath(d *dataset, name string, r int) string {
	return filepath.Join(h.cfg.Out, "logs", d.Shape, fmt.Sprintf("%s-r%d.log", name, r))
}

func window(d *dataset) []string {
	return []string{"--from", d.From.Format(time.RFC3339), "--to", d.To.Format(time.RFC3339)}
}

// runLocal: clickstream run, the whole process timed.
func runLocal(workers int) func(context.Context, *harness, *dataset, int) (measurement, outcome, error) {
	return func(ctx context.Context, h *harness, d *dataset, r int) (measurement, outcome, error) {
		name := "run-w" + strconv.Itoa(workers)
		out, err := h.workDir(d, name, r)
		if err != nil {
			return measurement{}, outcome{}, err
		}
		argv := append([]string{h.cfg.Bin, "run", "--lake", d.lakeURI(), "--out", "file://" + out, "--workers", strconv.Itoa(workers)}, window(d)...)
		m, err := command{Argv: argv, Log: h.logPath(d, name, r)}.run(ctx)
		if err != nil {
			return m, outcome{}, err
		}
		rows, err := readResult(out)
		return m, outcome{rows: rows}, err
	}
}

// clusterRun is the multi-process cluster: a coordinator, with its
// embedded etcd, and worker processes of one task slot each, started once
// per shape.
type clusterRun struct {
	workers int
	name    string
	addr    string
	procs   []*background
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func (c *clusterRun) setup(ctx context.Context, h *harness, d *dataset) (func() int64, error) {
	var err error
	etcd, err1 := freeAddr()
	if c.addr, err = freeAddr(); err != nil || err1 != nil {
		return nil, errors.Join(err, err1)
	}
	c.name = fmt.Sprintf("cluster-w%d", c.workers)
	outRoot := "file://" + filepath.Join(h.cfg.Out, "work", d.Shape, c.name)
	if err := os.MkdirAll(filepath.Join(h.cfg.Out, "work", d.Shape, c.name), 0o755); err != nil {
		return nil, err
	}
	logs := filepath.Join(h.cfg.Out, "logs", d.Shape)
	etcdDir := filepath.Join(h.cfg.Out, "work", d.Shape, c.name+"-etcd") // a fresh cluster: no jobs to resume
	if err := os.RemoveAll(etcdDir); err != nil {
		return nil, err
	}
	teardown := func() int64 {
		var sum int64
		for i := len(c.procs) - 1; i >= 0; i-- { // workers first, then the coordinator and its etcd
			sum += c.procs[i].stop(30 * time.Second)
		}
		c.procs = nil
		return sum
	}
	coord, err := command{Argv: []string{h.cfg.Bin, "coordinator", "--etcd-listen", etcd, "--data-dir", etcdDir, "--listen", c.addr, "--http-listen=",
		"--lake", d.lakeURI(), "--compact-every", "0"}, Log: filepath.Join(logs, c.name+"-coordinator.log")}.start(ctx, "coordinator")
	if err != nil {
		return nil, err
	}
	c.procs = append(c.procs, coord)
	if err := waitPort(ctx, etcd, coord); err != nil {
		teardown()
		return nil, fmt.Errorf("cluster: coordinator's etcd: %w", err)
	}
	for i := 1; i <= c.workers; i++ {
		w, err := command{Argv: []string{h.cfg.Bin, "worker", "--etcd", "http://" + etcd, "--listen", "127.0.0.1:0",
			"--id", "bench-w" + strconv.Itoa(i), "--parallelism", "1", "--lake-root", d.lakeURI(), "--output-root", outRoot},
			Log: filepath.Join(logs, fmt.Sprintf("%s-worker%d.log", c.name, i))}.start(ctx, "worker")
		if err != nil {
			teardown()
			return nil, err
		}
		c.procs = append(c.procs, w)
	}
	if err := waitPort(ctx, c.addr, coord); err != nil {
		teardown()
		return nil, fmt.Errorf("cluster: coordinator: %w", err)
	}
	return teardown, nil
}

// waitPort waits until addr accepts connections, or p exits.
func waitPort(ctx context.Context, addr string, p *background) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		if p.exited() {
			return fmt.Errorf("%s exited (log: %s)", p.name, p.log.Name())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not listening after 60s", addr)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (c *clusterRun) round(ctx context.Context, h *harness, d *dataset, r int) (measurement, outcome, error) {
	out, err := h.workDir(d, c.name, r)
	if err != nil {
		return measurement{}, outcome{}, err
	}
	before, err := c.cpu()
	if err != nil {
		return measurement{}, outcome{}, err
	}
	argv := append([]string{h.cfg.Bin, "submit", "--coordinator", c.addr, "--out", "file://" + out, "--wait"}, window(d)...)
	m, err := command{Argv: argv, Log: h.logPath(d, c.name, r)}.run(ctx)
	if err != nil {
		return m, outcome{}, err
	}
	after, err := c.cpu()
	if err != nil {
		return m, outcome{}, err
	}
	m.MaxRSS = 0            // the client's: the cluster's processes are measured at teardown
	m.CPU += after - before // the client's and the cluster's during the round
	rows, err := readResult(out)
	return m, outcome{rows: rows}, err
}

// cpu is the CPU time the cluster's processes have used so far.
func (c *clusterRun) cpu() (time.Duration, error) {
	var sum time.Duration
	for _, p := range c.procs {
		d, err := p.cpu()
		if err != nil {
			return 0, err
		}
		sum += d
	}
	return sum, nil
}

// jobSpec is what an engine script reads (see common.py).
type jobSpec struct {
	Metadata  string `json:"metadata"`
	Table     string `json:"table"`
	FromMs    int64  `json:"from_ms"`
	ToMs      int64  `json:"to_ms"`
	TimeoutMs int64  `json:"timeout_ms"`
	Out       string `json:"out"`
	Rounds    int    `json:"rounds"`
}

// SessionTimeout is clickstream's default, which run and submit use.
const SessionTimeout = 30 * time.Minute

// writeSpec writes the job spec of a Python round and returns its path and
// the rows file the script writes.
func (h *harness) writeSpec(d *dataset, name string, r int) (spec, rows string, err error) {
	dir, err := h.workDir(d, name, r)
	if err != nil {
		return "", "", err
	}
	s := jobSpec{Metadata: d.Metadata, Table: d.tableDir(), FromMs: d.From.UnixMilli(), ToMs: d.To.UnixMilli(),
		TimeoutMs: SessionTimeout.Milliseconds(), Out: filepath.Join(dir, "rows.ndjson"), Rounds: h.cfg.Rounds}
	data, _ := json.Marshal(s)
	spec = filepath.Join(dir, "spec.json")
	return spec, s.Out, os.WriteFile(spec, data, 0o644)
}

// scriptReport is the last line a script prints.
type scriptReport struct {
	Events  int64     `json:"events"`
	Seconds []float64 `json:"seconds"`
	Read    string    `json:"read"`
}

func lastReport(stdout []byte) (scriptReport, error) {
	lines := strings.Split(strings.TrimSpace(string(stdout)), "\n")
	var rep scriptReport
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &rep); err != nil {
		return rep, fmt.Errorf("the script's report %q: %w", lines[len(lines)-1], err)
	}
	return rep, nil
}

// pythonJob runs an engine script in mode job or floor, the whole process timed.
func pythonJob(script, mode string) func(context.Context, *harness, *dataset, int) (measurement, outcome, error) {
	return func(ctx context.Context, h *harness, d *dataset, r int) (measurement, outcome, error) {
		name := strings.TrimSuffix(script, "_job.py")
		if mode == "floor" {
			name = "floor-" + name
		}
		spec, rowsPath, err := h.writeSpec(d, name, r)
		if err != nil {
			return measurement{}, outcome{}, err
		}
		argv := []string{h.cfg.Python, filepath.Join(h.cfg.Scripts, script), spec, mode}
		m, err := command{Argv: argv, Log: h.logPath(d, name, r)}.run(ctx)
		if err != nil {
			return m, outcome{}, err
		}
		return h.scriptOutcome(m, mode, rowsPath)
	}
}

func (h *harness) scriptOutcome(m measurement, mode, rowsPath string) (measurement, outcome, error) {
	rep, err := lastReport(m.Stdout)
	if err != nil {
		return m, outcome{}, err
	}
	o := outcome{events: rep.Events, seconds: rep.Seconds}
	if rep.Read != "" {
		o.note = "read: " + rep.Read
	}
	if mode == "floor" {
		return m, o, nil
	}
	o.rows, err = readRows(rowsPath)
	return m, o, err
}

func (h *harness) sparkSubmit(spec, mode string) []string {
	argv := []string{filepath.Join(filepath.Dir(h.cfg.Python), "spark-submit"), "--master", fmt.Sprintf("local[%d]", runtime.NumCPU()),
		"--jars", h.cfg.SparkJar}
	for _, kv := range strings.Split(h.cfg.SparkConf, ",") {
		if kv != "" {
			argv = append(argv, "--conf", kv)
		}
	}
	return append(argv, filepath.Join(h.cfg.Scripts, "spark_job.py"), spec, mode)
}

func (h *harness) sparkEnv() []string {
	return []string{"JAVA_HOME=" + h.cfg.JavaHome, "PYSPARK_PYTHON=" + h.cfg.Python, "PYSPARK_DRIVER_PYTHON=" + h.cfg.Python,
		"SPARK_LOCAL_IP=127.0.0.1"}
}

// sparkCold: spark-submit of one job, the whole process timed.
func sparkCold(ctx context.Context, h *harness, d *dataset, r int) (measurement, outcome, error) {
	spec, rowsPath, err := h.writeSpec(d, "spark-cold", r)
	if err != nil {
		return measurement{}, outcome{}, err
	}
	m, err := command{Argv: h.sparkSubmit(spec, "job"), Env: h.sparkEnv(), Log: h.logPath(d, "spark-cold", r)}.run(ctx)
	if err != nil {
		return m, outcome{}, err
	}
	return h.scriptOutcome(m, "job", rowsPath)
}

// sparkWarm: one spark-submit running a warm-up job and then every round
// in the same live session; the script times each round.
func sparkWarm(ctx context.Context, h *harness, d *dataset, r int) (measurement, outcome, error) {
	spec, rowsPath, err := h.writeSpec(d, "spark-warm", r)
	if err != nil {
		return measurement{}, outcome{}, err
	}
	m, err := command{Argv: h.sparkSubmit(spec, "warm"), Env: h.sparkEnv(), Log: h.logPath(d, "spark-warm", r)}.run(ctx)
	if err != nil {
		return m, outcome{}, err
	}
	return h.scriptOutcome(m, "warm", rowsPath)
}

// floorGo runs this program's floor subcommand, the whole process timed.
func floorGo(ctx context.Context, h *harness, d *dataset, r int) (measurement, outcome, error) {
	self, err := os.Executable()
	if err != nil {
		return measurement{}, outcome{}, err
	}
	argv := append([]string{self, "floor", "--lake", d.lakeURI()}, window(d)...)
	m, err := command{Argv: argv, Log: h.logPath(d, "floor-clickstream", r)}.run(ctx)
	if err != nil {
		return m, outcome{}, err
	}
	rep, err := lastReport(m.Stdout)
	return m, outcome{events: rep.Events}, err
}
