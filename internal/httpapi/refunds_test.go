package httpapi_test

import (
	"strings"
	"testing"

	"postage/billing"
	"postage/internal/auth"
)

func TestRefundsAPI(t *testing.T) {
	s, a, b := finalizedStack(t)
	fin, cust := auth.RoleFinance, auth.RoleCustomer
	post := func(role auth.Role, path, body string) (int, string, []byte) {
		resp, b := s.do(t, role, "POST", path, "application/json", []byte(body))
		code := ""
		if resp.StatusCode >= 400 {
			code = problemCode(t, resp, b)
		}
		return resp.StatusCode, code, b
	}
	refunds := "/api/v1/invoices/" + a.ID + "/refunds"
	one := `{"amount":"0.01","currency":"USD","date":"2026-11-02","method":"bank_transfer","reference":"SEPA 1","idempotency_key":"rf-1"}`
	// Nothing owed to the customer yet.
	if st, code, body := post(fin, refunds, one); st != 409 || code != "refund_exceeds_owed" {
		t.Fatalf("refund of an unpaid invoice: %d %s", st, body)
	}
	// Paid in full, then credited 0.01 net: the customer is owed the credit note's total.
	if st, _, body := post(fin, "/api/v1/invoices/"+a.ID+"/payments", `{"amount":"`+a.Total.String()+`","currency":"USD","date":"2026-11-02","method":"card"}`); st != 201 {
		t.Fatalf("payment: %d %s", st, body)
	}
	st, _, body := post(fin, "/api/v1/invoices/"+a.ID+"/credit-notes", `{"reason":"goodwill","lines":[{"amount":"0.01"}]}`)
	if st != 201 {
		t.Fatalf("credit note: %d %s", st, body)
	}
	owed := decode[billing.CreditNote](t, body).Total
	st, _, body = post(fin, refunds, one)
	rr := decode[struct {
		Refund     billing.Refund     `json:"refund"`
		Receivable billing.Receivable `json:"receivable"`
	}](t, body)
	if st != 201 || rr.Refund.Amount.String() != "0.01" || rr.Receivable.Refunded.String() != "0.01" || !strings.Contains(string(body), `"refunded":"0.01"`) {
		t.Fatalf("refund: %d %s", st, body)
	}
	if st, _, again := post(fin, refunds, one); st != 200 || !strings.Contains(string(again), rr.Refund.ID) {
		t.Fatalf("retry: %d %s", st, again)
	}
	left := owed.Sub(rr.Refund.Amount.Decimal)
	_, before := s.do(t, fin, "GET", "/api/v1/invoices/"+a.ID+"/balance", "", nil)
	for _, tt := range []struct {
		id, body, code string
		status         int
	}{
		{a.ID, `{"amount":"` + left.Add(owed.Decimal).StringFixed(2) + `","currency":"USD","date":"2026-11-02","method":"card"}`, "refund_exceeds_owed", 409},
		{a.ID, `{"amount":"0.01","currency":"EUR","date":"2026-11-02","method":"card"}`, "currency_mismatch", 409},
		{b.ID, `{"amount":"0.01","currency":"USD","date":"2026-11-02","method":"card"}`, "invoice_not_finalized", 409},
		{"in_nope", `{"amount":"0.01","currency":"USD","date":"2026-11-02","method":"card"}`, "not_found", 404},
		{a.ID, `{"amount":"0.01","currency":"USD","date":"2026-11-03","method":"card"}`, "invalid", 400},
		{a.ID, `{"amount":"0","currency":"USD","date":"2026-11-02","method":"card"}`, "invalid", 400},
		{a.ID, `{"amount":"0.01","currency":"USD","date":"2026-11-02","method":"gold"}`, "invalid", 400},
		{a.ID, `{"amount":0.01,"currency":"USD","date":"2026-11-02","method":"card"}`, "invalid", 400},
		{a.ID, `{"amount":"0.02","currency":"USD","date":"2026-11-02","method":"card","idempotency_key":"rf-1"}`, "conflict", 409},
	} {
		if st, code, body := post(fin, "/api/v1/invoices/"+tt.id+"/refunds", tt.body); st != tt.status || code != tt.code {
			t.Errorf("%s: %d %s, want %d %s", tt.body, st, body, tt.status, tt.code)
		}
	}
	if _, after := s.do(t, fin, "GET", "/api/v1/invoices/"+a.ID+"/balance", "", nil); string(after) != string(before) {
		t.Fatalf("refused refunds changed the balance:\n%s\n%s", before, after)
	}
	// The customer reads its own invoice's refunds, records none.
	if resp, body := s.do(t, cust, "GET", refunds, "", nil); resp.StatusCode != 200 || len(decode[list[billing.Refund]](t, body).Data) != 1 {
		t.Fatalf("customer refunds: %d %s", resp.StatusCode, body)
	}
	if st, _, _ := post(cust, refunds, one); st != 403 {
		t.Fatalf("customer records a refund: %d", st)
	}
	if resp, _ := s.do(t, cust, "GET", "/api/v1/refunds", "", nil); resp.StatusCode != 403 {
		t.Fatalf("customer lists all refunds: %d", resp.StatusCode)
	}
	_, body = s.do(t, fin, "GET", "/api/v1/refunds?customer=cust-a", "", nil)
	if l := decode[list[billing.Refund]](t, body); len(l.Data) != 1 || l.Data[0].ID != rr.Refund.ID {
		t.Fatalf("refunds %s", body)
	}
	_, body = s.do(t, fin, "GET", "/api/v1/receivables?customer=cust-a", "", nil)
	if l := decode[list[billing.Receivable]](t, body); len(l.Data) != 1 || l.Data[0].Refunded.String() != "0.01" {
		t.Fatalf("receivables %s", body)
	}
}

