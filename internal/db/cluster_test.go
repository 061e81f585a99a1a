package db_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"postage"
	"postage/internal/db"
	"postage/internal/testenv"
)

// The tests of this file run on the binary's cluster (testenv.NewCluster).
// Those that stop servers leave every server running again when they end,
// and none runs in parallel.

func TestReadTopology(t *testing.T) {
	ctx := context.Background()
	env := testenv.NewCluster(t)
	got := env.CHCluster.Topology
	if got.Cluster != "postage" || len(got.Shards) != 2 || got.Servers() != 6 {
		t.Fatalf("got %+v, want cluster postage of 2 shards x 3 replicas", got)
	}
	for s, shard := range got.Shards {
		if shard.Num != s+1 || shard.Majority() != 2 {
			t.Errorf("shard %d: num %d, majority %d; want %d, 2", s+1, shard.Num, shard.Majority(), s+1)
		}
		for r, addr := range shard.Replicas {
			if want := env.Cluster.Addr(s+1, r+1); addr != want {
				t.Errorf("shard %d replica %d: %s, want %s", s+1, r+1, addr, want)
			}
		}
	}
	_, err := db.ReadTopology(ctx, env.CH, "nosuch")
	if err == nil || !strings.Contains(err.Error(), `cluster "nosuch" is not in system.clusters`) || !strings.Contains(err.Error(), "postage") {
		t.Errorf("unknown cluster: got %v, want an error naming the known clusters", err)
	}
}

// TestShardForAgreesWithDistributed inserts the rows of 200 customers
// through a Distributed table sharded by cityHash64(customer_id) and finds
// each customer on the shard ShardFor names.
func TestShardForAgreesWithDistributed(t *testing.T) {
	ctx := context.Background()
	env := testenv.NewCluster(t)
	if err := env.CH.Exec(ctx, "CREATE TABLE "+env.CHDatabase+".events_all ON CLUSTER postage AS "+env.CHDatabase+".events ENGINE = Distributed(postage, "+env.CHDatabase+", events, cityHash64(customer_id))"); err != nil {
		t.Fatal(err)
	}
	ictx := clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"insert_distributed_sync": 1}))
	if err := env.CH.Exec(ictx, "INSERT INTO events_all (customer_id, id) SELECT concat('customer-', toString(number)), 'e' FROM system.numbers LIMIT 200"); err != nil {
		t.Fatal(err)
	}
	topo := env.CHCluster.Topology
	perShard := make([]int, len(topo.Shards))
	for s := range topo.Shards {
		// The Distributed table wrote to any replica of the shard.
		conn := env.ReplicaConn(t, s+1, 1)
		syncReplica(t, conn, "events")
		rows, err := conn.Query(ctx, "SELECT DISTINCT customer_id FROM events")
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var c string
			if err := rows.Scan(&c); err != nil {
				t.Fatal(err)
			}
			perShard[s]++
			if got := topo.ShardFor(c); got != s {
				t.Errorf("%s is on shard %d, ShardFor says %d", c, s+1, got+1)
			}
		}
		rows.Close()
	}
	if perShard[0]+perShard[1] != 200 || perShard[0] == 0 || perShard[1] == 0 {
		t.Errorf("customers per shard %v, want 200 spread over both", perShard)
	}
}

// TestMigrateClickHouseCluster runs migrations on the cluster twice, the
// second time through another server: each runs once, the bookkeeping is
// the same on every server, INSERT ... SELECT wrote once per shard, and the
// ALTER reached every replica.
func TestMigrateClickHouseCluster(t *testing.T) {
	ctx := context.Background()
	env := testenv.NewCluster(t)
	ms := []db.Migration{
		{Version: 9030, Name: "9030_ev.sql", SQL: `-- a table and a seed row
CREATE TABLE IF NOT EXISTS ev (
    customer String,
    id       String
) ENGINE = ReplacingMergeTree ORDER BY (customer, id);

INSERT INTO ev (customer, id) SELECT 'c', 'seed';
`},
		{Version: 9031, Name: "9031_more.sql", SQL: "ALTER TABLE ev ADD COLUMN n UInt32 DEFAULT 1;\n"},
	}
	if err := db.MigrateClickHouseClusterWith(ctx, env.CHCluster, ms); err != nil {
		t.Fatalf("first run: %v", err)
	}
	// The second run reads schema_migrations on the last server.
	last, err := db.OpenClickHouseCluster(ctx, db.ClickHouseOptions{Addr: env.Cluster.Addr(2, 3), Database: env.CHDatabase, Cluster: "postage"})
	if err != nil {
		t.Fatal(err)
	}
	defer last.Close()
	if err := db.MigrateClickHouseClusterWith(ctx, last, ms); err != nil {
		t.Fatalf("second run: %v", err)
	}
	for s := 1; s <= 2; s++ {
		for r := 1; r <= 3; r++ {
			conn := env.ReplicaConn(t, s, r)
			syncReplica(t, conn, "ev")
			syncReplica(t, conn, "schema_migrations")
			if got := count(t, conn, "SELECT count() FROM ev WHERE n = 1"); got != 1 {
				t.Errorf("shard %d replica %d: %d seed rows with column n, want 1 (one per shard)", s, r, got)
			}
			if got := count(t, conn, "SELECT count() FROM schema_migrations WHERE version >= 9030"); got != 2 {
				t.Errorf("shard %d replica %d: %d of the 2 versions recorded", s, r, got)
			}
		}
	}
}

