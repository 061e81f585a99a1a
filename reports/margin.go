package reports

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/shopspring/decimal"

	"postage"
	"postage/billing"
	"postage/pricing"
)

// Margin: revenue (the selling cards, rated exactly as invoices and the
// month-to-date bill rate it) minus upstream cost (the same usage rated at
// the cost card in effect in the month: the upstream's own per-message
// prices), per customer, market and category, for the month to date and
// its projection. docs/REPORTS.md, "Margin", explains the method.

// Margin groupings (ByCustomer, ByMarket and ByCategory are revenue's).
const (
	// ByLine groups by customer, market and category: the level at which
	// a price below cost shows.
	ByLine = "line"
)

// MarginMethod describes how a margin report is made.
const MarginMethod = "revenue rated with each customer's card minus the same usage rated at the cost card in effect (tiers per portfolio; the month's exchange rate for other currencies); projection: linear run-rate per (country, category), rated with tiers"

// MarginQuery asks for the margin of one month (zero: the running one).
type MarginQuery struct {
	Month      pricing.Month
	GroupBy    string // ByCustomer (default), ByMarket, ByCategory or ByLine
	CustomerID string // "" for every customer
}

// Validate checks the grouping and the month.
func (q MarginQuery) Validate() error {
	var errs []error
	switch q.GroupBy {
	case "", ByCustomer, ByMarket, ByCategory, ByLine:
	default:
		errs = append(errs, postage.Errorf(postage.EINVALID, "group_by %q: want customer, market, category or line", q.GroupBy))
	}
	if !q.Month.IsZero() && !q.Month.Valid() {
		errs = append(errs, postage.Errorf(postage.EINVALID, "month: want YYYY-MM"))
	}
	return errors.Join(errs...)
}

// MarginCard names the cost card version a report rated cost with.
type MarginCard struct {
	CardID   string `json:"card_id"`
	Version  int    `json:"version"`
	Currency string `json:"currency"`
}

// MarginRow is the revenue, cost and margin of one group in one currency,
// for the month to date and projected to the whole month. Market and
// category are the cost card's (the upstream's view): revenue of a
// selling line is split over them by quantity.
type MarginRow struct {
	CustomerID string `json:"customer_id,omitempty"` // by customer and by line
	Name       string `json:"name,omitempty"`        // the customer's name
	Market     string `json:"market,omitempty"`      // by market and by line
	Category   string `json:"category,omitempty"`    // by category and by line
	Currency   string `json:"currency"`
	Customers  int    `json:"customers"`
	Quantity   int64  `json:"quantity"`
	Revenue    string `json:"revenue"`
	Cost       string `json:"cost"`
	Margin     string `json:"margin"`
	// MarginPercent is margin / revenue × 100, two decimals (null when
	// revenue is zero).
	MarginPercent *decimal.Decimal `json:"margin_percent"`
	// Negative flags a margin below zero: the row costs more upstream than
	// it earns.
	Negative               bool             `json:"negative"`
	ProjectedQuantity      int64            `json:"projected_quantity"`
	ProjectedRevenue       string           `json:"projected_revenue"`
	ProjectedCost          string           `json:"projected_cost"`
	ProjectedMargin        string           `json:"projected_margin"`
	ProjectedMarginPercent *decimal.Decimal `json:"projected_margin_percent"`
	ProjectedNegative      bool             `json:"projected_negative"`

	m marginAcc
}

// MarginTotal sums a margin report in one currency.
type MarginTotal struct {
	Currency               string           `json:"currency"`
	Customers              int              `json:"customers"`
	Quantity               int64            `json:"quantity"`
	Revenue                string           `json:"revenue"`
	Cost                   string           `json:"cost"`
	Margin                 string           `json:"margin"`
	MarginPercent          *decimal.Decimal `json:"margin_percent"`
	ProjectedQuantity      int64            `json:"projected_quantity"`
	ProjectedRevenue       string           `json:"projected_revenue"`
	ProjectedCost          string           `json:"projected_cost"`
	ProjectedMargin        string           `json:"projected_margin"`
	ProjectedMarginPercent *decimal.Decimal `json:"projected_margin_percent"`
	// NegativeRows counts the report's rows of this currency with a
	// negative month-to-date margin.
	NegativeRows int `json:"negative_rows"`
}

