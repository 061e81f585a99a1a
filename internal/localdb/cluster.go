package localdb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"regexp"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// ClusterOptions configures StartCluster.
type ClusterOptions struct {
	// Dir holds the servers' directories: zookeeper/ and s<shard>r<replica>/
	// for each ClickHouse server.
	Dir string
	// Name is the cluster's name in remote_servers (what ON CLUSTER and
	// [clickhouse] cluster name); "" means "postage".
	Name string
	// Shards and Replicas (per shard) size the cluster; 0 means 1.
	Shards, Replicas int
	// SessionTimeout is the ClickHouse servers' ZooKeeper session timeout:
	// how long a killed server still counts as an active replica (and a
	// restarted one waits before it replicates again). 0 means 30 s.
	SessionTimeout time.Duration
	// Fast does not fsync ZooKeeper's log (see ZooKeeperOptions.Fast).
	Fast bool
	// Logger receives a line when a server starts or stops; nil discards.
	Logger *slog.Logger
}

// Cluster is a running replicated ClickHouse cluster on the loopback
// interface: one ZooKeeper and Shards × Replicas ClickHouse servers, each
// with the {shard} and {replica} macros, remote_servers naming all of them
// (internal_replication, so Replicated tables replicate by themselves) and
// distributed DDL, so ON CLUSTER works. Its methods stop, kill and restart
// single servers and ZooKeeper, for fault tests; they are safe for
// concurrent use.
type Cluster struct {
	dir    string
	name   string
	logger *slog.Logger
	zkOpts ZooKeeperOptions

	mu      sync.Mutex
	zk      *ZooKeeper
	servers [][]*ClickHouse       // [shard-1][replica-1]
	opts    [][]ClickHouseOptions // what each server was started with
}

var clusterName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// StartCluster starts ZooKeeper, waits until it serves, then starts every
// ClickHouse server concurrently and returns when all answer. The order
// matters: a ClickHouse server started before ZooKeeper serves may crash
// on its first ON CLUSTER query or come up without its Replicated tables
// (docs/notes/clickhouse-18.16-cluster.md). On failure everything
// started is stopped.
func StartCluster(ctx context.Context, opts ClusterOptions) (*Cluster, error) {
	if opts.Dir == "" {
		return nil, errors.New("start cluster: no directory given")
	}
	if err := supported(); err != nil {
		return nil, fmt.Errorf("start cluster: %w", err)
	}
	if opts.Name == "" {
		opts.Name = "postage"
	}
	if !clusterName.MatchString(opts.Name) {
		return nil, fmt.Errorf("start cluster: name %q: use letters, digits and _", opts.Name)
	}
	opts.Shards, opts.Replicas = max(opts.Shards, 1), max(opts.Replicas, 1)
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("start cluster: %w", err)
	}
	logger := orDiscard(opts.Logger)
	c := &Cluster{dir: dir, name: opts.Name, logger: logger,
		zkOpts: ZooKeeperOptions{Dir: filepath.Join(dir, "zookeeper"), Fast: opts.Fast, Logger: logger}}
	if c.zk, err = StartZooKeeper(ctx, c.zkOpts); err != nil {
		return nil, fmt.Errorf("start cluster: %w", err)
	}
	c.zkOpts.Port = c.zk.Port() // the servers' configuration names it: keep it on restarts

	for attempt := 0; ; attempt++ {
		err := c.startServers(ctx, opts)
		if err == nil {
			return c, nil
		}
		c.killServers()
		if !errors.Is(err, errAddrInUse) || attempt >= 2 {
			_ = c.zk.Kill()
			return nil, fmt.Errorf("start cluster: %w", err)
		}
	}
}

// startServers picks every port first (each server's configuration names
// all the others), then starts the servers concurrently.
func (c *Cluster) startServers(ctx context.Context, opts ClusterOptions) error {
	shards := make([][]string, opts.Shards)
	c.opts = make([][]ClickHouseOptions, opts.Shards)
	c.servers = make([][]*ClickHouse, opts.Shards)
	// Two ports a server (native and interserver), all distinct.
	ports, err := freePorts(2 * opts.Shards * opts.Replicas)
	if err != nil {
		return err
	}
	for s := range shards {
		shards[s] = make([]string, opts.Replicas)
		c.opts[s] = make([]ClickHouseOptions, opts.Replicas)
		c.servers[s] = make([]*ClickHouse, opts.Replicas)
		for r := range shards[s] {
			tcp, inter := ports[0], ports[1]
			ports = ports[2:]
			shards[s][r] = "127.0.0.1:" + fmt.Sprint(tcp)
			c.opts[s][r] = ClickHouseOptions{
				Dir:      filepath.Join(c.dir, ReplicaName(s+1, r+1)),
				TCPPort:  tcp,
				HTTPPort: -1,
				Logger:   c.logger,
				Member: &ClusterMember{
					Cluster: c.name, Shards: shards, Shard: s + 1, Replica: r + 1,
					InterserverPort: inter, ZooKeeper: []string{c.zk.Addr()},
					SessionTimeout: opts.SessionTimeout,
				},
			}
		}
	}
	var g errgroup.Group
	for s := range c.opts {
		for r := range c.opts[s] {
			g.Go(func() error {
				ch, err := StartClickHouse(ctx, c.opts[s][r])
				c.mu.Lock()
				c.servers[s][r] = ch
				c.mu.Unlock()
				return err
			})
		}
	}
	return g.Wait()
}

func (c *Cluster) killServers() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, shard := range c.servers {
		for _, ch := range shard {
			if ch != nil {
				_ = ch.Kill()
			}
		}
	}
}

