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

func scanPayment(r pgx.Row) (billing.Payment, error) {
	var p billing.Payment
	var amount, method string
	var day time.Time
	if err := r.Scan(&p.ID, &p.InvoiceID, &p.InvoiceNumber, &p.CustomerID, &amount, &p.Currency, &day, &method, &p.Reference, &p.IdempotencyKey, &p.CreatedAt); err != nil {
		return p, err
	}
	d, err := decimal.NewFromString(amount)
	if err != nil {
		return p, fmt.Errorf("payment %s: %w", p.ID, err)
	}
	p.Amount = billing.NewMoney(d, billing.MinorUnitsOf(p.Currency))
	p.Date, p.Method, p.CreatedAt = billing.DateOf(day), billing.PaymentMethod(method), p.CreatedAt.UTC()
	return p, nil
}

// RecordPayment locks the receivable, checks the payment against it and
// records it, in one transaction; invoice.paid is emitted when it settles
// the invoice.
func (s *ReceivableStore) RecordPayment(ctx context.Context, invoiceID string, p billing.Payment, check func(billing.Receivable, billing.Payment) (billing.Payment, error)) (billing.Payment, billing.Receivable, bool, error) {
	var out billing.Payment
	var rec billing.Receivable
	existing := false
	err := pgx.BeginFunc(ctx, s.DB, func(tx pgx.Tx) error {
		r, err := receivable(ctx, tx, invoiceID, true)
		if err != nil {
			return err
		}
		if p.IdempotencyKey != "" {
			q, args := paymentByKeySQL(p.IdempotencyKey)
			prev, err := scanPayment(tx.QueryRow(ctx, q, args...))
			switch {
			case err == nil:
				p.InvoiceID = invoiceID
				if !samePayment(prev, p) {
					return postage.Errorf(postage.ECONFLICT, "idempotency key %q recorded another payment (%s)", p.IdempotencyKey, prev.ID)
				}
				out, rec, existing = prev, r, true
				return nil
			case !errors.Is(err, pgx.ErrNoRows):
				return fmt.Errorf("read payment: %w", err)
			}
		}
		checked, err := check(r, p)
		if err != nil {
			return err
		}
		now := s.now()
		checked.ID, checked.CreatedAt = billing.NewID("pay_"), now
		q, args := insertPaymentSQL(checked)
		if out, err = scanPayment(tx.QueryRow(ctx, q, args...)); err != nil {
			if pgCode(err) == uniqueViolation {
				return postage.Errorf(postage.ECONFLICT, "idempotency key %q recorded another payment", p.IdempotencyKey)
			}
			return fmt.Errorf("record payment: %w", err)
		}
		q, args = addPaidSQL(invoiceID, checked.Amount.String(), billing.DateOf(now))
		if rec, err = scanReceivable(tx.QueryRow(ctx, q, args...)); err != nil {
			return fmt.Errorf("record payment: %w", err)
		}
		return s.emitIfPaid(ctx, tx, r, rec, now)
	})
	if err != nil {
		return billing.Payment{}, billing.Receivable{}, false, err
	}
	return out, rec, existing, nil
}