// MarginExcluded is a customer left out of the margin rows, with why:
// revenue and cost in different currencies, a cost card that cannot rate
// its usage, or usage nobody is billed for (which still costs).
type MarginExcluded struct {
	CustomerID string `json:"customer_id"`
	Name       string `json:"name"`
	// Reason is a stable code: currency_mismatch, cost_unrated, or one of
	// billing's unbilled reasons (unknown_customer, no_rate_card, ...).
	Reason   string `json:"reason"`
	Detail   string `json:"detail"`
	Quantity int64  `json:"quantity"`
	// Currency and Revenue: the month to date's revenue in the customer's
	// currency ("" when nothing is billed).
	Currency string `json:"currency"`
	Revenue  string `json:"revenue"`
	// CostCurrency and Cost: the month to date at the cost card ("" when
	// the cost card cannot rate it), and ProjectedCost its projection.
	CostCurrency  string `json:"cost_currency"`
	Cost          string `json:"cost"`
	ProjectedCost string `json:"projected_cost"`
}

// MarginReport is the margin of a month to date and its projection.
type MarginReport struct {
	Month           pricing.Month `json:"month"`
	AsOf            time.Time     `json:"as_of"`
	ElapsedFraction string        `json:"elapsed_fraction"`
	Method          string        `json:"method"`
	GroupBy         string        `json:"group_by"`
	CostCard        MarginCard    `json:"cost_card"`
	// ExchangeRates are the month's rates that converted cost into the
	// currencies of customers billed in another currency than the cost
	// card's (pricing's rates, the ones cost-plus prices use).
	ExchangeRates []pricing.ExchangeRate `json:"exchange_rates"`
	Rows          []MarginRow            `json:"rows"`
	Totals        []MarginTotal          `json:"totals"`
	// NotComparable lists customers whose revenue and cost cannot be
	// subtracted (another currency than the cost card's without an
	// exchange rate for the month, or usage the cost card cannot rate);
	// they are in no row and no total.
	NotComparable []MarginExcluded `json:"not_comparable"`
	// Unbilled lists usage no invoice bills, at its cost: a loss.
	Unbilled []MarginExcluded `json:"unbilled"`
}

// marginAcc sums revenue and cost in minor units, to date and projected.
type marginAcc struct {
	quantity, rev, cost    int64
	pquantity, prev, pcost int64
}

func (a *marginAcc) add(b marginAcc) {
	a.quantity += b.quantity
	a.rev += b.rev
	a.cost += b.cost
	a.pquantity += b.pquantity
	a.prev += b.prev
	a.pcost += b.pcost
}

// marginKey is a cost card line: (market, category).
type marginKey struct{ market, category string }

// lineKeys returns the line each usage row falls in on card r: its
// (market, category) for priced rows, (market, category as sent) for rows
// of a free pricing type (free on every card).
func lineKeys(r *pricing.Rater, usage []pricing.Usage, customerCountry string, lc lookCache) ([]marginKey, error) {
	keys := make([]marginKey, len(usage))
	for i, u := range usage {
		if u.FreeType != "" {
			keys[i] = marginKey{r.Market(u.Country), u.Category}
			continue
		}
		v, err := lc.line(r, u, customerCountry)
		if err != nil {
			return nil, err
		}
		keys[i] = marginKey{v.market, v.category}
	}
	return keys, nil
}

