package db

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/jackc/pgx/v5/pgxpool"
)

// On a cluster the ClickHouse migrations run from the same files as on one
// server. Each statement is rewritten by clusterStatement:
//
//   - CREATE TABLE, ALTER TABLE, DROP TABLE, RENAME TABLE and TRUNCATE TABLE
//     get ON CLUSTER <cluster> and their tables the migrated database
//     (ON CLUSTER runs a statement in each server's default database
//     otherwise), and every host runs them through distributed DDL;
//   - a MergeTree-family engine becomes its Replicated form, replicated
//     within each shard: ReplacingMergeTree(v) in migration 0020 becomes
//     ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/<db>/<table>.0020',
//     '{replica}', v), and so on for MergeTree, Summing, Aggregating,
//     Collapsing, VersionedCollapsing and Graphite; other engines stay;
//   - INSERT ... SELECT and OPTIMIZE TABLE run once on each shard (on any
//     of its replicas: the others fetch what it wrote);
//   - anything else is refused with the statement's number, so a migration
//     that would do something else on a cluster than on one server fails
//     before it runs rather than half way.
//
// A migration written in Go (Migration.Run) runs once per shard, on a
// connection to the shard's first replica whose Exec sends CREATE, DROP and
// RENAME TABLE to every replica of the shard (engines made Replicated the
// same way), see shardMigrationConn.
//
// The {shard} and {replica} macros must be defined on every server, and
// {replica} must be unique in the whole cluster (a host name, as ClickHouse
// recommends): schema_migrations is one table replicated on every server.

// clusterStatement is one migration statement as it runs on a cluster.
type clusterStatement struct {
	SQL      string
	PerShard bool // run once on each shard instead of ON CLUSTER
}

// zooKeeperPath is where a table made by migration version of a cluster
// keeps its replication state: per shard, database, table and migration.
// The version keeps the path unique when a migration builds a table under a
// working name and renames it (a renamed Replicated table keeps its path),
// and a later migration uses the working name again.
func zooKeeperPath(database, table string, version int) string {
	return fmt.Sprintf("/clickhouse/tables/{shard}/%s/%s.%04d", database, table, version)
}

var (
	reCreateTable = regexp.MustCompile(`(?is)^CREATE\s+TABLE\s+(IF\s+NOT\s+EXISTS\s+)?(` + identRE + `)(\s.*|\()`)
	reAlterTable  = regexp.MustCompile(`(?is)^ALTER\s+TABLE\s+(` + identRE + `)(\s.*)$`)
	reDropTable   = regexp.MustCompile(`(?is)^DROP\s+TABLE\s+(IF\s+EXISTS\s+)?(` + identRE + `)\s*$`)
	reTruncate    = regexp.MustCompile(`(?is)^TRUNCATE\s+TABLE\s+(IF\s+EXISTS\s+)?(` + identRE + `)\s*$`)
	reRename      = regexp.MustCompile(`(?is)^RENAME\s+TABLE\s+(.*)$`)
	reRenamePair  = regexp.MustCompile(`(?is)^\s*(` + identRE + `)\s+TO\s+(` + identRE + `)\s*$`)
	rePerShard    = regexp.MustCompile(`(?is)^(INSERT\s+INTO|OPTIMIZE\s+TABLE)\s`)
	reEngine      = regexp.MustCompile(`(?is)\bENGINE\s*=\s*(Replicated)?((?:Replacing|Summing|Aggregating|Collapsing|VersionedCollapsing|Graphite)?MergeTree)\b`)
	reOnCluster   = regexp.MustCompile(`(?is)\bON\s+CLUSTER\b`)
	reAsSource    = regexp.MustCompile(`(?is)^\s*AS\s`)
)

// identRE matches a table name without a database: a plain identifier or a
// backquoted one.
const identRE = "[A-Za-z_][A-Za-z0-9_]*|`(?:[^`\\\\]|\\\\.)+`"

