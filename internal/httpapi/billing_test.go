package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"postage/billing"
	"postage/internal/auth"
)

// insertEvents writes events straight into ClickHouse's events table.
func insertEvents(t *testing.T, s *stack, customer, country, category string, at, ingested time.Time, n int) {
	t.Helper()
	b, err := s.App.CH.PrepareBatch(context.Background(), "INSERT INTO events (customer_id, id, time, country, category, quantity, payload_hash, ingested_at)")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if err := b.Append(customer, fmt.Sprintf("%s-%d-%d", customer, at.Unix(), i), at, country, category, uint64(1), uint64(1), ingested); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Send(); err != nil {
		t.Fatal(err)
	}
}

func decode[T any](t *testing.T, body []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	return v
}

func TestInvoiceAPI(t *testing.T) {
	s := newStack(t)
	now := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	s.App.Now = func() time.Time { return now }
	oct := time.Date(2026, 10, 10, 12, 0, 0, 0, time.UTC)
	insertEvents(t, s, "cust-a", "GB", "marketing", oct, oct, 3)
	insertEvents(t, s, "cust-b", "DE", "marketing", oct, oct, 2)
	insertEvents(t, s, "cust-a", "GB", "marketing", now.Add(-time.Hour), now.Add(-time.Hour), 4) // November, month to date
	fin := auth.RoleFinance

	// Bad periods are 400 with a clear message.
	for _, p := range []string{"2026-13", "Oct 2026", "2026-11", "2030-01", ""} {
		resp, body := s.do(t, fin, "POST", "/api/v1/invoice-runs", "application/json", []byte(`{"period":"`+p+`"}`))
		if resp.StatusCode != 400 || problemCode(t, resp, body) != "invalid" {
			t.Errorf("run of period %q: %d %s", p, resp.StatusCode, body)
		}
	}
	resp, body := s.do(t, fin, "POST", "/api/v1/invoice-runs", "application/json", []byte(`{"period":"2026-10"}`))
	if resp.StatusCode != 200 {
		t.Fatalf("run: %d %s", resp.StatusCode, body)
	}
	if run := decode[billing.Run](t, body); run.Created != 2 || run.Status != "succeeded" || run.Trigger != "api" {
		t.Fatalf("run = %+v", run)
	}

	// List with filters and a cursor.
	type list struct {
		Data       []billing.Invoice `json:"data"`
		NextCursor string            `json:"next_cursor"`
	}
	resp, body = s.do(t, fin, "GET", "/api/v1/invoices?period=2026-10&status=draft&limit=1", "", nil)
	page1 := decode[list](t, body)
	if resp.StatusCode != 200 || len(page1.Data) != 1 || page1.NextCursor == "" || page1.Data[0].CustomerID != "cust-a" {
		t.Fatalf("page 1: %d %s", resp.StatusCode, body)
	}
	_, body = s.do(t, fin, "GET", "/api/v1/invoices?period=2026-10&status=draft&limit=1&cursor="+page1.NextCursor, "", nil)
	page2 := decode[list](t, body)
	if len(page2.Data) != 1 || page2.NextCursor != "" || page2.Data[0].CustomerID != "cust-b" {
		t.Fatalf("page 2: %s", body)
	}
	for _, q := range []string{"status=paid", "period=2026-1", "cursor=nonsense", "limit=0"} {
		if resp, body := s.do(t, fin, "GET", "/api/v1/invoices?"+q, "", nil); resp.StatusCode != 400 {
			t.Errorf("list ?%s: %d %s", q, resp.StatusCode, body)
		}
	}
	a, b := page1.Data[0], page2.Data[0]
	// Money is a decimal string with the currency's decimals, next to the currency.
	var raw map[string]any
	_, body = s.do(t, fin, "GET", "/api/v1/invoices/"+a.ID, "", nil)
	_ = json.Unmarshal(body, &raw)
	if raw["currency"] != "USD" || raw["total"] != "0.10" || raw["status"] != "draft" {
		t.Fatalf("invoice JSON %s", body)
	}

	// Customers never see drafts; another customer's invoice is not found.
	_, body = s.do(t, auth.RoleCustomer, "GET", "/api/v1/customers/cust-a/invoices", "", nil)
	if l := decode[list](t, body); len(l.Data) != 0 {
		t.Fatalf("customer sees drafts: %s", body)
	}
	if resp, _ := s.do(t, auth.RoleCustomer, "GET", "/api/v1/invoices/"+a.ID, "", nil); resp.StatusCode != 404 {
		t.Fatalf("customer reads its draft: %d", resp.StatusCode)
	}

	// Approve; approving again or voiding a draft is 409.
	resp, body = s.do(t, fin, "POST", "/api/v1/invoices/"+a.ID+"/approve", "", nil)
	if inv := decode[billing.Invoice](t, body); resp.StatusCode != 200 || inv.Number != "PST-2026-000001" || inv.Status != billing.StatusFinalized {
		t.Fatalf("approve: %d %s", resp.StatusCode, body)
	}
	resp, body = s.do(t, fin, "POST", "/api/v1/invoices/"+a.ID+"/approve", "", nil)
	if resp.StatusCode != 409 || problemCode(t, resp, body) != "conflict" || !strings.Contains(string(body), "only a draft") {
		t.Fatalf("approve twice: %d %s", resp.StatusCode, body)
	}
	resp, body = s.do(t, fin, "POST", "/api/v1/invoices/"+b.ID+"/void", "application/json", []byte(`{"reason":"test"}`))
	if resp.StatusCode != 409 || problemCode(t, resp, body) != "conflict" {
		t.Fatalf("void a draft: %d %s", resp.StatusCode, body)
	}
	if resp, _ := s.do(t, fin, "POST", "/api/v1/invoices/in_nope/approve", "", nil); resp.StatusCode != 404 {
		t.Fatalf("approve missing: %d", resp.StatusCode)
	}

	// The customer sees its finalized invoice, in every format.
	_, body = s.do(t, auth.RoleCustomer, "GET", "/api/v1/customers/cust-a/invoices", "", nil)
	if l := decode[list](t, body); len(l.Data) != 1 || l.Data[0].Number != "PST-2026-000001" {
		t.Fatalf("customer list: %s", body)
	}
	if resp, _ := s.do(t, auth.RoleCustomer, "GET", "/api/v1/invoices/"+b.ID, "", nil); resp.StatusCode != 404 {
		t.Fatalf("customer reads another customer's invoice: %d", resp.StatusCode)
	}
	resp, body = s.do(t, auth.RoleCustomer, "GET", "/api/v1/invoices/"+a.ID+".csv", "", nil)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") || !strings.Contains(string(body), "PST-2026-000001") {
		t.Fatalf("csv: %d %s", resp.StatusCode, body)
	}
	resp, body = s.do(t, fin, "GET", "/api/v1/invoices/"+a.ID+".pdf", "", nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/pdf" {
		t.Fatalf("pdf: %d %s", resp.StatusCode, resp.Header)
	}
	pdf := filepath.Join(t.TempDir(), "a.pdf")
	_ = os.WriteFile(pdf, body, 0o644)
	text, err := exec.Command("pdftotext", pdf, "-").Output()
	if err != nil || !strings.Contains(string(text), "PST-2026-000001") || !strings.Contains(string(text), "Customer cust-a") {
		t.Fatalf("pdf text: %v %s", err, text)
	}

	// Void with a reason reissues.
	resp, body = s.do(t, fin, "POST", "/api/v1/invoices/"+a.ID+"/void", "application/json", []byte(`{"reason":""}`))
	if resp.StatusCode != 400 {
		t.Fatalf("void without reason: %d %s", resp.StatusCode, body)
	}
	resp, body = s.do(t, fin, "POST", "/api/v1/invoices/"+a.ID+"/void", "application/json", []byte(`{"reason":"wrong address"}`))
	vr := decode[struct {
		Voided   billing.Invoice `json:"voided"`
		Reissued billing.Invoice `json:"reissued"`
	}](t, body)
	if resp.StatusCode != 200 || vr.Voided.Status != billing.StatusVoid || vr.Reissued.Replaces != a.ID || vr.Reissued.Seq != 2 || vr.Voided.ReplacedBy != vr.Reissued.ID {
		t.Fatalf("void: %d %s", resp.StatusCode, body)
	}

	// Period export: every invoice of the month, one row per line.
	resp, body = s.do(t, fin, "GET", "/api/v1/invoices.csv?period=2026-10", "", nil)
	if lines := strings.Count(strings.TrimSpace(string(body)), "\n"); resp.StatusCode != 200 || lines != 3 {
		t.Fatalf("export: %d, %d rows: %s", resp.StatusCode, lines, body)
	}
	if resp, _ := s.do(t, fin, "GET", "/api/v1/invoices.csv?period=bad", "", nil); resp.StatusCode != 400 {
		t.Fatalf("export of a bad period: %d", resp.StatusCode)
	}
	// Without a period: a 400 that names the missing parameter.
	for _, path := range []string{"/api/v1/invoices.csv", "/api/v1/invoice-runs/unbilled"} {
		resp, body := s.do(t, fin, "GET", path, "", nil)
		if resp.StatusCode != 400 || !strings.Contains(string(body), "query parameter period is required") {
			t.Errorf("%s without period: %d %s", path, resp.StatusCode, body)
		}
	}
	// An invoice is found by its number.
	resp, body = s.do(t, fin, "GET", "/api/v1/invoices?number=PST-2026-000001", "", nil)
	if l := decode[list](t, body); resp.StatusCode != 200 || len(l.Data) != 1 || l.Data[0].ID != a.ID {
		t.Fatalf("by number: %d %s", resp.StatusCode, body)
	}

	// Month to date, rated like the invoice: 4 GB messages at the launch price.
	resp, body = s.do(t, auth.RoleCustomer, "GET", "/api/v1/customers/cust-a/invoices/upcoming", "", nil)
	up := decode[billing.Invoice](t, body)
	if resp.StatusCode != 200 || up.Period.String() != "2026-11" || len(up.Lines) != 1 || up.Lines[0].Quantity != 4 || up.Total.String() != "0.14" {
		t.Fatalf("upcoming: %d %s", resp.StatusCode, body)
	}
	// It is no invoice yet: no id (not "id": ""), and its line says what
	// the messages were sent as.
	if raw := decode[map[string]any](t, body); raw["id"] != nil || up.Lines[0].Category != "notification" || strings.Join(up.Lines[0].MessageCategories, ",") != "marketing" {
		t.Fatalf("upcoming id %v, line %+v", raw["id"], up.Lines[0])
	}
	if resp, _ := s.do(t, auth.RoleCustomer, "GET", "/api/v1/customers/cust-b/invoices/upcoming", "", nil); resp.StatusCode != 404 {
		t.Fatalf("another customer's upcoming: %d", resp.StatusCode)
	}

	// Runs are recorded; the unbilled report answers.
	_, body = s.do(t, fin, "GET", "/api/v1/invoice-runs?period=2026-10", "", nil)
	if runs := decode[struct{ Data []billing.Run }](t, body); len(runs.Data) != 1 {
		t.Fatalf("runs: %s", body)
	}
	if resp, body := s.do(t, fin, "GET", "/api/v1/invoice-runs/unbilled?period=2026-10", "", nil); resp.StatusCode != 200 {
		t.Fatalf("unbilled: %d %s", resp.StatusCode, body)
	}
}