// splitRated splits each priced line of res (rated by r from usage) over
// the usage rows it bills, by quantity with the largest-remainder method
// in minor units, and hands each row's part to add with the row's key in
// keys: the parts add up to the result's total exactly.
func splitRated(res *pricing.Result, r *pricing.Rater, usage []pricing.Usage, customerCountry string, keys []marginKey, lc lookCache, add func(k marginKey, amount int64)) error {
	// The card's own line of each row; a row it cannot rate (listed in
	// res.Unrated, billed by no line) is on none.
	own := make([]marginKey, len(usage))
	for i, u := range usage {
		if u.FreeType != "" {
			own[i] = marginKey{r.Market(u.Country), u.Category}
		} else if v, err := lc.line(r, u, customerCountry); err == nil {
			own[i] = marginKey{v.market, v.category}
		}
	}
	var idx []int
	var w []int64
	for _, ln := range res.Lines {
		amount := minorOf(ln.Amount, res.MinorUnits)
		if ln.FreeType != "" || amount == 0 {
			continue
		}
		idx, w = idx[:0], w[:0]
		for i, k := range own {
			if usage[i].FreeType == "" && k.market == ln.Market && k.category == ln.Category {
				idx = append(idx, i)
				w = append(w, usage[i].Quantity)
			}
		}
		if len(idx) == 0 {
			return fmt.Errorf("line %s/%s of card %s has no usage row", ln.Market, ln.Category, res.CardID)
		}
		for j, part := range allocate(amount, w) {
			add(keys[idx[j]], part)
		}
	}
	return nil
}

// marginLines splits one customer-month over the cost card's lines: each
// row's quantity, the selling lines' rounded amounts and the cost lines'
// rounded amounts, given to the cost line each row falls in (splitRated).
// Both add up to the results' totals exactly.
func marginLines(sell, cost *pricing.Result, sellRater, costRater *pricing.Rater, usage []pricing.Usage, customerCountry string, lc lookCache) (map[marginKey]*marginAcc, error) {
	out := map[marginKey]*marginAcc{}
	acc := func(k marginKey) *marginAcc {
		a := out[k]
		if a == nil {
			a = &marginAcc{}
			out[k] = a
		}
		return a
	}
	keys, err := lineKeys(costRater, usage, customerCountry, lc)
	if err != nil {
		return nil, err
	}
	for i, u := range usage {
		acc(keys[i]).quantity += u.Quantity
	}
	if err := splitRated(sell, sellRater, usage, customerCountry, keys, lc, func(k marginKey, v int64) { acc(k).rev += v }); err != nil {
		return nil, err
	}
	if err := splitRated(cost, costRater, usage, customerCountry, keys, lc, func(k marginKey, v int64) { acc(k).cost += v }); err != nil {
		return nil, err
	}
	return out, nil
}

// marginMonth is one customer-month at both cards, to date and projected.
type marginMonth struct {
	cm       *customerMonth
	excluded *MarginExcluded // set when the customer is in no row
	total    marginAcc
	lines    map[marginKey]*marginAcc // per cost line, when the grouping needs them
}

