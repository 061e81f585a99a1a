package pgstore

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"postage/billing"
	"postage/pricing"
)

// Every statement the billing ledger runs is built here, by a small pure
// function returning the query and its arguments (sql_test.go checks their
// text; the store tests run them against PostgreSQL).

// Customers.

const customerColumns = `id, name, currency, coalesce(country,''), email, tax_id, tax_status, coalesce(tax_country,''), coalesce(tax_region,''),
 address, payment_terms_days, created_at, updated_at`

// customerSelect reads customers with their portfolio setting in effect in
// a month ($1): the latest row of customer_portfolios on or before it
// (read once and hash-joined: a run reads 50,000 customers).
const customerSelect = `SELECT c.id, c.name, c.currency, coalesce(c.country,''), c.email, c.tax_id, c.tax_status, coalesce(c.tax_country,''),
	coalesce(c.tax_region,''), c.address, c.payment_terms_days, c.created_at, c.updated_at, coalesce(p.parent_id,''), coalesce(p.consolidated,false)
FROM customers c LEFT JOIN (SELECT DISTINCT ON (customer_id) customer_id, parent_id, consolidated FROM customer_portfolios
	WHERE effective_from <= $1 ORDER BY customer_id, effective_from DESC) p ON p.customer_id = c.id`

// searchCustomersSQL finds customers whose id or name contains q, case
// insensitively (LIKE's wildcards in q are taken literally), with their
// portfolio setting in effect in now.
func searchCustomersSQL(q string, limit int, now pricing.Month) (string, []any) {
	pat := "%" + strings.NewReplacer(`\`, `\\`, "%", `\%`, "_", `\_`).Replace(q) + "%"
	return customerSelect + ` WHERE c.id ILIKE $2 OR c.name ILIKE $2
	ORDER BY lower(c.name), c.id LIMIT $3`, []any{now.String(), pat, limit}
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// addressJSON is a customer's address as the address column holds it.
func addressJSON(a *billing.Address) []byte {
	if a == nil || a.IsZero() {
		return nil
	}
	b, _ := json.Marshal(a)
	return b
}

func insertCustomerSQL(c billing.Customer, now time.Time) (string, []any) {
	return `INSERT INTO customers (id, name, currency, country, email, tax_id, tax_status, tax_country, tax_region, address, payment_terms_days, created_at, updated_at)
	VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$12) RETURNING ` + customerColumns,
		[]any{c.ID, c.Name, c.Currency, nullable(c.Country), c.Email, c.TaxID, string(c.TaxStatus), nullable(c.TaxCountry), nullable(c.TaxRegion),
			addressJSON(c.Address), c.PaymentTermsDays, now}
}

func getCustomerSQL(id string, now pricing.Month) (string, []any) {
	return customerSelect + ` WHERE c.id = $2`, []any{now.String(), id}
}

func listCustomersSQL(after string, limit int, now pricing.Month) (string, []any) {
	return customerSelect + ` WHERE c.id > $2 ORDER BY c.id LIMIT $3`, []any{now.String(), after, limit}
}

func allCustomersSQL(now pricing.Month) (string, []any) {
	return customerSelect, []any{now.String()}
}

// Portfolios.

// lockCustomersSQL locks customers' rows, in id order (no deadlock between
// two changes naming the same customers): a portfolio change locks the
// customer and its parent, so two changes that could together make a
// portfolio two levels deep, or split its currency, run one after the other.
func lockCustomersSQL(ids []string) (string, []any) {
	return `SELECT id, currency FROM customers WHERE id = ANY($1) ORDER BY id FOR UPDATE`, []any{ids}
}

// memberFromSQL: does the customer have a parent in some month from $2 on
// (its setting in effect in $2, or any later one)?
func memberFromSQL(customerID string, from pricing.Month) (string, []any) {
	return `SELECT EXISTS (SELECT 1 FROM customer_portfolios p WHERE p.customer_id = $1 AND p.parent_id IS NOT NULL
	AND (p.effective_from > $2 OR p.effective_from = (SELECT max(q.effective_from) FROM customer_portfolios q WHERE q.customer_id = $1 AND q.effective_from <= $2)))`,
		[]any{customerID, from.String()}
}

// parentFromSQL: is the customer some customer's parent in some month from $2 on?
func parentFromSQL(customerID string, from pricing.Month) (string, []any) {
	return `SELECT EXISTS (SELECT 1 FROM customer_portfolios p WHERE p.parent_id = $1
	AND (p.effective_from > $2 OR p.effective_from = (SELECT max(q.effective_from) FROM customer_portfolios q WHERE q.customer_id = p.customer_id AND q.effective_from <= $2)))`,
		[]any{customerID, from.String()}
}

func setPortfolioSQL(ps billing.PortfolioSetting) (string, []any) {
	return `INSERT INTO customer_portfolios (customer_id, effective_from, parent_id, consolidated) VALUES ($1, $2, $3, $4)
	ON CONFLICT (customer_id, effective_from) DO UPDATE SET parent_id = EXCLUDED.parent_id, consolidated = EXCLUDED.consolidated, created_at = now()`,
		[]any{ps.CustomerID, ps.EffectiveFrom.String(), nullable(ps.ParentID), ps.Consolidated}
}

func portfolioHistorySQL(customerID string) (string, []any) {
	return `SELECT customer_id, effective_from, coalesce(parent_id,''), consolidated FROM customer_portfolios WHERE customer_id = $1 ORDER BY effective_from`,
		[]any{customerID}
}

func portfoliosInSQL(m pricing.Month) (string, []any) {
	return `SELECT DISTINCT ON (customer_id) customer_id, effective_from, coalesce(parent_id,''), consolidated FROM customer_portfolios
	WHERE effective_from <= $1 ORDER BY customer_id, effective_from DESC`, []any{m.String()}
}

func updateCustomerSQL(c billing.Customer, now time.Time) (string, []any) {
	return `UPDATE customers SET name=$2, currency=$3, country=$4, email=$5, tax_id=$6, tax_status=$7, tax_country=$8, tax_region=$9,
	address=$10, payment_terms_days=$11, updated_at=$12 WHERE id=$1 RETURNING ` + customerColumns,
		[]any{c.ID, c.Name, c.Currency, nullable(c.Country), c.Email, c.TaxID, string(c.TaxStatus), nullable(c.TaxCountry), nullable(c.TaxRegion),
			addressJSON(c.Address), c.PaymentTermsDays, now}
}

func addPhoneNumberSQL(customerID, phoneNumberID string, now time.Time) (string, []any) {
	return `INSERT INTO phone_numbers (phone_number_id, customer_id, created_at) VALUES ($1,$2,$3)
	ON CONFLICT (phone_number_id) DO UPDATE SET phone_number_id = EXCLUDED.phone_number_id
	RETURNING customer_id, created_at`, []any{phoneNumberID, customerID, now}
}

func removePhoneNumberSQL(customerID, phoneNumberID string) (string, []any) {
	return `DELETE FROM phone_numbers WHERE phone_number_id=$1 AND customer_id=$2`, []any{phoneNumberID, customerID}
}

func phoneNumbersSQL(customerID string) (string, []any) {
	return `SELECT phone_number_id, customer_id, created_at FROM phone_numbers WHERE customer_id=$1 ORDER BY phone_number_id`, []any{customerID}
}

func customerForPhoneNumberSQL(phoneNumberID string) (string, []any) {
	return `SELECT customer_id FROM phone_numbers WHERE phone_number_id=$1`, []any{phoneNumberID}
}

func customersForPhoneNumbersSQL(ids []string) (string, []any) {
	return `SELECT phone_number_id, customer_id FROM phone_numbers WHERE phone_number_id = ANY($1)`, []any{ids}
}

// Invoices.

const invoiceColumns = `id, coalesce(number,''), customer_id, period, seq, status, customer, currency, card_id, card_version,
 lines, subtotal::text, adjustments::text, total::text, usage_cutoff, finalize_after, created_at, updated_at,
 finalized_at, voided_at, void_reason, coalesce(replaces,''), coalesce(replaced_by,''), document, details,
 tax::text, tax_lines, tax_note, payment_terms_days`

func getInvoiceSQL(id string, forUpdate bool) (string, []any) {
	q := `SELECT ` + invoiceColumns + ` FROM invoices WHERE id = $1`
	if forUpdate {
		q += ` FOR UPDATE`
	}
	return q, []any{id}
}

// listInvoicesSQL builds the keyset-paginated list query.
func listInvoicesSQL(f billing.InvoiceFilter, cur *invoiceCursor, limit int) (string, []any) {
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
	if f.Number != "" {
		where = append(where, "number = "+arg(f.Number))
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

func periodInvoicesSQL(period pricing.Month) (string, []any) {
	return `SELECT ` + invoiceColumns + ` FROM invoices WHERE period = $1 ORDER BY customer_id, seq`, []any{period.String()}
}

// Runs and the unbilled report.

func runsSQL(period pricing.Month, limit int) (string, []any) {
	return `SELECT id, period, trigger, status, started_at, ended_at, usage_cutoff, customers, created, refreshed,
	finalized, unchanged, unbilled, errors, error FROM invoice_runs WHERE ($1 = '' OR period = $1) ORDER BY id DESC LIMIT $2`,
		[]any{period.String(), limit}
}

func insertRunSQL(r *billing.Run) (string, []any) {
	return `INSERT INTO invoice_runs (period, trigger, status, started_at) VALUES ($1,$2,$3,$4) RETURNING id`,
		[]any{r.Period, r.Trigger, r.Status, r.StartedAt}
}

func failInterruptedSQL(except int64, at time.Time) (string, []any) {
	return `UPDATE invoice_runs SET status = 'failed', ended_at = $2, error = 'interrupted (the process or a database went away); finished by run '||$1::text
	WHERE status = 'running' AND id <> $1`, []any{except, at}
}

func finishRunSQL(r billing.Run) (string, []any) {
	return `UPDATE invoice_runs SET status=$2, ended_at=$3, usage_cutoff=$4, customers=$5, created=$6, refreshed=$7,
	finalized=$8, unchanged=$9, unbilled=$10, errors=$11, error=$12 WHERE id=$1`,
		[]any{r.ID, r.Status, r.EndedAt, r.UsageCutoff, r.Customers, r.Created, r.Refreshed, r.Finalized, r.Unchanged, r.Unbilled, r.Errors, r.Error}
}

func unbilledSQL(period pricing.Month) (string, []any) {
	return `SELECT period, customer_id, reason, detail, country, category, quantity, usage_cutoff
	FROM unbilled_usage WHERE period = $1 ORDER BY customer_id, country, category`, []any{period.String()}
}

// What a run plans from.

func liveInvoicesSQL(period pricing.Month) (string, []any) {
	return `SELECT customer_id, id, seq, status, content_hash FROM invoices WHERE period = $1 AND status <> 'void'`, []any{period.String()}
}

func adjustedLaterSQL(period, through pricing.Month) (string, []any) {
	return `SELECT DISTINCT customer_id FROM invoices
	WHERE status <> 'void' AND period > $1 AND period <= $2 AND adjusts <> '{}' AND adjusts @> ARRAY[$1::text]`,
		[]any{period.String(), through.String()}
}

// billedToSQL finds, per customer and month in [from, to), the latest usage
// cut-off of the finalized invoices that bill it (as their period or in
// adjustment lines).
func billedToSQL(from, to pricing.Month) (string, []any) {
	return `SELECT customer_id, p, max(usage_cutoff) FROM (
		SELECT customer_id, period AS p, usage_cutoff FROM invoices WHERE status = 'finalized' AND period >= $1 AND period < $2
		UNION ALL
		SELECT i.customer_id, a, i.usage_cutoff FROM invoices i, unnest(i.adjusts) a
		WHERE i.status = 'finalized' AND i.period > $1 AND i.adjusts <> '{}' AND a >= $1 AND a < $2
	) b GROUP BY customer_id, p`, []any{from.String(), to.String()}
}

func openMonthsSQL(from, to pricing.Month) (string, []any) {
	return `SELECT customer_id, period FROM invoices WHERE status = 'draft' AND period >= $1 AND period < $2`, []any{from.String(), to.String()}
}

func runCutoffsSQL(from, to pricing.Month) (string, []any) {
	return `SELECT period, run_cutoff FROM billing_periods WHERE period >= $1 AND period < $2`, []any{from.String(), to.String()}
}

func closedMonthsSQL(customerID string, from, to pricing.Month) (string, []any) {
	return `SELECT p FROM (
		SELECT period AS p FROM billing_periods WHERE period >= $2 AND period < $3
		UNION SELECT period FROM invoices WHERE customer_id = $1 AND status = 'finalized' AND period >= $2 AND period < $3
	) m WHERE NOT EXISTS (SELECT 1 FROM invoices WHERE customer_id = $1 AND period = m.p AND status = 'draft') ORDER BY p`,
		[]any{customerID, from.String(), to.String()}
}

func billedLinesSQL(customerID string, m pricing.Month, exclude []string) (string, []any) {
	return `SELECT lines FROM invoices WHERE customer_id = $1 AND status <> 'void' AND id <> ALL($2)
	AND (period = $3 OR (period > $3 AND adjusts <> '{}' AND adjusts @> ARRAY[$3::text]))`, []any{customerID, exclude, m.String()}
}

// Writing drafts.

// syncCommitOffSQL lets a transaction commit without waiting for the WAL
// flush: drafts are recomputed by every run, so a crash that loses the
// last commits loses nothing the next run does not redo.
func syncCommitOffSQL() (string, []any) { return `SET LOCAL synchronous_commit = off`, nil }

// draftColumns are the columns COPY writes for a new draft.
var draftColumns = []string{"id", "customer_id", "period", "seq", "status", "customer", "currency",
	"card_id", "card_version", "lines", "subtotal", "adjustments", "total", "usage_cutoff", "finalize_after", "created_at", "updated_at", "content_hash", "adjusts", "details",
	"tax", "tax_lines", "tax_note", "payment_terms_days"}

// upsertDraftsSQL builds the batched insert-or-refresh of drafts of one
// period from column arrays (ids, customer ids, seqs, customers, currencies,
// cards, versions, lines, subtotals, adjustments, totals, cut-offs,
// finalize-after times, hashes, adjusted months, details, taxes, tax
// lines, tax notes, payment terms); a finalized or void invoice, or a
// draft whose content hash is unchanged, is left alone.
func upsertDraftsSQL(period pricing.Month, now time.Time, cols ...any) (string, []any) {
	args := append([]any{period.String(), now}, cols...)
	return `INSERT INTO invoices (id, customer_id, period, seq, status, customer, currency, card_id, card_version, lines,
		subtotal, adjustments, total, usage_cutoff, finalize_after, created_at, updated_at, content_hash, adjusts, details, tax, tax_lines, tax_note, payment_terms_days)
	SELECT t.id, t.customer_id, $1, t.seq, 'draft', t.customer::jsonb, t.currency, t.card_id, t.card_version, t.lines,
		t.subtotal::numeric, t.adjustments::numeric, t.total::numeric, t.cutoff, t.finalize_after, $2, $2, t.hash, string_to_array(t.adjusts, ','), t.details,
		t.tax::numeric, t.tax_lines, t.tax_note, t.terms
	FROM unnest($3::text[], $4::text[], $5::int[], $6::text[], $7::text[], $8::text[], $9::int[], $10::text[], $11::text[], $12::text[], $13::text[], $14::timestamptz[], $15::timestamptz[], $16::bytea[], $17::text[], $18::text[],
		$19::text[], $20::text[], $21::text[], $22::int[])
		AS t(id, customer_id, seq, customer, currency, card_id, card_version, lines, subtotal, adjustments, total, cutoff, finalize_after, hash, adjusts, details, tax, tax_lines, tax_note, terms)
	ON CONFLICT (id) DO UPDATE SET customer = EXCLUDED.customer, currency = EXCLUDED.currency, card_id = EXCLUDED.card_id,
		card_version = EXCLUDED.card_version, lines = EXCLUDED.lines, adjusts = EXCLUDED.adjusts, details = EXCLUDED.details, subtotal = EXCLUDED.subtotal, adjustments = EXCLUDED.adjustments,
		total = EXCLUDED.total, usage_cutoff = EXCLUDED.usage_cutoff, updated_at = EXCLUDED.updated_at, content_hash = EXCLUDED.content_hash,
		tax = EXCLUDED.tax, tax_lines = EXCLUDED.tax_lines, tax_note = EXCLUDED.tax_note, payment_terms_days = EXCLUDED.payment_terms_days
	WHERE invoices.status = 'draft' AND invoices.content_hash <> EXCLUDED.content_hash
	RETURNING (xmax = 0)`, args
}

func recordPeriodSQL(period pricing.Month, cutoff, now time.Time) (string, []any) {
	return `INSERT INTO billing_periods (period, run_cutoff, updated_at) VALUES ($1,$2,$3)
	ON CONFLICT (period) DO UPDATE SET run_cutoff = greatest(billing_periods.run_cutoff, EXCLUDED.run_cutoff), updated_at = EXCLUDED.updated_at`,
		[]any{period.String(), cutoff, now}
}

func deleteUnbilledSQL(period pricing.Month) (string, []any) {
	return `DELETE FROM unbilled_usage WHERE period = $1`, []any{period.String()}
}

// unbilledColumns are the columns COPY writes for the unbilled report.
var unbilledColumns = []string{"period", "customer_id", "reason", "detail", "country", "category", "quantity", "usage_cutoff"}

// The lifecycle.

func dueDraftsSQL(period pricing.Month, now time.Time) (string, []any) {
	return `SELECT id FROM invoices WHERE period = $1 AND status = 'draft' AND finalize_after <= $2 ORDER BY customer_id`, []any{period.String(), now}
}

func duePeriodsSQL(now time.Time) (string, []any) {
	return `SELECT DISTINCT period FROM invoices WHERE status = 'draft' AND finalize_after <= $1 ORDER BY period`, []any{now}
}

// The year's numbering counter: created at 0 when absent, then locked for
// the transaction that hands out its next number.
func ensureCounterSQL(year int) (string, []any) {
	return `INSERT INTO invoice_number_counters (year, last) VALUES ($1, 0) ON CONFLICT (year) DO NOTHING`, []any{year}
}

func lockCounterSQL(year int) (string, []any) {
	return `SELECT last FROM invoice_number_counters WHERE year = $1 FOR UPDATE`, []any{year}
}

func bumpCounterSQL(year int, last int64) (string, []any) {
	return `UPDATE invoice_number_counters SET last = $2 WHERE year = $1`, []any{year, last}
}

// finalizeSQL numbers a draft; its usage cut-off becomes the period's last
// run cut-off when that is later (that run found the draft unchanged).
func finalizeSQL(id, number string, year int, seq int64, now time.Time) (string, []any) {
	return `UPDATE invoices SET status = 'finalized', number = $2, number_year = $3, number_seq = $4,
		finalized_at = $5, updated_at = $5,
		usage_cutoff = greatest(usage_cutoff, (SELECT run_cutoff FROM billing_periods WHERE period = invoices.period))
	WHERE id = $1 AND status = 'draft' RETURNING ` + invoiceColumns, []any{id, number, year, seq, now}
}

func setDocumentSQL(id string, doc []byte) (string, []any) {
	return `UPDATE invoices SET document = $2 WHERE id = $1`, []any{id, string(doc)}
}

// unfrozenSQL finds finalized and void invoices without a frozen document.
func unfrozenSQL(limit int) (string, []any) {
	return `SELECT ` + invoiceColumns + ` FROM invoices WHERE status <> 'draft' AND document IS NULL ORDER BY id LIMIT $1`, []any{limit}
}

func freezeSQL(id string, doc []byte) (string, []any) {
	return `UPDATE invoices SET document = $2 WHERE id = $1 AND document IS NULL`, []any{id, string(doc)}
}

func nextSeqSQL(customerID string, period pricing.Month) (string, []any) {
	return `SELECT coalesce(max(seq), 0) + 1 FROM invoices WHERE customer_id = $1 AND period = $2`, []any{customerID, period.String()}
}

// voidSQL voids a finalized invoice; its frozen document, which shows it
// finalized, goes (the void one replaces it).
func voidSQL(id, reason string, now time.Time) (string, []any) {
	return `UPDATE invoices SET status = 'void', voided_at = $2, void_reason = $3, updated_at = $2, document = NULL
	WHERE id = $1 AND status = 'finalized'`, []any{id, now, reason}
}

func linkReplacementSQL(id, replacedBy string) (string, []any) {
	return `UPDATE invoices SET replaced_by = $2 WHERE id = $1 RETURNING ` + invoiceColumns, []any{id, replacedBy}
}

func insertReissueSQL(d *billing.Draft, now time.Time) (string, []any) {
	inv := d.Invoice
	return `INSERT INTO invoices (id, customer_id, period, seq, status, customer, currency, card_id, card_version, lines,
		subtotal, adjustments, total, usage_cutoff, finalize_after, created_at, updated_at, replaces, adjusts, content_hash, details,
		tax, tax_lines, tax_note, payment_terms_days)
	VALUES ($1,$2,$3,$4,'draft',$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$15,$16,$17,$18,$19,$20,$21,$22,$23)`,
		[]any{inv.ID, inv.CustomerID, inv.Period.String(), inv.Seq, string(d.Customer), inv.Currency, inv.CardID, inv.CardVersion, string(d.Lines),
			inv.Subtotal.String(), inv.Adjustments.String(), inv.Total.String(), inv.UsageCutoff, inv.FinalizeAfter, now, inv.Replaces, d.Adjusts, d.Hash, string(d.Details),
			inv.Tax.String(), string(d.TaxLines), inv.TaxNote, inv.PaymentTermsDays}
}

// Rendered documents of finalized and void invoices.

func documentSQL(id string, status billing.Status, f billing.Format) (string, []any) {
	return `SELECT body FROM invoice_documents WHERE invoice_id = $1 AND status = $2 AND format = $3`, []any{id, string(status), string(f)}
}

func putDocumentSQL(id string, status billing.Status, f billing.Format, body []byte, now time.Time) (string, []any) {
	return `INSERT INTO invoice_documents (invoice_id, status, format, body, created_at) VALUES ($1,$2,$3,$4,$5)
	ON CONFLICT (invoice_id, status, format) DO NOTHING`, []any{id, string(status), string(f), body, now}
}

// Locks.

// Advisory lock keys: "pstg" and 6 for the invoice run lock; "pstg" and 7,
// held shared by a run while it writes invoices and exclusively by the
// customers trigger that refuses to delete or rename an invoiced customer
// (PostgreSQL migration 0032): a delete waits for the runs in progress, and
// a run waits for a delete in progress, instead of either being skipped.
const lockClass, lockRuns, lockCustomers = 0x70737467, 6, 7

func lockRunsSQL(wait bool) (string, []any) {
	if wait {
		return `SELECT true FROM pg_advisory_lock($1, $2)`, []any{lockClass, lockRuns}
	}
	return `SELECT pg_try_advisory_lock($1, $2)`, []any{lockClass, lockRuns}
}

func lockCustomersSharedSQL() (string, []any) {
	return `SELECT pg_advisory_lock_shared($1, $2)`, []any{lockClass, lockCustomers}
}

func unlockRunsSQL(customers bool) (string, []any) {
	if customers {
		return `SELECT pg_advisory_unlock_shared($1, $3), pg_advisory_unlock($1, $2)`, []any{lockClass, lockRuns, lockCustomers}
	}
	return `SELECT pg_advisory_unlock($1, $2)`, []any{lockClass, lockRuns}
}
