// Package pgstore keeps reconciliation's imported upstream reports, their
// comparisons and finance's acceptances in PostgreSQL (reconcile.Store).
package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"

	"postage"
	"postage/pricing"
	"postage/reconcile"
)

// Store is reconcile.Store on PostgreSQL.
type Store struct {
	PG *pgxpool.Pool
}

var _ reconcile.Store = (*Store)(nil)

// New returns a store on pg.
func New(pg *pgxpool.Pool) *Store { return &Store{PG: pg} }

func numeric(d decimal.Decimal) pgtype.Numeric {
	return pgtype.Numeric{Int: d.Coefficient(), Exp: d.Exponent(), Valid: true}
}

// CreateReport implements reconcile.Store: the report and its rows in one
// transaction (the rows with COPY).
func (s *Store) CreateReport(ctx context.Context, r reconcile.Report, rows []reconcile.UpstreamRow) (reconcile.Report, error) {
	err := pgx.BeginFunc(ctx, s.PG, func(tx pgx.Tx) error {
		q, args := insertReportSQL(r)
		if err := tx.QueryRow(ctx, q, args...).Scan(&r.ID); err != nil {
			return fmt.Errorf("insert report: %w", err)
		}
		i := 0
		src := pgx.CopyFromFunc(func() ([]any, error) {
			if i == len(rows) {
				return nil, nil
			}
			u := &rows[i]
			i++
			return []any{r.ID, u.PhoneNumberID, u.Day, u.Country, u.Category, u.PricingType, u.Volume, numeric(u.Cost)}, nil
		})
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"upstream_usage"}, upstreamColumns, src); err != nil {
			return fmt.Errorf("copy report rows: %w", err)
		}
		return nil
	})
	return r, err
}

func scanReport(row pgx.Row) (reconcile.Report, error) {
	var r reconcile.Report
	var month, cost string
	err := row.Scan(&r.ID, &month, &r.Source, &r.Format, &r.Granularity, &r.Currency, &r.DataPoints, &r.Rows, &r.Volume, &cost, &r.ImportedAt, &r.ImportedBy)
	if err != nil {
		return r, err
	}
	if r.Month, err = pricing.ParseMonth(month); err != nil {
		return r, err
	}
	r.ImportedAt = r.ImportedAt.UTC()
	r.Cost, err = decimal.NewFromString(cost)
	return r, err
}

// LatestReport implements reconcile.Store.
func (s *Store) LatestReport(ctx context.Context, m pricing.Month) (reconcile.Report, error) {
	q, args := latestReportSQL(m)
	r, err := scanReport(s.PG.QueryRow(ctx, q, args...))
	if errors.Is(err, pgx.ErrNoRows) {
		return r, postage.Errorf(postage.ENOTFOUND, "no upstream report of %s", m)
	} else if err != nil {
		return r, fmt.Errorf("latest upstream report: %w", err)
	}
	return r, nil
}

// EachUpstreamRow implements reconcile.Store: one query, rows in customer
// order, phone numbers resolved through the phone-number map (billing's
// phone_numbers table, read only).
func (s *Store) EachUpstreamRow(ctx context.Context, reportID int64, fn func(customer string, mapped bool, r *reconcile.UpstreamRow) error) error {
	q, args := upstreamRowsSQL(reportID)
	rows, err := s.PG.Query(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("read upstream rows: %w", err)
	}
	defer rows.Close()
	var u reconcile.UpstreamRow
	var customer, cost string
	var mapped bool
	var day time.Time
	for rows.Next() {
		if err := rows.Scan(&customer, &mapped, &u.PhoneNumberID, &day, &u.Country, &u.Category, &u.PricingType, &u.Volume, &cost); err != nil {
			return fmt.Errorf("read upstream rows: %w", err)
		}
		u.Day = time.Date(day.Year(), day.Month(), day.Day(), 0, 0, 0, 0, time.UTC)
		if u.Cost, err = decimal.NewFromString(cost); err != nil {
			return fmt.Errorf("read upstream rows: cost %q: %w", cost, err)
		}
		if err := fn(customer, mapped, &u); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read upstream rows: %w", err)
	}
	return nil
}

