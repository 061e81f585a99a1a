package billing

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"postage"
	"postage/pricing"
)

// Member is one customer's usage of a month in a group rated together:
// the members of a portfolio in that month (who share tier counts), or one
// customer alone.
type Member struct {
	Customer Customer
	Usage    []pricing.Usage
}

// CostCard returns the cost card in effect in month m (the upstream's
// price list: pricing.Store.CostCardFor) and the Rater of its version in
// effect in m. ENOTFOUND when no cost card is in effect or the card has no
// version in effect then. Compiled versions are cached like every card's.
func (g *Rating) CostCard(ctx context.Context, m pricing.Month) (pricing.RateCard, *pricing.Rater, error) {
	card, err := g.costCardOf(ctx, m)
	if err != nil {
		return card, nil, err
	}
	rt, err := g.InEffect(ctx, card.ID, m)
	if postage.ErrorCode(err) == postage.ENOTFOUND {
		return card, nil, postage.Errorf(postage.ENOTFOUND, "cost card %s has no version in effect in %s", card.ID, m)
	}
	return card, rt, err
}

func (g *Rating) costCardOf(ctx context.Context, m pricing.Month) (pricing.RateCard, error) {
	g.mu.Lock()
	cc, ok := g.costCards[m]
	g.mu.Unlock()
	if ok {
		return cc.card, cc.err
	}
	card, err := g.Pricing.CostCardFor(ctx, m)
	if err != nil && postage.ErrorCode(err) != postage.ENOTFOUND {
		return card, fmt.Errorf("cost card of %s: %w", m, err) // an outage is not remembered
	}
	if !g.begun(m) {
		return card, err // a cost card may still be scheduled from m
	}
	g.mu.Lock()
	if g.costCards == nil {
		g.costCards = map[pricing.Month]costCardOrErr{}
	}
	g.costCards[m] = costCardOrErr{card, err}
	g.mu.Unlock()
	return card, err
}

type costCardOrErr struct {
	card pricing.RateCard
	err  error
}

// RateAtCost rates a group's usage of month m at cost: the cost card in
// effect in m, its tiers counted over the whole group (a portfolio's
// members share them, as the upstream counts them per business
// portfolio), without any customer's overrides or margin. It returns one
// Rated per member, in the group's order, each Result in the cost card's
// currency; rows the cost card cannot rate are in Result.Unrated. When no
// cost card is in effect every member is unbilled (UnbilledNoCostCard).
// Margin reports and reconciliation read cost through it; cost-plus
// prices start from the same numbers. An error is an outage or a bug.
func (g *Rating) RateAtCost(ctx context.Context, m pricing.Month, group []Member) ([]Rated, error) {
	out := make([]Rated, len(group))
	card, rt, err := g.CostCard(ctx, m)
	if postage.ErrorCode(err) == postage.ENOTFOUND {
		for i := range out {
			out[i] = Rated{CardID: card.ID, Unbilled: UnbilledNoCostCard, Detail: postage.ErrorMessage(err)}
		}
		return out, nil
	} else if err != nil {
		return nil, err
	}
	order := memberOrder(group)
	members := make([]pricing.Member, len(group))
	for k, i := range order {
		c := group[i].Customer
		members[k] = pricing.Member{Usage: group[i].Usage, Opts: pricing.RateOptions{CustomerCountry: c.Country, Month: m}}
	}
	res, err := rt.RatePool(members)
	if err != nil {
		return nil, fmt.Errorf("rate %s at cost: %w", m, err)
	}
	for k, i := range order {
		out[i] = Rated{Result: res[k], Rater: rt, CardID: card.ID}
	}
	return out, nil
}

// memberOrder returns the indexes of a group by customer id: a pool's
// members are always in that order, whatever order the caller has them in
// (ties of tier allocation and of shared rounding go to the earlier).
func memberOrder(group []Member) []int {
	order := make([]int, len(group))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return strings.Compare(group[a].Customer.ID, group[b].Customer.ID) })
	return order
}
