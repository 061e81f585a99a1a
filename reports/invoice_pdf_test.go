package reports

import (
	"bytes"
	"context"
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
	"postage/internal/pdfrender"
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
	inv := withIssuer(sampleInvoice(), billing.Issuer{Name: "Postage Messaging Ltd.", Address: "1 Example Street, London, United Kingdom",
		TaxID: "GB123456789", BankDetails: "Example Bank plc\nIBAN GB33 BUKB 2020 1555 5555 55\nSWIFT BUKBGB22"})
	inv.Customer.TaxID = "DE811907980"
	inv.Customer.Address = &billing.Address{Line1: "Hauptstraße 5", City: "Berlin", PostalCode: "10115", Country: "DE"}
	issued, due := billing.DateOf(*inv.FinalizedAt), billing.DateOf(inv.FinalizedAt.AddDate(0, 0, 30))
	inv.IssueDate, inv.DueDate, inv.PaymentTermsDays = &issued, &due, 30
	pdf := renderPDF(t, inv)
	text := pdfText(t, pdf)
	for _, want := range []string{
		"Postage Messaging Ltd.", "1 Example Street", "London", "Tax id GB123456789",
		"Payment to", "Example Bank plc", "IBAN GB33 BUKB 2020 1555 5555 55", "SWIFT BUKBGB22",
		"INVOICE", "PST-2026-000042", "Bill to", "Acme Müller GmbH", "Hauptstraße 5", "10115 Berlin", "Germany", "Tax id DE811907980", "acme-1",
		"Issued", "4 November 2026", "Due", "4 December 2026", "Payment terms", "net 30 days",
		"October 2026", "Usage 2026-10", "United Kingdom", "notification", "300,000", "10,330.00", "tier 250,001 to 1,000,000",
		"0.034433 avg", "0.076800", // unit prices with one number of decimals
		"Free of charge", "session", "Germany session 50 (free category)",
		"Adjustments for earlier months", "2026-09", "0.17",
		"Subtotal", "10,424.77", "Total USD", "10,424.94",
		"Free categories (session) are metered and shown at 0.00.", "Adjustment lines bill usage of earlier months",
		"page 1 of 1",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("PDF text lacks %q", want)
		}
	}
	for _, not := range []string{" GB ", "?"} {
		if strings.Contains(text, not) {
			t.Errorf("PDF text has %q", not)
		}
	}
	if t.Failed() {
		t.Log(text)
	}
	keepPages(t, "invoice", pdf)
}

// A discounted line shows its list price, the discount and the net in
// columns of their own.
func TestInvoicePDFDiscountColumns(t *testing.T) {
	inv := withIssuer(sampleInvoice(), billing.Issuer{Name: "Postage"})
	l := &inv.Lines[1] // DE notification, 94.77
	l.Discount = decimal.RequireFromString("5")
	l.ListAmount = billing.NewMoney(decimal.RequireFromString("99.76"), 2)
	l.DiscountAmount = billing.NewMoney(decimal.RequireFromString("4.99"), 2)
	text := pdfText(t, renderPDF(t, inv))
	for _, want := range []string{"List", "Discount", "Net USD", "99.76", "-4.99 (5%)", "94.77", "10,330.00"} {
		if !strings.Contains(text, want) {
			t.Errorf("PDF text lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "discount 5%") {
		t.Errorf("the discount is still a sub-row:\n%s", text)
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
	pdf := renderPDF(t, withIssuer(inv, billing.Issuer{Name: "Postage"}))
	text := pdfText(t, pdf)
	for _, want := range []string{"VOID INVOICE", "This invoice is VOID: wrong VAT id", "Replaced by invoice in_def", "page 2 of 4", "page 4 of 4", "Total USD"} {
		if !strings.Contains(text, want) {
			t.Errorf("PDF text lacks %q", want)
		}
	}
	// The table's header repeats on every page it runs over.
	if got := strings.Count(text, "Country / market"); got < 3 {
		t.Errorf("the lines' header is on %d pages, want every page of the table", got)
	}
	keepPages(t, "void", pdf)
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
	a := renderPDF(t, inv)
	time.Sleep(1100 * time.Millisecond) // a clock-stamped document would differ now
	b := renderPDF(t, inv)
	if !bytes.Equal(a, b) {
		t.Fatal("two drawings of one invoice differ")
	}
	if !bytes.Contains(a, []byte("/CreationDate (D:20261104021700+00'00')")) {
		t.Error("the PDF's creation date is not the invoice's finalization")
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
	text := pdfText(t, renderPDF(t, inv))
	for _, want := range []string{"0.0887 avg", "0.0845", "free"} {
		if !strings.Contains(text, want) {
			t.Errorf("PDF text lacks %q:\n%s", want, text)
		}
	}
}

// testPrinter prints the tests' PDFs: one headless Chromium for the test
// binary, as a server has one.
var testPrinter = pdfrender.New(pdfrender.Options{})

// renderPDF prints an invoice as the server does.
func renderPDF(t *testing.T, inv billing.Invoice) []byte {
	t.Helper()
	b, err := InvoiceDocuments{PDF: testPrinter}.RenderInvoice(context.Background(), inv, billing.FormatPDF)
	if err != nil {
		t.Fatalf("print the invoice (chromium and the Noto fonts come from scripts/install-deps.sh): %v", err)
	}
	return b
}

// keepPages writes the PDF and its pages as PNG (80 dpi) to
// $POSTAGE_KEEP_PDF, for a person to look at.
func keepPages(t *testing.T, name string, pdf []byte) {
	t.Helper()
	keep := os.Getenv("POSTAGE_KEEP_PDF")
	if keep == "" {
		return
	}
	path := filepath.Join(keep, name+".pdf")
	if err := os.WriteFile(path, pdf, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("pdftoppm", "-png", "-r", "80", path, filepath.Join(keep, name)).CombinedOutput(); err != nil {
		t.Fatalf("pdftoppm: %v %s", err, out)
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
