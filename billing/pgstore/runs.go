package pgstore

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"postage/billing"
	"postage/pricing"
)

// StartRun records a run and sets its id.
func (s *InvoiceStore) StartRun(ctx context.Context, run *billing.Run) error {
	q, args := insertRunSQL(run)
	if err := s.DB.QueryRow(ctx, q, args...).Scan(&run.ID); err != nil {
		return fmt.Errorf("record invoice run: %w", err)
	}
	return nil
}

// FailInterrupted marks the runs still recorded as running, but except,
// as failed.
func (s *InvoiceStore) FailInterrupted(ctx context.Context, except int64, at time.Time) error {
	q, args := failInterruptedSQL(except, at)
	if _, err := s.DB.Exec(ctx, q, args...); err != nil {
		return fmt.Errorf("record interrupted runs: %w", err)
	}
	return nil
}

// FinishRun records a run's outcome.
func (s *InvoiceStore) FinishRun(ctx context.Context, run billing.Run) error {
	q, args := finishRunSQL(run)
	if _, err := s.DB.Exec(ctx, q, args...); err != nil {
		return fmt.Errorf("record invoice run: %w", err)
	}
	return nil
}

// Runs returns the latest runs, newest first (all periods when period is zero).
func (s *InvoiceStore) Runs(ctx context.Context, period pricing.Month, limit int) ([]billing.Run, error) {
	if limit <= 0 || limit > 1000 {
		limit = 50
	}
	q, args := runsSQL(period, limit)
	rows, err := s.DB.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	list, err := pgx.CollectRows(rows, pgx.RowToStructByPos[billing.Run])
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	return list, nil
}

// Unbilled returns the unbilled-usage report of a period as of its last run.
func (s *InvoiceStore) Unbilled(ctx context.Context, period pricing.Month) ([]billing.UnbilledUsage, error) {
	q, args := unbilledSQL(period)
	rows, err := s.DB.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("unbilled usage: %w", err)
	}
	list, err := pgx.CollectRows(rows, pgx.RowToStructByPos[billing.UnbilledUsage])
	if err != nil {
		return nil, fmt.Errorf("unbilled usage: %w", err)
	}
	for i := range list {
		list[i].UsageCutoff = list[i].UsageCutoff.UTC()
	}
	return list, nil
}

// LiveInvoices returns the draft or finalized invoice of each customer of a period.
func (s *InvoiceStore) LiveInvoices(ctx context.Context, period pricing.Month) (map[string]billing.LiveInvoice, error) {
	q, args := liveInvoicesSQL(period)
	rows, err := s.DB.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read invoices of %s: %w", period, err)
	}
	defer rows.Close()
	m := map[string]billing.LiveInvoice{}
	for rows.Next() {
		var c, status string
		var l billing.LiveInvoice
		if err := rows.Scan(&c, &l.ID, &l.Seq, &status, &l.Hash); err != nil {
			return nil, fmt.Errorf("read invoices of %s: %w", period, err)
		}
		l.Status = billing.Status(status)
		m[c] = l
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read invoices of %s: %w", period, err)
	}
	return m, nil
}

// AdjustedLater returns the customers with adjustment lines for period on
// invoices of the months after it, up to through.
func (s *InvoiceStore) AdjustedLater(ctx context.Context, period, through pricing.Month) (map[string]bool, error) {
	q, args := adjustedLaterSQL(period, through)
	rows, err := s.DB.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read adjustments of %s: %w", period, err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read adjustments of %s: %w", period, err)
	}
	m := make(map[string]bool, len(ids))
	for _, c := range ids {
		m[c] = true
	}
	return m, nil
}

