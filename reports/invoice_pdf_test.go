package reports

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"postage/billing"
	"postage/pricing"
)

func up64(n int64) *int64 { return &n }

func sampleInvoice() billing.Invoice {
	d := decimal.RequireFromString
	fin := time.Date(2026, 11, 4, 2, 17, 0, 0, time.UTC)
	oct, sep := pricing.MustParseMonth("2026-10"), pricing.MustParseMonth("2026-09")
	lines := []billing.Line{
		{Kind: billing.KindUsage, Period: oct, Market: "GB", Countries: []pricing.CountryQuantity{{Country: "GB", Quantity: 300000}}, Category: "notification",
			Mode: pricing.ModeGraduated, Quantity: 300000, UnitPrice: billing.NewMoney(d("0.034433"), 2), Average: true, Amount: billing.NewMoney(d("10330.00"), 2),
			Tiers: []billing.Tier{{From: 1, UpTo: up64(250000), Quantity: 250000, UnitPrice: billing.NewMoney(d("0.0345"), 2), Amount: billing.NewMoney(d("8625"), 2)},
				{From: 250001, UpTo: up64(1000000), Quantity: 50000, UnitPrice: billing.NewMoney(d("0.034100"), 2), Amount: billing.NewMoney(d("1705"), 2)}}},
		{Kind: billing.KindUsage, Period: oct, Market: "DE", Countries: []pricing.CountryQuantity{{Country: "DE", Quantity: 1234}}, Category: "notification",
			Mode: pricing.ModeFlat, Quantity: 1234, UnitPrice: billing.NewMoney(d("0.0768"), 2), Amount: billing.NewMoney(d("94.77"), 2)},
		{Kind: billing.KindUsage, Period: oct, Market: "DE", Countries: []pricing.CountryQuantity{{Country: "DE", Quantity: 50}}, Category: "session",
			Free: true, Quantity: 50, Amount: billing.NewMoney(d("0"), 2)},
		{Kind: billing.KindAdjustment, Period: sep, Market: "GB", Category: "notification", Quantity: 5, Amount: billing.NewMoney(d("0.17"), 2)},
	}
	return billing.Invoice{
		ID: "in_abc", Number: "PST-2026-000042", CustomerID: "acme-1", Period: oct, Seq: 1, Status: billing.StatusFinalized,
		Customer: billing.CustomerSnapshot{ID: "acme-1", Name: "Acme Müller GmbH", Country: "DE", Email: "billing@acme.example", Currency: "USD"},
		Currency: "USD", CardID: "launch", CardVersion: 1, Lines: lines,
		Subtotal: billing.NewMoney(d("10424.77"), 2), Adjustments: billing.NewMoney(d("0.17"), 2), Total: billing.NewMoney(d("10424.94"), 2),
		UsageCutoff: fin.Add(-time.Minute), FinalizeAfter: fin, CreatedAt: fin.Add(-72 * time.Hour), UpdatedAt: fin, FinalizedAt: &fin,
	}
}

