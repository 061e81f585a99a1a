package pgstore

import (
	"strconv"
	"strings"
	"time"

	"postage/billing"
)

// The statements of taxes, receivables, payments and credit notes
// (migrations 0036-0038), built like those of sql.go.

// Tax rates.

const taxRateColumns = `id, jurisdiction, name, rate::text, effective_from, effective_to, created_at, updated_at`

// dateArg is a date as PostgreSQL's date (nil for no date).
func dateArg(d *billing.Date) any {
	if d == nil || d.IsZero() {
		return nil
	}
	return d.String()
}

func insertTaxRateSQL(r billing.TaxRate, now time.Time) (string, []any) {
	return `INSERT INTO tax_rates (id, jurisdiction, name, rate, effective_from, effective_to, created_at, updated_at)
	VALUES ($1,$2,$3,$4::numeric,$5::date,$6::date,$7,$7) RETURNING ` + taxRateColumns,
		[]any{r.ID, r.Jurisdiction, r.Name, r.Rate.String(), r.EffectiveFrom.String(), dateArg(r.EffectiveTo), now}
}

func setTaxRateEndSQL(id string, to *billing.Date, now time.Time) (string, []any) {
	return `UPDATE tax_rates SET effective_to = $2::date, updated_at = $3 WHERE id = $1 RETURNING ` + taxRateColumns,
		[]any{id, dateArg(to), now}
}

func getTaxRateSQL(id string) (string, []any) {
	return `SELECT ` + taxRateColumns + ` FROM tax_rates WHERE id = $1`, []any{id}
}

func listTaxRatesSQL(jurisdiction string) (string, []any) {
	return `SELECT ` + taxRateColumns + ` FROM tax_rates WHERE ($1 = '' OR jurisdiction = $1) ORDER BY jurisdiction, effective_from`, []any{jurisdiction}
}

// sqlArgs numbers the arguments of a query built piece by piece.
type sqlArgs struct{ args []any }

func (a *sqlArgs) add(v any) string {
	a.args = append(a.args, v)
	return "$" + strconv.Itoa(len(a.args))
}

