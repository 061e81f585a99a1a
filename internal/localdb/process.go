package localdb

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// process is a server child process. It runs in its own process group, so a
// Ctrl-C on the terminal reaches only the parent (which then stops the server
// gracefully), and it gets pdeathsig when the parent dies, so a crashed or
// killed parent never leaves a server behind. Starting one is Linux-only
// (process_linux.go): the rest of this file is portable.
type process struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // result of Wait; valid after done is closed
}

// credential is the user a child runs as (PostgreSQL refuses root).
type credential struct {
	uid, gid uint32
}

// exited reports whether the process has exited.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// probeContext returns a context for one readiness probe: it ends after d,
// with ctx, or as soon as the process exits, so a probe never waits on a
// port held by another program after our server gave up.
func (p *process) probeContext(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	pctx, cancel := context.WithTimeout(ctx, d)
	go func() {
		select {
		case <-p.done:
			cancel()
		case <-pctx.Done():
		}
	}()
	return pctx, cancel
}

// stop sends sig, waits up to grace for the process to exit, then kills its
// whole process group and waits for it. It reports whether the process had
// to be killed.
func (p *process) stop(sig syscall.Signal, grace time.Duration) (killed bool) {
	if p.exited() {
		return false
	}
	_ = p.cmd.Process.Signal(sig)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
		return false
	case <-t.C:
	}
	p.killGroup()
	<-p.done
	return true
}

// logTail returns the last n lines of the file at path written after offset,
// indented for appending to an error message, or "" if there are none.
func logTail(path string, offset int64, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() < offset {
		offset = 0 // rotated or truncated
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return ""
	}
	// Read at most the last 64 KiB: enough for n lines.
	data, err := io.ReadAll(f)
	if err != nil {
		return ""
	}
	if len(data) > 64<<10 {
		data = data[len(data)-64<<10:]
	}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if line := strings.TrimRight(sc.Text(), " \t\r"); line != "" {
			lines = append(lines, line)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	if len(lines) == 0 {
		return ""
	}
	return "\n    " + strings.Join(lines, "\n    ")
}

// fileSize returns the size of the file at path, 0 if it does not exist.
func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
// Another process may take it before the server binds it; callers retry
// with a new port when the server reports that the address is in use.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free loopback port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// freePorts returns n distinct free loopback ports: every listener stays
// open until all are chosen, so the kernel cannot hand one port out twice
// (it may, to successive freePort calls).
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free loopback port: %w", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// portFree reports whether port can be bound on 127.0.0.1 right now.
func portFree(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// rememberedPort returns the port stored in path by a previous run if it is
// free now, so a development server keeps its address across restarts;
// otherwise a fresh free port. It stores the chosen port in path.
func rememberedPort(path string, fresh bool) (int, error) {
	if !fresh {
		if b, err := os.ReadFile(path); err == nil {
			if p, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && p > 0 && p < 65536 && portFree(p) {
				return p, nil
			}
		}
	}
	p, err := freePort()
	if err != nil {
		return 0, err
	}
	if err := os.WriteFile(path, []byte(strconv.Itoa(p)+"\n"), 0o644); err != nil {
		return 0, fmt.Errorf("remember port: %w", err)
	}
	return p, nil
}

// errAddrInUse marks a startup failure caused by a port taken by another
// process between choosing and binding it.
var errAddrInUse = errors.New("address already in use")

// pollInterval is how often the start functions probe a starting server.
const pollInterval = 20 * time.Millisecond

// defaultStartTimeout bounds startup when the context has no deadline. It is
// generous because crash recovery of a large data directory takes a while.
const defaultStartTimeout = 2 * time.Minute

func orDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}
