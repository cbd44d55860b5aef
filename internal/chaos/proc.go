package chaos

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Supervisor starts the harness's child processes, each in its own process
// group with its output in a log file, and kills every one of them on
// Close. Children also get SIGKILL if the harness process dies first
// (Pdeathsig).
type Supervisor struct {
	dir    string
	logger *slog.Logger

	mu     sync.Mutex
	procs  []*Proc
	closed bool
}

// NewSupervisor keeps the logs of its processes in dir.
func NewSupervisor(dir string, logger *slog.Logger) *Supervisor {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Supervisor{dir: dir, logger: logger}
}

// Proc is one child process; Restart starts it again with the same command
// line.
type Proc struct {
	Name string
	sup  *Supervisor
	path string
	args []string
	env  []string
	once []string // added to env of the first incarnation only
	log  string

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{} // closed when the current incarnation exited
	stopped bool          // SIGSTOPped
	starts  int
}

// ErrClosed is returned by Start after Close.
var ErrClosed = errors.New("chaos: supervisor closed")

// Start runs path with args and env (the whole environment of the child).
func (s *Supervisor) Start(name, path string, env []string, args ...string) (*Proc, error) {
	return s.StartOnce(name, path, env, nil, args...)
}

// StartOnce is Start with variables (failpoints) that only the first
// incarnation gets: a restarted process runs without them.
func (s *Supervisor) StartOnce(name, path string, env, once []string, args ...string) (*Proc, error) {
	p := &Proc{Name: name, sup: s, path: path, args: args, env: env, once: once,
		log: filepath.Join(s.dir, strings.NewReplacer("/", "_", " ", "_").Replace(name)+".log")}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	s.procs = append(s.procs, p)
	s.mu.Unlock()
	if err := p.start(); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *Proc) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sup.mu.Lock()
	closed := p.sup.closed
	p.sup.mu.Unlock()
	if closed {
		return ErrClosed
	}
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("chaos: %s: log: %w", p.Name, err)
	}
	defer f.Close()
	p.starts++
	fmt.Fprintf(f, "---- start %d: %s %s\n", p.starts, p.path, strings.Join(p.args, " "))
	cmd := exec.Command(p.path, p.args...)
	cmd.Env = p.env
	if p.starts == 1 {
		cmd.Env = append(slices.Clone(p.env), p.once...)
	}
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("chaos: start %s: %w", p.Name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done, p.stopped = cmd, done, false
	go func() { // owned by the Proc: ends when the process does
		_ = cmd.Wait()
		close(done)
	}()
	p.sup.logger.Debug("started", "proc", p.Name, "pid", cmd.Process.Pid)
	return nil
}

// Done is closed when the current incarnation of the process has exited.
func (p *Proc) Done() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done
}

// Alive reports whether the current incarnation is running (or stopped).
func (p *Proc) Alive() bool {
	select {
	case <-p.Done():
		return false
	default:
		return true
	}
}

// ExitCode is the exit status of the last incarnation, -1 if it is still
// running or was killed by a signal.
func (p *Proc) ExitCode() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	default:
		return -1
	}
}

// signal sends sig to the process group of the current incarnation.
func (p *Proc) signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.done:
		return nil
	default:
	}
	if err := syscall.Kill(-p.cmd.Process.Pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("chaos: %s: %v: %w", p.Name, sig, err)
	}
	p.stopped = sig == syscall.SIGSTOP
	return nil
}

// Kill sends SIGKILL to the process group and waits for the process.
func (p *Proc) Kill() error {
	if err := p.signal(syscall.SIGKILL); err != nil {
		return err
	}
	<-p.Done()
	return nil
}

// Stop freezes the process group (SIGSTOP).
func (p *Proc) Stop() error { return p.signal(syscall.SIGSTOP) }

// Cont resumes a stopped process group (SIGCONT).
func (p *Proc) Cont() error { return p.signal(syscall.SIGCONT) }

// Terminate sends SIGTERM and waits up to grace for the process to exit,
// then kills it.
func (p *Proc) Terminate(grace time.Duration) error {
	if err := p.signal(syscall.SIGCONT); err != nil {
		return err
	}
	if err := p.signal(syscall.SIGTERM); err != nil {
		return err
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.Done():
		return nil
	case <-t.C:
		return p.Kill()
	}
}

// Restart kills the process if it runs and starts it again.
func (p *Proc) Restart() error {
	if err := p.Kill(); err != nil {
		return err
	}
	return p.start()
}

// Wait waits for the current incarnation to exit or ctx to end.
func (p *Proc) Wait(ctx context.Context) error {
	select {
	case <-p.Done():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Log returns the process's log (every incarnation).
func (p *Proc) Log() string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// LogPath is the file holding the process's output.
func (p *Proc) LogPath() string { return p.log }

// Close kills every process started and waits for them; Start fails
// afterwards.
func (s *Supervisor) Close() {
	s.mu.Lock()
	s.closed = true
	procs := slices.Clone(s.procs)
	s.mu.Unlock()
	for _, p := range procs {
		_ = p.Kill()
	}
}

// Procs returns the processes started so far.
func (s *Supervisor) Procs() []*Proc {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.procs)
}

// childEnv is the base environment of children: the harness's PATH, HOME
// and temp dir, and nothing that configures the platform, so that each
// child gets exactly the flags and variables the harness gives it.
func childEnv(extra ...string) []string {
	var env []string
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "GOMAXPROCS", "GOTRACEBACK"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return append(env, extra...)
}