func where(conds []string) string {
	if len(conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(conds, " AND ")
}

// Receivables.

const receivableColumns = `invoice_id, customer_id, customer_name, number, period, currency, total::text, paid::text, credited::text,
 refunded::text, balance::text, issue_date, due_date, settled_on, uncollectible_at, uncollectible_reason`

func insertReceivableSQL(inv billing.Invoice) (string, []any) {
	var settled any
	if !inv.Total.IsPositive() {
		settled = inv.IssueDate.String()
	}
	return `INSERT INTO receivables (invoice_id, customer_id, customer_name, number, period, currency, total, issue_date, due_date, settled_on)
	VALUES ($1,$2,$3,$4,$5,$6,$7::numeric,$8::date,$9::date,$10::date)`,
		[]any{inv.ID, inv.CustomerID, inv.Customer.Name, inv.Number, inv.Period.String(), inv.Currency, inv.Total.String(),
			inv.IssueDate.String(), inv.DueDate.String(), settled}
}

func getReceivableSQL(invoiceID string, forUpdate bool) (string, []any) {
	q := `SELECT ` + receivableColumns + ` FROM receivables WHERE invoice_id = $1`
	if forUpdate {
		q += ` FOR UPDATE`
	}
	return q, []any{invoiceID}
}

// invoiceStatusSQL reads an invoice's status (to say why it has no receivable).
func invoiceStatusSQL(invoiceID string) (string, []any) {
	return `SELECT status FROM invoices WHERE id = $1`, []any{invoiceID}
}

// receivableStatusConds are the conditions of a payment status as of today:
// what Receivable.Derive decides, in SQL. today returns the placeholder
// of today's date; it is called only by the statuses that depend on the
// day (PostgreSQL refuses a parameter that no condition uses).
func receivableStatusConds(status billing.PaymentStatus, today func() string) []string {
	switch status {
	case billing.PaymentPaid:
		return []string{"balance <= 0"}
	case billing.PaymentUncollectible:
		return []string{"balance > 0", "uncollectible_at IS NOT NULL"}
	case billing.PaymentOverdue:
		return []string{"balance > 0", "uncollectible_at IS NULL", "due_date < " + today()}
	case billing.PaymentOpen:
		return []string{"balance > 0", "uncollectible_at IS NULL", "due_date >= " + today(), "paid = 0", "credited = 0"}
	case billing.PaymentPartiallyPaid:
		return []string{"balance > 0", "uncollectible_at IS NULL", "due_date >= " + today(), "(paid > 0 OR credited > 0)"}
	}
	return nil
}

// listReceivablesSQL lists receivables newest issue first (then invoice
// id), after the cursor's (issue date, invoice id).
func listReceivablesSQL(f billing.ReceivableFilter, today billing.Date, cur *keyCursor, limit int) (string, []any) {
	var a sqlArgs
	var conds []string
	if f.CustomerID != "" {
		conds = append(conds, "customer_id = "+a.add(f.CustomerID))
	}
	if f.Outstanding {
		conds = append(conds, "balance > 0")
	}
	if f.Status != "" {
		conds = append(conds, receivableStatusConds(f.Status, func() string { return a.add(today.String()) + "::date" })...)
	}
	if cur != nil {
		conds = append(conds, "(issue_date, invoice_id) < ("+a.add(cur.At)+"::date, "+a.add(cur.ID)+")")
	}
	return `SELECT ` + receivableColumns + ` FROM receivables` + where(conds) + ` ORDER BY issue_date DESC, invoice_id DESC LIMIT ` + a.add(limit), a.args
}

// addRefundedSQL adds a refund to a receivable (whose balance is negative
// and stays at most zero: settled_on is kept).
func addRefundedSQL(invoiceID, amount string) (string, []any) {
	return `UPDATE receivables SET refunded = refunded + $2::numeric
	WHERE invoice_id = $1 RETURNING ` + receivableColumns, []any{invoiceID, amount}
}

// addPaidSQL adds a payment to a receivable; the day it settles is kept.
func addPaidSQL(invoiceID, amount string, day billing.Date) (string, []any) {
	return `UPDATE receivables SET paid = paid + $2::numeric,
		settled_on = CASE WHEN total - paid - $2::numeric - credited + refunded <= 0 THEN coalesce(settled_on, $3::date) END
	WHERE invoice_id = $1 RETURNING ` + receivableColumns, []any{invoiceID, amount, day.String()}
}

// addCreditedSQL adds a credit note to a receivable.
func addCreditedSQL(invoiceID, amount string, day billing.Date) (string, []any) {
	return `UPDATE receivables SET credited = credited + $2::numeric,
		settled_on = CASE WHEN total - paid - credited - $2::numeric + refunded <= 0 THEN coalesce(settled_on, $3::date) END
	WHERE invoice_id = $1 RETURNING ` + receivableColumns, []any{invoiceID, amount, day.String()}
}

func markUncollectibleSQL(invoiceID, reason string, at time.Time) (string, []any) {
	return `UPDATE receivables SET uncollectible_at = $3, uncollectible_reason = $2
	WHERE invoice_id = $1 RETURNING ` + receivableColumns, []any{invoiceID, reason, at}
}

// deleteReceivableSQL removes the receivable of an invoice being voided
// (only one without payments or credit notes, void ones included: their
// keys refer to it).
func deleteReceivableSQL(invoiceID string) (string, []any) {
	return `DELETE FROM receivables WHERE invoice_id = $1 AND paid = 0 AND credited = 0
		AND NOT EXISTS (SELECT 1 FROM credit_notes WHERE invoice_id = $1)`, []any{invoiceID}
}

// markOverdueSQL marks at most limit receivables overdue by today that
// were not yet reported, oldest due first, and returns them. Rows another
// transaction holds (a payment being recorded, another pass) are skipped:
// the next pass takes them if they are still overdue.
func markOverdueSQL(today billing.Date, at time.Time, limit int) (string, []any) {
	return `UPDATE receivables SET overdue_reported_at = $2
	WHERE invoice_id IN (
		SELECT invoice_id FROM receivables
		WHERE balance > 0 AND due_date < $1::date AND uncollectible_at IS NULL AND overdue_reported_at IS NULL
		ORDER BY due_date, invoice_id LIMIT $3
		FOR UPDATE SKIP LOCKED)
	RETURNING ` + receivableColumns, []any{today.String(), at, limit}
}

// sendRemindersSQL marks, for at most limit invoices with a balance (not
// written off) whose due date plus a reminder offset is today or earlier,
// the latest offset reached, unless it is marked already, and returns the
// marked invoices with that offset. offsets are sorted; the due date
// range (before today minus the smallest offset) reads the partial index
// of outstanding receivables. Rows another transaction holds are skipped
// (the next pass takes them); two passes at once mark each once (the
// mark's primary key).
func sendRemindersSQL(today billing.Date, offsets []int, at time.Time, limit int) (string, []any) {
	return `WITH due AS (
		SELECT r.invoice_id, o.offset_days
		FROM receivables r,
			LATERAL (SELECT max(x) AS offset_days FROM unnest($2::int[]) x WHERE r.due_date + x <= $1::date) o
		WHERE r.balance > 0 AND r.uncollectible_at IS NULL AND r.due_date <= $1::date - $3::int
			AND NOT EXISTS (SELECT 1 FROM payment_reminders p WHERE p.invoice_id = r.invoice_id AND p.offset_days = o.offset_days)
		ORDER BY r.due_date, r.invoice_id
		LIMIT $5
		FOR UPDATE OF r SKIP LOCKED
	)
	INSERT INTO payment_reminders (invoice_id, offset_days, sent_at)
	SELECT invoice_id, offset_days, $4 FROM due
	ON CONFLICT DO NOTHING
	RETURNING invoice_id, offset_days`, []any{today.String(), offsets, offsets[0], at, limit}
}

// agingSQL sums what is owed per customer and currency as of today, by
// days past due: 0 or less (current), 1-30, 31-60, 61-90, over 90.
func agingSQL(customerID string, today billing.Date) (string, []any) {
	return `SELECT customer_id, max(customer_name), currency,
		coalesce(sum(balance) FILTER (WHERE $1::date - due_date <= 0), 0)::text,
		coalesce(sum(balance) FILTER (WHERE $1::date - due_date BETWEEN 1 AND 30), 0)::text,
		coalesce(sum(balance) FILTER (WHERE $1::date - due_date BETWEEN 31 AND 60), 0)::text,
		coalesce(sum(balance) FILTER (WHERE $1::date - due_date BETWEEN 61 AND 90), 0)::text,
		coalesce(sum(balance) FILTER (WHERE $1::date - due_date > 90), 0)::text,
		sum(balance)::text, count(*)
	FROM receivables WHERE balance > 0 AND uncollectible_at IS NULL AND ($2 = '' OR customer_id = $2)
	GROUP BY customer_id, currency ORDER BY customer_id, currency`, []any{today.String(), customerID}
}

// Payments and refunds: money moved outside postage against an invoice,
// one record in two tables.

// moneyTable is one of the two: the payments received, or the refunds paid
// back.
type moneyTable struct {
	table    string // payments, refunds
	day      string // the column of the day the money moved
	noun     string // payment, refund: in messages
	idPrefix string
}

var (
	paymentsTable = moneyTable{table: "payments", day: "paid_on", noun: "payment", idPrefix: "pay_"}
	refundsTable  = moneyTable{table: "refunds", day: "refunded_on", noun: "refund", idPrefix: "ref_"}
)

func (t moneyTable) columns() string {
	return `id, invoice_id, invoice_number, customer_id, amount::text, currency, ` + t.day + `, method, reference, coalesce(idempotency_key,''), created_at`
}

func (t moneyTable) insertSQL(p billing.Payment) (string, []any) {
	return `INSERT INTO ` + t.table + ` (id, invoice_id, invoice_number, customer_id, amount, currency, ` + t.day + `, method, reference, idempotency_key, created_at)
	VALUES ($1,$2,$3,$4,$5::numeric,$6,$7::date,$8,$9,$10,$11) RETURNING ` + t.columns(),
		[]any{p.ID, p.InvoiceID, p.InvoiceNumber, p.CustomerID, p.Amount.String(), p.Currency, p.Date.String(), string(p.Method), p.Reference,
			nullable(p.IdempotencyKey), p.CreatedAt}
}

func (t moneyTable) byKeySQL(key string) (string, []any) {
	return `SELECT ` + t.columns() + ` FROM ` + t.table + ` WHERE idempotency_key = $1`, []any{key}
}

// listSQL lists the table's rows newest first (then id), after the cursor.
func (t moneyTable) listSQL(f billing.PaymentFilter, cur *keyCursor, limit int) (string, []any) {
	var a sqlArgs
	var conds []string
	if f.CustomerID != "" {
		conds = append(conds, "customer_id = "+a.add(f.CustomerID))
	}
	if f.InvoiceID != "" {
		conds = append(conds, "invoice_id = "+a.add(f.InvoiceID))
	}
	if cur != nil {
		conds = append(conds, "(created_at, id) < ("+a.add(cur.At)+"::timestamptz, "+a.add(cur.ID)+")")
	}
	return `SELECT ` + t.columns() + ` FROM ` + t.table + where(conds) + ` ORDER BY created_at DESC, id DESC LIMIT ` + a.add(limit), a.args
}

// Credit notes.

// creditNoteColumns read a credit note from creditNotesFrom: its void
// document when it was voided, its issued one otherwise.
const creditNoteColumns = `c.id, coalesce(v.document, c.document)`

// creditNotesFrom is the credit notes with their voids.
const creditNotesFrom = `credit_notes c LEFT JOIN credit_note_voids v ON v.credit_note_id = c.id`

func insertCreditNoteSQL(cn billing.CreditNote, year int, seq int64, key billing.CreditKey) (string, []any) {
	var hash any
	if key.Key != "" {
		hash = key.Hash
	}
	return `INSERT INTO credit_notes (id, number, number_year, number_seq, invoice_id, customer_id, currency, subtotal, tax, total, issued_at,
		idempotency_key, request_hash, document)
	VALUES ($1,$2,$3,$4,$5,$6,$7,$8::numeric,$9::numeric,$10::numeric,$11,$12,$13,$14)`,
		[]any{cn.ID, cn.Number, year, seq, cn.InvoiceID, cn.CustomerID, cn.Currency, cn.Subtotal.String(), cn.Tax.String(), cn.Total.String(),
			cn.IssuedAt, nullable(key.Key), hash, string(cn.Document())}
}

// creditNotesOfInvoiceSQL reads the credit notes of an invoice that stand
// (void ones left out: what they credited is free to credit again).
func creditNotesOfInvoiceSQL(invoiceID string) (string, []any) {
	return `SELECT ` + creditNoteColumns + ` FROM ` + creditNotesFrom + ` WHERE c.invoice_id = $1 AND v.credit_note_id IS NULL ORDER BY c.number_year, c.number_seq`, []any{invoiceID}
}

func getCreditNoteSQL(id string) (string, []any) {
	return `SELECT ` + creditNoteColumns + ` FROM ` + creditNotesFrom + ` WHERE c.id = $1 OR c.number = $1`, []any{id}
}

func creditNoteByKeySQL(key string) (string, []any) {
	return `SELECT ` + creditNoteColumns + `, c.invoice_id, c.request_hash FROM ` + creditNotesFrom + ` WHERE c.idempotency_key = $1`, []any{key}
}

// listCreditNotesSQL lists credit notes newest first (then by number),
// after the cursor (issue time, number's sequence).
func listCreditNotesSQL(f billing.CreditNoteFilter, cur *keyCursor, limit int) (string, []any) {
	var a sqlArgs
	var conds []string
	if f.CustomerID != "" {
		conds = append(conds, "c.customer_id = "+a.add(f.CustomerID))
	}
	if f.InvoiceID != "" {
		conds = append(conds, "c.invoice_id = "+a.add(f.InvoiceID))
	}
	if cur != nil {
		conds = append(conds, "(c.issued_at, c.number_seq) < ("+a.add(cur.At)+"::timestamptz, "+a.add(cur.ID)+"::bigint)")
	}
	return `SELECT ` + creditNoteColumns + `, c.issued_at, c.number_seq FROM ` + creditNotesFrom + where(conds) + ` ORDER BY c.issued_at DESC, c.number_seq DESC LIMIT ` + a.add(limit), a.args
}

func ensureCreditCounterSQL(year int) (string, []any) {
	return `INSERT INTO credit_note_number_counters (year, last) VALUES ($1, 0) ON CONFLICT (year) DO NOTHING`, []any{year}
}

func lockCreditCounterSQL(year int) (string, []any) {
	return `SELECT last FROM credit_note_number_counters WHERE year = $1 FOR UPDATE`, []any{year}
}

func bumpCreditCounterSQL(year int, last int64) (string, []any) {
	return `UPDATE credit_note_number_counters SET last = $2 WHERE year = $1`, []any{year, last}
}

// creditNoteDocumentSQL reads the stored rendering of a credit note as
// issued, or (void) as voided.
func creditNoteDocumentSQL(id string, f billing.Format, void bool) (string, []any) {
	return `SELECT body FROM credit_note_documents WHERE credit_note_id = $1 AND format = $2 AND void = $3`, []any{id, string(f), void}
}

func putCreditNoteDocumentSQL(id string, f billing.Format, void bool, body []byte, now time.Time) (string, []any) {
	return `INSERT INTO credit_note_documents (credit_note_id, format, void, body, created_at) VALUES ($1,$2,$3,$4,$5)
	ON CONFLICT (credit_note_id, format, void) DO NOTHING`, []any{id, string(f), void, body, now}
}

// voidCreditNoteSQL records a credit note's void with its void document.
func voidCreditNoteSQL(id, reason string, at time.Time, document []byte) (string, []any) {
	return `INSERT INTO credit_note_voids (credit_note_id, reason, voided_at, document) VALUES ($1,$2,$3,$4)`, []any{id, reason, at, string(document)}
}

// uncreditSQL takes a voided credit note's total off a receivable: the
// day it was settled goes when a balance is owed again.
func uncreditSQL(invoiceID, amount string) (string, []any) {
	return `UPDATE receivables SET credited = credited - $2::numeric,
		settled_on = CASE WHEN total - paid - credited + $2::numeric + refunded <= 0 THEN settled_on END
	WHERE invoice_id = $1 RETURNING ` + receivableColumns, []any{invoiceID, amount}
}
