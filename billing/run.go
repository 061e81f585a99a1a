package billing

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"golang.org/x/sync/errgroup"

	"postage"
	"postage/pricing"
)

// Runner makes invoices from usage: invoice runs for a period, approval,
// void and reissue, the month-to-date bill. Several Runners (replicas) may
// share one database: runs take a PostgreSQL advisory lock, invoice ids are
// deterministic and unique constraints hold the rest.
type Runner struct {
	Invoices  *InvoiceStore
	Customers *CustomerStore
	Usage     UsageSource
	Pricing   Pricing
	Log       *slog.Logger
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
	// GCPercent, when positive, is the Go collector's GOGC while a run is
	// in progress (the previous setting comes back when the last run of
	// the process ends). A run is a short batch job that allocates heavily:
	// at 400 it spends far less time collecting, for a larger heap while it
	// runs (docs/BILLING.md, "Run speed").
	GCPercent int

	mu     sync.Mutex
	raters map[string]*pricing.Rater
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

// Advisory lock keys: "pstg" and 6 for the invoice run lock; "pstg" and 7,
// held shared by a run while it writes invoices and exclusively by the
// customers trigger that refuses to delete or rename an invoiced customer
// (PostgreSQL migration 0032): a delete waits for the runs in progress, and
// a run waits for a delete in progress, instead of either being skipped.
const lockClass, lockRuns, lockCustomers = 0x70737467, 6, 7

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
	db := r.Invoices.DB
	run := Run{Period: req.Period.String(), Trigger: req.Trigger, Status: RunRunning, StartedAt: now}
	conn, err := db.Acquire(ctx)
	if err != nil {
		return run, unavailable("invoice run lock", err)
	}
	locked := true
	if req.Wait {
		_, err = conn.Exec(ctx, `SELECT pg_advisory_lock($1, $2)`, lockClass, lockRuns)
	} else {
		err = conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, $2)`, lockClass, lockRuns).Scan(&locked)
	}
	if err != nil {
		conn.Release()
		return run, unavailable("invoice run lock", err)
	}
	if !locked {
		// Recorded, so operators see that the replicas raced.
		conn.Release()
		run.Status = RunSkipped
		run.Error = "another invoice run holds the lock"
		if err := db.QueryRow(ctx, `INSERT INTO invoice_runs (period, trigger, status, started_at) VALUES ($1,$2,$3,$4) RETURNING id`,
			run.Period, run.Trigger, run.Status, run.StartedAt).Scan(&run.ID); err != nil {
			return run, unavailable("record invoice run", err)
		}
		return r.finish(run, nil)
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, err := conn.Exec(uctx, `SELECT pg_advisory_unlock_shared($1, $3), pg_advisory_unlock($1, $2)`, lockClass, lockRuns, lockCustomers); err != nil {
			// A broken connection releases the locks with its session.
			conn.Conn().Close(uctx)
		}
		conn.Release()
	}()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock_shared($1, $2)`, lockClass, lockCustomers); err != nil {
		return run, unavailable("invoice run lock", err)
	}
	if err := conn.QueryRow(ctx, `INSERT INTO invoice_runs (period, trigger, status, started_at) VALUES ($1,$2,$3,$4) RETURNING id`,
		run.Period, run.Trigger, run.Status, run.StartedAt).Scan(&run.ID); err != nil {
		return run, unavailable("record invoice run", err)
	}
	// Only the lock holder records a run as running: any other run still
	// marked running died half-way (its process or database went away).
	if _, err := conn.Exec(ctx, `UPDATE invoice_runs SET status = 'failed', ended_at = $2, error = 'interrupted (the process or a database went away); finished by run '||$1::text
		WHERE status = 'running' AND id <> $1`, run.ID, now); err != nil {
		return r.finish(run, unavailable("invoice run", err))
	}
	if r.GCPercent > 0 {
		defer raiseGC(r.GCPercent)()
	}
	err = r.run(ctx, req.Period, &run)
	return r.finish(run, err)
}

// gcRaise counts the runs in progress that raised GOGC, and remembers the
// setting from before the first one.
var gcRaise struct {
	sync.Mutex
	n    int
	prev int
}

// raiseGC sets GOGC to at least percent until the returned function is
// called (nested and concurrent runs share one raise).
func raiseGC(percent int) (restore func()) {
	gcRaise.Lock()
	defer gcRaise.Unlock()
	if gcRaise.n == 0 {
		gcRaise.prev = debug.SetGCPercent(percent)
		if gcRaise.prev < 0 || gcRaise.prev > percent { // off, or already higher: keep it
			debug.SetGCPercent(gcRaise.prev)
		}
	}
	gcRaise.n++
	return func() {
		gcRaise.Lock()
		defer gcRaise.Unlock()
		if gcRaise.n--; gcRaise.n == 0 {
			debug.SetGCPercent(gcRaise.prev)
		}
	}
}

