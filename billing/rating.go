package billing

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"postage"
	"postage/pricing"
)

// Rating is the one rating pipeline: invoice runs, the month-to-date bill,
// reports and simulations all rate usage through it, so the same usage
// costs the same everywhere. It rates a group of customers' month at once
// (RateGroup: a portfolio's members share tier counts; a customer outside
// any portfolio is a group of one). For each member it resolves the rate
// card (from a bulk Prefetch, or asked one customer at a time), checks the
// card bills in the customer's currency, takes the card's version in
// effect in the month (compiled once); a cost-plus version prices over the
// cost card in effect in the month, converted with the month's exchange
// rate when the currencies differ. Members whose prices count tiers on the
// same version (a card's, or the cost card's for cost-plus members) are
// rated as one pool (pricing.Rater.RatePool), each with its own overrides;
// a lone member of its own card takes pricing.Rater.Rate. Free pricing
// types are priced at 0 whatever their category, each line is rounded once,
// usage the card cannot rate is listed row by row (Result.Unrated), and a
// member whose month cannot be rated at all says why (UnbilledNoCard,
// UnbilledCurrencyMismatch, UnbilledNoCostCard, UnbilledNoExchangeRate,
// UnbilledRatingError; callers add UnbilledUnknownCustomer).
//
// A Rating caches compiled versions, cost cards and exchange rates: the
// version of a card in effect in a month never changes once the month has
// begun (activation is for future months only), nor does the cost card or
// a recorded rate, so a Runner keeps one for its life. What is in effect
// in a month that has not begun may still be scheduled: a Rating with a
// clock (Now; a Runner's) asks it again each time. It is safe for
// concurrent use.
type Rating struct {
	Pricing Pricing
	// Portfolios, when set, says who shares tier counts in a month (the
	// callers group members with PortfoliosIn); nil: nobody does.
	Portfolios PortfolioSource
	// Now, when set, is the clock that says which months have begun: the
	// card versions and cost card in effect in later months are not
	// cached (set it on a Rating that outlives a request). Nil: every
	// month is cached for the Rating's life (a Rating of one request).
	Now func() time.Time

	mu        sync.Mutex
	compiled  map[versionKey]*pricing.Rater
	inEffect  map[cardMonth]compiledOrErr
	costCards map[pricing.Month]costCardOrErr
	rates     map[rateKey]rateOrErr
}

// NewRating returns a pipeline reading cards from p.
func NewRating(p Pricing) *Rating { return &Rating{Pricing: p} }

// begun reports whether month m has begun: what is in effect in it can no
// longer change, so it may be cached.
func (g *Rating) begun(m pricing.Month) bool {
	return g.Now == nil || !m.After(pricing.MonthOf(g.Now()))
}

type versionKey struct {
	card   string
	number int
}

type cardMonth struct {
	card  string
	month pricing.Month
}

type compiledOrErr struct {
	r   *pricing.Rater
	err error
}

// Compile returns the Rater of a version, compiling each (card, version
// number) once. Callers that rate edited drafts use a Rating of their own
// for the request.
func (g *Rating) Compile(v *pricing.Version) (*pricing.Rater, error) {
	k := versionKey{v.CardID, v.Number}
	g.mu.Lock()
	rt, ok := g.compiled[k]
	g.mu.Unlock()
	if ok {
		return rt, nil
	}
	rt, err := pricing.Compile(v)
	if err != nil {
		return nil, fmt.Errorf("rate card %s version %d: %w", v.CardID, v.Number, err)
	}
	g.mu.Lock()
	if g.compiled == nil {
		g.compiled = map[versionKey]*pricing.Rater{}
	}
	g.compiled[k] = rt
	g.mu.Unlock()
	return rt, nil
}

// InEffect returns the Rater of the card's version in effect in month
// (ENOTFOUND when none is).
func (g *Rating) InEffect(ctx context.Context, cardID string, m pricing.Month) (*pricing.Rater, error) {
	k := cardMonth{cardID, m}
	g.mu.Lock()
	res, ok := g.inEffect[k]
	g.mu.Unlock()
	if ok {
		return res.r, res.err
	}
	v, err := g.Pricing.VersionFor(ctx, cardID, m)
	var rt *pricing.Rater
	if err == nil {
		rt, err = g.Compile(v)
	}
	if err != nil && postage.ErrorCode(err) != postage.ENOTFOUND {
		return nil, err // an outage is not remembered
	}
	if !g.begun(m) {
		return rt, err // a version may still be activated from m
	}
	g.mu.Lock()
	if g.inEffect == nil {
		g.inEffect = map[cardMonth]compiledOrErr{}
	}
	g.inEffect[k] = compiledOrErr{rt, err}
	g.mu.Unlock()
	return rt, err
}

