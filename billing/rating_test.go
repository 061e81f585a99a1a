package billing_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"postage"
	"postage/billing"
	"postage/pricing"
)

// A customer is invoiced in its own currency or not at all, never in its
// card's while its snapshot shows its own (issue #14, item 8).
func TestCustomerIsBilledInItsOwnCurrency(t *testing.T) {
	f := newFixture(t, "usd")
	ctx := context.Background()
	cs := f.runner.Customers
	if _, err := cs.Create(ctx, billing.Customer{ID: "jp", Name: "Nippon KK", Currency: "JPY", Country: "JP"}); err != nil {
		t.Fatal(err)
	}
	f.events(
		ev{customer: "jp", country: "DE", category: "marketing", at: "2026-10-05 10:00:00", ingested: "2026-10-05 10:00:01", qty: 100},
		ev{customer: "usd", country: "DE", category: "marketing", at: "2026-10-05 10:00:00", ingested: "2026-10-05 10:00:01", qty: 100},
	)
	// The default card bills in USD: the JPY customer is not billed by it.
	run := f.run("2026-10")
	if run.Created != 1 || run.Unbilled != 1 {
		t.Fatalf("run = %+v", run)
	}
	rows, err := f.store.Unbilled(ctx, pricing.MustParseMonth("2026-10"))
	if err != nil || len(rows) != 1 || rows[0].CustomerID != "jp" || rows[0].Reason != billing.UnbilledCurrencyMismatch || !strings.Contains(rows[0].Detail, "JPY") {
		t.Fatalf("unbilled = %+v, %v", rows, err)
	}
	if invs := f.invoices(billing.InvoiceFilter{CustomerID: "jp"}); len(invs) != 0 {
		t.Fatalf("the JPY customer got invoices: %+v", invs)
	}
	f.clock.Set(time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC))
	f.events(ev{customer: "jp", country: "DE", category: "marketing", at: "2026-11-05 10:00:00", ingested: "2026-11-05 10:00:01"})
	if _, err := f.runner.Upcoming(ctx, "jp"); postage.ErrorCode(err) != postage.ECONFLICT || !strings.Contains(postage.ErrorMessage(err), "JPY") {
		t.Fatalf("month-to-date bill of the JPY customer: %v, want a conflict naming the currencies", err)
	}

	// Assigning a card in another currency is refused; nothing changes.
	if err := f.prices.AssignCard(ctx, "jp", "test", pricing.MustParseMonth("2026-10")); postage.ErrorCode(err) != postage.ECONFLICT {
		t.Fatalf("assigning a USD card to a JPY customer: %v, want a conflict", err)
	}
	// A card in its currency bills it, in that currency.
	if err := f.prices.CreateCard(ctx, pricing.RateCard{ID: "yen", Name: "Yen", Currency: "JPY", Rounding: pricing.RoundHalfEven}); err != nil {
		t.Fatal(err)
	}
	v := testVersion("2")
	v.CardID, v.Currency = "yen", "JPY"
	v.Prices[1].Tiers[0].UnitPrice, v.Prices[1].Tiers[1].UnitPrice, v.Prices[2].UnitPrice = decimal.New(3, 0), decimal.New(2, 0), decimal.New(1, 0)
	now := f.prices.Now
	f.prices.Now = func() time.Time { return time.Date(2025, 12, 1, 0, 0, 0, 0, time.UTC) }
	d, err := f.prices.CreateDraft(ctx, v)
	if err == nil {
		_, err = f.prices.Activate(ctx, "yen", d.Number, pricing.MustParseMonth("2026-01"))
	}
	f.prices.Now = now
	if err != nil {
		t.Fatal(err)
	}
	if err := f.prices.AssignCard(ctx, "jp", "yen", pricing.MustParseMonth("2026-10")); err != nil {
		t.Fatal(err)
	}
	f.run("2026-10")
	jp := f.live("jp", "2026-10")
	if jp.Currency != "JPY" || jp.Customer.Currency != "JPY" || jp.MinorUnits != 0 || jp.Total.String() != "200" {
		t.Fatalf("JPY invoice: currency %s, snapshot %s, minor units %d, total %s", jp.Currency, jp.Customer.Currency, jp.MinorUnits, jp.Total)
	}

	// A customer's currency cannot move away from its cards or invoices.
	usd := "USD"
	if _, err := cs.Update(ctx, "jp", billing.CustomerUpdate{Currency: &usd}); postage.ErrorCode(err) != postage.ECONFLICT {
		t.Fatalf("changing the currency of a customer with a JPY card: %v, want a conflict", err)
	}
	eur := "EUR"
	if _, err := cs.Update(ctx, "usd", billing.CustomerUpdate{Currency: &eur}); postage.ErrorCode(err) != postage.ECONFLICT {
		t.Fatalf("changing the currency of a customer with a USD invoice: %v, want a conflict", err)
	}
	if c, err := cs.Get(ctx, "usd"); err != nil || c.Currency != "USD" {
		t.Fatalf("customer after refused update: %+v, %v", c, err)
	}
	// Without cards or invoices it may change.
	if _, err := cs.Create(ctx, billing.Customer{ID: "new", Name: "New", Currency: "USD"}); err != nil {
		t.Fatal(err)
	}
	if c, err := cs.Update(ctx, "new", billing.CustomerUpdate{Currency: &eur}); err != nil || c.Currency != "EUR" {
		t.Fatalf("changing a fresh customer's currency: %+v, %v", c, err)
	}
}

