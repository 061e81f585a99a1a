package billing

import (
	"context"
	"fmt"
	"time"

	"postage/metering"
	"postage/pricing"
)

// FromMeter reads usage through metering's usage read API (metering owns
// the events, their rollups and how to read them exactly and fast).
// Invoice runs, month-to-date bills, reports and simulations all read
// usage this way.
func FromMeter(m metering.Usage) UsageSource { return meterUsage{m} }

type meterUsage struct{ m metering.Usage }

var _ UsageSource = meterUsage{}

// MonthlyUsage implements UsageSource.
func (u meterUsage) MonthlyUsage(ctx context.Context, month pricing.Month, cutoff time.Time, customers []string) ([]MeteredUsage, error) {
	if customers != nil && len(customers) == 0 {
		return nil, nil // asked for no customer, not for every one
	}
	var out []MeteredUsage
	err := u.each(ctx, month, cutoff, customers, func(r MeteredUsage) error {
		out = append(out, r)
		return nil
	})
	return out, err
}

// EachMonthlyUsage implements UsageSource.
func (u meterUsage) EachMonthlyUsage(ctx context.Context, month pricing.Month, cutoff time.Time, fn func(MeteredUsage) error) error {
	return u.each(ctx, month, cutoff, nil, fn)
}

func (u meterUsage) each(ctx context.Context, month pricing.Month, cutoff time.Time, customers []string, fn func(MeteredUsage) error) error {
	return u.m.EachMonthlyAggregate(ctx, month.Start(), cutoff, customers, func(a *metering.Aggregate) error {
		if a.Quantity > uint64(pricing.MaxQuantity) {
			return fmt.Errorf("usage of %s %s %s in %s: quantity %d too large", a.CustomerID, a.Country, a.Category, month, a.Quantity)
		}
		return fn(MeteredUsage{CustomerID: a.CustomerID, Country: a.Country, Category: a.Category,
			PricingType: a.PricingType, PricingModel: a.PricingModel, Quantity: int64(a.Quantity)})
	})
}

// LateUsage implements UsageSource.
func (u meterUsage) LateUsage(ctx context.Context, month pricing.Month, after, upTo time.Time) (map[string]time.Time, error) {
	return u.m.LateIngested(ctx, month.Start(), after, upTo)
}

// Rateable returns the row as rating takes it: rows of a free pricing type
// carry it as their FreeType (priced at 0 whatever their category); every
// other row is priced by the card.
func (r MeteredUsage) Rateable() pricing.Usage {
	return pricing.Usage{Country: r.Country, Category: r.Category, Quantity: r.Quantity, FreeType: FreeType(r.PricingType)}
}

// FreeType returns the pricing type when it makes usage free whatever its
// category (metering.PricingFreeCustomerService, PricingFreeEntryPoint),
// else "": regular usage ("" or "regular") is priced by the card.
func FreeType(pricingType string) string {
	switch pricingType {
	case metering.PricingFreeCustomerService, metering.PricingFreeEntryPoint:
		return pricingType
	}
	return ""
}

// freeTypeText says why a line of a free pricing type is free.
func freeTypeText(t string) string {
	switch t {
	case metering.PricingFreeCustomerService:
		return "customer service window"
	case metering.PricingFreeEntryPoint:
		return "entry point window"
	}
	return t
}
