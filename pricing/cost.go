package pricing

import (
	"fmt"

	"github.com/shopspring/decimal"

	"postage"
)

// CostPlus prices a customer's usage at what it costs upstream plus a
// margin, as data: each line (market, category of the cost card) costs
//
//	max(cost × FX × (1 + markup/100) + fee × quantity, floor × quantity)
//
// where cost is the line's exact amount under the cost card in effect in
// the month (tiers counted per portfolio), FX converts the cost card's
// currency into the cost-plus card's (1 when they are the same), and fee
// and floor are per message in the cost-plus card's currency. The rule of
// a line is the most specific exception naming its market and category,
// then its market, then its category, else the default; an exception
// replaces all three numbers. A new cost card version (a new upstream
// price) flows through on its effective month; the customer's overrides
// then apply as on any card (a custom unit price replaces the line's
// price, discounts reduce it), and the line is rounded once.
type CostPlus struct {
	// Markup is a percentage added to the cost (0 to 10,000, at most four decimals).
	Markup decimal.Decimal `json:"markup_percent,omitzero"`
	// Fee is added per message (card currency, at most six decimals).
	Fee decimal.Decimal `json:"fee,omitzero"`
	// Floor is the least a message costs on average over the line (card
	// currency, at most six decimals): the line is at least floor × quantity.
	Floor decimal.Decimal `json:"floor,omitzero"`
	// Exceptions replace the rule for some markets and/or categories.
	Exceptions []CostPlusRule `json:"exceptions,omitempty"`
}

// CostPlusRule is a cost-plus exception: the markup, fee and floor of the
// lines of one market, one category, or one (market, category). Markets
// and categories are the cost card's; they are not checked against it
// (cost cards change), and one naming a market the cost card lacks never
// applies.
type CostPlusRule struct {
	Market   string          `json:"market,omitempty"`
	Category string          `json:"category,omitempty"`
	Markup   decimal.Decimal `json:"markup_percent,omitzero"`
	Fee      decimal.Decimal `json:"fee,omitzero"`
	Floor    decimal.Decimal `json:"floor,omitzero"`
}

// MaxMarkup is the largest cost-plus markup percentage.
var MaxMarkup = decimal.New(10_000, 0)

type costPlusProblem struct {
	market, category, column, msg string
}

func (cp *CostPlus) problems() []costPlusProblem {
	var ps []costPlusProblem
	check := func(market, category string, r CostPlusRule) {
		if r.Markup.IsNegative() || r.Markup.GreaterThan(MaxMarkup) || !r.Markup.Equal(r.Markup.Truncate(MaxPercentDecimals)) {
			ps = append(ps, costPlusProblem{market, category, "markup_percent", fmt.Sprintf("markup %s: want 0 to %s percent with at most %d decimals", r.Markup, MaxMarkup, MaxPercentDecimals)})
		}
		checkUnitPrice(r.Fee, func(msg string) {
			ps = append(ps, costPlusProblem{market, category, "fee", "fee: " + msg})
		})
		checkUnitPrice(r.Floor, func(msg string) {
			ps = append(ps, costPlusProblem{market, category, "floor", "floor: " + msg})
		})
	}
	check("", "", CostPlusRule{Markup: cp.Markup, Fee: cp.Fee, Floor: cp.Floor})
	seen := map[[2]string]bool{}
	for _, e := range cp.Exceptions {
		if e.Market == "" && e.Category == "" {
			ps = append(ps, costPlusProblem{"", "", "market", "an exception names a market, a category or both (the default rule has neither)"})
		} else if seen[[2]string{e.Market, e.Category}] {
			ps = append(ps, costPlusProblem{e.Market, e.Category, "market", fmt.Sprintf("duplicate exception for market %q category %q", e.Market, e.Category)})
		}
		seen[[2]string{e.Market, e.Category}] = true
		check(e.Market, e.Category, e)
	}
	return ps
}

// Rule returns the markup, fee and floor of the lines of (market,
// category): the most specific exception, else the default.
func (cp *CostPlus) Rule(market, category string) CostPlusRule {
	best, rank := CostPlusRule{Market: market, Category: category, Markup: cp.Markup, Fee: cp.Fee, Floor: cp.Floor}, 0
	for _, e := range cp.Exceptions {
		r := 0
		switch {
		case e.Market == market && e.Category == category:
			r = 3
		case e.Market == market && e.Category == "":
			r = 2
		case e.Market == "" && e.Category == category:
			r = 1
		}
		if r > rank {
			best, rank = e, r
		}
	}
	return best
}

// ExchangeRate converts cost into a customer's currency for one month:
// Rate units of To for one unit of From. A rate applies to its month only
// (finance records one per month, e.g. the month's average rate): a month
// without its own rate is never rated with another month's.
type ExchangeRate struct {
	From  string          `json:"from"`  // ISO 4217: the cost card's currency
	To    string          `json:"to"`    // ISO 4217: the currency billed
	Month Month           `json:"month"` // the month it applies to
	Rate  decimal.Decimal `json:"rate"`  // units of To per unit of From
	// Source says where the rate comes from ("ECB monthly average").
	Source string `json:"source,omitempty"`
}

// MaxRateDecimals is the precision of an exchange rate.
const MaxRateDecimals = 10

// maxRate is the exclusive upper bound of an exchange rate.
var maxRate = decimal.New(1, 9)

// Validate checks the currencies (known, different), the month and the
// rate (positive, below 10^9, at most ten decimals).
func (x ExchangeRate) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, postage.Errorf(postage.EINVALID, format, args...))
	}
	if !validCurrency(x.From) {
		bad("from: %q is not an ISO 4217 currency code", x.From)
	}
	if !validCurrency(x.To) {
		bad("to: %q is not an ISO 4217 currency code", x.To)
	}
	if x.From == x.To && x.From != "" {
		bad("from and to are both %s: a currency needs no rate to itself", x.From)
	}
	if !x.Month.Valid() {
		bad("month: want YYYY-MM")
	}
	if !x.Rate.IsPositive() || !x.Rate.LessThan(maxRate) || !x.Rate.Equal(x.Rate.Truncate(MaxRateDecimals)) {
		bad("rate %s: want a positive number below %s with at most %d decimals", x.Rate, maxRate, MaxRateDecimals)
	}
	if len(x.Source) > 200 {
		bad("source: at most 200 characters")
	}
	return postage.JoinInvalid(errs)
}

// CostCardPeriod says which cost card is in effect from a month on (until
// the next period's month).
type CostCardPeriod struct {
	CardID        string `json:"card_id"`
	EffectiveFrom Month  `json:"effective_from"`
}

// CostPlusLine shows how a cost-plus line was priced.
type CostPlusLine struct {
	// Cost is the line's exact cost in the cost card's currency (its
	// tiers counted per portfolio), UnitCost the average per message
	// (six decimals, half-even).
	Cost     decimal.Decimal `json:"cost"`
	UnitCost decimal.Decimal `json:"unit_cost"`
	// Markup, Fee and Floor are the rule that applied (CostPlus.Rule).
	Markup decimal.Decimal `json:"markup_percent"`
	Fee    decimal.Decimal `json:"fee"`
	Floor  decimal.Decimal `json:"floor"`
	// FloorApplied says the floor, not cost plus markup and fee, priced
	// the line.
	FloorApplied bool `json:"floor_applied,omitempty"`
}
