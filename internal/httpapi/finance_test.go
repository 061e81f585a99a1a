package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"postage/billing"
	"postage/internal/auth"
	"postage/notify"
	"postage/notify/signature"
	"postage/pricing"
)

type list[T any] struct {
	Data       []T    `json:"data"`
	NextCursor string `json:"next_cursor"`
}

// finalizedStack has October invoices for cust-a (finalized on 2026-11-02,
// GB VAT 20%: 10.00 + 2.00) and cust-b (a draft, 5.00 + 1.00).
func finalizedStack(t *testing.T) (s *stack, a, b billing.Invoice) {
	t.Helper()
	s = newStack(t)
	now := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	s.App.Now = func() time.Time { return now }
	oct := time.Date(2026, 10, 10, 12, 0, 0, 0, time.UTC)
	// The default card prices GB marketing; use quantities that rate to round sums.
	insertEvents(t, s, "cust-a", "GB", "marketing", oct, oct, 1)
	insertEvents(t, s, "cust-b", "GB", "marketing", oct, oct, 1)
	fin := auth.RoleFinance
	if resp, body := s.do(t, fin, "POST", "/api/v1/tax-rates", "application/json", []byte(`{"jurisdiction":"GB","name":"VAT","rate":"20","effective_from":"2017-01-01"}`)); resp.StatusCode != 201 {
		t.Fatalf("tax rate: %d %s", resp.StatusCode, body)
	}
	if resp, body := s.do(t, fin, "POST", "/api/v1/invoice-runs", "application/json", []byte(`{"period":"2026-10"}`)); resp.StatusCode != 200 {
		t.Fatalf("run: %d %s", resp.StatusCode, body)
	}
	resp, body := s.do(t, fin, "POST", "/api/v1/invoices/"+billing.InvoiceID("cust-a", mustMonth("2026-10"), 1)+"/approve", "", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("approve: %d %s", resp.StatusCode, body)
	}
	a = decode[billing.Invoice](t, body)
	_, body = s.do(t, fin, "GET", "/api/v1/invoices/"+billing.InvoiceID("cust-b", mustMonth("2026-10"), 1), "", nil)
	b = decode[billing.Invoice](t, body)
	return s, a, b
}

