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