// samePayment reports whether a recorded payment is the one asked for again.
func samePayment(prev, p billing.Payment) bool {
	return prev.InvoiceID == p.InvoiceID && prev.Amount.Equal(p.Amount.Decimal) && prev.Currency == p.Currency &&
		prev.Date == p.Date && prev.Method == p.Method && prev.Reference == p.Reference
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
	p = p.Norm()
	cur, err := decodeKeyCursor(p.Cursor)
	if err != nil {
		return nil, "", err
	}
	q, args := listPaymentsSQL(f, cur, p.Limit+1)
	rows, err := s.DB.Query(ctx, q, args...)
	if err != nil {
		return nil, "", fmt.Errorf("list payments: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (billing.Payment, error) { return scanPayment(r) })
	if err != nil {
		return nil, "", fmt.Errorf("list payments: %w", err)
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

func scanRefund(r pgx.Row) (billing.Refund, error) {
	var f billing.Refund
	var amount, method string
	var day time.Time
	if err := r.Scan(&f.ID, &f.InvoiceID, &f.InvoiceNumber, &f.CustomerID, &amount, &f.Currency, &day, &method, &f.Reference, &f.IdempotencyKey, &f.CreatedAt); err != nil {
		return f, err
	}
	d, err := decimal.NewFromString(amount)
	if err != nil {
		return f, fmt.Errorf("refund %s: %w", f.ID, err)
	}
	f.Amount = billing.NewMoney(d, billing.MinorUnitsOf(f.Currency))
	f.Date, f.Method, f.CreatedAt = billing.DateOf(day), billing.PaymentMethod(method), f.CreatedAt.UTC()
	return f, nil
}

// RecordRefund locks the receivable, checks the refund against it and
// records it, in one transaction: two refunds at once are checked one
// after the other, so together they never refund more than is owed (and
// the receivable's CHECK stands behind the lock).
func (s *ReceivableStore) RecordRefund(ctx context.Context, invoiceID string, f billing.Refund, check func(billing.Receivable, billing.Refund) (billing.Refund, error)) (billing.Refund, billing.Receivable, bool, error) {
	var out billing.Refund
	var rec billing.Receivable
	existing := false
	err := pgx.BeginFunc(ctx, s.DB, func(tx pgx.Tx) error {
		r, err := receivable(ctx, tx, invoiceID, true)
		if err != nil {
			return err
		}
		if f.IdempotencyKey != "" {
			q, args := refundByKeySQL(f.IdempotencyKey)
			prev, err := scanRefund(tx.QueryRow(ctx, q, args...))
			switch {
			case err == nil:
				f.InvoiceID = invoiceID
				if !sameRefund(prev, f) {
					return postage.Errorf(postage.ECONFLICT, "idempotency key %q recorded another refund (%s)", f.IdempotencyKey, prev.ID)
				}
				out, rec, existing = prev, r, true
				return nil
			case !errors.Is(err, pgx.ErrNoRows):
				return fmt.Errorf("read refund: %w", err)
			}
		}
		checked, err := check(r, f)
		if err != nil {
			return err
		}
		checked.ID, checked.CreatedAt = billing.NewID("ref_"), s.now()
		q, args := insertRefundSQL(checked)
		if out, err = scanRefund(tx.QueryRow(ctx, q, args...)); err != nil {
			if pgCode(err) == uniqueViolation {
				return postage.Errorf(postage.ECONFLICT, "idempotency key %q recorded another refund", f.IdempotencyKey)
			}
			return fmt.Errorf("record refund: %w", err)
		}
		q, args = addRefundedSQL(invoiceID, checked.Amount.String())
		if rec, err = scanReceivable(tx.QueryRow(ctx, q, args...)); err != nil {
			return fmt.Errorf("record refund: %w", err)
		}
		return nil
	})
	if err != nil {
		return billing.Refund{}, billing.Receivable{}, false, err
	}
	return out, rec, existing, nil
}

// sameRefund reports whether a recorded refund is the one asked for again.
func sameRefund(prev, f billing.Refund) bool {
	return prev.InvoiceID == f.InvoiceID && prev.Amount.Equal(f.Amount.Decimal) && prev.Currency == f.Currency &&
		prev.Date == f.Date && prev.Method == f.Method && prev.Reference == f.Reference
}

// Refunds lists refunds matching f, newest first.
func (s *ReceivableStore) Refunds(ctx context.Context, f billing.RefundFilter, p billing.Page) ([]billing.Refund, string, error) {
	p = p.Norm()
	cur, err := decodeKeyCursor(p.Cursor)
	if err != nil {
		return nil, "", err
	}
	q, args := listRefundsSQL(f, cur, p.Limit+1)
	rows, err := s.DB.Query(ctx, q, args...)
	if err != nil {
		return nil, "", fmt.Errorf("list refunds: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (billing.Refund, error) { return scanRefund(r) })
	if err != nil {
		return nil, "", fmt.Errorf("list refunds: %w", err)
	}
	next := ""
	if len(list) > p.Limit {
		list = list[:p.Limit]
		last := list[len(list)-1]
		next = keyCursor{At: last.CreatedAt.Format(time.RFC3339Nano), ID: last.ID}.encode()
	}
	if list == nil {
		list = []billing.Refund{}
	}
	return list, next, nil
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
