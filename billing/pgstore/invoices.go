package pgstore

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"

	"postage"
	"postage/billing"
	"postage/notify"
	"postage/pricing"
)

// InvoiceStore is the invoice ledger in PostgreSQL (migrations
// 0030-0035): invoices and their frozen documents, numbering, runs, billed
// periods and the unbilled-usage report.
type InvoiceStore struct {
	DB      *pgxpool.Pool
	Now     func() time.Time
	Numbers billing.NumberFormat
	// Notify, when set, writes invoice.finalized and invoice.voided to
	// the webhooks' outbox in the transaction that finalizes or voids.
	Notify billing.Notifier
}

var _ billing.Ledger = (*InvoiceStore)(nil)

// NewInvoiceStore returns a store on db with the wall clock and the given
// number format (billing.DefaultNumberFormat when empty).
func NewInvoiceStore(db *pgxpool.Pool, numberFormat string) (*InvoiceStore, error) {
	if numberFormat == "" {
		numberFormat = billing.DefaultNumberFormat
	}
	nf, err := billing.ParseNumberFormat(numberFormat)
	if err != nil {
		return nil, err
	}
	return &InvoiceStore{DB: db, Now: time.Now, Numbers: nf}, nil
}

func (s *InvoiceStore) now() time.Time { return utcNow(s.Now) }

// queryer is a pool, a connection or a transaction.
type queryer interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

const uniqueViolation = "23505"

// pgCode returns the SQLSTATE of a PostgreSQL error ("" for others).
func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// scanInvoice reads invoiceColumns. A finalized or void invoice with a
// frozen document is that document; any other is built from the columns
// (its lines' descriptions and country lists restored by billing).
func scanInvoice(r pgx.Row) (billing.Invoice, error) {
	var inv billing.Invoice
	var period, status, sub, adj, total, tax string
	var cust, lines, details, taxLines []byte
	var doc *string
	err := r.Scan(&inv.ID, &inv.Number, &inv.CustomerID, &period, &inv.Seq, &status, &cust, &inv.Currency,
		&inv.CardID, &inv.CardVersion, &lines, &sub, &adj, &total, &inv.UsageCutoff, &inv.FinalizeAfter,
		&inv.CreatedAt, &inv.UpdatedAt, &inv.FinalizedAt, &inv.VoidedAt, &inv.VoidReason, &inv.Replaces, &inv.ReplacedBy, &doc, &details,
		&tax, &taxLines, &inv.TaxNote, &inv.PaymentTermsDays)
	if err != nil {
		return inv, err
	}
	if doc != nil {
		frozen, err := billing.DecodeDocument([]byte(*doc))
		if err != nil {
			return inv, fmt.Errorf("invoice %s: %w", inv.ID, err)
		}
		return frozen, nil
	}
	inv.Status = billing.Status(status)
	if inv.Period, err = pricing.ParseMonth(period); err != nil {
		return inv, err
	}
	if err := json.Unmarshal(cust, &inv.Customer); err != nil {
		return inv, fmt.Errorf("invoice %s customer: %w", inv.ID, err)
	}
	if inv.Lines, err = billing.DecodeLines(lines); err != nil {
		return inv, fmt.Errorf("invoice %s lines: %w", inv.ID, err)
	}
	if err := billing.DecodeDetails(&inv, details); err != nil {
		return inv, err
	}
	inv.MinorUnits = billing.MinorUnitsOf(inv.Currency)
	if inv.TaxLines, err = billing.DecodeTaxLines(taxLines, inv.MinorUnits); err != nil {
		return inv, fmt.Errorf("invoice %s tax lines: %w", inv.ID, err)
	}
	for _, p := range []struct {
		s string
		m *billing.Money
	}{{sub, &inv.Subtotal}, {adj, &inv.Adjustments}, {tax, &inv.Tax}, {total, &inv.Total}} {
		d, err := decimal.NewFromString(p.s)
		if err != nil {
			return inv, fmt.Errorf("invoice %s amount: %w", inv.ID, err)
		}
		*p.m = billing.NewMoney(d, inv.MinorUnits)
	}
	for _, t := range []*time.Time{&inv.UsageCutoff, &inv.FinalizeAfter, &inv.CreatedAt, &inv.UpdatedAt} {
		*t = t.UTC()
	}
	for _, t := range []*time.Time{inv.FinalizedAt, inv.VoidedAt} {
		if t != nil {
			*t = t.UTC()
		}
	}
	return inv, nil
}