// Prefetched holds the cards and overrides of many customers read in bulk
// for one run or report: a run of 50,000 customers reads them in two
// queries instead of a few per customer; and the portfolios of the months
// read. Customers or months it lacks are asked one at a time. The zero
// value holds nothing; it is safe for concurrent use.
type Prefetched struct {
	mu         sync.RWMutex
	cards      map[pricing.Month]map[string]prefetchedCard // every customer asked about in a month
	ov         map[string]pricing.Overrides                // every customer loaded (zero: none)
	portfolios map[pricing.Month]Portfolios
}

// PortfoliosIn returns the portfolios in effect in month m: from p when
// it holds them, else read (and kept in p). Without a PortfolioSource
// nobody is in a portfolio.
func (g *Rating) PortfoliosIn(ctx context.Context, p *Prefetched, m pricing.Month) (Portfolios, error) {
	if g.Portfolios == nil {
		return Portfolios{}, nil
	}
	if p != nil {
		p.mu.RLock()
		pf, ok := p.portfolios[m]
		p.mu.RUnlock()
		if ok {
			return pf, nil
		}
	}
	pf, err := g.Portfolios.PortfoliosIn(ctx, m)
	if err != nil {
		return Portfolios{}, fmt.Errorf("portfolios of %s: %w", m, err)
	}
	if p != nil {
		p.mu.Lock()
		if p.portfolios == nil {
			p.portfolios = map[pricing.Month]Portfolios{}
		}
		p.portfolios[m] = pf
		p.mu.Unlock()
	}
	return pf, nil
}

type prefetchedCard struct {
	card pricing.RateCard
	has  bool // false: no assignment and no default card
}

