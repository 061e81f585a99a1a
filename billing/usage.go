package billing

import (
	"context"
	"time"

	"postage/pricing"
)

// UsageRow is one customer's monthly quantity of one (recipient country,
// category): the aggregate invoices are rated from.
type UsageRow struct {
	CustomerID string
	Country    string
	Category   string
	Quantity   int64
}

// UsageSource is what invoice runs read usage from (metering's ClickHouse
// queries, adapted in internal/app). Every answer is deduplicated: an
// event counts once however often it was sent.
type UsageSource interface {
	// MonthlyUsage returns, per (customer, country, category), the
	// quantity of events sent in month and ingested at or before cutoff.
	// A nil customers means every customer; otherwise only those.
	MonthlyUsage(ctx context.Context, month pricing.Month, cutoff time.Time, customers []string) ([]UsageRow, error)
	// EachMonthlyUsage is MonthlyUsage of every customer, handing fn each
	// row as it is read, one at a time: an invoice run groups the month's
	// rows by customer as they arrive instead of holding them twice.
	EachMonthlyUsage(ctx context.Context, month pricing.Month, cutoff time.Time, fn func(UsageRow) error) error
	// LateUsage returns the customers with events sent in month and
	// ingested in (after, upTo], each with the latest such ingestion time.
	// Runs use it to find months that need adjustment lines without
	// re-reading whole months.
	LateUsage(ctx context.Context, month pricing.Month, after, upTo time.Time) (map[string]time.Time, error)
}

// Pricing is what billing needs from the rate card ledger; pricing.Store
// (pricing/pgstore) provides it.
type Pricing interface {
	// CardFor returns the customer's card in month.
	CardFor(ctx context.Context, customerID string, month pricing.Month) (pricing.RateCard, error)
	// VersionFor returns the card's version in effect in month.
	VersionFor(ctx context.Context, cardID string, month pricing.Month) (*pricing.Version, error)
	// Overrides returns the customer's overrides (zero when none).
	Overrides(ctx context.Context, customerID string) (pricing.Overrides, error)
}

var _ Pricing = pricing.Store(nil)

// BulkPricing is an optional extension of Pricing: a run asks for every
// customer's card and overrides in two queries instead of a few per
// customer. A Pricing without it is asked customer by customer.
type BulkPricing interface {
	// CardsFor returns the card in month of each given customer that has
	// one (an assignment or the default card).
	CardsFor(ctx context.Context, customers []string, month pricing.Month) (map[string]pricing.RateCard, error)
	// OverridesFor returns the overrides of the given customers that have any.
	OverridesFor(ctx context.Context, customers []string) (map[string]pricing.Overrides, error)
}

// prefetched answers from a BulkPricing snapshot of one run's customers
// and month, and asks the underlying Pricing for anything else. Each
// customer is one map entry (a run looks up 50,000 of them twice).
type prefetched struct {
	Pricing
	month pricing.Month
	of    map[string]customerPricing
}

type customerPricing struct {
	card    pricing.RateCard
	hasCard bool
	ov      pricing.Overrides
}

func prefetch(ctx context.Context, p Pricing, customers []string, month pricing.Month) (Pricing, error) {
	bp, ok := p.(BulkPricing)
	if !ok || len(customers) == 0 {
		return p, nil
	}
	cards, err := bp.CardsFor(ctx, customers, month)
	if err != nil {
		return nil, err
	}
	ov, err := bp.OverridesFor(ctx, customers)
	if err != nil {
		return nil, err
	}
	of := make(map[string]customerPricing, len(customers))
	for _, c := range customers {
		card, hasCard := cards[c]
		of[c] = customerPricing{card: card, hasCard: hasCard, ov: ov[c]}
	}
	return &prefetched{Pricing: p, month: month, of: of}, nil
}

func (p *prefetched) CardFor(ctx context.Context, customerID string, month pricing.Month) (pricing.RateCard, error) {
	if c, ok := p.of[customerID]; ok && c.hasCard && month == p.month {
		return c.card, nil
	}
	return p.Pricing.CardFor(ctx, customerID, month)
}

func (p *prefetched) Overrides(ctx context.Context, customerID string) (pricing.Overrides, error) {
	if c, ok := p.of[customerID]; ok {
		return c.ov, nil
	}
	return p.Pricing.Overrides(ctx, customerID)
}
