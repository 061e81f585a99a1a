package reports

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/shopspring/decimal"

	"postage"
	"postage/billing"
	"postage/pricing"
)

// SimulationRequest asks what the customers' usage of the months From..To
// would have cost under a proposed card.
type SimulationRequest struct {
	CardID string `json:"card_id"`
	// Version is a version number of the card (a draft is allowed); 0 uses
	// the card's active version in effect in each month.
	Version   int           `json:"version,omitempty"`
	From      pricing.Month `json:"from"`
	To        pricing.Month `json:"to"`
	Customers []string      `json:"customers,omitempty"`
	// KeepOverrides applies each customer's overrides under the proposed
	// card too (default true).
	KeepOverrides *bool `json:"keep_overrides,omitempty"`
	// Breakdown adds each customer's breakdown by market and category.
	Breakdown bool `json:"breakdown,omitempty"`
}

// Validate checks the request on its own.
func (r SimulationRequest) Validate() error {
	var errs []error
	if r.CardID == "" {
		errs = append(errs, postage.Errorf(postage.EINVALID, "card_id is required"))
	}
	if r.Version < 0 {
		errs = append(errs, postage.Errorf(postage.EINVALID, "version %d: want a version number, or 0 for the version in effect", r.Version))
	}
	return errors.Join(append(errs, validateScope(r.From, r.To, r.Customers))...)
}

// SimLine is the current and proposed revenue of one (market, category)
// of the proposed card.
type SimLine struct {
	Market     string           `json:"market"`
	Category   string           `json:"category"`
	Currency   string           `json:"currency"`
	Quantity   int64            `json:"quantity"`
	Current    string           `json:"current"`
	Proposed   string           `json:"proposed"`
	Difference string           `json:"difference"`
	Percent    *decimal.Decimal `json:"percent"`
}

// SimCustomer is one customer's simulation.
type SimCustomer struct {
	CustomerID   string           `json:"customer_id"`
	Name         string           `json:"name"`
	Currency     string           `json:"currency"`
	CurrentCards []string         `json:"current_cards"`
	Quantity     int64            `json:"quantity"`
	Current      string           `json:"current"`
	Proposed     string           `json:"proposed"`
	Difference   string           `json:"difference"`
	Percent      *decimal.Decimal `json:"percent"`
	// Skipped says why the customer is left out of the totals ("" when not).
	Skipped   string    `json:"skipped"`
	Breakdown []SimLine `json:"breakdown,omitempty"`

	cur, prop int64
	lines     map[lineKey]*lineAcc
}

// SimTotal sums a simulation in one currency.
type SimTotal struct {
	Currency   string           `json:"currency"`
	Customers  int              `json:"customers"`
	Quantity   int64            `json:"quantity"`
	Current    string           `json:"current"`
	Proposed   string           `json:"proposed"`
	Difference string           `json:"difference"`
	Percent    *decimal.Decimal `json:"percent"`
}

// Simulation is the answer to a SimulationRequest.
type Simulation struct {
	CardID    string          `json:"card_id"`
	Versions  []int           `json:"versions"`
	From      pricing.Month   `json:"from"`
	To        pricing.Month   `json:"to"`
	Months    []pricing.Month `json:"months"`
	Totals    []SimTotal      `json:"totals"`
	Breakdown []SimLine       `json:"breakdown"`
	Customers []SimCustomer   `json:"customers"`
	ElapsedMS int64           `json:"elapsed_ms"`
}

type lineKey struct{ market, category, currency string }

type lineAcc struct {
	quantity  int64
	cur, prop int64
}

func (a *lineAcc) add(b *lineAcc) {
	a.quantity += b.quantity
	a.cur += b.cur
	a.prop += b.prop
}

// lookKey caches which line a usage row falls in under a Rater.
type lookKey struct {
	r                 *pricing.Rater
	country, category string
	intl              bool
}

type lookVal struct{ market, category string }

type lookCache map[lookKey]lookVal

func (lc lookCache) line(r *pricing.Rater, u pricing.Usage, customerCountry string) (lookVal, error) {
	intl := customerCountry != "" && customerCountry != u.Country
	k := lookKey{r, u.Country, u.Category, intl}
	if v, ok := lc[k]; ok {
		return v, nil
	}
	cc := ""
	if intl {
		cc = customerCountry
	}
	pi, err := r.Lookup(u.Country, u.Category, cc)
	if err != nil {
		return lookVal{}, err
	}
	v := lookVal{pi.Market, pi.Category}
	lc[k] = v
	return v, nil
}

