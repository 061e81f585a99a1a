package billing_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"postage"
	"postage/billing"
)

func refund(amount, date string) billing.NewRefund {
	return billing.NewRefund{Amount: amount, Currency: "USD", Date: date, Method: billing.MethodBankTransfer, Reference: "RF-" + amount}
}

// TestRefunds: a credit note after payment leaves the customer owed; a
// refund pays it back, never more than is owed, in the invoice's currency,
// and the balance returns to zero.
func TestRefunds(t *testing.T) {
	f := newFinance(t,
		billing.Customer{ID: "a", Name: "A", Currency: "USD", Country: "US"},
		billing.Customer{ID: "b", Name: "B", Currency: "USD", Country: "US"},
		billing.Customer{ID: "d", Name: "Draft", Currency: "USD", Country: "US"},
	)
	ctx := context.Background()
	ids := f.finalized(map[string]int64{"a": 1000, "b": 500}) // 10.00 and 5.00
	a, void := ids["a"], ids["b"]
	f.events(ev{customer: "d", country: "US", category: "marketing", at: "2026-10-05 10:00:00", ingested: "2026-11-02 08:00:00", qty: 100})
	f.run("2026-10")
	draft := f.live("d", "2026-10").ID
	if _, _, err := f.runner.Void(ctx, void, "wrong customer"); err != nil {
		t.Fatal(err)
	}
	// Nothing owed yet: an unpaid invoice cannot be refunded.
	if _, _, _, err := f.accounts.RecordRefund(ctx, a, refund("1.00", "2026-11-02")); postage.ErrorCode(err) != postage.EOVERREFUND {
		t.Fatalf("refund of an unpaid invoice: %v", err)
	}
	if _, _, _, err := f.accounts.RecordPayment(ctx, a, pay("10.00", "2026-11-02")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.accounts.IssueCreditNote(ctx, a, billing.CreditNoteRequest{Reason: "SLA", Lines: []billing.CreditItem{{Amount: "3.00"}}}); err != nil {
		t.Fatal(err)
	}
	r, _ := f.accounts.Receivable(ctx, a)
	if r.Balance.String() != "-3.00" || r.Status != billing.PaymentPaid || r.Refunded.String() != "0.00" {
		t.Fatalf("after the credit note %+v", r)
	}
	// Refused, and nothing recorded.
	eur := refund("1.00", "2026-11-02")
	eur.Currency = "EUR"
	for _, tt := range []struct {
		name    string
		invoice string
		in      billing.NewRefund
		code    string
	}{
		{"more than owed", a, refund("3.01", "2026-11-02"), postage.EOVERREFUND},
		{"another currency", a, eur, postage.ECURRENCYMISMATCH},
		{"a draft", draft, refund("1.00", "2026-11-02"), postage.ENOTFINALIZED},
		{"a void invoice", void, refund("1.00", "2026-11-02"), postage.ENOTFINALIZED},
		{"no such invoice", "in_nope", refund("1.00", "2026-11-02"), postage.ENOTFOUND},
		{"dated tomorrow", a, refund("1.00", "2026-11-03"), postage.EINVALID},
		{"nothing", a, refund("0", "2026-11-02"), postage.EINVALID},
		{"a tenth of a cent", a, refund("0.001", "2026-11-02"), postage.EINVALID},
		{"a bad method", a, billing.NewRefund{Amount: "1.00", Currency: "USD", Date: "2026-11-02", Method: "wire"}, postage.EINVALID},
	} {
		if _, _, _, err := f.accounts.RecordRefund(ctx, tt.invoice, tt.in); postage.ErrorCode(err) != tt.code {
			t.Errorf("%s: %v, want %s", tt.name, err, tt.code)
		}
	}
	if n := f.count("refunds"); n != 0 {
		t.Fatalf("%d refunds after refusals", n)
	}
	// A part, retried with its key: recorded once.
	k := refund("1.00", "2026-11-02")
	k.IdempotencyKey = "refund-77"
	f1, r1, e1, err1 := f.accounts.RecordRefund(ctx, a, k)
	f2, r2, e2, err2 := f.accounts.RecordRefund(ctx, a, k)
	if err1 != nil || err2 != nil || e1 || !e2 || f1.ID != f2.ID || r1.Balance.String() != "-2.00" || r2.Balance.String() != "-2.00" || f1.InvoiceNumber != r1.Number {
		t.Fatalf("refund and retry: %+v %+v %v / %+v %v %v", f1, r1, err1, f2, e2, err2)
	}
	k.Amount = "2.00"
	if _, _, _, err := f.accounts.RecordRefund(ctx, a, k); postage.ErrorCode(err) != postage.ECONFLICT {
		t.Fatalf("key reused for another refund: %v", err)
	}
	// The rest: the balance is zero, the receivable shows what was refunded.
	_, r, _, err := f.accounts.RecordRefund(ctx, a, refund("2.00", "2026-11-02"))
	if err != nil || !r.Balance.IsZero() || r.Refunded.String() != "3.00" || r.Status != billing.PaymentPaid || r.Paid.String() != "10.00" {
		t.Fatalf("refunded in full: %+v %v", r, err)
	}
	if _, _, _, err := f.accounts.RecordRefund(ctx, a, refund("0.01", "2026-11-02")); postage.ErrorCode(err) != postage.EOVERREFUND || !strings.Contains(err.Error(), "owes the customer nothing") {
		t.Fatalf("refund once nothing is owed: %v", err)
	}
	// Two pages of one, together both refunds (recorded at the same
	// instant of the test clock: the id orders them).
	list, next, err := f.accounts.Refunds(ctx, billing.RefundFilter{CustomerID: "a"}, billing.Page{Limit: 1})
	if err != nil || len(list) != 1 || next == "" {
		t.Fatalf("refunds page 1 %+v %q %v", list, next, err)
	}
	list2, next, err := f.accounts.Refunds(ctx, billing.RefundFilter{CustomerID: "a"}, billing.Page{Limit: 1, Cursor: next})
	if err != nil || len(list2) != 1 || next != "" || list2[0].ID == list[0].ID || (list[0].ID != f1.ID && list2[0].ID != f1.ID) {
		t.Fatalf("refunds page 2 %+v %q %v", list2, next, err)
	}
	// The database stands behind the rule and keeps refunds as recorded.
	if _, err := f.env.PG.Exec(ctx, `UPDATE receivables SET refunded = refunded + 0.01 WHERE invoice_id = $1`, a); err == nil {
		t.Fatal("the receivable took refunds above what was owed")
	}
	if _, err := f.env.PG.Exec(ctx, `DELETE FROM refunds WHERE id = $1`, f1.ID); err == nil || !strings.Contains(err.Error(), "never changes") {
		t.Fatalf("delete of a refund: %v", err)
	}
	// Refunds are not part of what is due: the aging leaves the invoice out.
	rep, err := f.accounts.Aging(ctx, "a")
	if err != nil || len(rep.Customers) != 0 {
		t.Fatalf("aging %+v %v", rep, err)
	}
}

// TestConcurrentRefunds: refunds at once, in real concurrent
// transactions, never refund more than the customer is owed.
func TestConcurrentRefunds(t *testing.T) {
	f := newFinance(t, billing.Customer{ID: "a", Name: "A", Currency: "USD", Country: "US"})
	ctx := context.Background()
	a := f.finalized(map[string]int64{"a": 1000})["a"]
	if _, _, _, err := f.accounts.RecordPayment(ctx, a, pay("10.00", "2026-11-02")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.accounts.IssueCreditNote(ctx, a, billing.CreditNoteRequest{Reason: "r", Lines: []billing.CreditItem{{Amount: "5.00"}}}); err != nil {
		t.Fatal(err)
	}
	const n = 12 // 1.00 each against 5.00 owed: exactly five fit
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	start := make(chan struct{})
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, _, _, err := f.accounts.RecordRefund(ctx, a, refund("1.00", "2026-11-02"))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case postage.ErrorCode(err) != postage.EOVERREFUND:
				t.Errorf("refund: %v", err)
			}
		}()
	}
	close(start)
	wg.Wait()
	r, err := f.accounts.Receivable(ctx, a)
	if err != nil || ok != 5 || r.Refunded.String() != "5.00" || !r.Balance.IsZero() || f.count("refunds") != 5 {
		t.Fatalf("%d refunds recorded, %d rows, %+v %v", ok, f.count("refunds"), r, err)
	}
}
