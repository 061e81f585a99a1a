//go:build unix

package main

import "syscall"

// stopProcess stops the process pid (SIGSTOP): a stalled server.
func stopProcess(pid int) error { return syscall.Kill(pid, syscall.SIGSTOP) }

// continueProcess lets a process stopped by stopProcess run again.
func continueProcess(pid int) error { return syscall.Kill(pid, syscall.SIGCONT) }