// Margin rates each customer's usage of the month so far, and its linear
// projection to the whole month, at the customer's own card (revenue) and
// at the cost card in effect (cost), and groups revenue, cost and margin.
func (s *Service) Margin(ctx context.Context, q MarginQuery) (*MarginReport, error) {
	asOf := s.now()
	if q.Month.IsZero() {
		q.Month = pricing.MonthOf(asOf)
	}
	if q.GroupBy == "" {
		q.GroupBy = ByCustomer
	}
	if err := q.Validate(); err != nil {
		return nil, err
	}
	if q.Month.After(pricing.MonthOf(asOf)) {
		return nil, postage.Errorf(postage.EINVALID, "month %s has not started", q.Month)
	}
	e, total := elapsed(q.Month, asOf)
	rating := s.newRating()
	cr, err := costCardIn(ctx, rating, q.Month)
	if err != nil {
		return nil, err
	}
	cv := cr.Version()
	costCur, costMinor := cv.Currency, minorUnits(cv.Currency)
	b, err := s.loadBook(ctx, []pricing.Month{q.Month}, customerFilter(q.CustomerID), rating, false)
	if err != nil {
		return nil, err
	}
	needLines := q.GroupBy != ByCustomer
	out := make([]marginMonth, len(b.rows))
	errs := make([]error, len(b.rows))
	caches := make(chan lookCache, s.workers())
	for range s.workers() {
		caches <- lookCache{}
	}
	fx := newFXRates(s.Cards)
	parallel(len(b.rows), s.workers(), func(i int) {
		if b.rows[i].Hidden {
			return // a portfolio member read for its tiers only
		}
		lc := <-caches
		defer func() { caches <- lc }()
		out[i], errs[i] = s.marginOf(ctx, b, b.rows[i], cr, costCur, costMinor, e, total, needLines, lc, fx)
	})
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	rep := &MarginReport{
		Month: q.Month, AsOf: asOf.Truncate(time.Second),
		ElapsedFraction: decimal.NewFromInt(e).DivRound(decimal.NewFromInt(total), 4).StringFixed(4),
		Method:          MarginMethod, GroupBy: q.GroupBy,
		CostCard: MarginCard{CardID: cv.CardID, Version: cv.Number, Currency: costCur}, ExchangeRates: fx.used(),
		Rows: []MarginRow{}, Totals: []MarginTotal{}, NotComparable: []MarginExcluded{}, Unbilled: []MarginExcluded{},
	}
	type gk struct{ customer, market, category, currency string }
	groups := map[gk]*MarginRow{}
	seen := map[gk]map[string]bool{}
	totals := map[string]*MarginRow{}
	totalSeen := map[string]map[string]bool{}
	add := func(k gk, name string, a marginAcc, customer string) {
		g := groups[k]
		if g == nil {
			g = &MarginRow{CustomerID: k.customer, Name: name, Market: k.market, Category: k.category, Currency: k.currency}
			groups[k] = g
			seen[k] = map[string]bool{}
		}
		g.m.add(a)
		if !seen[k][customer] {
			seen[k][customer] = true
			g.Customers++
		}
	}
	for i := range out {
		mm := &out[i]
		cm := mm.cm
		if cm == nil {
			continue // hidden
		}
		if mm.excluded != nil {
			if mm.excluded.Reason == reasonCurrencyMismatch || mm.excluded.Reason == reasonCostUnrated {
				rep.NotComparable = append(rep.NotComparable, *mm.excluded)
			} else {
				rep.Unbilled = append(rep.Unbilled, *mm.excluded)
			}
			continue
		}
		cur := cm.Result.Currency
		t := totals[cur]
		if t == nil {
			t = &MarginRow{Currency: cur}
			totals[cur] = t
			totalSeen[cur] = map[string]bool{}
		}
		t.m.add(mm.total)
		if !totalSeen[cur][cm.CustomerID] {
			totalSeen[cur][cm.CustomerID] = true
			t.Customers++
		}
		switch q.GroupBy {
		case ByCustomer:
			add(gk{customer: cm.CustomerID, currency: cur}, cm.Customer.Name, mm.total, cm.CustomerID)
		default:
			for k, a := range mm.lines {
				switch q.GroupBy {
				case ByMarket:
					add(gk{market: k.market, currency: cur}, "", *a, cm.CustomerID)
				case ByCategory:
					add(gk{category: k.category, currency: cur}, "", *a, cm.CustomerID)
				case ByLine:
					add(gk{customer: cm.CustomerID, market: k.market, category: k.category, currency: cur}, cm.Customer.Name, *a, cm.CustomerID)
				}
			}
		}
	}
	negatives := map[string]int{}
	for _, g := range groups {
		g.fill()
		if g.Negative {
			negatives[g.Currency]++
		}
		rep.Rows = append(rep.Rows, *g)
	}
	sortMarginRows(rep.Rows, q.GroupBy)
	for cur, t := range totals {
		t.fill()
		rep.Totals = append(rep.Totals, MarginTotal{Currency: cur, Customers: t.Customers, Quantity: t.Quantity,
			Revenue: t.Revenue, Cost: t.Cost, Margin: t.Margin, MarginPercent: t.MarginPercent,
			ProjectedQuantity: t.ProjectedQuantity, ProjectedRevenue: t.ProjectedRevenue, ProjectedCost: t.ProjectedCost,
			ProjectedMargin: t.ProjectedMargin, ProjectedMarginPercent: t.ProjectedMarginPercent, NegativeRows: negatives[cur]})
	}
	sort.Slice(rep.Totals, func(i, j int) bool { return rep.Totals[i].Currency < rep.Totals[j].Currency })
	for _, l := range [][]MarginExcluded{rep.NotComparable, rep.Unbilled} {
		sort.Slice(l, func(i, j int) bool {
			if l[i].Quantity != l[j].Quantity {
				return l[i].Quantity > l[j].Quantity
			}
			return l[i].CustomerID < l[j].CustomerID
		})
	}
	return rep, nil
}

