package billing

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"postage"
	"postage/internal/db"
	"postage/pricing"
)

// Runner makes invoices from usage: invoice runs for a period, approval,
// void and reissue, the month-to-date bill, the documents of invoices.
// Several Runners (replicas) may share one ledger: runs take the Locker's
// lock, invoice ids are deterministic and the ledger's unique constraints
// hold the rest.
//
// A run is four steps (docs/BILLING.md, "Runs"): lock (Locks), plan (read
// the period's usage and the ledger, decide who gets a draft: plan.go),
// rate (the rating pipeline, one customer at a time on Workers goroutines:
// draft.go) and write (batches of drafts while rating goes on: write.go).
type Runner struct {
	Invoices  Ledger
	Customers CustomerStore
	Usage     UsageSource
	Pricing   Pricing
	Locks     Locker
	// Render draws the CSV and PDF documents of invoices (Document).
	Render Renderer
	// Issuer is who invoices are from; finalization freezes it into each.
	Issuer Issuer
	// Taxes are the tax rates invoices are taxed with (nil: no taxes).
	Taxes TaxRates
	// TaxNotes are the legal notes of reverse-charge and exempt invoices
	// (the Default notes where empty).
	TaxNotes TaxNotes
	// PaymentTermsDays are the payment terms of customers without their
	// own (DefaultPaymentTermsDays when zero).
	PaymentTermsDays int
	Log              *slog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Grace is how long a draft stays open after its period ends (or after
	// it is created, if later) before it finalizes on its own.
	Grace time.Duration
	// CutoffLag is subtracted from Now to get a run's usage cut-off, so
	// events whose ingestion time is before the cut-off but whose insert is
	// still in flight are never missed. Zero means no lag.
	CutoffLag time.Duration
	// Lookback is how many months before a run's period are checked for
	// late usage (adjustment lines); 3 when zero. It must cover the ingest
	// horizon (35 days by default) plus the grace period.
	Lookback int
	// BatchSize is how many drafts are written per statement (1000 when zero).
	BatchSize int
	// Workers rate customers in parallel (4 when zero).
	Workers int
	// Progress, when set, is told how many customers are done of how many.
	Progress func(done, total int)
	// Holds, when set, is asked before a period's invoices are finalized
	// (by a run or an approval): a held period's drafts wait.
	Holds FinalizationHold

	ratingOnce sync.Once
	rating     *Rating
}

func (r *Runner) now() time.Time {
	if r.Now != nil {
		return r.Now().UTC()
	}
	return time.Now().UTC()
}

func (r *Runner) log() *slog.Logger {
	if r.Log != nil {
		return r.Log
	}
	return slog.Default()
}

func (r *Runner) lookback() int {
	if r.Lookback > 0 {
		return r.Lookback
	}
	return 3
}

// pipeline returns the Runner's rating pipeline (its compiled card
// versions live as long as the Runner).
func (r *Runner) pipeline() *Rating {
	r.ratingOnce.Do(func() {
		r.rating = NewRating(r.Pricing)
		r.rating.Portfolios = r.Customers
		r.rating.Now = r.now
	})
	return r.rating
}

// DefaultCutoffLag is the usage cut-off's distance behind the clock in
// production: long enough for any insert stamped before it to be visible.
const DefaultCutoffLag = time.Minute

// Run triggers.
const (
	TriggerSchedule = "schedule"
	TriggerManual   = "manual"
	TriggerSweep    = "sweep"
	TriggerAPI      = "api"
)

// Run statuses.
const (
	RunRunning   = "running"
	RunSucceeded = "succeeded"
	RunFailed    = "failed"
	RunSkipped   = "skipped"
)

// RunRequest asks for an invoice run of one period.
type RunRequest struct {
	Period  pricing.Month
	Trigger string
	// Wait makes the run wait for a run in progress (on any replica)
	// instead of being recorded as skipped.
	Wait bool
}

// CheckPeriod rejects a malformed period or one that has not ended yet.
func CheckPeriod(period pricing.Month, now time.Time) error {
	if !period.Valid() {
		return postage.Errorf(postage.EINVALID, "period %q: want YYYY-MM", period)
	}
	if cur := pricing.MonthOf(now); !period.Before(cur) {
		return postage.Errorf(postage.EINVALID, "period %s has not ended yet (the current month is %s; its month-to-date bill is at /api/v1/customers/{id}/invoices/upcoming)", period, cur)
	}
	return nil
}

// Run creates or refreshes the draft of every customer with usage in the
// period (and of customers with late usage of earlier, closed months),
// then finalizes the period's drafts whose grace has ended. It is
// idempotent: running it again, or on two replicas at once, gives the same
// invoices. Every run is recorded, including failed and skipped ones.
func (r *Runner) Run(ctx context.Context, req RunRequest) (Run, error) {
	now := r.now()
	if err := CheckPeriod(req.Period, now); err != nil {
		return Run{}, err
	}
	if req.Trigger == "" {
		req.Trigger = TriggerManual
	}
	run := Run{Period: req.Period.String(), Trigger: req.Trigger, Status: RunRunning, StartedAt: now}
	unlock, locked, err := r.Locks.LockRuns(ctx, req.Wait)
	if err != nil {
		return run, unavailable("invoice run lock", err)
	}
	if !locked {
		// Recorded, so operators see that the replicas raced.
		run.Status = RunSkipped
		run.Error = "another invoice run holds the lock"
		if err := r.Invoices.StartRun(ctx, &run); err != nil {
			return run, unavailable("record invoice run", err)
		}
		return r.finish(run, nil)
	}
	defer unlock()
	if err := r.Invoices.StartRun(ctx, &run); err != nil {
		return run, unavailable("record invoice run", err)
	}
	// Only the lock holder records a run as running: any other run still
	// marked running died half-way (its process or database went away).
	if err := r.Invoices.FailInterrupted(ctx, run.ID, now); err != nil {
		return r.finish(run, unavailable("invoice run", err))
	}
	err = r.run(ctx, req.Period, &run)
	return r.finish(run, err)
}

// finish records the run's outcome (with its own short context, so a
// cancelled run is still recorded) and returns it.
func (r *Runner) finish(run Run, err error) (Run, error) {
	end := r.now()
	run.EndedAt = &end
	if err != nil {
		run.Status = RunFailed
		// The record is served by the API: keep the caller-safe message;
		// the full error is logged below.
		run.Error = postage.ErrorMessage(err)
	} else if run.Status == RunRunning {
		run.Status = RunSucceeded
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if rerr := r.Invoices.FinishRun(ctx, run); rerr != nil {
		r.log().Error("cannot record invoice run", "run", run.ID, "err", rerr)
	}
	if err != nil {
		r.log().Error("invoice run failed", "run", run.ID, "period", run.Period, "err", err)
		return run, err
	}
	r.log().Info("invoice run", "run", run.ID, "period", run.Period, "status", run.Status, "customers", run.Customers,
		"created", run.Created, "refreshed", run.Refreshed, "finalized", run.Finalized, "unbilled", run.Unbilled)
	return run, nil
}

// run is a locked run of one period: plan, rate and write, record the
// period's cut-off and unbilled usage, finalize what is due.
func (r *Runner) run(ctx context.Context, period pricing.Month, run *Run) error {
	now := r.now()
	cutoff := now.Add(-r.CutoffLag).Truncate(time.Second)
	run.UsageCutoff = &cutoff
	var phases []any
	t0 := time.Now()
	phase := func(name string) {
		phases = append(phases, name, time.Since(t0).Round(time.Millisecond).String())
		t0 = time.Now()
	}
	defer func() { r.log().Debug("invoice run phases", phases...) }()

	p, err := r.plan(ctx, period, cutoff)
	if err != nil {
		return err
	}
	run.Customers = len(p.todo)
	phase("read usage and ledger, plan")

	w, err := r.rateAndWrite(ctx, p, now)
	if err != nil {
		return err
	}
	phase("rate and write drafts")
	phases = append(phases, "rating (summed)", w.rating.Round(time.Millisecond).String(), "writing (summed)", w.writing.Round(time.Millisecond).String())
	run.Created, run.Refreshed = w.created, w.refreshed
	run.Unchanged = run.Customers - run.Created - run.Refreshed
	unbilled := append(p.unbilled, w.unbilled...)
	run.Unbilled = len(unbilled)
	failed := map[string]bool{}
	for _, u := range unbilled {
		if u.Reason == UnbilledRatingError {
			failed[u.CustomerID] = true
		}
	}
	run.Errors = len(failed) // customers whose usage could not be rated (see the unbilled report)
	if err := r.Invoices.ClosePeriod(ctx, period, cutoff, now, unbilled); err != nil {
		return err
	}
	phase("close period")
	n, err := r.finalizeDue(ctx, period)
	run.Finalized = n
	phase("finalize")
	return err
}

// unavailable wraps err with what. An error caused by a database outage
// (db.IsOutage: unreachable, stalled, restarting) gets the code
// EUNAVAILABLE (503, retry later) with a caller-safe message; any other
// keeps its code, so a bug stays internal. The cause stays in the chain
// for logs and the CLI.
func unavailable(what string, err error) error {
	return db.MarkOutage(fmt.Errorf("%s: %w", what, err), what)
}
