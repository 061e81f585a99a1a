package reports

import (
	"context"
	"sort"
	"strconv"

	"postage"
	"postage/pricing"
)

// Revenue groupings.
const (
	ByMonth    = "month"
	ByCustomer = "customer"
	ByMarket   = "market"
	ByCountry  = "country"
	ByCategory = "category"
)

// RevenueQuery asks for revenue over the months From..To (inclusive).
type RevenueQuery struct {
	From, To   pricing.Month
	GroupBy    string // ByMonth (default), ByCustomer, ByMarket, ByCountry, ByCategory
	CustomerID string // "" for every customer
}

// Validate checks the grouping and the range.
func (q RevenueQuery) Validate() error {
	switch q.GroupBy {
	case "", ByMonth, ByCustomer, ByMarket, ByCountry, ByCategory:
	default:
		return postage.Errorf(postage.EINVALID, "group_by %q: want month, customer, market, country or category", q.GroupBy)
	}
	_, err := MonthRange(q.From, q.To)
	return err
}

// RevenueRow is the revenue of one group in one currency. Name is the
// customer's name, or a country's (a country, or a market named by a
// country code); empty for months, categories and markets with names.
type RevenueRow struct {
	Key       string `json:"key"`
	Name      string `json:"name"`
	Currency  string `json:"currency"`
	Quantity  int64  `json:"quantity"`
	Amount    string `json:"amount"`
	Customers int    `json:"customers"`

	minor int64
}

// CurrencyTotal is a report's total in one currency.
type CurrencyTotal struct {
	Currency  string `json:"currency"`
	Quantity  int64  `json:"quantity"`
	Amount    string `json:"amount"`
	Customers int    `json:"customers"`
}

// RevenueReport is revenue grouped one way, per currency.
type RevenueReport struct {
	From    pricing.Month   `json:"from"`
	To      pricing.Month   `json:"to"`
	GroupBy string          `json:"group_by"`
	Basis   string          `json:"basis"` // "rated": see docs/REPORTS.md
	Rows    []RevenueRow    `json:"rows"`
	Totals  []CurrencyTotal `json:"totals"`
}

// Revenue rates the usage of the months with each customer's card and
// groups the rounded line amounts.
func (s *Service) Revenue(ctx context.Context, q RevenueQuery) (*RevenueReport, error) {
	if q.GroupBy == "" {
		q.GroupBy = ByMonth
	}
	if err := q.Validate(); err != nil {
		return nil, err
	}
	months, _ := MonthRange(q.From, q.To)
	b, err := s.loadBook(ctx, months, customerFilter(q.CustomerID), nil, false)
	if err != nil {
		return nil, err
	}
	type gk struct{ key, currency string }
	groups := map[gk]*RevenueRow{}
	seen := map[gk]map[string]bool{}
	add := func(key, name, currency string, quantity, minor int64, customer string) {
		k := gk{key, currency}
		g := groups[k]
		if g == nil {
			g = &RevenueRow{Key: key, Name: name, Currency: currency}
			groups[k] = g
			seen[k] = map[string]bool{}
		}
		g.Quantity += quantity
		g.minor += minor
		if !seen[k][customer] {
			seen[k][customer] = true
			g.Customers++
		}
	}
	totals := newTotals()
	for _, cm := range b.rated() {
		r := &cm.Result
		billed := cm.billedQuantity()
		totals.add(r.Currency, billed, minorOf(r.Total, r.MinorUnits), cm.CustomerID)
		switch q.GroupBy {
		case ByMonth:
			add(cm.Month.String(), "", r.Currency, billed, minorOf(r.Total, r.MinorUnits), cm.CustomerID)
		case ByCustomer:
			add(cm.CustomerID, cm.Customer.Name, r.Currency, billed, minorOf(r.Total, r.MinorUnits), cm.CustomerID)
		default:
			for _, ln := range r.Lines {
				amount := minorOf(ln.Amount, r.MinorUnits)
				switch q.GroupBy {
				case ByMarket:
					add(ln.Market, countryLabel(ln.Market), r.Currency, ln.Quantity, amount, cm.CustomerID)
				case ByCategory:
					add(ln.Category, "", r.Currency, ln.Quantity, amount, cm.CustomerID)
				case ByCountry:
					w := make([]int64, len(ln.Countries))
					for i, c := range ln.Countries {
						w[i] = c.Quantity
					}
					for i, part := range allocate(amount, w) {
						c := ln.Countries[i]
						add(c.Country, countryLabel(c.Country), r.Currency, c.Quantity, part, cm.CustomerID)
					}
				}
			}
		}
	}
	rep := &RevenueReport{From: q.From, To: q.To, GroupBy: q.GroupBy, Basis: "rated", Rows: []RevenueRow{}, Totals: totals.list()}
	for _, g := range groups {
		g.Amount = fromMinor(g.minor, minorUnits(g.Currency))
		rep.Rows = append(rep.Rows, *g)
	}
	sort.Slice(rep.Rows, func(i, j int) bool {
		a, b := rep.Rows[i], rep.Rows[j]
		if q.GroupBy == ByCustomer && a.Currency == b.Currency && a.minor != b.minor {
			return a.minor > b.minor
		}
		if a.Key != b.Key {
			return a.Key < b.Key
		}
		return a.Currency < b.Currency
	})
	return rep, nil
}