// Get returns one invoice.
func (s *InvoiceStore) Get(ctx context.Context, id string) (billing.Invoice, error) {
	return getInvoice(ctx, s.DB, id, false)
}

func getInvoice(ctx context.Context, q queryer, id string, forUpdate bool) (billing.Invoice, error) {
	sql, args := getInvoiceSQL(id, forUpdate)
	inv, err := scanInvoice(q.QueryRow(ctx, sql, args...))
	if errors.Is(err, pgx.ErrNoRows) {
		return billing.Invoice{}, postage.Errorf(postage.ENOTFOUND, "invoice %q not found", id)
	} else if err != nil {
		return billing.Invoice{}, fmt.Errorf("get invoice: %w", err)
	}
	return inv, nil
}

// invoiceCursor is the position after the last invoice of a page, in the
// list order (period descending, then customer, then seq).
type invoiceCursor struct {
	Period   string `json:"p"`
	Customer string `json:"c"`
	Seq      int    `json:"s"`
}

func (c invoiceCursor) encode() string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string) (*invoiceCursor, error) {
	if s == "" {
		return nil, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	var c invoiceCursor
	if err == nil {
		err = json.Unmarshal(b, &c)
	}
	if err != nil || c.Period == "" {
		return nil, postage.Errorf(postage.EINVALID, "cursor: not a next_cursor from this list")
	}
	return &c, nil
}

// List returns invoices matching f, newest period first, a page at a time;
// the returned cursor is empty on the last page.
func (s *InvoiceStore) List(ctx context.Context, f billing.InvoiceFilter, p billing.Page) ([]billing.Invoice, string, error) {
	if err := f.Validate(); err != nil {
		return nil, "", err
	}
	p = p.Norm()
	cur, err := decodeCursor(p.Cursor)
	if err != nil {
		return nil, "", err
	}
	q, args := listInvoicesSQL(f, cur, p.Limit+1)
	list, err := s.invoices(ctx, q, args)
	if err != nil {
		return nil, "", fmt.Errorf("list invoices: %w", err)
	}
	next := ""
	if len(list) > p.Limit {
		list = list[:p.Limit]
		last := list[len(list)-1]
		next = invoiceCursor{Period: last.Period.String(), Customer: last.CustomerID, Seq: last.Seq}.encode()
	}
	return list, next, nil
}

// PeriodInvoices returns every invoice of a period (all statuses), by
// customer then seq, for the period export.
func (s *InvoiceStore) PeriodInvoices(ctx context.Context, period pricing.Month) ([]billing.Invoice, error) {
	q, args := periodInvoicesSQL(period)
	list, err := s.invoices(ctx, q, args)
	if err != nil {
		return nil, fmt.Errorf("period invoices: %w", err)
	}
	return list, nil
}

func (s *InvoiceStore) invoices(ctx context.Context, q string, args []any) ([]billing.Invoice, error) {
	rows, err := s.DB.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (billing.Invoice, error) { return scanInvoice(r) })
}

// Finalize assigns the next number of the current year to a draft and
// freezes it, in one transaction that locks the invoice and the year's
// counter row: the number, and the frozen document, exist exactly when
// the finalized invoice does. A non-draft invoice is a conflict.
func (s *InvoiceStore) Finalize(ctx context.Context, id string, issuer billing.Issuer) (billing.Invoice, error) {
	var out billing.Invoice
	err := pgx.BeginFunc(ctx, s.DB, func(tx pgx.Tx) error {
		inv, err := getInvoice(ctx, tx, id, true)
		if err != nil {
			return err
		}
		if inv.Status != billing.StatusDraft {
			return postage.Errorf(postage.ECONFLICT, "invoice %s is %s, only a draft can be finalized", id, inv.Status)
		}
		out, err = s.finalizeTx(ctx, tx, id, issuer)
		return err
	})
	return out, err
}

