package db

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// migrationFiles holds migrations/postgres/*.sql and migrations/clickhouse/*.sql.
// An empty subdirectory is simply not embedded, which means no migrations.
//
//go:embed migrations
var migrationFiles embed.FS

// Advisory lock keys (pg_advisory_lock) held while migrating, so replicas
// starting together migrate one after the other. ClickHouse has no locks, so
// Migrate serializes its ClickHouse migrations through PostgreSQL too.
const (
	lockMigratePostgres   int64 = 0x706f7374_6d677067 // "postmgpg"
	lockMigrateClickHouse int64 = 0x706f7374_6d676368 // "postmgch"
)

// Migration is one embedded migration file, or a ClickHouse migration
// written in Go.
type Migration struct {
	Version int    // NNNN of NNNN_name.sql
	Name    string // the file name
	SQL     string
	// Run, when set, is the migration (ClickHouse only; SQL is empty). It
	// must be idempotent: a run interrupted half-way is finished by the
	// next one, since ClickHouse has no transactions to roll it back.
	Run func(ctx context.Context, conn driver.Conn) error
}

// Migrate applies the pending migrations of both databases: PostgreSQL's,
// then ClickHouse's (into chDatabase, which must be ch's database) under a
// PostgreSQL advisory lock.
func Migrate(ctx context.Context, pg *pgxpool.Pool, ch driver.Conn, chDatabase string) error {
	if err := MigratePostgres(ctx, pg); err != nil {
		return err
	}
	return withAdvisoryLock(ctx, pg, lockMigrateClickHouse, func(*pgxpool.Conn) error {
		return MigrateClickHouse(ctx, ch, chDatabase)
	})
}

// MigratePostgres applies the pending PostgreSQL migrations, each in its own
// transaction together with its row in schema_migrations. It holds an
// advisory lock meanwhile, so concurrent callers (replicas starting
// together) apply each migration once. Applying nothing is not an error.
// A file must not contain BEGIN/COMMIT or statements that cannot run in a
// transaction (CREATE INDEX CONCURRENTLY).
func MigratePostgres(ctx context.Context, pool *pgxpool.Pool) error {
	all, err := loadMigrations(migrationFiles, "migrations/postgres")
	if err != nil {
		return err
	}
	return migratePostgres(ctx, pool, all)
}