func unavailable(what string, err error) error {
	if postage.ErrorCode(err) != postage.EINTERNAL {
		return fmt.Errorf("%s: %w", what, err)
	}
	// The code and safe message for API callers, the cause for logs and the CLI.
	return fmt.Errorf("%w (%v)", postage.Errorf(postage.EUNAVAILABLE, "%s: database unavailable, retry later", what), err)
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
	_, rerr := r.Invoices.DB.Exec(ctx, `UPDATE invoice_runs SET status=$2, ended_at=$3, usage_cutoff=$4, customers=$5, created=$6, refreshed=$7,
		finalized=$8, unchanged=$9, unbilled=$10, errors=$11, error=$12 WHERE id=$1`,
		run.ID, run.Status, end, run.UsageCutoff, run.Customers, run.Created, run.Refreshed, run.Finalized, run.Unchanged, run.Unbilled, run.Errors, run.Error)
	if rerr != nil {
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

// planned is one customer an invoice run computes a draft for.
type planned struct {
	customer Customer
	usage    []pricing.Usage // of the period
	late     []pricing.Month // earlier closed months with late usage
	live     liveInvoice     // its draft, when exists
	exists   bool
}

// liveInvoice is the draft or finalized invoice of a customer-period.
type liveInvoice struct {
	id     string
	seq    int
	status Status
	hash   []byte // content hash of a draft
}

func (r *Runner) run(ctx context.Context, period pricing.Month, run *Run) error {
	now := r.now()
	t0 := time.Now()
	var phases []any
	phase := func(name string) {
		phases = append(phases, name, time.Since(t0).Round(time.Millisecond).String())
		t0 = time.Now()
	}
	defer func() { r.log().Debug("invoice run phases", phases...) }()
	cutoff := now.Add(-r.CutoffLag).Truncate(time.Second)
	run.UsageCutoff = &cutoff
	// The usage read (ClickHouse) and the ledger reads (PostgreSQL) are
	// independent: run them at once.
	var (
		customers map[string]Customer
		groups    usageGroups
		live      map[string]liveInvoice
		late      map[string][]pricing.Month
		elsewhere map[string]bool
		pr        Pricing
	)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) {
		if err = r.Usage.EachMonthlyUsage(gctx, period, cutoff, func(u UsageRow) error { groups.add(u); return nil }); err != nil {
			return fmt.Errorf("read usage of %s: %w", period, err)
		}
		return nil
	})
	g.Go(func() (err error) {
		if customers, err = r.Customers.All(gctx); err != nil {
			return err
		}
		all := make([]string, 0, len(customers))
		for c := range customers {
			all = append(all, c)
		}
		if pr, err = prefetch(gctx, r.Pricing, all, period); err != nil {
			return fmt.Errorf("read rate cards: %w", err)
		}
		return nil
	})
	g.Go(func() (err error) { live, err = r.liveInvoices(gctx, period); return err })
	g.Go(func() (err error) { late, err = r.lateMonths(gctx, period, cutoff); return err })
	g.Go(func() (err error) { elsewhere, err = r.billedElsewhere(gctx, period); return err })
	if err := g.Wait(); err != nil {
		return err
	}
	phase("read usage and ledger")
	usage := groups.byCustomer()

	// Who gets a draft: customers with usage, with a draft to refresh, or
	// with late usage of an earlier month. Each customer's records are
	// looked up once, here, into one list the rating workers walk.
	var unbilled []UnbilledRow
	todo := make([]planned, 0, len(usage))
	consider := func(c string, u []pricing.Usage) {
		cust, ok := customers[c]
		if !ok {
			for _, u := range u {
				unbilled = append(unbilled, UnbilledRow{Period: period.String(), CustomerID: c, Reason: UnbilledUnknownCustomer,
					Detail: "no customer with this id", Country: u.Country, Category: u.Category, Quantity: u.Quantity, UsageCutoff: cutoff})
			}
			return
		}
		l, exists := live[c]
		if exists && l.status != StatusDraft {
			return // finalized: late usage goes to the next invoice
		}
		if !exists && elsewhere[c] {
			return // this month is already billed through adjustments
		}
		todo = append(todo, planned{customer: cust, usage: u, late: late[c], live: l, exists: exists})
	}
	for _, u := range usage {
		consider(u.id, u.usage)
	}
	for c, l := range live {
		if !groups.has(c) && l.status == StatusDraft {
			consider(c, nil)
		}
	}
	for c := range late {
		if !groups.has(c) {
			if l, ok := live[c]; !ok || l.status != StatusDraft {
				consider(c, nil)
			}
		}
	}
	// Drafts are written in customer order (PostgreSQL's customer-leading
	// indexes take in-order inserts faster); the order is sorted, not the
	// planned records themselves, which are large to move.
	order := make([]int32, len(todo))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(a, b int32) int { return strings.Compare(todo[a].customer.ID, todo[b].customer.ID) })
	run.Customers = len(todo)
	phase("plan")

	// Rate in parallel and write batches of drafts while rating goes on.
	var (
		mu                sync.Mutex
		firstErr          error
		done              int
		rateTime, putTime time.Duration // summed over workers / writers
	)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
		cancel()
	}
	workers := r.Workers
	if workers <= 0 {
		workers = 4
	}
	batchSize := r.BatchSize
	if batchSize <= 0 {
		batchSize = 1000
	}
	next := make(chan int)
	drafts := make(chan *encodedDraft, batchSize)
	batches := make(chan []*encodedDraft, 2)
	var rating, writing sync.WaitGroup
	for w := 0; w < workers; w++ {
		rating.Add(1)
		go func() {
			defer rating.Done()
			for i := range next {
				p := &todo[i]
				l, exists := p.live, p.exists
				self, seq := l.id, l.seq
				if !exists {
					seq = 1
					self = InvoiceID(p.customer.ID, period, seq)
				}
				t0 := time.Now()
				inv, unb, err := r.compute(cctx, pr, p.customer, period, cutoff, p.usage, p.late, self, seq, "")
				d := time.Since(t0)
				if err != nil {
					fail(fmt.Errorf("invoice of %s: %w", p.customer.ID, err))
					return
				}
				mu.Lock()
				rateTime += d
				unbilled = append(unbilled, unb...)
				done++
				if r.Progress != nil {
					r.Progress(done, len(todo))
				}
				mu.Unlock()
				if inv == nil || (!exists && len(inv.Lines) == 0) {
					continue
				}
				enc := encodeDraft(inv)
				if exists && bytes.Equal(enc.hash, l.hash) {
					continue // unchanged: nothing to write
				}
				enc.fresh = !exists
				select {
				case drafts <- enc:
				case <-cctx.Done():
					return
				}
			}
		}()
	}
	go func() { // batch the drafts
		defer close(batches)
		var b []*encodedDraft
		for d := range drafts {
			if b = append(b, d); len(b) == batchSize {
				select {
				case batches <- b:
				case <-cctx.Done():
					return
				}
				b = nil
			}
		}
		if len(b) > 0 {
			select {
			case batches <- b:
			case <-cctx.Done():
			}
		}
	}()
	for w := 0; w < 2; w++ {
		writing.Add(1)
		go func() {
			defer writing.Done()
			for b := range batches {
				t0 := time.Now()
				created, refreshed, err := r.Invoices.upsertDrafts(cctx, b, now)
				if err != nil {
					fail(err)
					return
				}
				mu.Lock()
				putTime += time.Since(t0)
				run.Created += created
				run.Refreshed += refreshed
				mu.Unlock()
			}
		}()
	}
