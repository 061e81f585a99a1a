package billing_test

import (
	"context"
	"strings"
	"testing"

	"postage"
	"postage/billing"
	"postage/notify"
)

// TestVoidCreditNote: a void credit note keeps its number, reads and
// prints as VOID, no longer reduces its invoice, frees what it credited,
// and is announced once; voiding one whose money was refunded is refused.
func TestVoidCreditNote(t *testing.T) {
	f := newFinance(t,
		billing.Customer{ID: "a", Name: "A", Currency: "USD", Country: "US"},
		billing.Customer{ID: "b", Name: "B", Currency: "USD", Country: "US"})
	ctx := context.Background()
	ids := f.finalized(map[string]int64{"a": 1000, "b": 1000}) // 10.00 each
	a, b := ids["a"], ids["b"]
	credit := func(inv, amount string) billing.CreditNote {
		t.Helper()
		cn, _, err := f.accounts.IssueCreditNote(ctx, inv, billing.CreditNoteRequest{Reason: "r", Lines: []billing.CreditItem{{Amount: amount}}})
		if err != nil {
			t.Fatal(err)
		}
		return cn
	}
	// a: paid, credited 3.00, 2.00 of it refunded.
	if _, _, _, err := f.accounts.RecordPayment(ctx, a, pay("10.00", "2026-11-02")); err != nil {
		t.Fatal(err)
	}
	cnA := credit(a, "3.00")
	if _, _, _, err := f.accounts.RecordRefund(ctx, a, refund("2.00", "2026-11-02")); err != nil {
		t.Fatal(err)
	}
	// b: unpaid, credited 4.00 (CN-2026-000002), all of it.
	cnB := credit(b, "4.00")
	pdfIssued, err := f.accounts.CreditNoteDocument(ctx, cnB, billing.FormatPDF)
	if err != nil {
		t.Fatal(err)
	}
	events := len(f.outbox())

	// Refused, and nothing changes.
	before, _ := f.accounts.Receivable(ctx, a)
	for _, tt := range []struct {
		name, id, reason, code string
	}{
		{"refunds above what would be owed", cnA.ID, "issued in error", postage.EOVERREFUND},
		{"no reason", cnB.ID, " ", postage.EINVALID},
		{"no such credit note", "CN-2026-000099", "x", postage.ENOTFOUND},
	} {
		if _, _, err := f.accounts.VoidCreditNote(ctx, tt.id, tt.reason); postage.ErrorCode(err) != tt.code {
			t.Errorf("%s: %v, want %s", tt.name, err, tt.code)
		}
	}
	if after, _ := f.accounts.Receivable(ctx, a); after.Credited.String() != before.Credited.String() || after.Balance.String() != before.Balance.String() || f.count("credit_note_voids") != 0 || len(f.outbox()) != events {
		t.Fatalf("refused voids changed something: %+v", after)
	}

	// Voided by number: the invoice owes the credit note's total again.
	v, r, err := f.accounts.VoidCreditNote(ctx, cnB.Number, "credited the wrong invoice")
	if err != nil || !v.Void() || v.VoidReason != "credited the wrong invoice" || v.Number != cnB.Number || v.Total.String() != cnB.Total.String() {
		t.Fatalf("void %+v %v", v, err)
	}
	if r.Credited.String() != "0.00" || r.Balance.String() != "10.00" || r.Status != billing.PaymentOpen {
		t.Fatalf("receivable after the void %+v", r)
	}
	if _, _, err := f.accounts.VoidCreditNote(ctx, cnB.ID, "again"); postage.ErrorCode(err) != postage.ECONFLICT {
		t.Fatalf("second void: %v", err)
	}
	// It reads as void, its number kept; its documents say VOID; the
	// issued PDF stays stored as it was.
	got, err := f.accounts.CreditNote(ctx, cnB.ID)
	if err != nil || !got.Void() || !strings.Contains(string(got.Document()), `"void_reason":"credited the wrong invoice"`) || got.Number != "CN-2026-000002" {
		t.Fatalf("read back %s %v", got.Document(), err)
	}
	pdf, err := f.accounts.CreditNoteDocument(ctx, got, billing.FormatPDF)
	if err != nil {
		t.Fatal(err)
	}
	if text := pdfText(t, pdf); !strings.Contains(text, "VOID CREDIT NOTE") || !strings.Contains(text, "credited the wrong invoice") {
		t.Errorf("void PDF:\n%s", text)
	}
	if again, _ := f.accounts.CreditNoteDocument(ctx, cnB, billing.FormatPDF); string(again) != string(pdfIssued) {
		t.Error("the issued PDF changed")
	}
	csv, err := f.accounts.CreditNoteDocument(ctx, got, billing.FormatCSV)
	if err != nil || !strings.Contains(string(csv), ",credited the wrong invoice\n") {
		t.Fatalf("void CSV %v:\n%s", err, csv)
	}
	// What it credited can be credited again; the next number follows on.
	if cn := credit(b, "10.00"); cn.Number != "CN-2026-000003" {
		t.Fatalf("next credit note %s", cn.Number)
	}
	if n := f.count("credit_notes"); n != 3 {
		t.Fatalf("%d credit notes", n)
	}
	list, _, err := f.accounts.CreditNotes(ctx, billing.CreditNoteFilter{InvoiceID: b}, billing.Page{})
	if err != nil || len(list) != 2 || !list[1].Void() || list[0].Void() {
		t.Fatalf("credit notes of b %+v %v", list, err)
	}
	// Announced once, in the void's transaction.
	if n := f.count("webhook_events WHERE type = '" + string(notify.CreditNoteVoided) + "' AND dedup_key = '" + cnB.ID + "'"); n != 1 {
		t.Fatalf("%d credit_note.voided events", n)
	}

	// On a paid invoice, voiding a credit note nothing was refunded of
	// turns the customer's credit back into the invoice's settlement.
	cnA2 := credit(a, "1.00") // a: paid 10, credited 3 + 1, refunded 2: balance -2
	if _, r, err := f.accounts.VoidCreditNote(ctx, cnA2.ID, "duplicate"); err != nil || r.Balance.String() != "-1.00" || r.Status != billing.PaymentPaid {
		t.Fatalf("void on a paid invoice: %+v %v", r, err)
	}
	// An invoice whose credit notes are all void still cannot be voided:
	// they stay with it.
	if _, _, err := f.accounts.VoidCreditNote(ctx, list[0].ID, "cancel"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.runner.Void(ctx, b, "wrong customer"); postage.ErrorCode(err) != postage.ECONFLICT {
		t.Fatalf("void of an invoice with void credit notes: %v", err)
	}
}
