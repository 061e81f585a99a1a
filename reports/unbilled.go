package reports

import (
	"context"
	"sort"

	"postage/pricing"
)

// UnbilledMonth is usage of one customer-month that no invoice bills: the
// whole month, or the rows of one category (Category set) the card cannot
// price while the rest of the month is billed.
type UnbilledMonth struct {
	CustomerID string        `json:"customer_id"`
	Month      pricing.Month `json:"month"`
	Reason     string        `json:"reason"`
	Quantity   int64         `json:"quantity"`
	Detail     string        `json:"detail"`
	Category   string        `json:"category,omitempty"`
}

// UnbilledReport lists unbilled usage.
type UnbilledReport struct {
	From   pricing.Month   `json:"from"`
	To     pricing.Month   `json:"to"`
	Rows   []UnbilledMonth `json:"rows"`
	Totals UnbilledTotals  `json:"totals"`
}

// UnbilledTotals sums an unbilled report.
type UnbilledTotals struct {
	Quantity  int64 `json:"quantity"`
	Customers int   `json:"customers"`
}

// Unbilled lists the usage of the months that cannot be billed: unknown
// customer ids, customers without a card in effect (or cost-plus without
// a cost card or exchange rate), and the rows of categories a card cannot
// price (the rest of those months is billed). It uses the same resolution as every revenue report, so what is
// listed here is exactly what revenue leaves out.
func (s *Service) Unbilled(ctx context.Context, from, to pricing.Month) (*UnbilledReport, error) {
	months, err := MonthRange(from, to)
	if err != nil {
		return nil, err
	}
	b, err := s.loadBook(ctx, months, nil, nil, false)
	if err != nil {
		return nil, err
	}
	rep := &UnbilledReport{From: from, To: to, Rows: []UnbilledMonth{}}
	custs := map[string]bool{}
	for _, cm := range b.rows {
		if cm.Hidden {
			continue
		}
		if cm.Unbilled == "" {
			// Rows of categories the card cannot price, one per category.
			var cats []UnbilledMonth
			for _, u := range cm.Result.Unrated {
				if n := len(cats); n > 0 && cats[n-1].Category == u.Category {
					cats[n-1].Quantity += u.Quantity
					continue
				}
				cats = append(cats, UnbilledMonth{CustomerID: cm.CustomerID, Month: cm.Month, Reason: u.Reason, Quantity: u.Quantity, Detail: u.Detail, Category: u.Category})
			}
			for _, x := range cats {
				rep.Rows = append(rep.Rows, x)
				rep.Totals.Quantity += x.Quantity
				custs[cm.CustomerID] = true
			}
			continue
		}
		rep.Rows = append(rep.Rows, UnbilledMonth{CustomerID: cm.CustomerID, Month: cm.Month, Reason: cm.Unbilled, Quantity: cm.Quantity, Detail: cm.Detail})
		rep.Totals.Quantity += cm.Quantity
		custs[cm.CustomerID] = true
	}
	rep.Totals.Customers = len(custs)
	sort.SliceStable(rep.Rows, func(i, j int) bool {
		if rep.Rows[i].Quantity != rep.Rows[j].Quantity {
			return rep.Rows[i].Quantity > rep.Rows[j].Quantity
		}
		return false
	})
	return rep, nil
}

// Table returns the rows as a CSV table.
func (r *UnbilledReport) Table() Table {
	t := Table{Header: []string{"customer_id", "month", "reason", "quantity", "detail", "category"}}
	for _, x := range r.Rows {
		t.Rows = append(t.Rows, []string{x.CustomerID, x.Month.String(), x.Reason, itoa(x.Quantity), x.Detail, x.Category})
	}
	return t
}
