package billing

import (
	"context"
	"sort"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"postage"
)

// Accounts is accounts receivable: what finalized invoices still owe, the
// payments and credit notes against them, write-offs, overdue reports and
// the aging report. The rules live here; Store (billing/pgstore) keeps the
// ledger and runs each write in one transaction under the invoice's lock.
type Accounts struct {
	Store Receivables
	// Render draws credit notes' CSV and PDF (reports.InvoiceDocuments).
	Render CreditNoteRenderer
	// Issuer is who credit notes are from (the configured issuer).
	Issuer Issuer
	// Now is the clock (time.Now when nil): today decides what is overdue.
	Now func() time.Time
	// Reminders are the payment reminders' offsets, days relative to the
	// due date, sorted (billing.reminders; none when empty).
	Reminders []int
}

func (a *Accounts) now() time.Time {
	if a.Now != nil {
		return a.Now().UTC()
	}
	return time.Now().UTC()
}

// Today is the clock's UTC day.
func (a *Accounts) Today() Date { return DateOf(a.now()) }

// Receivable returns what an invoice owes as of today.
func (a *Accounts) Receivable(ctx context.Context, invoiceID string) (Receivable, error) {
	r, err := a.Store.Receivable(ctx, invoiceID)
	if err != nil {
		return Receivable{}, err
	}
	r.Derive(a.Today())
	return r, nil
}

// Receivables lists receivables matching f as of today.
func (a *Accounts) Receivables(ctx context.Context, f ReceivableFilter, p Page) ([]Receivable, string, error) {
	if err := f.Validate(); err != nil {
		return nil, "", err
	}
	today := a.Today()
	list, next, err := a.Store.ListReceivables(ctx, f, today, p)
	for i := range list {
		list[i].Derive(today)
	}
	return list, next, err
}

// RecordPayment records a payment against a finalized invoice. A payment
// in another currency (ECURRENCYMISMATCH), for more than the balance
// (EOVERPAYMENT), on a draft or void invoice (ENOTFINALIZED) or dated in
// the future (EINVALID) is refused and nothing is recorded. existing is
// true when the idempotency key recorded this payment before.
func (a *Accounts) RecordPayment(ctx context.Context, invoiceID string, in NewPayment) (Payment, Receivable, bool, error) {
	today := a.Today()
	p, err := in.Parse(today)
	if err != nil {
		return Payment{}, Receivable{}, false, err
	}
	out, r, existing, err := a.Store.RecordPayment(ctx, invoiceID, p, func(r Receivable, p Payment) (Payment, error) {
		r.Derive(today)
		return checkPayment(p, r)
	})
	if err != nil {
		return Payment{}, Receivable{}, false, err
	}
	r.Derive(today)
	return out, r, existing, nil
}

// Payments lists payments matching f, newest first.
func (a *Accounts) Payments(ctx context.Context, f PaymentFilter, p Page) ([]Payment, string, error) {
	return a.Store.Payments(ctx, f, p)
}

// RecordRefund records a refund paid back outside postage against a
// finalized invoice that owes the customer money (a negative balance). A
// refund in another currency (ECURRENCYMISMATCH), for more than the
// customer is owed (EOVERREFUND), on a draft or void invoice
// (ENOTFINALIZED) or dated in the future (EINVALID) is refused and nothing
// is recorded. existing is true when the idempotency key recorded this
// refund before.
func (a *Accounts) RecordRefund(ctx context.Context, invoiceID string, in NewRefund) (Refund, Receivable, bool, error) {
	today := a.Today()
	f, err := in.Parse(today)
	if err != nil {
		return Refund{}, Receivable{}, false, err
	}
	out, r, existing, err := a.Store.RecordRefund(ctx, invoiceID, f, func(r Receivable, f Refund) (Refund, error) {
		return checkRefund(f, r)
	})
	if err != nil {
		return Refund{}, Receivable{}, false, err
	}
	r.Derive(today)
	return out, r, existing, nil
}

// Refunds lists refunds matching f, newest first.
func (a *Accounts) Refunds(ctx context.Context, f RefundFilter, p Page) ([]Refund, string, error) {
	return a.Store.Refunds(ctx, f, p)
}

// MarkUncollectible writes an invoice's balance off with a reason. An
// invoice with nothing left to pay, or already written off, is a conflict.
func (a *Accounts) MarkUncollectible(ctx context.Context, invoiceID, reason string) (Receivable, error) {
	reason = strings.TrimSpace(reason)
	if reason == "" || len(reason) > maxReasonLength {
		return Receivable{}, postage.Errorf(postage.EINVALID, "reason: required, at most %d characters", maxReasonLength)
	}
	today := a.Today()
	r, err := a.Store.MarkUncollectible(ctx, invoiceID, reason, today)
	if err != nil {
		return Receivable{}, err
	}
	r.Derive(today)
	return r, nil
}