// SaveResult implements reconcile.Store: the result replaces the report's
// earlier one, with its differences (COPY), in one transaction.
func (s *Store) SaveResult(ctx context.Context, r *reconcile.Result, diffs []reconcile.Difference) error {
	doc, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, s.PG, func(tx pgx.Tx) error {
		for _, f := range []func() (string, []any){
			func() (string, []any) { return deleteResultSQL(r.ReportID) },
			func() (string, []any) { return insertResultSQL(r.ReportID, r.ComparedAt, doc) },
		} {
			q, args := f()
			if _, err := tx.Exec(ctx, q, args...); err != nil {
				return fmt.Errorf("save comparison: %w", err)
			}
		}
		i := 0
		src := pgx.CopyFromFunc(func() ([]any, error) {
			if i == len(diffs) {
				return nil, nil
			}
			d := &diffs[i]
			i++
			day, err := time.Parse(time.DateOnly, d.Day)
			if err != nil {
				return nil, err
			}
			return []any{r.ReportID, i, d.CustomerID, day, d.Market, d.Category, string(d.Cause),
				d.PostageMessages, d.UpstreamMessages, numeric(d.PostageCost), numeric(d.UpstreamCost), d.Detail}, nil
		})
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"reconciliation_differences"}, differenceColumns, src); err != nil {
			return fmt.Errorf("save differences: %w", err)
		}
		return nil
	})
}

// Result implements reconcile.Store.
func (s *Store) Result(ctx context.Context, reportID int64) (*reconcile.Result, error) {
	q, args := resultSQL(reportID)
	var doc []byte
	if err := s.PG.QueryRow(ctx, q, args...).Scan(&doc); errors.Is(err, pgx.ErrNoRows) {
		return nil, postage.Errorf(postage.ENOTFOUND, "report %d has no comparison", reportID)
	} else if err != nil {
		return nil, fmt.Errorf("read comparison: %w", err)
	}
	var r reconcile.Result
	if err := json.Unmarshal(doc, &r); err != nil {
		return nil, fmt.Errorf("read comparison: %w", err)
	}
	return &r, nil
}

// Differences implements reconcile.Store.
func (s *Store) Differences(ctx context.Context, reportID int64, f reconcile.DiffFilter) ([]reconcile.Difference, []int, error) {
	q, args := differencesSQL(reportID, f)
	rows, err := s.PG.Query(ctx, q, args...)
	if err != nil {
		return nil, nil, fmt.Errorf("read differences: %w", err)
	}
	defer rows.Close()
	out := []reconcile.Difference{}
	var pos []int
	for rows.Next() {
		var d reconcile.Difference
		var seq int
		var day time.Time
		var cause, pc, uc string
		if err := rows.Scan(&seq, &d.CustomerID, &day, &d.Market, &d.Category, &cause, &d.PostageMessages, &d.UpstreamMessages, &pc, &uc, &d.Detail); err != nil {
			return nil, nil, fmt.Errorf("read differences: %w", err)
		}
		d.Day, d.Cause = day.Format(time.DateOnly), reconcile.Cause(cause)
		if d.PostageCost, err = decimal.NewFromString(pc); err == nil {
			d.UpstreamCost, err = decimal.NewFromString(uc)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("read differences: %w", err)
		}
		d.Messages, d.Amount = d.PostageMessages-d.UpstreamMessages, d.PostageCost.Sub(d.UpstreamCost)
		out = append(out, d)
		pos = append(pos, seq)
	}
	return out, pos, rows.Err()
}

// Accept implements reconcile.Store.
func (s *Store) Accept(ctx context.Context, reportID int64, a reconcile.Acceptance) error {
	q, args := insertAcceptanceSQL(reportID, a)
	if _, err := s.PG.Exec(ctx, q, args...); err != nil {
		return fmt.Errorf("record acceptance: %w", err)
	}
	return nil
}

// Acceptances implements reconcile.Store.
func (s *Store) Acceptances(ctx context.Context, reportID int64) ([]reconcile.Acceptance, error) {
	q, args := acceptancesSQL(reportID)
	rows, err := s.PG.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read acceptances: %w", err)
	}
	defer rows.Close()
	out := []reconcile.Acceptance{}
	for rows.Next() {
		var a reconcile.Acceptance
		var amount string
		if err := rows.Scan(&a.By, &a.At, &a.Reason, &a.GrossMessages, &amount); err != nil {
			return nil, fmt.Errorf("read acceptances: %w", err)
		}
		a.At = a.At.UTC()
		if a.GrossAmount, err = decimal.NewFromString(amount); err != nil {
			return nil, fmt.Errorf("read acceptances: %w", err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}
