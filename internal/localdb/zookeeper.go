package localdb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ZooKeeperOptions configures StartZooKeeper.
type ZooKeeperOptions struct {
	// Dir holds everything of this server: zoo.cfg, data/ (snapshots and
	// transaction log, kept across restarts) and zookeeper.log. It is
	// created if missing and reused as is afterwards.
	Dir string
	// Port is the client port on 127.0.0.1; 0 picks a free one (reusing
	// the previous run's port when it is still free).
	Port int
	// TickTime is ZooKeeper's time unit; sessions may last from 2 to 120
	// ticks. 0 means 500 ms (sessions of 1 s to 60 s).
	TickTime time.Duration
	// Fast does not fsync the transaction log, for throwaway test data. A
	// killed server still keeps what it wrote (the operating system has
	// it); only a machine crash may lose the last writes.
	Fast bool
	// Logger receives one line when the server starts and stops; nil
	// discards.
	Logger *slog.Logger
}

// ZooKeeper is a running private ZooKeeper server (standalone mode) started
// by StartZooKeeper: the coordinator of a ClickHouse cluster and of
// postage's shard leases.
type ZooKeeper struct {
	dir    string
	port   int
	proc   *process
	logger *slog.Logger

	stopOnce sync.Once
	stopErr  error
}

// ZooKeeper's jars in Debian's zookeeper package, and slf4j's simple logger
// (a dependency of the package), which writes ZooKeeper's log to stderr.
var zooKeeperJars = []string{"/usr/share/java/zookeeper.jar", "/usr/share/java/slf4j-simple.jar"}

// StartZooKeeper writes zoo.cfg into opts.Dir, starts ZooKeeper (Debian's
// zookeeper package, run with java) and returns once it serves requests:
// the srvr command reports a Mode, which it does only when sessions can be
// opened (ClickHouse started before that may crash or lose its tables).
func StartZooKeeper(ctx context.Context, opts ZooKeeperOptions) (*ZooKeeper, error) {
	if opts.Dir == "" {
		return nil, errors.New("start ZooKeeper: no directory given")
	}
	if err := supported(); err != nil {
		return nil, fmt.Errorf("start ZooKeeper: %w", err)
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("start ZooKeeper: %w", err)
	}
	logger := orDiscard(opts.Logger)
	begin := time.Now()
	argv, err := zooKeeperCommand()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		return nil, fmt.Errorf("start ZooKeeper: %w", err)
	}
	for attempt := 0; ; attempt++ {
		zk := &ZooKeeper{dir: dir, port: opts.Port, logger: logger}
		if zk.port == 0 {
			if zk.port, err = rememberedPort(filepath.Join(dir, "port"), attempt > 0); err != nil {
				return nil, fmt.Errorf("start ZooKeeper: %w", err)
			}
		}
		err := zk.start(ctx, argv, opts)
		if errors.Is(err, errAddrInUse) && opts.Port == 0 && attempt < 3 {
			continue
		}
		if err != nil {
			return nil, err
		}
		logger.Info("ZooKeeper started", "addr", zk.Addr(), "dir", dir, "took", time.Since(begin).Round(time.Millisecond))
		return zk, nil
	}
}

// zooKeeperCommand returns java and its arguments up to the config file.
// The heap is small and the JIT stops at its first tier: a coordinator of a
// few servers needs little of either, and it starts faster.
func zooKeeperCommand() ([]string, error) {
	java, err := exec.LookPath("java")
	if err != nil {
		return nil, errors.New(`java not found: run "make deps" (installs Debian package zookeeper, which brings a Java runtime)`)
	}
	for _, j := range zooKeeperJars {
		if _, err := os.Stat(j); err != nil {
			return nil, fmt.Errorf(`ZooKeeper not found (no %s): run "make deps" (installs Debian package zookeeper)`, j)
		}
	}
	return []string{java,
		"-Xms16m", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
		"-Djava.net.preferIPv4Stack=true",
		"-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
		"-cp", strings.Join(zooKeeperJars, ":"),
		"org.apache.zookeeper.server.ZooKeeperServerMain",
	}, nil
}