func TestTaxRatesAPI(t *testing.T) {
	s := newStack(t)
	fin := auth.RoleFinance
	post := func(body string) (int, string, []byte) {
		resp, b := s.do(t, fin, "POST", "/api/v1/tax-rates", "application/json", []byte(body))
		code := ""
		if resp.StatusCode >= 400 {
			code = problemCode(t, resp, b)
		}
		return resp.StatusCode, code, b
	}
	st, _, body := post(`{"jurisdiction":"DE","name":"VAT","rate":"19","effective_from":"2020-01-01"}`)
	if st != 201 {
		t.Fatalf("create: %d %s", st, body)
	}
	de := decode[billing.TaxRate](t, body)
	rates := func() string {
		_, b := s.do(t, fin, "GET", "/api/v1/tax-rates", "", nil)
		return string(b)
	}
	before := rates()
	for _, tt := range []struct {
		body, code string
		status     int
	}{
		{`{"jurisdiction":"DE","name":"VAT","rate":"20","effective_from":"2026-10-01"}`, "tax_rate_overlap", 409},
		{`{"jurisdiction":"de","name":"VAT","rate":"20","effective_from":"2026-10-01"}`, "invalid", 400},
		{`{"jurisdiction":"FR","name":"TVA","rate":"twenty","effective_from":"2026-10-01"}`, "invalid", 400},
		{`{"jurisdiction":"FR","name":"TVA","rate":"20","effective_from":"01/10/2026"}`, "invalid", 400},
		{`{"jurisdiction":"FR","name":"TVA","rate":"120","effective_from":"2026-10-01"}`, "invalid", 400},
		{`{"jurisdiction":"FR","name":"TVA","rate":"20","effective_from":"2026-10-01","effective_to":"2026-09-01"}`, "invalid", 400},
		{`{"jurisdiction":"FR","name":"TVA","rate":"20","effective_from":"2026-10-01","vat":true}`, "invalid", 400},
	} {
		if st, code, body := post(tt.body); st != tt.status || code != tt.code {
			t.Errorf("%s: %d %s", tt.body, st, body)
		}
	}
	if rates() != before {
		t.Fatalf("refused rates changed the list: %s", rates())
	}
	// End the rate, then the new one fits; reopening the old one overlaps.
	if resp, body := s.do(t, fin, "PATCH", "/api/v1/tax-rates/"+de.ID, "application/json", []byte(`{"effective_to":"2026-10-01"}`)); resp.StatusCode != 200 {
		t.Fatalf("end: %d %s", resp.StatusCode, body)
	}
	if st, _, body := post(`{"jurisdiction":"DE","name":"VAT","rate":"20","effective_from":"2026-10-01"}`); st != 201 {
		t.Fatalf("after the end: %d %s", st, body)
	}
	if resp, body := s.do(t, fin, "PATCH", "/api/v1/tax-rates/"+de.ID, "application/json", []byte(`{"effective_to":""}`)); resp.StatusCode != 409 || problemCode(t, resp, body) != "tax_rate_overlap" {
		t.Fatalf("reopen: %d %s", resp.StatusCode, body)
	}
	if resp, _ := s.do(t, fin, "PATCH", "/api/v1/tax-rates/txr_nope", "application/json", []byte(`{"effective_to":""}`)); resp.StatusCode != 404 {
		t.Fatalf("missing rate: %d", resp.StatusCode)
	}
	_, body = s.do(t, fin, "GET", "/api/v1/tax-rates?jurisdiction=DE", "", nil)
	if l := decode[list[billing.TaxRate]](t, body); len(l.Data) != 2 || l.Data[0].EffectiveTo.String() != "2026-10-01" {
		t.Fatalf("DE rates %s", body)
	}
	// Least role: finance and admin; others are refused.
	for _, r := range []auth.Role{auth.RoleSales, auth.RoleIngest} {
		if resp, _ := s.do(t, r, "GET", "/api/v1/tax-rates", "", nil); resp.StatusCode != 403 {
			t.Errorf("%s reads tax rates: %d", r, resp.StatusCode)
		}
	}
	if resp, _ := s.do(t, auth.RoleCustomer, "POST", "/api/v1/tax-rates", "application/json", []byte(`{"jurisdiction":"IT","name":"IVA","rate":"22","effective_from":"2026-01-01"}`)); resp.StatusCode != 403 {
		t.Errorf("customer creates a rate: %d", resp.StatusCode)
	}
}

func TestCustomerTaxProfileAPI(t *testing.T) {
	s := newStack(t)
	fin := auth.RoleFinance
	patch := func(body string) (int, []byte) {
		resp, b := s.do(t, fin, "PATCH", "/api/v1/customers/cust-a", "application/json", []byte(body))
		return resp.StatusCode, b
	}
	st, body := patch(`{"tax_id":"GB123456789","tax_status":"reverse_charge","address":{"line1":"1 High St","city":"London","postal_code":"SW1A 1AA","country":"GB"},"payment_terms_days":14}`)
	c := decode[billing.Customer](t, body)
	if st != 200 || c.TaxStatus != billing.TaxReverseCharge || c.Address == nil || c.Address.City != "London" || *c.PaymentTermsDays != 14 {
		t.Fatalf("patch: %d %s", st, body)
	}
	_, before := s.do(t, fin, "GET", "/api/v1/customers/cust-a", "", nil)
	for _, bad := range []string{
		`{"tax_status":"zero_rated"}`,
		`{"tax_id":""}`, // reverse charge needs it
		`{"payment_terms_days":366}`,
		`{"payment_terms_days":-1}`,
		`{"tax_region":"US-NY"}`, // not in GB
		`{"tax_country":"gb"}`,
		`{"address":{"country":"Germany"}}`,
	} {
		if st, body := patch(bad); st != 400 {
			t.Errorf("%s: %d %s", bad, st, body)
		}
	}
	if _, after := s.do(t, fin, "GET", "/api/v1/customers/cust-a", "", nil); string(after) != string(before) {
		t.Fatalf("refused patches changed the customer:\n%s\n%s", before, after)
	}
	// Customers are found by name as well as id.
	if _, err := s.App.Customers.Create(context.Background(), billing.Customer{ID: "waba-77", Name: "Zürich Blumen AG", Currency: "USD"}); err != nil {
		t.Fatal(err)
	}
	for q, want := range map[string]string{"zürich": "waba-77", "BLUMEN": "waba-77", "waba-7": "waba-77", "100%": ""} {
		_, body := s.do(t, fin, "GET", "/api/v1/customers?q="+strings.ReplaceAll(q, "%", "%25"), "", nil)
		l := decode[list[billing.Customer]](t, body)
		got := ""
		if len(l.Data) == 1 {
			got = l.Data[0].ID
		}
		if got != want || (want == "" && len(l.Data) != 0) {
			t.Errorf("q=%s: %s", q, body)
		}
	}
}

