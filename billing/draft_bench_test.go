package billing

import (
	"context"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"postage/pricing"
)

// BenchmarkDraftOfOneCustomer is the CPU side of one customer of an
// invoice run: rate 12 usage rows (4 categories × 3 countries, the
// benchmark's shape) with the launch card, build the invoice and encode it
// for the ledger. Its allocations are what the collector sees per customer.
//
//	go test ./billing -run '^$' -bench DraftOfOneCustomer -benchmem
func BenchmarkDraftOfOneCustomer(b *testing.B) {
	seed, err := pricing.LaunchSeed()
	if err != nil {
		b.Fatal(err)
	}
	rt, err := pricing.Compile(seed.Version)
	if err != nil {
		b.Fatal(err)
	}
	var usage []pricing.Usage
	for _, c := range []string{"DE", "GB", "IN"} {
		for _, cat := range []string{"marketing", "utility", "authentication", "service"} {
			usage = append(usage, pricing.Usage{Country: c, Category: cat, Quantity: 50})
		}
	}
	period := pricing.MustParseMonth("2026-10")
	cust := Customer{ID: "c000001", Name: "Bench customer 1", Currency: "USD", Country: "GB"}
	now := time.Date(2026, 11, 1, 2, 0, 0, 0, time.UTC)
	// Taxed as a run taxes: with no rate (a deployment without taxes) and
	// with the customer's country's VAT.
	vat := NewTaxTable([]TaxRate{{ID: "txr_gb", Jurisdiction: "GB", Name: "VAT", Rate: decimal.NewFromInt(20), EffectiveFrom: NewDate(2017, 1, 1)}})
	for _, bc := range []struct {
		name  string
		taxes TaxTable
	}{{"untaxed", TaxTable{}}, {"vat", vat}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				res, err := rt.Rate(pricing.Overrides{}, usage, pricing.RateOptions{CustomerCountry: cust.Country, Month: period})
				if err != nil {
					b.Fatal(err)
				}
				req := draftRequest{Customer: cust, Period: period, Cutoff: now, ID: InvoiceID(cust.ID, period, 1), Seq: 1}
				inv := newDraft(req, &res, usageLines(res, period, ""), now, 72*time.Hour)
				applyTaxes(inv, bc.taxes, TaxNotes{})
				_ = EncodeDraft(inv)
			}
		})
	}
}

// BenchmarkComputeOfOneCustomer is BenchmarkDraftOfOneCustomer through the
// run's own path: the pipeline resolves the customer's (prefetched) card
// and portfolio, rates, builds and encodes the draft (r.compute, as a run's
// worker calls it, without late months). Against the benchmark above it
// shows what accounts, portfolios and the pipeline cost per customer.
//
//	go test ./billing -run '^$' -bench 'OfOneCustomer' -benchmem
func BenchmarkComputeOfOneCustomer(b *testing.B) {
	seed, err := pricing.LaunchSeed()
	if err != nil {
		b.Fatal(err)
	}
	rt, err := pricing.Compile(seed.Version)
	if err != nil {
		b.Fatal(err)
	}
	var usage []pricing.Usage
	for _, c := range []string{"DE", "GB", "IN"} {
		for _, cat := range []string{"marketing", "utility", "authentication", "service"} {
			usage = append(usage, pricing.Usage{Country: c, Category: cat, Quantity: 50})
		}
	}
	period := pricing.MustParseMonth("2026-10")
	cust := Customer{ID: "c000001", Name: "Bench customer 1", Currency: "USD", Country: "GB"}
	now := time.Date(2026, 11, 1, 2, 0, 0, 0, time.UTC)
	r := &Runner{Now: func() time.Time { return now }, Grace: 72 * time.Hour}
	g := r.pipeline()
	g.inEffect = map[cardMonth]compiledOrErr{{seed.Card.ID, period}: {r: rt}}
	pre := &Prefetched{
		cards:      map[pricing.Month]map[string]prefetchedCard{period: {cust.ID: {card: seed.Card, has: true}}},
		ov:         map[string]pricing.Overrides{cust.ID: {}},
		portfolios: map[pricing.Month]Portfolios{period: NewPortfolios(nil)},
	}
	req := draftRequest{Customer: cust, Period: period, Cutoff: now, Usage: map[string][]pricing.Usage{cust.ID: usage},
		Known: map[string]Customer{cust.ID: cust}, ID: InvoiceID(cust.ID, period, 1), Seq: 1, Prefetched: pre}
	b.ReportAllocs()
	for b.Loop() {
		inv, _, err := r.compute(context.Background(), req)
		if err != nil || inv == nil {
			b.Fatal(err)
		}
		_ = EncodeDraft(inv)
	}
}