func (zk *ZooKeeper) start(ctx context.Context, argv []string, opts ZooKeeperOptions) error {
	tick := opts.TickTime
	if tick <= 0 {
		tick = 500 * time.Millisecond
	}
	cfgPath := filepath.Join(zk.dir, "zoo.cfg")
	cfg := fmt.Sprintf(`# Written by postage (internal/localdb) on every start; edits are lost.
tickTime=%d
dataDir=%s
clientPort=%d
clientPortAddress=127.0.0.1
minSessionTimeout=%d
maxSessionTimeout=%d
maxClientCnxns=0
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr
autopurge.snapRetainCount=3
autopurge.purgeInterval=1
forceSync=%s
`, tick.Milliseconds(), filepath.Join(zk.dir, "data"), zk.port, 2*tick.Milliseconds(), 120*tick.Milliseconds(), map[bool]string{true: "no", false: "yes"}[opts.Fast])
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return fmt.Errorf("start ZooKeeper: write config: %w", err)
	}
	logPath := filepath.Join(zk.dir, "zookeeper.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("start ZooKeeper: open log: %w", err)
	}
	defer logf.Close() // the child has its own descriptor
	offset := fileSize(logPath)

	cmd := exec.Command(argv[0], append(argv[1:], cfgPath)...)
	cmd.Dir = zk.dir
	cmd.Stdout, cmd.Stderr = logf, logf
	proc, err := startProcess("ZooKeeper", cmd, syscall.SIGKILL, nil)
	if err != nil {
		return err
	}
	zk.proc = proc

	fail := func(cause string) error {
		zk.proc.stop(syscall.SIGKILL, 0)
		tail := logTail(logPath, offset, 10)
		if strings.Contains(tail, "Address already in use") {
			return fmt.Errorf("start ZooKeeper on %s: %w", zk.Addr(), errAddrInUse)
		}
		return fmt.Errorf("start ZooKeeper in %s: %s; last lines of %s:%s", zk.dir, cause, logPath, tail)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultStartTimeout)
		defer cancel()
	}
	for {
		if zk.proc.exited() {
			return fail(fmt.Sprintf("server exited (%v)", zk.proc.err))
		}
		pctx, cancel := zk.proc.probeContext(ctx, 2*time.Second)
		mode, err := zooKeeperMode(pctx, zk.Addr())
		cancel()
		if err == nil && mode != "" {
			return nil
		}
		if err == nil {
			err = errors.New("not serving requests yet")
		}
		select {
		case <-ctx.Done():
			return fail(fmt.Sprintf("not serving on %s: %v (last error: %v)", zk.Addr(), ctx.Err(), err))
		case <-zk.proc.done:
		case <-time.After(pollInterval):
		}
	}
}

// zooKeeperMode asks the server at addr for its mode with the srvr command:
// "standalone", "leader" or "follower" once it serves sessions, "" while it
// does not yet.
func zooKeeperMode(ctx context.Context, addr string) (string, error) {
	out, err := fourLetterWord(ctx, addr, "srvr")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(out, "\n") {
		if m, ok := strings.CutPrefix(line, "Mode: "); ok {
			return strings.TrimSpace(m), nil
		}
	}
	return "", nil
}

// fourLetterWord sends one of ZooKeeper's four-letter commands (those of
// 4lw.commands.whitelist in zoo.cfg) and returns the answer.
func fourLetterWord(ctx context.Context, addr, cmd string) (string, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if _, err := io.WriteString(c, cmd); err != nil {
		return "", err
	}
	b, err := io.ReadAll(c)
	return string(b), err
}

// Addr returns host:port of the client port on the loopback interface.
func (zk *ZooKeeper) Addr() string { return "127.0.0.1:" + strconv.Itoa(zk.port) }

// Port returns the client port.
func (zk *ZooKeeper) Port() int { return zk.port }

// Dir returns the directory given in ZooKeeperOptions.Dir, made absolute.
func (zk *ZooKeeper) Dir() string { return zk.dir }

// PID is the server's process id.
func (zk *ZooKeeper) PID() int { return zk.proc.cmd.Process.Pid }

// Stop shuts the server down (SIGTERM) and waits for it to exit, killing it
// after 30 seconds. Sessions are not closed: they expire when the server
// comes back and their timeout passes, as after a crash. It is safe to call
// more than once.
func (zk *ZooKeeper) Stop() error { return zk.stop(30 * time.Second) }

// Kill stops the server at once (SIGKILL). It is safe to call more than
// once, also after Stop.
func (zk *ZooKeeper) Kill() error { return zk.stop(0) }

func (zk *ZooKeeper) stop(grace time.Duration) error {
	zk.stopOnce.Do(func() {
		begin := time.Now()
		_ = zk.proc.thaw() // a frozen JVM cannot handle SIGTERM
		if grace == 0 {
			zk.proc.stop(syscall.SIGKILL, 0)
		} else if zk.proc.stop(syscall.SIGTERM, grace) {
			zk.stopErr = fmt.Errorf("stop ZooKeeper in %s: did not shut down within %v, killed", zk.dir, grace)
			return
		}
		zk.logger.Info("ZooKeeper stopped", "addr", zk.Addr(), "took", time.Since(begin).Round(time.Millisecond))
	})
	return zk.stopErr
}

// Freeze stops the server's process (SIGSTOP) without closing its
// connections: clients see a server that accepts nothing and answers
// nothing, the way a hung or partitioned server looks. Thaw resumes it.
func (zk *ZooKeeper) Freeze() error {
	if zk.proc.exited() {
		return fmt.Errorf("freeze ZooKeeper on %s: not running", zk.Addr())
	}
	return zk.proc.freeze()
}

// Thaw resumes a server stopped by Freeze.
func (zk *ZooKeeper) Thaw() error {
	if zk.proc.exited() {
		return fmt.Errorf("thaw ZooKeeper on %s: not running", zk.Addr())
	}
	return zk.proc.thaw()
}
