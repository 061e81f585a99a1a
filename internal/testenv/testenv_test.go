package testenv_test

import (
	"context"
	"fmt"
	"testing"

	"postage/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestIsolation runs two parallel tests that write the same rows: each must
// see only its own.
func TestIsolation(t *testing.T) {
	for _, name := range []string{"a", "b"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			env := testenv.New(t)

			if _, err := env.PG.Exec(ctx, "INSERT INTO customers (id, name) VALUES ('c1', $1)", name); err != nil {
				t.Fatal(err)
			}
			var n int
			if err := env.PG.QueryRow(ctx, "SELECT count(*) FROM customers").Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != 1 {
				t.Errorf("PostgreSQL: %d customers, want 1 (data leaked between tests)", n)
			}

			if err := env.CH.Exec(ctx, "CREATE TABLE probe (v String) ENGINE = MergeTree ORDER BY v"); err != nil {
				t.Fatal(err)
			}
			batch, err := env.CH.PrepareBatch(ctx, "INSERT INTO probe (v)")
			if err != nil {
				t.Fatal(err)
			}
			if err := batch.Append(name); err != nil {
				t.Fatal(err)
			}
			if err := batch.Send(); err != nil {
				t.Fatal(err)
			}
			var got []string
			rows, err := env.CH.Query(ctx, "SELECT v FROM probe")
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var v string
				if err := rows.Scan(&v); err != nil {
					t.Fatal(err)
				}
				got = append(got, v)
			}
			rows.Close()
			if len(got) != 1 || got[0] != name {
				t.Errorf("ClickHouse: got %q, want [%q]", got, name)
			}
		})
	}
}

func TestDistinctDatabases(t *testing.T) {
	a, b := testenv.New(t), testenv.New(t)
	if a.PGDatabase == b.PGDatabase || a.CHDatabase == b.CHDatabase {
		t.Errorf("two calls share databases: %+v %+v", a, b)
	}
	if a.PGServer != b.PGServer || a.CHServer != b.CHServer {
		t.Error("two calls started two server pairs, want one per test binary")
	}
}

func TestMigrated(t *testing.T) {
	ctx := context.Background()
	env := testenv.New(t)
	var n int
	if err := env.PG.QueryRow(ctx, "SELECT count(*) FROM schema_migrations").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Error("PostgreSQL database has no applied migrations")
	}
	var db string
	if err := env.CH.QueryRow(ctx, "SELECT currentDatabase()").Scan(&db); err != nil {
		t.Fatal(err)
	}
	if db != env.CHDatabase {
		t.Errorf("ClickHouse connection uses database %q, want %q", db, env.CHDatabase)
	}
	var exists uint8
	if err := env.CH.QueryRow(ctx, "EXISTS TABLE schema_migrations").Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists != 1 {
		t.Error("ClickHouse database has no schema_migrations")
	}
}

func BenchmarkNew(b *testing.B) {
	testenv.New(b) // start the servers outside the measurement
	b.ResetTimer()
	for b.Loop() {
		testenv.New(b)
	}
}

// TestCluster checks cluster mode: each test's database is on every
// server, its tables are Replicated within their shard, and ReplicaConn
// reaches the server it names.
func TestCluster(t *testing.T) {
	ctx := context.Background()
	env := testenv.NewCluster(t)
	other := testenv.NewCluster(t)
	if env.CHDatabase == other.CHDatabase || env.Cluster != other.Cluster {
		t.Fatalf("two calls: databases %s, %s; want distinct databases on one cluster", env.CHDatabase, other.CHDatabase)
	}
	if env.CHServer != nil || len(env.CHCluster.Shards) != 2 || env.Cluster.Replicas() != 3 {
		t.Fatalf("got %d shards of %d replicas, want 2 x 3", len(env.CHCluster.Shards), env.Cluster.Replicas())
	}
	for s := 1; s <= 2; s++ {
		for r := 1; r <= 3; r++ {
			conn := env.ReplicaConn(t, s, r)
			var shard, replica string
			var events, plain uint64
			if err := conn.QueryRow(ctx, `SELECT countIf(name = 'events' AND engine LIKE 'Replicated%'), countIf(engine LIKE '%MergeTree' AND engine NOT LIKE 'Replicated%')
FROM system.tables WHERE database = currentDatabase()`).Scan(&events, &plain); err != nil {
				t.Fatalf("shard %d replica %d: %v", s, r, err)
			}
			if events != 1 || plain != 0 {
				t.Errorf("shard %d replica %d: %d Replicated events tables and %d MergeTree tables not Replicated, want 1 and 0", s, r, events, plain)
			}
			if err := conn.QueryRow(ctx, "SELECT anyIf(substitution, macro = 'shard'), anyIf(substitution, macro = 'replica') FROM system.macros").Scan(&shard, &replica); err != nil {
				t.Fatal(err)
			}
			if want := fmt.Sprint(s); shard != want || replica != fmt.Sprintf("s%dr%d", s, r) {
				t.Errorf("ReplicaConn(%d, %d) reached the server with macros shard %s replica %s", s, r, shard, replica)
			}
		}
	}
	// A row written to shard 1 is on its replicas, not on shard 2.
	if err := env.CHCluster.Shards[0].Exec(ctx, "INSERT INTO events (customer_id, id) SELECT 'c', 'e1'"); err != nil {
		t.Fatal(err)
	}
	for s, want := range map[int]uint64{1: 1, 2: 0} {
		for r := 1; r <= 3; r++ {
			conn := env.ReplicaConn(t, s, r)
			if err := conn.Exec(ctx, "SYSTEM SYNC REPLICA events"); err != nil {
				t.Fatal(err)
			}
			var n uint64
			if err := conn.QueryRow(ctx, "SELECT count() FROM events").Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != want {
				t.Errorf("shard %d replica %d: %d rows, want %d", s, r, n, want)
			}
		}
	}
	var n uint64
	if err := other.ReplicaConn(t, 1, 2).QueryRow(ctx, "SELECT count() FROM events").Scan(&n); err != nil || n != 0 {
		t.Errorf("the other test's database: %d rows, %v; want 0", n, err)
	}
}

// BenchmarkNewCluster measures a test's database on the cluster, created
// and migrated ON CLUSTER (the drops run after the measurement, as
// BenchmarkNew's do).
func BenchmarkNewCluster(b *testing.B) {
	testenv.NewCluster(b) // start the cluster outside the measurement
	b.ResetTimer()
	for b.Loop() {
		testenv.NewCluster(b)
	}
}