// Prefetch reads the cards in month and the overrides of the customers in
// bulk, adding them to p (a new one when p is nil), when the ledger can
// (BulkPricing); otherwise p stays empty and rating asks one customer at a
// time.
func (g *Rating) Prefetch(ctx context.Context, p *Prefetched, customers []string, m pricing.Month) (*Prefetched, error) {
	if p == nil {
		p = &Prefetched{}
	}
	if _, err := g.PortfoliosIn(ctx, p, m); err != nil {
		return nil, err
	}
	bp, ok := g.Pricing.(BulkPricing)
	if !ok || len(customers) == 0 {
		return p, nil
	}
	cards, err := bp.CardsFor(ctx, customers, m)
	if err != nil {
		return nil, fmt.Errorf("read rate cards of %s: %w", m, err)
	}
	p.mu.RLock()
	var missing []string
	for _, c := range customers {
		if _, ok := p.ov[c]; !ok {
			missing = append(missing, c)
		}
	}
	p.mu.RUnlock()
	var ov map[string]pricing.Overrides
	if len(missing) > 0 {
		if ov, err = bp.OverridesFor(ctx, missing); err != nil {
			return nil, fmt.Errorf("read overrides: %w", err)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cards == nil {
		p.cards, p.ov = map[pricing.Month]map[string]prefetchedCard{}, map[string]pricing.Overrides{}
	}
	of := p.cards[m]
	if of == nil {
		of = make(map[string]prefetchedCard, len(customers))
		p.cards[m] = of
	}
	for _, c := range customers {
		card, has := cards[c]
		of[c] = prefetchedCard{card, has}
	}
	for _, c := range missing {
		p.ov[c] = ov[c]
	}
	return p, nil
}

// card returns the prefetched card of a customer in m; known is false
// when p does not know.
func (p *Prefetched) card(customerID string, m pricing.Month) (card pricing.RateCard, has, known bool) {
	if p == nil {
		return card, false, false
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	pc, ok := p.cards[m][customerID]
	return pc.card, pc.has, ok
}

func (p *Prefetched) overrides(customerID string) (pricing.Overrides, bool) {
	if p == nil {
		return pricing.Overrides{}, false
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	ov, ok := p.ov[customerID]
	return ov, ok
}

// Rated is one customer-month through the pipeline: rated, or unbilled
// with a reason.
type Rated struct {
	// Result is the rating (when Unbilled is ""); its Unrated rows are
	// usage it could not rate (each with its reason), the rest is billed.
	Result pricing.Result
	// Rater is the card version the month was rated with, and Overrides
	// the customer's overrides (simulations re-rate with them). Basis is
	// the version whose markets and categories the lines are in: Rater,
	// or for a cost-plus version the cost card's.
	Rater     *pricing.Rater
	Basis     *pricing.Rater
	Overrides pricing.Overrides
	CardID    string
	// Unbilled is why the usage is not billed at all ("" when rated: one
	// of the Unbilled* reasons); Detail says more, in one line.
	Unbilled string
	Detail   string
}

// Rate rates one customer's usage of month m alone: RateGroup of a group
// of one. A member of a portfolio is rated with its portfolio (RateGroup
// with the group Portfolios.Group names) wherever the portfolio applies.
func (g *Rating) Rate(ctx context.Context, p *Prefetched, c Customer, m pricing.Month, usage []pricing.Usage) (Rated, error) {
	h, unbilled, err := g.resolve(ctx, p, m, c, nil, nil, true)
	if err != nil || unbilled.Unbilled != "" {
		return unbilled, err
	}
	if h.sell == h.basis {
		r, err := h.basis.Rate(h.ov, usage, pricing.RateOptions{CustomerCountry: c.Country, Month: m})
		return h.rated(r, err, c.ID, m)
	}
	res, err := h.basis.RatePool([]pricing.Member{h.member(c, usage, m)})
	if err != nil {
		return h.rated(pricing.Result{}, err, c.ID, m)
	}
	return h.rated(res[0], nil, c.ID, m)
}

// RateGroup rates a group's usage of month m (see Rating): one Rated per
// member, in the group's order. An error is an outage or a bug; usage
// that cannot be rated is a Rated with its reason.
func (g *Rating) RateGroup(ctx context.Context, p *Prefetched, m pricing.Month, group []Member) ([]Rated, error) {
	if len(group) == 1 {
		r, err := g.Rate(ctx, p, group[0].Customer, m, group[0].Usage)
		if err != nil {
			return nil, err
		}
		return []Rated{r}, nil
	}
	return g.rateGroup(ctx, p, m, group, nil, true, nil)
}

// RateGroupOn rates a group's usage of month m as if every member had the
// given card version (a simulation's proposed card): checked against each
// member's currency, cost-plus over the cost card in effect, tiers pooled
// as RateGroup pools them, with the members' overrides when keepOverrides.
func (g *Rating) RateGroupOn(ctx context.Context, p *Prefetched, m pricing.Month, group []Member, card *pricing.Rater, keepOverrides bool) ([]Rated, error) {
	return g.rateGroup(ctx, p, m, group, card, keepOverrides, nil)
}

// RateGroupAtCostVersion rates a group's usage of month m as RateGroup
// does (each member's own card, overrides and currency), as if cost — a
// version of a cost card not in effect in m, such as a margin
// simulation's proposed upstream prices — were in effect: a cost-plus
// member prices over cost instead of the cost card in effect in m
// (converted with the month's exchange rate when the currencies differ),
// and a member whose own card is cost's card is rated with cost instead of
// the card's version in effect. Every other member is rated exactly as
// RateGroup rates it.
func (g *Rating) RateGroupAtCostVersion(ctx context.Context, p *Prefetched, m pricing.Month, group []Member, cost *pricing.Rater) ([]Rated, error) {
	if cost == nil {
		return nil, postage.Errorf(postage.EINTERNAL, "RateGroupAtCostVersion without a cost card version")
	}
	return g.rateGroup(ctx, p, m, group, nil, true, cost)
}

// priced is how one member of a group is priced.
type priced struct {
	sell, basis *pricing.Rater
	fx          *pricing.ExchangeRate
	ov          pricing.Overrides
	card        string
}

func (h *priced) member(c Customer, usage []pricing.Usage, m pricing.Month) pricing.Member {
	return pricing.Member{Rater: h.sell, FX: h.fx, Overrides: h.ov, Usage: usage, Opts: pricing.RateOptions{CustomerCountry: c.Country, Month: m}}
}

// rated is the pipeline's answer for a member priced h: its result, or
// the rating's refusal (rating_error) or failure.
func (h *priced) rated(res pricing.Result, err error, customerID string, m pricing.Month) (Rated, error) {
	switch {
	case postage.ErrorCode(err) == postage.EINVALID:
		return Rated{Rater: h.sell, Basis: h.basis, Overrides: h.ov, CardID: h.card, Unbilled: UnbilledRatingError, Detail: postage.ErrorMessage(err)}, nil
	case err != nil:
		return Rated{}, fmt.Errorf("rate %s %s: %w", customerID, m, err)
	}
	return Rated{Result: res, Rater: h.sell, Basis: h.basis, Overrides: h.ov, CardID: h.card}, nil
}

// resolve finds how customer c is priced in month m: its card (or the
// proposed one) and version, overrides, and for cost-plus the cost card and
// exchange rate. A Rated with Unbilled set says why it cannot be.
//
// cost, when set, is a cost card version to price as if it were in
// effect in m (RateGroupAtCostVersion): cost-plus prices over it, and it
// replaces the version in effect of its own card.
func (g *Rating) resolve(ctx context.Context, p *Prefetched, m pricing.Month, c Customer, proposed, cost *pricing.Rater, keepOv bool) (priced, Rated, error) {
	var rt *pricing.Rater
	var cardID, cardCurrency string
	if proposed != nil {
		v := proposed.Version()
		rt, cardID, cardCurrency = proposed, v.CardID, v.Currency
	} else {
		card, has, err := g.cardOf(ctx, p, c.ID, m)
		if err != nil {
			return priced{}, Rated{}, err
		}
		if !has {
			return priced{}, Rated{Unbilled: UnbilledNoCard, Detail: "no rate card assigned and no default card"}, nil
		}
		cardID, cardCurrency = card.ID, card.Currency
		if cost != nil && cost.Version().CardID == card.ID {
			rt = cost
		} else if c.Currency == "" || card.Currency == c.Currency {
			rt, err = g.InEffect(ctx, card.ID, m)
			if postage.ErrorCode(err) == postage.ENOTFOUND {
				return priced{}, Rated{CardID: card.ID, Unbilled: UnbilledNoCard, Detail: fmt.Sprintf("rate card %s has no version in effect in %s", card.ID, m)}, nil
			} else if err != nil {
				return priced{}, Rated{}, err
			}
		}
	}
	if c.Currency != "" && cardCurrency != c.Currency {
		return priced{}, Rated{CardID: cardID, Unbilled: UnbilledCurrencyMismatch,
			Detail: fmt.Sprintf("the customer is billed in %s but its rate card %s is in %s: assign it a card in %s", c.Currency, cardID, cardCurrency, c.Currency)}, nil
	}
	var ov pricing.Overrides
	if keepOv {
		var err error
		if ov, err = g.overridesOf(ctx, p, c.ID); err != nil {
			return priced{}, Rated{}, err
		}
	}
	h := priced{sell: rt, basis: rt, ov: ov, card: cardID}
	if rt.CostPlus() == nil {
		return h, Rated{}, nil
	}
	var costCard pricing.RateCard
	var costRt *pricing.Rater
	var err error
	if cost != nil {
		v := cost.Version()
		costCard, costRt = pricing.RateCard{ID: v.CardID, Currency: v.Currency}, cost
	} else {
		costCard, costRt, err = g.CostCard(ctx, m)
	}
	if postage.ErrorCode(err) == postage.ENOTFOUND {
		return h, Rated{Rater: rt, Overrides: ov, CardID: cardID, Unbilled: UnbilledNoCostCard,
			Detail: fmt.Sprintf("rate card %s is cost-plus, but %s", cardID, postage.ErrorMessage(err))}, nil
	} else if err != nil {
		return h, Rated{}, err
	}
	h.basis = costRt
	if costCard.Currency != cardCurrency {
		x, err := g.exchangeRate(ctx, costCard.Currency, cardCurrency, m)
		if postage.ErrorCode(err) == postage.ENOTFOUND {
			return h, Rated{Rater: rt, Overrides: ov, CardID: cardID, Unbilled: UnbilledNoExchangeRate,
				Detail: fmt.Sprintf("rate card %s is cost-plus in %s over the cost card %s in %s, and no %s to %s rate is recorded for %s", cardID, cardCurrency, costCard.ID, costCard.Currency, costCard.Currency, cardCurrency, m)}, nil
		} else if err != nil {
			return h, Rated{}, err
		}
		h.fx = &x
	}
	return h, Rated{}, nil
}

func (g *Rating) rateGroup(ctx context.Context, p *Prefetched, m pricing.Month, group []Member, proposed *pricing.Rater, keepOv bool, cost *pricing.Rater) ([]Rated, error) {
	out := make([]Rated, len(group))
	how := make([]priced, len(group))
	pools := map[*pricing.Rater][]int{}
	var poolOrder []*pricing.Rater
	for i := range group {
		h, unbilled, err := g.resolve(ctx, p, m, group[i].Customer, proposed, cost, keepOv)
		if err != nil {
			return nil, err
		}
		if unbilled.Unbilled != "" {
			out[i] = unbilled
			continue
		}
		how[i] = h
		if _, ok := pools[h.basis]; !ok {
			poolOrder = append(poolOrder, h.basis)
		}
		pools[h.basis] = append(pools[h.basis], i)
	}
	for _, basis := range poolOrder {
		idx := pools[basis]
		slices.SortStableFunc(idx, func(a, b int) int { return strings.Compare(group[a].Customer.ID, group[b].Customer.ID) })
		var res []pricing.Result
		var err error
		if i := idx[0]; len(idx) == 1 && how[i].sell == basis {
			var r pricing.Result
			r, err = basis.Rate(how[i].ov, group[i].Usage, pricing.RateOptions{CustomerCountry: group[i].Customer.Country, Month: m})
			res = []pricing.Result{r}
		} else {
			members := make([]pricing.Member, len(idx))
			for k, i := range idx {
				members[k] = how[i].member(group[i].Customer, group[i].Usage, m)
			}
			res, err = basis.RatePool(members)
		}
		if err != nil && postage.ErrorCode(err) != postage.EINVALID {
			return nil, fmt.Errorf("rate %s: %w", m, err)
		}
		for k, i := range idx {
			var r pricing.Result
			if err == nil {
				r = res[k]
			}
			rd, ferr := how[i].rated(r, err, group[i].Customer.ID, m)
			if ferr != nil {
				return nil, ferr
			}
			out[i] = rd
		}
	}
	return out, nil
}

// cardOf returns a customer's card in m (has false: none).
func (g *Rating) cardOf(ctx context.Context, p *Prefetched, customerID string, m pricing.Month) (pricing.RateCard, bool, error) {
	card, has, known := p.card(customerID, m)
	if known {
		return card, has, nil
	}
	card, err := g.Pricing.CardFor(ctx, customerID, m)
	if postage.ErrorCode(err) == postage.ENOTFOUND {
		return card, false, nil
	} else if err != nil {
		return card, false, fmt.Errorf("rate card of %s in %s: %w", customerID, m, err)
	}
	return card, true, nil
}

func (g *Rating) overridesOf(ctx context.Context, p *Prefetched, customerID string) (pricing.Overrides, error) {
	if ov, ok := p.overrides(customerID); ok {
		return ov, nil
	}
	ov, err := g.Pricing.Overrides(ctx, customerID)
	if err != nil && postage.ErrorCode(err) != postage.ENOTFOUND {
		return ov, fmt.Errorf("overrides of %s: %w", customerID, err)
	}
	return ov, nil
}

type rateKey struct {
	from, to string
	month    pricing.Month
}

type rateOrErr struct {
	x   pricing.ExchangeRate
	err error
}

// exchangeRate returns the (from, to) rate of m (ENOTFOUND when none is
// recorded). Recorded rates never change, so found ones are kept; a
// missing one is asked again next time (it may be recorded meanwhile).
func (g *Rating) exchangeRate(ctx context.Context, from, to string, m pricing.Month) (pricing.ExchangeRate, error) {
	k := rateKey{from, to, m}
	g.mu.Lock()
	r, ok := g.rates[k]
	g.mu.Unlock()
	if ok {
		return r.x, r.err
	}
	x, err := g.Pricing.ExchangeRateFor(ctx, from, to, m)
	if err != nil {
		if postage.ErrorCode(err) == postage.ENOTFOUND {
			return x, err
		}
		return x, fmt.Errorf("exchange rate %s to %s of %s: %w", from, to, m, err)
	}
	g.mu.Lock()
	if g.rates == nil {
		g.rates = map[rateKey]rateOrErr{}
	}
	g.rates[k] = rateOrErr{x: x}
	g.mu.Unlock()
	return x, nil
}
