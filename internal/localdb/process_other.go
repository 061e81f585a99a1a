//go:build !linux

package localdb

import (
	"errors"
	"os/exec"
	"runtime"
	"syscall"
)

// supported reports whether managed servers can run here. They need Linux:
// a child that dies with its parent (pdeathsig) and process groups are
// what keep a crashed parent from leaving servers behind, and the servers'
// packages are Debian's.
func supported() error {
	return errors.New("managed ClickHouse, PostgreSQL and ZooKeeper servers run on Linux only, not on " + runtime.GOOS +
		": configure [postgres] dsn and [clickhouse] addr to use servers of your own")
}

func childAttr(*credential, syscall.Signal, bool) *syscall.SysProcAttr { return nil }

func startProcess(string, *exec.Cmd, syscall.Signal, *credential) (*process, error) {
	return nil, supported()
}

func (p *process) killGroup() { _ = p.cmd.Process.Kill() }

func (p *process) freeze() error { return supported() }
func (p *process) thaw() error   { return supported() }
