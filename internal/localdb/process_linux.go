package localdb

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"time"
)

// supported reports whether managed servers can run here: on Linux, yes.
func supported() error { return nil }

// childAttr returns the attributes of a child server: its own process group
// (setpgid), pdeathsig when the parent dies, and cred's user if not nil.
func childAttr(cred *credential, pdeathsig syscall.Signal, setpgid bool) *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{Setpgid: setpgid, Pdeathsig: pdeathsig}
	if cred != nil {
		attr.Credential = &syscall.Credential{Uid: cred.uid, Gid: cred.gid, NoSetGroups: true}
	}
	return attr
}

// startProcess starts cmd with the attributes described on process.
//
// Pdeathsig is delivered when the thread that forked the child exits, not the
// process, so the child is started from a goroutine locked to its thread that
// stays in Wait until the child exits: the thread lives exactly as long as the
// child.
func startProcess(name string, cmd *exec.Cmd, pdeathsig syscall.Signal, cred *credential) (*process, error) {
	cmd.SysProcAttr = childAttr(cred, pdeathsig, true)
	p := &process{name: name, cmd: cmd, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// Deliberately never unlocked: when this goroutine exits the thread
		// exits too, which is fine because the child is gone by then.
		if err := cmd.Start(); err != nil {
			started <- err
			close(p.done)
			return
		}
		started <- nil
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	return p, nil
}

// killGroup kills the process and every process of its group at once.
func (p *process) killGroup() {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
}

// freeze stops the process (SIGSTOP), for fault tests: a hung server. It
// returns once every thread of the process is stopped (a thread stops only
// when it next runs, which on a busy machine may take a while).
func (p *process) freeze() error {
	if err := p.signal(syscall.SIGSTOP); err != nil {
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	for !p.allThreadsStopped() {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not stop within 10s of SIGSTOP", p.name)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

// thaw resumes a frozen process (SIGCONT).
func (p *process) thaw() error { return p.signal(syscall.SIGCONT) }

// allThreadsStopped reports whether every thread of the process is in
// state T (stopped) in /proc.
func (p *process) allThreadsStopped() bool {
	dir := filepath.Join("/proc", strconv.Itoa(p.cmd.Process.Pid), "task")
	tasks, err := os.ReadDir(dir)
	if err != nil || len(tasks) == 0 {
		return false
	}
	for _, t := range tasks {
		b, err := os.ReadFile(filepath.Join(dir, t.Name(), "stat"))
		if err != nil {
			return false
		}
		// "pid (comm) S ...": the state follows the last ')'.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 || i+2 >= len(b) || (b[i+2] != 'T' && b[i+2] != 't') {
			return false
		}
	}
	return true
}

func (p *process) signal(sig syscall.Signal) error {
	if p.exited() {
		return fmt.Errorf("%s is not running", p.name)
	}
	return syscall.Kill(p.cmd.Process.Pid, sig)
}