// Simulate re-rates the real usage of the months under the proposed card
// and compares it with what each customer's own card charges. Both sides
// rate the same exact monthly aggregates (one query per month); every card
// version involved is compiled once.
func (s *Service) Simulate(ctx context.Context, req SimulationRequest) (*Simulation, error) {
	start := time.Now()
	if err := req.Validate(); err != nil {
		return nil, err
	}
	if cur := pricing.MonthOf(s.now()); req.To.After(cur) {
		return nil, postage.Errorf(postage.EINVALID, "to %s is in the future: simulations re-rate past usage", req.To)
	}
	months, _ := MonthRange(req.From, req.To)
	if len(req.Customers) == 0 {
		req.Customers = nil // none named: every customer
	}
	keepOv := req.KeepOverrides == nil || *req.KeepOverrides
	if _, err := s.Cards.GetCard(ctx, req.CardID); err != nil {
		if postage.ErrorCode(err) == postage.ENOTFOUND {
			return nil, postage.Errorf(postage.EINVALID, "card_id: no rate card %q", req.CardID)
		}
		return nil, err
	}
	// One pipeline for the request: drafts of the proposed card may be
	// edited between requests, so its compiled versions are not kept.
	rating := s.newRating()
	proposed := make(map[pricing.Month]*pricing.Rater, len(months))
	var versions []int
	for _, m := range months {
		var rt *pricing.Rater
		var err error
		if req.Version > 0 {
			var v *pricing.Version
			if v, err = s.Cards.GetVersion(ctx, req.CardID, req.Version); err == nil {
				rt, err = rating.Compile(v)
			}
		} else {
			rt, err = rating.InEffect(ctx, req.CardID, m)
		}
		if err != nil {
			if postage.ErrorCode(err) == postage.ENOTFOUND {
				if req.Version > 0 {
					return nil, postage.Errorf(postage.EINVALID, "version: card %s has no version %d", req.CardID, req.Version)
				}
				return nil, postage.Errorf(postage.EINVALID, "card %s has no active version in effect in %s: name a version", req.CardID, m)
			}
			return nil, err
		}
		proposed[m] = rt
		if v := rt.Version().Number; len(versions) == 0 || versions[len(versions)-1] != v {
			versions = append(versions, v)
		}
	}

	b, err := s.loadBook(ctx, months, req.Customers, rating, true)
	if err != nil {
		return nil, err
	}
	if err := unknownCustomers(req.Customers, b.customers); err != nil {
		return nil, err
	}
	// One task per customer: its rows are contiguous in b.rows.
	var starts []int
	for i, cm := range b.rows {
		if (i == 0 || b.rows[i-1].CustomerID != cm.CustomerID) && !cm.Hidden {
			starts = append(starts, i)
		}
	}
	out := make([]SimCustomer, len(starts))
	errs := make([]error, len(starts))
	caches := make(chan lookCache, s.workers())
	for range s.workers() {
		caches <- lookCache{}
	}
	var done atomic.Int64
	parallel(len(starts), s.workers(), func(t int) {
		lc := <-caches
		defer func() { caches <- lc }()
		lo, hi := starts[t], starts[t]+1
		for hi < len(b.rows) && b.rows[hi].CustomerID == b.rows[lo].CustomerID {
			hi++
		}
		out[t], errs[t] = s.simulateCustomer(ctx, b, b.rows[lo:hi], proposed, keepOv, lc)
		if s.Progress != nil {
			if n := done.Add(1); n%256 == 0 || int(n) == len(starts) {
				s.Progress("simulating", int(n), len(starts))
			}
		}
	})

	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	sim := &Simulation{CardID: req.CardID, Versions: versions, From: req.From, To: req.To, Months: months,
		Totals: []SimTotal{}, Breakdown: []SimLine{}, Customers: out}
	type tacc struct {
		customers int
		quantity  int64
		cur, prop int64
	}
	tot := map[string]*tacc{}
	book := map[lineKey]*lineAcc{}
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
		a.quantity += c.Quantity
		a.cur += c.cur
		a.prop += c.prop
		for k, l := range c.lines {
			bl := book[k]
			if bl == nil {
				bl = &lineAcc{}
				book[k] = bl
			}
			bl.add(l)
		}
		if req.Breakdown {
			c.Breakdown = simLines(c.lines)
		}
		c.lines = nil
	}
	for cur, a := range tot {
		mu := minorUnits(cur)
		sim.Totals = append(sim.Totals, SimTotal{Currency: cur, Customers: a.customers, Quantity: a.quantity,
			Current: fromMinor(a.cur, mu), Proposed: fromMinor(a.prop, mu), Difference: fromMinor(a.prop-a.cur, mu),
			Percent: percent(a.prop-a.cur, a.cur)})
	}
	sort.Slice(sim.Totals, func(i, j int) bool { return sim.Totals[i].Currency < sim.Totals[j].Currency })
	sim.Breakdown = simLines(book)
	sort.SliceStable(sim.Customers, func(i, j int) bool {
		a, b := &sim.Customers[i], &sim.Customers[j]
		if (a.Skipped == "") != (b.Skipped == "") {
			return a.Skipped == ""
		}
		if da, db := a.prop-a.cur, b.prop-b.cur; da != db {
			return da > db
		}
		return a.CustomerID < b.CustomerID
	})
	sim.ElapsedMS = time.Since(start).Milliseconds()
	return sim, nil
}

