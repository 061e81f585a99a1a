package localdb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// PostgresOptions configures StartPostgres.
type PostgresOptions struct {
	// Dir holds everything of this server: the cluster in Dir/data, the log
	// in Dir/postgres.log and the last port in Dir/port. It is created if
	// missing and reused as is afterwards.
	Dir string
	// Port is the TCP port on 127.0.0.1; 0 picks a free one (reusing the
	// previous run's port when it is still free).
	Port int
	// Fast turns durability off (fsync, synchronous_commit,
	// full_page_writes) for throwaway test clusters. Never for real data.
	Fast bool
	// Logger receives one line when the server starts and stops; nil
	// discards.
	Logger *slog.Logger
}

// Postgres is a running private PostgreSQL server started by StartPostgres.
type Postgres struct {
	dir, dataDir string
	port         int
	proc         *process
	logger       *slog.Logger

	stopOnce sync.Once
	stopErr  error
}

// StartPostgres starts a private PostgreSQL server in opts.Dir, creating the
// cluster (initdb) on first use and reusing it afterwards, and returns once
// it accepts connections. It listens on 127.0.0.1 only, with its unix socket
// inside the data directory. When run as root the server runs as the
// postgres user, because PostgreSQL refuses to run as root.
func StartPostgres(ctx context.Context, opts PostgresOptions) (*Postgres, error) {
	if opts.Dir == "" {
		return nil, errors.New("start PostgreSQL: no directory given")
	}
	if err := supported(); err != nil {
		return nil, fmt.Errorf("start PostgreSQL: %w", err)
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("start PostgreSQL: %w", err)
	}
	logger := orDiscard(opts.Logger)
	begin := time.Now()

	bin, err := postgresBinDir()
	if err != nil {
		return nil, err
	}
	cred, err := postgresCredential()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("start PostgreSQL: create %s: %w", dir, err)
	}
	dataDir := filepath.Join(dir, "data")
	if cred != nil {
		if err := checkReachable(dir, cred); err != nil {
			return nil, err
		}
	}
	logPath := filepath.Join(dir, "postgres.log")
	if err := initCluster(ctx, bin, dataDir, logPath, cred); err != nil {
		return nil, err
	}
	if err := removeStalePID(dataDir); err != nil {
		return nil, err
	}

	for attempt := 0; ; attempt++ {
		port := opts.Port
		if port == 0 {
			if port, err = rememberedPort(filepath.Join(dir, "port"), attempt > 0); err != nil {
				return nil, fmt.Errorf("start PostgreSQL: %w", err)
			}
		}
		pg := &Postgres{dir: dir, dataDir: dataDir, port: port, logger: logger}
		err := pg.start(ctx, bin, logPath, opts.Fast, cred)
		if errors.Is(err, errAddrInUse) && opts.Port == 0 && attempt < 3 {
			continue
		}
		if err != nil {
			return nil, err
		}
		logger.Info("PostgreSQL started", "addr", pg.Addr(), "dir", dir, "took", time.Since(begin).Round(time.Millisecond))
		return pg, nil
	}
}

func (pg *Postgres) start(ctx context.Context, bin, logPath string, fast bool, cred *credential) error {
	sockDir := pg.dataDir
	// A unix socket path is limited to 107 bytes; without room for one the
	// server listens on TCP only, which is all we use.
	if len(sockDir)+len("/.s.PGSQL.65535.lock") > 107 {
		sockDir = ""
	}
	args := []string{
		"-D", pg.dataDir,
		"-p", strconv.Itoa(pg.port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories=" + sockDir,
		"-c", "logging_collector=off",
		"-c", "max_connections=200",
		"-c", "log_min_messages=warning",
	}
	if fast {
		args = append(args,
			"-c", "fsync=off",
			"-c", "synchronous_commit=off",
			"-c", "full_page_writes=off",
		)
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("start PostgreSQL: open log: %w", err)
	}
	defer logf.Close() // the child has its own descriptor
	offset := fileSize(logPath)

	cmd := exec.Command(filepath.Join(bin, "postgres"), args...)
	cmd.Dir = pg.dataDir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	// SIGQUIT is PostgreSQL's immediate shutdown: the postmaster takes its
	// backends down with it.
	proc, err := startProcess("PostgreSQL", cmd, syscall.SIGQUIT, cred)
	if err != nil {
		return err
	}
	pg.proc = proc

	fail := func(cause string) error {
		pg.proc.stop(syscall.SIGQUIT, 5*time.Second)
		tail := logTail(logPath, offset, 10)
		if strings.Contains(tail, "Address already in use") {
			return fmt.Errorf("start PostgreSQL on %s: %w", pg.Addr(), errAddrInUse)
		}
		return fmt.Errorf("start PostgreSQL in %s: %s; last lines of %s:%s", pg.dataDir, cause, logPath, tail)
	}

	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultStartTimeout)
		defer cancel()
	}
	dsn := pg.DSN("postgres") + "&connect_timeout=2"
	for {
		if pg.proc.exited() {
			return fail(fmt.Sprintf("server exited (%v)", pg.proc.err))
		}
		cctx, cancel := pg.proc.probeContext(ctx, 2*time.Second)
		c, err := pgconn.Connect(cctx, dsn)
		cancel()
		if err == nil {
			c.Close(ctx)
			return nil
		}
		select {
		case <-ctx.Done():
			return fail(fmt.Sprintf("not accepting connections on %s: %v (last error: %v)", pg.Addr(), ctx.Err(), err))
		case <-pg.proc.done:
		case <-time.After(pollInterval):
		}
	}
}

