package reports

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/shopspring/decimal"

	"postage"
	"postage/pricing"
)

// MarginSimulationRequest asks what an upstream price change would do to
// margin: the real usage of the months From..To rated at a proposed
// version of a cost card (a draft, or a version not yet in effect)
// against the cost card in effect in each month. Revenue that follows the
// cost card (cost-plus customers, customers on the proposed card itself)
// is re-rated at the proposed version too; every other customer's is
// unchanged.
type MarginSimulationRequest struct {
	// CardID is the cost card of the proposed version (default: the one
	// in effect in To).
	CardID string `json:"card_id,omitempty"`
	// Version is the proposed version of the card (a draft is allowed).
	Version int `json:"version"`
	// From and To are past months (default: the last complete month).
	From pricing.Month `json:"from,omitzero"`
	To   pricing.Month `json:"to,omitzero"`
	// Customers limits the simulation (empty: every customer with usage).
	Customers []string `json:"customers,omitempty"`
	// Breakdown adds each customer's breakdown by market and category.
	Breakdown bool `json:"breakdown,omitempty"`
}

// Validate checks the request on its own.
func (r MarginSimulationRequest) Validate() error {
	var errs []error
	if r.Version < 1 {
		errs = append(errs, postage.Errorf(postage.EINVALID, "version: the proposed version's number is required"))
	}
	return errors.Join(append(errs, validateScope(r.From, r.To, r.Customers))...)
}

// MarginSimLine is the margin of one (market, category) of the proposed
// cost card, now and under the proposed prices.
type MarginSimLine struct {
	Market          string           `json:"market"`
	Category        string           `json:"category"`
	Currency        string           `json:"currency"`
	Quantity        int64            `json:"quantity"`
	Revenue         string           `json:"revenue"`          // billed today
	ProposedRevenue string           `json:"proposed_revenue"` // billed at the proposed cost card
	CurrentCost     string           `json:"current_cost"`
	ProposedCost    string           `json:"proposed_cost"`
	CurrentMargin   string           `json:"current_margin"`  // revenue − current cost
	ProposedMargin  string           `json:"proposed_margin"` // proposed revenue − proposed cost
	Difference      string           `json:"difference"`      // proposed margin − current margin
	ProposedPct     *decimal.Decimal `json:"proposed_margin_percent"`
	Negative        bool             `json:"negative"` // the proposed margin is below zero
}

// MarginSimCustomer is one customer's margin now and under the proposed
// cost card.
type MarginSimCustomer struct {
	CustomerID      string           `json:"customer_id"`
	Name            string           `json:"name"`
	Currency        string           `json:"currency"`
	Quantity        int64            `json:"quantity"`
	Revenue         string           `json:"revenue"`
	ProposedRevenue string           `json:"proposed_revenue"`
	CurrentCost     string           `json:"current_cost"`
	ProposedCost    string           `json:"proposed_cost"`
	CurrentMargin   string           `json:"current_margin"`
	ProposedMargin  string           `json:"proposed_margin"`
	Difference      string           `json:"difference"`
	CurrentPct      *decimal.Decimal `json:"current_margin_percent"`
	ProposedPct     *decimal.Decimal `json:"proposed_margin_percent"`
	// Negative: the proposed margin is below zero; TurnsNegative: and the
	// current one is not.
	Negative      bool `json:"negative"`
	TurnsNegative bool `json:"turns_negative"`
	// Skipped says why the customer is left out of the totals ("" when
	// not): unbilled usage, revenue in another currency than the cost
	// card's, usage a version of the cost card cannot rate, revenue that
	// follows the cost card and cannot be rated at the proposed version.
	Skipped   string          `json:"skipped"`
	Breakdown []MarginSimLine `json:"breakdown,omitempty"`

	acc   simAcc
	lines map[lineKey]*simAcc
}

