package billing

import (
	"context"
	"fmt"
	"sync"

	"postage"
	"postage/pricing"
)

// Rating is the one rating pipeline: invoice runs, the month-to-date bill,
// reports and simulations all rate usage through it, so the same usage
// costs the same everywhere. For one customer-month it resolves the
// customer's rate card (from a bulk Prefetch, or asked one customer at a
// time), checks the card bills in the customer's currency, takes the card's
// version in effect in the month (compiled once), applies the customer's
// overrides, rates (pricing.Rater.Rate: usage of a free pricing type at 0
// whatever its category, one rounding per line), and says why usage it
// cannot rate is unbilled (UnbilledNoCard, UnbilledCurrencyMismatch,
// UnbilledRatingError; callers add UnbilledUnknownCustomer).
//
// A Rating caches compiled versions: the version of a card in effect in a
// month never changes once the month has begun (activation is for future
// months only), so a Runner keeps one for its life. It is safe for
// concurrent use.
type Rating struct {
	Pricing Pricing

	mu        sync.Mutex
	compiled  map[versionKey]*pricing.Rater
	inEffect  map[cardMonth]compiledOrErr
	costCards map[pricing.Month]costCardOrErr
}

// NewRating returns a pipeline reading cards from p.
func NewRating(p Pricing) *Rating { return &Rating{Pricing: p} }

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
// queries instead of a few per customer. Customers or months it lacks are
// asked one at a time. The zero value holds nothing; it is safe for
// concurrent use.
type Prefetched struct {
	mu    sync.RWMutex
	cards map[pricing.Month]map[string]prefetchedCard // every customer asked about in a month
	ov    map[string]pricing.Overrides                // every customer loaded (zero: none)
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
	// Result is the rating (when Unbilled is "").
	Result pricing.Result
	// Rater is the card version the month was rated with, and Overrides
	// the customer's overrides (simulations re-rate with them).
	Rater     *pricing.Rater
	Overrides pricing.Overrides
	CardID    string
	// Unbilled is why the usage is not billed ("" when rated: one of the
	// Unbilled* reasons); Detail says more, in one line.
	Unbilled string
	Detail   string
}

// Rate rates customer c's usage of month m (see Rating). An error is an
// outage or a bug; usage that cannot be rated is a Rated with its reason.
func (g *Rating) Rate(ctx context.Context, p *Prefetched, c Customer, m pricing.Month, usage []pricing.Usage) (Rated, error) {
	card, has, known := p.card(c.ID, m)
	if !known {
		var err error
		card, err = g.Pricing.CardFor(ctx, c.ID, m)
		if postage.ErrorCode(err) == postage.ENOTFOUND {
			has = false
		} else if err != nil {
			return Rated{}, fmt.Errorf("rate card of %s in %s: %w", c.ID, m, err)
		} else {
			has = true
		}
	}
	if !has {
		return Rated{Unbilled: UnbilledNoCard, Detail: "no rate card assigned and no default card"}, nil
	}
	if c.Currency != "" && card.Currency != c.Currency {
		return Rated{CardID: card.ID, Unbilled: UnbilledCurrencyMismatch,
			Detail: fmt.Sprintf("the customer is billed in %s but its rate card %s is in %s: assign it a card in %s", c.Currency, card.ID, card.Currency, c.Currency)}, nil
	}
	rt, err := g.InEffect(ctx, card.ID, m)
	if postage.ErrorCode(err) == postage.ENOTFOUND {
		return Rated{CardID: card.ID, Unbilled: UnbilledNoCard, Detail: fmt.Sprintf("rate card %s has no version in effect in %s", card.ID, m)}, nil
	} else if err != nil {
		return Rated{}, err
	}
	ov, ok := p.overrides(c.ID)
	if !ok {
		if ov, err = g.Pricing.Overrides(ctx, c.ID); err != nil && postage.ErrorCode(err) != postage.ENOTFOUND {
			return Rated{}, fmt.Errorf("overrides of %s: %w", c.ID, err)
		}
	}
	res, err := rt.Rate(ov, usage, pricing.RateOptions{CustomerCountry: c.Country, Month: m})
	if postage.ErrorCode(err) == postage.EINVALID {
		return Rated{Rater: rt, Overrides: ov, CardID: card.ID, Unbilled: UnbilledRatingError, Detail: postage.ErrorMessage(err)}, nil
	} else if err != nil {
		return Rated{}, fmt.Errorf("rate %s %s: %w", c.ID, m, err)
	}
	return Rated{Result: res, Rater: rt, Overrides: ov, CardID: card.ID}, nil
}