// Addr returns the server's host:port on the loopback interface.
func (pg *Postgres) Addr() string { return "127.0.0.1:" + strconv.Itoa(pg.port) }

// Port returns the server's TCP port.
func (pg *Postgres) Port() int { return pg.port }

// Dir returns the directory given in PostgresOptions.Dir, made absolute.
func (pg *Postgres) Dir() string { return pg.dir }

// DSN returns a connection URL for database as the superuser postgres
// (trust authentication; the server only listens on loopback).
func (pg *Postgres) DSN(database string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User("postgres"),
		Host:     pg.Addr(),
		Path:     "/" + database,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// EnsureDatabase creates database name if it does not exist yet.
func (pg *Postgres) EnsureDatabase(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, pg.DSN("postgres"))
	if err != nil {
		return fmt.Errorf("ensure database %s: %w", name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return fmt.Errorf("ensure database %s: %w", name, err)
	}
	if exists {
		return nil
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P04" { // duplicate_database: created concurrently
		return nil
	}
	if err != nil {
		return fmt.Errorf("ensure database %s: %w", name, err)
	}
	return nil
}

// Stop shuts the server down (PostgreSQL's fast shutdown: sessions are
// ended, data is flushed) and waits for it to exit. It is safe to call more
// than once.
func (pg *Postgres) Stop() error {
	pg.stopOnce.Do(func() {
		begin := time.Now()
		if pg.proc.stop(syscall.SIGINT, 60*time.Second) {
			pg.stopErr = fmt.Errorf("stop PostgreSQL in %s: did not shut down within 60s, killed", pg.dataDir)
			return
		}
		pg.logger.Info("PostgreSQL stopped", "addr", pg.Addr(), "took", time.Since(begin).Round(time.Millisecond))
	})
	return pg.stopErr
}

// postgresBinDir finds the directory holding initdb and postgres: the one of
// postgres on PATH, else the newest /usr/lib/postgresql/*/bin (Debian puts
// the binaries there, off PATH).
func postgresBinDir() (string, error) {
	if p, err := exec.LookPath("postgres"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		dir := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(dir, "initdb")); err == nil {
			return dir, nil
		}
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	sort.Slice(matches, func(i, j int) bool { return pgMajor(matches[i]) > pgMajor(matches[j]) })
	for _, m := range matches {
		dir := filepath.Dir(m)
		if _, err := os.Stat(filepath.Join(dir, "initdb")); err == nil {
			return dir, nil
		}
	}
	return "", errors.New(`PostgreSQL not found (no postgres on PATH or in /usr/lib/postgresql/*/bin): run "make deps" (installs Debian package postgresql)`)
}

// pgMajor extracts the major version from /usr/lib/postgresql/<major>/bin/postgres.
func pgMajor(path string) float64 {
	v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(filepath.Dir(path))), 64)
	return v
}

// postgresCredential returns the credential to run PostgreSQL with: nil
// (ourselves) unless we are root, then the postgres user.
func postgresCredential() (*credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, errors.New(`PostgreSQL refuses to run as root and there is no postgres user: run "make deps" (installs Debian package postgresql, which creates it)`)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &credential{uid: uint32(uid), gid: uint32(gid)}, nil
}

