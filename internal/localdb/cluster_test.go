//go:build linux

package localdb

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

func TestZooKeeperRestartKeepsData(t *testing.T) {
	ctx := context.Background()
	opts := ZooKeeperOptions{Dir: filepath.Join(t.TempDir(), "zk"), Fast: true}
	zk, err := StartZooKeeper(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer zk.Kill()
	if mode, err := zooKeeperMode(ctx, zk.Addr()); err != nil || mode != "standalone" {
		t.Fatalf("mode = %q, %v; want standalone", mode, err)
	}
	if err := zk.Freeze(); err != nil {
		t.Fatal(err)
	}
	pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	_, err = zooKeeperMode(pctx, zk.Addr())
	cancel()
	if err == nil {
		t.Error("a frozen ZooKeeper answered srvr")
	}
	if err := zk.Thaw(); err != nil {
		t.Fatal(err)
	}
	if err := zk.Stop(); err != nil {
		t.Fatal(err)
	}
	opts.Port = zk.Port()
	zk2, err := StartZooKeeper(ctx, opts)
	if err != nil {
		t.Fatalf("restart on the same port: %v", err)
	}
	defer zk2.Kill()
	if zk2.Addr() != zk.Addr() {
		t.Errorf("restarted on %s, want %s", zk2.Addr(), zk.Addr())
	}
}

// TestCluster starts a 2 shards × 2 replicas cluster and walks what the
// fault tests rely on: ON CLUSTER DDL, replication within a shard only,
// kill -9 and restart of a replica (it catches up), ZooKeeper stopped
// (inserts refused, reads served) and started again.
func TestCluster(t *testing.T) {
	ctx := context.Background()
	begin := time.Now()
	c, err := StartCluster(ctx, ClusterOptions{Dir: t.TempDir(), Shards: 2, Replicas: 2, SessionTimeout: 5 * time.Second, Fast: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Kill()
	t.Logf("2x2 cluster and ZooKeeper started in %v", time.Since(begin).Round(time.Millisecond))

	conns := map[string]driver.Conn{}
	conn := func(shard, replica int) driver.Conn {
		t.Helper()
		addr := c.Addr(shard, replica)
		if cn, ok := conns[addr]; ok {
			return cn
		}
		cn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}, DialTimeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cn.Close() })
		conns[addr] = cn
		return cn
	}
	exec := func(cn driver.Conn, q string) error {
		qctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		return cn.Exec(qctx, q)
	}
	count := func(shard, replica int) uint64 {
		t.Helper()
		var n uint64
		if err := conn(shard, replica).QueryRow(ctx, "SELECT count() FROM db.t").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	insert := func(shard, replica, n int) error {
		cn := conn(shard, replica)
		qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		b, err := cn.PrepareBatch(qctx, "INSERT INTO db.t (v)")
		if err != nil {
			return err
		}
		for i := 0; i < n; i++ {
			if err := b.Append(fmt.Sprintf("s%dr%d-%d-%d", shard, replica, n, i)); err != nil {
				return err
			}
		}
		return b.Send()
	}
	// syncReplica waits until the replica has fetched everything its
	// shard's log holds.
	syncReplica := func(shard, replica int) {
		t.Helper()
		if err := exec(conn(shard, replica), "SYSTEM SYNC REPLICA db.t"); err != nil {
			t.Fatal(err)
		}
	}

	start := time.Now()
	if err := exec(conn(1, 1), "CREATE DATABASE db ON CLUSTER "+c.Name()); err != nil {
		t.Fatal(err)
	}
	if err := exec(conn(1, 1), "CREATE TABLE db.t ON CLUSTER "+c.Name()+" (v String) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/db/t', '{replica}') ORDER BY v"); err != nil {
		t.Fatal(err)
	}
	t.Logf("database and table ON CLUSTER in %v", time.Since(start).Round(time.Millisecond))

	if err := insert(1, 1, 10); err != nil {
		t.Fatal(err)
	}
	syncReplica(1, 2)
	if got := count(1, 2); got != 10 {
		t.Errorf("shard 1 replica 2 has %d rows, want the 10 inserted on replica 1", got)
	}
	if got := count(2, 1) + count(2, 2); got != 0 {
		t.Errorf("shard 2 has %d rows, want none", got)
	}

	// kill -9 replica 2, insert meanwhile, restart it: it catches up.
	if err := c.KillServer(1, 2); err != nil {
		t.Fatal(err)
	}
	delete(conns, c.Addr(1, 2))
	if err := insert(1, 1, 5); err != nil {
		t.Fatal(err)
	}
	if err := c.StartServer(ctx, 1, 2); err != nil {
		t.Fatal(err)
	}
	if err := c.StartServer(ctx, 1, 2); err == nil {
		t.Error("StartServer of a running server succeeded")
	}
	syncReplica(1, 2)
	if got := count(1, 2); got != 15 {
		t.Errorf("restarted replica has %d rows, want 15", got)
	}

	// ZooKeeper down: inserts refused (242 read-only, or 225 when the
	// server has noticed its session is gone), reads served.
	if err := c.StopZooKeeper(); err != nil {
		t.Fatal(err)
	}
	if err := c.StartServer(ctx, 2, 1); err == nil {
		t.Error("StartServer of a running server succeeded while ZooKeeper is down")
	}
	err = insert(1, 1, 3)
	var ex *clickhouse.Exception
	if !errors.As(err, &ex) || (ex.Code != 242 && ex.Code != 225) {
		t.Errorf("insert without ZooKeeper: %v, want code 242 (read-only) or 225 (no ZooKeeper)", err)
	}
	if got := count(1, 1); got != 15 {
		t.Errorf("read without ZooKeeper: %d rows, want 15", got)
	}
	if err := c.StartZooKeeper(ctx); err != nil {
		t.Fatal(err)
	}
	// The servers reconnect by themselves; inserts work again then.
	deadline := time.Now().Add(time.Minute)
	for {
		err := insert(1, 1, 4)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("insert after ZooKeeper came back: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	syncReplica(1, 2)
	if got := count(1, 2); got != 19 {
		t.Errorf("after ZooKeeper's return replica 2 has %d rows, want 19", got)
	}
	begin = time.Now()
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("cluster stopped in %v", time.Since(begin).Round(time.Millisecond))
}