// MarginSimTotal sums a margin simulation in one currency.
type MarginSimTotal struct {
	Currency        string           `json:"currency"`
	Customers       int              `json:"customers"`
	Quantity        int64            `json:"quantity"`
	Revenue         string           `json:"revenue"`
	ProposedRevenue string           `json:"proposed_revenue"`
	CurrentCost     string           `json:"current_cost"`
	ProposedCost    string           `json:"proposed_cost"`
	CurrentMargin   string           `json:"current_margin"`
	ProposedMargin  string           `json:"proposed_margin"`
	Difference      string           `json:"difference"`
	CurrentPct      *decimal.Decimal `json:"current_margin_percent"`
	ProposedPct     *decimal.Decimal `json:"proposed_margin_percent"`
	// Negative counts the customers whose proposed margin is below zero,
	// TurnsNegative those of them whose current margin is not.
	Negative      int `json:"negative"`
	TurnsNegative int `json:"turns_negative"`
}

// MarginSimulation is the answer to a MarginSimulationRequest.
type MarginSimulation struct {
	// CardID, ProposedVersion and ProposedCurrency: the proposed cost
	// card version.
	CardID           string `json:"card_id"`
	ProposedVersion  int    `json:"proposed_version"`
	ProposedCurrency string `json:"proposed_currency"`
	// Current lists the cost card versions in effect over the months
	// (each change once, in month order).
	Current []MarginCard `json:"current"`
	// ExchangeRates converted cost into other currencies than the cost
	// cards' (each month its own rate).
	ExchangeRates []pricing.ExchangeRate `json:"exchange_rates"`
	From          pricing.Month          `json:"from"`
	To            pricing.Month          `json:"to"`
	Months        []pricing.Month        `json:"months"`
	Totals        []MarginSimTotal       `json:"totals"`
	Breakdown     []MarginSimLine        `json:"breakdown"`
	Customers     []MarginSimCustomer    `json:"customers"`
	ElapsedMS     int64                  `json:"elapsed_ms"`
}

// simAcc sums a margin simulation in minor units: revenue billed today
// (rev) and at the proposed cost card (prev), cost at the cost card in
// effect (cur) and at the proposed version (prop).
type simAcc struct{ quantity, rev, prev, cur, prop int64 }

func (a *simAcc) add(b *simAcc) {
	a.quantity += b.quantity
	a.rev += b.rev
	a.prev += b.prev
	a.cur += b.cur
	a.prop += b.prop
}

// margins returns the current and proposed margins and their difference.
func (a *simAcc) margins() (cur, prop, diff int64) {
	cur, prop = a.rev-a.cur, a.prev-a.prop
	return cur, prop, prop - cur
}

