package testenv

import (
	"os"
	"syscall"
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
