package billing

import (
	"context"
	"errors"
	"fmt"
	"time"

	"postage"
	"postage/pricing"
)

// FinalizationHold can hold the finalization of a period's invoices
// (reconciliation with the upstream's report, reconcile.Service, holds a
// month whose difference exceeds its tolerance until finance accepts it).
type FinalizationHold interface {
	// FinalizationHold returns why the invoices of period must not be
	// finalized yet, or "" when they may.
	FinalizationHold(ctx context.Context, period pricing.Month) (string, error)
}

// held returns why period's invoices must wait ("" when they need not).
func (r *Runner) held(ctx context.Context, period pricing.Month) (string, error) {
	if r.Holds == nil {
		return "", nil
	}
	why, err := r.Holds.FinalizationHold(ctx, period)
	if err != nil {
		return "", fmt.Errorf("finalization hold of %s: %w", period, err)
	}
	return why, nil
}

// finalizeDue finalizes the period's drafts whose grace has ended, unless
// the period is held.
func (r *Runner) finalizeDue(ctx context.Context, period pricing.Month) (int, error) {
	if why, err := r.held(ctx, period); err != nil || why != "" {
		if why != "" {
			r.log().Warn("finalization held", "period", period.String(), "reason", why)
		}
		return 0, err
	}
	ids, err := r.Invoices.DueDrafts(ctx, period, r.now())
	if err != nil {
		return 0, err
	}
	n := 0
	for _, id := range ids {
		if _, err := r.Invoices.Finalize(ctx, id, r.Issuer); err != nil {
			if postage.ErrorCode(err) == postage.ECONFLICT {
				continue // finalized meanwhile (approved, or another replica)
			}
			return n, err
		}
		n++
	}
	return n, nil
}

// Sweep runs every period that has drafts past their grace period, so
// they are refreshed one last time and finalized. The scheduler calls it
// hourly.
func (r *Runner) Sweep(ctx context.Context) ([]Run, error) {
	periods, err := r.Invoices.DuePeriods(ctx, r.now())
	if err != nil {
		return nil, unavailable("find due drafts", err)
	}
	var runs []Run
	var errs []error
	for _, m := range periods {
		run, err := r.Run(ctx, RunRequest{Period: m, Trigger: TriggerSweep})
		runs = append(runs, run)
		if err != nil {
			errs = append(errs, err)
		}
	}
	return runs, errors.Join(errs...)
}

// Approve finalizes a draft now, before its grace period ends, as finance
// reviewed it: it is numbered and frozen with the configured issuer.
// Another status is a conflict.
func (r *Runner) Approve(ctx context.Context, id string) (Invoice, error) {
	if r.Holds != nil {
		inv, err := r.Invoices.Get(ctx, id)
		if err != nil {
			return Invoice{}, err
		}
		if why, err := r.held(ctx, inv.Period); err != nil {
			return Invoice{}, err
		} else if why != "" && inv.Status == StatusDraft {
			return Invoice{}, postage.Errorf(postage.ECONFLICT, "invoice %s is held: %s", id, why)
		}
	}
	return r.Invoices.Finalize(ctx, id, r.Issuer)
}

// Void voids a finalized invoice with a reason and reissues it: the
// replacement is a new draft (next seq of the customer-period, its own
// deterministic id) rated again from all usage counted now, linked both
// ways. Voiding a draft or a void invoice is a conflict.
func (r *Runner) Void(ctx context.Context, id, reason string) (voided, reissued Invoice, err error) {
	if reason == "" || len(reason) > 500 {
		return Invoice{}, Invoice{}, postage.Errorf(postage.EINVALID, "reason: required, at most 500 characters")
	}
	old, err := r.Invoices.Get(ctx, id)
	if err != nil {
		return Invoice{}, Invoice{}, err
	}
	if old.Status != StatusFinalized {
		return Invoice{}, Invoice{}, postage.Errorf(postage.ECONFLICT, "invoice %s is %s: only a finalized invoice can be voided (a draft is refreshed by runs or approved)", id, old.Status)
	}
	c, err := r.Customers.Get(ctx, old.CustomerID)
	if err != nil {
		return Invoice{}, Invoice{}, err
	}
	now := r.now()
	cutoff := now.Add(-r.CutoffLag).Truncate(time.Second)
	seq, err := r.Invoices.NextSeq(ctx, old.CustomerID, old.Period)
	if err != nil {
		return Invoice{}, Invoice{}, fmt.Errorf("void: %w", err)
	}
	// The void drops the original's adjustment lines; the reissue bills them again.
	var adjust []pricing.Month
	seen := map[pricing.Month]bool{}
	for _, l := range old.Lines {
		if l.Kind == KindAdjustment && !seen[l.Period] {
			seen[l.Period] = true
			adjust = append(adjust, l.Period)
		}
	}
	inv, _, err := r.compute(ctx, draftRequest{Customer: c, Period: old.Period, Cutoff: cutoff, Adjust: adjust,
		ID: InvoiceID(old.CustomerID, old.Period, seq), Seq: seq, Replaces: old.ID})
	if err != nil {
		return Invoice{}, Invoice{}, err
	}
	if inv == nil {
		return Invoice{}, Invoice{}, postage.Errorf(postage.ECONFLICT, "invoice %s cannot be reissued: the customer's usage of %s cannot be rated now (see the unbilled-usage report)", id, old.Period)
	}
	inv.FinalizeAfter = now.Add(r.Grace)
	if err := r.Invoices.VoidAndReissue(ctx, id, reason, now, inv, r.Issuer); err != nil {
		return Invoice{}, Invoice{}, err
	}
	if voided, err = r.Invoices.Get(ctx, id); err != nil {
		return Invoice{}, Invoice{}, err
	}
	reissued, err = r.Invoices.Get(ctx, inv.ID)
	return voided, reissued, err
}