// Usage of a free pricing type is metered and shown at 0.00 with its
// reason, whatever its category; a regular row of a category no card knows
// stays unbilled, as does nothing else of the customer.
func TestFreePricingTypesArePricedAtZero(t *testing.T) {
	f := newFixture(t, "a", "b")
	ctx := context.Background()
	f.events(
		ev{customer: "a", country: "DE", category: "marketing", at: "2026-10-05 10:00:00", ingested: "2026-10-05 10:00:01", qty: 4},
		ev{customer: "a", country: "DE", category: "marketing", at: "2026-10-05 10:00:00", ingested: "2026-10-05 10:00:01", qty: 6, pricingType: "free_customer_service"},
		ev{customer: "a", country: "GB", category: "marketing_lite", at: "2026-10-05 10:00:00", ingested: "2026-10-05 10:00:01", qty: 5, pricingType: "free_entry_point"},
		ev{customer: "a", country: "GB", category: "marketing", at: "2026-10-05 10:00:00", ingested: "2026-10-05 10:00:01", qty: 2, pricingType: "regular"},
		ev{customer: "b", country: "DE", category: "marketing_lite", at: "2026-10-05 10:00:00", ingested: "2026-10-05 10:00:01", qty: 3},
	)
	run := f.run("2026-10")
	if run.Created != 1 || run.Unbilled != 1 || run.Errors != 0 {
		t.Fatalf("run = %+v", run)
	}
	inv := f.live("a", "2026-10")
	type line struct{ market, category, pricingType, amount, description string }
	var got []line
	for _, l := range inv.Lines {
		got = append(got, line{l.Market, l.Category, l.PricingType, l.Amount.String(), l.Description})
	}
	want := []line{
		{"DE", "marketing", "", "0.05", "marketing messages, DE"}, // 4 × 0.0125
		{"GB", "marketing", "", "0.04", "marketing messages, GB"}, // 2 × 0.02 (the free rows count toward no tier)
		{"DE", "marketing", "free_customer_service", "0.00", "marketing messages, DE (free — customer service window)"},
		{"GB", "marketing_lite", "free_entry_point", "0.00", "marketing_lite messages, GB (free — entry point window)"},
	}
	if len(got) != len(want) {
		t.Fatalf("lines %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if inv.Total.String() != "0.09" {
		t.Errorf("total %s, want 0.09", inv.Total)
	}
	rows, err := f.store.Unbilled(ctx, pricing.MustParseMonth("2026-10"))
	if err != nil || len(rows) != 1 || rows[0].CustomerID != "b" || rows[0].Reason != billing.UnbilledUnmappedCategory || !strings.Contains(rows[0].Detail, "marketing_lite") {
		t.Fatalf("unbilled = %+v, %v", rows, err)
	}
	// Finalized, the free lines keep their reason in every document.
	fin, err := f.runner.Approve(ctx, inv.ID)
	if err != nil {
		t.Fatal(err)
	}
	csv, err := f.runner.Document(ctx, fin, billing.FormatCSV)
	if err != nil || !strings.Contains(string(csv), `free_customer_service,"marketing messages, DE (free — customer service window)"`) {
		t.Fatalf("CSV %s, %v", csv, err)
	}
	pdf, err := f.runner.Document(ctx, fin, billing.FormatPDF)
	if err != nil {
		t.Fatal(err)
	}
	if text := pdfText(t, pdf); !strings.Contains(text, "customer service window") {
		t.Errorf("PDF lacks the reason:\n%s", text)
	}
}
