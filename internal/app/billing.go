package app

import (
	"context"
	"fmt"
	"time"

	"postage/billing"
	billingpg "postage/billing/pgstore"
	"postage/pricing/pgstore"
	"postage/reports"
)

// openBilling builds the invoice store and runner from the configuration.
func (a *App) openBilling() error {
	inv, err := billingpg.NewInvoiceStore(a.PG, a.Config.Billing.NumberFormat)
	if err != nil {
		return fmt.Errorf("config billing.number_format: %w", err)
	}
	now := func() time.Time { return a.Now() }
	inv.Now = now
	a.Invoices = inv
	a.Taxes = &billingpg.TaxStore{DB: a.PG, Now: now}
	recv, err := billingpg.NewReceivableStore(a.PG, a.Config.Billing.CreditNoteNumberFormat)
	if err != nil {
		return fmt.Errorf("config billing.credit_note_number_format: %w", err)
	}
	recv.Now = now
	a.Receivables = recv
	a.Billing = &billing.Runner{
		Invoices: inv, Customers: a.Customers, Usage: billing.FromMeter(a.Usage), Pricing: a.Pricing,
		Locks: billingpg.Locker{DB: a.PG}, Render: reports.InvoiceDocuments{}, Issuer: a.Issuer(),
		Taxes: a.Taxes, TaxNotes: billing.TaxNotes{ReverseCharge: a.Config.Billing.ReverseChargeNote, Exempt: a.Config.Billing.ExemptNote},
		PaymentTermsDays: a.Config.Billing.PaymentTermsDays,
		Log:              a.Log, Now: now, Grace: a.Config.Billing.Grace.Duration, CutoffLag: billing.DefaultCutoffLag,
		Holds: a.Reconcile(),
	}
	reminders, err := billing.ParseReminderOffsets(a.Config.Billing.Reminders)
	if err != nil {
		return fmt.Errorf("config billing.reminders: %w", err)
	}
	a.Accounts = &billing.Accounts{Store: recv, Render: reports.InvoiceDocuments{}, Issuer: a.Issuer(), Now: now, Reminders: reminders}
	return nil
}

// startScheduler starts the invoice scheduler unless billing.scheduler is off.
func (a *App) startScheduler(ctx context.Context) (stop func(), err error) {
	if !a.Config.Billing.Scheduler {
		a.Log.Info("invoice scheduler disabled (billing.scheduler = false)")
		return func() {}, nil
	}
	s := &billing.Scheduler{Runner: a.Billing, Accounts: a.Accounts, Schedule: a.Config.Billing.Schedule}
	if err := s.Start(ctx); err != nil {
		return nil, err
	}
	return s.Stop, nil
}

// Issuer is who invoices are from (billing.issuer_name and issuer_address);
// finalization freezes it into each invoice.
func (a *App) Issuer() billing.Issuer {
	return billing.Issuer{Name: a.Config.Billing.IssuerName, Address: a.Config.Billing.IssuerAddress}
}

// The rate-card ledger resolves many customers in one query each for the
// rating pipeline (invoice runs, reports and simulations).
var _ billing.BulkPricing = (*pgstore.Store)(nil)