// Reasons a customer is in no margin row (besides billing's unbilled ones).
const (
	reasonCurrencyMismatch = "currency_mismatch"
	reasonCostUnrated      = "cost_unrated"
)

// marginOf rates one customer-month at both cards, to date and projected.
// An error is an outage or a bug.
func (s *Service) marginOf(ctx context.Context, b *book, cm *customerMonth, cr *pricing.Rater, costCur string, costMinor int, e, total int64, needLines bool, lc lookCache, fx *fxRates) (marginMonth, error) {
	mm := marginMonth{cm: cm}
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
	costNow, err := b.rateAtCost(ctx, cm, "cost", func(x *customerMonth) []pricing.Usage { return x.Usage })
	if err != nil {
		return mm, fmt.Errorf("cost of %s %s: %w", cm.CustomerID, cm.Month, err)
	}
	costLater, err := b.rateAtCost(ctx, cm, "projected cost", projectAll)
	if err != nil {
		return mm, fmt.Errorf("projected cost of %s %s: %w", cm.CustomerID, cm.Month, err)
	}
	cost, pcost := costNow.Result, costLater.Result
	problem := costProblem(costNow)
	if problem == "" {
		problem = costProblem(costLater)
	}
	ex := &MarginExcluded{CustomerID: cm.CustomerID, Name: cm.Customer.Name, Quantity: cm.Quantity}
	if costNow.Unbilled == "" {
		ex.CostCurrency = costCur
		ex.Cost = fromMinor(minorOf(cost.Total, costMinor), costMinor)
	}
	if costLater.Unbilled == "" {
		ex.ProjectedCost = fromMinor(minorOf(pcost.Total, costMinor), costMinor)
	}
	if cm.Unbilled != "" {
		ex.Reason, ex.Detail = cm.Unbilled, cm.Detail
		if problem != "" {
			ex.Detail += "; cost card: " + problem
		}
		mm.excluded = ex
		return mm, nil
	}
	sell := &cm.Result
	ex.Currency, ex.Revenue = sell.Currency, fromMinor(minorOf(sell.Total, sell.MinorUnits), sell.MinorUnits)
	if problem != "" {
		ex.Reason, ex.Detail = reasonCostUnrated, problem
		mm.excluded = ex
		return mm, nil
	}
	if sell.Currency != costCur {
		x, ok, err := fx.rate(ctx, costCur, sell.Currency, cm.Month)
		if err != nil {
			return mm, err
		}
		if !ok {
			ex.Reason = reasonCurrencyMismatch
			ex.Detail = fmt.Sprintf("revenue in %s, cost card in %s: no exchange rate %s to %s for %s", sell.Currency, costCur, costCur, sell.Currency, cm.Month)
			mm.excluded = ex
			return mm, nil
		}
		cost, pcost = convert(cost, x, sell.Currency), convert(pcost, x, sell.Currency)
	}
	projected, pooled, err := b.rateInGroup(ctx, cm, "projected", projectAll,
		func(group []billing.Member) ([]billing.Rated, error) {
			return b.rating.RateGroup(ctx, b.pre, cm.Month, group)
		})
	if !pooled && err == nil {
		projected, err = b.rating.Rate(ctx, b.pre, cm.Customer, cm.Month, proj)
	}
	if err != nil {
		return mm, fmt.Errorf("projection of %s: %w", cm.CustomerID, err)
	}
	if projected.Unbilled != "" {
		return mm, postage.Errorf(postage.EINVALID, "projection of %s: %s", cm.CustomerID, projected.Detail)
	}
	mu := sell.MinorUnits
	mm.total = marginAcc{
		quantity: cm.Quantity, rev: minorOf(sell.Total, mu), cost: minorOf(cost.Total, mu),
		pquantity: pq, prev: minorOf(projected.Result.Total, mu), pcost: minorOf(pcost.Total, mu),
	}
	if !needLines {
		return mm, nil
	}
	cc := cm.Customer.Country
	now, err := marginLines(sell, &cost, cm.Basis, cr, cm.Usage, cc, lc)
	if err == nil {
		var later map[marginKey]*marginAcc
		if later, err = marginLines(&projected.Result, &pcost, projected.Basis, cr, proj, cc, lc); err == nil {
			mm.lines = now
			for k, a := range later {
				l := mm.lines[k]
				if l == nil {
					l = &marginAcc{}
					mm.lines[k] = l
				}
				l.pquantity, l.prev, l.pcost = a.quantity, a.rev, a.cost
			}
		}
	}
	if err != nil {
		return mm, fmt.Errorf("margin lines of %s %s: %w", cm.CustomerID, cm.Month, err)
	}
	return mm, nil
}