// finalizeTx numbers, finalizes and freezes a draft already locked by tx.
func (s *InvoiceStore) finalizeTx(ctx context.Context, tx pgx.Tx, id string, issuer billing.Issuer) (billing.Invoice, error) {
	now := s.now()
	year := now.Year()
	q, args := ensureCounterSQL(year)
	if _, err := tx.Exec(ctx, q, args...); err != nil {
		return billing.Invoice{}, fmt.Errorf("number counter: %w", err)
	}
	var last int64
	q, args = lockCounterSQL(year)
	if err := tx.QueryRow(ctx, q, args...).Scan(&last); err != nil {
		return billing.Invoice{}, fmt.Errorf("number counter: %w", err)
	}
	seq := last + 1
	q, args = bumpCounterSQL(year, seq)
	if _, err := tx.Exec(ctx, q, args...); err != nil {
		return billing.Invoice{}, fmt.Errorf("number counter: %w", err)
	}
	q, args = finalizeSQL(id, s.Numbers.Format(year, seq), year, seq, now)
	inv, err := scanInvoice(tx.QueryRow(ctx, q, args...))
	if errors.Is(err, pgx.ErrNoRows) {
		return billing.Invoice{}, postage.Errorf(postage.ECONFLICT, "invoice %s is no longer a draft", id)
	} else if err != nil {
		return billing.Invoice{}, fmt.Errorf("finalize invoice: %w", err)
	}
	if err := billing.Freeze(&inv, issuer); err != nil {
		return billing.Invoice{}, err
	}
	q, args = setDocumentSQL(id, inv.Document())
	if _, err := tx.Exec(ctx, q, args...); err != nil {
		return billing.Invoice{}, fmt.Errorf("freeze invoice: %w", err)
	}
	if err := s.emit(ctx, tx, notify.InvoiceFinalized, inv, now); err != nil {
		return billing.Invoice{}, err
	}
	// What it owes, from now on beside it (migration 0037).
	q, args = insertReceivableSQL(inv)
	if _, err := tx.Exec(ctx, q, args...); err != nil {
		return billing.Invoice{}, fmt.Errorf("receivable of invoice: %w", err)
	}
	return inv, nil
}

// emit announces an invoice's change in tx (nothing without a Notifier);
// the object is the invoice as the API shows it (its frozen document).
func (s *InvoiceStore) emit(ctx context.Context, tx pgx.Tx, t notify.EventType, inv billing.Invoice, now time.Time) error {
	return emit(ctx, s.Notify, tx, notify.Event{Type: t, CustomerID: inv.CustomerID, Object: inv, Key: inv.ID, Created: now})
}

// NextSeq returns the seq the next invoice of a customer-period takes.
func (s *InvoiceStore) NextSeq(ctx context.Context, customerID string, period pricing.Month) (int, error) {
	var seq int
	q, args := nextSeqSQL(customerID, period)
	if err := s.DB.QueryRow(ctx, q, args...).Scan(&seq); err != nil {
		return 0, fmt.Errorf("next invoice seq: %w", err)
	}
	return seq, nil
}

// VoidAndReissue voids a finalized invoice and inserts its reissue, in one
// transaction: the void (the reissue then is the customer-period's one
// live invoice), the reissue naming it, the link back, and the void
// invoice's frozen document.
func (s *InvoiceStore) VoidAndReissue(ctx context.Context, id, reason string, now time.Time, reissue *billing.Invoice, issuer billing.Issuer) error {
	return pgx.BeginFunc(ctx, s.DB, func(tx pgx.Tx) error {
		cur, err := getInvoice(ctx, tx, id, true)
		if err != nil {
			return err
		}
		if cur.Status != billing.StatusFinalized {
			return postage.Errorf(postage.ECONFLICT, "invoice %s is %s: only a finalized invoice can be voided", id, cur.Status)
		}
		if !cur.Issuer.IsZero() {
			issuer = cur.Issuer // as frozen at finalization
		}
		// Money received or credited stays with the invoice it was for: a
		// correction of such an invoice is a credit note (docs/BILLING.md).
		rec, err := receivable(ctx, tx, id, true)
		if err != nil && postage.ErrorCode(err) == postage.EINTERNAL {
			return err
		}
		if err == nil {
			if !rec.Paid.IsZero() || !rec.Credited.IsZero() {
				return postage.Errorf(postage.ECONFLICT, "invoice %s has payments (%s %s) or credit notes (%s %s): it cannot be voided; correct it with a credit note",
					cur.Number, rec.Paid, rec.Currency, rec.Credited, rec.Currency)
			}
			q, args := deleteReceivableSQL(id)
			tag, err := tx.Exec(ctx, q, args...)
			if err != nil {
				return fmt.Errorf("void: %w", err)
			}
			if tag.RowsAffected() == 0 {
				return postage.Errorf(postage.ECONFLICT, "invoice %s has credit notes (void ones stay with it): it cannot be voided; correct it with a credit note", cur.Number)
			}
		}
		q, args := voidSQL(id, reason, now)
		if _, err := tx.Exec(ctx, q, args...); err != nil {
			return fmt.Errorf("void: %w", err)
		}
		q, args = insertReissueSQL(billing.EncodeDraft(reissue), now)
		if _, err := tx.Exec(ctx, q, args...); err != nil {
			return fmt.Errorf("reissue: %w", err)
		}
		q, args = linkReplacementSQL(id, reissue.ID)
		voided, err := scanInvoice(tx.QueryRow(ctx, q, args...))
		if err != nil {
			return fmt.Errorf("void: %w", err)
		}
		if err := billing.Freeze(&voided, issuer); err != nil {
			return err
		}
		q, args = setDocumentSQL(id, voided.Document())
		if _, err := tx.Exec(ctx, q, args...); err != nil {
			return fmt.Errorf("freeze void invoice: %w", err)
		}
		return s.emit(ctx, tx, notify.InvoiceVoided, voided, now)
	})
}