func TestPaymentsAPI(t *testing.T) {
	s, a, b := finalizedStack(t)
	fin := auth.RoleFinance
	if len(a.TaxLines) != 1 || a.DueDate == nil || a.DueDate.String() != "2026-12-02" || !a.Tax.IsPositive() {
		t.Fatalf("finalized invoice %+v", a)
	}
	total := a.Total.String()
	pay := func(id, body string) (int, string, []byte) {
		resp, b := s.do(t, fin, "POST", "/api/v1/invoices/"+id+"/payments", "application/json", []byte(body))
		code := ""
		if resp.StatusCode >= 400 {
			code = problemCode(t, resp, b)
		}
		return resp.StatusCode, code, b
	}
	one := `{"amount":"0.01","currency":"USD","date":"2026-11-02","method":"bank_transfer","reference":"BANK 1","idempotency_key":"feed-1"}`
	st, _, body := pay(a.ID, one)
	rp := decode[struct {
		Payment    billing.Payment    `json:"payment"`
		Receivable billing.Receivable `json:"receivable"`
	}](t, body)
	if st != 201 || rp.Receivable.Status != billing.PaymentPartiallyPaid || rp.Payment.Amount.String() != "0.01" {
		t.Fatalf("payment: %d %s", st, body)
	}
	if st, _, body := pay(a.ID, one); st != 200 || !strings.Contains(string(body), rp.Payment.ID) {
		t.Fatalf("retry: %d %s", st, body)
	}
	_, before := s.do(t, fin, "GET", "/api/v1/invoices/"+a.ID+"/balance", "", nil)
	for _, tt := range []struct {
		id, body, code string
		status         int
	}{
		{a.ID, `{"amount":"0.01","currency":"EUR","date":"2026-11-02","method":"card"}`, "currency_mismatch", 409},
		{a.ID, `{"amount":"` + total + `","currency":"USD","date":"2026-11-02","method":"card"}`, "overpayment", 409},
		{b.ID, `{"amount":"0.01","currency":"USD","date":"2026-11-02","method":"card"}`, "invoice_not_finalized", 409},
		{"in_nope", `{"amount":"0.01","currency":"USD","date":"2026-11-02","method":"card"}`, "not_found", 404},
		{a.ID, `{"amount":"0.01","currency":"USD","date":"2026-11-03","method":"card"}`, "invalid", 400},
		{a.ID, `{"amount":"-1","currency":"USD","date":"2026-11-02","method":"card"}`, "invalid", 400},
		{a.ID, `{"amount":"0.01","currency":"USD","date":"2026-11-02","method":"gold"}`, "invalid", 400},
		{a.ID, `{"amount":0.01,"currency":"USD","date":"2026-11-02","method":"card"}`, "invalid", 400},
		{a.ID, `{"amount":"0.01","currency":"USD","date":"2026-11-02","method":"card","idempotency_key":"feed-1"}`, "conflict", 409},
	} {
		if st, code, body := pay(tt.id, tt.body); st != tt.status || code != tt.code {
			t.Errorf("%s: %d %s, want %d %s", tt.body, st, body, tt.status, tt.code)
		}
	}
	if _, after := s.do(t, fin, "GET", "/api/v1/invoices/"+a.ID+"/balance", "", nil); string(after) != string(before) {
		t.Fatalf("refused payments changed the balance:\n%s\n%s", before, after)
	}
	// The customer reads its own invoice's balance and payments, and
	// neither another's nor a draft; it records nothing.
	cust := auth.RoleCustomer
	if resp, body := s.do(t, cust, "GET", "/api/v1/invoices/"+a.ID+"/balance", "", nil); resp.StatusCode != 200 || string(body) != string(before) {
		t.Fatalf("customer balance: %d %s", resp.StatusCode, body)
	}
	if resp, body := s.do(t, cust, "GET", "/api/v1/invoices/"+a.ID+"/payments", "", nil); resp.StatusCode != 200 || len(decode[list[billing.Payment]](t, body).Data) != 1 {
		t.Fatalf("customer payments: %d %s", resp.StatusCode, body)
	}
	if resp, _ := s.do(t, cust, "GET", "/api/v1/invoices/"+b.ID+"/balance", "", nil); resp.StatusCode != 404 {
		t.Fatalf("customer reads another's balance: %d", resp.StatusCode)
	}
	if resp, _ := s.do(t, cust, "POST", "/api/v1/invoices/"+a.ID+"/payments", "application/json", []byte(one)); resp.StatusCode != 403 {
		t.Fatalf("customer records a payment: %d", resp.StatusCode)
	}
	if resp, body := s.do(t, fin, "GET", "/api/v1/invoices/"+b.ID+"/balance", "", nil); resp.StatusCode != 409 || problemCode(t, resp, body) != "invoice_not_finalized" {
		t.Fatalf("balance of a draft: %d %s", resp.StatusCode, body)
	}
	// Lists, the aging report (JSON and CSV) and the write-off.
	_, body = s.do(t, fin, "GET", "/api/v1/receivables?status=partially_paid", "", nil)
	if l := decode[list[billing.Receivable]](t, body); len(l.Data) != 1 || l.Data[0].InvoiceID != a.ID {
		t.Fatalf("receivables %s", body)
	}
	if resp, _ := s.do(t, fin, "GET", "/api/v1/receivables?status=late", "", nil); resp.StatusCode != 400 {
		t.Fatalf("bad status: %d", resp.StatusCode)
	}
	_, body = s.do(t, fin, "GET", "/api/v1/payments?customer=cust-a", "", nil)
	if l := decode[list[billing.Payment]](t, body); len(l.Data) != 1 {
		t.Fatalf("payments %s", body)
	}
	_, body = s.do(t, fin, "GET", "/api/v1/receivables/aging", "", nil)
	rep := decode[billing.AgingReport](t, body)
	if len(rep.Customers) != 1 || rep.Customers[0].Current.String() != rp.Receivable.Balance.String() || rep.AsOf.String() != "2026-11-02" {
		t.Fatalf("aging %s", body)
	}
	req := map[string]string{"Accept": "text/csv"}
	resp, body := s.doHeaders(t, fin, "GET", "/api/v1/receivables/aging", req)
	if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "as_of,customer_id,customer_name,currency,current,") || !strings.Contains(string(body), "2026-11-02,cust-a,") {
		t.Fatalf("aging CSV %d %s", resp.StatusCode, body)
	}
	if resp, body := s.do(t, fin, "POST", "/api/v1/invoices/"+a.ID+"/uncollectible", "application/json", []byte(`{"reason":"gone"}`)); resp.StatusCode != 200 ||
		decode[billing.Receivable](t, body).Status != billing.PaymentUncollectible {
		t.Fatalf("uncollectible %d %s", resp.StatusCode, body)
	}
	if resp, body := s.do(t, fin, "POST", "/api/v1/invoices/"+a.ID+"/uncollectible", "application/json", []byte(`{"reason":"gone"}`)); resp.StatusCode != 409 || problemCode(t, resp, body) != "conflict" {
		t.Fatalf("uncollectible twice %d %s", resp.StatusCode, body)
	}
}