// Name is the cluster's name in remote_servers: what ON CLUSTER takes.
func (c *Cluster) Name() string { return c.name }

// Dir returns the directory given in ClusterOptions.Dir, made absolute.
func (c *Cluster) Dir() string { return c.dir }

// Shards returns the number of shards.
func (c *Cluster) Shards() int { return len(c.opts) }

// Replicas returns the number of replicas of each shard.
func (c *Cluster) Replicas() int { return len(c.opts[0]) }

// Server returns replica r (1-based) of shard s (1-based): the running
// server, or the last one started there if it has been stopped.
func (c *Cluster) Server(shard, replica int) *ClickHouse {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.servers[shard-1][replica-1]
}

// Addr returns the native host:port of replica r of shard s. It stays the
// same across restarts.
func (c *Cluster) Addr(shard, replica int) string {
	return fmt.Sprintf("127.0.0.1:%d", c.opts[shard-1][replica-1].TCPPort)
}

// ShardAddrs returns the addresses of the replicas of shard s, in order.
func (c *Cluster) ShardAddrs(shard int) []string {
	out := make([]string, len(c.opts[shard-1]))
	for r := range out {
		out[r] = c.Addr(shard, r+1)
	}
	return out
}

// Addrs returns the addresses of every server, shard by shard.
func (c *Cluster) Addrs() []string {
	var out []string
	for s := range c.opts {
		out = append(out, c.ShardAddrs(s+1)...)
	}
	return out
}

// ZooKeeper returns the ZooKeeper server: the running one, or the last one
// started if it has been stopped.
func (c *Cluster) ZooKeeper() *ZooKeeper {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.zk
}

// ZooKeeperAddr returns ZooKeeper's host:port; it stays the same across
// restarts.
func (c *Cluster) ZooKeeperAddr() string { return fmt.Sprintf("127.0.0.1:%d", c.zkOpts.Port) }

// KillServer kills replica r of shard s at once (SIGKILL, as kill -9): its
// ZooKeeper session lives on until it times out, so the others count it as
// an active replica meanwhile.
func (c *Cluster) KillServer(shard, replica int) error { return c.Server(shard, replica).Kill() }

// StopServer shuts replica r of shard s down cleanly (SIGTERM): its
// session ends at once, so quorum inserts see one replica less.
func (c *Cluster) StopServer(shard, replica int) error { return c.Server(shard, replica).Stop() }

// StartServer starts replica r of shard s again, on its directory, ports
// and configuration, after StopServer or KillServer. ZooKeeper must be
// serving (StartServer checks): a server started without it may come up
// without its Replicated tables until its next restart. After a kill, the
// server's tables replicate again only once its old session has expired.
func (c *Cluster) StartServer(ctx context.Context, shard, replica int) error {
	c.mu.Lock()
	old := c.servers[shard-1][replica-1]
	zk := c.zk
	c.mu.Unlock()
	if !old.proc.exited() {
		return fmt.Errorf("start %s: it is running", ReplicaName(shard, replica))
	}
	if zk.proc.exited() {
		return fmt.Errorf("start %s: ZooKeeper is not running: start it first (StartZooKeeper)", ReplicaName(shard, replica))
	}
	if mode, err := zooKeeperMode(ctx, zk.Addr()); err != nil || mode == "" {
		return fmt.Errorf("start %s: ZooKeeper is not serving (%v): a server started now may lose its tables", ReplicaName(shard, replica), err)
	}
	ch, err := StartClickHouse(ctx, c.opts[shard-1][replica-1])
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.servers[shard-1][replica-1] = ch
	c.mu.Unlock()
	return nil
}

// StopZooKeeper shuts ZooKeeper down (SIGTERM). Replicated tables turn
// read-only (inserts fail with code 242) until it is back.
func (c *Cluster) StopZooKeeper() error { return c.ZooKeeper().Stop() }

// KillZooKeeper kills ZooKeeper at once (SIGKILL).
func (c *Cluster) KillZooKeeper() error { return c.ZooKeeper().Kill() }

// StartZooKeeper starts ZooKeeper again on its directory and port (its
// data, and so every session and table, survives) and returns once it
// serves.
func (c *Cluster) StartZooKeeper(ctx context.Context) error {
	c.mu.Lock()
	old := c.zk
	c.mu.Unlock()
	if !old.proc.exited() {
		return errors.New("start ZooKeeper: it is running")
	}
	zk, err := StartZooKeeper(ctx, c.zkOpts)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.zk = zk
	c.mu.Unlock()
	return nil
}

// Stop shuts every server down cleanly, ClickHouse first (concurrently),
// then ZooKeeper, and returns the first error.
func (c *Cluster) Stop() error { return c.stop((*ClickHouse).Stop, (*ZooKeeper).Stop) }

// Kill kills every server at once, for throwaway data.
func (c *Cluster) Kill() error { return c.stop((*ClickHouse).Kill, (*ZooKeeper).Kill) }

func (c *Cluster) stop(stopCH func(*ClickHouse) error, stopZK func(*ZooKeeper) error) error {
	c.mu.Lock()
	var servers []*ClickHouse
	for _, shard := range c.servers {
		servers = append(servers, shard...)
	}
	zk := c.zk
	c.mu.Unlock()
	var g errgroup.Group
	for _, ch := range servers {
		if ch != nil {
			g.Go(func() error { return stopCH(ch) })
		}
	}
	err := g.Wait()
	return errors.Join(err, stopZK(zk))
}