feed:
	for _, i := range order {
		select {
		case next <- int(i):
		case <-cctx.Done():
			break feed
		}
	}
	close(next)
	rating.Wait()
	close(drafts)
	writing.Wait()
	if firstErr != nil {
		return firstErr
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	phase("rate and write drafts")
	phases = append(phases, "rating (summed)", rateTime.Round(time.Millisecond).String(), "writing (summed)", putTime.Round(time.Millisecond).String())
	run.Unchanged = run.Customers - run.Created - run.Refreshed
	run.Unbilled = len(unbilled)
	failed := map[string]bool{}
	for _, u := range unbilled {
		if u.Reason == UnbilledRatingError {
			failed[u.CustomerID] = true
		}
	}
	run.Errors = len(failed) // customers whose usage could not be rated (see the unbilled report)
	if err := r.Invoices.closePeriod(ctx, period, cutoff, now, unbilled); err != nil {
		return err
	}
	phase("close period")
	n, err := r.finalizeDue(ctx, period)
	run.Finalized = n
	phase("finalize")
	return err
}

// liveInvoices returns the draft or finalized invoice of each customer of a period.
func (r *Runner) liveInvoices(ctx context.Context, period pricing.Month) (map[string]liveInvoice, error) {
	rows, err := r.Invoices.DB.Query(ctx, `SELECT customer_id, id, seq, status, content_hash FROM invoices WHERE period = $1 AND status <> 'void'`, period.String())
	if err != nil {
		return nil, fmt.Errorf("read invoices of %s: %w", period, err)
	}
	defer rows.Close()
	m := map[string]liveInvoice{}
	for rows.Next() {
		var c, id, st string
		var seq int
		var h []byte
		if err := rows.Scan(&c, &id, &seq, &st, &h); err != nil {
			return nil, err
		}
		m[c] = liveInvoice{id: id, seq: seq, status: Status(st), hash: h}
	}
	return m, rows.Err()
}

// billedElsewhere returns the customers with adjustment lines for period
// on later invoices: a first invoice for the period would bill it twice.
func (r *Runner) billedElsewhere(ctx context.Context, period pricing.Month) (map[string]bool, error) {
	rows, err := r.Invoices.DB.Query(ctx, `SELECT DISTINCT customer_id FROM invoices
		WHERE status <> 'void' AND period > $1 AND period <= $2 AND adjusts <> '{}' AND adjusts @> ARRAY[$3::text]`,
		period.String(), addMonths(period, r.lookback()+1).String(), period.String())
	if err != nil {
		return nil, fmt.Errorf("read adjustments of %s: %w", period, err)
	}
	m := map[string]bool{}
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			rows.Close()
			return nil, err
		}
		m[c] = true
	}
	return m, rows.Err()
}