func TestVoidCreditNoteAPI(t *testing.T) {
	s, a, _ := finalizedStack(t)
	fin, cust := auth.RoleFinance, auth.RoleCustomer
	post := func(role auth.Role, path, body string) (int, string, []byte) {
		resp, b := s.do(t, role, "POST", path, "application/json", []byte(body))
		code := ""
		if resp.StatusCode >= 400 {
			code = problemCode(t, resp, b)
		}
		return resp.StatusCode, code, b
	}
	st, _, body := post(fin, "/api/v1/invoices/"+a.ID+"/credit-notes", `{"reason":"goodwill","lines":[{"amount":"0.01"}]}`)
	if st != 201 {
		t.Fatalf("credit note: %d %s", st, body)
	}
	cn := decode[billing.CreditNote](t, body)
	void := "/api/v1/credit-notes/" + cn.Number + "/void"
	_, before := s.do(t, fin, "GET", "/api/v1/invoices/"+a.ID+"/balance", "", nil)
	for _, tt := range []struct {
		role       auth.Role
		path, body string
		status     int
		code       string
	}{
		{fin, void, `{"reason":""}`, 400, "invalid"},
		{fin, void, `{"reason":5}`, 400, "invalid"},
		{fin, "/api/v1/credit-notes/CN-2026-999999/void", `{"reason":"x"}`, 404, "not_found"},
		{cust, void, `{"reason":"x"}`, 403, "forbidden"},
	} {
		if st, code, body := post(tt.role, tt.path, tt.body); st != tt.status || code != tt.code {
			t.Errorf("%s %s: %d %s, want %d %s", tt.path, tt.body, st, body, tt.status, tt.code)
		}
	}
	if _, after := s.do(t, fin, "GET", "/api/v1/invoices/"+a.ID+"/balance", "", nil); string(after) != string(before) {
		t.Fatalf("refused voids changed the balance:\n%s\n%s", before, after)
	}
	st, _, body = post(fin, void, `{"reason":"credited the wrong invoice"}`)
	vr := decode[struct {
		CreditNote billing.CreditNote `json:"credit_note"`
		Receivable billing.Receivable `json:"receivable"`
	}](t, body)
	if st != 200 || !vr.CreditNote.Void() || vr.Receivable.Credited.String() != "0.00" || vr.Receivable.Balance.String() != a.Total.String() {
		t.Fatalf("void: %d %s", st, body)
	}
	if st, code, _ := post(fin, void, `{"reason":"again"}`); st != 409 || code != "conflict" {
		t.Fatalf("second void: %d %s", st, code)
	}
	// The customer reads it as void, with its number.
	resp, body := s.do(t, cust, "GET", "/api/v1/credit-notes/"+cn.ID, "", nil)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"void_reason":"credited the wrong invoice"`) || !strings.Contains(string(body), `"number":"`+cn.Number+`"`) {
		t.Fatalf("customer reads the void credit note: %d %s", resp.StatusCode, body)
	}
	resp, body = s.do(t, fin, "GET", "/api/v1/credit-notes/"+cn.ID+".csv", "", nil)
	if resp.StatusCode != 200 || !strings.Contains(string(body), ",credited the wrong invoice") {
		t.Fatalf("void CSV: %d %s", resp.StatusCode, body)
	}
}
