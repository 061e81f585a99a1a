package pgstore

import (
	"strings"
	"testing"
	"time"

	"postage"
	"postage/billing"
	"postage/pricing"
)

func first(q string, _ []any) string { return q }
func second(_ string, a []any) []any { return a }

func TestSQLText(t *testing.T) {
	oct, jul := pricing.MustParseMonth("2026-10"), pricing.MustParseMonth("2026-07")
	now := time.Date(2026, 11, 1, 2, 0, 0, 0, time.UTC)
	run := &billing.Run{ID: 7, Period: "2026-10"}
	draft := billing.EncodeDraft(&billing.Invoice{ID: "in_x", Period: oct, Lines: []billing.Line{}})
	tests := []struct {
		name  string
		q     string
		args  []any
		wants []string
		nargs int
	}{
		{"customersForPhoneNumbers", first(customersForPhoneNumbersSQL([]string{"1", "2"})), second(customersForPhoneNumbersSQL([]string{"1", "2"})), []string{"phone_number_id = ANY($1)"}, 1},
		{"getInvoice", first(getInvoiceSQL("in_x", false)), second(getInvoiceSQL("in_x", false)), []string{"WHERE id = $1", "document"}, 1},
		{"getInvoice for update", first(getInvoiceSQL("in_x", true)), nil, []string{"FOR UPDATE"}, 0},
		{"periodInvoices", first(periodInvoicesSQL(oct)), second(periodInvoicesSQL(oct)), []string{"period = $1", "ORDER BY customer_id, seq"}, 1},
		{"runs", first(runsSQL(oct, 5)), second(runsSQL(oct, 5)), []string{"($1 = '' OR period = $1)", "ORDER BY id DESC LIMIT $2"}, 2},
		{"insertRun", first(insertRunSQL(run)), second(insertRunSQL(run)), []string{"INSERT INTO invoice_runs", "RETURNING id"}, 4},
		{"failInterrupted", first(failInterruptedSQL(7, now)), second(failInterruptedSQL(7, now)), []string{"status = 'failed'", "WHERE status = 'running' AND id <> $1"}, 2},
		{"finishRun", first(finishRunSQL(*run)), second(finishRunSQL(*run)), []string{"UPDATE invoice_runs", "WHERE id=$1"}, 12},
		{"unbilled", first(unbilledSQL(oct)), second(unbilledSQL(oct)), []string{"FROM unbilled_usage WHERE period = $1"}, 1},
		{"liveInvoices", first(liveInvoicesSQL(oct)), second(liveInvoicesSQL(oct)), []string{"status <> 'void'", "content_hash"}, 1},
		{"adjustedLater", first(adjustedLaterSQL(oct, oct.Next())), second(adjustedLaterSQL(oct, oct.Next())), []string{"period > $1 AND period <= $2", "adjusts @> ARRAY[$1::text]"}, 2},
		{"billedTo", first(billedToSQL(jul, oct)), second(billedToSQL(jul, oct)), []string{"status = 'finalized'", "unnest(i.adjusts)", "max(usage_cutoff)"}, 2},
		{"openMonths", first(openMonthsSQL(jul, oct)), second(openMonthsSQL(jul, oct)), []string{"status = 'draft'"}, 2},
		{"runCutoffs", first(runCutoffsSQL(jul, oct)), second(runCutoffsSQL(jul, oct)), []string{"FROM billing_periods"}, 2},
		{"closedMonths", first(closedMonthsSQL("a", jul, oct)), second(closedMonthsSQL("a", jul, oct)), []string{"NOT EXISTS", "status = 'draft'"}, 3},
		{"billedLines", first(billedLinesSQL("a", jul, []string{"in_x"})), second(billedLinesSQL("a", jul, []string{"in_x"})), []string{"id <> ALL($2)", "status <> 'void'"}, 3},
		{"recordPeriod", first(recordPeriodSQL(oct, now, now)), second(recordPeriodSQL(oct, now, now)), []string{"greatest(billing_periods.run_cutoff, EXCLUDED.run_cutoff)"}, 3},
		{"deleteUnbilled", first(deleteUnbilledSQL(oct)), second(deleteUnbilledSQL(oct)), []string{"DELETE FROM unbilled_usage"}, 1},
		{"dueDrafts", first(dueDraftsSQL(oct, now)), second(dueDraftsSQL(oct, now)), []string{"status = 'draft' AND finalize_after <= $2"}, 2},
		{"duePeriods", first(duePeriodsSQL(now)), second(duePeriodsSQL(now)), []string{"DISTINCT period", "finalize_after <= $1"}, 1},
		{"ensureCounter", first(ensureCounterSQL(2026)), second(ensureCounterSQL(2026)), []string{"ON CONFLICT (year) DO NOTHING"}, 1},
		{"lockCounter", first(lockCounterSQL(2026)), second(lockCounterSQL(2026)), []string{"FOR UPDATE"}, 1},
		{"bumpCounter", first(bumpCounterSQL(2026, 3)), second(bumpCounterSQL(2026, 3)), []string{"SET last = $2"}, 2},
		{"finalize", first(finalizeSQL("in_x", "PST-1", 2026, 1, now)), second(finalizeSQL("in_x", "PST-1", 2026, 1, now)),
			[]string{"status = 'finalized'", "WHERE id = $1 AND status = 'draft'", "greatest(usage_cutoff"}, 5},
		{"setDocument", first(setDocumentSQL("in_x", []byte("{}"))), second(setDocumentSQL("in_x", []byte("{}"))), []string{"SET document = $2"}, 2},
		{"unfrozen", first(unfrozenSQL(5)), second(unfrozenSQL(5)), []string{"status <> 'draft' AND document IS NULL", "LIMIT $1"}, 1},
		{"freeze", first(freezeSQL("in_x", nil)), second(freezeSQL("in_x", nil)), []string{"WHERE id = $1 AND document IS NULL"}, 2},
		{"nextSeq", first(nextSeqSQL("a", oct)), second(nextSeqSQL("a", oct)), []string{"coalesce(max(seq), 0) + 1"}, 2},
		{"void", first(voidSQL("in_x", "r", now)), second(voidSQL("in_x", "r", now)), []string{"status = 'void'", "document = NULL", "AND status = 'finalized'"}, 3},
		{"linkReplacement", first(linkReplacementSQL("in_x", "in_y")), second(linkReplacementSQL("in_x", "in_y")), []string{"SET replaced_by = $2", "RETURNING"}, 2},
		{"insertReissue", first(insertReissueSQL(draft, now)), second(insertReissueSQL(draft, now)), []string{"'draft'", "replaces", "content_hash", "details", "tax_lines", "payment_terms_days"}, 23},
		{"document", first(documentSQL("in_x", billing.StatusFinalized, billing.FormatPDF)), second(documentSQL("in_x", billing.StatusFinalized, billing.FormatPDF)),
			[]string{"FROM invoice_documents", "format = $3"}, 3},
		{"putDocument", first(putDocumentSQL("in_x", billing.StatusFinalized, billing.FormatPDF, nil, now)), second(putDocumentSQL("in_x", billing.StatusFinalized, billing.FormatPDF, nil, now)),
			[]string{"ON CONFLICT (invoice_id, status, format) DO NOTHING"}, 5},
		{"lockRuns wait", first(lockRunsSQL(true)), second(lockRunsSQL(true)), []string{"pg_advisory_lock($1, $2)"}, 2},
		{"lockRuns try", first(lockRunsSQL(false)), second(lockRunsSQL(false)), []string{"pg_try_advisory_lock($1, $2)"}, 2},
		{"lockCustomers", first(lockCustomersSharedSQL()), second(lockCustomersSharedSQL()), []string{"pg_advisory_lock_shared"}, 2},
		{"unlock", first(unlockRunsSQL(true)), second(unlockRunsSQL(true)), []string{"pg_advisory_unlock_shared($1, $3)", "pg_advisory_unlock($1, $2)"}, 3},
		{"insertCustomer", first(insertCustomerSQL(billing.Customer{ID: "a"}, now)), second(insertCustomerSQL(billing.Customer{ID: "a"}, now)), []string{"INSERT INTO customers", "tax_status", "address", "payment_terms_days", "RETURNING"}, 12},
		{"updateCustomer", first(updateCustomerSQL(billing.Customer{ID: "a"}, now)), second(updateCustomerSQL(billing.Customer{ID: "a"}, now)), []string{"UPDATE customers", "tax_id=$6", "payment_terms_days=$11", "WHERE id=$1"}, 12},
		{"listCustomers", first(listCustomersSQL("a", 10, oct)), second(listCustomersSQL("a", 10, oct)), []string{"c.id > $2 ORDER BY c.id LIMIT $3", "effective_from <= $1"}, 3},
		{"getCustomer", first(getCustomerSQL("a", oct)), second(getCustomerSQL("a", oct)), []string{"LEFT JOIN (SELECT DISTINCT ON (customer_id)", "WHERE c.id = $2"}, 2},
		{"lockCustomers rows", first(lockCustomersSQL([]string{"a", "b"})), second(lockCustomersSQL([]string{"a", "b"})), []string{"ORDER BY id FOR UPDATE"}, 1},
		{"memberFrom", first(memberFromSQL("a", oct)), second(memberFromSQL("a", oct)), []string{"parent_id IS NOT NULL", "p.effective_from > $2", "q.effective_from <= $2"}, 2},
		{"parentFrom", first(parentFromSQL("a", oct)), second(parentFromSQL("a", oct)), []string{"p.parent_id = $1", "q.customer_id = p.customer_id"}, 2},
		{"setPortfolio", first(setPortfolioSQL(billing.PortfolioSetting{CustomerID: "a", EffectiveFrom: oct})), second(setPortfolioSQL(billing.PortfolioSetting{CustomerID: "a", EffectiveFrom: oct})), []string{"ON CONFLICT (customer_id, effective_from) DO UPDATE"}, 4},
		{"portfoliosIn", first(portfoliosInSQL(oct)), second(portfoliosInSQL(oct)), []string{"DISTINCT ON (customer_id)", "effective_from <= $1", "ORDER BY customer_id, effective_from DESC"}, 1},
		{"addPhone", first(addPhoneNumberSQL("a", "1", now)), second(addPhoneNumberSQL("a", "1", now)), []string{"ON CONFLICT (phone_number_id)", "RETURNING customer_id"}, 3},
	}
	for _, tt := range tests {
		for _, w := range tt.wants {
			if !strings.Contains(tt.q, w) {
				t.Errorf("%s: %q lacks %q", tt.name, tt.q, w)
			}
		}
		if tt.args != nil && len(tt.args) != tt.nargs {
			t.Errorf("%s: %d args, want %d", tt.name, len(tt.args), tt.nargs)
		}
	}
	// A customer's empty country is NULL, not "".
	if _, args := insertCustomerSQL(billing.Customer{ID: "a"}, now); args[3].(*string) != nil {
		t.Errorf("empty country stored as %v", args[3])
	}
	if _, args := lockRunsSQL(true); args[0] != lockClass || args[1] != lockRuns {
		t.Errorf("run lock keys %v", args)
	}
}