// simulateCustomer rates one customer's months under the proposed card.
// An error is an outage; a customer that cannot be simulated is skipped
// with the reason.
func (s *Service) simulateCustomer(ctx context.Context, b *book, rows []*customerMonth, proposed map[pricing.Month]*pricing.Rater, keepOv bool, lc lookCache) (SimCustomer, error) {
	first := rows[0]
	c := SimCustomer{CustomerID: first.CustomerID, Name: first.Customer.Name, CurrentCards: []string{}, lines: map[lineKey]*lineAcc{}}
	skip := func(format string, args ...any) (SimCustomer, error) {
		c.Skipped = fmt.Sprintf(format, args...)
		c.cur, c.prop, c.lines = 0, 0, nil
		c.Current, c.Proposed, c.Difference = "", "", ""
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
		cur := &cm.Result
		if n := len(c.CurrentCards); n == 0 || c.CurrentCards[n-1] != cm.CardID {
			c.CurrentCards = append(c.CurrentCards, cm.CardID)
		}
		pr := proposed[cm.Month]
		// The proposed side through the same pipeline: the portfolio's
		// members pooled on the proposed card too, cost-plus over the cost
		// card in effect.
		prop, pooled, err := b.rateInGroup(ctx, cm, "proposed", func(x *customerMonth) []pricing.Usage { return x.Usage },
			func(group []billing.Member) ([]billing.Rated, error) {
				return b.rating.RateGroupOn(ctx, b.pre, cm.Month, group, pr, keepOv)
			})
		if !pooled && err == nil {
			var out []billing.Rated
			out, err = b.rating.RateGroupOn(ctx, b.pre, cm.Month, []billing.Member{{Customer: cm.Customer, Usage: cm.Usage}}, pr, keepOv)
			if err == nil {
				prop = out[0]
			}
		}
		if err != nil {
			return c, err
		}
		if prop.Unbilled == billing.UnbilledCurrencyMismatch {
			return skip("currency %s differs from the proposed card's %s", cur.Currency, pr.Version().Currency)
		} else if prop.Unbilled != "" {
			return skip("proposed card: %s: %s", prop.Unbilled, prop.Detail)
		}
		pres := prop.Result
		if pres.Currency != cur.Currency {
			return skip("currency %s differs from the proposed card's %s", cur.Currency, pres.Currency)
		}
		mu := cur.MinorUnits
		c.cur += minorOf(cur.Total, mu)
		c.prop += minorOf(pres.Total, mu)

		// Breakdown: each usage row's key under the proposed card, and its
		// share of the current line it fell in.
		pkeys := make([]lineKey, len(cm.Usage))
		ckeys := make([]lookVal, len(cm.Usage))
		for i, u := range cm.Usage {
			pv, err := lc.line(prop.Basis, u, cc)
			if err != nil {
				pv = lookVal{"", u.Category} // the proposed card cannot rate it: a breakdown row of its own (no market)
			}
			pkeys[i] = lineKey{pv.market, pv.category, cur.Currency}
			if ckeys[i], err = lc.line(cm.Basis, u, cc); err != nil {
				ckeys[i] = lookVal{} // the current card cannot rate it: on no current line (markets are never "")
			}
			l := c.lines[pkeys[i]]
			if l == nil {
				l = &lineAcc{}
				c.lines[pkeys[i]] = l
			}
			l.quantity += u.Quantity
		}
		// Split each current line over its rows (a customer-month has few
		// rows, so a scan beats a map).
		var idx []int
		var w []int64
		for _, ln := range cur.Lines {
			idx, w = idx[:0], w[:0]
			for i, k := range ckeys {
				if k.market == ln.Market && k.category == ln.Category {
					idx = append(idx, i)
					w = append(w, cm.Usage[i].Quantity)
				}
			}
			if len(idx) == 0 {
				continue
			}
			amount := minorOf(ln.Amount, mu)
			if len(idx) == 1 {
				c.lines[pkeys[idx[0]]].cur += amount
				continue
			}
			for j, part := range allocate(amount, w) {
				c.lines[pkeys[idx[j]]].cur += part
			}
		}
		for _, ln := range pres.Lines {
			k := lineKey{ln.Market, ln.Category, cur.Currency}
			if l := c.lines[k]; l != nil {
				l.prop += minorOf(ln.Amount, mu)
			}
		}
		cm.Result, cm.Usage = pricing.Result{}, nil // done with this month: keep the heap small
	}
	mu := minorUnits(c.Currency)
	c.Current, c.Proposed, c.Difference = fromMinor(c.cur, mu), fromMinor(c.prop, mu), fromMinor(c.prop-c.cur, mu)
	c.Percent = percent(c.prop-c.cur, c.cur)
	return c, nil
}

