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

// SeriesWindow is the width of a usage series' windows.
type SeriesWindow string

// Windows of a usage series, in UTC.
const (
	Day   SeriesWindow = "day"
	Month SeriesWindow = "month"
)

// SeriesQuery asks for a usage series over [From, To).
type SeriesQuery struct {
	From, To   time.Time
	Window     SeriesWindow
	GroupBy    string // "", "category" or "country"
	CustomerID string // "" for every customer
}

// SeriesSource answers usage series (metering's Usage.Series).
type SeriesSource interface {
	// Series returns exact counts per window (and key) in one query.
	Series(ctx context.Context, q SeriesQuery) ([]Point, error)
}

// Cards is what reports read from the rate card ledger; pricing.Store
// satisfies it. Current revenue is rated through billing's rating pipeline
// (billing.Rating), which also uses billing.BulkPricing when the store has
// it (pricing/pgstore does): every customer's card in two queries.
type Cards interface {
	billing.Pricing
	GetCard(ctx context.Context, cardID string) (pricing.RateCard, error)
	GetVersion(ctx context.Context, cardID string, number int) (*pricing.Version, error)
}

// Customers lists the known customers and their portfolios (members of a
// portfolio are rated together); billing.CustomerStore satisfies it.
type Customers interface {
	All(ctx context.Context) (map[string]billing.Customer, error)
	billing.PortfolioSource
}

// Service computes reports and simulations.
type Service struct {
	// Usage is metering's usage read API, adapted by billing.FromMeter:
	// the same read invoice runs make.
	Usage     billing.UsageSource
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
