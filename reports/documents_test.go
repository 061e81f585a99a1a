package reports

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"postage/billing"
	"postage/pricing"
)

// A credit note prints the issuer's legal details, the customer, what it
// credits and the totals, in the documents' one layout.
func TestCreditNotePDF(t *testing.T) {
	d := decimal.RequireFromString
	money := func(s string) billing.Money { return billing.NewMoney(d(s), 2) }
	issued := time.Date(2026, 11, 20, 9, 30, 0, 0, time.UTC)
	cn := billing.CreditNote{
		ID: "cn_1", Number: "CN-2026-000001", InvoiceID: "in_abc", InvoiceNumber: "PST-2026-000042", CustomerID: "acme-1",
		Period: pricing.MustParseMonth("2026-10"), Currency: "EUR", MinorUnits: 2, Reason: "messages sent twice by our fault",
		Issuer: billing.Issuer{Name: "Postage Messaging Ltd.", Address: "1 Example Street\nLondon EC1A 1BB\nUnited Kingdom", TaxID: "GB123456789",
			BankDetails: "Example Bank plc\nIBAN GB33 BUKB 2020 1555 5555 55\nSWIFT BUKBGB22"},
		Customer: billing.CustomerSnapshot{ID: "acme-1", Name: "شركة الرسائل", TaxID: "DE811907980", Country: "DE", Currency: "EUR"},
		Lines: []billing.CreditLine{
			{InvoiceLine: 2, Description: "marketing messages, DE", Quantity: 12000, Amount: money("1234.50")},
			{Description: "goodwill", Amount: money("10.00")},
		},
		Subtotal: money("1244.50"),
		TaxLines: []billing.TaxLine{{Name: "VAT", Jurisdiction: "DE", Rate: d("19"), RateID: "tr_1", TaxableAmount: money("1244.50"), Tax: money("236.46")}},
		Tax:      money("236.46"), Total: money("1480.96"),
		IssueDate: billing.DateOf(issued), IssuedAt: issued,
	}
	pdf, err := InvoiceDocuments{PDF: testPrinter}.RenderCreditNote(context.Background(), cn, billing.FormatPDF)
	if err != nil {
		t.Fatal(err)
	}
	text := pdfText(t, pdf)
	for _, want := range []string{"CREDIT NOTE", "Postage Messaging Ltd.", "London EC1A 1BB", "Tax id GB123456789", "Bank details", "SWIFT BUKBGB22",
		"Credit to", "Germany", "Tax id DE811907980", "CN-2026-000001", "20 November 2026", "PST-2026-000042", "messages sent twice by our fault",
		"marketing messages, DE", "12,000", "1,234.50", "goodwill", "VAT 19% (DE) on 1,244.50", "236.46", "Total credited EUR", "1,480.96",
		"page 1 of 1"} {
		if !strings.Contains(text, want) {
			t.Errorf("credit note PDF lacks %q", want)
		}
	}
	if !containsText(text, "شركة الرسائل") {
		t.Errorf("credit note PDF lacks the customer's Arabic name")
	}
	if t.Failed() {
		t.Log(text)
	}
	keepPages(t, "credit-note", pdf)
}

// Every string of a document is text: markup in a customer's name, an
// address or a description is escaped, never run or parsed.
func TestDocumentHTMLEscapes(t *testing.T) {
	inv := withIssuer(sampleInvoice(), billing.Issuer{Name: `Evil </style><script>alert(1)</script>`, Address: `"; } body { display: none } /*`})
	inv.Customer.Name = `<img src=x onerror=alert(1)>`
	inv.Lines[0].Category = `</td></tr></table><h1>owned</h1>`
	var b strings.Builder
	if err := InvoiceHTML(&b, inv); err != nil {
		t.Fatal(err)
	}
	html := b.String()
	for _, bad := range []string{"<script>", "<img", "<h1>owned", "</style><script"} {
		if strings.Contains(html, bad) {
			t.Errorf("the document's HTML has %q unescaped", bad)
		}
	}
	for _, want := range []string{"&lt;img src=x onerror=alert(1)&gt;", "&lt;/td&gt;&lt;/tr&gt;"} {
		if !strings.Contains(html, want) {
			t.Errorf("the document's HTML lacks the escaped %q", want)
		}
	}
	text := pdfText(t, renderPDF(t, inv))
	for _, want := range []string{"<img src=x onerror=alert(1)>", "</td></tr></table><h1>owned</h1>", "Evil </style><script>alert(1)</script>"} {
		if !strings.Contains(text, want) {
			t.Errorf("the PDF does not print %q as text:\n%s", want, text)
		}
	}
}