// SimulateMargin rates the real usage of the months at the proposed
// version of the cost card and at the version in effect in each month,
// and compares the margins. Revenue is each customer's own card through
// billing's pipeline, as invoiced; the proposed revenue of a customer
// whose price follows the cost card is the same pipeline with the
// proposed version in effect. Every version involved is compiled once.
func (s *Service) SimulateMargin(ctx context.Context, req MarginSimulationRequest) (*MarginSimulation, error) {
	start := time.Now()
	if req.From.IsZero() && req.To.IsZero() {
		req.From = pricing.MonthOf(s.now()).Prev()
		req.To = req.From
	}
	if err := req.Validate(); err != nil {
		return nil, err
	}
	if cur := pricing.MonthOf(s.now()); req.To.After(cur) {
		return nil, postage.Errorf(postage.EINVALID, "to %s is in the future: simulations re-rate past usage", req.To)
	}
	months, _ := MonthRange(req.From, req.To)
	if len(req.Customers) == 0 {
		req.Customers = nil
	}
	rating := s.newRating()
	current := make(map[pricing.Month]*pricing.Rater, len(months))
	for _, m := range months {
		rt, err := costCardIn(ctx, rating, m)
		if err != nil {
			return nil, err
		}
		current[m] = rt
	}
	if req.CardID == "" {
		req.CardID = current[req.To].Version().CardID
	}
	card, err := s.Cards.GetCard(ctx, req.CardID)
	if postage.ErrorCode(err) == postage.ENOTFOUND {
		return nil, postage.Errorf(postage.EINVALID, "card_id: no rate card %s", req.CardID)
	} else if err != nil {
		return nil, err
	}
	if card.Kind != pricing.KindCost {
		return nil, postage.Errorf(postage.EINVALID, "card_id: %s is a selling card; a margin simulation proposes a version of a cost card", req.CardID)
	}
	v, err := s.Cards.GetVersion(ctx, req.CardID, req.Version)
	if postage.ErrorCode(err) == postage.ENOTFOUND {
		return nil, postage.Errorf(postage.EINVALID, "version: cost card %s has no version %d", req.CardID, req.Version)
	} else if err != nil {
		return nil, err
	}
	proposed, err := rating.Compile(v)
	if err != nil {
		return nil, err
	}
	var currentCards []MarginCard
	for _, m := range months {
		cv := current[m].Version()
		mc := MarginCard{CardID: cv.CardID, Version: cv.Number, Currency: cv.Currency}
		if n := len(currentCards); n == 0 || currentCards[n-1] != mc {
			currentCards = append(currentCards, mc)
		}
	}
	b, err := s.loadBook(ctx, months, req.Customers, rating, true)
	if err != nil {
		return nil, err
	}
	var starts []int // one task per customer of the request: its rows are contiguous
	for i, cm := range b.rows {
		if (i == 0 || b.rows[i-1].CustomerID != cm.CustomerID) && !cm.Hidden {
			starts = append(starts, i)
		}
	}
	out := make([]MarginSimCustomer, len(starts))
	errs := make([]error, len(starts))
	caches := make(chan lookCache, s.workers())
	for range s.workers() {
		caches <- lookCache{}
	}
	var done atomic.Int64
	fx := newFXRates(s.Cards)
	parallel(len(starts), s.workers(), func(t int) {
		lc := <-caches
		defer func() { caches <- lc }()
		lo, hi := starts[t], starts[t]+1
		for hi < len(b.rows) && b.rows[hi].CustomerID == b.rows[lo].CustomerID {
			hi++
		}
		out[t], errs[t] = simulateMarginOf(ctx, b, b.rows[lo:hi], current, proposed, lc, fx)
		if s.Progress != nil {
			if n := done.Add(1); n%256 == 0 || int(n) == len(starts) {
				s.Progress("simulating", int(n), len(starts))
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	sim := &MarginSimulation{CardID: req.CardID, ProposedVersion: req.Version, ProposedCurrency: v.Currency, Current: currentCards, ExchangeRates: fx.used(),
		From: req.From, To: req.To, Months: months, Totals: []MarginSimTotal{}, Breakdown: []MarginSimLine{}, Customers: out}
	type tacc struct {
		simAcc
		customers, negative, turns int
	}
	tot := map[string]*tacc{}
	book := map[lineKey]*simAcc{}
	for i := range out {
		c := &out[i]
		if c.Skipped != "" {
			c.lines = nil
			continue
		}
		a := tot[c.Currency]
		if a == nil {
			a = &tacc{}
			tot[c.Currency] = a
		}
		a.customers++
		a.simAcc.add(&c.acc)
		if c.Negative {
			a.negative++
		}
		if c.TurnsNegative {
			a.turns++
		}
		for k, l := range c.lines {
			bl := book[k]
			if bl == nil {
				bl = &simAcc{}
				book[k] = bl
			}
			bl.add(l)
		}
		if req.Breakdown {
			c.Breakdown = marginSimLines(c.lines)
		}
		c.lines = nil
	}
	for cur, a := range tot {
		mu := minorUnits(cur)
		t := MarginSimTotal{Currency: cur, Customers: a.customers, Quantity: a.quantity, Negative: a.negative, TurnsNegative: a.turns}
		cm, pm, diff := a.margins()
		t.Revenue, t.ProposedRevenue = fromMinor(a.rev, mu), fromMinor(a.prev, mu)
		t.CurrentCost, t.ProposedCost = fromMinor(a.cur, mu), fromMinor(a.prop, mu)
		t.CurrentMargin, t.ProposedMargin, t.Difference = fromMinor(cm, mu), fromMinor(pm, mu), fromMinor(diff, mu)
		t.CurrentPct, t.ProposedPct = percent(cm, a.rev), percent(pm, a.prev)
		sim.Totals = append(sim.Totals, t)
	}
	sort.Slice(sim.Totals, func(i, j int) bool { return sim.Totals[i].Currency < sim.Totals[j].Currency })
	sim.Breakdown = marginSimLines(book)
	// The biggest losses of margin first, skipped customers last.
	sort.SliceStable(sim.Customers, func(i, j int) bool {
		a, b := &sim.Customers[i], &sim.Customers[j]
		if (a.Skipped == "") != (b.Skipped == "") {
			return a.Skipped == ""
		}
		_, _, da := a.acc.margins()
		if _, _, db := b.acc.margins(); da != db {
			return da < db
		}
		return a.CustomerID < b.CustomerID
	})
	sim.ElapsedMS = time.Since(start).Milliseconds()
	return sim, nil
}

// simulateMarginOf rates one customer's months at the cost card in
// effect and at the proposed version (a portfolio's members pooled on
// both). An error is an outage; a customer that cannot be compared is
// skipped with the reason.
func simulateMarginOf(ctx context.Context, b *book, rows []*customerMonth, current map[pricing.Month]*pricing.Rater, proposed *pricing.Rater, lc lookCache, fx *fxRates) (MarginSimCustomer, error) {
	first := rows[0]
	c := MarginSimCustomer{CustomerID: first.CustomerID, Name: first.Customer.Name, lines: map[lineKey]*simAcc{}}
	skip := func(format string, args ...any) (MarginSimCustomer, error) {
		c.Skipped = fmt.Sprintf(format, args...)
		c.acc, c.lines = simAcc{}, nil
		return c, nil
	}
	for _, cm := range rows {
		c.Quantity += cm.Quantity
	}
	if !first.Known {
		return skip("unknown customer")
	}
	cc := first.Customer.Country
	for _, cm := range rows {
		why, err := b.rateCurrentIn(ctx, cm, &c.Currency)
		if err != nil {
			return c, err
		} else if why != "" {
			return skip("%s", why)
		}
		sell := &cm.Result
		propSell, propBasis := sell, cm.Basis
		if ps, changed, err := b.rateAtCostVersion(ctx, cm, "proposed revenue", proposed); err != nil {
			return c, err
		} else if changed {
			if ps.Unbilled != "" {
				return skip("revenue at the proposed cost card in %s: %s: %s", cm.Month, ps.Unbilled, ps.Detail)
			}
			if ps.Result.Currency != sell.Currency {
				return skip("revenue at the proposed cost card in %s, billed in %s", ps.Result.Currency, sell.Currency)
			}
			propSell, propBasis = &ps.Result, ps.Basis
		}
		curRated, err := b.rateAtCost(ctx, cm, "cost", func(x *customerMonth) []pricing.Usage { return x.Usage })
		if err != nil {
			return c, fmt.Errorf("cost of %s %s: %w", cm.CustomerID, cm.Month, err)
		}
		if p := costProblem(curRated); p != "" {
			return skip("cost card in effect in %s: %s", cm.Month, p)
		}
		propRated, err := b.rateOn(ctx, cm, "proposed cost", proposed)
		if err != nil {
			return c, err
		}
		if p := costProblem(propRated); p != "" {
			return skip("proposed cost card: %s", p)
		}
		cur, prop := curRated.Result, propRated.Result
		for _, side := range []*pricing.Result{&cur, &prop} {
			if side.Currency == sell.Currency {
				continue
			}
			x, ok, err := fx.rate(ctx, side.Currency, sell.Currency, cm.Month)
			if err != nil {
				return c, err
			}
			if !ok {
				return skip("revenue in %s, cost in %s: no exchange rate %s to %s for %s", sell.Currency, side.Currency, side.Currency, sell.Currency, cm.Month)
			}
			*side = convert(*side, x, sell.Currency)
		}
		mu := sell.MinorUnits
		c.acc.rev += minorOf(sell.Total, mu)
		c.acc.prev += minorOf(propSell.Total, mu)
		c.acc.cur += minorOf(cur.Total, mu)
		c.acc.prop += minorOf(prop.Total, mu)
		keys, err := lineKeys(proposed, cm.Usage, cc, lc)
		if err != nil {
			return skip("proposed cost card: %s", postage.ErrorMessage(err))
		}
		line := func(k marginKey) *simAcc {
			lk := lineKey{k.market, k.category, sell.Currency}
			l := c.lines[lk]
			if l == nil {
				l = &simAcc{}
				c.lines[lk] = l
			}
			return l
		}
		for i, u := range cm.Usage {
			line(keys[i]).quantity += u.Quantity
		}
		type side struct {
			res *pricing.Result
			r   *pricing.Rater
			add func(*simAcc, int64)
		}
		sides := []side{
			{&cur, curRated.Rater, func(a *simAcc, v int64) { a.cur += v }},
			{&prop, proposed, func(a *simAcc, v int64) { a.prop += v }},
		}
		if propSell == sell { // revenue that does not follow the cost card: split once
			sides = append(sides, side{sell, cm.Basis, func(a *simAcc, v int64) { a.rev += v; a.prev += v }})
		} else {
			sides = append(sides, side{sell, cm.Basis, func(a *simAcc, v int64) { a.rev += v }},
				side{propSell, propBasis, func(a *simAcc, v int64) { a.prev += v }})
		}
		for _, sp := range sides {
			if err := splitRated(sp.res, sp.r, cm.Usage, cc, keys, lc, func(k marginKey, v int64) { sp.add(line(k), v) }); err != nil {
				return c, fmt.Errorf("margin lines of %s %s: %w", cm.CustomerID, cm.Month, err)
			}
		}
	}
	for _, cm := range rows {
		cm.Result, cm.Usage = pricing.Result{}, nil // done with these months: keep the heap small
	}
	c.acc.quantity = c.Quantity
	mu := minorUnits(c.Currency)
	a := c.acc
	cm, pm, diff := a.margins()
	c.Revenue, c.ProposedRevenue = fromMinor(a.rev, mu), fromMinor(a.prev, mu)
	c.CurrentCost, c.ProposedCost = fromMinor(a.cur, mu), fromMinor(a.prop, mu)
	c.CurrentMargin, c.ProposedMargin, c.Difference = fromMinor(cm, mu), fromMinor(pm, mu), fromMinor(diff, mu)
	c.CurrentPct, c.ProposedPct = percent(cm, a.rev), percent(pm, a.prev)
	c.Negative = pm < 0
	c.TurnsNegative = c.Negative && cm >= 0
	return c, nil
}

func marginSimLines(m map[lineKey]*simAcc) []MarginSimLine {
	out := make([]MarginSimLine, 0, len(m))
	for k, l := range m {
		mu := minorUnits(k.currency)
		cm, pm, diff := l.margins()
		out = append(out, MarginSimLine{Market: k.market, Category: k.category, Currency: k.currency, Quantity: l.quantity,
			Revenue: fromMinor(l.rev, mu), ProposedRevenue: fromMinor(l.prev, mu), CurrentCost: fromMinor(l.cur, mu), ProposedCost: fromMinor(l.prop, mu),
			CurrentMargin: fromMinor(cm, mu), ProposedMargin: fromMinor(pm, mu), Difference: fromMinor(diff, mu),
			ProposedPct: percent(pm, l.prev), Negative: pm < 0})
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Currency != b.Currency {
			return a.Currency < b.Currency
		}
		if a.Market != b.Market {
			return a.Market < b.Market
		}
		return a.Category < b.Category
	})
	return out
}

// Table returns one row per customer as a CSV table.
func (s *MarginSimulation) Table() Table {
	t := Table{Header: []string{"customer_id", "name", "currency", "quantity", "revenue", "proposed_revenue", "current_cost", "proposed_cost", "current_margin", "proposed_margin", "difference", "current_margin_percent", "proposed_margin_percent", "negative", "turns_negative", "skipped"}}
	for _, c := range s.Customers {
		t.Rows = append(t.Rows, []string{c.CustomerID, c.Name, c.Currency, itoa(c.Quantity), c.Revenue, c.ProposedRevenue, c.CurrentCost, c.ProposedCost,
			c.CurrentMargin, c.ProposedMargin, c.Difference, percentString(c.CurrentPct), percentString(c.ProposedPct),
			strconv.FormatBool(c.Negative), strconv.FormatBool(c.TurnsNegative), c.Skipped})
	}
	return t
}
