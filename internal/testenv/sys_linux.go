package testenv

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// baseDir returns where the servers' directory goes: /dev/shm when it is a
// usable tmpfs with room, because on a disk CREATE DATABASE alone takes
// ~200 ms (checkpoints) against ~20 ms in memory; else the temp dir.
func baseDir() string {
	const shm = "/dev/shm"
	var st syscall.Statfs_t
	if syscall.Statfs(shm, &st) == nil && st.Bavail*uint64(st.Bsize) > 2<<30 && syscall.Access(shm, 2 /* W_OK */) == nil {
		return shm
	}
	return os.TempDir()
}

// processGone reports whether no process has id pid.
func processGone(pid int) bool {
	return syscall.Kill(pid, 0) == syscall.ESRCH
}

// signalProcess sends sig to process pid, and with tree to its children
// too (PostgreSQL's backends each lead a process group of their own, so a
// signal to the postmaster's group does not reach them).
func signalProcess(pid int, tree bool, sig syscall.Signal) {
	_ = syscall.Kill(pid, sig)
	if tree {
		for _, c := range children(pid) {
			_ = syscall.Kill(c, sig)
		}
	}
}

// children lists the processes whose parent is pid.
func children(pid int) []int {
	var out []int
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, path := range stats {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) >= 2 && f[1] == strconv.Itoa(pid) {
			if c, err := strconv.Atoi(filepath.Base(filepath.Dir(path))); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

// waitStopped waits up to limit until every thread of process pid is
// stopped (state T in /proc/pid/task/*/stat), or the process is gone.
func waitStopped(pid int, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		stats, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/[0-9]*/stat")
		running := false
		for _, path := range stats {
			b, err := os.ReadFile(path)
			if err != nil {
				continue // the thread ended
			}
			i := bytes.LastIndexByte(b, ')')
			if f := strings.Fields(string(b[i+1:])); i >= 0 && len(f) > 0 && f[0] != "T" && f[0] != "t" && f[0] != "Z" && f[0] != "X" {
				running = true
				break
			}
		}
		if !running {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// kill, freeze and thaw are SIGKILL, SIGSTOP and SIGCONT.
func kill(pid int, tree bool) { signalProcess(pid, tree, syscall.SIGKILL) }
func freeze(pid int, tree bool) {
	signalProcess(pid, tree, syscall.SIGSTOP)
	// The signal is sent, not yet taken: a busy thread stops at its next
	// entry into the kernel. Return once every thread is stopped, so that
	// what a test does next meets a stalled server.
	waitStopped(pid, 10*time.Second)
	if tree {
		for _, c := range children(pid) {
			waitStopped(c, 10*time.Second)
		}
	}
}
func thaw(pid int, tree bool) { signalProcess(pid, tree, syscall.SIGCONT) }