// Table returns the report's rows as a CSV table.
func (r *RevenueReport) Table() Table {
	t := Table{Header: []string{"key", "name", "currency", "quantity", "amount", "customers"}}
	for _, x := range r.Rows {
		t.Rows = append(t.Rows, []string{x.Key, x.Name, x.Currency, itoa(x.Quantity), x.Amount, strconv.Itoa(x.Customers)})
	}
	return t
}

// TopQuery asks for the top customers over the months From..To.
type TopQuery struct {
	From, To pricing.Month
	By       string // "amount" (default) or "quantity"
	Limit    int    // 1-1000, default 10
}

// TopRow is one ranked customer.
type TopRow struct {
	Rank       int    `json:"rank"`
	CustomerID string `json:"customer_id"`
	Name       string `json:"name"`
	Currency   string `json:"currency"`
	Quantity   int64  `json:"quantity"`
	Amount     string `json:"amount"`
	Share      string `json:"share"`

	minor int64
}

// TopReport ranks customers.
type TopReport struct {
	From pricing.Month `json:"from"`
	To   pricing.Month `json:"to"`
	By   string        `json:"by"`
	Rows []TopRow      `json:"rows"`
}

// TopCustomers ranks customers by rated amount or by quantity. A customer
// billed in two currencies appears once per currency.
func (s *Service) TopCustomers(ctx context.Context, q TopQuery) (*TopReport, error) {
	if q.By == "" {
		q.By = "amount"
	}
	if q.By != "amount" && q.By != "quantity" {
		return nil, postage.Errorf(postage.EINVALID, "by %q: want amount or quantity", q.By)
	}
	if q.Limit == 0 {
		q.Limit = 10
	}
	if q.Limit < 1 || q.Limit > 1000 {
		return nil, postage.Errorf(postage.EINVALID, "limit: an integer from 1 to 1000")
	}
	months, err := MonthRange(q.From, q.To)
	if err != nil {
		return nil, err
	}
	b, err := s.loadBook(ctx, months, nil, nil, false)
	if err != nil {
		return nil, err
	}
	type ck struct{ customer, currency string }
	rows := map[ck]*TopRow{}
	curTotal := map[string]int64{}
	var qtyTotal int64
	for _, cm := range b.rated() {
		r := &cm.Result
		k := ck{cm.CustomerID, r.Currency}
		row := rows[k]
		if row == nil {
			row = &TopRow{CustomerID: cm.CustomerID, Name: cm.Customer.Name, Currency: r.Currency}
			rows[k] = row
		}
		m := minorOf(r.Total, r.MinorUnits)
		row.Quantity += cm.billedQuantity()
		row.minor += m
		curTotal[r.Currency] += m
		qtyTotal += cm.billedQuantity()
	}
	list := make([]TopRow, 0, len(rows))
	for _, r := range rows {
		list = append(list, *r)
	}
	sort.Slice(list, func(i, j int) bool {
		a, b := list[i], list[j]
		if q.By == "amount" && a.minor != b.minor {
			return a.minor > b.minor
		}
		if a.Quantity != b.Quantity {
			return a.Quantity > b.Quantity
		}
		if q.By == "quantity" && a.minor != b.minor {
			return a.minor > b.minor
		}
		return a.CustomerID < b.CustomerID
	})
	if len(list) > q.Limit {
		list = list[:q.Limit]
	}
	for i := range list {
		r := &list[i]
		r.Rank = i + 1
		r.Amount = fromMinor(r.minor, minorUnits(r.Currency))
		if q.By == "amount" {
			r.Share = percentString(percent(r.minor, curTotal[r.Currency]))
		} else {
			r.Share = percentString(percent(r.Quantity, qtyTotal))
		}
	}
	return &TopReport{From: q.From, To: q.To, By: q.By, Rows: list}, nil
}

// Table returns the ranking as a CSV table.
func (r *TopReport) Table() Table {
	t := Table{Header: []string{"rank", "customer_id", "name", "currency", "quantity", "amount", "share"}}
	for _, x := range r.Rows {
		t.Rows = append(t.Rows, []string{strconv.Itoa(x.Rank), x.CustomerID, x.Name, x.Currency, itoa(x.Quantity), x.Amount, x.Share})
	}
	return t
}

// totals adds up amounts per currency.
type totals struct {
	m map[string]*totalAcc
}

type totalAcc struct {
	quantity, minor int64
	customers       map[string]bool
}

func newTotals() *totals { return &totals{m: map[string]*totalAcc{}} }

func (t *totals) add(currency string, quantity, minor int64, customer string) {
	a := t.m[currency]
	if a == nil {
		a = &totalAcc{customers: map[string]bool{}}
		t.m[currency] = a
	}
	a.quantity += quantity
	a.minor += minor
	a.customers[customer] = true
}

func (t *totals) list() []CurrencyTotal {
	out := []CurrencyTotal{}
	for c, a := range t.m {
		out = append(out, CurrencyTotal{Currency: c, Quantity: a.quantity, Amount: fromMinor(a.minor, minorUnits(c)), Customers: len(a.customers)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Currency < out[j].Currency })
	return out
}

func customerFilter(id string) []string {
	if id == "" {
		return nil
	}
	return []string{id}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// countryLabel is the name of a country code, or "" when key is no code
// (a market such as "Rest of Africa" is its own name).
func countryLabel(key string) string {
	if n := CountryName(key); n != key {
		return n
	}
	return ""
}