// TestGoMigrationOnCluster upgrades events of the old layout (migrations
// 0020 and 0021) on both shards with the Go migration 0022 through the
// cluster runner: each shard keeps exactly its own events, and the new
// table is Replicated on every replica.
func TestGoMigrationOnCluster(t *testing.T) {
	ctx := context.Background()
	env := testenv.NewCluster(t)
	all, err := db.ClickHouseMigrations()
	if err != nil {
		t.Fatal(err)
	}
	var old, upgrade []db.Migration
	for _, m := range all {
		if m.Version < 22 {
			old = append(old, m)
		}
		if m.Version <= 22 {
			upgrade = append(upgrade, m)
		}
	}
	name := env.CHDatabase + "_old"
	c, err := db.OpenClickHouseCluster(ctx, db.ClickHouseOptions{Addr: env.CHAddr, Database: name, Cluster: "postage"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	defer env.CH.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" ON CLUSTER postage")
	if err := db.MigrateClickHouseClusterWith(ctx, c, old); err != nil {
		t.Fatal(err)
	}
	for s, conn := range c.Shards {
		// Two copies of e1 in two parts: the old table's race duplicate.
		for i := 0; i < 2; i++ {
			q := fmt.Sprintf("INSERT INTO events (customer_id, id, time, country, category, quantity, payload_hash, ingested_at) SELECT 'c%d', arrayJoin(['e1', 'e%d']), toDateTime('2026-10-01 00:00:00', 'UTC'), 'DE', 'marketing', 1, 7, toDateTime('2026-10-01 00:00:01', 'UTC')", s+1, i+2)
			if err := conn.Exec(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := db.MigrateClickHouseClusterWith(ctx, c, upgrade); err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	for s := 1; s <= 2; s++ {
		for r := 1; r <= 3; r++ {
			conn := env.ReplicaConn(t, s, r)
			var engine string
			var rows, ids, mine uint64
			if err := conn.QueryRow(ctx, "SELECT engine FROM system.tables WHERE database = ? AND name = 'events'", name).Scan(&engine); err != nil {
				t.Fatal(err)
			}
			if err := conn.Exec(ctx, "SYSTEM SYNC REPLICA "+name+".events"); err != nil {
				t.Fatal(err)
			}
			if err := conn.QueryRow(ctx, fmt.Sprintf("SELECT count(), uniqExact(id), countIf(customer_id = 'c%d') FROM %s.events", s, name)).Scan(&rows, &ids, &mine); err != nil {
				t.Fatal(err)
			}
			if engine != "ReplicatedMergeTree" || rows != 3 || ids != 3 || mine != 3 {
				t.Errorf("shard %d replica %d: %s with %d rows, %d ids, %d of the shard's customer; want ReplicatedMergeTree, 3, 3, 3", s, r, engine, rows, ids, mine)
			}
		}
	}
}

func TestMigrateClickHouseClusterRefusesBeforeRunning(t *testing.T) {
	ctx := context.Background()
	env := testenv.NewCluster(t)
	ms := []db.Migration{{Version: 9032, Name: "9032_mixed.sql", SQL: "CREATE TABLE IF NOT EXISTS ok9032 (x UInt8) ENGINE = MergeTree ORDER BY x;\nCREATE MATERIALIZED VIEW v9032 TO ok9032 AS SELECT 1 AS x;\n"}}
	err := db.MigrateClickHouseClusterWith(ctx, env.CHCluster, ms)
	if err == nil || !strings.Contains(err.Error(), "9032_mixed.sql statement 2") {
		t.Fatalf("got %v, want an error naming statement 2", err)
	}
	if got := count(t, env.CH, "SELECT count() FROM system.tables WHERE database = currentDatabase() AND name = 'ok9032'"); got != 0 {
		t.Error("statement 1 ran although statement 2 cannot run on a cluster")
	}
}

// writer inserts numbered blocks of events into one shard with a quorum,
// the way an ingester must: a block whose outcome is unknown is sent again
// identical (a Replicated table ignores a block it has), a refused one is
// sent again later, and only a block whose insert succeeded counts as
// acknowledged.
type writer struct {
	t      *testing.T
	conn   driver.Conn
	quorum db.Quorum
	rows   int // per block
	acked  int // blocks acknowledged

	refused, unknown int // failures seen, by outcome
}

func (w *writer) block(ctx context.Context, n int) error {
	batch, err := w.conn.PrepareBatch(ctx, "INSERT INTO events (customer_id, id, time, country, category, quantity, payload_hash, ingested_at)")
	if err != nil {
		return err
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := 0; i < w.rows; i++ {
		if err := batch.Append("c1", fmt.Sprintf("b%d-e%d", n, i), at, "DE", "marketing", uint64(1), uint64(n), at); err != nil {
			batch.Abort()
			return err
		}
	}
	return batch.Send()
}

// send inserts block n until it is acknowledged or the deadline passes.
func (w *writer) send(n int, deadline time.Time) {
	w.t.Helper()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err := db.InsertQuorum(ctx, w.quorum, func(ctx context.Context) error { return w.block(ctx, n) })
		cancel()
		switch {
		case err == nil:
			w.acked++
			return
		case errors.Is(err, db.ErrUnknownStatus):
			w.unknown++
		case errors.Is(err, db.ErrNotWritten):
			w.refused++
		default:
			w.t.Fatalf("block %d: unclassified failure: %v", n, err)
		}
		if postage.ErrorCode(err) != postage.EUNAVAILABLE {
			w.t.Fatalf("block %d: %v has code %q, want %q", n, err, postage.ErrorCode(err), postage.EUNAVAILABLE)
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("block %d not acknowledged before the deadline; last error: %v", n, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestQuorumInsertWithAReplicaKilled writes with a quorum of 2 of 3 while
// one replica of the shard is killed (kill -9): first one the writer does
// not talk to, then the one it talks to (its connection fails over). Every
// block is acknowledged, and each replica ends with exactly the
// acknowledged rows, the killed ones once restarted.
func TestQuorumInsertWithAReplicaKilled(t *testing.T) {
	env := testenv.NewCluster(t)
	shard := env.CHCluster.Topology.Shards[0]
	w := &writer{t: t, conn: env.CHCluster.Shards[0], quorum: db.Quorum{Replicas: shard.Majority(), Timeout: 20 * time.Second}, rows: 100}
	deadline := time.Now().Add(3 * time.Minute)
	n := 0
	sendSome := func(k int) {
		for i := 0; i < k; i++ {
			n++
			w.send(n, deadline)
		}
	}
	sendSome(5)
	for _, replica := range []int{3, 1} {
		if err := env.Cluster.KillServer(1, replica); err != nil {
			t.Fatal(err)
		}
		sendSome(10)
		restart(t, env, 1, replica)
		sendSome(5)
	}
	t.Logf("%d blocks acknowledged; failures on the way: %d refused, %d unknown status", w.acked, w.refused, w.unknown)
	want := uint64(w.acked * w.rows)
	for r := 1; r <= 3; r++ {
		conn := env.ReplicaConn(t, 1, r)
		syncReplica(t, conn, "events")
		if got := count(t, conn, "SELECT count() FROM events"); got != want {
			t.Errorf("replica %d: %d rows, want the %d acknowledged (none lost, none twice)", r, got, want)
		}
	}
}

// TestQuorumRefusedWithoutMajority stops two replicas of three cleanly: a
// quorum insert is refused at once (285, ErrNotWritten), an insert without
// quorum still goes in, so the quorum is what refuses it.
func TestQuorumRefusedWithoutMajority(t *testing.T) {
	env := testenv.NewCluster(t)
	w := &writer{t: t, conn: env.CHCluster.Shards[1], quorum: db.Quorum{Replicas: 2}, rows: 10}
	for _, r := range []int{2, 3} {
		if err := env.Cluster.StopServer(2, r); err != nil {
			t.Fatal(err)
		}
		defer restart(t, env, 2, r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := db.InsertQuorum(ctx, w.quorum, func(ctx context.Context) error { return w.block(ctx, 1) })
	if !errors.Is(err, db.ErrNotWritten) || !strings.Contains(err.Error(), "285") {
		t.Fatalf("quorum 2 with one live replica: %v, want ErrNotWritten with code 285", err)
	}
	if err := db.InsertQuorum(ctx, db.Quorum{}, func(ctx context.Context) error { return w.block(ctx, 2) }); err != nil {
		t.Fatalf("without quorum: %v", err)
	}
	if got := count(t, env.ReplicaConn(t, 2, 1), "SELECT count() FROM events"); got != 10 {
		t.Errorf("%d rows, want the 10 of the insert without quorum", got)
	}
}

// TestQuorumInsertWithoutZooKeeper stops ZooKeeper: inserts are refused
// with ErrNotWritten (retry later) and nothing of them is stored; once it
// is back the same blocks go in, once each.
func TestQuorumInsertWithoutZooKeeper(t *testing.T) {
	env := testenv.NewCluster(t)
	shard := env.CHCluster.Topology.Shards[1]
	w := &writer{t: t, conn: env.CHCluster.Shards[1], quorum: db.Quorum{Replicas: shard.Majority()}, rows: 50}
	deadline := time.Now().Add(3 * time.Minute)
	w.send(1, deadline)
	if err := env.Cluster.StopZooKeeper(); err != nil {
		t.Fatal(err)
	}
	zkUp := false
	defer func() {
		if !zkUp {
			if err := env.Cluster.StartZooKeeper(context.Background()); err != nil {
				t.Error(err)
			}
		}
	}()
	for n := 2; n <= 4; n++ {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err := db.InsertQuorum(ctx, w.quorum, func(ctx context.Context) error { return w.block(ctx, n) })
		cancel()
		if !errors.Is(err, db.ErrNotWritten) || postage.ErrorCode(err) != postage.EUNAVAILABLE {
			t.Fatalf("block %d without ZooKeeper: %v, want ErrNotWritten with code %s", n, err, postage.EUNAVAILABLE)
		}
		t.Logf("block %d without ZooKeeper: %v", n, err)
	}
	if got := count(t, env.ReplicaConn(t, 2, 1), "SELECT count() FROM events"); got != 50 {
		t.Errorf("without ZooKeeper: %d rows, want the 50 of block 1 (reads work, refused blocks are not stored)", got)
	}
	if err := env.Cluster.StartZooKeeper(context.Background()); err != nil {
		t.Fatal(err)
	}
	zkUp = true
	for n := 2; n <= 4; n++ {
		w.send(n, deadline)
	}
	for r := 1; r <= 3; r++ {
		conn := env.ReplicaConn(t, 2, r)
		syncReplica(t, conn, "events")
		if got := count(t, conn, "SELECT count() FROM events"); got != 200 {
			t.Errorf("replica %d: %d rows, want 200 (4 blocks of 50, each once)", r, got)
		}
	}
}

// restart starts a killed server again and waits until its tables take
// part in replication again (its old ZooKeeper session must expire first).
func restart(t *testing.T, env *testenv.Env, shard, replica int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := env.Cluster.StartServer(ctx, shard, replica); err != nil {
		t.Fatal(err)
	}
}

// syncReplica waits until the replica has fetched every part its table's
// replication log names. A replica whose ZooKeeper session is being
// renewed (ZooKeeper just came back) answers 999 "Session expired" until
// it has a new one: asked again.
func syncReplica(t *testing.T, conn driver.Conn, table string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for {
		err := conn.Exec(ctx, "SYSTEM SYNC REPLICA "+table)
		var ex *clickhouse.Exception
		if err == nil {
			return
		}
		if !errors.As(err, &ex) || ex.Code != 999 || ctx.Err() != nil {
			t.Fatalf("sync replica of %s: %v", table, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func count(t *testing.T, conn driver.Conn, q string) uint64 {
	t.Helper()
	var n uint64
	if err := conn.QueryRow(context.Background(), q).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}
