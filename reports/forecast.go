package reports

import (
	"context"
	"math/bits"
	"sort"
	"time"

	"github.com/shopspring/decimal"

	"postage"
	"postage/billing"
	"postage/pricing"
)

// ForecastMethod describes how Forecast projects a month.
const ForecastMethod = "linear run-rate per (country, category), projected volume rated with tiers"

// ForecastQuery asks for the forecast of a month (zero: the running one).
type ForecastQuery struct {
	Month      pricing.Month
	CustomerID string
}

// ForecastRow is one customer's month to date and projection.
type ForecastRow struct {
	CustomerID        string `json:"customer_id"`
	Name              string `json:"name"`
	Currency          string `json:"currency"`
	QuantityToDate    int64  `json:"quantity_to_date"`
	AmountToDate      string `json:"amount_to_date"`
	ProjectedQuantity int64  `json:"projected_quantity"`
	ProjectedAmount   string `json:"projected_amount"`

	toDate, projected int64 // minor units
}

// ForecastTotal sums the forecast of one currency.
type ForecastTotal struct {
	Currency          string `json:"currency"`
	QuantityToDate    int64  `json:"quantity_to_date"`
	AmountToDate      string `json:"amount_to_date"`
	ProjectedQuantity int64  `json:"projected_quantity"`
	ProjectedAmount   string `json:"projected_amount"`
	Customers         int    `json:"customers"`
}

// ForecastReport is the month-to-date revenue and the month's projection.
type ForecastReport struct {
	Month           pricing.Month   `json:"month"`
	AsOf            time.Time       `json:"as_of"`
	ElapsedFraction string          `json:"elapsed_fraction"`
	Method          string          `json:"method"`
	Rows            []ForecastRow   `json:"rows"`
	Totals          []ForecastTotal `json:"totals"`
}

// elapsed returns the elapsed and total seconds of month m at asOf, with
// at least one day elapsed; a past month is wholly elapsed.
func elapsed(m pricing.Month, asOf time.Time) (e, total int64) {
	total = int64(m.End().Sub(m.Start()) / time.Second)
	if !asOf.Before(m.End()) {
		return total, total
	}
	e = int64(asOf.Sub(m.Start()) / time.Second)
	return min(max(e, 86400), total), total
}

// project scales q by total/e, rounding half up, in 128-bit arithmetic.
func project(q, e, total int64) int64 {
	if e >= total {
		return q
	}
	hi, lo := bits.Mul64(uint64(q), uint64(total))
	// add e/2 for half-up rounding
	lo2, c := bits.Add64(lo, uint64(e)/2, 0)
	hi += c
	if hi >= uint64(e) {
		return pricing.MaxQuantity
	}
	out, _ := bits.Div64(hi, lo2, uint64(e))
	return int64(min(out, uint64(pricing.MaxQuantity)))
}

