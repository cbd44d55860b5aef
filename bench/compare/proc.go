package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// measurement is one process run: its wall time, from start to exit, and
// its peak resident set size.
type measurement struct {
	Wall time.Duration
	// MaxRSS is getrusage's ru_maxrss of the waited-for process, in bytes:
	// the largest resident set of the process and of its descendants that
	// it waited for (so spark-submit's JVM and Python both count; the
	// larger one is reported, not their sum).
	MaxRSS int64
	// CPU is the process's user plus system time, its waited-for
	// descendants included; for the cluster, what its processes used
	// during the round (see background.cpu).
	CPU    time.Duration
	Stdout []byte
}

// command describes one process to run.
type command struct {
	Argv []string
	Env  []string // added to the environment
	Dir  string
	Log  string // stderr (and stdout) copy
}

// cmd returns the command, run through the rusage wrapper (see
// bench/compare/rusage), and its open log.
func (c command) cmd(ctx context.Context) (*exec.Cmd, *os.File, error) {
	wrapper, err := rusageBinary()
	if err != nil {
		return nil, nil, err
	}
	cmd := exec.CommandContext(ctx, wrapper, append([]string{c.rssFile()}, c.Argv...)...)
	cmd.Env = append(os.Environ(), c.Env...)
	cmd.Dir = c.Dir
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	if err := os.MkdirAll(filepath.Dir(c.Log), 0o755); err != nil {
		return nil, nil, err
	}
	log, err := os.Create(c.Log)
	if err != nil {
		return nil, nil, err
	}
	fmt.Fprintf(log, "$ %s\n", strings.Join(c.Argv, " "))
	cmd.Stderr = log
	return cmd, log, nil
}

// run runs the command to its end and measures it. A non-zero exit is an
// error naming the log.
func (c command) run(ctx context.Context) (measurement, error) {
	cmd, log, err := c.cmd(ctx)
	if err != nil {
		return measurement{}, err
	}
	defer log.Close()
	var out bytes.Buffer
	cmd.Stdout = io.MultiWriter(&out, log)
	start := time.Now()
	err = cmd.Run()
	m := measurement{Wall: time.Since(start), Stdout: out.Bytes()}
	m.MaxRSS, m.CPU = readUsage(c.rssFile())
	if err != nil {
		return m, fmt.Errorf("%s: %w (log: %s, last lines: %s)", filepath.Base(c.Argv[0]), err, c.Log, tail(c.Log, 5))
	}
	return m, nil
}

// rssFile is where the measure wrapper writes the peak RSS.
func (c command) rssFile() string { return strings.TrimSuffix(c.Log, ".log") + ".rss" }

// rusageBinary is the rusage wrapper: $BENCH_RUSAGE, or bench-rusage
// beside this program (make bench-compare builds both).
func rusageBinary() (string, error) {
	if p := os.Getenv("BENCH_RUSAGE"); p != "" {
		return p, nil
	}
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	p := filepath.Join(filepath.Dir(self), "bench-rusage")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("the rusage wrapper: %w (go build -o %s ./bench/compare/rusage)", err, p)
	}
	return p, nil
}

// background is a long-running process (the cluster's), stopped by stop.
type background struct {
	name string
	cmd  *exec.Cmd
	log  *os.File
	rss  string
	done chan error
}

func (c command) start(ctx context.Context, name string) (*background, error) {
	cmd, log, err := c.cmd(ctx)
	if err != nil {
		return nil, err
	}
	cmd.Stdout = log
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	b := &background{name: name, cmd: cmd, log: log, rss: c.rssFile(), done: make(chan error, 1)}
	go func() { b.done <- cmd.Wait() }()
	return b, nil
}

// exited reports whether the process has ended (e.g. failed at start).
func (b *background) exited() bool {
	select {
	case err := <-b.done:
		b.done <- err
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, waits (SIGKILL after timeout) and returns the
// process's peak resident set in bytes.
func (b *background) stop(timeout time.Duration) int64 {
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.done:
	case <-time.After(timeout):
		_ = b.cmd.Process.Kill()
		<-b.done
	}
	b.log.Close()
	rss, _ := readUsage(b.rss)
	return rss
}

// cpu is the CPU time the process has used so far: the process the
// rusage wrapper runs (the wrapper itself only waits).
func (b *background) cpu() (time.Duration, error) {
	kids, err := childPIDs(b.cmd.Process.Pid)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", b.name, err)
	}
	var sum time.Duration
	for _, pid := range kids {
		d, err := procCPU(pid)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", b.name, err)
		}
		sum += d
	}
	return sum, nil
}

// tail returns the last n lines of a file, on one line.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], " | ")
}
