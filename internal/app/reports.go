package app

import (
	"time"

	"postage/billing"
	"postage/reports"
)

// Reports builds the reports and simulation service on the app's stores:
// monthly aggregates from metering, card versions and overrides from the
// pricing ledger (resolved in bulk: pgstore implements reports.BulkCards), customers from
// billing.
func (a *App) Reports() *reports.Service {
	return &reports.Service{
		Usage:     billing.FromMeter(a.Events),
		Series:    reports.CHSeries{Conn: a.CH},
		Cards:     a.Pricing,
		Customers: a.Customers,
		Now:       func() time.Time { return a.Now() },
	}
}
