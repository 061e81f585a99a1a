package httpapi_test

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"postage"
	"postage/billing"
	"postage/internal/app"
	"postage/internal/auth"
	"postage/internal/config"
	"postage/pricing"
	"postage/reports"
)

// restyler draws documents in a new style once restyled is set: the
// stand-in for a release that changes how invoices look.
type restyler struct {
	restyled atomic.Bool
	docs     reports.InvoiceDocuments
}

func (r *restyler) RenderInvoice(ctx context.Context, inv billing.Invoice, f billing.Format) ([]byte, error) {
	if r.restyled.Load() {
		inv.Customer.Name = "RESTYLED " + inv.Customer.Name
	}
	return r.docs.RenderInvoice(ctx, inv, f)
}

// A finalized invoice's JSON, CSV and PDF are served byte for byte the same
// after the way documents are drawn changes; a draft's follow the change.
func TestFinalizedInvoiceDocumentsNeverChange(t *testing.T) {
	r := &restyler{}
	s := newStackWith(t, nil, func(a *app.App) { r.docs = reports.InvoiceDocuments{PDF: a.PDF}; a.Billing.Render = r })
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

// Without Chromium the PDF routes answer 503 renderer_unavailable (with
// Retry-After) and store nothing; JSON and CSV are served as ever.
func TestPDFWithoutARenderer(t *testing.T) {
	s := newStackWith(t, func(c *config.Config) { c.Documents.Chromium = "/nonexistent/chromium" }, nil)
	now := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	s.App.Now = func() time.Time { return now }
	oct := time.Date(2026, 10, 10, 12, 0, 0, 0, time.UTC)
	insertEvents(t, s, "cust-a", "GB", "marketing", oct, oct, 3)
	fin := auth.RoleFinance
	if resp, body := s.do(t, fin, "POST", "/api/v1/invoice-runs", "application/json", []byte(`{"period":"2026-10"}`)); resp.StatusCode != 200 {
		t.Fatalf("run: %d %s", resp.StatusCode, body)
	}
	id := billing.InvoiceID("cust-a", pricing.MustParseMonth("2026-10"), 1)
	if resp, body := s.do(t, fin, "POST", "/api/v1/invoices/"+id+"/approve", "", nil); resp.StatusCode != 200 {
		t.Fatalf("approve: %d %s", resp.StatusCode, body)
	}
	unavailable := func(resp *http.Response, body []byte) {
		t.Helper()
		if resp.StatusCode != 503 || problemCode(t, resp, body) != postage.ERENDERER || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("%d %s (Retry-After %q), want 503 %s", resp.StatusCode, body, resp.Header.Get("Retry-After"), postage.ERENDERER)
		}
		if !strings.Contains(string(body), "Chromium is not installed") || strings.Contains(string(body), "/nonexistent") {
			t.Errorf("the problem does not say what is missing, or shows the server's paths: %s", body)
		}
	}
	for range 2 { // nothing stored: the second asks again
		resp, body := s.do(t, fin, "GET", "/api/v1/invoices/"+id+".pdf", "", nil)
		unavailable(resp, body)
	}
	for _, ext := range []string{"", ".csv"} {
		if resp, body := s.do(t, fin, "GET", "/api/v1/invoices/"+id+ext, "", nil); resp.StatusCode != 200 {
			t.Errorf("GET invoice%s: %d %s", ext, resp.StatusCode, body)
		}
	}
	var stored int
	if err := s.App.PG.QueryRow(context.Background(), `SELECT count(*) FROM invoice_documents WHERE invoice_id = $1 AND format = 'pdf'`, id).Scan(&stored); err != nil || stored != 0 {
		t.Errorf("%d stored PDFs (%v), want none", stored, err)
	}
	quote := []byte(`{"items":[{"country":"DE","category":"marketing","quantity":10}]}`)
	resp, body := s.do(t, auth.RoleSales, "POST", "/api/v1/quotes?format=pdf", "application/json", quote)
	unavailable(resp, body)
	if resp, body := s.do(t, auth.RoleSales, "POST", "/api/v1/quotes?format=csv", "application/json", quote); resp.StatusCode != 200 {
		t.Errorf("quote CSV: %d %s", resp.StatusCode, body)
	}
}