// fill formats a row's sums.
func (g *MarginRow) fill() {
	mu := minorUnits(g.Currency)
	a := g.m
	g.Quantity, g.ProjectedQuantity = a.quantity, a.pquantity
	g.Revenue, g.Cost, g.Margin = fromMinor(a.rev, mu), fromMinor(a.cost, mu), fromMinor(a.rev-a.cost, mu)
	g.MarginPercent = percent(a.rev-a.cost, a.rev)
	g.Negative = a.rev-a.cost < 0
	g.ProjectedRevenue, g.ProjectedCost, g.ProjectedMargin = fromMinor(a.prev, mu), fromMinor(a.pcost, mu), fromMinor(a.prev-a.pcost, mu)
	g.ProjectedMarginPercent = percent(a.prev-a.pcost, a.prev)
	g.ProjectedNegative = a.prev-a.pcost < 0
}

// sortMarginRows orders rows by customer and line worst margin first,
// by market and category by name.
func sortMarginRows(rows []MarginRow, groupBy string) {
	sort.Slice(rows, func(i, j int) bool {
		a, b := &rows[i], &rows[j]
		if a.Currency != b.Currency {
			return a.Currency < b.Currency
		}
		if groupBy == ByCustomer || groupBy == ByLine {
			if ma, mb := a.m.rev-a.m.cost, b.m.rev-b.m.cost; ma != mb {
				return ma < mb
			}
		}
		if a.CustomerID != b.CustomerID {
			return a.CustomerID < b.CustomerID
		}
		if a.Market != b.Market {
			return a.Market < b.Market
		}
		return a.Category < b.Category
	})
}

// Table returns the report's rows as a CSV table.
func (r *MarginReport) Table() Table {
	t := Table{Header: []string{"customer_id", "name", "market", "category", "currency", "customers", "quantity", "revenue", "cost", "margin", "margin_percent", "negative",
		"projected_quantity", "projected_revenue", "projected_cost", "projected_margin", "projected_margin_percent", "projected_negative"}}
	for _, x := range r.Rows {
		t.Rows = append(t.Rows, []string{x.CustomerID, x.Name, x.Market, x.Category, x.Currency, strconv.Itoa(x.Customers), itoa(x.Quantity),
			x.Revenue, x.Cost, x.Margin, percentString(x.MarginPercent), strconv.FormatBool(x.Negative),
			itoa(x.ProjectedQuantity), x.ProjectedRevenue, x.ProjectedCost, x.ProjectedMargin, percentString(x.ProjectedMarginPercent), strconv.FormatBool(x.ProjectedNegative)})
	}
	return t
}
