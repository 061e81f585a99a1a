package billing

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"time"

	"postage"
	"postage/pricing"
)

// draftRequest asks for the draft of one customer-period.
type draftRequest struct {
	Customer Customer
	Period   pricing.Month
	Cutoff   time.Time       // usage ingested up to here counts
	Usage    []pricing.Usage // of the period
	// Adjust lists earlier, closed months to re-rate for adjustment lines.
	Adjust []pricing.Month
	// ID and Seq are the draft's own; Replaces is the void invoice a
	// reissue replaces ("" otherwise).
	ID       string
	Seq      int
	Replaces string
	// Prefetched holds the run's customers' cards and overrides (nil:
	// asked one at a time).
	Prefetched *Prefetched
}

// draft computes the draft of a planned customer, encoded for the ledger;
// nil when there is nothing to write (no billable usage for a new draft,
// or a draft whose content did not change).
func (r *Runner) draft(ctx context.Context, p *runPlan, pl *planned) (*Draft, []UnbilledUsage, error) {
	id, seq := pl.live.ID, pl.live.Seq
	if !pl.exists {
		id, seq = InvoiceID(pl.customer.ID, p.period, 1), 1
	}
	inv, unbilled, err := r.compute(ctx, draftRequest{Customer: pl.customer, Period: p.period, Cutoff: p.cutoff, Usage: pl.usage,
		Adjust: pl.late, ID: id, Seq: seq, Prefetched: p.pre})
	if err != nil {
		return nil, nil, fmt.Errorf("invoice of %s: %w", pl.customer.ID, err)
	}
	if inv == nil || (!pl.exists && len(inv.Lines) == 0) {
		return nil, unbilled, nil
	}
	d := EncodeDraft(inv)
	if pl.exists && bytes.Equal(d.Hash, pl.live.Hash) {
		return nil, unbilled, nil // unchanged: nothing to write
	}
	d.Fresh = !pl.exists
	return d, unbilled, nil
}

// compute builds a draft: usage lines rated with the customer's card
// version of the period (the rating pipeline), plus adjustment lines for
// the earlier months in req.Adjust. A reissue also subtracts what later
// invoices billed for the period itself as adjustments. It returns a nil
// invoice (and the unbilled rows) when the usage cannot be billed.
func (r *Runner) compute(ctx context.Context, req draftRequest) (*Invoice, []UnbilledUsage, error) {
	c, period := req.Customer, req.Period
	exclude := []string{req.ID}
	if req.Replaces != "" {
		exclude = append(exclude, req.Replaces)
	}
	rated, err := r.pipeline().Rate(ctx, req.Prefetched, c, period, req.Usage)
	if err != nil {
		return nil, nil, err
	}
	if rated.Unbilled != "" {
		return nil, unbilledRows(c.ID, period, req.Cutoff, req.Usage, rated.Unbilled, rated.Detail), nil
	}
	res := &rated.Result
	places := res.MinorUnits
	lines := usageLines(*res, period)
	if req.Replaces != "" {
		billed, err := r.Invoices.BilledLines(ctx, c.ID, period, exclude)
		if err != nil {
			return nil, nil, err
		}
		for _, l := range adjustmentLines(nil, billed, period, places) {
			l.Description = fmt.Sprintf("Already billed as adjustments on later invoices: %s messages, %s", l.Category, l.Market)
			lines = append(lines, l)
		}
	}
	var unbilled []UnbilledUsage
	adjust := append([]pricing.Month(nil), req.Adjust...)
	sort.Slice(adjust, func(i, j int) bool { return adjust[i].Before(adjust[j]) })
	for _, m := range adjust {
		rows, err := r.Usage.MonthlyUsage(ctx, m, req.Cutoff, []string{c.ID})
		if err != nil {
			return nil, nil, fmt.Errorf("read usage of %s %s: %w", c.ID, m, err)
		}
		u := make([]pricing.Usage, len(rows))
		for i, x := range rows {
			u[i] = x.Rateable()
		}
		mr, err := r.pipeline().Rate(ctx, req.Prefetched, c, m, u)
		if err != nil {
			return nil, nil, err
		}
		if mr.Unbilled != "" {
			unbilled = append(unbilled, unbilledRows(c.ID, m, req.Cutoff, u, mr.Unbilled, mr.Detail)...)
			continue
		}
		if mr.Result.Currency != res.Currency {
			return nil, nil, postage.Errorf(postage.ECONFLICT, "customer %s: %s is billed in %s but %s in %s", c.ID, m, mr.Result.Currency, period, res.Currency)
		}
		billed, err := r.Invoices.BilledLines(ctx, c.ID, m, exclude)
		if err != nil {
			return nil, nil, err
		}
		lines = append(lines, adjustmentLines(usageLines(mr.Result, m), billed, m, places)...)
	}
	return newDraft(req, res, lines, r.now(), r.Grace), unbilled, nil
}

// newDraft is the draft req asks for, with lines, rated by res.
func newDraft(req draftRequest, res *pricing.Result, lines []Line, now time.Time, grace time.Duration) *Invoice {
	c, places := req.Customer, res.MinorUnits
	sub, adj, total := sumLines(lines, places)
	inv := &Invoice{
		ID: req.ID, CustomerID: c.ID, Period: req.Period, Seq: req.Seq, Status: StatusDraft, Replaces: req.Replaces,
		Customer: CustomerSnapshot{ID: c.ID, Name: c.Name, Country: c.Country, Email: c.Email, Currency: c.Currency},
		Currency: res.Currency, MinorUnits: places, CardID: res.CardID, CardVersion: res.Version,
		Lines: lines, Subtotal: sub, Adjustments: adj, Total: total,
		UsageCutoff:   req.Cutoff,
		FinalizeAfter: maxTime(req.Period.End(), now).Add(grace),
		CreatedAt:     now, UpdatedAt: now,
	}
	if inv.Lines == nil {
		inv.Lines = []Line{}
	}
	return inv
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