// FreezeUnfrozen freezes the finalized and void invoices that have no
// frozen document yet, 500 at a time, each in its own statement (the
// database allows writing a document only where there is none).
func (s *InvoiceStore) FreezeUnfrozen(ctx context.Context, issuer billing.Issuer) (int, error) {
	n := 0
	for {
		q, args := unfrozenSQL(500)
		list, err := s.invoices(ctx, q, args)
		if err != nil {
			return n, fmt.Errorf("freeze invoices: %w", err)
		}
		for i := range list {
			if err := billing.Freeze(&list[i], issuer); err != nil {
				return n, err
			}
			q, args := freezeSQL(list[i].ID, list[i].Document())
			if _, err := s.DB.Exec(ctx, q, args...); err != nil {
				return n, fmt.Errorf("freeze invoice %s: %w", list[i].ID, err)
			}
			n++
		}
		if len(list) < 500 {
			return n, nil
		}
	}
}

// DueDrafts returns the ids of the period's drafts past their grace.
func (s *InvoiceStore) DueDrafts(ctx context.Context, period pricing.Month, now time.Time) ([]string, error) {
	q, args := dueDraftsSQL(period, now)
	rows, err := s.DB.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("find due drafts: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("find due drafts: %w", err)
	}
	return ids, nil
}

// DuePeriods returns the periods having drafts past their grace.
func (s *InvoiceStore) DuePeriods(ctx context.Context, now time.Time) ([]pricing.Month, error) {
	q, args := duePeriodsSQL(now)
	rows, err := s.DB.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("find due drafts: %w", err)
	}
	ps, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("find due drafts: %w", err)
	}
	return months(ps)
}

func months(ps []string) ([]pricing.Month, error) {
	out := make([]pricing.Month, 0, len(ps))
	for _, p := range ps {
		m, err := pricing.ParseMonth(p)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// Document returns the stored rendering of an invoice in a status.
func (s *InvoiceStore) Document(ctx context.Context, id string, status billing.Status, f billing.Format) ([]byte, bool, error) {
	var body []byte
	q, args := documentSQL(id, status, f)
	err := s.DB.QueryRow(ctx, q, args...).Scan(&body)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, nil
	} else if err != nil {
		return nil, false, fmt.Errorf("invoice document: %w", err)
	}
	return body, true, nil
}

// PutDocument stores a rendering unless one is stored already (a
// concurrent first rendering), and returns the stored one.
func (s *InvoiceStore) PutDocument(ctx context.Context, id string, status billing.Status, f billing.Format, body []byte) ([]byte, error) {
	q, args := putDocumentSQL(id, status, f, body, s.now())
	if _, err := s.DB.Exec(ctx, q, args...); err != nil {
		return nil, fmt.Errorf("store invoice document: %w", err)
	}
	stored, ok, err := s.Document(ctx, id, status, f)
	if err == nil && !ok {
		err = fmt.Errorf("store invoice document %s %s: not found after insert", id, f)
	}
	return stored, err
}

// moneyNumeric is m as PostgreSQL's numeric, exactly.
func moneyNumeric(m billing.Money) pgtype.Numeric {
	return pgtype.Numeric{Int: m.Decimal.Coefficient(), Exp: m.Decimal.Exponent(), Valid: true}
}
