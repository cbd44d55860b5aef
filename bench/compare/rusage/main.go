// Command rusage runs a command and records its peak resident set size:
//
//	rusage RSS_FILE ARGV...
//
// It runs ARGV with its own standard streams, forwards SIGTERM and SIGINT
// to it, writes the child's ru_maxrss in bytes and its CPU time (user plus
// system, its waited-for descendants included) in nanoseconds to RSS_FILE,
// separated by a space, and exits with the child's status. bench/compare runs every contender through it.
//
// Why a separate, small program: Linux keeps ru_maxrss across execve, and
// Go starts a child with vfork semantics (clone with CLONE_VM), so a child
// inherits its Go parent's peak RSS as its floor. The harness is large
// (tens of MiB after its packages' init), so every contender would report
// at least that; this wrapper's child inherits only the wrapper's few MiB,
// which is the bias left.
package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	if len(args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: rusage RSS_FILE ARGV...")
		return 2
	}
	cmd := exec.Command(args[1], args[2:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "rusage:", err)
		return 127
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-sigs:
				_ = cmd.Process.Signal(s)
			case <-done:
				return
			}
		}
	}()
	err := cmd.Wait()
	close(done)
	if werr := os.WriteFile(args[0], []byte(usage(cmd.ProcessState)), 0o644); werr != nil {
		fmt.Fprintln(os.Stderr, "rusage:", werr)
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return exit.ExitCode()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "rusage:", err)
		return 1
	}
	return 0
}

// usage is a finished process's peak resident set in bytes (Linux reports
// ru_maxrss in KiB) and its CPU time in nanoseconds: "RSS CPU".
func usage(ps *os.ProcessState) string {
	var rss int64
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		rss = ru.Maxrss * 1024
	}
	cpu := ps.UserTime() + ps.SystemTime()
	return strconv.FormatInt(rss, 10) + " " + strconv.FormatInt(cpu.Nanoseconds(), 10)
}
