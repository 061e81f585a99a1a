// Package testenv gives tests real, migrated databases: one private
// PostgreSQL and ClickHouse pair per test binary (started on first use, in a
// temporary directory, stopped and removed at the end), and a fresh database
// in each for every call of New, so tests never see each other's data.
// NewCluster does the same on a replicated ClickHouse cluster (2 shards ×
// 3 replicas and a ZooKeeper, started on first use), for the tests of
// cluster mode and its faults.
//
// Use it in every package whose tests touch storage:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
//
//	func TestSomething(t *testing.T) {
//		env := testenv.New(t)
//		// env.PG, env.CH, ...
//	}
//
// Tests may call t.Parallel: each gets its own databases.
//
// The suites that run on both ClickHouse backends (metering, billing,
// reports) take their databases from NewBackend instead: one server, or
// the cluster when the run is in cluster mode (POSTAGE_TEST_CLICKHOUSE=cluster,
// which `make test` sets for a second run of those packages). A test of one
// server's internals calls SingleServerOnly first.
package testenv

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"postage/internal/db"
	"postage/internal/localdb"
)

// Env is one test's storage: a fresh, migrated database on each server.
type Env struct {
	PG         *pgxpool.Pool // pool on PGDatabase; closed when the test ends
	PGDSN      string        // URL of PGDatabase, for opening more connections
	PGDatabase string

	CH         driver.Conn // native connection on CHDatabase; closed when the test ends
	CHAddr     string      // host:port of the native protocol (a cluster's first server)
	CHDatabase string

	// The servers, shared by all tests of the binary: do not stop them.
	PGServer *localdb.Postgres
	CHServer *localdb.ClickHouse // nil in cluster mode

	// Cluster mode (NewCluster) only, nil otherwise. Cluster is the
	// binary's cluster (Cluster.Server(shard, replica) says which server
	// is which; fault tests may stop and start its servers and ZooKeeper,
	// but must leave them all running when they end); CHCluster connects
	// to each of its shards, on CHDatabase, and CH is its DDL connection
	// (the first server that answers, in shard and replica order).
	Cluster   *localdb.Cluster
	CHCluster *db.ClickHouseCluster
}

// templateDB is the PostgreSQL database migrated once per test binary and
// copied (CREATE DATABASE ... TEMPLATE) for every test: much faster than
// migrating each test's database.
const templateDB = "postage_template"

// The cluster of NewCluster: 2 shards × 3 replicas, so a shard keeps its
// quorum of 2 with one replica down. A 10 s ZooKeeper session makes a killed
// server's session expire sooner than ClickHouse's default 30 s, with room
// for a busy machine's pauses.
const (
	clusterShards         = 2
	clusterReplicas       = 3
	clusterName           = "postage"
	clusterSessionTimeout = 10 * time.Second
)

// servers are what the tests of one binary share, each started on first use.
type servers struct {
	dir string

	pgOnce  sync.Once
	pgErr   error
	pg      *localdb.Postgres
	pgAdmin *pgxpool.Pool // on database postgres, for CREATE/DROP DATABASE

	chOnce  sync.Once
	chErr   error
	ch      *localdb.ClickHouse
	chAdmin driver.Conn // on database default, for DROP DATABASE

	clusterOnce  sync.Once
	clusterErr   error
	cluster      *localdb.Cluster
	clusterAdmin driver.Conn // on database default of any server, for ON CLUSTER DDL
}

// Per test binary state; a test binary is one process, so this is its "main".
var (
	mainCalled atomic.Bool
	dirOnce    sync.Once
	shared     *servers
	dirErr     error
	stopOnce   sync.Once
	dbCounter  atomic.Int64
)

// Main runs the tests of a package and then stops the servers, if New
// started them, removes their directory and exits with the tests' code.
// Call it from TestMain. An interrupt (Ctrl-C) stops the servers too.
func Main(m *testing.M) {
	mainCalled.Store(true)
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-sigc
		shutdown()
		fmt.Fprintf(os.Stderr, "testenv: %v: servers stopped\n", sig)
		os.Exit(130)
	}()
	code := m.Run()
	signal.Stop(sigc)
	shutdown()
	os.Exit(code)
}

// BackendVar is the environment variable that selects the ClickHouse
// backend of NewBackend: "cluster" for the cluster of NewCluster, anything
// else (or unset) for one server.
const BackendVar = "POSTAGE_TEST_CLICKHOUSE"

// ClusterMode reports whether this run puts the suites on the ClickHouse
// cluster (BackendVar=cluster).
func ClusterMode() bool { return os.Getenv(BackendVar) == "cluster" }

