package metering

import (
	"context"
	"slices"
	"testing"
	"time"

	"postage"
	"postage/internal/db"
	"postage/internal/localdb"
	"postage/internal/testenv"
)

// TestClickHouseRestart stops and restarts a private ClickHouse server
// between sends: while it is down the ingester answers EUNAVAILABLE and
// stores nothing; when it is back the same ingester and connection pool
// resume by themselves, and what was stored before the restart is found as
// duplicate.
func TestClickHouseRestart(t *testing.T) {
	testenv.SingleServerOnly(t, "stops and restarts a server of its own; on the cluster, a replica killed and restarted under ingest is internal/app TestClusterReplicaKilledDuringIngest")
	if testing.Short() {
		t.Skip("starts its own ClickHouse server")
	}
	ctx := context.Background()
	dir := t.TempDir()
	srv, err := localdb.StartClickHouse(ctx, localdb.ClickHouseOptions{Dir: dir, HTTPPort: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { srv.Stop() }()
	conn, err := db.OpenClickHouse(ctx, db.ClickHouseOptions{Addr: srv.Addr(), Database: "restart"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := db.MigrateClickHouse(ctx, conn, "restart"); err != nil {
		t.Fatal(err)
	}
	in := NewIngester(NewCHStore(conn), IngesterConfig{FlushTimeout: 5 * time.Second})
	defer in.Close()
	t0 := time.Date(2026, 10, 15, 10, 0, 0, 0, time.UTC)
	a, b := ev("c", "a", t0, "DE", "service", 1), ev("c", "b", t0, "DE", "service", 1)
	if got := submit(t, in, a); got[0] != Accepted {
		t.Fatal(got)
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := in.Submit(ctx, []Event{a, b}); postage.ErrorCode(err) != postage.EUNAVAILABLE {
		t.Fatalf("server down: %v, want unavailable", err)
	}
	srv, err = localdb.StartClickHouse(ctx, localdb.ClickHouseOptions{Dir: dir, TCPPort: srv.TCPPort(), HTTPPort: -1})
	if err != nil {
		t.Fatal(err)
	}
	var got []Status
	for i := 0; ; i++ { // the pool may hand out a dead connection once
		got, err = in.Submit(ctx, []Event{a, b})
		if err == nil || i == 5 {
			break
		}
	}
	if err != nil || !slices.Equal(got, []Status{Duplicate, Accepted}) {
		t.Fatalf("after restart: %v %v", got, err)
	}
	s := NewCHStore(conn)
	if q, _ := monthTotal(t, s, "c", t0); q != 2 {
		t.Errorf("usage %d, want 2", q)
	}
}
