// Package pgstore keeps billing's ledger in PostgreSQL: customers and
// their phone-number ids (CustomerStore), invoices with their frozen
// documents, numbering, invoice runs, billed periods and the
// unbilled-usage report (InvoiceStore), and the lock that serializes
// invoice runs across replicas (Locker). It implements the interfaces of
// package billing; every statement is built by a function of sql.go.
package pgstore

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"postage/billing"
)

// Locker holds the invoice run lock: PostgreSQL session advisory locks on a
// connection of its own, released by PostgreSQL if the process or the
// connection dies.
type Locker struct {
	DB *pgxpool.Pool
}

var _ billing.Locker = Locker{}

// LockRuns takes the run lock ("pstg", 6), waiting or trying once, and then
// the customers lock ("pstg", 7) shared, which keeps customers from being
// deleted or renamed while a run bills them (migration 0032's trigger takes
// it exclusively: a delete waits for runs in progress, and a run for a
// delete in progress).
func (l Locker) LockRuns(ctx context.Context, wait bool) (unlock func(), locked bool, err error) {
	conn, err := l.DB.Acquire(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("invoice run lock: %w", err)
	}
	q, args := lockRunsSQL(wait)
	if err := conn.QueryRow(ctx, q, args...).Scan(&locked); err != nil || !locked {
		conn.Release()
		if err != nil {
			return nil, false, fmt.Errorf("invoice run lock: %w", err)
		}
		return nil, false, nil
	}
	customers := false
	unlock = func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		q, args := unlockRunsSQL(customers)
		if _, err := conn.Exec(uctx, q, args...); err != nil {
			// A broken connection releases the locks with its session.
			conn.Conn().Close(uctx)
		}
		conn.Release()
	}
	q, args = lockCustomersSharedSQL()
	if _, err := conn.Exec(ctx, q, args...); err != nil {
		unlock()
		return nil, false, fmt.Errorf("invoice run lock: %w", err)
	}
	customers = true
	return unlock, true, nil
}

// utcNow is now's time in UTC, the wall clock's when now is nil: every
// store's injected clock.
func utcNow(now func() time.Time) time.Time {
	if now == nil {
		return time.Now().UTC()
	}
	return now().UTC()
}