func migratePostgres(ctx context.Context, pool *pgxpool.Pool, all []Migration) error {
	return withAdvisoryLock(ctx, pool, lockMigratePostgres, func(conn *pgxpool.Conn) error {
		if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)`); err != nil {
			return fmt.Errorf("migrate PostgreSQL: create schema_migrations: %w", err)
		}
		rows, err := conn.Query(ctx, "SELECT version FROM schema_migrations")
		if err != nil {
			return fmt.Errorf("migrate PostgreSQL: read schema_migrations: %w", err)
		}
		versions, err := pgx.CollectRows(rows, pgx.RowTo[int32])
		if err != nil {
			return fmt.Errorf("migrate PostgreSQL: read schema_migrations: %w", err)
		}
		applied := make(map[int]bool, len(versions))
		for _, v := range versions {
			applied[int(v)] = true
		}
		for _, m := range pendingMigrations(all, applied) {
			err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
				// No arguments: pgx uses the simple protocol, which runs
				// the several statements of a file.
				if _, err := tx.Exec(ctx, m.SQL); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.Version, m.Name)
				return err
			})
			if err != nil {
				return fmt.Errorf("migrate PostgreSQL: %s: %w", m.Name, err)
			}
		}
		return nil
	})
}

// MigrateClickHouse applies the pending ClickHouse migrations to database,
// which must be conn's database (migrations name tables without a
// database). It creates the database and its schema_migrations table if
// needed, runs each file's statements in order and then records the file.
//
// ClickHouse has no transactions: a file that fails half way is retried from
// its first statement on the next run, so write statements that can run
// twice (CREATE TABLE IF NOT EXISTS, CREATE MATERIALIZED VIEW IF NOT
// EXISTS). 18.16 has no ALTER ... ADD COLUMN IF NOT EXISTS: put a
// non-repeatable ALTER in a file of its own, as its only statement.
// Statements end with ";" at the end of a line. Do not write INSERT ...
// VALUES: through the native protocol ClickHouse 18.16 then waits for data
// blocks and the statement hangs; use INSERT ... SELECT.
//
// Concurrent callers may apply a file twice; Migrate prevents that with a
// PostgreSQL advisory lock.
func MigrateClickHouse(ctx context.Context, conn driver.Conn, database string) error {
	all, err := loadMigrations(migrationFiles, "migrations/clickhouse")
	if err != nil {
		return err
	}
	if all, err = sortMigrations(append(all, clickHouseGoMigrations...)); err != nil {
		return err
	}
	return migrateClickHouse(ctx, conn, database, all)
}

func migrateClickHouse(ctx context.Context, conn driver.Conn, database string, all []Migration) error {
	if database == "" {
		database = "default"
	}
	db := quoteCHIdent(database)
	if err := conn.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+db); err != nil {
		return fmt.Errorf("migrate ClickHouse: create database %s: %w", database, err)
	}
	var current string
	if err := conn.QueryRow(ctx, "SELECT currentDatabase()").Scan(&current); err != nil {
		return fmt.Errorf("migrate ClickHouse: %w", err)
	}
	if current != database {
		return fmt.Errorf("migrate ClickHouse: connection uses database %q, want %q: open it with Database %q", current, database, database)
	}
	// MergeTree with ORDER BY works on 18.16 and on current releases.
	if err := conn.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+db+`.schema_migrations (
    version    UInt32,
    name       String,
    applied_at DateTime
) ENGINE = MergeTree ORDER BY version`); err != nil {
		return fmt.Errorf("migrate ClickHouse: create schema_migrations: %w", err)
	}
	applied, err := appliedClickHouse(ctx, conn, db)
	if err != nil {
		return fmt.Errorf("migrate ClickHouse: %w", err)
	}

	for _, m := range pendingMigrations(all, applied) {
		if m.Run != nil {
			if err := m.Run(ctx, conn); err != nil {
				return fmt.Errorf("migrate ClickHouse: %s: %w", m.Name, err)
			}
			if err := recordClickHouseMigration(ctx, conn, db, m); err != nil {
				return err
			}
			continue
		}
		stmts := splitStatements(m.SQL)
		if err := checkClickHouseStatements(stmts); err != nil {
			return fmt.Errorf("migrate ClickHouse: %s: %w", m.Name, err)
		}
		for i, stmt := range stmts {
			if err := conn.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("migrate ClickHouse: %s statement %d: %w", m.Name, i+1, err)
			}
		}
		if err := recordClickHouseMigration(ctx, conn, db, m); err != nil {
			return err
		}
	}
	return nil
}

// appliedClickHouse reads the versions recorded in db.schema_migrations.
func appliedClickHouse(ctx context.Context, conn driver.Conn, db string) (map[int]bool, error) {
	rows, err := conn.Query(ctx, "SELECT DISTINCT version FROM "+db+".schema_migrations")
	if err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	defer rows.Close()
	applied := map[int]bool{}
	for rows.Next() {
		var v uint32
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("read schema_migrations: %w", err)
		}
		applied[int(v)] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	return applied, nil
}

// recordClickHouseMigration notes m as applied in schema_migrations of db
// (a quoted database name).
func recordClickHouseMigration(ctx context.Context, conn driver.Conn, db string, m Migration) error {
	// A batch, because INSERT ... VALUES through Exec hangs on 18.16.
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO "+db+".schema_migrations (version, name, applied_at)")
	if err != nil {
		return fmt.Errorf("migrate ClickHouse: record %s: %w", m.Name, err)
	}
	if err := batch.Append(uint32(m.Version), m.Name, time.Now().UTC()); err != nil {
		batch.Abort()
		return fmt.Errorf("migrate ClickHouse: record %s: %w", m.Name, err)
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("migrate ClickHouse: record %s: %w", m.Name, err)
	}
	return nil
}

// withAdvisoryLock runs fn on one pooled connection while holding the
// session advisory lock key.
func withAdvisoryLock(ctx context.Context, pool *pgxpool.Pool, key int64, fn func(*pgxpool.Conn) error) (err error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrate: acquire connection: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", key); err != nil {
		return fmt.Errorf("migrate: take advisory lock: %w", err)
	}
	defer func() {
		if _, uerr := conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", key); uerr != nil {
			// Never return a connection holding the lock to the pool:
			// closing the session releases it.
			conn.Conn().Close(context.WithoutCancel(ctx))
			if err == nil {
				err = fmt.Errorf("migrate: release advisory lock: %w", uerr)
			}
		}
	}()
	return fn(conn)
}

var migrationName = regexp.MustCompile(`^([0-9]{4,})_([A-Za-z0-9_\-]+)\.sql$`)

// parseMigrationName returns the version of a file named NNNN_name.sql. ok
// is false for files that are not SQL (a README, .gitkeep), which are
// ignored; a .sql file with another name is an error.
func parseMigrationName(file string) (version int, ok bool, err error) {
	if !strings.HasSuffix(file, ".sql") {
		return 0, false, nil
	}
	m := migrationName.FindStringSubmatch(file)
	if m == nil {
		return 0, false, fmt.Errorf("migration %s: name must be NNNN_name.sql (four digits, an underscore, a name)", file)
	}
	version, err = strconv.Atoi(m[1])
	if err != nil || version <= 0 {
		return 0, false, fmt.Errorf("migration %s: version must be a positive number", file)
	}
	return version, true, nil
}

// loadMigrations reads the migrations in dir of fsys, ordered by version. A
// missing dir means none. Two files with the same version are an error.
func loadMigrations(fsys fs.FS, dir string) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read migrations %s: %w", dir, err)
	}
	var out []Migration
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		version, ok, err := parseMigrationName(e.Name())
		if err != nil {
			return nil, fmt.Errorf("read migrations %s: %w", dir, err)
		}
		if !ok {
			continue
		}
		b, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read migrations %s: %w", dir, err)
		}
		out = append(out, Migration{Version: version, Name: e.Name(), SQL: string(b)})
	}
	return sortMigrations(out)
}

// sortMigrations orders migrations by version and rejects duplicate versions.
func sortMigrations(ms []Migration) ([]Migration, error) {
	sort.SliceStable(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	for i := 1; i < len(ms); i++ {
		if ms[i].Version == ms[i-1].Version {
			return nil, fmt.Errorf("migrations %s and %s have the same version %d: renumber one (see docs/CONVENTIONS.md for the ranges)", ms[i-1].Name, ms[i].Name, ms[i].Version)
		}
	}
	return ms, nil
}

// pendingMigrations returns the migrations of all whose version is not in
// applied, in order.
func pendingMigrations(all []Migration, applied map[int]bool) []Migration {
	var out []Migration
	for _, m := range all {
		if !applied[m.Version] {
			out = append(out, m)
		}
	}
	return out
}

// splitStatements splits a ClickHouse migration into statements: a line
// ending in ";" ends a statement. Whole-line "--" comments are dropped, and
// so are statements left empty. The ";" is not part of the statement.
func splitStatements(sql string) []string {
	var out, cur []string
	flush := func() {
		if stmt := strings.TrimSpace(strings.Join(cur, "\n")); stmt != "" {
			out = append(out, stmt)
		}
		cur = cur[:0]
	}
	for _, line := range strings.Split(sql, "\n") {
		line = strings.TrimRight(line, " \t\r")
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "--") {
			continue
		}
		if strings.HasSuffix(line, ";") {
			cur = append(cur, strings.TrimSuffix(line, ";"))
			flush()
			continue
		}
		cur = append(cur, line)
	}
	flush()
	return out
}

var insertValues = regexp.MustCompile(`(?is)^\s*INSERT\s+INTO\s.*\bVALUES\s*\(`)

// checkClickHouseStatements rejects statements known to hang on 18.16.
func checkClickHouseStatements(stmts []string) error {
	for i, s := range stmts {
		if insertValues.MatchString(s) {
			return fmt.Errorf("statement %d: INSERT ... VALUES hangs on ClickHouse 18.16 over the native protocol: write INSERT INTO t (cols) SELECT ...", i+1)
		}
	}
	return nil
}

// quoteCHIdent quotes a ClickHouse identifier with backquotes.
func quoteCHIdent(name string) string {
	return "`" + strings.NewReplacer(`\`, `\\`, "`", "\\`").Replace(name) + "`"
}
