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
	var out []UsageRow
	err := u.each(ctx, month, cutoff, customers, func(r UsageRow) error {
		out = append(out, r)
		return nil
	})
	return out, err
}

// EachMonthlyUsage implements UsageSource.
func (u meterUsage) EachMonthlyUsage(ctx context.Context, month pricing.Month, cutoff time.Time, fn func(UsageRow) error) error {
	return u.each(ctx, month, cutoff, nil, fn)
}

func (u meterUsage) each(ctx context.Context, month pricing.Month, cutoff time.Time, customers []string, fn func(UsageRow) error) error {
	return u.m.EachMonthlyAggregate(ctx, month.Start(), cutoff, customers, func(a *metering.Aggregate) error {
		if a.Quantity > uint64(pricing.MaxQuantity) {
			return fmt.Errorf("usage of %s %s %s in %s: quantity %d too large", a.CustomerID, a.Country, a.Category, month, a.Quantity)
		}
		return fn(UsageRow{CustomerID: a.CustomerID, Country: a.Country, Category: a.Category, Quantity: int64(a.Quantity)})
	})
}

// LateUsage implements UsageSource.
func (u meterUsage) LateUsage(ctx context.Context, month pricing.Month, after, upTo time.Time) (map[string]time.Time, error) {
	return u.m.LateIngested(ctx, month.Start(), after, upTo)
}