// Closings reads what decides which customer-months of [from, to) are
// closed and up to when they were billed.
func (s *InvoiceStore) Closings(ctx context.Context, from, to pricing.Month) (billing.Closings, error) {
	out := billing.Closings{BilledTo: map[billing.CustomerMonth]time.Time{}, Open: map[billing.CustomerMonth]bool{}, RunCutoffs: map[pricing.Month]time.Time{}}
	q, args := billedToSQL(from, to)
	err := s.each(ctx, q, args, func(r pgx.Rows) error {
		var c, p string
		var t time.Time
		if err := r.Scan(&c, &p, &t); err != nil {
			return err
		}
		m, err := pricing.ParseMonth(p)
		out.BilledTo[billing.CustomerMonth{CustomerID: c, Month: m}] = t
		return err
	})
	if err != nil {
		return out, fmt.Errorf("read billed months: %w", err)
	}
	q, args = openMonthsSQL(from, to)
	err = s.each(ctx, q, args, func(r pgx.Rows) error {
		var c, p string
		if err := r.Scan(&c, &p); err != nil {
			return err
		}
		m, err := pricing.ParseMonth(p)
		out.Open[billing.CustomerMonth{CustomerID: c, Month: m}] = true
		return err
	})
	if err != nil {
		return out, fmt.Errorf("read open months: %w", err)
	}
	q, args = runCutoffsSQL(from, to)
	err = s.each(ctx, q, args, func(r pgx.Rows) error {
		var p string
		var t time.Time
		if err := r.Scan(&p, &t); err != nil {
			return err
		}
		m, err := pricing.ParseMonth(p)
		out.RunCutoffs[m] = t
		return err
	})
	if err != nil {
		return out, fmt.Errorf("read billing periods: %w", err)
	}
	return out, nil
}

// each runs q and hands fn every row.
func (s *InvoiceStore) each(ctx context.Context, q string, args []any, fn func(pgx.Rows) error) error {
	rows, err := s.DB.Query(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// ClosedMonths returns the months of [from, to) closed for one customer.
func (s *InvoiceStore) ClosedMonths(ctx context.Context, customerID string, from, to pricing.Month) ([]pricing.Month, error) {
	q, args := closedMonthsSQL(customerID, from, to)
	rows, err := s.DB.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read closed months: %w", err)
	}
	ps, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read closed months: %w", err)
	}
	return months(ps)
}

// BilledLines returns the lines for month m on the customer's invoices
// that are not void, except the excluded ones.
func (s *InvoiceStore) BilledLines(ctx context.Context, customerID string, m pricing.Month, exclude []string) ([]billing.Line, error) {
	q, args := billedLinesSQL(customerID, m, exclude)
	var out []billing.Line
	err := s.each(ctx, q, args, func(r pgx.Rows) error {
		var b []byte
		if err := r.Scan(&b); err != nil {
			return err
		}
		var ls []billing.Line
		if err := json.Unmarshal(b, &ls); err != nil {
			return err
		}
		for _, l := range ls {
			if l.Period == m {
				out = append(out, l)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read billed lines: %w", err)
	}
	return out, nil
}

// WriteDrafts inserts new drafts and refreshes changed ones. New drafts go
// in with COPY (a fifth faster than the upsert); if one exists after all
// (a run interrupted after its plan), the batch takes the upsert instead.
// Finalized and void invoices are never touched, and neither are drafts
// whose content did not change (their usage_cutoff then stays at the run
// that last changed them; finalization brings it up to date).
func (s *InvoiceStore) WriteDrafts(ctx context.Context, drafts []*billing.Draft, now time.Time) (created, refreshed int, err error) {
	var fresh, rest []*billing.Draft
	for _, d := range drafts {
		if d.Fresh {
			fresh = append(fresh, d)
		} else {
			rest = append(rest, d)
		}
	}
	if len(fresh) > 0 {
		if err := s.copyDrafts(ctx, fresh, now); err == nil {
			created = len(fresh)
		} else if pgCode(err) == uniqueViolation {
			rest = append(rest, fresh...)
		} else {
			return 0, 0, fmt.Errorf("write drafts: %w", err)
		}
	}
	if len(rest) == 0 {
		return created, 0, nil
	}
	c, r, err := s.upsertDrafts(ctx, rest, now)
	return created + c, r, err
}

// copyDrafts inserts new drafts with COPY in one transaction.
func (s *InvoiceStore) copyDrafts(ctx context.Context, drafts []*billing.Draft, now time.Time) error {
	src := &draftRows{drafts: drafts, period: drafts[0].Invoice.Period.String(), now: now} // a run writes one period
	return pgx.BeginFunc(ctx, s.DB, func(tx pgx.Tx) error {
		q, args := syncCommitOffSQL()
		if _, err := tx.Exec(ctx, q, args...); err != nil {
			return err
		}
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"invoices"}, draftColumns, src)
		return err
	})
}

// draftRows feeds COPY one draft at a time through one reused row of
// values (pgx encodes each row before asking for the next).
type draftRows struct {
	drafts []*billing.Draft
	period string
	now    time.Time
	i      int
	row    [24]any
}

func (r *draftRows) Next() bool {
	if r.i >= len(r.drafts) {
		return false
	}
	e, v := r.drafts[r.i], r.row[:]
	d := e.Invoice
	v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9] = d.ID, d.CustomerID, r.period, d.Seq, string(billing.StatusDraft), json.RawMessage(e.Customer), d.Currency, d.CardID, d.CardVersion, e.Lines
	v[10], v[11], v[12], v[13], v[14], v[15], v[16], v[17], v[18] = moneyNumeric(d.Subtotal), moneyNumeric(d.Adjustments), moneyNumeric(d.Total), d.UsageCutoff, d.FinalizeAfter, r.now, r.now, e.Hash, e.Adjusts
	v[19] = string(e.Details)
	v[20], v[21], v[22], v[23] = moneyNumeric(d.Tax), e.TaxLines, d.TaxNote, d.PaymentTermsDays
	r.i++
	return true
}