// IssueCreditNote issues a credit note against a finalized invoice
// (PlanCreditNote says what it credits). existing is true when the
// request's idempotency key issued it before.
func (a *Accounts) IssueCreditNote(ctx context.Context, invoiceID string, req CreditNoteRequest) (CreditNote, bool, error) {
	if err := req.Validate(); err != nil {
		return CreditNote{}, false, err
	}
	issuer := a.Issuer
	return a.Store.IssueCreditNote(ctx, invoiceID, creditKey(invoiceID, req), func(inv Invoice, prior []CreditNote) (*CreditNote, error) {
		cn, err := PlanCreditNote(inv, prior, req)
		if err != nil {
			return nil, err
		}
		cn.Issuer = issuer
		return cn, nil
	})
}

// CreditNote returns one credit note.
func (a *Accounts) CreditNote(ctx context.Context, id string) (CreditNote, error) {
	return a.Store.CreditNote(ctx, id)
}

// CreditNotes lists credit notes matching f, newest first.
func (a *Accounts) CreditNotes(ctx context.Context, f CreditNoteFilter, p Page) ([]CreditNote, string, error) {
	return a.Store.CreditNotes(ctx, f, p)
}

// CreditNoteDocument returns a credit note's CSV or PDF: drawn from its
// frozen document the first time it is asked for, stored, and served byte
// for byte ever after (a void credit note's from its void document, apart
// from the issued one's).
func (a *Accounts) CreditNoteDocument(ctx context.Context, cn CreditNote, f Format) ([]byte, error) {
	if f != FormatCSV && f != FormatPDF {
		return nil, postage.Errorf(postage.EINVALID, "format %q: csv or pdf", f)
	}
	if a.Render == nil {
		return nil, postage.Errorf(postage.EUNAVAILABLE, "credit note documents are not configured on this server")
	}
	if b, ok, err := a.Store.CreditNoteDocument(ctx, cn.ID, f, cn.Void()); err != nil || ok {
		return b, err
	}
	b, err := a.Render.RenderCreditNote(ctx, cn, f)
	if err != nil {
		return nil, err
	}
	return a.Store.PutCreditNoteDocument(ctx, cn.ID, f, cn.Void(), b)
}

// VoidCreditNote voids a credit note (by id or number) with a reason: it
// keeps its number (the numbering stays gapless), its documents say VOID,
// and its total no longer reduces the invoice, whose balance goes up by
// it. A credit note already void is a conflict; one whose money was
// refunded, so that the refunds would exceed what the customer is still
// owed, is EOVERREFUND. credit_note.voided is emitted with the change.
func (a *Accounts) VoidCreditNote(ctx context.Context, id, reason string) (CreditNote, Receivable, error) {
	reason = strings.TrimSpace(reason)
	if reason == "" || len(reason) > maxReasonLength {
		return CreditNote{}, Receivable{}, postage.Errorf(postage.EINVALID, "reason: required, at most %d characters", maxReasonLength)
	}
	cn, r, err := a.Store.VoidCreditNote(ctx, id, reason, checkVoidCreditNote)
	if err != nil {
		return CreditNote{}, Receivable{}, err
	}
	r.Derive(a.Today())
	return cn, r, nil
}

// Aging returns the accounts-receivable aging as of today, for one
// customer or all (""): per customer and currency, and totals per
// currency.
func (a *Accounts) Aging(ctx context.Context, customerID string) (AgingReport, error) {
	today := a.Today()
	rows, err := a.Store.Aging(ctx, customerID, today)
	if err != nil {
		return AgingReport{}, err
	}
	rep := AgingReport{AsOf: today, Customers: rows, Totals: []AgingRow{}}
	if rep.Customers == nil {
		rep.Customers = []AgingRow{}
	}
	totals := map[string]*AgingRow{}
	for _, r := range rows {
		t, ok := totals[r.Currency]
		if !ok {
			p := int(r.Total.Places)
			z := NewMoney(decimal.Zero, p)
			t = &AgingRow{Currency: r.Currency, Current: z, Days1To30: z, Days31To60: z, Days61To90: z, Over90: z, Total: z}
			totals[r.Currency] = t
		}
		add := func(dst *Money, m Money) { *dst = NewMoney(dst.Add(m.Decimal), int(dst.Places)) }
		add(&t.Current, r.Current)
		add(&t.Days1To30, r.Days1To30)
		add(&t.Days31To60, r.Days31To60)
		add(&t.Days61To90, r.Days61To90)
		add(&t.Over90, r.Over90)
		add(&t.Total, r.Total)
		t.Invoices += r.Invoices
	}
	for _, t := range totals {
		rep.Totals = append(rep.Totals, *t)
	}
	sort.Slice(rep.Totals, func(i, j int) bool { return rep.Totals[i].Currency < rep.Totals[j].Currency })
	return rep, nil
}

// MarkOverdue reports the invoices that became overdue (invoice.overdue,
// once each). The scheduler calls it hourly.
func (a *Accounts) MarkOverdue(ctx context.Context) (int, error) {
	return a.Store.MarkOverdue(ctx, a.Today())
}

// SendReminders emits the payment reminders due by today
// (invoice.payment_reminder, once per invoice and offset). The scheduler
// calls it hourly, after MarkOverdue; nothing when no reminder is
// configured.
func (a *Accounts) SendReminders(ctx context.Context) (int, error) {
	if len(a.Reminders) == 0 {
		return 0, nil
	}
	return a.Store.SendReminders(ctx, a.Today(), a.Reminders)
}
