// Package db opens the two databases of postage and migrates their schemas.
//
// PostgreSQL (the ledger) is reached through a pgx pool, ClickHouse (the
// event stream) through the native protocol of clickhouse-go (never
// database/sql, never HTTP: ClickHouse 18.16 supports neither well).
//
// Migrations are SQL files embedded in the binary, named NNNN_name.sql, in
// migrations/postgres and migrations/clickhouse, applied in order of NNNN,
// each once; see MigratePostgres and MigrateClickHouse.
package db

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/jackc/pgx/v5/pgxpool"
)

// OpenPostgres opens a connection pool to the PostgreSQL database at dsn
// (a postgres:// URL or key=value string) and checks that it answers.
func OpenPostgres(ctx context.Context, dsn string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("invalid PostgreSQL dsn: %w (check [postgres] dsn)", err)
	}
	addr := fmt.Sprintf("%s:%d", cfg.ConnConfig.Host, cfg.ConnConfig.Port)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("cannot reach PostgreSQL at %s: %w (is it running? check [postgres] dsn)", addr, err)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("cannot reach PostgreSQL at %s: %w (is it running? check [postgres] dsn)", addr, err)
	}
	return pool, nil
}

// ClickHouseOptions says how to reach ClickHouse.
type ClickHouseOptions struct {
	Addr string // host:port of the native protocol, e.g. 127.0.0.1:9000
	// Addrs are more servers, tried in order when the ones before cannot
	// be reached (failover); on a cluster, any of its servers.
	Addrs    []string
	Database string // the database of postage's tables; "" means default
	// Cluster is the name of the ClickHouse cluster (remote_servers) whose
	// servers hold postage's tables; "" means one server. The database is
	// then created ON CLUSTER (see OpenClickHouseCluster).
	Cluster  string
	Username string // "" means default
	Password string
	// MaxOpenConns bounds the pool; 0 means clickhouse-go's default.
	MaxOpenConns int
	// WriteTimeout bounds a write the driver makes without a deadline of
	// its own; 0 means DefaultClickHouseWriteTimeout.
	WriteTimeout time.Duration
	// Settings are sent with every query of the connection (a query's own
	// settings override them), e.g. a quorum's (Quorum.Settings).
	Settings clickhouse.Settings
}

// OpenClickHouse connects to ClickHouse over the native protocol, without
// compression (loopback and LAN links do not need it), and checks that it
// answers. The database is created if it does not exist yet, so a fresh
// server can be migrated without manual steps.
func OpenClickHouse(ctx context.Context, opts ClickHouseOptions) (driver.Conn, error) {
	conn, err := openClickHouse(opts)
	if err != nil {
		return nil, err
	}
	err = pingClickHouse(ctx, conn)
	if isUnknownDatabase(err) {
		conn.Close()
		if err := createClickHouseDatabase(ctx, opts); err != nil {
			return nil, err
		}
		if conn, err = openClickHouse(opts); err != nil {
			return nil, err
		}
		err = pingClickHouse(ctx, conn)
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("cannot reach ClickHouse at %s: %w (is it running? check [clickhouse] addr)", strings.Join(opts.addrs(), ", "), err)
	}
	return conn, nil
}

// dialTimeout bounds connecting to ClickHouse.
const dialTimeout = 5 * time.Second

// addrs returns Addr and Addrs, without empty ones.
func (opts ClickHouseOptions) addrs() []string {
	var out []string
	for _, a := range append([]string{opts.Addr}, opts.Addrs...) {
		if a != "" {
			out = append(out, a)
		}
	}
	return out
}

func openClickHouse(opts ClickHouseOptions) (driver.Conn, error) {
	if len(opts.addrs()) == 0 {
		return nil, errors.New("no ClickHouse address given (check [clickhouse] addr)")
	}
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr: opts.addrs(),
		// In order: the first address that answers serves, the others
		// are there for when it does not.
		ConnOpenStrategy: clickhouse.ConnOpenInOrder,
		Auth: clickhouse.Auth{
			Database: opts.Database,
			Username: opts.Username,
			Password: opts.Password,
		},
		Compression:  &clickhouse.Compression{Method: clickhouse.CompressionNone},
		MaxOpenConns: opts.MaxOpenConns,
		Settings:     opts.Settings,
		DialTimeout:  dialTimeout,
		DialContext:  dialBoundedWrites(cmp.Or(opts.WriteTimeout, DefaultClickHouseWriteTimeout), dialTimeout),
	})
	if err != nil {
		return nil, fmt.Errorf("invalid ClickHouse options for %s: %w (check [clickhouse] addr)", strings.Join(opts.addrs(), ", "), err)
	}
	return conn, nil
}

func pingClickHouse(ctx context.Context, conn driver.Conn) error {
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return conn.Ping(pctx)
}

// isUnknownDatabase reports whether err is ClickHouse's UNKNOWN_DATABASE.
func isUnknownDatabase(err error) bool {
	var ex *clickhouse.Exception
	return errors.As(err, &ex) && ex.Code == 81
}

func createClickHouseDatabase(ctx context.Context, opts ClickHouseOptions) error {
	boot := opts
	boot.Database = ""
	boot.MaxOpenConns = 1
	conn, err := openClickHouse(boot)
	if err != nil {
		return err
	}
	defer conn.Close()
	q := "CREATE DATABASE IF NOT EXISTS " + quoteCHIdent(opts.Database)
	if opts.Cluster != "" {
		q += " ON CLUSTER " + quoteCHIdent(opts.Cluster)
	}
	if err := conn.Exec(ctx, q); err != nil {
		return fmt.Errorf("cannot create ClickHouse database %s at %s: %w", opts.Database, strings.Join(opts.addrs(), ", "), err)
	}
	return nil
}
