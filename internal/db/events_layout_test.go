package db_test

import (
	"context"
	"os"
	"testing"
	"time"

	"postage/internal/db"
	"postage/internal/testenv"
)

// TestEventsLayoutMigration upgrades an events table of the old layout
// (migrations 0020 and 0021: a ReplacingMergeTree by (customer_id, id),
// monthly partitions) holding duplicate rows in several parts and months,
// and checks that every event is in the new table exactly once with its
// fields, that a half-done copy left by an interrupted run is redone, and
// that running it again changes nothing.
func TestEventsLayoutMigration(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	exec := func(q string, args ...any) {
		t.Helper()
		if err := env.CH.Exec(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec("DROP TABLE events")
	b, err := os.ReadFile("migrations/clickhouse/0020_events.sql")
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range db.SplitStatements(string(b)) {
		exec(stmt)
	}
	// What 0021 once added: a table of that time also has key_hash.
	exec("ALTER TABLE events ADD COLUMN key_hash UInt64 DEFAULT cityHash64(customer_id, id)")
	type row struct {
		customer, id, tm, country, category string
		qty, hash                           uint64
	}
	insert := func(rows ...row) { // one part per call
		t.Helper()
		b, err := env.CH.PrepareBatch(ctx, "INSERT INTO events (customer_id, id, time, country, category, quantity, payload_hash, ingested_at)")
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			tm, err := time.Parse(time.DateTime, r.tm)
			if err != nil {
				t.Fatal(err)
			}
			if err := b.Append(r.customer, r.id, tm, r.country, r.category, r.qty, r.hash, tm.Add(time.Second)); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.Send(); err != nil {
			t.Fatal(err)
		}
	}
	insert(row{"a", "e1", "2026-09-30 23:59:59", "DE", "marketing", 2, 10}, row{"a", "e2", "2026-10-01 00:00:00", "FR", "utility", 1, 11})
	// A copy of e2 in another part (the old race), another of e3 with a
	// greater payload hash: FINAL keeps one row of each, e3's of hash 30.
	insert(row{"a", "e2", "2026-10-01 00:00:00", "FR", "utility", 1, 11}, row{"b", "e3", "2026-10-15 12:00:00", "IN", "service", 5, 20})
	insert(row{"b", "e3", "2026-10-15 12:00:00", "IN", "marketing", 7, 30}, row{"unknown:42", "wamid.1", "2026-11-02 08:00:00", "BR", "marketing", 1, 40})

	// An interrupted earlier run left a half-filled copy behind.
	exec(db.EventsTableSQL("events_next"))
	exec("INSERT INTO events_next (customer_id, id, time, country, category, pricing_type, pricing_model, source, status, quantity, payload_hash, ingested_at) SELECT customer_id, id, time, country, category, '', '', '', '', quantity, payload_hash, ingested_at FROM events")

	for run := 1; run <= 2; run++ {
		if err := db.MigrateEventsByIngestTime(ctx, env.CH); err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		rows, err := env.CH.Query(ctx, "SELECT customer_id, id, toString(time), country, category, quantity, payload_hash, pricing_type, source FROM events ORDER BY customer_id, id")
		if err != nil {
			t.Fatal(err)
		}
		var got []row
		for rows.Next() {
			var r row
			var ptype, source string
			if err := rows.Scan(&r.customer, &r.id, &r.tm, &r.country, &r.category, &r.qty, &r.hash, &ptype, &source); err != nil {
				t.Fatal(err)
			}
			if ptype != "" || source != "" {
				t.Errorf("%s/%s: pricing type %q, source %q; want both empty for an old event", r.customer, r.id, ptype, source)
			}
			got = append(got, r)
		}
		rows.Close()
		want := []row{
			{"a", "e1", "2026-09-30 23:59:59", "DE", "marketing", 2, 10},
			{"a", "e2", "2026-10-01 00:00:00", "FR", "utility", 1, 11},
			{"b", "e3", "2026-10-15 12:00:00", "IN", "marketing", 7, 30},
			{"unknown:42", "wamid.1", "2026-11-02 08:00:00", "BR", "marketing", 1, 40},
		}
		if len(got) != len(want) {
			t.Fatalf("run %d: got %+v, want %+v", run, got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("run %d: row %d got %+v, want %+v", run, i, got[i], want[i])
			}
		}
		var leftovers uint64
		if err := env.CH.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = currentDatabase() AND name IN ('events_next', 'events_before_0022')").Scan(&leftovers); err != nil {
			t.Fatal(err)
		}
		if leftovers != 0 {
			t.Errorf("run %d: %d working tables left behind", run, leftovers)
		}
	}
}
