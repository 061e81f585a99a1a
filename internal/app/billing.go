package app

import (
	"context"
	"fmt"
	"time"

	"postage/billing"
	"postage/metering"
	"postage/pricing"
	"postage/reports"
)

// meteringUsage adapts metering's exact usage queries to the invoice runs'
// billing.UsageSource.
type meteringUsage struct{ m *metering.CHStore }

var _ billing.UsageSource = meteringUsage{}

func (u meteringUsage) MonthlyUsage(ctx context.Context, month pricing.Month, cutoff time.Time, customers []string) ([]billing.UsageRow, error) {
	if customers != nil && len(customers) == 0 {
		return nil, nil // metering reads "no customers" as "all customers"
	}
	aggs, err := u.m.MonthlyAggregates(ctx, month.Start(), cutoff, customers...)
	if err != nil {
		return nil, err
	}
	out := make([]billing.UsageRow, len(aggs))
	for i, a := range aggs {
		if a.Quantity > uint64(pricing.MaxQuantity) {
			return nil, fmt.Errorf("usage of %s %s %s: quantity %d too large", a.CustomerID, a.Country, a.Category, a.Quantity)
		}
		out[i] = billing.UsageRow{CustomerID: a.CustomerID, Country: a.Country, Category: a.Category, Quantity: int64(a.Quantity)}
	}
	return out, nil
}

func (u meteringUsage) LateUsage(ctx context.Context, month pricing.Month, after, upTo time.Time) (map[string]time.Time, error) {
	return u.m.LateIngested(ctx, month.Start(), after, upTo)
}

// openBilling builds the invoice store and runner from the configuration.
func (a *App) openBilling() error {
	inv, err := billing.NewInvoiceStore(a.PG, a.Config.Billing.NumberFormat)
	if err != nil {
		return fmt.Errorf("config billing.number_format: %w", err)
	}
	now := func() time.Time { return a.Now() }
	inv.Now = now
	a.Invoices = inv
	a.Billing = &billing.Runner{
		Invoices: inv, Customers: a.Customers, Usage: meteringUsage{a.Events}, Pricing: a.Pricing,
		Log: a.Log, Now: now, Grace: a.Config.Billing.Grace.Duration, CutoffLag: billing.DefaultCutoffLag,
	}
	return nil
}

// startScheduler starts the invoice scheduler unless billing.scheduler is off.
func (a *App) startScheduler(ctx context.Context) (stop func(), err error) {
	if !a.Config.Billing.Scheduler {
		a.Log.Info("invoice scheduler disabled (billing.scheduler = false)")
		return func() {}, nil
	}
	s := &billing.Scheduler{Runner: a.Billing, Schedule: a.Config.Billing.Schedule}
	if err := s.Start(ctx); err != nil {
		return nil, err
	}
	return s.Stop, nil
}

// Issuer is who invoices are from (billing.issuer_name and issuer_address).
func (a *App) Issuer() reports.Issuer {
	return reports.Issuer{Name: a.Config.Billing.IssuerName, Address: a.Config.Billing.IssuerAddress}
}