// A quote prints its lines with list price, discount and amount, tiers,
// and totals, thousands separated.
func TestQuotePDF(t *testing.T) {
	d := decimal.RequireFromString
	up := int64(250000)
	q := QuoteDocument{
		CardName: "Launch", Customer: "Acme Ltd (acme-1)", CustomerCountry: "IN", Created: time.Date(2026, 11, 20, 9, 30, 0, 0, time.UTC),
		Result: pricing.Result{CardID: "launch", Version: 3, Month: pricing.MustParseMonth("2026-11"), Currency: "USD", MinorUnits: 2, Total: d("21066.25"),
			Lines: []pricing.Line{
				{Market: "DE", Countries: []pricing.CountryQuantity{{Country: "DE", Quantity: 300000}}, Category: "marketing", Quantity: 300000, UnitPrice: d("0.0739"), Average: true,
					Tiers:    []pricing.TierLine{{From: 1, UpTo: &up, Quantity: 250000, UnitPrice: d("0.0745"), Amount: d("18625")}, {From: 250001, Quantity: 50000, UnitPrice: d("0.0705"), Amount: d("3525")}},
					Discount: d("5"), ListAmount: d("22150.00"), DiscountAmount: d("1107.50"), Amount: d("21042.50")},
				{Market: "IN", Countries: []pricing.CountryQuantity{{Country: "IN", Quantity: 5000}}, Category: "utility", Quantity: 5000, UnitPrice: d("0.0047"), Discount: d("5"),
					ListAmount: d("23.50"), DiscountAmount: d("1.17"), Amount: d("22.33")},
				{Market: "GB", Category: "service", Free: true, Quantity: 50, Amount: d("0")},
			}},
	}
	pdf, err := QuotePDF(context.Background(), testPrinter, q)
	if err != nil {
		t.Fatal(err)
	}
	text := pdfText(t, pdf)
	for _, want := range []string{"QUOTE", "Launch (launch), version 3", "2026-11", "Acme Ltd (acme-1)", "India", "Germany", "300,000",
		"0.0739 avg", "0.0047", "0.0745", "22,150.00", "-1,107.50 (5%)", "21,042.50", "tier 250,001 and above", "free",
		"List price", "22,173.50", "Discounts", "-1,108.67", "Monthly total USD", "21,066.25", "page 1 of 1"} {
		if !strings.Contains(text, want) {
			t.Errorf("quote PDF lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(text)
	}
	keepPages(t, "quote", pdf)
}

// A consolidated, taxed, cost-plus invoice prints everything the invoice
// holds: a table per member with its total, free windows folded with
// their reason, multi-country lines by country name, the cost-plus
// detail, the cost card and the exchange rate, usage not billed, tax
// lines and the reverse-charge note.
func TestInvoicePDFEverything(t *testing.T) {
	d := decimal.RequireFromString
	m := func(s string) billing.Money { return billing.NewMoney(d(s), 2) }
	oct := pricing.MustParseMonth("2026-10")
	inv := withIssuer(sampleInvoice(), billing.Issuer{Name: "Postage Messaging Ltd.", TaxID: "GB123456789"})
	inv.MinorUnits = 2
	inv.Sections = []billing.Section{{CustomerID: "acme-1", Name: "Acme Müller GmbH", Total: m("120.00")}, {CustomerID: "acme-eg", Name: "شركة الرسائل", Total: m("30.50")}}
	inv.Lines = []billing.Line{
		{Kind: billing.KindUsage, Period: oct, Member: "acme-1", Market: "DE", Countries: []pricing.CountryQuantity{{Country: "DE", Quantity: 1000}}, Category: "marketing",
			Quantity: 1000, UnitPrice: m("0.12"), Amount: m("120.00"), PoolQuantity: 1400,
			CostPlus: &pricing.CostPlusLine{Cost: d("100.00"), UnitCost: d("0.1"), Markup: d("15"), Fee: d("0.005"), Floor: d("0.05")}},
		{Kind: billing.KindUsage, Period: oct, Member: "acme-eg", Market: "Rest of Africa", Countries: []pricing.CountryQuantity{{Country: "GH", Quantity: 300}, {Country: "KE", Quantity: 100}},
			Category: "utility", Quantity: 400, UnitPrice: m("0.07625"), Average: true, Amount: m("30.50")},
		{Kind: billing.KindUsage, Period: oct, Member: "acme-eg", Market: "EG", Countries: []pricing.CountryQuantity{{Country: "EG", Quantity: 7}}, Category: "marketing",
			Free: true, PricingType: "free_customer_service", Quantity: 7, UnitPrice: m("0"), Amount: m("0.00"), Description: "marketing messages, EG (free — customer service window)"},
	}
	inv.Unbilled = []billing.UnbilledLine{{Period: oct, Member: "acme-eg", Country: "EG", Category: "brand_new", Quantity: 12, Reason: "unknown_category", Detail: "no card prices brand_new"}}
	inv.CostCard = &pricing.CostRef{CardID: "meta", Version: 2, Currency: "EUR"}
	inv.ExchangeRates = []pricing.ExchangeRate{{From: "EUR", To: "USD", Month: oct, Rate: d("1.0837")}}
	inv.Subtotal, inv.Adjustments = m("150.50"), m("0.00")
	inv.TaxLines = []billing.TaxLine{{Name: "Reverse charge", Jurisdiction: "DE", TaxableAmount: m("150.50"), Tax: m("0.00")}}
	inv.Tax, inv.Total = m("0.00"), m("150.50")
	inv.TaxNote = "Reverse charge: VAT to be accounted for by the recipient (Article 196, Council Directive 2006/112/EC)."
	pdf := renderPDF(t, inv)
	text := pdfText(t, pdf)
	for _, want := range []string{
		"Usage 2026-10: Acme Müller GmbH (acme-1)", "Section total Acme Müller GmbH", "120.00", "portfolio volume 1,400: its tiers apply",
		"cost 100 EUR (0.1 a message) + 15% + 0.005 a message", "Cost card", "meta, version 2 (EUR)", "Exchange rate 2026-10", "1 EUR = 1.0837 USD",
		"Rest of Africa", "Ghana 300, Kenya 100", "0.07625 avg", "Free of charge", "Egypt marketing 7 (free — customer service window)",
		"Not billed (shown for information, not charged)", "2026-10 Egypt", "unknown_category: no card prices brand_new",
		"Reverse charge (DE) on 150.50", "Total USD", "150.50", "Reverse charge: VAT to be accounted for by the recipient",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("PDF text lacks %q", want)
		}
	}
	if !containsText(text, "شركة الرسائل") {
		t.Error("PDF text lacks the Arabic member's name")
	}
	if t.Failed() {
		t.Log(text)
	}
	keepPages(t, "everything", pdf)
}
