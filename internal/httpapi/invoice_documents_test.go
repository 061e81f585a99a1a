package httpapi_test

import (
	"bytes"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"postage/billing"
	"postage/internal/app"
	"postage/internal/auth"
	"postage/pricing"
	"postage/reports"
)

// restyler draws documents in a new style once restyled is set: the
// stand-in for a release that changes how invoices look.
type restyler struct{ restyled atomic.Bool }

func (r *restyler) RenderInvoice(inv billing.Invoice, f billing.Format) ([]byte, error) {
	if r.restyled.Load() {
		inv.Customer.Name = "RESTYLED " + inv.Customer.Name
	}
	return reports.InvoiceDocuments{}.RenderInvoice(inv, f)
}

// A finalized invoice's JSON, CSV and PDF are served byte for byte the same
// after the way documents are drawn changes; a draft's follow the change.
func TestFinalizedInvoiceDocumentsNeverChange(t *testing.T) {
	r := &restyler{}
	s := newStackWith(t, nil, func(a *app.App) { a.Billing.Render = r })
	now := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	s.App.Now = func() time.Time { return now }
	oct := time.Date(2026, 10, 10, 12, 0, 0, 0, time.UTC)
	insertEvents(t, s, "cust-a", "GB", "marketing", oct, oct, 3)
	insertEvents(t, s, "cust-b", "DE", "marketing", oct, oct, 2)
	fin := auth.RoleFinance
	if resp, body := s.do(t, fin, "POST", "/api/v1/invoice-runs", "application/json", []byte(`{"period":"2026-10"}`)); resp.StatusCode != 200 {
		t.Fatalf("run: %d %s", resp.StatusCode, body)
	}
	oct26 := pricing.MustParseMonth("2026-10")
	a, draft := billing.InvoiceID("cust-a", oct26, 1), billing.InvoiceID("cust-b", oct26, 1)
	if resp, body := s.do(t, fin, "POST", "/api/v1/invoices/"+a+"/approve", "", nil); resp.StatusCode != 200 {
		t.Fatalf("approve: %d %s", resp.StatusCode, body)
	}
	get := func(path string) []byte {
		t.Helper()
		resp, body := s.do(t, fin, "GET", path, "", nil)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
		}
		return body
	}
	var before [][]byte
	for _, ext := range []string{"", ".csv", ".pdf"} {
		before = append(before, get("/api/v1/invoices/"+a+ext))
	}
	draftBefore := get("/api/v1/invoices/" + draft + ".csv")

	r.restyled.Store(true)
	for i, ext := range []string{"", ".csv", ".pdf"} {
		if after := get("/api/v1/invoices/" + a + ext); !bytes.Equal(after, before[i]) {
			t.Errorf("finalized invoice%s changed after a restyle:\nbefore %q\n after %q", ext, before[i][:min(200, len(before[i]))], after[:min(200, len(after))])
		}
	}
	if draftAfter := get("/api/v1/invoices/" + draft + ".csv"); bytes.Equal(draftAfter, draftBefore) || !strings.Contains(string(draftAfter), "RESTYLED") {
		t.Errorf("the draft's CSV did not follow the restyle: %s", draftAfter)
	}
}

// A card in another currency than the customer's, and a currency change
// that would leave the customer's cards or invoices in another, are
// refused with 409 conflict (issue #14, item 8).
func TestCurrencyMismatchIsAConflict(t *testing.T) {
	s := newStack(t)
	fin := auth.RoleFinance
	resp, body := s.do(t, auth.RoleAdmin, "POST", "/api/v1/ratecards", "application/json", []byte(`{"id":"euro","name":"Euro","currency":"EUR"}`))
	if resp.StatusCode/100 != 2 {
		t.Fatalf("create card: %d %s", resp.StatusCode, body)
	}
	resp, body = s.do(t, auth.RoleAdmin, "POST", "/api/v1/customers/cust-a/ratecards", "application/json", []byte(`{"card_id":"euro","effective_from":"2027-01"}`))
	if resp.StatusCode != 409 || problemCode(t, resp, body) != "conflict" || !strings.Contains(string(body), "EUR") {
		t.Fatalf("assigning a EUR card to a USD customer: %d %s", resp.StatusCode, body)
	}
	// The customer moves to EUR (it has no card nor invoice yet), then the
	// EUR card is its own; moving back to USD is refused.
	if resp, body := s.do(t, fin, "PATCH", "/api/v1/customers/cust-a", "application/json", []byte(`{"currency":"EUR"}`)); resp.StatusCode != 200 {
		t.Fatalf("currency change of a customer without cards: %d %s", resp.StatusCode, body)
	}
	if resp, body := s.do(t, auth.RoleAdmin, "POST", "/api/v1/customers/cust-a/ratecards", "application/json", []byte(`{"card_id":"euro","effective_from":"2027-01"}`)); resp.StatusCode != 200 {
		t.Fatalf("assigning a EUR card to a EUR customer: %d %s", resp.StatusCode, body)
	}
	resp, body = s.do(t, fin, "PATCH", "/api/v1/customers/cust-a", "application/json", []byte(`{"currency":"USD"}`))
	if resp.StatusCode != 409 || problemCode(t, resp, body) != "conflict" {
		t.Fatalf("currency change away from the customer's card: %d %s", resp.StatusCode, body)
	}
}
