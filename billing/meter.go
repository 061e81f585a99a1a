package billing

import (
	"context"
	"fmt"
	"time"

	"postage/metering"
	"postage/pricing"
)

// FromMeter reads usage through metering's exact monthly aggregates
// (metering owns the events table and how to read it exactly and fast).
// Invoice runs, month-to-date bills and reports all read usage this way.
func FromMeter(m metering.Usage) UsageSource { return meterUsage{m} }

type meterUsage struct{ m metering.Usage }

var _ UsageSource = meterUsage{}

// MonthlyUsage implements UsageSource.
func (u meterUsage) MonthlyUsage(ctx context.Context, month pricing.Month, cutoff time.Time, customers []string) ([]UsageRow, error) {
	if customers != nil && len(customers) == 0 {
		return nil, nil // asked for no customer, not for every one
	}
	aggs, err := u.m.MonthlyAggregates(ctx, month.Start(), cutoff, customers...)
	if err != nil {
		return nil, err
	}
	out := make([]UsageRow, len(aggs))
	for i, a := range aggs {
		if a.Quantity > uint64(pricing.MaxQuantity) {
			return nil, fmt.Errorf("usage of %s %s %s in %s: quantity %d too large", a.CustomerID, a.Country, a.Category, month, a.Quantity)
		}
		out[i] = UsageRow{CustomerID: a.CustomerID, Country: a.Country, Category: a.Category, Quantity: int64(a.Quantity)}
	}
	return out, nil
}

// LateUsage implements UsageSource.
func (u meterUsage) LateUsage(ctx context.Context, month pricing.Month, after, upTo time.Time) (map[string]time.Time, error) {
	return u.m.LateIngested(ctx, month.Start(), after, upTo)
}
