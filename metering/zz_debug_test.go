package metering

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"postage/internal/db"
)

func TestZZDebugPlan(t *testing.T) {
	addr := os.Getenv("DEBUG_CH")
	if addr == "" {
		t.Skip()
	}
	ctx := context.Background()
	conn, err := db.OpenClickHouse(ctx, db.ClickHouseOptions{Addr: addr, Database: "bench"})
	if err != nil {
		t.Fatal(err)
	}
	s := NewCHStore(conn)
	c, err := s.catalog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	from := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	spec, _ := usageSpec(UsageQuery{CustomerID: os.Getenv("DEBUG_CUST"), From: from, To: from.AddDate(0, 1, 0), Window: Day, GroupBy: []Dimension{ByCountry, ByCategory}})
	if os.Getenv("DEBUG_MTD") != "" {
		spec = monthlySpec(time.Now(), time.Now().Add(-time.Minute), []string{os.Getenv("DEBUG_CUST")})
	}
	parts := planRead(spec, c)
	for _, p := range fmtPlan(parts) {
		fmt.Fprintln(os.Stderr, p)
	}
	q, args := readSQL(spec, parts)
	for _, a := range args {
		v := fmt.Sprint(a)
		if s, ok := a.(string); ok {
			v = "'" + s + "'"
		}
		i := 0
		for i < len(q) && q[i] != '?' {
			i++
		}
		q = q[:i] + v + q[i+1:]
	}
	fmt.Println(q)
	for i := 0; i < 5; i++ {
		t0 := time.Now()
		rows, err := s.Usage(ctx, UsageQuery{CustomerID: os.Getenv("DEBUG_CUST"), From: from, To: from.AddDate(0, 1, 0), Window: Day, GroupBy: []Dimension{ByCountry, ByCategory}})
		fmt.Fprintln(os.Stderr, "store", time.Since(t0), len(rows), err)
	}
}

func TestZZDebugScan(t *testing.T) {
	addr := os.Getenv("DEBUG_CH")
	if addr == "" {
		t.Skip()
	}
	ctx := context.Background()
	conn, err := db.OpenClickHouse(ctx, db.ClickHouseOptions{Addr: addr, Database: "bench"})
	if err != nil {
		t.Fatal(err)
	}
	q := os.Getenv("DEBUG_Q")
	for i := 0; i < 5; i++ {
		t0 := time.Now()
		rows, err := conn.Query(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		t1 := time.Since(t0)
		n := 0
		var b uint32
		var c, k string
		var x, y uint64
		for rows.Next() {
			if err := rows.Scan(&b, &c, &k, &x, &y); err != nil {
				t.Fatal(err)
			}
			n++
		}
		rows.Close()
		fmt.Fprintln(os.Stderr, "query", t1, "total", time.Since(t0), n)
	}
}
