package db_test

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"

	"postage/internal/db"
	"postage/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestOpenPostgresUnreachable(t *testing.T) {
	port := closedPort(t)
	_, err := db.OpenPostgres(context.Background(), "postgres://postgres@127.0.0.1:"+port+"/x?sslmode=disable&connect_timeout=2")
	want := "cannot reach PostgreSQL at 127.0.0.1:" + port + ": "
	if err == nil || !strings.HasPrefix(err.Error(), want) || !strings.HasSuffix(err.Error(), "(is it running? check [postgres] dsn)") {
		t.Fatalf("got %v, want %q...", err, want)
	}
	if _, err := db.OpenPostgres(context.Background(), "postgres://::bad"); err == nil || !strings.Contains(err.Error(), "invalid PostgreSQL dsn") {
		t.Errorf("bad dsn: got %v", err)
	}
}

func TestOpenClickHouseUnreachable(t *testing.T) {
	port := closedPort(t)
	_, err := db.OpenClickHouse(context.Background(), db.ClickHouseOptions{Addr: "127.0.0.1:" + port})
	want := "cannot reach ClickHouse at 127.0.0.1:" + port + ": "
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("got %v, want %q...", err, want)
	}
}

func TestOpenClickHouseCreatesDatabase(t *testing.T) {
	ctx := context.Background()
	env := testenv.New(t)
	name := env.CHDatabase + "_new"
	conn, err := db.OpenClickHouse(ctx, db.ClickHouseOptions{Addr: env.CHAddr, Database: name, MaxOpenConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	defer env.CH.Exec(ctx, "DROP DATABASE IF EXISTS "+name)
	var got string
	if err := conn.QueryRow(ctx, "SELECT currentDatabase()").Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != name {
		t.Errorf("currentDatabase() = %q, want %q", got, name)
	}
}

func TestMigrateIdempotent(t *testing.T) {
	ctx := context.Background()
	env := testenv.New(t) // already migrated
	before := countPG(t, env, "SELECT count(*) FROM schema_migrations")
	for i := 0; i < 2; i++ {
		if err := db.Migrate(ctx, env.PG, env.CH, env.CHDatabase); err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
	}
	if after := countPG(t, env, "SELECT count(*) FROM schema_migrations"); after != before {
		t.Errorf("schema_migrations rows %d -> %d, want unchanged", before, after)
	}
	if before == 0 {
		t.Error("no PostgreSQL migrations recorded")
	}
}

// TestMigratePostgresConcurrent migrates a fresh database from several
// goroutines at once, as replicas starting together do.
func TestMigratePostgresConcurrent(t *testing.T) {
	ctx := context.Background()
	env := testenv.New(t)
	name := env.PGDatabase + "_fresh"
	if err := env.PGServer.EnsureDatabase(ctx, name); err != nil {
		t.Fatal(err)
	}
	pool, err := db.OpenPostgres(ctx, env.PGServer.DSN(name))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	ms := []db.Migration{
		{Version: 1, Name: "0001_a.sql", SQL: "CREATE TABLE a (x int);\nINSERT INTO a VALUES (1);"},
		{Version: 2, Name: "0002_b.sql", SQL: "ALTER TABLE a ADD COLUMN y int;"},
	}
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { errs[i] = db.MigratePostgresWith(ctx, pool, ms) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("migrator %d: %v", i, err)
		}
	}
	var n, rows int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM schema_migrations").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM a").Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if n != 2 || rows != 1 {
		t.Errorf("got %d migrations and %d rows, want 2 and 1 (each migration once)", n, rows)
	}
}

func TestMigratePostgresFailureRollsBack(t *testing.T) {
	ctx := context.Background()
	env := testenv.New(t)
	ms := []db.Migration{
		{Version: 9001, Name: "9001_ok.sql", SQL: "CREATE TABLE ok9001 (x int);"},
		{Version: 9002, Name: "9002_bad.sql", SQL: "CREATE TABLE bad9002 (x int);\nSELECT no_such_column FROM ok9001;"},
	}
	err := db.MigratePostgresWith(ctx, env.PG, ms)
	if err == nil || !strings.Contains(err.Error(), "9002_bad.sql") {
		t.Fatalf("got %v, want an error naming 9002_bad.sql", err)
	}
	if n := countPG(t, env, "SELECT count(*) FROM schema_migrations WHERE version IN (9001, 9002)"); n != 1 {
		t.Errorf("%d of the two recorded, want only 9001", n)
	}
	if n := countPG(t, env, "SELECT count(*) FROM pg_tables WHERE tablename = 'bad9002'"); n != 0 {
		t.Error("the failed migration's first statement was not rolled back")
	}
}

func TestMigrateClickHouse(t *testing.T) {
	ctx := context.Background()
	env := testenv.New(t)
	ms := []db.Migration{
		{Version: 9020, Name: "9020_ev.sql", SQL: `-- events
CREATE TABLE IF NOT EXISTS ev (
    customer String,
    id       String
) ENGINE = ReplacingMergeTree ORDER BY (customer, id);

INSERT INTO ev (customer, id) SELECT 'c', 'seed';
`},
		{Version: 9021, Name: "9021_more.sql", SQL: "ALTER TABLE ev ADD COLUMN n UInt32 DEFAULT 1;\n"},
	}
	for i := 0; i < 2; i++ {
		if err := db.MigrateClickHouseWith(ctx, env.CH, env.CHDatabase, ms); err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
	}
	var rows, versions uint64
	if err := env.CH.QueryRow(ctx, "SELECT count() FROM ev").Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if err := env.CH.QueryRow(ctx, "SELECT count() FROM schema_migrations WHERE version >= 9020").Scan(&versions); err != nil {
		t.Fatal(err)
	}
	if rows != 1 || versions != 2 {
		t.Errorf("got %d rows and %d versions, want 1 and 2 (each migration once)", rows, versions)
	}
}

func TestMigrateClickHouseWrongDatabase(t *testing.T) {
	env := testenv.New(t)
	err := db.MigrateClickHouse(context.Background(), env.CH, env.CHDatabase+"_other")
	if err == nil || !strings.Contains(err.Error(), "connection uses database") {
		t.Fatalf("got %v, want a database mismatch error", err)
	}
	env.CH.Exec(context.Background(), "DROP DATABASE IF EXISTS "+env.CHDatabase+"_other")
}

func TestMigrateClickHouseRejectsInsertValues(t *testing.T) {
	env := testenv.New(t)
	ms := []db.Migration{{Version: 9022, Name: "9022_seed.sql", SQL: "INSERT INTO x (a) VALUES (1);"}}
	err := db.MigrateClickHouseWith(context.Background(), env.CH, env.CHDatabase, ms)
	if err == nil || !strings.Contains(err.Error(), "INSERT ... VALUES") {
		t.Fatalf("got %v, want the INSERT ... VALUES error", err)
	}
}

func countPG(t *testing.T, env *testenv.Env, sql string) int {
	t.Helper()
	var n int
	if err := env.PG.QueryRow(context.Background(), sql).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// closedPort returns a loopback port nobody listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(l.Addr().String())
	l.Close()
	return port
}
