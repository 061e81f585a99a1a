package localdb

import (
	"fmt"
	"os/exec"
	"runtime"
	"syscall"
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

// freeze stops the process (SIGSTOP) and thaw resumes it (SIGCONT), for
// fault tests: a hung server.
func (p *process) freeze() error { return p.signal(syscall.SIGSTOP) }
func (p *process) thaw() error   { return p.signal(syscall.SIGCONT) }

func (p *process) signal(sig syscall.Signal) error {
	if p.exited() {
		return fmt.Errorf("%s is not running", p.name)
	}
	return syscall.Kill(p.cmd.Process.Pid, sig)
}
