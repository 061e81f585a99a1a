package app

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"postage/internal/config"
	"postage/internal/testenv"
)

// A configured cluster is migrated (postage migrate) and opened by Open
// (serve and the other commands) on the shards' connections.
func TestClusterConfig(t *testing.T) {
	ctx := context.Background()
	env := testenv.NewCluster(t)
	cfg := config.Default()
	cfg.Postgres.DSN = env.PGDSN
	addrs := env.Cluster.Addrs()
	cfg.ClickHouse.Addr, cfg.ClickHouse.Addrs = addrs[len(addrs)-1], addrs[:len(addrs)-1]
	cfg.ClickHouse.Database = env.CHDatabase + "_app"
	cfg.ClickHouse.Cluster = env.CHCluster.Topology.Cluster
	cfg.ClickHouse.ZooKeeper = []string{env.Cluster.ZooKeeperAddr()}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	defer env.CH.Exec(ctx, "DROP DATABASE IF EXISTS "+cfg.ClickHouse.Database+" ON CLUSTER "+cfg.ClickHouse.Cluster)

	if err := MigrateCluster(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	conn := env.ReplicaConn(t, 2, 2)
	var engine string
	if err := conn.QueryRow(ctx, "SELECT engine FROM system.tables WHERE database = ? AND name = 'events'", cfg.ClickHouse.Database).Scan(&engine); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(engine, "Replicated") {
		t.Errorf("events on shard 2 replica 2: %s, want a Replicated engine", engine)
	}
	a, err := Open(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("Open on a cluster: %v", err)
	}
	defer a.Close()
	if a.Cluster == nil || a.Events != nil || a.Sealer != nil || len(a.shards.writers) != 2 {
		t.Errorf("Open on a cluster: cluster %v, events %v, sealer %v, shards %+v; want the shards' writers", a.Cluster, a.Events, a.Sealer, a.shards)
	}
}
