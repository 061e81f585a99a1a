package reports

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/shopspring/decimal"

	"postage"
	"postage/billing"
	"postage/pricing"
)

// Cost: margin reports and margin simulations read what usage costs
// upstream through billing's rating pipeline (Rating.CostCard,
// Rating.RateAtCost): the cost card in effect in each month (pricing's
// schedule, `postage costcards`), its tiers counted per portfolio as the
// upstream counts them, and the month's exchange rate when a customer is
// billed in another currency than the cost card's.

// costCardIn returns the Rater of the cost card in effect in month m. No
// cost card in effect is the caller's mistake (EINVALID), naming the month.
func costCardIn(ctx context.Context, rating *billing.Rating, m pricing.Month) (*pricing.Rater, error) {
	_, rt, err := rating.CostCard(ctx, m)
	if postage.ErrorCode(err) == postage.ENOTFOUND {
		return nil, postage.Errorf(postage.EINVALID, "no cost card in effect in %s (%s): schedule one with POST /api/v1/cost-cards or `postage costcards set`", m, postage.ErrorMessage(err))
	}
	return rt, err
}

// rateAtCost rates cm's usage (as usage gives it: to date or projected)
// at the cost card in effect in its month, pooled with the other members
// of its portfolio the book holds (kind names the side, so each
// portfolio-month is rated once per side).
func (b *book) rateAtCost(ctx context.Context, cm *customerMonth, kind string, usage func(*customerMonth) []pricing.Usage) (billing.Rated, error) {
	r, pooled, err := b.rateInGroup(ctx, cm, kind, usage, func(group []billing.Member) ([]billing.Rated, error) {
		return b.rating.RateAtCost(ctx, cm.Month, group)
	})
	if pooled || err != nil {
		return r, err
	}
	out, err := b.rating.RateAtCost(ctx, cm.Month, []billing.Member{{Customer: cm.Customer, Usage: usage(cm)}})
	if err != nil {
		return billing.Rated{}, err
	}
	return out[0], nil
}

// rateOn rates cm's usage on card version rt (a proposed cost card
// version) without overrides, pooled with its portfolio's members like
// RateAtCost pools them (members in customer-id order).
func (b *book) rateOn(ctx context.Context, cm *customerMonth, kind string, rt *pricing.Rater) (billing.Rated, error) {
	pool := func(group []billing.Member) ([]billing.Rated, error) {
		order := make([]int, len(group))
		for i := range order {
			order[i] = i
		}
		slices.SortStableFunc(order, func(a, c int) int { return strings.Compare(group[a].Customer.ID, group[c].Customer.ID) })
		members := make([]pricing.Member, len(group))
		for k, i := range order {
			members[k] = pricing.Member{Usage: group[i].Usage, Opts: pricing.RateOptions{CustomerCountry: group[i].Customer.Country, Month: cm.Month}}
		}
		res, err := rt.RatePool(members)
		if err != nil {
			return nil, fmt.Errorf("rate %s on %s version %d: %w", cm.Month, rt.Version().CardID, rt.Version().Number, err)
		}
		out := make([]billing.Rated, len(group))
		for k, i := range order {
			out[i] = billing.Rated{Result: res[k], Rater: rt, Basis: rt, CardID: rt.Version().CardID}
		}
		return out, nil
	}
	r, pooled, err := b.rateInGroup(ctx, cm, kind, func(x *customerMonth) []pricing.Usage { return x.Usage }, pool)
	if pooled || err != nil {
		return r, err
	}
	out, err := pool([]billing.Member{{Customer: cm.Customer, Usage: cm.Usage}})
	if err != nil {
		return billing.Rated{}, err
	}
	return out[0], nil
}