// Forecast rates each customer's usage of the month so far and a linear
// projection of it to the whole month (see docs/REPORTS.md).
func (s *Service) Forecast(ctx context.Context, q ForecastQuery) (*ForecastReport, error) {
	asOf := s.now()
	if q.Month.IsZero() {
		q.Month = pricing.MonthOf(asOf)
	}
	if !q.Month.Valid() {
		return nil, postage.Errorf(postage.EINVALID, "month: want YYYY-MM")
	}
	if q.Month.After(pricing.MonthOf(asOf)) {
		return nil, postage.Errorf(postage.EINVALID, "month %s has not started", q.Month)
	}
	e, total := elapsed(q.Month, asOf)
	b, err := s.loadBook(ctx, []pricing.Month{q.Month}, customerFilter(q.CustomerID), nil, false)
	if err != nil {
		return nil, err
	}
	rated := b.rated()
	rows := make([]ForecastRow, len(rated))
	errs := make([]error, len(rated))
	parallel(len(rated), s.workers(), func(i int) {
		cm := rated[i]
		projectAll := func(x *customerMonth) []pricing.Usage {
			proj := make([]pricing.Usage, len(x.Usage))
			for j, u := range x.Usage {
				u.Quantity = project(u.Quantity, e, total)
				proj[j] = u
			}
			return proj
		}
		proj := projectAll(cm)
		var pq int64
		for _, u := range proj {
			pq += u.Quantity
		}
		// The projected month goes through the same pipeline (same card,
		// overrides, rounding), rated as a whole so tiers it reaches apply
		// (a portfolio's: its members' projections pooled).
		projected, pooled, err := b.rateInGroup(ctx, cm, "projected", projectAll,
			func(group []billing.Member) ([]billing.Rated, error) {
				return b.rating.RateGroup(ctx, b.pre, cm.Month, group)
			})
		if !pooled && err == nil {
			projected, err = b.rating.Rate(ctx, b.pre, cm.Customer, cm.Month, proj)
		}
		for _, u := range projected.Result.Unrated {
			pq -= u.Quantity // as QuantityToDate: what the rating bills
		}
		if err == nil && projected.Unbilled != "" {
			err = postage.Errorf(postage.EINVALID, "projection of %s: %s", cm.CustomerID, projected.Detail)
		}
		if err != nil {
			errs[i] = err
			return
		}
		pr := projected.Result
		r := &cm.Result
		rows[i] = ForecastRow{
			CustomerID: cm.CustomerID, Name: cm.Customer.Name, Currency: r.Currency,
			QuantityToDate: cm.billedQuantity(), ProjectedQuantity: pq,
			toDate: minorOf(r.Total, r.MinorUnits), projected: minorOf(pr.Total, pr.MinorUnits),
		}
	})
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	type acc struct {
		ForecastTotal
		toDate, projected int64
	}
	tot := map[string]*acc{}
	for i := range rows {
		r := &rows[i]
		mu := minorUnits(r.Currency)
		r.AmountToDate, r.ProjectedAmount = fromMinor(r.toDate, mu), fromMinor(r.projected, mu)
		a := tot[r.Currency]
		if a == nil {
			a = &acc{ForecastTotal: ForecastTotal{Currency: r.Currency}}
			tot[r.Currency] = a
		}
		a.QuantityToDate += r.QuantityToDate
		a.ProjectedQuantity += r.ProjectedQuantity
		a.toDate += r.toDate
		a.projected += r.projected
		a.Customers++
	}
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].projected != rows[j].projected {
			return rows[i].projected > rows[j].projected
		}
		return rows[i].CustomerID < rows[j].CustomerID
	})
	rep := &ForecastReport{
		Month: q.Month, AsOf: asOf.Truncate(time.Second),
		ElapsedFraction: decimal.NewFromInt(e).DivRound(decimal.NewFromInt(total), 4).StringFixed(4),
		Method:          ForecastMethod,
		Rows:            rows,
		Totals:          []ForecastTotal{},
	}
	for c, a := range tot {
		mu := minorUnits(c)
		a.AmountToDate, a.ProjectedAmount = fromMinor(a.toDate, mu), fromMinor(a.projected, mu)
		rep.Totals = append(rep.Totals, a.ForecastTotal)
	}
	sort.Slice(rep.Totals, func(i, j int) bool { return rep.Totals[i].Currency < rep.Totals[j].Currency })
	return rep, nil
}

// Table returns the rows as a CSV table.
func (r *ForecastReport) Table() Table {
	t := Table{Header: []string{"customer_id", "name", "currency", "quantity_to_date", "amount_to_date", "projected_quantity", "projected_amount"}}
	for _, x := range r.Rows {
		t.Rows = append(t.Rows, []string{x.CustomerID, x.Name, x.Currency, itoa(x.QuantityToDate), x.AmountToDate, itoa(x.ProjectedQuantity), x.ProjectedAmount})
	}
	return t
}