// NewBackend returns fresh migrated databases for t on the run's ClickHouse
// backend: New on one server, NewCluster in cluster mode. Tests that must
// hold on both call it; the stores they build over it follow
// Env.Clustered.
func NewBackend(t testing.TB) *Env {
	t.Helper()
	if ClusterMode() {
		return NewCluster(t)
	}
	return newServer(t)
}

// SingleServerOnly skips t in cluster mode, saying why: for the few tests
// of one server's internals (its crash or restart, a proxy in front of it)
// that have no meaning, or a separate cluster test, on the cluster. Call it
// first.
func SingleServerOnly(t testing.TB, why string) {
	t.Helper()
	if ClusterMode() {
		t.Skipf("single server only (%s=cluster): %s", BackendVar, why)
	}
}

// Clustered reports whether env is on the ClickHouse cluster (NewCluster).
func (env *Env) Clustered() bool { return env.CHCluster != nil }

// New returns fresh migrated databases for t on the binary's server pair,
// starting the pair on first use. The connections are closed and the
// databases dropped when t ends. If the servers cannot start, New fails the
// test with the reason; it never skips. In cluster mode it fails: a suite
// that runs on the cluster takes its databases from NewBackend, or says
// why a test stays on one server (SingleServerOnly).
func New(t testing.TB) *Env {
	t.Helper()
	if ClusterMode() {
		t.Fatalf("testenv.New in a cluster-mode run (%s=cluster): use NewBackend, or SingleServerOnly(t, why) for a test of one server's internals", BackendVar)
	}
	return newServer(t)
}

func newServer(t testing.TB) *Env {
	t.Helper()
	s := sharedServers(t)
	var wg sync.WaitGroup
	wg.Go(s.startPostgres)
	wg.Go(s.startClickHouse)
	wg.Wait()
	if err := cmp.Or(s.pgErr, s.chErr); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	name := databaseName(t.Name(), dbCounter.Add(1))
	env := &Env{CHAddr: s.ch.Addr(), CHDatabase: name, CHServer: s.ch}
	s.newPostgres(t, env, name)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if env.CH != nil {
			env.CH.Close()
		}
		if err := s.chAdmin.Exec(ctx, "DROP DATABASE IF EXISTS "+name); err != nil {
			t.Logf("testenv: drop ClickHouse database %s: %v", name, err)
		}
	})
	var err error
	// OpenClickHouse creates the database.
	if env.CH, err = db.OpenClickHouse(ctx, db.ClickHouseOptions{Addr: env.CHAddr, Database: name}); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if err := db.MigrateClickHouse(ctx, env.CH, name); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return env
}

// NewCluster is New on a ClickHouse cluster: the binary's cluster of
// 2 shards × 3 replicas and one ZooKeeper (started on first use, like the
// PostgreSQL server it shares with New), a fresh database created on every
// server ON CLUSTER and migrated with db.MigrateClickHouseCluster (the
// Replicated engines), and a fresh PostgreSQL database. The database is
// dropped ON CLUSTER when t ends.
func NewCluster(t testing.TB) *Env {
	t.Helper()
	s := sharedServers(t)
	var wg sync.WaitGroup
	wg.Go(s.startPostgres)
	wg.Go(s.startCluster)
	wg.Wait()
	if err := cmp.Or(s.pgErr, s.clusterErr); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	name := databaseName(t.Name(), dbCounter.Add(1))
	env := &Env{CHAddr: s.cluster.Addr(1, 1), CHDatabase: name, Cluster: s.cluster}
	s.newPostgres(t, env, name)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if env.CHCluster != nil {
			env.CHCluster.Close()
		}
		// Twice: a pooled connection to a server that a fault test killed
		// fails once.
		drop := "DROP DATABASE IF EXISTS " + name + " ON CLUSTER " + clusterName
		if err := s.clusterAdmin.Exec(ctx, drop); err != nil {
			if err := s.clusterAdmin.Exec(ctx, drop); err != nil {
				t.Logf("testenv: drop ClickHouse database %s on the cluster: %v", name, err)
			}
		}
	})
	var err error
	// OpenClickHouseCluster creates the database ON CLUSTER.
	env.CHCluster, err = db.OpenClickHouseCluster(ctx, db.ClickHouseOptions{
		Addr: env.CHAddr, Addrs: s.cluster.Addrs()[1:], Database: name, Cluster: clusterName,
	})
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	env.CH = env.CHCluster.DDL
	if err := db.MigrateClickHouseCluster(ctx, env.CHCluster); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return env
}

