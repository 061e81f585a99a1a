package db

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/go-faster/city"
)

// Shard is one shard of a ClickHouse cluster as system.clusters lists it.
type Shard struct {
	Num      int      // shard_num, 1-based: the {shard} macro of its servers
	Weight   int      // shard_weight
	Replicas []string // native host:port of each replica, in replica_num order
}

// Majority is the default insert quorum of the shard: more than half of its
// replicas (2 of 3, 3 of 5; 2 of 2, so a 2-replica shard stops taking
// inserts when one replica is down).
func (s Shard) Majority() int { return len(s.Replicas)/2 + 1 }

// Topology is the layout of a cluster: its shards in shard_num order.
type Topology struct {
	Cluster string
	Shards  []Shard
}

// Servers returns the number of servers of the cluster.
func (t Topology) Servers() int {
	n := 0
	for _, s := range t.Shards {
		n += len(s.Replicas)
	}
	return n
}

// ShardFor returns the index in Shards of the shard that holds the data of
// shard key key (a customer's shard key): the shard a Distributed table
// with sharding key cityHash64(key) would pick, so postage and such a table
// (for ad-hoc queries) agree. Each shard owns shard_weight consecutive
// slots of cityHash64(key) modulo the total weight, in shard order.
func (t Topology) ShardFor(key string) int {
	total := 0
	for _, s := range t.Shards {
		total += max(s.Weight, 0)
	}
	if total == 0 {
		return 0
	}
	slot := int(city.CH64([]byte(key)) % uint64(total))
	for i, s := range t.Shards {
		if slot < s.Weight {
			return i
		}
		slot -= max(s.Weight, 0)
	}
	return len(t.Shards) - 1
}

// topologyQuery reads a cluster's servers from system.clusters. The port
// is the native protocol's (remote_servers names native ports).
func topologyQuery(cluster string) (string, []any) {
	return `SELECT shard_num, shard_weight, replica_num, host_name, port
FROM system.clusters
WHERE cluster = ?
ORDER BY shard_num, replica_num`, []any{cluster}
}

// ReadTopology reads the layout of cluster from system.clusters on the
// server conn is connected to. An unknown cluster is an error naming the
// clusters the server knows.
func ReadTopology(ctx context.Context, conn driver.Conn, cluster string) (Topology, error) {
	q, args := topologyQuery(cluster)
	rows, err := conn.Query(ctx, q, args...)
	if err != nil {
		return Topology{}, fmt.Errorf("read cluster %s from system.clusters: %w", cluster, err)
	}
	defer rows.Close()
	t := Topology{Cluster: cluster}
	for rows.Next() {
		var shard, weight, replica uint32
		var host string
		var port uint16
		if err := rows.Scan(&shard, &weight, &replica, &host, &port); err != nil {
			return Topology{}, fmt.Errorf("read cluster %s from system.clusters: %w", cluster, err)
		}
		if n := len(t.Shards); n == 0 || t.Shards[n-1].Num != int(shard) {
			t.Shards = append(t.Shards, Shard{Num: int(shard), Weight: int(weight)})
		}
		s := &t.Shards[len(t.Shards)-1]
		s.Replicas = append(s.Replicas, joinHostPort(host, port))
	}
	if err := rows.Err(); err != nil {
		return Topology{}, fmt.Errorf("read cluster %s from system.clusters: %w", cluster, err)
	}
	if len(t.Shards) == 0 {
		return Topology{}, fmt.Errorf("cluster %q is not in system.clusters of the server (it knows %s): check [clickhouse] cluster and the servers' remote_servers", cluster, knownClusters(ctx, conn))
	}
	for i, s := range t.Shards {
		if s.Num != i+1 {
			return Topology{}, fmt.Errorf("cluster %s: shards are numbered %d..., want 1, 2, ... in order", cluster, t.Shards[0].Num)
		}
	}
	return t, nil
}

func joinHostPort(host string, port uint16) string {
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return host + ":" + strconv.Itoa(int(port))
}

func knownClusters(ctx context.Context, conn driver.Conn) string {
	rows, err := conn.Query(ctx, "SELECT DISTINCT cluster FROM system.clusters ORDER BY cluster")
	if err != nil {
		return "?"
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if rows.Scan(&n) == nil {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// ClickHouseCluster is postage's connection to a ClickHouse cluster: one
// connection for distributed DDL (any server; ON CLUSTER reaches them
// all) and one per shard, which fails over among the shard's replicas in
// order. Writes and reads of a customer go to its shard's connection.
type ClickHouseCluster struct {
	Topology Topology
	Database string
	// DDL is connected to the first reachable of the configured addresses.
	DDL driver.Conn
	// Shards[i] is connected to shard i+1 (Topology.Shards[i]).
	Shards []driver.Conn

	opts ClickHouseOptions // for connections to single replicas
}

// OpenClickHouseCluster connects to the cluster opts.Cluster through any of
// opts.Addr and opts.Addrs, reads its layout from system.clusters, creates
// the database ON CLUSTER if it is missing and opens one connection per
// shard. It checks only that one server answers: a shard that is down
// fails its own queries, not the others'.
func OpenClickHouseCluster(ctx context.Context, opts ClickHouseOptions) (*ClickHouseCluster, error) {
	if opts.Cluster == "" {
		return nil, errors.New("open ClickHouse cluster: no cluster name given ([clickhouse] cluster)")
	}
	ddl, err := OpenClickHouse(ctx, opts)
	if err != nil {
		return nil, err
	}
	c := &ClickHouseCluster{Database: cmp.Or(opts.Database, "default"), DDL: ddl, opts: opts}
	if c.Topology, err = ReadTopology(ctx, ddl, opts.Cluster); err != nil {
		ddl.Close()
		return nil, err
	}
	for _, s := range c.Topology.Shards {
		so := opts
		so.Addr, so.Addrs = s.Replicas[0], s.Replicas[1:]
		conn, err := openClickHouse(so)
		if err != nil {
			c.Close()
			return nil, err
		}
		c.Shards = append(c.Shards, conn)
	}
	return c, nil
}

// OpenShard opens another connection to shard i (an index of
// Topology.Shards), failing over among its replicas in order as Shards[i]
// does, that sends settings with every query (for example the quorum of
// the shard's writer: Quorum.Settings). The caller closes it.
func (c *ClickHouseCluster) OpenShard(i int, settings clickhouse.Settings) (driver.Conn, error) {
	s := c.Topology.Shards[i]
	o := c.opts
	o.Addr, o.Addrs, o.Settings = s.Replicas[0], s.Replicas[1:], settings
	return openClickHouse(o)
}

// OpenReplicas opens one connection to each replica of shard i, in
// replica order, for what must be asked of every server (the queries each
// runs: system.processes). The caller closes them.
func (c *ClickHouseCluster) OpenReplicas(i int) ([]driver.Conn, error) {
	var out []driver.Conn
	for _, addr := range c.Topology.Shards[i].Replicas {
		o := c.opts
		o.Addr, o.Addrs, o.MaxOpenConns = addr, nil, 2
		conn, err := openClickHouse(o)
		if err != nil {
			for _, c := range out {
				c.Close()
			}
			return nil, err
		}
		out = append(out, conn)
	}
	return out, nil
}

// Close closes every connection.
func (c *ClickHouseCluster) Close() error {
	var errs []error
	if c.DDL != nil {
		errs = append(errs, c.DDL.Close())
	}
	for _, s := range c.Shards {
		errs = append(errs, s.Close())
	}
	return errors.Join(errs...)
}
