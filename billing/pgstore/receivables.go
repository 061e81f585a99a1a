package pgstore

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"

	"postage"
	"postage/billing"
	"postage/notify"
	"postage/pricing"
)

// emit writes e to the webhooks' outbox in tx (nothing without a
// Notifier). Every finance event the ledger announces (invoice.finalized,
// invoice.voided, invoice.paid, invoice.overdue, credit_note.created)
// goes through here, in the transaction of the change that makes it true:
// the event exists exactly when the change commits. e.Key is the object's
// id, so an event of one type is recorded once per object.
func emit(ctx context.Context, n billing.Notifier, tx pgx.Tx, e notify.Event) error {
	if n == nil {
		return nil
	}
	if err := n.Emit(ctx, tx, e); err != nil {
		return fmt.Errorf("%s event: %w", e.Type, err)
	}
	return nil
}

// ReceivableStore is accounts receivable in PostgreSQL (migrations 0037
// and 0038): receivables, payments, credit notes with their numbering and
// documents. Every write locks the invoice's receivable row first.
type ReceivableStore struct {
	DB  *pgxpool.Pool
	Now func() time.Time
	// CreditNumbers formats credit note numbers.
	CreditNumbers billing.NumberFormat
	// OverdueBatch bounds the invoices one transaction of the overdue
	// pass takes (DefaultOverdueBatch when 0).
	OverdueBatch int
	// Notify, when set, writes invoice.paid, invoice.overdue and
	// credit_note.created to the webhooks' outbox in the transaction of
	// the payment, credit note or overdue pass.
	Notify billing.Notifier
}

var _ billing.Receivables = (*ReceivableStore)(nil)

// NewReceivableStore returns a store on db with the wall clock and the
// given credit note number format (billing.DefaultCreditNoteNumberFormat
// when empty).
func NewReceivableStore(db *pgxpool.Pool, creditNumberFormat string) (*ReceivableStore, error) {
	if creditNumberFormat == "" {
		creditNumberFormat = billing.DefaultCreditNoteNumberFormat
	}
	nf, err := billing.ParseNumberFormat(creditNumberFormat)
	if err != nil {
		return nil, err
	}
	return &ReceivableStore{DB: db, Now: time.Now, CreditNumbers: nf}, nil
}

func (s *ReceivableStore) now() time.Time { return utcNow(s.Now) }

// keyCursor is the position after the last row of a page: its time or
// date, and its id.
type keyCursor struct {
	At string `json:"t"`
	ID string `json:"i"`
}