// checkReachable verifies that the postgres user can traverse every parent
// directory of dir; otherwise initdb fails with a confusing message.
func checkReachable(dir string, cred *credential) error {
	for d := dir; ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("start PostgreSQL: %w", err)
		}
		uid, gid, known := fileOwner(st)
		mode := st.Mode().Perm()
		ok := !known || mode&0o001 != 0 ||
			(uid == cred.uid && mode&0o100 != 0) ||
			(gid == cred.gid && mode&0o010 != 0)
		if !ok {
			return fmt.Errorf("start PostgreSQL: user postgres cannot enter %s (mode %v): run \"chmod o+x %s\" or use a data directory elsewhere", d, mode, d)
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// initCluster runs initdb unless dataDir already holds a cluster. It builds
// the cluster next to dataDir and renames it into place, so a crash during
// initdb never leaves a half-made cluster behind.
func initCluster(ctx context.Context, bin, dataDir, logPath string, cred *credential) error {
	if _, err := os.Stat(filepath.Join(dataDir, "PG_VERSION")); err == nil {
		if cred != nil {
			return chownTree(dataDir, cred)
		}
		return nil
	}
	if entries, err := os.ReadDir(dataDir); err == nil && len(entries) > 0 {
		return fmt.Errorf("start PostgreSQL: %s is not empty but holds no cluster (no PG_VERSION): move it away or use another directory", dataDir)
	}
	tmp := dataDir + ".initdb"
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("start PostgreSQL: %w", err)
	}
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return fmt.Errorf("start PostgreSQL: %w", err)
	}
	if cred != nil {
		if err := os.Chown(tmp, int(cred.uid), int(cred.gid)); err != nil {
			return fmt.Errorf("start PostgreSQL: %w", err)
		}
	}
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "initdb"),
		"-D", tmp, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C", "--no-instructions")
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.SysProcAttr = childAttr(cred, syscall.SIGKILL, false)
	out, err := cmd.CombinedOutput()
	if err != nil {
		_ = os.WriteFile(logPath, out, 0o644)
		return fmt.Errorf("initdb %s: %v; its output:%s", dataDir, err, logTail(logPath, 0, 10))
	}
	_ = os.Remove(dataDir) // an empty directory made by someone else
	if err := os.Rename(tmp, dataDir); err != nil {
		return fmt.Errorf("start PostgreSQL: %w", err)
	}
	return nil
}

// chownTree makes dir and everything in it owned by cred's user, for a
// cluster created by another user (PostgreSQL insists on owning it).
func chownTree(dir string, cred *credential) error {
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("start PostgreSQL: %w", err)
	}
	if uid, _, known := fileOwner(st); known && uid == cred.uid {
		return nil
	}
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, int(cred.uid), int(cred.gid))
	})
	if err != nil {
		return fmt.Errorf("start PostgreSQL: give %s to user postgres: %w", dir, err)
	}
	return nil
}

// removeStalePID removes postmaster.pid left by a server that crashed or was
// killed. PostgreSQL does that itself unless the recorded PID now belongs to
// another live process, which happens easily in containers. A postmaster
// that is really running on dataDir is an error.
func removeStalePID(dataDir string) error {
	pidFile := filepath.Join(dataDir, "postmaster.pid")
	b, err := os.ReadFile(pidFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("start PostgreSQL: %w", err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(first))
	if pid > 0 {
		// The postmaster's working directory is its data directory.
		if cwd, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/cwd"); err == nil && cwd == dataDir {
			return fmt.Errorf("start PostgreSQL: a server (pid %d) is already running on %s: stop it (kill -INT %d) or use another directory", pid, dataDir, pid)
		}
	}
	// The backends of a killed postmaster exit a moment after it: a server
	// started while one is still alive finds its shared memory attached and
	// refuses ("pre-existing shared memory block is still in use").
	waitForBackends(dataDir, 10*time.Second)
	if err := os.Remove(pidFile); err != nil {
		return fmt.Errorf("start PostgreSQL: remove stale %s: %w", pidFile, err)
	}
	locks, _ := filepath.Glob(filepath.Join(dataDir, ".s.PGSQL.*.lock"))
	for _, l := range locks {
		_ = os.Remove(l)
	}
	return nil
}

// PID is the postmaster's process id (for benchmarks that account the CPU
// time of the server and its backends).
func (pg *Postgres) PID() int { return pg.proc.cmd.Process.Pid }

// waitForBackends waits up to limit until no live process works in dataDir
// (a crashed server's backends, whose working directory it is). Zombies do
// not count: their memory is released. Where /proc does not exist it
// returns at once.
func waitForBackends(dataDir string, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) && backendAlive(dataDir) {
		time.Sleep(20 * time.Millisecond)
	}
}

func backendAlive(dataDir string) bool {
	cwds, _ := filepath.Glob("/proc/[0-9]*/cwd")
	for _, link := range cwds {
		if cwd, err := os.Readlink(link); err != nil || cwd != dataDir {
			continue
		}
		stat, err := os.ReadFile(filepath.Join(filepath.Dir(link), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ...; comm may hold spaces and parentheses.
		if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) && stat[i+2] != 'Z' {
			return true
		}
	}
	return false
}
