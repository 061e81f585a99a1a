package metering

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// newCH returns a connection to a fresh ClickHouse database with the
// metering schema. TEMPORARY until internal/testenv lands.
func newCH(t testing.TB) driver.Conn {
	t.Helper()
	addr := os.Getenv("METERING_TEST_CH")
	if addr == "" {
		t.Skip("no METERING_TEST_CH")
	}
	ctx := context.Background()
	admin, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}})
	if err != nil {
		t.Fatal(err)
	}
	db := fmt.Sprintf("mt_%d", time.Now().UnixNano())
	if err := admin.Exec(ctx, "CREATE DATABASE "+db); err != nil {
		t.Fatal(err)
	}
	admin.Close()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}, Auth: clickhouse.Auth{Database: db}})
	if err != nil {
		t.Fatal(err)
	}
	sql, err := os.ReadFile("../internal/db/migrations/clickhouse/0020_events.sql")
	if err != nil {
		t.Fatal(err)
	}
	var stmt []string
	for _, l := range strings.Split(string(sql), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "--") {
			stmt = append(stmt, l)
		}
	}
	if err := conn.Exec(ctx, strings.TrimSuffix(strings.TrimSpace(strings.Join(stmt, "\n")), ";")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Exec(ctx, "DROP DATABASE "+db); conn.Close() })
	return conn
}
