package testenv_test

import (
	"context"
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
