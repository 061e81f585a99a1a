package pricing

import (
	"fmt"

	"github.com/shopspring/decimal"

	"postage"
)

// Overrides are a customer's deviations from its rate card. They apply in
// a fixed order (see docs/PRICING.md):
//
//  1. a custom unit price for a (market, category) replaces the card's price
//     (flat or tiered) for that line;
//  2. the most specific scoped discount (market and category, then market
//     only, then category only) reduces the line's exact amount;
//  3. the whole-card discount reduces what is left.
//
// Discounts multiply: 10% scoped and 5% card make 1 − 0.90 × 0.95 = 14.5%.
// The line is rounded once, after all of them.
type Overrides struct {
	// CardDiscount is a percentage (0..100) off every line of the card.
	CardDiscount decimal.Decimal `json:"card_discount,omitzero"`
	// Discounts are percentages off the lines of chosen markets and/or categories.
	Discounts []Discount `json:"discounts,omitempty"`
	// UnitPrices are custom flat unit prices for a (market, category).
	UnitPrices []UnitPrice `json:"unit_prices,omitempty"`
}

// Discount is a percentage off the lines of one market, one category, or
// one (market, category); an empty Market or Category matches any.
type Discount struct {
	Market   string          `json:"market,omitempty"`
	Category string          `json:"category,omitempty"`
	Percent  decimal.Decimal `json:"percent"`
}

// UnitPrice is a customer's custom flat unit price for a (market, category).
type UnitPrice struct {
	Market    string          `json:"market"`
	Category  string          `json:"category"`
	UnitPrice decimal.Decimal `json:"unit_price"`
}

// MaxPercentDecimals is the precision of a discount percentage.
const MaxPercentDecimals = 4

var hundred = decimal.New(100, 0)

// IsZero reports whether there are no overrides at all.
func (o *Overrides) IsZero() bool {
	return o.CardDiscount.IsZero() && len(o.Discounts) == 0 && len(o.UnitPrices) == 0
}

// Validate checks percentages (0..100, at most four decimals), unit prices
// (as on a card) and that no scope or (market, category) appears twice.
// Markets and categories are not checked against a card: overrides outlive
// card versions, and one naming a market a version lacks simply never applies.
func (o *Overrides) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, postage.Errorf(postage.EINVALID, format, args...))
	}
	checkPercent := func(what string, p decimal.Decimal) {
		if p.IsNegative() || p.GreaterThan(hundred) || !p.Equal(p.Truncate(MaxPercentDecimals)) {
			bad("%s: percent %s: want 0 to 100 with at most %d decimals", what, p, MaxPercentDecimals)
		}
	}
	checkPercent("card discount", o.CardDiscount)
	seen := map[[2]string]bool{}
	for _, d := range o.Discounts {
		what := fmt.Sprintf("discount market %q category %q", d.Market, d.Category)
		if d.Market == "" && d.Category == "" {
			bad("%s: name a market, a category or both (use card_discount for the whole card)", what)
		}
		if seen[[2]string{d.Market, d.Category}] {
			bad("%s: duplicate", what)
		}
		seen[[2]string{d.Market, d.Category}] = true
		checkPercent(what, d.Percent)
	}
	seen = map[[2]string]bool{}
	for _, u := range o.UnitPrices {
		what := fmt.Sprintf("unit price market %q category %q", u.Market, u.Category)
		if u.Market == "" || u.Category == "" {
			bad("%s: market and category are required", what)
		}
		if seen[[2]string{u.Market, u.Category}] {
			bad("%s: duplicate", what)
		}
		seen[[2]string{u.Market, u.Category}] = true
		checkUnitPrice(u.UnitPrice, func(msg string) { bad("%s: %s", what, msg) })
	}
	return postage.JoinInvalid(errs)
}

// customPrice returns the custom unit price for (market, category).
func (o *Overrides) customPrice(market, category string) (decimal.Decimal, bool) {
	for _, u := range o.UnitPrices {
		if u.Market == market && u.Category == category {
			return u.UnitPrice, true
		}
	}
	return decimal.Decimal{}, false
}

// scopedDiscount returns the most specific discount matching (market, category).
func (o *Overrides) scopedDiscount(market, category string) (decimal.Decimal, bool) {
	best, rank := decimal.Decimal{}, 0
	for _, d := range o.Discounts {
		r := 0
		switch {
		case d.Market == market && d.Category == category:
			r = 3
		case d.Market == market && d.Category == "":
			r = 2
		case d.Market == "" && d.Category == category:
			r = 1
		}
		if r > rank {
			best, rank = d.Percent, r
		}
	}
	return best, rank > 0
}