// clusterStatementFor rewrites stmt (one statement of a migration, as
// splitStatements returns it) for database on cluster.
func clusterStatementFor(stmt, database, cluster string, version int) (clusterStatement, error) {
	stmt = strings.TrimSpace(stmt)
	db := quoteCHIdent(database)
	on := " ON CLUSTER " + quoteCHIdent(cluster)
	if firstOutsideStrings(reOnCluster, stmt) != nil {
		return clusterStatement{}, fmt.Errorf("names ON CLUSTER itself: migrations are written for one server and get ON CLUSTER when a cluster is configured")
	}
	if m := reCreateTable.FindStringSubmatchIndex(stmt); m != nil {
		ifNot := ""
		if m[2] >= 0 {
			ifNot = "IF NOT EXISTS "
		}
		name := stmt[m[4]:m[5]]
		rest := stmt[m[5]:]
		if reAsSource.MatchString(rest) {
			return clusterStatement{}, fmt.Errorf("CREATE TABLE %s AS ...: not supported on a cluster (name the columns)", name)
		}
		rest, err := replicatedEngine(rest, database, unquoteCHIdent(name), version)
		if err != nil {
			return clusterStatement{}, fmt.Errorf("CREATE TABLE %s: %w", name, err)
		}
		return clusterStatement{SQL: "CREATE TABLE " + ifNot + db + "." + name + on + rest}, nil
	}
	if m := reAlterTable.FindStringSubmatch(stmt); m != nil {
		return clusterStatement{SQL: "ALTER TABLE " + db + "." + m[1] + on + m[2]}, nil
	}
	if m := reDropTable.FindStringSubmatch(stmt); m != nil {
		return clusterStatement{SQL: "DROP TABLE " + ifExists(m[1]) + db + "." + m[2] + on}, nil
	}
	if m := reTruncate.FindStringSubmatch(stmt); m != nil {
		return clusterStatement{SQL: "TRUNCATE TABLE " + ifExists(m[1]) + db + "." + m[2] + on}, nil
	}
	if m := reRename.FindStringSubmatch(stmt); m != nil {
		var pairs []string
		for _, p := range strings.Split(m[1], ",") {
			pm := reRenamePair.FindStringSubmatch(p)
			if pm == nil {
				return clusterStatement{}, fmt.Errorf("RENAME TABLE: cannot read %q (write a TO b, c TO d with plain table names)", strings.TrimSpace(p))
			}
			pairs = append(pairs, db+"."+pm[1]+" TO "+db+"."+pm[2])
		}
		return clusterStatement{SQL: "RENAME TABLE " + strings.Join(pairs, ", ") + on}, nil
	}
	if rePerShard.MatchString(stmt) {
		return clusterStatement{SQL: stmt, PerShard: true}, nil
	}
	first := strings.Fields(stmt)
	if len(first) > 2 {
		first = first[:2]
	}
	return clusterStatement{}, fmt.Errorf("%s ...: not supported on a cluster (CREATE/ALTER/DROP/RENAME/TRUNCATE TABLE, INSERT ... SELECT and OPTIMIZE TABLE are)", strings.Join(first, " "))
}

func ifExists(s string) string {
	if s == "" {
		return ""
	}
	return "IF EXISTS "
}

// replicatedEngine rewrites the MergeTree-family ENGINE clause of a CREATE
// TABLE's rest (what follows the table name) into its Replicated form,
// replicated within the shard under zooKeeperPath(database, table, version). Other
// engines are left as they are.
func replicatedEngine(rest, database, table string, version int) (string, error) {
	m := firstOutsideStrings(reEngine, rest)
	if m == nil {
		return rest, nil
	}
	if m[2] >= 0 {
		return "", fmt.Errorf("the engine is Replicated already: write the one-server engine, the cluster gets its Replicated form")
	}
	family := rest[m[4]:m[5]]
	after := rest[m[1]:]
	head := "ENGINE = Replicated" + family + "(" + quoteCHString(zooKeeperPath(database, table, version)) + ", '{replica}'"
	// Arguments, if any, follow in parentheses (possibly nested).
	trimmed := strings.TrimLeft(after, " \t\r\n")
	if strings.HasPrefix(trimmed, "(") {
		end := matchingParen(trimmed)
		if end < 0 {
			return "", fmt.Errorf("unbalanced parentheses after ENGINE = %s", family)
		}
		args := strings.TrimSpace(trimmed[1:end])
		if args != "" {
			head += ", " + args
		}
		return rest[:m[0]] + head + ")" + trimmed[end+1:], nil
	}
	return rest[:m[0]] + head + ")" + after, nil
}

// firstOutsideStrings returns the submatch indexes of re's first match in s
// that does not start inside a '...' string literal, or nil.
func firstOutsideStrings(re *regexp.Regexp, s string) []int {
	in := stringLiterals(s)
	for _, m := range re.FindAllStringSubmatchIndex(s, -1) {
		if !in[m[0]] {
			return m
		}
	}
	return nil
}

// stringLiterals reports for each byte of s whether it is inside a '...'
// string literal (quotes included).
func stringLiterals(s string) []bool {
	in := make([]bool, len(s)+1)
	inString := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case inString && c == '\\':
			in[i] = true
			i++
		case c == '\'':
			in[i] = true
			inString = !inString
			continue
		}
		if i < len(s) {
			in[i] = inString
		}
	}
	return in
}

// matchingParen returns the index of the parenthesis closing s[0], or -1.
// Parentheses inside '...' strings do not count.
func matchingParen(s string) int {
	depth, inString := 0, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case inString && c == '\\':
			i++
		case c == '\'':
			inString = !inString
		case inString:
		case c == '(':
			depth++
		case c == ')':
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}

