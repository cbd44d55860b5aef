package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// readUsage reads what the rusage wrapper wrote: the peak resident set in
// bytes and the CPU time. A missing or malformed file reads as zeros.
func readUsage(path string) (rss int64, cpu time.Duration) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, 0
	}
	f := strings.Fields(string(data))
	if len(f) > 0 {
		rss, _ = strconv.ParseInt(f[0], 10, 64)
	}
	if len(f) > 1 {
		ns, _ := strconv.ParseInt(f[1], 10, 64)
		cpu = time.Duration(ns)
	}
	return rss, cpu
}

// procCPU is the CPU time a running process has used so far, all its
// threads (live and exited) included: utime + stime of /proc/PID/stat, in
// clock ticks of 10 ms (USER_HZ is 100 on Linux).
func procCPU(pid int) (time.Duration, error) {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// fields are counted after its closing one, from field 3 (state).
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	var ticks int64
	for _, s := range f[11:13] { // utime (field 14), stime (field 15)
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond, nil
}

// childPIDs lists the children of a running process: those of each of its
// threads (/proc/PID/task/TID/children), since a child belongs to the
// thread that forked it, in a Go program any of them.
func childPIDs(pid int) ([]int, error) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, t := range tasks {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, t.Name()))
		if errors.Is(err, fs.ErrNotExist) {
			continue // the thread exited
		}
		if err != nil {
			return nil, err
		}
		for _, s := range strings.Fields(string(data)) {
			n, err := strconv.Atoi(s)
			if err != nil {
				return nil, fmt.Errorf("/proc/%d children: %w", pid, err)
			}
			pids = append(pids, n)
		}
	}
	if len(pids) == 0 {
		return nil, fmt.Errorf("process %d has no child", pid)
	}
	return pids, nil
}
