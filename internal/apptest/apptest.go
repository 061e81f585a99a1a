// Package apptest builds a whole, wired postage on fresh real databases for
// tests that go through the HTTP API, the CLI or the browser: the one place
// that turns an internal/testenv database pair into an *app.App.
package apptest

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"postage/internal/app"
	"postage/internal/auth"
	"postage/internal/config"
	"postage/internal/testenv"
)

// Config returns the default configuration pointed at env's databases.
func Config(env *testenv.Env) config.Config {
	cfg := config.Default()
	cfg.Postgres.DSN = env.PGDSN
	cfg.ClickHouse.Addr = env.CHAddr
	cfg.ClickHouse.Database = env.CHDatabase
	return cfg
}

// Open wires an app on fresh migrated databases (testenv.New), lets tweak
// change the configuration first (nil: defaults), seeds the rate cards and
// closes everything when the test ends. The package's TestMain must call
// testenv.Main.
func Open(t testing.TB, tweak func(*config.Config)) *app.App {
	t.Helper()
	cfg := Config(testenv.New(t))
	cfg.Ingest.IndexDir = t.TempDir()
	if tweak != nil {
		tweak(&cfg)
	}
	ctx := context.Background()
	a, err := app.Open(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	if err := a.Seed(ctx); err != nil {
		t.Fatal(err)
	}
	return a
}

// ClusterConfig returns the default configuration pointed at env's
// PostgreSQL database and ClickHouse cluster (testenv.NewCluster): every
// server as an address, the cluster's ZooKeeper for the shards' leases.
func ClusterConfig(env *testenv.Env) config.Config {
	cfg := config.Default()
	cfg.Postgres.DSN = env.PGDSN
	addrs := env.Cluster.Addrs()
	cfg.ClickHouse.Addr, cfg.ClickHouse.Addrs = addrs[0], addrs[1:]
	cfg.ClickHouse.Database = env.CHDatabase
	cfg.ClickHouse.Cluster = env.CHCluster.Topology.Cluster
	cfg.ClickHouse.ZooKeeper = []string{env.Cluster.ZooKeeperAddr()}
	return cfg
}

// OpenCluster is Open on a ClickHouse cluster (testenv.NewCluster); it
// returns the environment too, for the tests' looks at single servers.
func OpenCluster(t testing.TB, tweak func(*config.Config)) (*app.App, *testenv.Env) {
	t.Helper()
	env := testenv.NewCluster(t)
	cfg := ClusterConfig(env)
	cfg.Ingest.IndexDir = t.TempDir()
	if tweak != nil {
		tweak(&cfg)
	}
	ctx := context.Background()
	a, err := app.Open(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	if err := a.Seed(ctx); err != nil {
		t.Fatal(err)
	}
	return a, env
}

// Keys creates one API key per role and returns their tokens; the customer
// key is bound to customerID (which must exist), or left out when it is "".
func Keys(t testing.TB, a *app.App, customerID string) map[auth.Role]string {
	t.Helper()
	keys := map[auth.Role]string{}
	for _, r := range auth.Roles {
		n := auth.NewKey{Name: "test " + string(r), Role: r}
		if r == auth.RoleCustomer {
			if customerID == "" {
				continue
			}
			n.CustomerID = customerID
		}
		_, tok, err := a.Keys.Create(context.Background(), n)
		if err != nil {
			t.Fatal(err)
		}
		keys[r] = tok
	}
	return keys
}

// Serve serves the app's API (and dashboard) on a loopback httptest server
// until the test ends and returns its base URL. Every API answer is checked
// against the OpenAPI document (CheckResponses).
func Serve(t testing.TB, a *app.App) string {
	t.Helper()
	return ServeServer(t, a.Server())
}