// quoteCHString quotes s as a ClickHouse string literal.
func quoteCHString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, "'", `\'`).Replace(s) + "'"
}

// unquoteCHIdent removes the backquotes of a quoted identifier.
func unquoteCHIdent(s string) string {
	if len(s) >= 2 && s[0] == '`' && s[len(s)-1] == '`' {
		return strings.NewReplacer("\\`", "`", `\\`, `\`).Replace(s[1 : len(s)-1])
	}
	return s
}

// MigrateCluster applies the pending migrations of both databases:
// PostgreSQL's, then ClickHouse's on cluster c under a PostgreSQL advisory
// lock (see MigrateClickHouseCluster).
func MigrateCluster(ctx context.Context, pg *pgxpool.Pool, c *ClickHouseCluster) error {
	if err := MigratePostgres(ctx, pg); err != nil {
		return err
	}
	return withAdvisoryLock(ctx, pg, lockMigrateClickHouse, func(*pgxpool.Conn) error {
		return MigrateClickHouseCluster(ctx, c)
	})
}

// MigrateClickHouseCluster applies the pending ClickHouse migrations to
// c's database on every server of the cluster, from the same files as
// MigrateClickHouse, each statement rewritten by clusterStatementFor (ON
// CLUSTER, Replicated engines; INSERT ... SELECT once per shard). Every
// statement of a file is rewritten before the first runs.
//
// Its bookkeeping, schema_migrations, is one ReplicatedMergeTree table
// replicated on every server of the cluster (not per shard), so whichever
// server a later run reads sees the same versions: the read waits until
// that server has fetched every row written before (SYSTEM SYNC REPLICA),
// and each row is written with an insert quorum of 2, so one lost server
// never holds the only copy.
//
// A distributed DDL statement waits for every server of the cluster
// (distributed_ddl_task_timeout, 180 s by default): with a server down a
// migration fails after that wait, and the server runs the statement when
// it comes back; run the migrations again then. Concurrent callers may
// apply a file twice; MigrateCluster prevents that with a PostgreSQL
// advisory lock.
func MigrateClickHouseCluster(ctx context.Context, c *ClickHouseCluster) error {
	all, err := loadMigrations(migrationFiles, "migrations/clickhouse")
	if err != nil {
		return err
	}
	if all, err = sortMigrations(append(all, clickHouseGoMigrations...)); err != nil {
		return err
	}
	return migrateClickHouseCluster(ctx, c, all)
}

// schemaMigrationsZooKeeperPath is the one replication path of the
// bookkeeping table of database: the same on every shard.
func schemaMigrationsZooKeeperPath(database string) string {
	return "/clickhouse/tables/all/" + database + "/schema_migrations"
}

func migrateClickHouseCluster(ctx context.Context, c *ClickHouseCluster, all []Migration) error {
	db := quoteCHIdent(c.Database)
	on := " ON CLUSTER " + quoteCHIdent(c.Topology.Cluster)
	if err := c.DDL.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+db+on); err != nil {
		return fmt.Errorf("migrate ClickHouse cluster %s: create database %s: %w", c.Topology.Cluster, c.Database, err)
	}
	if err := c.DDL.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+db+".schema_migrations"+on+` (
    version    UInt32,
    name       String,
    applied_at DateTime
) ENGINE = ReplicatedMergeTree(`+quoteCHString(schemaMigrationsZooKeeperPath(c.Database))+`, '{replica}') ORDER BY version`); err != nil {
		return fmt.Errorf("migrate ClickHouse cluster %s: create schema_migrations: %w", c.Topology.Cluster, err)
	}
	if err := c.DDL.Exec(ctx, "SYSTEM SYNC REPLICA "+db+".schema_migrations"); err != nil {
		return fmt.Errorf("migrate ClickHouse cluster %s: wait for schema_migrations to replicate: %w", c.Topology.Cluster, err)
	}
	applied, err := appliedClickHouse(ctx, c.DDL, db)
	if err != nil {
		return fmt.Errorf("migrate ClickHouse cluster %s: %w", c.Topology.Cluster, err)
	}
	quorum := min(2, c.Topology.Servers())
	for _, m := range pendingMigrations(all, applied) {
		if m.Run != nil {
			for s := range c.Topology.Shards {
				if err := c.runOnShard(ctx, s, m); err != nil {
					return fmt.Errorf("migrate ClickHouse cluster %s: %s on shard %d: %w", c.Topology.Cluster, m.Name, s+1, err)
				}
			}
			if err := recordClickHouseMigration(WithInsertQuorum(ctx, Quorum{Replicas: quorum}), c.DDL, db, m); err != nil {
				return err
			}
			continue
		}
		plain := splitStatements(m.SQL)
		if err := checkClickHouseStatements(plain); err != nil {
			return fmt.Errorf("migrate ClickHouse cluster: %s: %w", m.Name, err)
		}
		stmts := make([]clusterStatement, len(plain))
		for i, s := range plain {
			if stmts[i], err = clusterStatementFor(s, c.Database, c.Topology.Cluster, m.Version); err != nil {
				return fmt.Errorf("migrate ClickHouse cluster: %s statement %d: %w", m.Name, i+1, err)
			}
		}
		for i, stmt := range stmts {
			if !stmt.PerShard {
				if err := c.DDL.Exec(ctx, stmt.SQL); err != nil {
					return fmt.Errorf("migrate ClickHouse cluster %s: %s statement %d: %w", c.Topology.Cluster, m.Name, i+1, err)
				}
				continue
			}
			for s, conn := range c.Shards {
				if err := conn.Exec(ctx, stmt.SQL); err != nil {
					return fmt.Errorf("migrate ClickHouse cluster %s: %s statement %d on shard %d: %w", c.Topology.Cluster, m.Name, i+1, s+1, err)
				}
			}
		}
		if err := recordClickHouseMigration(WithInsertQuorum(ctx, Quorum{Replicas: quorum}), c.DDL, db, m); err != nil {
			return err
		}
	}
	return nil
}

// runOnShard runs the Go migration m on shard s (an index of
// Topology.Shards): connected to each of the shard's replicas, once the
// first has fetched every part its shard logged (SYSTEM SYNC REPLICA of
// each Replicated table of the database), so what m reads there is
// complete.
func (c *ClickHouseCluster) runOnShard(ctx context.Context, s int, m Migration) error {
	conn := &shardMigrationConn{database: c.Database, version: m.Version}
	defer func() {
		for _, r := range conn.replicas {
			r.Close()
		}
	}()
	for _, addr := range c.Topology.Shards[s].Replicas {
		o := c.opts
		o.Addr, o.Addrs, o.MaxOpenConns = addr, nil, 2
		r, err := openClickHouse(o)
		if err != nil {
			return err
		}
		conn.replicas = append(conn.replicas, r)
	}
	conn.Conn = conn.replicas[0]
	tables, err := replicatedTables(ctx, conn.Conn)
	if err != nil {
		return err
	}
	for _, t := range tables {
		if err := conn.Conn.Exec(ctx, "SYSTEM SYNC REPLICA "+quoteCHIdent(t)); err != nil {
			return fmt.Errorf("wait for %s to replicate: %w", t, err)
		}
	}
	return m.Run(ctx, conn)
}

// replicatedTables lists the Replicated tables of conn's database.
func replicatedTables(ctx context.Context, conn driver.Conn) ([]string, error) {
	rows, err := conn.Query(ctx, "SELECT table FROM system.replicas WHERE database = currentDatabase() ORDER BY table")
	if err != nil {
		return nil, fmt.Errorf("list replicated tables: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("list replicated tables: %w", err)
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

// shardMigrationConn is the connection a Go migration gets on a cluster,
// once per shard: it reads and writes through the shard's first replica,
// and sends CREATE, DROP and RENAME TABLE to every replica of the shard
// (each replica has its own copy of a table's definition), CREATE TABLE
// with its MergeTree-family engine made Replicated as for SQL migrations.
// ALTER, TRUNCATE and INSERT run once: a Replicated table passes them on.
type shardMigrationConn struct {
	driver.Conn
	replicas []driver.Conn // the shard's replicas, Conn the first
	database string
	version  int
}

// Exec implements driver.Conn.
func (c *shardMigrationConn) Exec(ctx context.Context, query string, args ...any) error {
	stmt, every, err := shardStatementFor(query, c.database, c.version)
	if err != nil {
		return err
	}
	if !every {
		return c.Conn.Exec(ctx, stmt, args...)
	}
	for i, r := range c.replicas {
		if err := r.Exec(ctx, stmt, args...); err != nil {
			return fmt.Errorf("on replica %d of the shard: %w", i+1, err)
		}
	}
	return nil
}

// shardStatementFor returns stmt as a Go migration's Exec runs it on a
// shard, and whether it runs on every replica of the shard.
func shardStatementFor(stmt, database string, version int) (string, bool, error) {
	stmt = strings.TrimSpace(stmt)
	if m := reCreateTable.FindStringSubmatchIndex(stmt); m != nil {
		name := stmt[m[4]:m[5]]
		rest, err := replicatedEngine(stmt[m[5]:], database, unquoteCHIdent(name), version)
		if err != nil {
			return "", false, fmt.Errorf("CREATE TABLE %s: %w", name, err)
		}
		return stmt[:m[5]] + rest, true, nil
	}
	if reDropTable.MatchString(stmt) || reRename.MatchString(stmt) {
		return stmt, true, nil
	}
	return stmt, false, nil
}
