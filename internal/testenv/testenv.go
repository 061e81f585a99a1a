// Package testenv gives tests real, migrated databases: one private
// PostgreSQL and ClickHouse pair per test binary (started on first use, in a
// temporary directory, stopped and removed at the end), and a fresh database
// in each for every call of New, so tests never see each other's data.
//
// Use it in every package whose tests touch storage:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
//
//	func TestSomething(t *testing.T) {
//		env := testenv.New(t)
//		// env.PG, env.CH, ...
//	}
//
// Tests may call t.Parallel: each gets its own databases.
package testenv

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"postage/internal/db"
	"postage/internal/localdb"
)

// Env is one test's storage: a fresh, migrated database on each server.
type Env struct {
	PG         *pgxpool.Pool // pool on PGDatabase; closed when the test ends
	PGDSN      string        // URL of PGDatabase, for opening more connections
	PGDatabase string

	CH         driver.Conn // native connection on CHDatabase; closed when the test ends
	CHAddr     string      // host:port of the native protocol
	CHDatabase string

	// The servers, shared by all tests of the binary: do not stop them.
	PGServer *localdb.Postgres
	CHServer *localdb.ClickHouse
}

// templateDB is the PostgreSQL database migrated once per test binary and
// copied (CREATE DATABASE ... TEMPLATE) for every test: much faster than
// migrating each test's database.
const templateDB = "postage_template"

// servers is the pair shared by the tests of one binary.
type servers struct {
	dir     string
	pg      *localdb.Postgres
	ch      *localdb.ClickHouse
	pgAdmin *pgxpool.Pool // on database postgres, for CREATE/DROP DATABASE
	chAdmin driver.Conn   // on database default, for DROP DATABASE
}

// Per test binary state; a test binary is one process, so this is its "main".
var (
	mainCalled atomic.Bool
	startOnce  sync.Once
	shared     *servers
	startErr   error
	stopOnce   sync.Once
	dbCounter  atomic.Int64
)

// Main runs the tests of a package and then stops the servers, if New
// started them, removes their directory and exits with the tests' code.
// Call it from TestMain. An interrupt (Ctrl-C) stops the servers too.
func Main(m *testing.M) {
	mainCalled.Store(true)
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-sigc
		shutdown()
		fmt.Fprintf(os.Stderr, "testenv: %v: servers stopped\n", sig)
		os.Exit(130)
	}()
	code := m.Run()
	signal.Stop(sigc)
	shutdown()
	os.Exit(code)
}

// New returns fresh migrated databases for t on the binary's server pair,
// starting the pair on first use. The connections are closed and the
// databases dropped when t ends. If the servers cannot start, New fails the
// test with the reason; it never skips.
func New(t testing.TB) *Env {
	t.Helper()
	if !mainCalled.Load() {
		t.Fatal("testenv: this package has no TestMain calling testenv.Main: add func TestMain(m *testing.M) { testenv.Main(m) }")
	}
	startOnce.Do(func() { startErr = start() })
	if startErr != nil {
		t.Fatal(startErr)
	}
	s := shared
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	name := databaseName(t.Name(), dbCounter.Add(1))
	env := &Env{
		PGDSN:      s.pg.DSN(name),
		PGDatabase: name,
		CHAddr:     s.ch.Addr(),
		CHDatabase: name,
		PGServer:   s.pg,
		CHServer:   s.ch,
	}
	if _, err := s.pgAdmin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" TEMPLATE "+templateDB+" STRATEGY FILE_COPY"); err != nil {
		t.Fatalf("testenv: create PostgreSQL database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if env.PG != nil {
			env.PG.Close()
		}
		if env.CH != nil {
			env.CH.Close()
		}
		if _, err := s.pgAdmin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Logf("testenv: drop PostgreSQL database %s: %v", name, err)
		}
		if err := s.chAdmin.Exec(ctx, "DROP DATABASE IF EXISTS "+name); err != nil {
			t.Logf("testenv: drop ClickHouse database %s: %v", name, err)
		}
	})

	var err error
	if env.PG, err = db.OpenPostgres(ctx, env.PGDSN); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	// OpenClickHouse creates the database.
	if env.CH, err = db.OpenClickHouse(ctx, db.ClickHouseOptions{Addr: env.CHAddr, Database: name}); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if err := db.MigrateClickHouse(ctx, env.CH, name); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return env
}

