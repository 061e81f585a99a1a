package notify_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"postage/notify"
)

// BenchmarkEmit measures writing one event (a 4 KiB object, two
// subscribed endpoints: the event and two deliveries) in a transaction of
// its own, against its baseline: the same transaction inserting the same
// bytes into a bare table with only a primary key. "history" is the same
// with 100,000 events and 200,000 deliveries already in the outbox: the
// cost of an event must not grow with them.
//
//	go test ./notify -run '^$' -bench BenchmarkEmit -count 5
func BenchmarkEmit(b *testing.B) {
	f := newFixture(b)
	ctx := context.Background()
	f.endpoint("acme", "http://127.0.0.1:9/a", notify.AllEvents)
	f.endpoint("", "http://127.0.0.1:9/all", notify.InvoiceFinalized)
	if _, err := f.env.PG.Exec(ctx, `CREATE TABLE bench_baseline (id text PRIMARY KEY, type text, customer_id text, payload text, created_at timestamptz)`); err != nil {
		b.Fatal(err)
	}
	obj := map[string]string{"id": "in_1", "text": strings.Repeat("x", 4096)}
	payload := strings.Repeat("x", 4200)
	n := 0
	baseline := func(b *testing.B) {
		for b.Loop() {
			n++
			err := pgx.BeginFunc(ctx, f.env.PG, func(tx pgx.Tx) error {
				_, err := tx.Exec(ctx, `INSERT INTO bench_baseline (id, type, customer_id, payload, created_at) VALUES ($1, $2, $3, $4, $5)`,
					fmt.Sprint("b", n), "invoice.finalized", "acme", payload, f.clock.Now())
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	emit := func(b *testing.B) {
		for b.Loop() {
			err := pgx.BeginFunc(ctx, f.env.PG, func(tx pgx.Tx) error {
				return f.outbox.Emit(ctx, tx, notify.Event{Type: notify.InvoiceFinalized, CustomerID: "acme", Object: obj})
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("baseline=insert", baseline)
	b.Run("emit", emit)
	// History: 100,000 events with their deliveries.
	if _, err := f.env.PG.Exec(ctx, `INSERT INTO webhook_events (id, type, customer_id, payload, created_at)
SELECT 'evt_hist' || i, 'invoice.finalized', 'acme', repeat('x', 4200), now() FROM generate_series(1, 100000) i`); err != nil {
		b.Fatal(err)
	}
	if _, err := f.env.PG.Exec(ctx, `INSERT INTO webhook_deliveries (event_id, endpoint_id, status, next_attempt_at, retry_from, created_at, updated_at)
SELECT v.id, e.id, 'succeeded', now(), now(), now(), now() FROM webhook_events v CROSS JOIN webhook_endpoints e WHERE v.id LIKE 'evt_hist%'`); err != nil {
		b.Fatal(err)
	}
	if _, err := f.env.PG.Exec(ctx, `ANALYZE`); err != nil {
		b.Fatal(err)
	}
	b.Run("emit-history", emit)
	b.Run("baseline-history=insert", baseline)
}