func TestInvoicePDFText(t *testing.T) {
	if _, err := exec.LookPath("pdftotext"); err != nil {
		t.Fatal("pdftotext is missing: apt-get install -y poppler-utils (make deps does)")
	}
	var buf bytes.Buffer
	if err := InvoicePDF(&buf, withIssuer(sampleInvoice(), billing.Issuer{Name: "Postage Messaging Ltd.", Address: "1 Example Street, London, United Kingdom"})); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pdf := filepath.Join(dir, "invoice.pdf")
	if err := os.WriteFile(pdf, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("pdftotext", "-layout", pdf, "-").Output()
	if err != nil {
		t.Fatal(err)
	}
	text := string(out)
	for _, want := range []string{
		"Postage Messaging Ltd.", "INVOICE", "PST-2026-000042", "Bill to", "Acme Müller GmbH", "acme-1",
		"October 2026", "Usage 2026-10", "notification", "300,000", "10330.00", "tier 250,001 to 1,000,000",
		"session", "free", "Adjustments for earlier months", "2026-09", "0.17",
		"Subtotal", "10424.77", "Total USD", "10424.94",
		"Free categories (session) are metered and shown at 0.00.", "Adjustment lines bill usage of earlier months",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("PDF text lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(text)
	}
	// Render the first page for a person to look at (POSTAGE_KEEP_PDF=dir keeps it).
	if keep := os.Getenv("POSTAGE_KEEP_PDF"); keep != "" {
		_ = os.WriteFile(filepath.Join(keep, "invoice.pdf"), buf.Bytes(), 0o644)
		if err := exec.Command("pdftoppm", "-png", "-r", "70", "-f", "1", "-l", "1", pdf, filepath.Join(keep, "invoice")).Run(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestInvoicePDFManyLinesAndVoid(t *testing.T) {
	inv := sampleInvoice()
	inv.Status, inv.VoidReason, inv.ReplacedBy = billing.StatusVoid, "wrong VAT id", "in_def"
	base := inv.Lines[1]
	for i := 0; i < 120; i++ {
		l := base
		l.Market = string(rune('A'+i/26)) + string(rune('A'+i%26))
		inv.Lines = append(inv.Lines, l)
	}
	var buf bytes.Buffer
	if err := InvoicePDF(&buf, withIssuer(inv, billing.Issuer{Name: "Postage"})); err != nil {
		t.Fatal(err)
	}
	pdf := filepath.Join(t.TempDir(), "void.pdf")
	if err := os.WriteFile(pdf, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("pdftotext", pdf, "-").Output()
	if err != nil {
		t.Fatal(err)
	}
	text := string(out)
	for _, want := range []string{"VOID INVOICE", "This invoice is VOID: wrong VAT id", "Replaced by invoice in_def", "page 2 of", "Total USD"} {
		if !strings.Contains(text, want) {
			t.Errorf("PDF text lacks %q", want)
		}
	}
}

func TestInvoiceCSV(t *testing.T) {
	var buf bytes.Buffer
	inv := sampleInvoice()
	empty := sampleInvoice()
	empty.ID, empty.Lines, empty.Customer.Name = "in_empty", nil, "=HYPERLINK(1)"
	if err := InvoiceCSV(&buf, []billing.Invoice{inv, empty}); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(recs), 1+4+1; got != want {
		t.Fatalf("%d records, want %d", got, want)
	}
	col := map[string]int{}
	for i, h := range recs[0] {
		col[h] = i
	}
	first := recs[1]
	for k, want := range map[string]string{"number": "PST-2026-000042", "period": "2026-10", "currency": "USD", "line_kind": "usage", "market": "GB",
		"countries": "GB:300000", "quantity": "300000", "amount": "10330.00", "invoice_total": "10424.94", "finalized_at": "2026-11-04T02:17:00Z"} {
		if got := first[col[k]]; got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if adj := recs[4]; adj[col["line_kind"]] != "adjustment" || adj[col["line_period"]] != "2026-09" || adj[col["unit_price"]] != "" {
		t.Errorf("adjustment row %v", adj)
	}
	if last := recs[5]; last[col["invoice_id"]] != "in_empty" || last[col["customer_name"]] != "'=HYPERLINK(1)" || last[col["line_kind"]] != "" {
		t.Errorf("empty invoice row %v", last)
	}
}

func withIssuer(inv billing.Invoice, i billing.Issuer) billing.Invoice {
	inv.Issuer = i
	return inv
}

// The same invoice draws the same PDF, byte for byte: its dates are the
// invoice's own, not the clock's.
func TestInvoicePDFIsDeterministic(t *testing.T) {
	inv := withIssuer(sampleInvoice(), billing.Issuer{Name: "Postage"})
	var a, b bytes.Buffer
	if err := InvoicePDF(&a, inv); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // a clock-stamped document would differ now
	if err := InvoicePDF(&b, inv); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("two drawings of one invoice differ")
	}
}

// A document frozen before unit prices were money (a decimal: "0" on a
// free line, "0.0887") still reads back, marshals to its own bytes, and
// draws the unit prices it shows, the free line's as money (0.00).
func TestInvoiceCSVOfAnEarlierFrozenDocument(t *testing.T) {
	old := []byte(`{"id":"in_old","number":"PST-2026-000007","customer_id":"acme-1","period":"2026-10","seq":1,"status":"finalized",` +
		`"issuer":{"name":"Postage"},"customer":{"id":"acme-1","name":"Acme","currency":"USD"},"currency":"USD","minor_units":2,"card_id":"launch","card_version":1,` +
		`"lines":[{"kind":"usage","period":"2026-10","market":"DE","category":"notification","mode":"graduated","quantity":3921,` +
		`"tiers":[{"from":1,"up_to":2000,"quantity":2000,"unit_price":"0.09","amount":"180"},{"from":2001,"up_to":null,"quantity":1921,"unit_price":"0.0845","amount":"162.3245"}],` +
		`"unit_price":"0.0887","average":true,"amount":"342.32","description":"notification messages, DE"},` +
		`{"kind":"usage","period":"2026-10","market":"GB","category":"session","free":true,"quantity":5,"unit_price":"0","amount":"0.00","description":"session messages, GB"}],` +
		`"subtotal":"342.32","adjustments":"0.00","total":"342.32","usage_cutoff":"2026-11-01T00:00:00Z","finalize_after":"2026-11-04T00:00:00Z",` +
		`"created_at":"2026-11-01T00:00:00Z","updated_at":"2026-11-01T00:00:00Z","finalized_at":"2026-11-04T02:17:00Z"}`)
	inv, err := billing.DecodeDocument(old)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := json.Marshal(inv); err != nil || !bytes.Equal(b, old) {
		t.Fatalf("an earlier frozen document marshals to %s (%v)", b, err)
	}
	var buf bytes.Buffer
	if err := InvoiceCSV(&buf, []billing.Invoice{inv}); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	col := map[string]int{}
	for i, h := range recs[0] {
		col[h] = i
	}
	for i, want := range []string{"0.0887", "0.00"} {
		if got := recs[1+i][col["unit_price"]]; got != want {
			t.Errorf("line %d unit_price = %q, want %q", i+1, got, want)
		}
	}
	var pdf bytes.Buffer
	if err := InvoicePDF(&pdf, inv); err != nil {
		t.Fatal(err)
	}
	text := pdfText(t, pdf.Bytes())
	for _, want := range []string{"0.0887 avg", "0.0845", "free"} {
		if !strings.Contains(text, want) {
			t.Errorf("PDF text lacks %q:\n%s", want, text)
		}
	}
}

// pdfText extracts a PDF's text with pdftotext (poppler-utils).
func pdfText(t *testing.T, pdf []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "invoice.pdf")
	if err := os.WriteFile(path, pdf, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("pdftotext", "-layout", path, "-").Output()
	if err != nil {
		t.Fatalf("pdftotext (poppler-utils): %v", err)
	}
	return string(out)
}
