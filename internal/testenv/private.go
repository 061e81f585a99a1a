package testenv

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"postage/internal/db"
	"postage/internal/localdb"
)

// Private is a server pair of one test alone, which the test may kill,
// stop and restart to see how code behaves while a database is away.
// Tests that do not take servers down use New (shared servers, much
// cheaper).
type Private struct {
	Env
	dir string
}

// privateDatabase is the database Private migrates on both servers.
const privateDatabase = "postage"

// NewPrivate starts a PostgreSQL and ClickHouse pair for t alone in a new
// directory, migrates database "postage" on both, and stops and removes
// everything when t ends. Env.PG and Env.CH are connections of the test's
// own; the servers are Env.PGServer and Env.CHServer.
func NewPrivate(t testing.TB) *Private {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp(baseDir(), "postage-testenv-"+strconv.Itoa(os.Getpid())+"-private-")
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	// PostgreSQL runs as user postgres when we are root: it must enter dir.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	p := &Private{dir: dir}
	t.Cleanup(func() {
		if p.PG != nil {
			p.PG.Close()
		}
		if p.CH != nil {
			p.CH.Close()
		}
		if p.PGServer != nil {
			p.KillPostgres(t)
		}
		if p.CHServer != nil {
			_ = p.CHServer.Kill()
		}
		_ = os.RemoveAll(dir)
	})
	p.StartPostgres(t)
	p.StartClickHouse(t)
	p.PGDatabase, p.CHDatabase, p.CHAddr = privateDatabase, privateDatabase, p.CHServer.Addr()
	p.PGDSN = p.PGServer.DSN(privateDatabase)
	if err := p.PGServer.EnsureDatabase(ctx, privateDatabase); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if p.PG, err = db.OpenPostgres(ctx, p.PGDSN); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if p.CH, err = db.OpenClickHouse(ctx, db.ClickHouseOptions{Addr: p.CHAddr, Database: privateDatabase}); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if err := db.Migrate(ctx, p.PG, p.CH, privateDatabase); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return p
}

// StartPostgres starts (or restarts, on the same port and data) the
// private PostgreSQL server.
func (p *Private) StartPostgres(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pg, err := localdb.StartPostgres(ctx, localdb.PostgresOptions{Dir: filepath.Join(p.dir, "postgres"), Fast: true})
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	p.PGServer = pg
}

// StartClickHouse starts (or restarts, on the same port and data) the
// private ClickHouse server.
func (p *Private) StartClickHouse(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ch, err := localdb.StartClickHouse(ctx, localdb.ClickHouseOptions{Dir: filepath.Join(p.dir, "clickhouse"), HTTPPort: -1})
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	p.CHServer = ch
}

// StopPostgres shuts PostgreSQL down gracefully (sessions are ended with
// SQLSTATE 57P01, then connections are refused).
func (p *Private) StopPostgres(t testing.TB) {
	t.Helper()
	if err := p.PGServer.Stop(); err != nil {
		t.Fatalf("testenv: %v", err)
	}
}

// KillPostgres kills PostgreSQL and its backends at once (SIGKILL to its
// process group): connections break mid-answer, then are refused. A later
// start waits for the killed backends to be gone (localdb.StartPostgres).
func (p *Private) KillPostgres(t testing.TB) {
	t.Helper()
	kill(p.PGServer.PID(), true)
	_ = p.PGServer.Stop() // waits for the postmaster's exit
}

// StopClickHouse shuts ClickHouse down gracefully.
func (p *Private) StopClickHouse(t testing.TB) {
	t.Helper()
	if err := p.CHServer.Stop(); err != nil {
		t.Fatalf("testenv: %v", err)
	}
}

// KillClickHouse kills ClickHouse at once (SIGKILL).
func (p *Private) KillClickHouse(t testing.TB) {
	t.Helper()
	if err := p.CHServer.Kill(); err != nil {
		t.Fatalf("testenv: %v", err)
	}
}

// FreezePostgres stalls PostgreSQL (SIGSTOP to the postmaster and its
// backends): connections stay open and connects are accepted, but nothing
// answers until ThawPostgres.
func (p *Private) FreezePostgres(t testing.TB) {
	t.Helper()
	freeze(p.PGServer.PID(), true)
	t.Cleanup(func() { thaw(p.PGServer.PID(), true) })
}

// ThawPostgres lets a frozen PostgreSQL run again.
func (p *Private) ThawPostgres(t testing.TB) {
	t.Helper()
	thaw(p.PGServer.PID(), true)
}

// FreezeClickHouse stalls ClickHouse (SIGSTOP) until ThawClickHouse.
func (p *Private) FreezeClickHouse(t testing.TB) {
	t.Helper()
	freeze(p.CHServer.PID(), false)
	t.Cleanup(func() { thaw(p.CHServer.PID(), false) })
}

// ThawClickHouse lets a frozen ClickHouse run again.
func (p *Private) ThawClickHouse(t testing.TB) {
	t.Helper()
	thaw(p.CHServer.PID(), false)
}