func simLines(m map[lineKey]*lineAcc) []SimLine {
	out := make([]SimLine, 0, len(m))
	for k, l := range m {
		mu := minorUnits(k.currency)
		out = append(out, SimLine{Market: k.market, Category: k.category, Currency: k.currency, Quantity: l.quantity,
			Current: fromMinor(l.cur, mu), Proposed: fromMinor(l.prop, mu), Difference: fromMinor(l.prop-l.cur, mu),
			Percent: percent(l.prop-l.cur, l.cur)})
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
func (s *Simulation) Table() Table {
	t := Table{Header: []string{"customer_id", "name", "currency", "quantity", "current", "proposed", "difference", "percent", "skipped"}}
	for _, c := range s.Customers {
		t.Rows = append(t.Rows, []string{c.CustomerID, c.Name, c.Currency, strconv.FormatInt(c.Quantity, 10), c.Current, c.Proposed, c.Difference, percentString(c.Percent), c.Skipped})
	}
	return t
}

// BreakdownTable returns the book-level breakdown as a CSV table.
func (s *Simulation) BreakdownTable() Table {
	t := Table{Header: []string{"market", "category", "currency", "quantity", "current", "proposed", "difference", "percent"}}
	for _, l := range s.Breakdown {
		t.Rows = append(t.Rows, []string{l.Market, l.Category, l.Currency, strconv.FormatInt(l.Quantity, 10), l.Current, l.Proposed, l.Difference, percentString(l.Percent)})
	}
	return t
}

// unknownCustomers is the error for named customers that are not in the
// ledger (nil when every one is): a simulation of an id that is no
// customer would answer an empty book, as if it had no usage.
func unknownCustomers(named []string, known map[string]billing.Customer) error {
	var missing []string
	for _, id := range named {
		if _, ok := known[id]; !ok {
			missing = append(missing, strconv.Quote(id))
		}
	}
	switch {
	case len(missing) == 0:
		return nil
	case len(missing) > 10:
		missing = append(missing[:10], fmt.Sprintf("and %d more", len(missing)-10))
	}
	return postage.Errorf(postage.EINVALID, "customers: no such customer %s", strings.Join(missing, ", "))
}

// validateScope checks what a simulation covers: a range of months, and
// at most 100,000 named customers (none: every customer with usage).
func validateScope(from, to pricing.Month, customers []string) error {
	var errs []error
	if _, err := MonthRange(from, to); err != nil {
		errs = append(errs, err)
	}
	if len(customers) > 100_000 {
		errs = append(errs, postage.Errorf(postage.EINVALID, "at most 100000 customers, please (or none for all)"))
	}
	for i, c := range customers {
		if c == "" {
			errs = append(errs, postage.Errorf(postage.EINVALID, "customers[%d] is empty", i))
			break
		}
	}
	return errors.Join(errs...)
}
