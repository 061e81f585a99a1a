//go:build linux

package localdb

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/jackc/pgx/v5"
)

// tempDir returns a temporary directory the postgres user can enter when the
// tests run as root.
func tempDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for d := dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestPostgresRestartKeepsData(t *testing.T) {
	ctx := context.Background()
	dir := tempDir(t)
	opts := PostgresOptions{Dir: filepath.Join(dir, "pg"), Fast: true, Logger: nil}

	pg, err := StartPostgres(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := pg.EnsureDatabase(ctx, "app"); err != nil {
		t.Fatal(err)
	}
	if err := pg.EnsureDatabase(ctx, "app"); err != nil {
		t.Fatalf("second EnsureDatabase: %v", err)
	}
	pgExec(t, pg.DSN("app"), "CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)")
	port := pg.Port()
	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := pg.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}

	pg, err = StartPostgres(ctx, opts)
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	defer pg.Stop()
	if pg.Port() != port {
		t.Errorf("port after restart = %d, want the remembered %d", pg.Port(), port)
	}
	if got := queryInt(t, pg.DSN("app"), "SELECT v FROM kept"); got != 42 {
		t.Errorf("after restart got %d, want 42", got)
	}
}

func TestPostgresAfterCrash(t *testing.T) {
	ctx := context.Background()
	// Not Fast: with fsync and synchronous_commit off a crash may lose the
	// last commits, by design.
	opts := PostgresOptions{Dir: filepath.Join(tempDir(t), "pg")}
	pg, err := StartPostgres(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	pgExec(t, pg.DSN("postgres"), "CREATE TABLE kept (v int); INSERT INTO kept VALUES (7)")
	// Crash: kill the postmaster and its backends, and leave a
	// postmaster.pid naming a live process that is not PostgreSQL (PID
	// reuse), which PostgreSQL itself refuses.
	syscall.Kill(-pg.proc.cmd.Process.Pid, syscall.SIGKILL)
	<-pg.proc.done
	pidFile := filepath.Join(pg.dataDir, "postmaster.pid")
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(string(b), "\n")
	if err := os.WriteFile(pidFile, []byte("1\n"+rest), 0o600); err != nil {
		t.Fatal(err)
	}

	pg, err = StartPostgres(ctx, opts)
	if err != nil {
		t.Fatalf("start after crash: %v", err)
	}
	defer pg.Stop()
	if got := queryInt(t, pg.DSN("postgres"), "SELECT v FROM kept"); got != 7 {
		t.Errorf("after crash got %d, want 7", got)
	}
}

func TestPostgresRefusesRunningDir(t *testing.T) {
	ctx := context.Background()
	opts := PostgresOptions{Dir: filepath.Join(tempDir(t), "pg"), Fast: true}
	pg, err := StartPostgres(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Stop()
	_, err = StartPostgres(ctx, opts)
	if err == nil || !strings.Contains(err.Error(), "already running") {
		t.Fatalf("second server on the same dir: got %v, want an 'already running' error", err)
	}
}

// Data survives a clean stop and a crash (SIGKILL) of ClickHouse: the
// next start on the same directory serves it.
func TestClickHouseRestartKeepsData(t *testing.T) {
	tests := []struct {
		name string
		opts ClickHouseOptions
		stop func(*ClickHouse) error
		want uint32
	}{
		{"clean stop", ClickHouseOptions{}, (*ClickHouse).Stop, 42},
		{"crash", ClickHouseOptions{HTTPPort: -1}, (*ClickHouse).Kill, 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			opts := tt.opts
			opts.Dir = filepath.Join(t.TempDir(), "ch")
			ch, err := StartClickHouse(ctx, opts)
			if err != nil {
				t.Fatal(err)
			}
			chExec(t, ch.Addr(), "CREATE TABLE default.kept (v UInt32) ENGINE = MergeTree ORDER BY v")
			chExec(t, ch.Addr(), fmt.Sprintf("INSERT INTO default.kept (v) SELECT %d", tt.want))
			if err := tt.stop(ch); err != nil {
				t.Fatal(err)
			}
			ch, err = StartClickHouse(ctx, opts)
			if err != nil {
				t.Fatalf("start again: %v", err)
			}
			defer ch.Kill()
			conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{ch.Addr()}})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			var got uint32
			if err := conn.QueryRow(ctx, "SELECT v FROM default.kept").Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %d, want %d", got, tt.want)
			}
		})
	}
}

func TestClickHouseBusyPort(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	_, err = StartClickHouse(context.Background(), ClickHouseOptions{Dir: filepath.Join(t.TempDir(), "ch"), TCPPort: port, HTTPPort: -1})
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("start on a busy port: got %v, want 'address already in use'", err)
	}
}

func TestPairStartsConcurrently(t *testing.T) {
	ctx := context.Background()
	dir := tempDir(t)
	begin := time.Now()
	var wg sync.WaitGroup
	var pg *Postgres
	var ch *ClickHouse
	var pgErr, chErr error
	wg.Go(func() { pg, pgErr = StartPostgres(ctx, PostgresOptions{Dir: filepath.Join(dir, "pg"), Fast: true}) })
	wg.Go(func() {
		ch, chErr = StartClickHouse(ctx, ClickHouseOptions{Dir: filepath.Join(dir, "ch"), HTTPPort: -1})
	})
	wg.Wait()
	if pgErr != nil || chErr != nil {
		t.Fatal(pgErr, chErr)
	}
	t.Logf("pair started in %v (with initdb)", time.Since(begin))
	begin = time.Now()
	wg.Go(func() { pgErr = pg.Stop() })
	wg.Go(func() { chErr = ch.Stop() })
	wg.Wait()
	if pgErr != nil || chErr != nil {
		t.Fatal(pgErr, chErr)
	}
	t.Logf("pair stopped in %v", time.Since(begin))
}

func pgExec(t *testing.T, dsn, sql string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatal(err)
	}
}

func queryInt(t *testing.T, dsn, sql string) int {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var v int
	if err := conn.QueryRow(ctx, sql).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func chExec(t *testing.T, addr, sql string) {
	t.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := conn.Exec(ctx, sql); err != nil {
		t.Fatal(err)
	}
}

func TestPostgresBusyPort(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	_, err = StartPostgres(context.Background(), PostgresOptions{Dir: filepath.Join(tempDir(t), "pg"), Port: port, Fast: true})
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("start on a busy port: got %v, want 'address already in use'", err)
	}
	t.Log(err)
}

func TestClickHouseRefusesRunningDir(t *testing.T) {
	ctx := context.Background()
	opts := ClickHouseOptions{Dir: filepath.Join(t.TempDir(), "ch"), HTTPPort: -1}
	ch, err := StartClickHouse(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Kill()
	opts.TCPPort = 0
	_, err = StartClickHouse(ctx, opts)
	if err == nil {
		t.Fatal("second server on the same dir started")
	}
	t.Log(err)
}
