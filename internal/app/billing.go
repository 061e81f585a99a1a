package app

import (
	"context"
	"fmt"
	"time"

	"postage/billing"
	billingpg "postage/billing/pgstore"
	"postage/internal/pdfrender"
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
	// One headless Chromium prints every PDF of this process; it starts on
	// the first and closes when idle.
	d := a.Config.Documents
	a.PDF = pdfrender.New(pdfrender.Options{Chromium: d.Chromium, Tabs: d.Tabs, Timeout: d.Timeout.Duration, Idle: d.Idle.Duration, Log: a.Log})
	a.closers = append(a.closers, func() { _ = a.PDF.Close() })
	docs := reports.InvoiceDocuments{PDF: a.PDF}
	a.Billing = &billing.Runner{
		Invoices: inv, Customers: a.Customers, Usage: billing.FromMeter(a.Usage), Pricing: a.Pricing,
		Locks: billingpg.Locker{DB: a.PG}, Render: docs, Issuer: a.Issuer(),
		Taxes: a.Taxes, TaxNotes: billing.TaxNotes{ReverseCharge: a.Config.Billing.ReverseChargeNote, Exempt: a.Config.Billing.ExemptNote},
		PaymentTermsDays: a.Config.Billing.PaymentTermsDays,
		Log:              a.Log, Now: now, Grace: a.Config.Billing.Grace.Duration, CutoffLag: billing.DefaultCutoffLag,
		Holds: a.Reconcile(),
	}
	reminders, err := billing.ParseReminderOffsets(a.Config.Billing.Reminders)
	if err != nil {
		return fmt.Errorf("config billing.reminders: %w", err)
	}
	a.Accounts = &billing.Accounts{Store: recv, Render: docs, Issuer: a.Issuer(), Now: now, Reminders: reminders}
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

// Issuer is who invoices are from (billing.issuer_name, issuer_address,
// issuer_tax_id and issuer_bank_details); finalization freezes it into
// each invoice, issuing a credit note into the credit note.
func (a *App) Issuer() billing.Issuer {
	b := a.Config.Billing
	return billing.Issuer{Name: b.IssuerName, Address: b.IssuerAddress, TaxID: b.IssuerTaxID, BankDetails: b.IssuerBankDetails}
}

// The rate-card ledger resolves many customers in one query each for the
// rating pipeline (invoice runs, reports and simulations).
var _ billing.BulkPricing = (*pgstore.Store)(nil)