// start starts the pair concurrently in a new temporary directory, prepares
// the migrated PostgreSQL template and sets shared.
func start() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	removeStaleDirs()
	dir, err := os.MkdirTemp(baseDir(), "postage-testenv-"+strconv.Itoa(os.Getpid())+"-")
	if err != nil {
		return fmt.Errorf("testenv: %w", err)
	}
	// PostgreSQL runs as user postgres when we are root: it must enter dir.
	if err := os.Chmod(dir, 0o755); err != nil {
		return fmt.Errorf("testenv: %w", err)
	}
	s := &servers{dir: dir}
	shared = s // so that shutdown cleans up even when start fails half way

	var wg sync.WaitGroup
	var pgErr, chErr error
	wg.Go(func() {
		s.pg, pgErr = localdb.StartPostgres(ctx, localdb.PostgresOptions{Dir: filepath.Join(dir, "postgres"), Fast: true})
	})
	wg.Go(func() {
		s.ch, chErr = localdb.StartClickHouse(ctx, localdb.ClickHouseOptions{Dir: filepath.Join(dir, "clickhouse"), HTTPPort: -1})
	})
	wg.Wait()
	if pgErr != nil {
		return fmt.Errorf("testenv: %w", pgErr)
	}
	if chErr != nil {
		return fmt.Errorf("testenv: %w", chErr)
	}

	if s.pgAdmin, err = db.OpenPostgres(ctx, s.pg.DSN("postgres")); err != nil {
		return fmt.Errorf("testenv: %w", err)
	}
	if s.chAdmin, err = db.OpenClickHouse(ctx, db.ClickHouseOptions{Addr: s.ch.Addr()}); err != nil {
		return fmt.Errorf("testenv: %w", err)
	}
	if _, err := s.pgAdmin.Exec(ctx, "CREATE DATABASE "+templateDB); err != nil {
		return fmt.Errorf("testenv: create template database: %w", err)
	}
	tmpl, err := db.OpenPostgres(ctx, s.pg.DSN(templateDB))
	if err != nil {
		return fmt.Errorf("testenv: %w", err)
	}
	err = db.MigratePostgres(ctx, tmpl)
	tmpl.Close()
	if err != nil {
		return fmt.Errorf("testenv: %w", err)
	}
	// Nobody may connect to the template: CREATE DATABASE ... TEMPLATE
	// fails while anyone is connected to it.
	if _, err := s.pgAdmin.Exec(ctx, "ALTER DATABASE "+templateDB+" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false"); err != nil {
		return fmt.Errorf("testenv: seal template database: %w", err)
	}
	return nil
}

// shutdown stops the servers and removes their directory, once.
func shutdown() {
	stopOnce.Do(func() {
		s := shared
		if s == nil {
			return
		}
		if s.pgAdmin != nil {
			s.pgAdmin.Close()
		}
		if s.chAdmin != nil {
			s.chAdmin.Close()
		}
		var wg sync.WaitGroup
		if s.pg != nil {
			wg.Go(func() { _ = s.pg.Stop() })
		}
		if s.ch != nil {
			// The data is thrown away: no need for a graceful shutdown.
			wg.Go(func() { _ = s.ch.Kill() })
		}
		wg.Wait()
		_ = os.RemoveAll(s.dir)
	})
}

// removeStaleDirs removes the directories of test binaries that died
// without cleaning up (killed, or panicked on -timeout).
func removeStaleDirs() {
	dirs, _ := filepath.Glob(filepath.Join(baseDir(), "postage-testenv-*-*"))
	for _, d := range dirs {
		rest := strings.TrimPrefix(filepath.Base(d), "postage-testenv-")
		pidText, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		if processGone(pid) {
			_ = os.RemoveAll(d)
		}
	}
}

// databaseName makes a unique database name that shows which test owns it:
// t<n>_<test name>, lower case, at most 63 bytes (PostgreSQL's limit).
func databaseName(test string, n int64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "t%d_", n)
	for _, r := range strings.ToLower(test) {
		if b.Len() >= 63 {
			break
		}
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}
