package db_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"postage"
	"postage/internal/db"
	"postage/internal/testenv"
)

func TestIsOutageFromTheCause(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("list customers: %w", err) }
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"a bug", errors.New("scan: wrong number of columns"), false},
		{"refused", wrap(&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}), true},
		{"reset", wrap(syscall.ECONNRESET), true},
		{"broken pipe", wrap(syscall.EPIPE), true},
		{"closed mid-answer", wrap(io.ErrUnexpectedEOF), true},
		{"deadline", wrap(context.DeadlineExceeded), true},
		{"caller left", wrap(context.Canceled), true},
		{"pg connection exception", wrap(&pgconn.PgError{Code: "08006"}), true},
		{"pg too many connections", wrap(&pgconn.PgError{Code: "53300"}), true},
		{"pg admin shutdown", wrap(&pgconn.PgError{Code: "57P01"}), true},
		{"pg crash shutdown", wrap(&pgconn.PgError{Code: "57P02"}), true},
		{"pg starting up", wrap(&pgconn.PgError{Code: "57P03"}), true},
		{"pg statement timeout", wrap(&pgconn.PgError{Code: "57014"}), true},
		{"pg read-only standby", wrap(&pgconn.PgError{Code: "25006"}), true},
		{"pg syntax error", wrap(&pgconn.PgError{Code: "42601"}), false},
		{"pg bad UTF-8", wrap(&pgconn.PgError{Code: "22021"}), false},
		{"pg unique violation", wrap(&pgconn.PgError{Code: "23505"}), false},
		{"pg no rows", wrap(pgx.ErrNoRows), false},
		{"ch timeout", wrap(&clickhouse.Exception{Code: 159}), true},
		{"ch too many queries", wrap(&clickhouse.Exception{Code: 202}), true},
		{"ch network", wrap(&clickhouse.Exception{Code: 210}), true},
		{"ch too many parts", wrap(&clickhouse.Exception{Code: 252}), true},
		{"ch keeper", wrap(&clickhouse.Exception{Code: 999}), true},
		{"ch syntax error", wrap(&clickhouse.Exception{Code: 62}), false},
		{"ch unknown table", wrap(&clickhouse.Exception{Code: 60}), false},
		{"ch acquire timeout", wrap(clickhouse.ErrAcquireConnTimeout), true},
		{"ch closed connection", wrap(errors.New("attempted reading on closed connection")), true},
	}
	for _, tt := range tests {
		if got := db.IsOutage(tt.err); got != tt.want {
			t.Errorf("%s: IsOutage(%v) = %v, want %v", tt.name, tt.err, got, tt.want)
		}
	}
}

func TestMarkOutage(t *testing.T) {
	cause := &pgconn.PgError{Code: "57P01", Message: "terminating connection due to administrator command"}
	err := db.MarkOutage(fmt.Errorf("get customer: %w", cause), "get customer")
	if got := postage.ErrorCode(err); got != postage.EUNAVAILABLE {
		t.Errorf("outage: code %s, want unavailable", got)
	}
	if got, want := postage.ErrorMessage(err), "get customer: a database is unavailable, retry later"; got != want {
		t.Errorf("message %q, want %q", got, want)
	}
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		t.Error("the cause left the chain")
	}
	bug := errors.New("scan: wrong number of columns")
	if got := db.MarkOutage(bug, ""); got != bug {
		t.Errorf("a bug changed: %v", got)
	}
	coded := postage.Errorf(postage.ENOTFOUND, "customer %q not found", "x")
	if got := db.MarkOutage(coded, ""); got != coded {
		t.Errorf("a coded error changed: %v", got)
	}
}

// The errors real drivers return: unreachable servers are outages, a bad
// query or a constraint is not.
func TestIsOutageRealErrors(t *testing.T) {
	ctx := context.Background()
	env := testenv.New(t)
	port := closedPort(t)

	pool, err := pgxpool.New(ctx, "postgres://postgres@127.0.0.1:"+port+"/x?sslmode=disable&connect_timeout=2")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	_, err = pool.Exec(ctx, "SELECT 1")
	if !db.IsOutage(err) {
		t.Errorf("PostgreSQL unreachable: %v is not an outage", err)
	}
	ch, err := clickhouse.Open(&clickhouse.Options{Addr: []string{"127.0.0.1:" + port}, DialTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	if err := ch.Exec(ctx, "SELECT 1"); !db.IsOutage(err) {
		t.Errorf("ClickHouse unreachable: %v is not an outage", err)
	}
	closed, err := pgxpool.New(ctx, env.PGDSN)
	if err != nil {
		t.Fatal(err)
	}
	closed.Close()
	if _, err := closed.Exec(ctx, "SELECT 1"); !db.IsOutage(err) {
		t.Errorf("closed pool: %v is not an outage", err)
	}

	for _, q := range []string{"SELEC 1", "SELECT * FROM no_such_table", "SELECT 1/0", "INSERT INTO customers (id) VALUES (NULL)"} {
		if _, err := env.PG.Exec(ctx, q); err == nil || db.IsOutage(err) {
			t.Errorf("PostgreSQL %q: %v, want an error that is not an outage", q, err)
		}
	}
	if _, err := env.PG.Exec(ctx, "SELECT $1::text", "a\x00b"); err == nil || db.IsOutage(err) {
		t.Errorf("PostgreSQL NUL: %v, want an error that is not an outage", err)
	}
	for _, q := range []string{"SELEC 1", "SELECT * FROM no_such_table", "SELECT throwIf(1)"} {
		if err := env.CH.Exec(ctx, q); err == nil || db.IsOutage(err) {
			t.Errorf("ClickHouse %q: %v, want an error that is not an outage", q, err)
		}
	}
}