// adjustedPeriods returns the months that lines' adjustment lines bill,
// sorted and each once: the invoices table's adjusts column.
func adjustedPeriods(lines []Line) []string {
	out := []string{}
	for _, l := range lines {
		if l.Kind == KindAdjustment {
			out = append(out, l.Period.String())
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func addMonths(m pricing.Month, n int) pricing.Month {
	for ; n > 0; n-- {
		m = m.Next()
	}
	for ; n < 0; n++ {
		m = m.Prev()
	}
	return m
}

// lateMonths finds, for the months of the lookback window before period,
// the customers whose usage of a closed month was ingested after what
// their invoices of that month counted. A month is closed for a customer
// when a finalized invoice bills it, or when a run of that month completed
// and left the customer without an invoice; it is open while a draft of
// it exists (the draft will count the usage itself).
func (r *Runner) lateMonths(ctx context.Context, period pricing.Month, cutoff time.Time) (map[string][]pricing.Month, error) {
	from := addMonths(period, -r.lookback())
	db := r.Invoices.DB
	type cm struct {
		c string
		m pricing.Month
	}
	billedTo := map[cm]time.Time{}
	rows, err := db.Query(ctx, `SELECT customer_id, p, max(usage_cutoff) FROM (
			SELECT customer_id, period AS p, usage_cutoff FROM invoices WHERE status = 'finalized' AND period >= $1 AND period < $2
			UNION ALL
			SELECT i.customer_id, a, i.usage_cutoff FROM invoices i, unnest(i.adjusts) a
			WHERE i.status = 'finalized' AND i.period > $1 AND i.adjusts <> '{}' AND a >= $1 AND a < $2
		) b GROUP BY customer_id, p`, from.String(), period.String())
	if err != nil {
		return nil, fmt.Errorf("read billed months: %w", err)
	}
	for rows.Next() {
		var c, p string
		var t time.Time
		if err := rows.Scan(&c, &p, &t); err != nil {
			rows.Close()
			return nil, err
		}
		m, err := pricing.ParseMonth(p)
		if err != nil {
			rows.Close()
			return nil, err
		}
		billedTo[cm{c, m}] = t
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read billed months: %w", err)
	}
	open := map[cm]bool{}
	rows, err = db.Query(ctx, `SELECT customer_id, period FROM invoices WHERE status = 'draft' AND period >= $1 AND period < $2`, from.String(), period.String())
	if err != nil {
		return nil, fmt.Errorf("read open months: %w", err)
	}
	for rows.Next() {
		var c, p string
		if err := rows.Scan(&c, &p); err != nil {
			rows.Close()
			return nil, err
		}
		m, _ := pricing.ParseMonth(p)
		open[cm{c, m}] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read open months: %w", err)
	}
	runCutoff := map[pricing.Month]time.Time{}
	rows, err = db.Query(ctx, `SELECT period, run_cutoff FROM billing_periods WHERE period >= $1 AND period < $2`, from.String(), period.String())
	if err != nil {
		return nil, fmt.Errorf("read billing periods: %w", err)
	}
	for rows.Next() {
		var p string
		var t time.Time
		if err := rows.Scan(&p, &t); err != nil {
			rows.Close()
			return nil, err
		}
		m, _ := pricing.ParseMonth(p)
		runCutoff[m] = t
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read billing periods: %w", err)
	}

	out := map[string][]pricing.Month{}
	for m := from; m.Before(period); m = m.Next() {
		floor, ok := runCutoff[m]
		for k, t := range billedTo {
			if k.m == m && (!ok || t.Before(floor)) {
				floor, ok = t, true
			}
		}
		if !ok || !floor.Before(cutoff) {
			continue
		}
		lateBy, err := r.Usage.LateUsage(ctx, m, floor, cutoff)
		if err != nil {
			return nil, fmt.Errorf("read late usage of %s: %w", m, err)
		}
		for c, last := range lateBy {
			k := cm{c, m}
			if open[k] {
				continue
			}
			thr, billed := billedTo[k]
			if !billed {
				rc, ran := runCutoff[m]
				if !ran {
					continue
				}
				thr = rc
			}
			if last.After(thr) {
				out[c] = append(out[c], m)
			}
		}
	}
	return out, nil
}

// closedMonths returns the months of the lookback window before period
// that are closed for one customer (see lateMonths): re-rating them for one
// customer is cheaper than finding late usage across all customers.
func (r *Runner) closedMonths(ctx context.Context, customerID string, period pricing.Month) ([]pricing.Month, error) {
	from := addMonths(period, -r.lookback())
	rows, err := r.Invoices.DB.Query(ctx, `SELECT p FROM (
			SELECT period AS p FROM billing_periods WHERE period >= $2 AND period < $3
			UNION SELECT period FROM invoices WHERE customer_id = $1 AND status = 'finalized' AND period >= $2 AND period < $3
		) m WHERE NOT EXISTS (SELECT 1 FROM invoices WHERE customer_id = $1 AND period = m.p AND status = 'draft') ORDER BY p`,
		customerID, from.String(), period.String())
	if err != nil {
		return nil, fmt.Errorf("read closed months: %w", err)
	}
	ps, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read closed months: %w", err)
	}
	out := make([]pricing.Month, 0, len(ps))
	for _, p := range ps {
		m, err := pricing.ParseMonth(p)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// rater returns the compiled version of a card in a month (cached for the
// runner's life: a card's version in effect in a month never changes once
// that month can be billed, because activation is only for future months).
func (r *Runner) rater(ctx context.Context, cardID string, m pricing.Month) (*pricing.Rater, error) {
	key := cardID + "@" + m.String()
	r.mu.Lock()
	rt, ok := r.raters[key]
	r.mu.Unlock()
	if ok {
		return rt, nil
	}
	v, err := r.Pricing.VersionFor(ctx, cardID, m)
	if err != nil {
		return nil, err
	}
	rt, err = pricing.Compile(v)
	if err != nil {
		return nil, fmt.Errorf("rate card %s version %d: %w", cardID, v.Number, err)
	}
	r.mu.Lock()
	if r.raters == nil {
		r.raters = map[string]*pricing.Rater{}
	}
	r.raters[key] = rt
	r.mu.Unlock()
	return rt, nil
}

// rate rates one customer-month. A missing card or an unratable row makes
// the usage unbilled (rows returned) rather than failing the run.
func (r *Runner) rate(ctx context.Context, pr Pricing, c Customer, m pricing.Month, usage []pricing.Usage, cutoff time.Time) (*pricing.Result, []UnbilledRow, error) {
	unbill := func(reason, detail string) []UnbilledRow {
		var out []UnbilledRow
		for _, u := range usage {
			out = append(out, UnbilledRow{Period: m.String(), CustomerID: c.ID, Reason: reason, Detail: detail,
				Country: u.Country, Category: u.Category, Quantity: u.Quantity, UsageCutoff: cutoff})
		}
		return out
	}
	card, err := pr.CardFor(ctx, c.ID, m)
	if postage.ErrorCode(err) == postage.ENOTFOUND {
		return nil, unbill(UnbilledNoCard, postage.ErrorMessage(err)), nil
	} else if err != nil {
		return nil, nil, fmt.Errorf("rate card of %s: %w", c.ID, err)
	}
	rt, err := r.rater(ctx, card.ID, m)
	if postage.ErrorCode(err) == postage.ENOTFOUND {
		return nil, unbill(UnbilledNoCard, postage.ErrorMessage(err)), nil
	} else if err != nil {
		return nil, nil, err
	}
	ov, err := pr.Overrides(ctx, c.ID)
	if err != nil && postage.ErrorCode(err) != postage.ENOTFOUND {
		return nil, nil, fmt.Errorf("overrides of %s: %w", c.ID, err)
	}
	res, err := rt.Rate(ov, usage, pricing.RateOptions{CustomerCountry: c.Country, Month: m})
	if postage.ErrorCode(err) == postage.EINVALID {
		return nil, unbill(UnbilledRatingError, oneLine(err)), nil
	} else if err != nil {
		return nil, nil, fmt.Errorf("rate %s %s: %w", c.ID, m, err)
	}
	return &res, nil, nil
}

func oneLine(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", "; ")
}

// compute builds the draft (id self, sequence seq) of customer c for
// period: usage lines rated with the customer's card version of the
// period, plus adjustment lines for the earlier months in adjust. A reissue
// (replacing the invoice replaces) also subtracts what other invoices billed
// for the period itself. It
// returns a nil invoice (and the unbilled rows) when the usage cannot be
// billed.
func (r *Runner) compute(ctx context.Context, pr Pricing, c Customer, period pricing.Month, cutoff time.Time, usage []pricing.Usage, adjust []pricing.Month, self string, seq int, replaces string) (*Invoice, []UnbilledRow, error) {
	exclude := []string{self}
	if replaces != "" {
		exclude = append(exclude, replaces)
	}
	res, unb, err := r.rate(ctx, pr, c, period, usage, cutoff)
	if err != nil || res == nil {
		return nil, unb, err
	}
	places := res.MinorUnits
	lines := usageLines(*res, period)
	if replaces != "" {
		billed, err := r.billedLines(ctx, c.ID, period, exclude)
		if err != nil {
			return nil, nil, err
		}
		if len(billed) > 0 {
			for _, l := range adjustmentLines(nil, billed, period, places) {
				l.Description = fmt.Sprintf("Already billed as adjustments on later invoices: %s messages, %s", l.Category, l.Market)
				lines = append(lines, l)
			}
		}
	}
	sort.Slice(adjust, func(i, j int) bool { return adjust[i].Before(adjust[j]) })
	for _, m := range adjust {
		rows, err := r.Usage.MonthlyUsage(ctx, m, cutoff, []string{c.ID})
		if err != nil {
			return nil, nil, fmt.Errorf("read usage of %s %s: %w", c.ID, m, err)
		}
		u := make([]pricing.Usage, 0, len(rows))
		for _, x := range rows {
			u = append(u, pricing.Usage{Country: x.Country, Category: x.Category, Quantity: x.Quantity})
		}
		mres, munb, err := r.rate(ctx, pr, c, m, u, cutoff)
		if err != nil {
			return nil, nil, err
		}
		if mres == nil {
			unb = append(unb, munb...)
			continue
		}
		if mres.Currency != res.Currency {
			return nil, nil, postage.Errorf(postage.ECONFLICT, "customer %s: %s is billed in %s but %s in %s", c.ID, m, mres.Currency, period, res.Currency)
		}
		billed, err := r.billedLines(ctx, c.ID, m, exclude)
		if err != nil {
			return nil, nil, err
		}
		lines = append(lines, adjustmentLines(usageLines(*mres, m), billed, m, places)...)
	}
	now := r.now()
	sub, adj, total := sumLines(lines, places)
	inv := &Invoice{
		ID: self, CustomerID: c.ID, Period: period, Seq: seq, Status: StatusDraft,
		Customer: CustomerSnapshot{ID: c.ID, Name: c.Name, Country: c.Country, Email: c.Email, Currency: c.Currency},
		Currency: res.Currency, CardID: res.CardID, CardVersion: res.Version,
		Lines: lines, Subtotal: sub, Adjustments: adj, Total: total,
		UsageCutoff:   cutoff,
		FinalizeAfter: maxTime(period.End(), now).Add(r.Grace),
		CreatedAt:     now, UpdatedAt: now,
	}
	if inv.Lines == nil {
		inv.Lines = []Line{}
	}
	return inv, unb, nil
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// billedLines returns the lines for month m on the customer's invoices
// that are not void, except the excluded ones.
func (r *Runner) billedLines(ctx context.Context, customerID string, m pricing.Month, exclude []string) ([]Line, error) {
	rows, err := r.Invoices.DB.Query(ctx, `SELECT lines FROM invoices WHERE customer_id = $1 AND status <> 'void' AND id <> ALL($2)
		AND (period = $3 OR (period > $3 AND adjusts <> '{}' AND adjusts @> ARRAY[$3::text]))`, customerID, exclude, m.String())
	if err != nil {
		return nil, fmt.Errorf("read billed lines: %w", err)
	}
	defer rows.Close()
	var out []Line
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return nil, err
		}
		var ls []Line
		if err := json.Unmarshal(b, &ls); err != nil {
			return nil, fmt.Errorf("read billed lines: %w", err)
		}
		for _, l := range ls {
			if l.Period == m {
				out = append(out, l)
			}
		}
	}
	return out, rows.Err()
}

// upsertDrafts inserts new drafts and refreshes existing ones in one
// statement; finalized and void invoices are never touched, and neither
// are drafts whose content did not change (their usage_cutoff then stays
// at the run that last changed them; finalization brings it up to date).
// encodedDraft is a draft with its JSON columns and content hash, made by
// the rating workers so the writers only write.
type encodedDraft struct {
	inv         *Invoice
	cust, lines []byte // JSON
	hash        []byte
	adjusts     []string // the months its adjustment lines bill
	fresh       bool     // no invoice of its customer and period existed when the run began
}

func encodeDraft(d *Invoice) *encodedDraft {
	cb := appendCustomerJSON(make([]byte, 0, 128), &d.Customer)
	lb := appendStoredLinesJSON(make([]byte, 0, 160*len(d.Lines)+2), d.Lines)
	var num [48]byte
	h := sha256.New()
	for _, part := range [][]byte{cb, lb, []byte(d.Currency), []byte(d.CardID), strconv.AppendInt(nil, int64(d.CardVersion), 10), appendDecimalFixed(num[:0], d.Total.Decimal, d.Total.Places)} {
		h.Write(part)
		h.Write([]byte{0})
	}
	return &encodedDraft{inv: d, cust: cb, lines: lb, adjusts: adjustedPeriods(d.Lines), hash: h.Sum(nil)}
}

func (s *InvoiceStore) upsertDrafts(ctx context.Context, drafts []*encodedDraft, now time.Time) (created, refreshed int, err error) {
	// New drafts go in with COPY (a fifth faster than the upsert); if one
	// exists after all (a run interrupted after the plan), the batch takes
	// the upsert instead.
	var fresh, rest []*encodedDraft
	for _, d := range drafts {
		if d.fresh {
			fresh = append(fresh, d)
		} else {
			rest = append(rest, d)
		}
	}
	if len(fresh) > 0 {
		if err := s.copyDrafts(ctx, fresh, now); err == nil {
			created = len(fresh)
		} else if pe := (*pgconn.PgError)(nil); errors.As(err, &pe) && pe.Code == "23505" {
			rest = append(rest, fresh...)
		} else {
			return 0, 0, fmt.Errorf("write drafts: %w", err)
		}
	}
	if len(rest) == 0 {
		return created, 0, nil
	}
	c, r, err := s.upsertDraftRows(ctx, rest, now)
	return created + c, r, err
}

// copyDrafts inserts new drafts with COPY in one transaction.
func (s *InvoiceStore) copyDrafts(ctx context.Context, drafts []*encodedDraft, now time.Time) error {
	src := &draftRows{drafts: drafts, period: drafts[0].inv.Period.String(), now: now} // a run writes one period
	return pgx.BeginFunc(ctx, s.DB, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL synchronous_commit = off`); err != nil {
			return err
		}
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"invoices"}, []string{"id", "customer_id", "period", "seq", "status", "customer", "currency",
			"card_id", "card_version", "lines", "subtotal", "adjustments", "total", "usage_cutoff", "finalize_after", "created_at", "updated_at", "content_hash", "adjusts"},
			src)
		return err
	})
}

// draftRows feeds COPY one draft at a time through one reused row of
// values (pgx encodes each row before asking for the next).
type draftRows struct {
	drafts []*encodedDraft
	period string
	now    time.Time
	i      int
	row    [19]any
}

func (r *draftRows) Next() bool {
	if r.i >= len(r.drafts) {
		return false
	}
	e, v := r.drafts[r.i], r.row[:]
	d := e.inv
	v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9] = d.ID, d.CustomerID, r.period, d.Seq, string(StatusDraft), json.RawMessage(e.cust), d.Currency, d.CardID, d.CardVersion, e.lines
	v[10], v[11], v[12], v[13], v[14], v[15], v[16], v[17], v[18] = moneyNumeric(d.Subtotal), moneyNumeric(d.Adjustments), moneyNumeric(d.Total), d.UsageCutoff, d.FinalizeAfter, r.now, r.now, e.hash, e.adjusts
	r.i++
	return true
}

// moneyNumeric is m as PostgreSQL's numeric, exactly.
func moneyNumeric(m Money) pgtype.Numeric {
	return pgtype.Numeric{Int: m.Decimal.Coefficient(), Exp: m.Decimal.Exponent(), Valid: true}
}

func (r *draftRows) Values() ([]any, error) { return r.row[:], nil }
func (r *draftRows) Err() error             { return nil }

// upsertDraftRows inserts or refreshes drafts with one statement.
func (s *InvoiceStore) upsertDraftRows(ctx context.Context, drafts []*encodedDraft, now time.Time) (created, refreshed int, err error) {
	n := len(drafts)
	ids, custIDs, custs, currencies, cards, lines, subs, adjs, totals := make([]string, n), make([]string, n), make([]string, n),
		make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	seqs, versions := make([]int32, n), make([]int32, n)
	cutoffs, finalizeAfter := make([]time.Time, n), make([]time.Time, n)
	hashes := make([][]byte, n)
	adjusts := make([]string, n)
	for i, e := range drafts {
		d := e.inv
		ids[i], custIDs[i], custs[i], currencies[i], cards[i], lines[i] = d.ID, d.CustomerID, string(e.cust), d.Currency, d.CardID, string(e.lines)
		subs[i], adjs[i], totals[i] = d.Subtotal.String(), d.Adjustments.String(), d.Total.String()
		seqs[i], versions[i] = int32(d.Seq), int32(d.CardVersion)
		cutoffs[i], finalizeAfter[i] = d.UsageCutoff, d.FinalizeAfter
		hashes[i] = e.hash
		adjusts[i] = strings.Join(e.adjusts, ",")
	}
	q, args := upsertDraftsQuery(drafts[0].inv.Period, now, ids, custIDs, seqs, custs, currencies, cards, versions, lines, subs, adjs, totals, cutoffs, finalizeAfter, hashes, adjusts)
	err = pgx.BeginFunc(ctx, s.DB, func(tx pgx.Tx) error {
		// Drafts are recomputed by every run: a crash that loses the last
		// commits loses nothing the next run does not redo, so these
		// commits need not wait for the WAL flush.
		if _, err := tx.Exec(ctx, `SET LOCAL synchronous_commit = off`); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var inserted bool
			if err := rows.Scan(&inserted); err != nil {
				return err
			}
			if inserted {
				created++
			} else {
				refreshed++
			}
		}
		return rows.Err()
	})
	if err != nil {
		return 0, 0, fmt.Errorf("write drafts: %w", err)
	}
	return created, refreshed, nil
}

// upsertDraftsQuery builds the batched insert-or-refresh of drafts of one
// period from column arrays.
func upsertDraftsQuery(period pricing.Month, now time.Time, cols ...any) (string, []any) {
	args := append([]any{period.String(), now}, cols...)
	return `INSERT INTO invoices (id, customer_id, period, seq, status, customer, currency, card_id, card_version, lines,
		subtotal, adjustments, total, usage_cutoff, finalize_after, created_at, updated_at, content_hash, adjusts)
	SELECT t.id, t.customer_id, $1, t.seq, 'draft', t.customer::jsonb, t.currency, t.card_id, t.card_version, t.lines,
		t.subtotal::numeric, t.adjustments::numeric, t.total::numeric, t.cutoff, t.finalize_after, $2, $2, t.hash, string_to_array(t.adjusts, ',')
	FROM unnest($3::text[], $4::text[], $5::int[], $6::text[], $7::text[], $8::text[], $9::int[], $10::text[], $11::text[], $12::text[], $13::text[], $14::timestamptz[], $15::timestamptz[], $16::bytea[], $17::text[])
		AS t(id, customer_id, seq, customer, currency, card_id, card_version, lines, subtotal, adjustments, total, cutoff, finalize_after, hash, adjusts)
	ON CONFLICT (id) DO UPDATE SET customer = EXCLUDED.customer, currency = EXCLUDED.currency, card_id = EXCLUDED.card_id,
		card_version = EXCLUDED.card_version, lines = EXCLUDED.lines, adjusts = EXCLUDED.adjusts, subtotal = EXCLUDED.subtotal, adjustments = EXCLUDED.adjustments,
		total = EXCLUDED.total, usage_cutoff = EXCLUDED.usage_cutoff, updated_at = EXCLUDED.updated_at, content_hash = EXCLUDED.content_hash
	WHERE invoices.status = 'draft' AND invoices.content_hash <> EXCLUDED.content_hash
	RETURNING (xmax = 0)`, args
}

// closePeriod records the period's run cut-off and replaces its
// unbilled-usage report, in one transaction.
func (s *InvoiceStore) closePeriod(ctx context.Context, period pricing.Month, cutoff, now time.Time, unbilled []UnbilledRow) error {
	return pgx.BeginFunc(ctx, s.DB, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO billing_periods (period, run_cutoff, updated_at) VALUES ($1,$2,$3)
			ON CONFLICT (period) DO UPDATE SET run_cutoff = greatest(billing_periods.run_cutoff, EXCLUDED.run_cutoff), updated_at = EXCLUDED.updated_at`,
			period.String(), cutoff, now); err != nil {
			return fmt.Errorf("record billing period: %w", err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM unbilled_usage WHERE period = $1`, period.String()); err != nil {
			return fmt.Errorf("unbilled usage: %w", err)
		}
		agg := map[[3]string]*UnbilledRow{}
		var keys [][3]string
		for i := range unbilled {
			u := unbilled[i]
			k := [3]string{u.CustomerID, u.Country, u.Category}
			if x, ok := agg[k]; ok {
				x.Quantity += u.Quantity
				continue
			}
			agg[k] = &u
			keys = append(keys, k)
		}
		if len(keys) == 0 {
			return nil
		}
		src := make([][]any, 0, len(keys))
		for _, k := range keys {
			u := agg[k]
			src = append(src, []any{period.String(), u.CustomerID, u.Reason, u.Detail, u.Country, u.Category, u.Quantity, u.UsageCutoff})
		}
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"unbilled_usage"},
			[]string{"period", "customer_id", "reason", "detail", "country", "category", "quantity", "usage_cutoff"}, pgx.CopyFromRows(src))
		if err != nil {
			return fmt.Errorf("unbilled usage: %w", err)
		}
		return nil
	})
}

// finalizeDue finalizes the period's drafts whose grace has ended.
func (r *Runner) finalizeDue(ctx context.Context, period pricing.Month) (int, error) {
	rows, err := r.Invoices.DB.Query(ctx, `SELECT id FROM invoices WHERE period = $1 AND status = 'draft' AND finalize_after <= $2 ORDER BY customer_id`,
		period.String(), r.now())
	if err != nil {
		return 0, fmt.Errorf("find due drafts: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, fmt.Errorf("find due drafts: %w", err)
	}
	n := 0
	for _, id := range ids {
		if _, err := r.Invoices.Finalize(ctx, id); err != nil {
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
	rows, err := r.Invoices.DB.Query(ctx, `SELECT DISTINCT period FROM invoices WHERE status = 'draft' AND finalize_after <= $1 ORDER BY period`, r.now())
	if err != nil {
		return nil, unavailable("find due drafts", err)
	}
	periods, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, unavailable("find due drafts", err)
	}
	var runs []Run
	var errs []error
	for _, p := range periods {
		m, err := pricing.ParseMonth(p)
		if err != nil {
			return runs, err
		}
		run, err := r.Run(ctx, RunRequest{Period: m, Trigger: TriggerSweep})
		runs = append(runs, run)
		if err != nil {
			errs = append(errs, err)
		}
	}
	return runs, errors.Join(errs...)
}

// Approve finalizes a draft now, before its grace period ends, as finance
// reviewed it. Another status is a conflict.
func (r *Runner) Approve(ctx context.Context, id string) (Invoice, error) {
	return r.Invoices.Finalize(ctx, id)
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
	var maxSeq int
	if err := r.Invoices.DB.QueryRow(ctx, `SELECT max(seq) FROM invoices WHERE customer_id = $1 AND period = $2`, old.CustomerID, old.Period.String()).Scan(&maxSeq); err != nil {
		return Invoice{}, Invoice{}, fmt.Errorf("void: %w", err)
	}
	seq := maxSeq + 1
	newID := InvoiceID(old.CustomerID, old.Period, seq)
	rows, err := r.Usage.MonthlyUsage(ctx, old.Period, cutoff, []string{c.ID})
	if err != nil {
		return Invoice{}, Invoice{}, fmt.Errorf("read usage: %w", err)
	}
	usage := make([]pricing.Usage, 0, len(rows))
	for _, u := range rows {
		usage = append(usage, pricing.Usage{Country: u.Country, Category: u.Category, Quantity: u.Quantity})
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
	inv, _, err := r.compute(ctx, r.Pricing, c, old.Period, cutoff, usage, adjust, newID, seq, old.ID)
	if err != nil {
		return Invoice{}, Invoice{}, err
	}
	if inv == nil {
		return Invoice{}, Invoice{}, postage.Errorf(postage.ECONFLICT, "invoice %s cannot be reissued: the customer's usage of %s cannot be rated now (see the unbilled-usage report)", id, old.Period)
	}
	inv.Replaces = old.ID
	inv.FinalizeAfter = now.Add(r.Grace)
	err = pgx.BeginFunc(ctx, r.Invoices.DB, func(tx pgx.Tx) error {
		cur, err := getInvoice(ctx, tx, id, true)
		if err != nil {
			return err
		}
		if cur.Status != StatusFinalized {
			return postage.Errorf(postage.ECONFLICT, "invoice %s is %s: only a finalized invoice can be voided", id, cur.Status)
		}
		if _, err := tx.Exec(ctx, `UPDATE invoices SET status = 'void', voided_at = $2, void_reason = $3, updated_at = $2 WHERE id = $1`, id, now, reason); err != nil {
			return fmt.Errorf("void: %w", err)
		}
		cb, _ := json.Marshal(inv.Customer)
		lb := appendStoredLinesJSON(nil, inv.Lines)
		if _, err := tx.Exec(ctx, `INSERT INTO invoices (id, customer_id, period, seq, status, customer, currency, card_id, card_version, lines,
			subtotal, adjustments, total, usage_cutoff, finalize_after, created_at, updated_at, replaces, adjusts)
			VALUES ($1,$2,$3,$4,'draft',$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$15,$16,$17)`,
			inv.ID, inv.CustomerID, inv.Period.String(), inv.Seq, string(cb), inv.Currency, inv.CardID, inv.CardVersion, string(lb),
			inv.Subtotal.String(), inv.Adjustments.String(), inv.Total.String(), inv.UsageCutoff, inv.FinalizeAfter, now, inv.Replaces, adjustedPeriods(inv.Lines)); err != nil {
			return fmt.Errorf("reissue: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE invoices SET replaced_by = $2 WHERE id = $1`, id, inv.ID); err != nil {
			return fmt.Errorf("void: %w", err)
		}
		return nil
	})
	if err != nil {
		return Invoice{}, Invoice{}, err
	}
	if voided, err = r.Invoices.Get(ctx, id); err != nil {
		return Invoice{}, Invoice{}, err
	}
	reissued, err = r.Invoices.Get(ctx, inv.ID)
	return voided, reissued, err
}

// Upcoming returns the customer's month-to-date bill: the current month's
// usage so far, rated exactly as its invoice will be, with the adjustment
// lines for late usage of earlier months that the invoice would carry.
// It is computed, never stored.
func (r *Runner) Upcoming(ctx context.Context, customerID string) (Invoice, error) {
	c, err := r.Customers.Get(ctx, customerID)
	if err != nil {
		return Invoice{}, err
	}
	now := r.now()
	period := pricing.MonthOf(now)
	cutoff := now.Truncate(time.Second)
	rows, err := r.Usage.MonthlyUsage(ctx, period, cutoff, []string{c.ID})
	if err != nil {
		return Invoice{}, fmt.Errorf("read usage: %w", err)
	}
	usage := make([]pricing.Usage, 0, len(rows))
	for _, u := range rows {
		usage = append(usage, pricing.Usage{Country: u.Country, Category: u.Category, Quantity: u.Quantity})
	}
	closed, err := r.closedMonths(ctx, c.ID, period)
	if err != nil {
		return Invoice{}, err
	}
	inv, unb, err := r.compute(ctx, r.Pricing, c, period, cutoff, usage, closed, InvoiceID(c.ID, period, 1), 1, "")
	if err != nil {
		return Invoice{}, err
	}
	if inv == nil {
		reason := "no rate card"
		if len(unb) > 0 {
			reason = unb[0].Detail
		}
		return Invoice{}, postage.Errorf(postage.ECONFLICT, "customer %s cannot be billed: %s", c.ID, reason)
	}
	inv.ID = ""
	inv.Status = "upcoming"
	return *inv, nil
}
