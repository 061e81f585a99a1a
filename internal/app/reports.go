package app

import (
	"context"
	"fmt"
	"time"

	"postage/billing"
	"postage/metering"
	"postage/reports"
)

// Reports builds the reports and simulation service on the app's stores:
// monthly aggregates and usage series from metering (its one usage read
// API), card versions and overrides from the pricing ledger (resolved in
// bulk: pgstore implements reports.BulkCards), customers from billing.
func (a *App) Reports() *reports.Service {
	return &reports.Service{
		Usage:     billing.FromMeter(a.Usage),
		Series:    SeriesFromMeter(a.Usage),
		Cards:     a.Pricing,
		Customers: a.Customers,
		Now:       func() time.Time { return a.Now() },
	}
}

// SeriesFromMeter answers reports' usage series with metering's
// Usage.Series: the series reads the same exact rollups as every other
// usage read.
func SeriesFromMeter(m metering.Usage) reports.SeriesSource { return meterSeries{m} }

type meterSeries struct{ m metering.Usage }

// Series implements reports.SeriesSource.
func (s meterSeries) Series(ctx context.Context, q reports.SeriesQuery) ([]reports.Point, error) {
	rows, err := s.m.Series(ctx, metering.SeriesQuery{
		From: q.From, To: q.To, Window: metering.Window(q.Window), GroupBy: metering.Dimension(q.GroupBy), CustomerID: q.CustomerID,
	})
	if err != nil {
		return nil, err
	}
	out := make([]reports.Point, len(rows))
	for i, r := range rows {
		p := reports.Point{Start: r.Start, Quantity: int64(r.Quantity)}
		switch metering.Dimension(q.GroupBy) {
		case metering.ByCountry:
			p.Key = r.Country
		case metering.ByCategory:
			p.Key = r.Category
		}
		if p.Quantity < 0 {
			return nil, fmt.Errorf("usage series: quantity %d of %s too large", r.Quantity, r.Start)
		}
		out[i] = p
	}
	return out, nil
}