func TestCreditNotesAPI(t *testing.T) {
	s, a, b := finalizedStack(t)
	fin := auth.RoleFinance
	credit := func(id, body string) (int, string, []byte) {
		resp, b := s.do(t, fin, "POST", "/api/v1/invoices/"+id+"/credit-notes", "application/json", []byte(body))
		code := ""
		if resp.StatusCode >= 400 {
			code = problemCode(t, resp, b)
		}
		return resp.StatusCode, code, b
	}
	st, _, body := credit(a.ID, `{"reason":"goodwill","lines":[{"line":1,"amount":"0.01","description":"goodwill"}],"idempotency_key":"t-1"}`)
	if st != 201 {
		t.Fatalf("credit note: %d %s", st, body)
	}
	cn, issued := decode[billing.CreditNote](t, body), body
	var raw map[string]any
	_ = json.Unmarshal(body, &raw)
	if cn.Number != "CN-2026-000001" || raw["invoice_number"] != a.Number || raw["total"] != "0.01" {
		t.Fatalf("credit note %s", body)
	}
	if st, _, again := credit(a.ID, `{"reason":"goodwill","lines":[{"line":1,"amount":"0.01","description":"goodwill"}],"idempotency_key":"t-1"}`); st != 200 || string(again) != string(body) {
		t.Fatalf("retry %d %s", st, again)
	}
	_, before := s.do(t, fin, "GET", "/api/v1/credit-notes", "", nil)
	for _, tt := range []struct {
		id, body, code string
		status         int
	}{
		{a.ID, `{"reason":"x","lines":[{"amount":"1000.00"}]}`, "credit_exceeds_remaining", 409},
		{a.ID, `{"reason":"x","lines":[{"line":1,"quantity":2}]}`, "credit_exceeds_remaining", 409},
		{b.ID, `{"reason":"x","lines":[{"line":1}]}`, "invoice_not_finalized", 409},
		{a.ID, `{"reason":"","lines":[{"line":1}]}`, "invalid", 400},
		{a.ID, `{"reason":"x","lines":[]}`, "invalid", 400},
		{a.ID, `{"reason":"x","lines":[{"line":9}]}`, "invalid", 400},
		{a.ID, `{"reason":"x","lines":[{"line":1,"quantity":1,"amount":"0.01"}]}`, "invalid", 400},
		{a.ID, `{"reason":"x","lines":[{"amount":"0.001"}]}`, "invalid", 400},
		{"in_nope", `{"reason":"x","lines":[{"line":1}]}`, "not_found", 404},
	} {
		if st, code, body := credit(tt.id, tt.body); st != tt.status || code != tt.code {
			t.Errorf("%s: %d %s, want %d %s", tt.body, st, body, tt.status, tt.code)
		}
	}
	if _, after := s.do(t, fin, "GET", "/api/v1/credit-notes", "", nil); string(after) != string(before) {
		t.Fatalf("refused credit notes changed the list")
	}
	// The rest of the only line: its tax comes along, and the invoice is settled.
	st, _, body = credit(a.ID, `{"reason":"cancelled","lines":[{"line":1}]}`)
	if st != 201 {
		t.Fatalf("rest: %d %s", st, body)
	}
	_, body = s.do(t, fin, "GET", "/api/v1/invoices/"+a.ID+"/balance", "", nil)
	if r := decode[billing.Receivable](t, body); r.Status != billing.PaymentPaid || !r.Credited.Equal(a.Total.Decimal) {
		t.Fatalf("credited in full: %s", body)
	}
	// Documents: by id or number, JSON, CSV and PDF; the customer reads its own.
	cust := auth.RoleCustomer
	for _, path := range []string{"/api/v1/credit-notes/" + cn.ID, "/api/v1/credit-notes/" + cn.Number} {
		if resp, got := s.do(t, cust, "GET", path, "", nil); resp.StatusCode != 200 || string(got) != string(issued) {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, got)
		}
	}
	resp, pdf := s.do(t, cust, "GET", "/api/v1/credit-notes/"+cn.ID+".pdf", "", nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/pdf" || !strings.HasPrefix(string(pdf), "%PDF-") ||
		!strings.Contains(resp.Header.Get("Content-Disposition"), "CN-2026-000001.pdf") {
		t.Fatalf("pdf %d %v", resp.StatusCode, resp.Header)
	}
	resp, csv := s.do(t, fin, "GET", "/api/v1/credit-notes/"+cn.Number+".csv", "", nil)
	if resp.StatusCode != 200 || !strings.Contains(string(csv), "CN-2026-000001,"+a.ID) {
		t.Fatalf("csv %d %s", resp.StatusCode, csv)
	}
	_, body = s.do(t, cust, "GET", "/api/v1/invoices/"+a.ID+"/credit-notes", "", nil)
	if l := decode[list[billing.CreditNote]](t, body); len(l.Data) != 2 {
		t.Fatalf("customer's credit notes %s", body)
	}
	// Another customer's credit note is not found for a customer key.
	if _, err := s.App.Billing.Approve(context.Background(), b.ID); err != nil {
		t.Fatal(err)
	}
	_, _, body = credit(b.ID, `{"reason":"x","lines":[{"amount":"0.01"}]}`)
	other := decode[billing.CreditNote](t, body)
	if resp, _ := s.do(t, cust, "GET", "/api/v1/credit-notes/"+other.ID, "", nil); resp.StatusCode != 404 {
		t.Fatalf("customer reads another's credit note: %d", resp.StatusCode)
	}
	if resp, _ := s.do(t, cust, "GET", "/api/v1/credit-notes", "", nil); resp.StatusCode != 403 {
		t.Fatalf("customer lists all credit notes: %d", resp.StatusCode)
	}
	if resp, _ := s.do(t, fin, "GET", "/api/v1/credit-notes?cursor=junk", "", nil); resp.StatusCode != 400 {
		t.Fatalf("bad cursor: %d", resp.StatusCode)
	}
}