func (c keyCursor) encode() string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeKeyCursor(s string) (*keyCursor, error) {
	if s == "" {
		return nil, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	var c keyCursor
	if err == nil {
		err = json.Unmarshal(b, &c)
	}
	if err == nil {
		_, err = time.Parse(time.RFC3339Nano, c.At)
		if err != nil {
			_, err = time.Parse(billing.DateLayout, c.At)
		}
	}
	if err != nil || c.ID == "" {
		return nil, postage.Errorf(postage.EINVALID, "cursor: not a next_cursor from this list")
	}
	return &c, nil
}

func scanReceivable(r pgx.Row) (billing.Receivable, error) {
	var x billing.Receivable
	var period, total, paid, credited, refunded, balance string
	var issue, due time.Time
	var settled *time.Time
	err := r.Scan(&x.InvoiceID, &x.CustomerID, &x.CustomerName, &x.Number, &period, &x.Currency, &total, &paid, &credited, &refunded, &balance,
		&issue, &due, &settled, &x.UncollectibleAt, &x.UncollectibleReason)
	if err != nil {
		return x, err
	}
	if x.Period, err = pricing.ParseMonth(period); err != nil {
		return x, err
	}
	places := billing.MinorUnitsOf(x.Currency)
	for _, p := range []struct {
		s string
		m *billing.Money
	}{{total, &x.Total}, {paid, &x.Paid}, {credited, &x.Credited}, {refunded, &x.Refunded}, {balance, &x.Balance}} {
		d, err := decimal.NewFromString(p.s)
		if err != nil {
			return x, fmt.Errorf("receivable %s: %w", x.InvoiceID, err)
		}
		*p.m = billing.NewMoney(d, places)
	}
	x.IssueDate, x.DueDate = billing.DateOf(issue), billing.DateOf(due)
	if settled != nil {
		d := billing.DateOf(*settled)
		x.SettledOn = &d
	}
	if x.UncollectibleAt != nil {
		t := x.UncollectibleAt.UTC()
		x.UncollectibleAt = &t
	}
	return x, nil
}

// receivable reads (and with forUpdate locks) an invoice's receivable; an
// invoice without one is ENOTFOUND, or ENOTFINALIZED when it is a draft
// or void.
func receivable(ctx context.Context, q queryer, invoiceID string, forUpdate bool) (billing.Receivable, error) {
	sql, args := getReceivableSQL(invoiceID, forUpdate)
	r, err := scanReceivable(q.QueryRow(ctx, sql, args...))
	if err == nil {
		return r, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return r, fmt.Errorf("read receivable: %w", err)
	}
	var status string
	sql, args = invoiceStatusSQL(invoiceID)
	switch err := q.QueryRow(ctx, sql, args...).Scan(&status); {
	case errors.Is(err, pgx.ErrNoRows):
		return r, postage.Errorf(postage.ENOTFOUND, "invoice %q not found", invoiceID)
	case err != nil:
		return r, fmt.Errorf("read invoice: %w", err)
	}
	return r, postage.Errorf(postage.ENOTFINALIZED, "invoice %s is %s: only a finalized invoice is owed, paid or credited", invoiceID, status)
}

// Receivable returns an invoice's receivable.
func (s *ReceivableStore) Receivable(ctx context.Context, invoiceID string) (billing.Receivable, error) {
	return receivable(ctx, s.DB, invoiceID, false)
}

// ListReceivables lists receivables matching f as of today, newest issue first.
func (s *ReceivableStore) ListReceivables(ctx context.Context, f billing.ReceivableFilter, today billing.Date, p billing.Page) ([]billing.Receivable, string, error) {
	p = p.Norm()
	cur, err := decodeKeyCursor(p.Cursor)
	if err != nil {
		return nil, "", err
	}
	q, args := listReceivablesSQL(f, today, cur, p.Limit+1)
	rows, err := s.DB.Query(ctx, q, args...)
	if err != nil {
		return nil, "", fmt.Errorf("list receivables: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (billing.Receivable, error) { return scanReceivable(r) })
	if err != nil {
		return nil, "", fmt.Errorf("list receivables: %w", err)
	}
	next := ""
	if len(list) > p.Limit {
		list = list[:p.Limit]
		last := list[len(list)-1]
		next = keyCursor{At: last.IssueDate.String(), ID: last.InvoiceID}.encode()
	}
	if list == nil {
		list = []billing.Receivable{}
	}
	return list, next, nil
}

// scanMoney reads a row of t (moneyTable.columns).
func scanMoney(t moneyTable, r pgx.Row) (billing.Payment, error) {
	var p billing.Payment
	var amount, method string
	var day time.Time
	if err := r.Scan(&p.ID, &p.InvoiceID, &p.InvoiceNumber, &p.CustomerID, &amount, &p.Currency, &day, &method, &p.Reference, &p.IdempotencyKey, &p.CreatedAt); err != nil {
		return p, err
	}
	d, err := decimal.NewFromString(amount)
	if err != nil {
		return p, fmt.Errorf("%s %s: %w", t.noun, p.ID, err)
	}
	p.Amount = billing.NewMoney(d, billing.MinorUnitsOf(p.Currency))
	p.Date, p.Method, p.CreatedAt = billing.DateOf(day), billing.PaymentMethod(method), p.CreatedAt.UTC()
	return p, nil
}

// recordMoney locks the invoice's receivable, checks p against it, and
// records it in t and applies it to the receivable (apply), in one
// transaction: two at once are checked one after the other. The same
// idempotency key again returns the first record (existing) if it is the
// same money, and is a conflict if not.
func (s *ReceivableStore) recordMoney(ctx context.Context, t moneyTable, invoiceID string, p billing.Payment,
	check func(billing.Receivable, billing.Payment) (billing.Payment, error),
	apply func(tx pgx.Tx, before billing.Receivable, p billing.Payment, now time.Time) (billing.Receivable, error),
) (out billing.Payment, rec billing.Receivable, existing bool, err error) {
	err = pgx.BeginFunc(ctx, s.DB, func(tx pgx.Tx) error {
		r, err := receivable(ctx, tx, invoiceID, true)
		if err != nil {
			return err
		}
		if p.IdempotencyKey != "" {
			q, args := t.byKeySQL(p.IdempotencyKey)
			prev, err := scanMoney(t, tx.QueryRow(ctx, q, args...))
			switch {
			case err == nil:
				p.InvoiceID = invoiceID
				if !sameMoney(prev, p) {
					return postage.Errorf(postage.ECONFLICT, "idempotency key %q recorded another %s (%s)", p.IdempotencyKey, t.noun, prev.ID)
				}
				out, rec, existing = prev, r, true
				return nil
			case !errors.Is(err, pgx.ErrNoRows):
				return fmt.Errorf("read %s: %w", t.noun, err)
			}
		}
		checked, err := check(r, p)
		if err != nil {
			return err
		}
		now := s.now()
		checked.ID, checked.CreatedAt = billing.NewID(t.idPrefix), now
		q, args := t.insertSQL(checked)
		if out, err = scanMoney(t, tx.QueryRow(ctx, q, args...)); err != nil {
			if pgCode(err) == uniqueViolation {
				return postage.Errorf(postage.ECONFLICT, "idempotency key %q recorded another %s", p.IdempotencyKey, t.noun)
			}
			return fmt.Errorf("record %s: %w", t.noun, err)
		}
		if rec, err = apply(tx, r, checked, now); err != nil {
			return fmt.Errorf("record %s: %w", t.noun, err)
		}
		return nil
	})
	if err != nil {
		return billing.Payment{}, billing.Receivable{}, false, err
	}
	return out, rec, existing, nil
}

// sameMoney reports whether a recorded payment or refund is the one asked
// for again.
func sameMoney(prev, p billing.Payment) bool {
	return prev.InvoiceID == p.InvoiceID && prev.Amount.Equal(p.Amount.Decimal) && prev.Currency == p.Currency &&
		prev.Date == p.Date && prev.Method == p.Method && prev.Reference == p.Reference
}

// listMoney lists t's rows matching f, newest first.
func (s *ReceivableStore) listMoney(ctx context.Context, t moneyTable, f billing.PaymentFilter, p billing.Page) ([]billing.Payment, string, error) {
	p = p.Norm()
	cur, err := decodeKeyCursor(p.Cursor)
	if err != nil {
		return nil, "", err
	}
	q, args := t.listSQL(f, cur, p.Limit+1)
	rows, err := s.DB.Query(ctx, q, args...)
	if err != nil {
		return nil, "", fmt.Errorf("list %ss: %w", t.noun, err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (billing.Payment, error) { return scanMoney(t, r) })
	if err != nil {
		return nil, "", fmt.Errorf("list %ss: %w", t.noun, err)
	}
	next := ""
	if len(list) > p.Limit {
		list = list[:p.Limit]
		last := list[len(list)-1]
		next = keyCursor{At: last.CreatedAt.Format(time.RFC3339Nano), ID: last.ID}.encode()
	}
	if list == nil {
		list = []billing.Payment{}
	}
	return list, next, nil
}

// RecordPayment locks the receivable, checks the payment against it and
// records it, in one transaction; invoice.paid is emitted when it settles
// the invoice.
func (s *ReceivableStore) RecordPayment(ctx context.Context, invoiceID string, p billing.Payment, check func(billing.Receivable, billing.Payment) (billing.Payment, error)) (billing.Payment, billing.Receivable, bool, error) {
	return s.recordMoney(ctx, paymentsTable, invoiceID, p, check, func(tx pgx.Tx, before billing.Receivable, p billing.Payment, now time.Time) (billing.Receivable, error) {
		q, args := addPaidSQL(invoiceID, p.Amount.String(), billing.DateOf(now))
		after, err := scanReceivable(tx.QueryRow(ctx, q, args...))
		if err != nil {
			return after, err
		}
		return after, s.emitIfPaid(ctx, tx, before, after, now)
	})
}

// emitIfPaid emits invoice.paid when before had a balance and after has none.
func (s *ReceivableStore) emitIfPaid(ctx context.Context, tx pgx.Tx, before, after billing.Receivable, now time.Time) error {
	if !before.Balance.IsPositive() || after.Balance.IsPositive() {
		return nil
	}
	after.Derive(billing.DateOf(now))
	return emit(ctx, s.Notify, tx, notify.Event{Type: notify.InvoicePaid, CustomerID: after.CustomerID, Object: after, Key: after.InvoiceID, Created: now})
}

// Payments lists payments matching f, newest first.
func (s *ReceivableStore) Payments(ctx context.Context, f billing.PaymentFilter, p billing.Page) ([]billing.Payment, string, error) {
	return s.listMoney(ctx, paymentsTable, f, p)
}

// RecordRefund locks the receivable, checks the refund against it and
// records it, in one transaction: two refunds at once are checked one
// after the other, so together they never refund more than is owed (and
// the receivable's CHECK stands behind the lock).
func (s *ReceivableStore) RecordRefund(ctx context.Context, invoiceID string, f billing.Refund, check func(billing.Receivable, billing.Refund) (billing.Refund, error)) (billing.Refund, billing.Receivable, bool, error) {
	out, rec, existing, err := s.recordMoney(ctx, refundsTable, invoiceID, billing.Payment(f),
		func(r billing.Receivable, p billing.Payment) (billing.Payment, error) {
			checked, err := check(r, billing.Refund(p))
			return billing.Payment(checked), err
		},
		func(tx pgx.Tx, _ billing.Receivable, p billing.Payment, _ time.Time) (billing.Receivable, error) {
			q, args := addRefundedSQL(invoiceID, p.Amount.String())
			return scanReceivable(tx.QueryRow(ctx, q, args...))
		})
	return billing.Refund(out), rec, existing, err
}

// Refunds lists refunds matching f, newest first.
func (s *ReceivableStore) Refunds(ctx context.Context, f billing.RefundFilter, p billing.Page) ([]billing.Refund, string, error) {
	list, next, err := s.listMoney(ctx, refundsTable, billing.PaymentFilter(f), p)
	refunds := make([]billing.Refund, len(list))
	for i, p := range list {
		refunds[i] = billing.Refund(p)
	}
	return refunds, next, err
}

// MarkUncollectible writes an invoice's balance off.
func (s *ReceivableStore) MarkUncollectible(ctx context.Context, invoiceID, reason string, today billing.Date) (billing.Receivable, error) {
	var out billing.Receivable
	err := pgx.BeginFunc(ctx, s.DB, func(tx pgx.Tx) error {
		r, err := receivable(ctx, tx, invoiceID, true)
		if err != nil {
			return err
		}
		switch {
		case !r.Balance.IsPositive():
			return postage.Errorf(postage.ECONFLICT, "invoice %s is paid: nothing is left to write off", r.Number)
		case r.UncollectibleAt != nil:
			return postage.Errorf(postage.ECONFLICT, "invoice %s was written off as uncollectible on %s", r.Number, r.UncollectibleAt.Format(billing.DateLayout))
		}
		q, args := markUncollectibleSQL(invoiceID, reason, s.now())
		out, err = scanReceivable(tx.QueryRow(ctx, q, args...))
		return err
	})
	return out, err
}

// DefaultOverdueBatch is how many invoices one transaction of the overdue
// pass marks and reports.
const DefaultOverdueBatch = 500

// MarkOverdue marks and reports (invoice.overdue) the invoices overdue by
// today that were not reported yet, in transactions of at most
// OverdueBatch invoices (each batch's marks and events commit together),
// until none is left.
func (s *ReceivableStore) MarkOverdue(ctx context.Context, today billing.Date) (int, error) {
	batch := s.OverdueBatch
	if batch <= 0 {
		batch = DefaultOverdueBatch
	}
	total := 0
	for {
		n, err := s.markOverdueBatch(ctx, today, batch)
		total += n
		if err != nil {
			return total, fmt.Errorf("report overdue invoices: %w", err)
		}
		if n < batch {
			return total, nil
		}
	}
}

// markOverdueBatch marks and reports at most limit overdue invoices in one
// transaction.
func (s *ReceivableStore) markOverdueBatch(ctx context.Context, today billing.Date, limit int) (int, error) {
	n := 0
	err := pgx.BeginFunc(ctx, s.DB, func(tx pgx.Tx) error {
		now := s.now()
		q, args := markOverdueSQL(today, now, limit)
		rows, err := tx.Query(ctx, q, args...)
		if err != nil {
			return err
		}
		list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (billing.Receivable, error) { return scanReceivable(r) })
		if err != nil {
			return err
		}
		for _, r := range list {
			r.Derive(today)
			if err := emit(ctx, s.Notify, tx, notify.Event{Type: notify.InvoiceOverdue, CustomerID: r.CustomerID, Object: r, Key: r.InvoiceID, Created: now}); err != nil {
				return err
			}
		}
		n = len(list)
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// SendReminders emits the payment reminders due by today, in
// transactions of at most OverdueBatch invoices (each batch's marks and
// events commit together), until none is left.
func (s *ReceivableStore) SendReminders(ctx context.Context, today billing.Date, offsets []int) (int, error) {
	if len(offsets) == 0 {
		return 0, nil
	}
	batch := s.OverdueBatch
	if batch <= 0 {
		batch = DefaultOverdueBatch
	}
	total := 0
	for {
		n, err := s.sendRemindersBatch(ctx, today, offsets, batch)
		total += n
		if err != nil {
			return total, fmt.Errorf("send payment reminders: %w", err)
		}
		if n < batch {
			return total, nil
		}
	}
}

// sendRemindersBatch marks and emits at most limit reminders in one
// transaction.
func (s *ReceivableStore) sendRemindersBatch(ctx context.Context, today billing.Date, offsets []int, limit int) (int, error) {
	n := 0
	err := pgx.BeginFunc(ctx, s.DB, func(tx pgx.Tx) error {
		now := s.now()
		q, args := sendRemindersSQL(today, offsets, now, limit)
		rows, err := tx.Query(ctx, q, args...)
		if err != nil {
			return err
		}
		type mark struct {
			invoice string
			offset  int
		}
		marks, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (mark, error) {
			var m mark
			return m, r.Scan(&m.invoice, &m.offset)
		})
		if err != nil {
			return err
		}
		for _, m := range marks {
			r, err := receivable(ctx, tx, m.invoice, false)
			if err != nil {
				return err
			}
			r.Derive(today)
			e := notify.Event{Type: notify.InvoiceReminder, CustomerID: r.CustomerID, Object: billing.PaymentReminder{OffsetDays: m.offset, Receivable: r},
				Key: r.InvoiceID + "/" + billing.FormatReminderOffset(m.offset), Created: now}
			if err := emit(ctx, s.Notify, tx, e); err != nil {
				return err
			}
		}
		n = len(marks)
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// Aging sums what is owed per customer and currency as of today.
func (s *ReceivableStore) Aging(ctx context.Context, customerID string, today billing.Date) ([]billing.AgingRow, error) {
	q, args := agingSQL(customerID, today)
	rows, err := s.DB.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("aging: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (billing.AgingRow, error) {
		var a billing.AgingRow
		var amounts [6]string
		if err := r.Scan(&a.CustomerID, &a.CustomerName, &a.Currency, &amounts[0], &amounts[1], &amounts[2], &amounts[3], &amounts[4], &amounts[5], &a.Invoices); err != nil {
			return a, err
		}
		places := billing.MinorUnitsOf(a.Currency)
		for i, m := range []*billing.Money{&a.Current, &a.Days1To30, &a.Days31To60, &a.Days61To90, &a.Over90, &a.Total} {
			d, err := decimal.NewFromString(amounts[i])
			if err != nil {
				return a, err
			}
			*m = billing.NewMoney(d, places)
		}
		return a, nil
	})
	if err != nil {
		return nil, fmt.Errorf("aging: %w", err)
	}
	return out, nil
}
