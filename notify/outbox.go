package notify

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"postage"
)

// Querier runs a statement: a pgx.Tx (the usual case: the transaction of
// the change that causes the event), a *pgxpool.Pool or a *pgx.Conn.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// Outbox writes events to the outbox tables (migration 0050) in the
// caller's transaction. It implements billing.Notifier.
type Outbox struct {
	// Now is the clock for events without a Created time (time.Now when
	// nil).
	Now func() time.Time
}

// Emit writes the event and one pending delivery per enabled endpoint
// subscribed to it (the event's customer's and every-customer endpoints
// whose types include it), in one statement run by q. Run in the
// transaction of the change that causes it, the event exists exactly when
// the change commits. An event no endpoint subscribes to is not stored at
// all; one whose Key was emitted before is not stored again. The
// delivery is left to the Dispatchers.
func (o *Outbox) Emit(ctx context.Context, q Querier, e Event) error {
	if err := e.Validate(); err != nil {
		return postage.Errorf(postage.EINTERNAL, "emit: %v", err)
	}
	if e.ID == "" {
		e.ID = NewID("evt_")
	}
	if e.Created.IsZero() {
		if o != nil && o.Now != nil {
			e.Created = o.Now()
		} else {
			e.Created = time.Now()
		}
	}
	e.Created = e.Created.UTC().Truncate(time.Microsecond) // as PostgreSQL keeps it
	body, err := json.Marshal(Payload{ID: e.ID, Type: e.Type, Created: e.Created, CustomerID: e.CustomerID, Data: PayloadData{Object: e.Object}})
	if err != nil {
		return fmt.Errorf("emit %s: encode: %w", e.Type, err)
	}
	sql, args := emitSQL(e, body)
	if _, err := q.Exec(ctx, sql, args...); err != nil {
		return fmt.Errorf("emit %s: %w", e.Type, err)
	}
	return nil
}

// Emit is (&Outbox{}).Emit: it writes e with the wall clock.
func Emit(ctx context.Context, q Querier, e Event) error { return (&Outbox{}).Emit(ctx, q, e) }

// idAlphabet is Crockford's base32 in lower case: ids compare as their
// bytes do.
var idEncoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

// NewID returns prefix and 26 characters: 48 bits of the wall clock in
// milliseconds then 80 random bits, so ids of one prefix sort by creation
// (to the millisecond) and never collide in practice.
func NewID(prefix string) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(time.Now().UnixMilli())<<16)
	_, _ = rand.Read(b[6:])
	return prefix + idEncoding.EncodeToString(b[:])
}
