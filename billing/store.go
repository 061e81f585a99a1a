package billing

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"

	"postage"
	"postage/pricing"
)

// InvoiceStore keeps invoices, numbering, runs and the unbilled-usage
// report in PostgreSQL.
type InvoiceStore struct {
	DB      *pgxpool.Pool
	Now     func() time.Time
	Numbers NumberFormat
}

// NewInvoiceStore returns a store on db with the wall clock and the given
// number format (DefaultNumberFormat when empty).
func NewInvoiceStore(db *pgxpool.Pool, numberFormat string) (*InvoiceStore, error) {
	if numberFormat == "" {
		numberFormat = DefaultNumberFormat
	}
	nf, err := ParseNumberFormat(numberFormat)
	if err != nil {
		return nil, err
	}
	return &InvoiceStore{DB: db, Now: time.Now, Numbers: nf}, nil
}

// queryer is a pool, a connection or a transaction.
type queryer interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

const invoiceColumns = `id, coalesce(number,''), customer_id, period, seq, status, customer, currency, card_id, card_version,
 lines, subtotal::text, adjustments::text, total::text, usage_cutoff, finalize_after, created_at, updated_at,
 finalized_at, voided_at, void_reason, coalesce(replaces,''), coalesce(replaced_by,'')`

func scanInvoice(r pgx.Row) (Invoice, error) {
	var inv Invoice
	var period, status, sub, adj, total string
	var cust, lines []byte
	err := r.Scan(&inv.ID, &inv.Number, &inv.CustomerID, &period, &inv.Seq, &status, &cust, &inv.Currency,
		&inv.CardID, &inv.CardVersion, &lines, &sub, &adj, &total, &inv.UsageCutoff, &inv.FinalizeAfter,
		&inv.CreatedAt, &inv.UpdatedAt, &inv.FinalizedAt, &inv.VoidedAt, &inv.VoidReason, &inv.Replaces, &inv.ReplacedBy)
	if err != nil {
		return inv, err
	}
	inv.Status = Status(status)
	if inv.Period, err = pricing.ParseMonth(period); err != nil {
		return inv, err
	}
	if err := json.Unmarshal(cust, &inv.Customer); err != nil {
		return inv, fmt.Errorf("invoice %s customer: %w", inv.ID, err)
	}
	if err := json.Unmarshal(lines, &inv.Lines); err != nil {
		return inv, fmt.Errorf("invoice %s lines: %w", inv.ID, err)
	}
	expandLines(inv.Lines)
	places := inv.MinorUnits()
	for _, p := range []struct {
		s string
		m *Money
	}{{sub, &inv.Subtotal}, {adj, &inv.Adjustments}, {total, &inv.Total}} {
		d, err := decimal.NewFromString(p.s)
		if err != nil {
			return inv, fmt.Errorf("invoice %s amount: %w", inv.ID, err)
		}
		*p.m = NewMoney(d, places)
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
func (s *InvoiceStore) Get(ctx context.Context, id string) (Invoice, error) {
	return getInvoice(ctx, s.DB, id, false)
}

func getInvoice(ctx context.Context, q queryer, id string, forUpdate bool) (Invoice, error) {
	sql := `SELECT ` + invoiceColumns + ` FROM invoices WHERE id = $1`
	if forUpdate {
		sql += ` FOR UPDATE`
	}
	inv, err := scanInvoice(q.QueryRow(ctx, sql, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Invoice{}, postage.Errorf(postage.ENOTFOUND, "invoice %q not found", id)
	} else if err != nil {
		return Invoice{}, fmt.Errorf("get invoice: %w", err)
	}
	return inv, nil
}

// InvoiceFilter narrows a list of invoices; zero fields do not filter.
type InvoiceFilter struct {
	Period     pricing.Month
	Status     Status
	CustomerID string
	// NotDraft leaves drafts out (customers never see drafts).
	NotDraft bool
}

// Validate checks the filter's values.
func (f InvoiceFilter) Validate() error {
	var errs []error
	if f.Status != "" && !f.Status.Valid() {
		errs = append(errs, postage.Errorf(postage.EINVALID, "status %q: want draft, finalized or void", f.Status))
	}
	if !f.Period.IsZero() && !f.Period.Valid() {
		errs = append(errs, postage.Errorf(postage.EINVALID, "period %q: want YYYY-MM", f.Period))
	}
	return postage.JoinInvalid(errs)
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

// listInvoicesQuery builds the keyset-paginated list query.
func listInvoicesQuery(f InvoiceFilter, cur *invoiceCursor, limit int) (string, []any) {
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if !f.Period.IsZero() {
		where = append(where, "period = "+arg(f.Period.String()))
	}
	if f.Status != "" {
		where = append(where, "status = "+arg(string(f.Status)))
	}
	if f.CustomerID != "" {
		where = append(where, "customer_id = "+arg(f.CustomerID))
	}
	if f.NotDraft {
		where = append(where, "status <> 'draft'")
	}
	if cur != nil {
		p := arg(cur.Period)
		where = append(where, fmt.Sprintf("(period < %s OR (period = %s AND (customer_id, seq) > (%s, %s)))", p, p, arg(cur.Customer), arg(cur.Seq)))
	}
	q := `SELECT ` + invoiceColumns + ` FROM invoices`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += ` ORDER BY period DESC, customer_id, seq LIMIT ` + arg(limit)
	return q, args
}

// List returns invoices matching f, newest period first, a page at a time;
// the returned cursor is empty on the last page.
func (s *InvoiceStore) List(ctx context.Context, f InvoiceFilter, p Page) ([]Invoice, string, error) {
	if err := f.Validate(); err != nil {
		return nil, "", err
	}
	p = p.Norm()
	cur, err := decodeCursor(p.Cursor)
	if err != nil {
		return nil, "", err
	}
	q, args := listInvoicesQuery(f, cur, p.Limit+1)
	rows, err := s.DB.Query(ctx, q, args...)
	if err != nil {
		return nil, "", fmt.Errorf("list invoices: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Invoice, error) { return scanInvoice(r) })
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
func (s *InvoiceStore) PeriodInvoices(ctx context.Context, period pricing.Month) ([]Invoice, error) {
	rows, err := s.DB.Query(ctx, `SELECT `+invoiceColumns+` FROM invoices WHERE period = $1 ORDER BY customer_id, seq`, period.String())
	if err != nil {
		return nil, fmt.Errorf("period invoices: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Invoice, error) { return scanInvoice(r) })
	if err != nil {
		return nil, fmt.Errorf("period invoices: %w", err)
	}
	return list, nil
}

// Finalize assigns the next number of the current year to a draft and
// freezes it, in one transaction that locks the invoice and the year's
// counter row: the number exists exactly when the finalized invoice does.
// A non-draft invoice is a conflict.
func (s *InvoiceStore) Finalize(ctx context.Context, id string) (Invoice, error) {
	var out Invoice
	err := pgx.BeginFunc(ctx, s.DB, func(tx pgx.Tx) error {
		inv, err := getInvoice(ctx, tx, id, true)
		if err != nil {
			return err
		}
		if inv.Status != StatusDraft {
			return postage.Errorf(postage.ECONFLICT, "invoice %s is %s, only a draft can be finalized", id, inv.Status)
		}
		out, err = s.finalizeTx(ctx, tx, id)
		return err
	})
	return out, err
}

// finalizeTx numbers and finalizes a draft already locked by tx. Its
// usage cut-off becomes the period's last run cut-off when that is later:
// that run found the draft's content unchanged.
func (s *InvoiceStore) finalizeTx(ctx context.Context, tx pgx.Tx, id string) (Invoice, error) {
	now := s.Now().UTC()
	year := now.Year()
	if _, err := tx.Exec(ctx, `INSERT INTO invoice_number_counters (year, last) VALUES ($1, 0) ON CONFLICT (year) DO NOTHING`, year); err != nil {
		return Invoice{}, fmt.Errorf("number counter: %w", err)
	}
	var last int64
	if err := tx.QueryRow(ctx, `SELECT last FROM invoice_number_counters WHERE year = $1 FOR UPDATE`, year).Scan(&last); err != nil {
		return Invoice{}, fmt.Errorf("number counter: %w", err)
	}
	seq := last + 1
	if _, err := tx.Exec(ctx, `UPDATE invoice_number_counters SET last = $2 WHERE year = $1`, year, seq); err != nil {
		return Invoice{}, fmt.Errorf("number counter: %w", err)
	}
	number := s.Numbers.Format(year, seq)
	inv, err := scanInvoice(tx.QueryRow(ctx, `UPDATE invoices SET status = 'finalized', number = $2, number_year = $3, number_seq = $4,
		finalized_at = $5, updated_at = $5,
		usage_cutoff = greatest(usage_cutoff, (SELECT run_cutoff FROM billing_periods WHERE period = invoices.period))
		WHERE id = $1 AND status = 'draft' RETURNING `+invoiceColumns, id, number, year, seq, now))
	if errors.Is(err, pgx.ErrNoRows) {
		return Invoice{}, postage.Errorf(postage.ECONFLICT, "invoice %s is no longer a draft", id)
	} else if err != nil {
		return Invoice{}, fmt.Errorf("finalize invoice: %w", err)
	}
	return inv, nil
}

// Run is the record of one invoice run.
type Run struct {
	ID          int64      `json:"id"`
	Period      string     `json:"period"`
	Trigger     string     `json:"trigger"`
	Status      string     `json:"status"`
	StartedAt   time.Time  `json:"started_at"`
	EndedAt     *time.Time `json:"ended_at,omitempty"`
	UsageCutoff *time.Time `json:"usage_cutoff,omitempty"`
	Customers   int        `json:"customers"`
	Created     int        `json:"created"`
	Refreshed   int        `json:"refreshed"`
	Finalized   int        `json:"finalized"`
	Unchanged   int        `json:"unchanged"`
	Unbilled    int        `json:"unbilled"`
	Errors      int        `json:"errors"`
	Error       string     `json:"error,omitempty"`
}

// Runs returns the latest runs, newest first (all periods when period is zero).
func (s *InvoiceStore) Runs(ctx context.Context, period pricing.Month, limit int) ([]Run, error) {
	if limit <= 0 || limit > 1000 {
		limit = 50
	}
	rows, err := s.DB.Query(ctx, `SELECT id, period, trigger, status, started_at, ended_at, usage_cutoff, customers, created, refreshed,
		finalized, unchanged, unbilled, errors, error FROM invoice_runs WHERE ($1 = '' OR period = $1) ORDER BY id DESC LIMIT $2`, period.String(), limit)
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[Run])
}

// UnbilledRow is usage that a run could not bill.
type UnbilledRow struct {
	Period      string    `json:"period"`
	CustomerID  string    `json:"customer_id"`
	Reason      string    `json:"reason"`
	Detail      string    `json:"detail,omitempty"`
	Country     string    `json:"country"`
	Category    string    `json:"category"`
	Quantity    int64     `json:"quantity"`
	UsageCutoff time.Time `json:"usage_cutoff"`
}

// Unbilled reasons.
const (
	UnbilledUnknownCustomer = "unknown_customer"
	UnbilledNoCard          = "no_rate_card"
	UnbilledRatingError     = "rating_error"
)

// Unbilled returns the unbilled-usage report of a period as of its last run.
func (s *InvoiceStore) Unbilled(ctx context.Context, period pricing.Month) ([]UnbilledRow, error) {
	rows, err := s.DB.Query(ctx, `SELECT period, customer_id, reason, detail, country, category, quantity, usage_cutoff
		FROM unbilled_usage WHERE period = $1 ORDER BY customer_id, country, category`, period.String())
	if err != nil {
		return nil, fmt.Errorf("unbilled usage: %w", err)
	}
	list, err := pgx.CollectRows(rows, pgx.RowToStructByPos[UnbilledRow])
	for i := range list {
		list[i].UsageCutoff = list[i].UsageCutoff.UTC()
	}
	return list, err
}
