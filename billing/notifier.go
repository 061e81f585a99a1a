package billing

import (
	"context"

	"postage/notify"
)

// Notifier writes an event to the outbound webhooks' outbox within the
// transaction of the change that causes it (notify.Outbox implements it),
// so the event exists exactly when the change commits. The ledger emits
// invoice.finalized, invoice.voided, invoice.paid, invoice.overdue and
// credit_note.created with it; a nil Notifier emits nothing.
type Notifier interface {
	Emit(ctx context.Context, q notify.Querier, e notify.Event) error
}

var _ Notifier = (*notify.Outbox)(nil)