func mustMonth(s string) pricing.Month { return pricing.MustParseMonth(s) }

// doHeaders is do with request headers and no body.
func (s *stack) doHeaders(t *testing.T, role auth.Role, method, path string, headers map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, s.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.Keys[role])
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// TestFinanceEventsReachTheEndpoint: a customer's endpoint receives, signed,
// credit_note.created for a credit note, invoice.overdue once from the
// overdue passes after the due date, and invoice.paid when a payment
// settles the invoice; their objects are what the API shows (the credit
// note, the invoice's balance), and a partial payment announces nothing.
func TestFinanceEventsReachTheEndpoint(t *testing.T) {
	s := newWebhookStack(t)
	var mu sync.Mutex
	now := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	s.App.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	oct := time.Date(2026, 10, 10, 12, 0, 0, 0, time.UTC)
	insertEvents(t, s, "cust-a", "GB", "marketing", oct, oct, 200)

	var got []notify.Payload
	var secret string
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if err := signature.Verify(body, r.Header.Get(signature.Header), secret, 0, now); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var p notify.Payload
		_ = json.Unmarshal(body, &p)
		got = append(got, p)
	}))
	defer rcv.Close()
	cust, fin := auth.RoleCustomer, auth.RoleFinance
	resp, body := s.do(t, cust, "POST", "/api/v1/webhook-endpoints", "application/json",
		[]byte(`{"url":"`+rcv.URL+`/hook","event_types":["invoice.paid","invoice.overdue","credit_note.created"]}`))
	if resp.StatusCode != 201 {
		t.Fatalf("endpoint: %d %s", resp.StatusCode, body)
	}
	mu.Lock()
	secret = decode[notify.CreatedEndpoint](t, body).Secret
	mu.Unlock()
	received := func() []notify.Payload {
		t.Helper()
		for {
			n, err := s.App.Dispatcher.DeliverDue(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				break
			}
		}
		mu.Lock()
		defer mu.Unlock()
		return append([]notify.Payload(nil), got...)
	}

	if resp, body := s.do(t, fin, "POST", "/api/v1/invoice-runs", "application/json", []byte(`{"period":"2026-10"}`)); resp.StatusCode != 200 {
		t.Fatalf("run: %d %s", resp.StatusCode, body)
	}
	resp, body = s.do(t, fin, "POST", "/api/v1/invoices/"+billing.InvoiceID("cust-a", mustMonth("2026-10"), 1)+"/approve", "", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("approve: %d %s", resp.StatusCode, body)
	}
	inv := decode[billing.Invoice](t, body)
	if !inv.Total.IsPositive() || inv.DueDate == nil {
		t.Fatalf("invoice %+v", inv)
	}
	resp, body = s.do(t, fin, "POST", "/api/v1/invoices/"+inv.ID+"/payments", "application/json",
		[]byte(`{"amount":"0.01","currency":"USD","date":"2026-11-02","method":"bank_transfer","reference":"BANK 1"}`))
	if resp.StatusCode != 201 {
		t.Fatalf("partial payment: %d %s", resp.StatusCode, body)
	}
	resp, body = s.do(t, fin, "POST", "/api/v1/invoices/"+inv.ID+"/credit-notes", "application/json", []byte(`{"reason":"goodwill","lines":[{"amount":"0.01"}]}`))
	if resp.StatusCode != 201 {
		t.Fatalf("credit note: %d %s", resp.StatusCode, body)
	}
	cn := decode[billing.CreditNote](t, body)
	if ev := received(); len(ev) != 1 || ev[0].Type != notify.CreditNoteCreated || ev[0].CustomerID != "cust-a" {
		t.Fatalf("after a partial payment and a credit note: %+v", ev)
	}

	// Past the due date, the overdue passes (the hourly sweep's, here
	// twice) announce it once.
	mu.Lock()
	now = inv.DueDate.AddDays(1).Time().Add(time.Hour)
	mu.Unlock()
	for range 2 {
		if _, err := s.App.Accounts.MarkOverdue(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	_, overdue := s.do(t, fin, "GET", "/api/v1/invoices/"+inv.ID+"/balance", "", nil)
	rest := decode[billing.Receivable](t, overdue).Balance.String()
	resp, body = s.do(t, fin, "POST", "/api/v1/invoices/"+inv.ID+"/payments", "application/json",
		[]byte(`{"amount":"`+rest+`","currency":"USD","date":"`+billing.DateOf(now).String()+`","method":"card","reference":"CARD 2"}`))
	if resp.StatusCode != 201 {
		t.Fatalf("settling payment: %d %s", resp.StatusCode, body)
	}
	_, paid := s.do(t, fin, "GET", "/api/v1/invoices/"+inv.ID+"/balance", "", nil)
	_, cnDoc := s.do(t, cust, "GET", "/api/v1/credit-notes/"+cn.ID, "", nil)

	// Each once (deliveries of one moment may arrive in any order).
	byType := map[notify.EventType]notify.Payload{}
	var types []notify.EventType
	for _, p := range received() {
		byType[p.Type] = p
		types = append(types, p.Type)
	}
	if len(types) != 3 || len(byType) != 3 || types[0] != notify.CreditNoteCreated {
		t.Fatalf("received %v, want credit_note.created, then invoice.overdue and invoice.paid", types)
	}
	ev := []notify.Payload{byType[notify.CreditNoteCreated], byType[notify.InvoiceOverdue], byType[notify.InvoicePaid]}
	same := func(name string, obj any, api []byte) {
		t.Helper()
		b, _ := json.Marshal(obj)
		var have, want any
		_ = json.Unmarshal(b, &have)
		_ = json.Unmarshal(api, &want)
		if !reflect.DeepEqual(have, want) {
			t.Errorf("%s object\n got %s\nwant %s", name, b, api)
		}
	}
	same("credit_note.created", ev[0].Data.Object, cnDoc)
	same("invoice.paid", ev[2].Data.Object, paid)
	if o := ev[1].Data.Object.(map[string]any); o["invoice_id"] != inv.ID || o["status"] != "overdue" || o["balance"] != rest || o["days_past_due"] != float64(1) {
		t.Errorf("invoice.overdue object %v", o)
	}
	if o := ev[2].Data.Object.(map[string]any); o["status"] != "paid" || o["balance"] != "0.00" {
		t.Errorf("invoice.paid object %v", o)
	}
}
