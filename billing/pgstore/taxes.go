package pgstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"

	"postage"
	"postage/billing"
)

// TaxStore keeps tax rates in PostgreSQL (migration 0036): an exclusion
// constraint refuses two rates of one jurisdiction whose days overlap.
type TaxStore struct {
	DB  *pgxpool.Pool
	Now func() time.Time
}

var _ billing.TaxRates = (*TaxStore)(nil)

func (s *TaxStore) now() time.Time { return utcNow(s.Now) }

// exclusionViolation is the SQLSTATE of a violated exclusion constraint.
const exclusionViolation = "23P01"

func scanTaxRate(r pgx.Row) (billing.TaxRate, error) {
	var t billing.TaxRate
	var rate string
	var from time.Time
	var to *time.Time
	if err := r.Scan(&t.ID, &t.Jurisdiction, &t.Name, &rate, &from, &to, &t.CreatedAt, &t.UpdatedAt); err != nil {
		return t, err
	}
	d, err := decimal.NewFromString(rate)
	if err != nil {
		return t, fmt.Errorf("tax rate %s: %w", t.ID, err)
	}
	t.Rate = d
	t.EffectiveFrom = billing.DateOf(from)
	if to != nil {
		e := billing.DateOf(*to)
		t.EffectiveTo = &e
	}
	t.CreatedAt, t.UpdatedAt = t.CreatedAt.UTC(), t.UpdatedAt.UTC()
	return t, nil
}

// overlap is the answer to a rate that would overlap another.
func overlap(r billing.TaxRate) error {
	to := "open-ended"
	if r.EffectiveTo != nil {
		to = "until " + r.EffectiveTo.String()
	}
	return postage.Errorf(postage.ETAXOVERLAP, "a tax rate of %s from %s %s overlaps another rate of %s: end that one first (PATCH its effective_to)",
		r.Jurisdiction, r.EffectiveFrom, to, r.Jurisdiction)
}

// CreateTaxRate stores a new rate; one overlapping another of its
// jurisdiction is ETAXOVERLAP.
func (s *TaxStore) CreateTaxRate(ctx context.Context, r billing.TaxRate) (billing.TaxRate, error) {
	if err := r.Validate(); err != nil {
		return billing.TaxRate{}, err
	}
	r.ID = billing.NewID("txr_")
	q, args := insertTaxRateSQL(r, s.now())
	out, err := scanTaxRate(s.DB.QueryRow(ctx, q, args...))
	if pgCode(err) == exclusionViolation {
		return billing.TaxRate{}, overlap(r)
	} else if err != nil {
		return billing.TaxRate{}, fmt.Errorf("create tax rate: %w", err)
	}
	return out, nil
}

// SetTaxRateEnd changes when a rate stops applying (nil: never).
func (s *TaxStore) SetTaxRateEnd(ctx context.Context, id string, to *billing.Date) (billing.TaxRate, error) {
	cur, err := s.TaxRate(ctx, id)
	if err != nil {
		return billing.TaxRate{}, err
	}
	cur.EffectiveTo = to
	if err := cur.Validate(); err != nil {
		return billing.TaxRate{}, err
	}
	q, args := setTaxRateEndSQL(id, to, s.now())
	out, err := scanTaxRate(s.DB.QueryRow(ctx, q, args...))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return billing.TaxRate{}, postage.Errorf(postage.ENOTFOUND, "tax rate %q not found", id)
	case pgCode(err) == exclusionViolation:
		return billing.TaxRate{}, overlap(cur)
	case pgCode(err) == checkViolation:
		return billing.TaxRate{}, postage.Errorf(postage.EINVALID, "effective_to: must be after effective_from")
	case err != nil:
		return billing.TaxRate{}, fmt.Errorf("end tax rate: %w", err)
	}
	return out, nil
}

// checkViolation is the SQLSTATE of a violated CHECK constraint.
const checkViolation = "23514"

// TaxRate returns one rate.
func (s *TaxStore) TaxRate(ctx context.Context, id string) (billing.TaxRate, error) {
	q, args := getTaxRateSQL(id)
	r, err := scanTaxRate(s.DB.QueryRow(ctx, q, args...))
	if errors.Is(err, pgx.ErrNoRows) {
		return billing.TaxRate{}, postage.Errorf(postage.ENOTFOUND, "tax rate %q not found", id)
	} else if err != nil {
		return billing.TaxRate{}, fmt.Errorf("get tax rate: %w", err)
	}
	return r, nil
}

// TaxRates lists the rates of a jurisdiction ("" for all).
func (s *TaxStore) TaxRates(ctx context.Context, jurisdiction string) ([]billing.TaxRate, error) {
	q, args := listTaxRatesSQL(jurisdiction)
	rows, err := s.DB.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list tax rates: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (billing.TaxRate, error) { return scanTaxRate(r) })
	if err != nil {
		return nil, fmt.Errorf("list tax rates: %w", err)
	}
	if list == nil {
		list = []billing.TaxRate{}
	}
	return list, nil
}
