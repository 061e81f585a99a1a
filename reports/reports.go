// Package reports answers what finance and sales look at: revenue by
// period, customer, market, country and category; usage trends; top
// customers; unbilled usage; a month-to-date forecast; and "what if"
// simulations that re-rate real past usage under a proposed rate card.
//
// Money is never read per event: reports take exact monthly aggregates
// (count per customer, country, category) from the meter, one query per
// month, and rate them with pricing's compiled Raters exactly as an invoice
// run would. docs/REPORTS.md explains the methods and the API shapes.
package reports

import (
	"context"
	"time"

	"postage/billing"
	"postage/pricing"
)

// Point is one window of a usage series: the count of the window starting
// at Start for Key (a category or country, or "" when not grouped).
type Point struct {
	Start    time.Time `json:"start"`
	Key      string    `json:"key"`
	Quantity int64     `json:"quantity"`
}

// Window is the width of a usage series' windows.
type Window string

// Windows of a usage series, in UTC.
const (
	Day   Window = "day"
	Month Window = "month"
)

// SeriesQuery asks for a usage series over [From, To).
type SeriesQuery struct {
	From, To   time.Time
	Window     Window
	GroupBy    string // "", "category" or "country"
	CustomerID string // "" for every customer
}

// Usage is what reports read monthly aggregates from (metering's
// ClickHouse store, through billing.FromMeter). Counts are exact (deduplicated).
// The signature is billing's UsageSource.MonthlyUsage, so one adapter
// serves both.
type Usage interface {
	// MonthlyUsage returns, in one query, the quantity per (customer,
	// country, category) of the events sent in month and ingested at or
	// before cutoff (zero: all), for the given customers (nil: every
	// customer, known or not).
	MonthlyUsage(ctx context.Context, month pricing.Month, cutoff time.Time, customers []string) ([]billing.UsageRow, error)
}

// SeriesSource answers usage series (CHSeries over ClickHouse).
type SeriesSource interface {
	// Series returns exact counts per window (and key) in one query.
	Series(ctx context.Context, q SeriesQuery) ([]Point, error)
}

// Cards is what reports read from the rate card ledger; pricing.Store
// satisfies it.
type Cards interface {
	GetCard(ctx context.Context, cardID string) (pricing.RateCard, error)
	GetVersion(ctx context.Context, cardID string, number int) (*pricing.Version, error)
	VersionFor(ctx context.Context, cardID string, month pricing.Month) (*pricing.Version, error)
	CardFor(ctx context.Context, customerID string, month pricing.Month) (pricing.RateCard, error)
	Overrides(ctx context.Context, customerID string) (pricing.Overrides, error)
}

// BulkCards may be implemented by a Cards store (pricing/pgstore does) to resolve many customers
// with one query each instead of one query per customer; the resolver uses
// it when present.
type BulkCards interface {
	// CardsFor returns the card of each of the customers in month
	// (customers without an assignment get the default card).
	CardsFor(ctx context.Context, customerIDs []string, month pricing.Month) (map[string]pricing.RateCard, error)
	// OverridesFor returns the overrides of the given customers (nil: of
	// every customer) that have any.
	OverridesFor(ctx context.Context, customerIDs []string) (map[string]pricing.Overrides, error)
}

// Customers lists the known customers; billing.CustomerStore satisfies it.
type Customers interface {
	All(ctx context.Context) (map[string]billing.Customer, error)
}

// Service computes reports and simulations.
type Service struct {
	Usage     Usage
	Series    SeriesSource
	Cards     Cards
	Customers Customers
	// Now is the clock (the forecast's as-of and default ranges).
	Now func() time.Time
	// Workers is how many goroutines rate customers in parallel (default
	// GOMAXPROCS).
	Workers int
	// Progress, when set, is told how far a long computation is: the
	// phase ("rating", "simulating") and done of total items. It is called
	// from several goroutines (CLI progress bars use it).
	Progress func(phase string, done, total int)
}

func (s *Service) now() time.Time {
	if s.Now == nil {
		return time.Now().UTC()
	}
	return s.Now().UTC()
}