// ReplicaConn returns a connection to replica r (1-based) of shard s
// (1-based) of the cluster alone, on the test's database, closed when t
// ends. It fails when the test is not in cluster mode.
func (env *Env) ReplicaConn(t testing.TB, shard, replica int) driver.Conn {
	t.Helper()
	if env.Cluster == nil {
		t.Fatal("testenv: ReplicaConn needs NewCluster")
	}
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr:        []string{env.Cluster.Addr(shard, replica)},
		Auth:        clickhouse.Auth{Database: env.CHDatabase},
		DialTimeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatalf("testenv: connect to shard %d replica %d: %v", shard, replica, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// ShardConns are the connections of one shard's writer, as app.Open
// opens them on a cluster (internal/app/shards.go).
type ShardConns struct {
	// Writer fails over among the shard's replicas in order and sends the
	// shard's insert quorum (a majority: 2 of 3) with every query, so an
	// acknowledged insert is on a majority of the shard's replicas.
	Writer driver.Conn
	// Replicas connect to each replica alone, in replica order.
	Replicas []driver.Conn
}

// Shards opens the connections of each shard's writer of env's cluster, in
// shard order (the index ShardFor returns), closed when t ends. It fails
// when the test is not in cluster mode.
func (env *Env) Shards(t testing.TB) []ShardConns {
	t.Helper()
	if env.CHCluster == nil {
		t.Fatal("testenv: Shards needs NewCluster")
	}
	c := env.CHCluster
	out := make([]ShardConns, len(c.Topology.Shards))
	for i, sh := range c.Topology.Shards {
		q := db.Quorum{Replicas: sh.Majority()}
		w, err := c.OpenShard(i, q.Settings())
		if err != nil {
			t.Fatalf("testenv: connect to shard %d: %v", sh.Num, err)
		}
		t.Cleanup(func() { w.Close() })
		rs, err := c.OpenReplicas(i)
		if err != nil {
			t.Fatalf("testenv: connect to the replicas of shard %d: %v", sh.Num, err)
		}
		t.Cleanup(func() {
			for _, r := range rs {
				r.Close()
			}
		})
		out[i] = ShardConns{Writer: w, Replicas: rs}
	}
	return out
}

// ShardFor returns the index in Shards of the shard that holds customer's
// data on env's cluster (db.Topology.ShardFor), 0 on one server.
func (env *Env) ShardFor(customer string) int {
	if env.CHCluster == nil {
		return 0
	}
	return env.CHCluster.Topology.ShardFor(customer)
}

// StartZooKeeper starts a private ZooKeeper for t alone (tests of
// coordination may stop and freeze it without disturbing the cluster of
// NewCluster), stopped when t ends.
func StartZooKeeper(t testing.TB) *localdb.ZooKeeper {
	t.Helper()
	s := sharedServers(t)
	dir, err := os.MkdirTemp(s.dir, "zookeeper-")
	if err != nil {
		t.Fatal(err)
	}
	zk, err := localdb.StartZooKeeper(context.Background(), localdb.ZooKeeperOptions{Dir: dir, Fast: true})
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() {
		_ = zk.Kill()
		_ = os.RemoveAll(dir)
	})
	return zk
}

// sharedServers returns the binary's servers, creating their directory on
// first use.
func sharedServers(t testing.TB) *servers {
	t.Helper()
	if !mainCalled.Load() {
		t.Fatal("testenv: this package has no TestMain calling testenv.Main: add func TestMain(m *testing.M) { testenv.Main(m) }")
	}
	dirOnce.Do(func() {
		removeStaleDirs()
		dir, err := os.MkdirTemp(baseDir(), "postage-testenv-"+strconv.Itoa(os.Getpid())+"-")
		if err != nil {
			dirErr = fmt.Errorf("testenv: %w", err)
			return
		}
		// PostgreSQL runs as user postgres when we are root: it must enter dir.
		if err := os.Chmod(dir, 0o755); err != nil {
			dirErr = fmt.Errorf("testenv: %w", err)
			return
		}
		shared = &servers{dir: dir}
	})
	if dirErr != nil {
		t.Fatal(dirErr)
	}
	return shared
}

// newPostgres creates env's PostgreSQL database name from the template,
// opens env.PG on it, and drops it when t ends.
func (s *servers) newPostgres(t testing.TB, env *Env, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	env.PGServer, env.PGDatabase, env.PGDSN = s.pg, name, s.pg.DSN(name)
	if _, err := s.pgAdmin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" TEMPLATE "+templateDB+" STRATEGY FILE_COPY"); err != nil {
		t.Fatalf("testenv: create PostgreSQL database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if env.PG != nil {
			env.PG.Close()
		}
		if _, err := s.pgAdmin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Logf("testenv: drop PostgreSQL database %s: %v", name, err)
		}
	})
	var err error
	if env.PG, err = db.OpenPostgres(ctx, env.PGDSN); err != nil {
		t.Fatalf("testenv: %v", err)
	}
}