func TestListInvoicesSQL(t *testing.T) {
	q, args := listInvoicesSQL(billing.InvoiceFilter{Period: pricing.MustParseMonth("2026-10"), Status: billing.StatusDraft, CustomerID: "a", NotDraft: true},
		&invoiceCursor{Period: "2026-10", Customer: "a", Seq: 1}, 101)
	for _, want := range []string{"period = $1", "status = $2", "customer_id = $3", "status <> 'draft'",
		"(period < $4 OR (period = $4 AND (customer_id, seq) > ($5, $6)))", "ORDER BY period DESC, customer_id, seq LIMIT $7"} {
		if !strings.Contains(q, want) {
			t.Errorf("query lacks %q:\n%s", want, q)
		}
	}
	if len(args) != 7 || args[6] != 101 {
		t.Errorf("args %v", args)
	}
	if q, args := listInvoicesSQL(billing.InvoiceFilter{Number: "PST-2026-000099"}, nil, 1); !strings.Contains(q, "WHERE number = $1") || args[0] != "PST-2026-000099" {
		t.Errorf("by number: %s %v", q, args)
	}
	q, args = listInvoicesSQL(billing.InvoiceFilter{}, nil, 10)
	if strings.Contains(q, "WHERE") || len(args) != 1 {
		t.Errorf("unfiltered query %s %v", q, args)
	}
	c := invoiceCursor{Period: "2026-10", Customer: "x'y", Seq: 3}
	back, err := decodeCursor(c.encode())
	if err != nil || *back != c {
		t.Errorf("cursor round trip %+v %v", back, err)
	}
	if _, err := decodeCursor("!!"); postage.ErrorCode(err) != postage.EINVALID {
		t.Errorf("bad cursor: %v", err)
	}
}

func TestUpsertDraftsSQL(t *testing.T) {
	q, args := upsertDraftsSQL(pricing.MustParseMonth("2026-10"), time.Unix(0, 0), make([]any, 20)...)
	for _, want := range []string{"FROM unnest($3::text[]", "$16::bytea[]", "$22::int[]", "tax_lines = EXCLUDED.tax_lines", "details = EXCLUDED.details", "ON CONFLICT (id) DO UPDATE", "WHERE invoices.status = 'draft' AND invoices.content_hash <> EXCLUDED.content_hash", "RETURNING (xmax = 0)"} {
		if !strings.Contains(q, want) {
			t.Errorf("upsert lacks %q", want)
		}
	}
	if len(args) != 22 || args[0] != "2026-10" {
		t.Errorf("args %v", args[:2])
	}
	if len(draftColumns) != 24 || len(unbilledColumns) != 8 {
		t.Errorf("COPY columns %d, %d", len(draftColumns), len(unbilledColumns))
	}
}