// rateAtCostVersion rates cm with the customer's own card through
// billing's pipeline as if cost (a proposed cost card version) were in
// effect in its month (billing.Rating.RateGroupAtCostVersion): what a
// cost-plus customer, or one on cost's own card, would be billed once the
// version applies. A portfolio's members are rated together (kind names
// the side). A lone customer whose price does not depend on the cost card
// is not re-rated: changed is false and its billed rating stands.
func (b *book) rateAtCostVersion(ctx context.Context, cm *customerMonth, kind string, cost *pricing.Rater) (r billing.Rated, changed bool, err error) {
	r, pooled, err := b.rateInGroup(ctx, cm, kind, func(x *customerMonth) []pricing.Usage { return x.Usage },
		func(group []billing.Member) ([]billing.Rated, error) {
			return b.rating.RateGroupAtCostVersion(ctx, b.pre, cm.Month, group, cost)
		})
	if err != nil {
		return billing.Rated{}, false, fmt.Errorf("rate %s %s at %s version %d: %w", cm.CustomerID, cm.Month, cost.Version().CardID, cost.Version().Number, err)
	}
	if pooled {
		return r, true, nil
	}
	if cm.Rater.CostPlus() == nil && cm.CardID != cost.Version().CardID {
		return billing.Rated{}, false, nil
	}
	out, err := b.rating.RateGroupAtCostVersion(ctx, b.pre, cm.Month, []billing.Member{{Customer: cm.Customer, Usage: cm.Usage}}, cost)
	if err != nil {
		return billing.Rated{}, false, fmt.Errorf("rate %s %s at %s version %d: %w", cm.CustomerID, cm.Month, cost.Version().CardID, cost.Version().Number, err)
	}
	return out[0], true, nil
}

// costProblem says why a cost rating cannot be compared with revenue (""
// when it can): the month is not rated at cost, or some rows are not.
func costProblem(r billing.Rated) string {
	if r.Unbilled != "" {
		return r.Unbilled + ": " + r.Detail
	}
	if len(r.Result.Unrated) == 0 {
		return ""
	}
	var cats []string
	for _, u := range r.Result.Unrated {
		if !slices.Contains(cats, u.Category) {
			cats = append(cats, u.Category)
		}
	}
	return fmt.Sprintf("the cost card %s cannot rate category %s", r.CardID, strings.Join(cats, ", "))
}

// fxRates looks up, and keeps, the exchange rates of a request.
type fxRates struct {
	cards Cards
	mu    chan struct{}
	got   map[fxKey]fxRate
}

type fxKey struct {
	from, to string
	m        pricing.Month
}

type fxRate struct {
	x   pricing.ExchangeRate
	err error
}

func newFXRates(cards Cards) *fxRates {
	return &fxRates{cards: cards, mu: make(chan struct{}, 1), got: map[fxKey]fxRate{}}
}

// rate returns the rate of (from, to) of month m; ok is false when none
// is recorded. An error is an outage.
func (f *fxRates) rate(ctx context.Context, from, to string, m pricing.Month) (pricing.ExchangeRate, bool, error) {
	k := fxKey{from, to, m}
	f.mu <- struct{}{}
	defer func() { <-f.mu }()
	if r, ok := f.got[k]; ok {
		return r.x, r.err == nil, nil
	}
	x, err := f.cards.ExchangeRateFor(ctx, from, to, m)
	if err != nil && postage.ErrorCode(err) != postage.ENOTFOUND {
		return x, false, fmt.Errorf("exchange rate %s to %s of %s: %w", from, to, m, err)
	}
	f.got[k] = fxRate{x, err}
	return x, err == nil, nil
}

// used lists the rates found, by pair then month.
func (f *fxRates) used() []pricing.ExchangeRate {
	f.mu <- struct{}{}
	defer func() { <-f.mu }()
	out := []pricing.ExchangeRate{}
	for _, r := range f.got {
		if r.err == nil {
			out = append(out, r.x)
		}
	}
	slices.SortFunc(out, func(a, b pricing.ExchangeRate) int {
		if c := strings.Compare(a.From+a.To, b.From+b.To); c != 0 {
			return c
		}
		return strings.Compare(a.Month.String(), b.Month.String())
	})
	return out
}

// convert returns res (in the cost card's currency) in currency cur at
// rate x: the total is the exact total times the rate, rounded half-even
// once to cur's minor units, and split over the lines in proportion to
// their rounded amounts (largest remainder), so the lines add up to it.
func convert(res pricing.Result, x pricing.ExchangeRate, cur string) pricing.Result {
	mu := minorUnits(cur)
	total := res.Total.Mul(x.Rate).RoundBank(int32(mu))
	out := res
	out.Currency, out.MinorUnits, out.Total = cur, mu, total
	out.Lines = slices.Clone(res.Lines)
	var idx []int
	var w []int64
	for i, ln := range res.Lines {
		if a := minorOf(ln.Amount, res.MinorUnits); a > 0 && ln.FreeType == "" {
			idx = append(idx, i)
			w = append(w, a)
		}
		out.Lines[i].Amount = decimal.Zero
	}
	for j, part := range allocate(minorOf(total, mu), w) {
		out.Lines[idx[j]].Amount = decimal.New(part, int32(-mu))
	}
	return out
}