// startPostgres starts PostgreSQL once and prepares the migrated template.
func (s *servers) startPostgres() {
	s.pgOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if s.pgErr = s.startPostgresOnce(ctx); s.pgErr != nil {
			s.pgErr = fmt.Errorf("testenv: %w", s.pgErr)
		}
	})
}

func (s *servers) startPostgresOnce(ctx context.Context) error {
	var err error
	if s.pg, err = localdb.StartPostgres(ctx, localdb.PostgresOptions{Dir: filepath.Join(s.dir, "postgres"), Fast: true}); err != nil {
		return err
	}
	if s.pgAdmin, err = db.OpenPostgres(ctx, s.pg.DSN("postgres")); err != nil {
		return err
	}
	if _, err := s.pgAdmin.Exec(ctx, "CREATE DATABASE "+templateDB); err != nil {
		return fmt.Errorf("create template database: %w", err)
	}
	tmpl, err := db.OpenPostgres(ctx, s.pg.DSN(templateDB))
	if err != nil {
		return err
	}
	err = db.MigratePostgres(ctx, tmpl)
	tmpl.Close()
	if err != nil {
		return err
	}
	// Nobody may connect to the template: CREATE DATABASE ... TEMPLATE
	// fails while anyone is connected to it.
	if _, err := s.pgAdmin.Exec(ctx, "ALTER DATABASE "+templateDB+" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false"); err != nil {
		return fmt.Errorf("seal template database: %w", err)
	}
	return nil
}

// startClickHouse starts the single ClickHouse server once.
func (s *servers) startClickHouse() {
	s.chOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		var err error
		if s.ch, err = localdb.StartClickHouse(ctx, localdb.ClickHouseOptions{Dir: filepath.Join(s.dir, "clickhouse"), HTTPPort: -1}); err == nil {
			s.chAdmin, err = db.OpenClickHouse(ctx, db.ClickHouseOptions{Addr: s.ch.Addr()})
		}
		if err != nil {
			s.chErr = fmt.Errorf("testenv: %w", err)
		}
	})
}

// startCluster starts the cluster once.
func (s *servers) startCluster() {
	s.clusterOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		var err error
		s.cluster, err = localdb.StartCluster(ctx, localdb.ClusterOptions{
			Dir: filepath.Join(s.dir, "cluster"), Name: clusterName,
			Shards: clusterShards, Replicas: clusterReplicas,
			SessionTimeout: clusterSessionTimeout, Fast: true,
		})
		if err == nil {
			s.clusterAdmin, err = db.OpenClickHouse(ctx, db.ClickHouseOptions{Addr: s.cluster.Addr(1, 1), Addrs: s.cluster.Addrs()[1:]})
		}
		if err != nil {
			s.clusterErr = fmt.Errorf("testenv: %w", err)
		}
	})
}

// shutdown stops the servers and removes their directory, once.
func shutdown() {
	stopOnce.Do(func() {
		s := shared
		if s == nil {
			return
		}
		if s.chAdmin != nil {
			_ = s.chAdmin.Close()
		}
		if s.clusterAdmin != nil {
			_ = s.clusterAdmin.Close()
		}
		if s.pgAdmin != nil {
			s.pgAdmin.Close()
		}
		var wg sync.WaitGroup
		if s.pg != nil {
			wg.Go(func() { _ = s.pg.Stop() })
		}
		// The data is thrown away: no need for a graceful shutdown.
		if s.ch != nil {
			wg.Go(func() { _ = s.ch.Kill() })
		}
		if s.cluster != nil {
			wg.Go(func() { _ = s.cluster.Kill() })
		}
		wg.Wait()
		_ = os.RemoveAll(s.dir)
	})
}

// removeStaleDirs removes the directories of test binaries that died
// without cleaning up (killed, or panicked on -timeout).
func removeStaleDirs() {
	dirs, _ := filepath.Glob(filepath.Join(baseDir(), "postage-testenv-*-*"))
	for _, d := range dirs {
		rest := strings.TrimPrefix(filepath.Base(d), "postage-testenv-")
		pidText, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		if processGone(pid) {
			_ = os.RemoveAll(d)
		}
	}
}

// databaseName makes a unique database name that shows which test owns it:
// t<n>_<test name>, lower case, at most 63 bytes (PostgreSQL's limit).
func databaseName(test string, n int64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "t%d_", n)
	for _, r := range strings.ToLower(test) {
		if b.Len() >= 63 {
			break
		}
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}