func (r *draftRows) Values() ([]any, error) { return r.row[:], nil }
func (r *draftRows) Err() error             { return nil }

// upsertDrafts inserts or refreshes drafts with one statement.
func (s *InvoiceStore) upsertDrafts(ctx context.Context, drafts []*billing.Draft, now time.Time) (created, refreshed int, err error) {
	n := len(drafts)
	ids, custIDs, custs, currencies, cards, lines, subs, adjs, totals := make([]string, n), make([]string, n), make([]string, n),
		make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	seqs, versions := make([]int32, n), make([]int32, n)
	cutoffs, finalizeAfter := make([]time.Time, n), make([]time.Time, n)
	hashes := make([][]byte, n)
	adjusts, details := make([]string, n), make([]string, n)
	taxes, taxLines, taxNotes := make([]string, n), make([]string, n), make([]string, n)
	terms := make([]int32, n)
	for i, e := range drafts {
		d := e.Invoice
		ids[i], custIDs[i], custs[i], currencies[i], cards[i], lines[i] = d.ID, d.CustomerID, string(e.Customer), d.Currency, d.CardID, string(e.Lines)
		subs[i], adjs[i], totals[i] = d.Subtotal.String(), d.Adjustments.String(), d.Total.String()
		seqs[i], versions[i] = int32(d.Seq), int32(d.CardVersion)
		cutoffs[i], finalizeAfter[i] = d.UsageCutoff, d.FinalizeAfter
		hashes[i] = e.Hash
		adjusts[i] = strings.Join(e.Adjusts, ",")
		details[i] = string(e.Details)
		taxes[i], taxLines[i], taxNotes[i], terms[i] = d.Tax.String(), string(e.TaxLines), d.TaxNote, int32(d.PaymentTermsDays)
	}
	q, args := upsertDraftsSQL(drafts[0].Invoice.Period, now, ids, custIDs, seqs, custs, currencies, cards, versions, lines, subs, adjs, totals, cutoffs, finalizeAfter, hashes, adjusts, details,
		taxes, taxLines, taxNotes, terms)
	err = pgx.BeginFunc(ctx, s.DB, func(tx pgx.Tx) error {
		sq, sargs := syncCommitOffSQL()
		if _, err := tx.Exec(ctx, sq, sargs...); err != nil {
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

// ClosePeriod records the period's run cut-off and replaces its
// unbilled-usage report (rows of one customer, country and category
// added up), in one transaction.
func (s *InvoiceStore) ClosePeriod(ctx context.Context, period pricing.Month, cutoff, now time.Time, unbilled []billing.UnbilledUsage) error {
	return pgx.BeginFunc(ctx, s.DB, func(tx pgx.Tx) error {
		q, args := recordPeriodSQL(period, cutoff, now)
		if _, err := tx.Exec(ctx, q, args...); err != nil {
			return fmt.Errorf("record billing period: %w", err)
		}
		q, args = deleteUnbilledSQL(period)
		if _, err := tx.Exec(ctx, q, args...); err != nil {
			return fmt.Errorf("unbilled usage: %w", err)
		}
		agg := map[[3]string]*billing.UnbilledUsage{}
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
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"unbilled_usage"}, unbilledColumns, pgx.CopyFromRows(src)); err != nil {
			return fmt.Errorf("unbilled usage: %w", err)
		}
		return nil
	})
}
