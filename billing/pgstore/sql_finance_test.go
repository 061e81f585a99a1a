package pgstore

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"postage/billing"
	"postage/pricing"
)

func TestFinanceSQLText(t *testing.T) {
	now := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	today := billing.DateOf(now)
	due := today.AddDays(30)
	rate := billing.TaxRate{ID: "txr_x", Jurisdiction: "DE", Name: "VAT", Rate: decimal.RequireFromString("19"), EffectiveFrom: today}
	inv := billing.Invoice{ID: "in_x", Number: "PST-1", CustomerID: "a", Period: pricing.MustParseMonth("2026-10"), Currency: "USD",
		Total: billing.NewMoney(decimal.Zero, 2), IssueDate: &today, DueDate: &due}
	cn := billing.CreditNote{ID: "cn_x", Number: "CN-1", InvoiceID: "in_x", CustomerID: "a", Currency: "USD"}
	cur := &keyCursor{At: "2026-11-02", ID: "in_x"}
	tests := []struct {
		name  string
		q     string
		args  []any
		wants []string
	}{
		{"insertTaxRate", first(insertTaxRateSQL(rate, now)), second(insertTaxRateSQL(rate, now)), []string{"INSERT INTO tax_rates", "$6::date", "RETURNING"}},
		{"setTaxRateEnd", first(setTaxRateEndSQL("txr_x", nil, now)), second(setTaxRateEndSQL("txr_x", nil, now)), []string{"SET effective_to = $2::date"}},
		{"listTaxRates", first(listTaxRatesSQL("")), second(listTaxRatesSQL("")), []string{"($1 = '' OR jurisdiction = $1)", "ORDER BY jurisdiction, effective_from"}},
		{"insertReceivable", first(insertReceivableSQL(inv)), second(insertReceivableSQL(inv)), []string{"INSERT INTO receivables", "$9::date"}},
		{"getReceivable for update", first(getReceivableSQL("in_x", true)), second(getReceivableSQL("in_x", true)), []string{"WHERE invoice_id = $1 FOR UPDATE"}},
		{"listReceivables overdue", first(listReceivablesSQL(billing.ReceivableFilter{CustomerID: "a", Status: billing.PaymentOverdue}, today, cur, 11)),
			second(listReceivablesSQL(billing.ReceivableFilter{CustomerID: "a", Status: billing.PaymentOverdue}, today, cur, 11)),
			[]string{"customer_id = $1", "due_date < $2::date", "uncollectible_at IS NULL", "(issue_date, invoice_id) < ($3::date, $4)", "LIMIT $5"}},
		{"addPaid", first(addPaidSQL("in_x", "1.00", today)), second(addPaidSQL("in_x", "1.00", today)), []string{"paid = paid + $2::numeric", "coalesce(settled_on, $3::date)"}},
		{"addCredited", first(addCreditedSQL("in_x", "1.00", today)), second(addCreditedSQL("in_x", "1.00", today)), []string{"credited = credited + $2::numeric"}},
		{"deleteReceivable", first(deleteReceivableSQL("in_x")), second(deleteReceivableSQL("in_x")), []string{"paid = 0 AND credited = 0", "NOT EXISTS (SELECT 1 FROM credit_notes"}},
		{"markOverdue", first(markOverdueSQL(today, now, 500)), second(markOverdueSQL(today, now, 500)), []string{"due_date < $1::date", "overdue_reported_at IS NULL", "LIMIT $3", "FOR UPDATE SKIP LOCKED", "RETURNING"}},
		{"sendReminders", first(sendRemindersSQL(today, []int{-3, 7}, now, 500)), second(sendRemindersSQL(today, []int{-3, 7}, now, 500)),
			[]string{"balance > 0 AND r.uncollectible_at IS NULL", "r.due_date <= $1::date - $3::int", "max(x)", "NOT EXISTS (SELECT 1 FROM payment_reminders", "LIMIT $5", "FOR UPDATE OF r SKIP LOCKED", "ON CONFLICT DO NOTHING"}},
		{"aging", first(agingSQL("", today)), second(agingSQL("", today)), []string{"BETWEEN 1 AND 30", "BETWEEN 31 AND 60", "BETWEEN 61 AND 90", "> 90", "<= 0", "balance > 0 AND uncollectible_at IS NULL", "GROUP BY customer_id, currency"}},
		{"insertPayment", first(paymentsTable.insertSQL(billing.Payment{ID: "pay_x"})), second(paymentsTable.insertSQL(billing.Payment{ID: "pay_x"})), []string{"INSERT INTO payments", "RETURNING"}},
		{"listPayments", first(paymentsTable.listSQL(billing.PaymentFilter{InvoiceID: "in_x"}, &keyCursor{At: now.Format(time.RFC3339Nano), ID: "pay_x"}, 5)),
			second(paymentsTable.listSQL(billing.PaymentFilter{InvoiceID: "in_x"}, &keyCursor{At: now.Format(time.RFC3339Nano), ID: "pay_x"}, 5)),
			[]string{"invoice_id = $1", "(created_at, id) < ($2::timestamptz, $3)", "ORDER BY created_at DESC, id DESC LIMIT $4"}},
		{"addRefunded", first(addRefundedSQL("in_x", "1.00")), second(addRefundedSQL("in_x", "1.00")), []string{"refunded = refunded + $2::numeric", "RETURNING"}},
		{"insertRefund", first(refundsTable.insertSQL(billing.Payment{ID: "ref_x"})), second(refundsTable.insertSQL(billing.Payment{ID: "ref_x"})), []string{"INSERT INTO refunds", "refunded_on", "RETURNING"}},
		{"listRefunds", first(refundsTable.listSQL(billing.PaymentFilter{CustomerID: "a"}, &keyCursor{At: now.Format(time.RFC3339Nano), ID: "ref_x"}, 5)),
			second(refundsTable.listSQL(billing.PaymentFilter{CustomerID: "a"}, &keyCursor{At: now.Format(time.RFC3339Nano), ID: "ref_x"}, 5)),
			[]string{"FROM refunds", "customer_id = $1", "(created_at, id) < ($2::timestamptz, $3)", "ORDER BY created_at DESC, id DESC LIMIT $4"}},
		{"insertCreditNote", first(insertCreditNoteSQL(cn, 2026, 1, billing.CreditKey{})), second(insertCreditNoteSQL(cn, 2026, 1, billing.CreditKey{})), []string{"INSERT INTO credit_notes", "document"}},
		{"lockCreditCounter", first(lockCreditCounterSQL(2026)), second(lockCreditCounterSQL(2026)), []string{"credit_note_number_counters", "FOR UPDATE"}},
		{"listCreditNotes", first(listCreditNotesSQL(billing.CreditNoteFilter{CustomerID: "a"}, &keyCursor{At: "x", ID: "3"}, 5)),
			second(listCreditNotesSQL(billing.CreditNoteFilter{CustomerID: "a"}, &keyCursor{At: "x", ID: "3"}, 5)),
			[]string{"(c.issued_at, c.number_seq) < ($2::timestamptz, $3::bigint)", "ORDER BY c.issued_at DESC, c.number_seq DESC LIMIT $4"}},
		{"putCreditNoteDocument", first(putCreditNoteDocumentSQL("cn_x", billing.FormatPDF, true, nil, now)), second(putCreditNoteDocumentSQL("cn_x", billing.FormatPDF, true, nil, now)),
			[]string{"ON CONFLICT (credit_note_id, format, void) DO NOTHING"}},
		{"creditNotesOfInvoice", first(creditNotesOfInvoiceSQL("in_x")), second(creditNotesOfInvoiceSQL("in_x")), []string{"LEFT JOIN credit_note_voids v", "v.credit_note_id IS NULL"}},
		{"getCreditNote", first(getCreditNoteSQL("cn_x")), second(getCreditNoteSQL("cn_x")), []string{"coalesce(v.document, c.document)", "c.id = $1 OR c.number = $1"}},
		{"voidCreditNote", first(voidCreditNoteSQL("cn_x", "r", now, nil)), second(voidCreditNoteSQL("cn_x", "r", now, nil)), []string{"INSERT INTO credit_note_voids"}},
		{"uncredit", first(uncreditSQL("in_x", "1.00")), second(uncreditSQL("in_x", "1.00")), []string{"credited = credited - $2::numeric", "THEN settled_on END", "RETURNING"}},
	}
	for _, tt := range tests {
		for _, w := range tt.wants {
			if !strings.Contains(tt.q, w) {
				t.Errorf("%s: %q lacks %q", tt.name, tt.q, w)
			}
		}
		if err := placeholdersMatch(tt.q, tt.args); err != nil {
			t.Errorf("%s: %v", tt.name, err)
		}
	}
	// Listing by every status, with and without a customer and a cursor:
	// every argument is used (PostgreSQL refuses an unused parameter, as
	// it did for status=paid) and every placeholder has one.
	for _, st := range []billing.PaymentStatus{"", billing.PaymentOpen, billing.PaymentPartiallyPaid, billing.PaymentPaid, billing.PaymentOverdue, billing.PaymentUncollectible} {
		for _, f := range []billing.ReceivableFilter{{Status: st}, {Status: st, CustomerID: "a", Outstanding: true}} {
			for _, c := range []*keyCursor{nil, cur} {
				q, args := listReceivablesSQL(f, today, c, 11)
				if err := placeholdersMatch(q, args); err != nil {
					t.Errorf("listReceivables %+v cursor %v: %v", f, c != nil, err)
				}
			}
		}
	}
	// A zero total settles at once; a missing end is NULL.
	if _, args := insertReceivableSQL(inv); args[9] != "2026-11-02" {
		t.Errorf("settled_on of a zero invoice: %v", args[9])
	}
	if _, args := setTaxRateEndSQL("x", nil, now); args[1] != nil {
		t.Errorf("open end stored as %v", args[1])
	}
	// Every payment status has its conditions.
	for _, s := range []billing.PaymentStatus{billing.PaymentOpen, billing.PaymentPartiallyPaid, billing.PaymentPaid, billing.PaymentOverdue, billing.PaymentUncollectible} {
		if len(receivableStatusConds(s, func() string { return "$1" })) == 0 {
			t.Errorf("status %s has no conditions", s)
		}
	}
}

// placeholdersMatch checks that q uses exactly $1 … $len(args).
func placeholdersMatch(q string, args []any) error {
	used := map[int]bool{}
	for _, m := range regexp.MustCompile(`\$(\d+)`).FindAllStringSubmatch(q, -1) {
		n, _ := strconv.Atoi(m[1])
		used[n] = true
	}
	for i := 1; i <= len(args); i++ {
		if !used[i] {
			return fmt.Errorf("argument $%d (%v) is not used in %s", i, args[i-1], q)
		}
	}
	if len(used) != len(args) {
		return fmt.Errorf("%d placeholders for %d arguments in %s", len(used), len(args), q)
	}
	return nil
}