// Upcoming returns the customer's month-to-date bill: the current month's
// usage so far, rated exactly as its invoice will be (with its
// portfolio's usage so far when it is in one: the tiers are the
// portfolio's), with the adjustment lines for late usage of earlier months
// that the invoice would carry. A consolidating parent's bill holds its
// members' sections; a member its parent's invoice bills sees its own part.
// It is computed, never stored.
func (r *Runner) Upcoming(ctx context.Context, customerID string) (Invoice, error) {
	c, err := r.Customers.Get(ctx, customerID)
	if err != nil {
		return Invoice{}, err
	}
	now := r.now()
	period := pricing.MonthOf(now)
	cutoff := now.Truncate(time.Second)
	// Re-rating the closed months of one customer is cheaper than finding
	// late usage across all customers.
	closed, err := r.Invoices.ClosedMonths(ctx, c.ID, addMonths(period, -r.lookback()), period)
	if err != nil {
		return Invoice{}, err
	}
	inv, unbilled, err := r.compute(ctx, draftRequest{Customer: c, Period: period, Cutoff: cutoff, Adjust: closed,
		ID: InvoiceID(c.ID, period, 1), Seq: 1, Alone: true})
	if err != nil {
		return Invoice{}, err
	}
	if inv == nil {
		reason := "no rate card"
		if len(unbilled) > 0 {
			reason = unbilled[0].Detail
		}
		return Invoice{}, postage.Errorf(postage.ECONFLICT, "customer %s cannot be billed: %s", c.ID, reason)
	}
	expandLines(inv.Lines) // as a stored draft reads
	inv.ID = ""
	inv.Status = "upcoming"
	return *inv, nil
}

// FreezeFinalized freezes the invoices finalized before finalization froze
// them (migration 0035), with the issuer configured now: from then on they
// never change either. App.Migrate calls it; it does nothing once all are.
func (r *Runner) FreezeFinalized(ctx context.Context) (int, error) {
	return r.Invoices.FreezeUnfrozen(ctx, r.Issuer)
}

// Document returns an invoice's CSV or PDF. A draft's is drawn now, from
// the current code and configuration. A finalized or void invoice's is
// drawn once, from its frozen document, the first time it is asked for,
// stored, and served from the ledger byte for byte ever after: a later
// release that draws documents differently, or a new issuer address,
// never changes an invoice already issued.
func (r *Runner) Document(ctx context.Context, inv Invoice, f Format) ([]byte, error) {
	if f != FormatCSV && f != FormatPDF {
		return nil, postage.Errorf(postage.EINVALID, "format %q: csv or pdf", f)
	}
	if r.Render == nil {
		return nil, postage.Errorf(postage.EUNAVAILABLE, "invoice documents are not configured on this server")
	}
	if inv.Status == StatusDraft || inv.Status == "upcoming" {
		if inv.Issuer.IsZero() {
			inv.Issuer = r.Issuer
		}
		return r.Render.RenderInvoice(ctx, inv, f)
	}
	if b, ok, err := r.Invoices.Document(ctx, inv.ID, inv.Status, f); err != nil || ok {
		return b, err
	}
	if inv.Issuer.IsZero() {
		inv.Issuer = r.Issuer // finalized before invoices were frozen: the issuer of today, kept from now on
	}
	b, err := r.Render.RenderInvoice(ctx, inv, f)
	if err != nil {
		return nil, err
	}
	return r.Invoices.PutDocument(ctx, inv.ID, inv.Status, f, b)
}
