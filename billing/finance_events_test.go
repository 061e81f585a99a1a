package billing_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"postage/billing"
	"postage/notify"
)

// brokenOutbox fails every event, as an outbox whose table cannot be
// written would.
type brokenOutbox struct{}

func (brokenOutbox) Emit(context.Context, notify.Querier, notify.Event) error {
	return errors.New("outbox unavailable")
}

// payloads returns the stored bodies of the events of type t, oldest
// first.
func (f *finance) payloads(t notify.EventType) []notify.Payload {
	f.t.Helper()
	rows, err := f.env.PG.Query(context.Background(), `SELECT payload FROM webhook_events WHERE type = $1 ORDER BY created_at, id`, string(t))
	if err != nil {
		f.t.Fatal(err)
	}
	defer rows.Close()
	var out []notify.Payload
	for rows.Next() {
		var body string
		if err := rows.Scan(&body); err != nil {
			f.t.Fatal(err)
		}
		var p notify.Payload
		if err := json.Unmarshal([]byte(body), &p); err != nil {
			f.t.Fatal(err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		f.t.Fatal(err)
	}
	return out
}

// object returns the payload's data.object as a map.
func object(t *testing.T, p notify.Payload) map[string]any {
	t.Helper()
	o, ok := p.Data.Object.(map[string]any)
	if !ok {
		t.Fatalf("%s object %T", p.Type, p.Data.Object)
	}
	return o
}

// TestFinanceEventsCommitWithTheirChange: invoice.paid, credit_note.created
// and invoice.overdue are written in the transaction of the payment, the
// credit note and the overdue pass. When the event cannot be written the
// change is not made either (and no credit note number is taken); when
// it is made, its event is there, with the object the API shows.
func TestFinanceEventsCommitWithTheirChange(t *testing.T) {
	f := newFinance(t, billing.Customer{ID: "a", Name: "A", Currency: "USD", Country: "US"})
	ctx := context.Background()
	id := f.finalized(map[string]int64{"a": 1000})["a"] // 10.00, due 2026-12-02
	outbox := f.recv.Notify
	f.recv.Notify = brokenOutbox{}

	// A partial payment announces nothing: it needs no outbox.
	if _, _, _, err := f.accounts.RecordPayment(ctx, id, pay("4.00", "2026-11-02")); err != nil {
		t.Fatalf("partial payment: %v", err)
	}
	// The payment that settles it, a credit note and the overdue pass
	// fail with their event, and leave nothing behind.
	settle := pay("6.00", "2026-11-02")
	settle.IdempotencyKey = "bank-1"
	if _, _, _, err := f.accounts.RecordPayment(ctx, id, settle); err == nil {
		t.Fatal("settling payment recorded without its invoice.paid")
	}
	if _, _, err := f.accounts.IssueCreditNote(ctx, id, billing.CreditNoteRequest{Reason: "r", Lines: []billing.CreditItem{{Amount: "1.00"}}}); err == nil {
		t.Fatal("credit note issued without its credit_note.created")
	}
	f.clock.Set(time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC))
	if _, err := f.accounts.MarkOverdue(ctx); err == nil {
		t.Fatal("overdue pass passed without its invoice.overdue")
	}
	r, err := f.accounts.Receivable(ctx, id)
	if err != nil || r.Balance.String() != "6.00" || !r.Credited.IsZero() || f.count("payments") != 1 || f.count("credit_notes") != 0 ||
		f.count("receivables WHERE overdue_reported_at IS NOT NULL") != 0 || f.count("webhook_events WHERE type <> 'invoice.finalized'") != 0 {
		t.Fatalf("after failed events: %+v %v, %d payments, %d credit notes", r, err, f.count("payments"), f.count("credit_notes"))
	}

	// With the outbox back, each change comes with its event.
	f.recv.Notify = outbox
	if n, err := f.accounts.MarkOverdue(ctx); err != nil || n != 1 {
		t.Fatalf("overdue pass: %d %v", n, err)
	}
	cn, _, err := f.accounts.IssueCreditNote(ctx, id, billing.CreditNoteRequest{Reason: "goodwill", Lines: []billing.CreditItem{{Amount: "1.00"}}})
	if err != nil || cn.Number != "CN-2026-000001" {
		t.Fatalf("credit note %+v %v", cn, err)
	}
	settle.Amount = "5.00"
	settle.Date = "2026-12-03"
	if _, r, _, err = f.accounts.RecordPayment(ctx, id, settle); err != nil || r.Status != billing.PaymentPaid {
		t.Fatalf("settling payment: %+v %v", r, err)
	}

	over := f.payloads(notify.InvoiceOverdue)
	if len(over) != 1 || over[0].CustomerID != "a" {
		t.Fatalf("invoice.overdue %+v", over)
	}
	if o := object(t, over[0]); o["invoice_id"] != id || o["status"] != string(billing.PaymentOverdue) || o["balance"] != "6.00" || o["days_past_due"] != float64(1) {
		t.Errorf("invoice.overdue object %v", o)
	}
	created := f.payloads(notify.CreditNoteCreated)
	if len(created) != 1 {
		t.Fatalf("credit_note.created %+v", created)
	}
	// The credit note as the API shows it: its frozen document.
	stored, err := f.accounts.CreditNote(ctx, cn.ID)
	if err != nil {
		t.Fatal(err)
	}
	var want any
	doc, _ := json.Marshal(stored)
	_ = json.Unmarshal(doc, &want)
	if o := object(t, created[0]); o["id"] != cn.ID || o["number"] != "CN-2026-000001" || o["invoice_id"] != id || o["total"] != "1.00" || !jsonEqual(o, want) {
		t.Errorf("credit_note.created object %v\nwant %s", o, doc)
	}
	paid := f.payloads(notify.InvoicePaid)
	if len(paid) != 1 {
		t.Fatalf("invoice.paid %+v", paid)
	}
	if o := object(t, paid[0]); o["invoice_id"] != id || o["status"] != string(billing.PaymentPaid) || o["balance"] != "0.00" ||
		o["paid"] != "9.00" || o["credited"] != "1.00" || o["settled_on"] != "2026-12-03" {
		t.Errorf("invoice.paid object %v", o)
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// TestOverdueReportedOncePerInvoice: the overdue pass announces each
// invoice that passed its due date with a balance once, however many
// passes run (two replicas at once included), and never a settled or
// written-off one; should an invoice's mark be lost, the outbox's key
// still keeps its event single.
func TestOverdueReportedOncePerInvoice(t *testing.T) {
	f := newFinance(t,
		billing.Customer{ID: "a", Name: "A", Currency: "USD", Country: "US"},
		billing.Customer{ID: "b", Name: "B", Currency: "USD", Country: "US"},
		billing.Customer{ID: "c", Name: "C", Currency: "USD", Country: "US"},
		billing.Customer{ID: "d", Name: "D", Currency: "USD", Country: "US"})
	ctx := context.Background()
	ids := f.finalized(map[string]int64{"a": 1000, "b": 1000, "c": 1000, "d": 1000}) // due 2026-12-02
	if _, _, _, err := f.accounts.RecordPayment(ctx, ids["b"], pay("10.00", "2026-11-02")); err != nil {
		t.Fatal(err)
	}
	if _, err := f.accounts.MarkUncollectible(ctx, ids["d"], "insolvent"); err != nil {
		t.Fatal(err)
	}
	f.clock.Set(time.Date(2026, 12, 2, 23, 0, 0, 0, time.UTC)) // the due date: not yet overdue
	if n, err := f.accounts.MarkOverdue(ctx); err != nil || n != 0 {
		t.Fatalf("on the due date: %d %v", n, err)
	}
	f.clock.Set(time.Date(2026, 12, 3, 1, 0, 0, 0, time.UTC))
	f.recv.OverdueBatch = 1 // each pass in transactions of one invoice
	const passes = 4
	var wg sync.WaitGroup
	counts := make([]int, passes)
	errs := make([]error, passes)
	start := make(chan struct{})
	for i := range passes {
		wg.Go(func() {
			<-start
			counts[i], errs[i] = f.accounts.MarkOverdue(ctx)
		})
	}
	close(start)
	wg.Wait()
	total := 0
	for i := range passes {
		if errs[i] != nil {
			t.Fatalf("pass %d: %v", i, errs[i])
		}
		total += counts[i]
	}
	if total != 2 {
		t.Fatalf("%d passes at once reported %v invoices, want 2 in all", passes, counts)
	}
	got := map[string]int{}
	for _, p := range f.payloads(notify.InvoiceOverdue) {
		got[object(t, p)["invoice_id"].(string)]++
	}
	if len(got) != 2 || got[ids["a"]] != 1 || got[ids["c"]] != 1 {
		t.Fatalf("invoice.overdue per invoice %v (a %s, c %s)", got, ids["a"], ids["c"])
	}
	// The mark lost (say, a restore): the pass reports it again, the
	// outbox keeps one event per invoice.
	if _, err := f.env.PG.Exec(ctx, `UPDATE receivables SET overdue_reported_at = NULL WHERE invoice_id = $1`, ids["a"]); err != nil {
		t.Fatal(err)
	}
	if n, err := f.accounts.MarkOverdue(ctx); err != nil || n != 1 {
		t.Fatalf("after the mark was lost: %d %v", n, err)
	}
	if n := len(f.payloads(notify.InvoiceOverdue)); n != 2 {
		t.Fatalf("%d invoice.overdue events, want 2", n)
	}
	// Each status lists its invoices (the statuses that do not depend on
	// the day as well: status=paid once failed in PostgreSQL).
	for st, want := range map[billing.PaymentStatus][]string{
		billing.PaymentPaid: {ids["b"]}, billing.PaymentUncollectible: {ids["d"]}, billing.PaymentOverdue: {ids["a"], ids["c"]},
		billing.PaymentOpen: nil, billing.PaymentPartiallyPaid: nil,
	} {
		list, _, err := f.accounts.Receivables(ctx, billing.ReceivableFilter{Status: st}, billing.Page{})
		if err != nil {
			t.Fatalf("list %s: %v", st, err)
		}
		var got []string
		for _, r := range list {
			if r.Status != st {
				t.Errorf("listed as %s: %+v", st, r)
			}
			got = append(got, r.InvoiceID)
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("status %s lists %v, want %v", st, got, want)
		}
	}
}

// row returns a table's row of an invoice as JSON (every column).
func (f *finance) row(table, col, id string) string {
	f.t.Helper()
	var s string
	q := `SELECT coalesce(jsonb_agg(to_jsonb(t) ORDER BY to_jsonb(t)::text), '[]')::text FROM ` + table + ` t WHERE ` + col + ` = $1`
	if err := f.env.PG.QueryRow(context.Background(), q, id).Scan(&s); err != nil {
		f.t.Fatal(err)
	}
	return s
}

// TestPaymentsAndCreditNotesNeverTouchTheInvoice: payments, credit notes
// (a line's quantity, an amount, the rest), the overdue pass and a
// write-off change what an invoice is owed, never the invoice: its row,
// its stored documents and its JSON, CSV and PDF stay byte for byte what
// they were, whether they were first drawn before (a) or only after (b).
func TestPaymentsAndCreditNotesNeverTouchTheInvoice(t *testing.T) {
	f := newFinance(t,
		billing.Customer{ID: "a", Name: "Berlin GmbH", Currency: "USD", Country: "DE", TaxID: "DE1"},
		billing.Customer{ID: "b", Name: "Köln AG", Currency: "USD", Country: "DE", TaxID: "DE2"})
	ctx := context.Background()
	f.rate("DE", "VAT", "19", "2020-01-01", "")
	ids := f.finalized(map[string]int64{"a": 1000, "b": 1000})
	a, b := ids["a"], ids["b"]
	frozenB, err := f.store.Get(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	docsA, rowA := f.docs(a), f.row("invoices", "id", a)
	storedA := f.row("invoice_documents", "invoice_id", a)
	rowB := f.row("invoices", "id", b)

	for _, id := range []string{a, b} {
		if _, _, _, err := f.accounts.RecordPayment(ctx, id, pay("1.00", "2026-11-02")); err != nil {
			t.Fatal(err)
		}
		if _, _, err := f.accounts.IssueCreditNote(ctx, id, billing.CreditNoteRequest{Reason: "part of a line", Lines: []billing.CreditItem{{Line: 1, Quantity: 100}}}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := f.accounts.IssueCreditNote(ctx, id, billing.CreditNoteRequest{Reason: "goodwill", Lines: []billing.CreditItem{{Amount: "0.50"}}}); err != nil {
			t.Fatal(err)
		}
	}
	f.clock.Set(time.Date(2027, 1, 15, 0, 0, 0, 0, time.UTC))
	if n, err := f.accounts.MarkOverdue(ctx); err != nil || n != 2 {
		t.Fatalf("overdue pass: %d %v", n, err)
	}
	r, err := f.accounts.Receivable(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := f.accounts.RecordPayment(ctx, a, pay(r.Balance.String(), "2027-01-15")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.accounts.IssueCreditNote(ctx, a, billing.CreditNoteRequest{Reason: "after payment", Lines: []billing.CreditItem{{Amount: "0.10"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.accounts.MarkUncollectible(ctx, b, "insolvent"); err != nil {
		t.Fatal(err)
	}
	if r, _ := f.accounts.Receivable(ctx, a); r.Status != billing.PaymentPaid || !r.Balance.IsNegative() {
		t.Fatalf("a after payments and credit notes: %+v", r)
	}

	// a: drawn before, the same after.
	after := f.docs(a)
	if !bytes.Equal(after.json, docsA.json) || !bytes.Equal(after.csv, docsA.csv) || !bytes.Equal(after.pdf, docsA.pdf) {
		t.Errorf("a's documents changed:\nbefore %s\n after %s", docsA.json, after.json)
	}
	if got := f.row("invoices", "id", a); got != rowA {
		t.Errorf("a's row changed:\nbefore %s\n after %s", rowA, got)
	}
	if got := f.row("invoice_documents", "invoice_id", a); got != storedA {
		t.Errorf("a's stored documents changed")
	}
	// b: first drawn now, exactly what its frozen document draws.
	if got := f.row("invoices", "id", b); got != rowB {
		t.Errorf("b's row changed:\nbefore %s\n after %s", rowB, got)
	}
	docsB := f.docs(b)
	wantJSON, _ := json.Marshal(frozenB)
	wantCSV, err := testDocs.RenderInvoice(ctx, frozenB, billing.FormatCSV)
	if err != nil {
		t.Fatal(err)
	}
	wantPDF, err := testDocs.RenderInvoice(ctx, frozenB, billing.FormatPDF)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(docsB.json, wantJSON) || !bytes.Equal(docsB.csv, wantCSV) || docsB.pdfText != pdfText(t, wantPDF) {
		t.Errorf("b's documents drawn after payments and credit notes differ from its frozen invoice:\n%s\n%s", docsB.json, docsB.pdfText)
	}
	for _, s := range []string{"CN-", "goodwill", "insolvent", "uncollectible", "Paid", "paid"} {
		if strings.Contains(docsB.pdfText, s) || strings.Contains(string(docsB.csv), s) || strings.Contains(string(docsB.json), s) {
			t.Errorf("b's documents mention %q", s)
		}
	}
}
