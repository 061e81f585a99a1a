package billing

import (
	"context"
	"time"

	"postage/pricing"
)

// MeteredUsage is one customer's metered quantity, in one month, of one
// (recipient country, category, upstream pricing type and model): the
// aggregate invoices, reports and simulations are rated from.
type MeteredUsage struct {
	CustomerID   string
	Country      string
	Category     string
	PricingType  string // "" or "regular" (priced by the card), or a free type (FreeType)
	PricingModel string // the upstream's pricing model ("CBP", "PMP"); not a price input
	Quantity     int64
}

// UsageSource is what invoice runs, month-to-date bills and reports read
// usage from: metering's one usage read API, adapted by FromMeter. Every
// answer is deduplicated: an event counts once however often it was sent.
type UsageSource interface {
	// MonthlyUsage returns, per (customer, country, category, pricing
	// type and model), the quantity of events sent in month and ingested
	// at or before cutoff (zero: all). A nil customers means every
	// customer; otherwise only those.
	MonthlyUsage(ctx context.Context, month pricing.Month, cutoff time.Time, customers []string) ([]MeteredUsage, error)
	// EachMonthlyUsage is MonthlyUsage of every customer, handing fn each
	// row as it is read, one at a time: an invoice run groups the month's
	// rows by customer as they arrive instead of holding them twice.
	EachMonthlyUsage(ctx context.Context, month pricing.Month, cutoff time.Time, fn func(MeteredUsage) error) error
	// LateUsage returns the customers with events sent in month and
	// ingested in (after, upTo], each with the latest such ingestion time.
	// Runs use it to find months that need adjustment lines without
	// re-reading whole months.
	LateUsage(ctx context.Context, month pricing.Month, after, upTo time.Time) (map[string]time.Time, error)
}

// Pricing is what rating needs from the rate card ledger; pricing.Store
// (pricing/pgstore) provides it.
type Pricing interface {
	// CardFor returns the customer's card in month.
	CardFor(ctx context.Context, customerID string, month pricing.Month) (pricing.RateCard, error)
	// VersionFor returns the card's version in effect in month.
	VersionFor(ctx context.Context, cardID string, month pricing.Month) (*pricing.Version, error)
	// Overrides returns the customer's overrides (zero when none).
	Overrides(ctx context.Context, customerID string) (pricing.Overrides, error)
	// CostCardFor returns the cost card in effect in month (ENOTFOUND
	// when none is).
	CostCardFor(ctx context.Context, month pricing.Month) (pricing.RateCard, error)
	// ExchangeRateFor returns the (from, to) rate of month (ENOTFOUND when
	// none is recorded).
	ExchangeRateFor(ctx context.Context, from, to string, month pricing.Month) (pricing.ExchangeRate, error)
}

var _ Pricing = pricing.Store(nil)

// BulkPricing is an optional extension of Pricing (pricing/pgstore has
// it): the rating pipeline asks for many customers' cards and overrides in
// two queries instead of a few per customer.
type BulkPricing interface {
	// CardsFor returns the card in month of each given customer that has
	// one (an assignment or the default card).
	CardsFor(ctx context.Context, customers []string, month pricing.Month) (map[string]pricing.RateCard, error)
	// OverridesFor returns the overrides of the given customers (nil:
	// of every customer) that have any.
	OverridesFor(ctx context.Context, customers []string) (map[string]pricing.Overrides, error)
}
