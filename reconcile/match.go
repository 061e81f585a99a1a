package reconcile

import (
	"fmt"
	"sort"
	"time"

	"github.com/shopspring/decimal"
)

// Cause is why postage's count or cost differs from the upstream's.
type Cause string

// Causes, in the order they are looked for (docs/RECONCILIATION.md).
const (
	// CauseFreeType: the same messages are of a free pricing type on one
	// side and regular on the other.
	CauseFreeType Cause = "free_type"
	// CauseCategoryMapping: the same day's messages to the same market,
	// in another category on each side (a category mapped differently).
	CauseCategoryMapping Cause = "category_mapping"
	// CauseDayBoundary: the same messages on adjacent days (postage dates
	// a message by its billable status, the upstream by its delivery).
	CauseDayBoundary Cause = "day_boundary"
	// CauseNotDelivered: postage counted messages at status sent that the
	// upstream did not bill (it bills on delivery): statuses not yet
	// delivered, or failed after sent.
	CauseNotDelivered Cause = "not_delivered"
	// CauseNotInUpstream: postage counted messages the upstream's report
	// does not have.
	CauseNotInUpstream Cause = "not_in_upstream"
	// CauseNotMetered: the upstream billed messages postage never saw.
	CauseNotMetered Cause = "not_metered"
	// CauseUnknownPhoneNumber: the upstream billed messages of a phone
	// number id that no customer has.
	CauseUnknownPhoneNumber Cause = "unknown_phone_number"
	// CausePrice: the same messages cost another amount (the upstream's
	// price is not the cost card's, or the cost card does not price them).
	CausePrice Cause = "price"
)

// Causes lists every cause in the order they are looked for.
var Causes = []Cause{CauseFreeType, CauseCategoryMapping, CauseDayBoundary, CauseNotDelivered, CauseNotInUpstream, CauseNotMetered, CauseUnknownPhoneNumber, CausePrice}

// Valid reports whether c is a known cause.
func (c Cause) Valid() bool {
	for _, x := range Causes {
		if x == c {
			return true
		}
	}
	return false
}

// Key is where the two sides are compared: one customer's messages of
// one UTC day to one market, in one category (the cost card's market and
// category; a category the cost card does not know keeps its name).
type Key struct {
	Customer string
	Day      int32 // days since 1970-01-01
	Market   string
	Category string
}

// DayOf returns the day number of t's UTC day.
func DayOf(t time.Time) int32 { return int32(t.Unix() / 86400) }

// DayTime returns 00:00 UTC of day d.
func DayTime(d int32) time.Time { return time.Unix(int64(d)*86400, 0).UTC() }

// Pool is one side's messages in a cell of one class (regular or free
// pricing type) and their cost.
type Pool struct {
	Volume int64
	Cost   decimal.Decimal
}

// Add adds v messages costing c.
func (p *Pool) Add(v int64, c decimal.Decimal) {
	p.Volume += v
	p.Cost = p.Cost.Add(c)
}

// take removes v messages and returns what they cost: their share of the
// pool's cost (rounded half-even to CostDecimals), all of what is left
// when they are the last.
func (p *Pool) take(v int64) decimal.Decimal {
	if v <= 0 {
		return decimal.Zero
	}
	var c decimal.Decimal
	if v >= p.Volume {
		c = p.Cost
	} else {
		c = p.Cost.Mul(decimal.NewFromInt(v)).DivRound(decimal.NewFromInt(p.Volume), CostDecimals)
	}
	p.Volume -= v
	p.Cost = p.Cost.Sub(c)
	return c
}

// Side is one side's count and cost in a cell.
type Side struct {
	Regular, Free Pool
	// Sent is how many of postage's messages were counted at status sent
	// (always 0 upstream).
	Sent int64
}

func (s *Side) volume() int64         { return s.Regular.Volume + s.Free.Volume }
func (s *Side) cost() decimal.Decimal { return s.Regular.Cost.Add(s.Free.Cost) }

// Cell is both sides' count and cost at one Key.
type Cell struct {
	Key
	Postage, Upstream Side
	// Unmapped: the customer is "unknown:<phone number id>", a number no
	// customer has.
	Unmapped bool
	// Note says why the cell's cost may be off (a category the cost card
	// does not price); it goes into the detail of a price difference.
	Note string

	rReg, rFree int64 // what is left to explain: postage − upstream, per class
	parts       []Difference
}

// Difference is one part of a cell's difference with its cause. Messages
// and Amount are postage's minus the upstream's: positive when postage
// counted (or expects to pay) more.
type Difference struct {
	CustomerID       string          `json:"customer_id"`
	Day              string          `json:"day"` // YYYY-MM-DD (UTC)
	Market           string          `json:"market"`
	Category         string          `json:"category"`
	Cause            Cause           `json:"cause"`
	PostageMessages  int64           `json:"postage_messages"`
	UpstreamMessages int64           `json:"upstream_messages"`
	Messages         int64           `json:"messages"`
	PostageCost      decimal.Decimal `json:"postage_cost"`
	UpstreamCost     decimal.Decimal `json:"upstream_cost"`
	Amount           decimal.Decimal `json:"amount"`
	Detail           string          `json:"detail"`
}

func (c *Cell) part(cause Cause, pv int64, pc decimal.Decimal, uv int64, uc decimal.Decimal, detail string) {
	c.parts = append(c.parts, Difference{
		CustomerID: c.Customer, Day: DayTime(c.Day).Format(time.DateOnly), Market: c.Market, Category: c.Category, Cause: cause,
		PostageMessages: pv, UpstreamMessages: uv, Messages: pv - uv, PostageCost: pc, UpstreamCost: uc, Amount: pc.Sub(uc), Detail: detail,
	})
}

// rem is what is left to explain in the cell, postage − upstream.
func (c *Cell) rem() int64 { return c.rReg + c.rFree }

// takeRem removes v (> 0) of the cell's remaining difference, regular
// messages first, and returns their cost on the side that has them
// (postage when the remainder is positive).
func (c *Cell) takeRem(v int64) decimal.Decimal {
	side := &c.Upstream
	if c.rem() > 0 {
		side = &c.Postage
	}
	reg := min(v, abs(c.rReg))
	free := v - reg
	if c.rem() > 0 {
		c.rReg, c.rFree = c.rReg-reg, c.rFree-free
	} else {
		c.rReg, c.rFree = c.rReg+reg, c.rFree+free
	}
	return side.Regular.take(reg).Add(side.Free.take(free))
}

func abs(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

// Attribute explains every cell's difference, in this order (each step
// only what the ones before left): pricing types that differ within a
// cell (free_type); opposite differences of the same customer, day and
// market in two categories (category_mapping), then of the same
// customer, market and category on adjacent days (day_boundary); what
// postage counted more, first up to its messages counted at status sent
// (not_delivered), the rest not_in_upstream; what the upstream counted
// more, unknown_phone_number for a number no customer has, else
// not_metered; finally any amount left between the messages both sides
// counted (price). Each cell's parts add up exactly to its difference, in
// messages and in money. The answer is sorted by customer, day, market,
// category and cause.
func Attribute(cells []*Cell) []Difference {
	for _, c := range cells {
		c.parts = c.parts[:0]
		c.rReg = c.Postage.Regular.Volume - c.Upstream.Regular.Volume
		c.rFree = c.Postage.Free.Volume - c.Upstream.Free.Volume
		// 1. The same messages, free on one side and regular on the other.
		if c.rReg > 0 && c.rFree < 0 || c.rReg < 0 && c.rFree > 0 {
			s := min(abs(c.rReg), abs(c.rFree))
			if c.rReg > 0 {
				c.part(CauseFreeType, s, c.Postage.Regular.take(s), s, c.Upstream.Free.take(s),
					"postage counted these as a regular pricing type, the upstream as a free one")
				c.rReg, c.rFree = c.rReg-s, c.rFree+s
			} else {
				c.part(CauseFreeType, s, c.Postage.Free.take(s), s, c.Upstream.Regular.take(s),
					"postage counted these as a free pricing type, the upstream as a regular one")
				c.rReg, c.rFree = c.rReg+s, c.rFree-s
			}
		}
	}

	// 2. Another category on each side, same customer, day and market.
	sorted := append([]*Cell(nil), cells...)
	sort.Slice(sorted, func(i, j int) bool {
		a, b := sorted[i].Key, sorted[j].Key
		if a.Customer != b.Customer {
			return a.Customer < b.Customer
		}
		if a.Day != b.Day {
			return a.Day < b.Day
		}
		if a.Market != b.Market {
			return a.Market < b.Market
		}
		return a.Category < b.Category
	})
	for lo := 0; lo < len(sorted); {
		hi := lo + 1
		for hi < len(sorted) && sorted[hi].Customer == sorted[lo].Customer && sorted[hi].Day == sorted[lo].Day && sorted[hi].Market == sorted[lo].Market {
			hi++
		}
		pair(sorted[lo:hi], func(pos, neg *Cell, v int64) {
			pos.part(CauseCategoryMapping, v, pos.takeRem(v), 0, decimal.Zero, "the upstream counts these as "+neg.Category)
			neg.part(CauseCategoryMapping, 0, decimal.Zero, v, neg.takeRem(v), "postage counts these as "+pos.Category)
		})
		lo = hi
	}

	// 3. Adjacent days, same customer, market and category.
	sort.Slice(sorted, func(i, j int) bool {
		a, b := sorted[i].Key, sorted[j].Key
		if a.Customer != b.Customer {
			return a.Customer < b.Customer
		}
		if a.Market != b.Market {
			return a.Market < b.Market
		}
		if a.Category != b.Category {
			return a.Category < b.Category
		}
		return a.Day < b.Day
	})
	for i := 0; i+1 < len(sorted); i++ {
		a, b := sorted[i], sorted[i+1]
		if a.Customer != b.Customer || a.Market != b.Market || a.Category != b.Category || b.Day != a.Day+1 {
			continue
		}
		ra, rb := a.rem(), b.rem()
		if ra == 0 || rb == 0 || (ra > 0) == (rb > 0) {
			continue
		}
		v := min(abs(ra), abs(rb))
		pos, neg := a, b
		if ra < 0 {
			pos, neg = b, a
		}
		pos.part(CauseDayBoundary, v, pos.takeRem(v), 0, decimal.Zero, "the upstream counts these on "+DayTime(neg.Day).Format(time.DateOnly))
		neg.part(CauseDayBoundary, 0, decimal.Zero, v, neg.takeRem(v), "postage counts these on "+DayTime(pos.Day).Format(time.DateOnly))
	}

	// 4. What is left over on one side; 5. the money between what matches.
	var out []Difference
	for _, c := range sorted {
		if r := c.rem(); r > 0 {
			if v := min(r, c.Postage.Sent); v > 0 {
				c.part(CauseNotDelivered, v, c.takeRem(v), 0, decimal.Zero, "counted at status sent; the upstream bills delivered messages")
			}
			if v := c.rem(); v > 0 {
				c.part(CauseNotInUpstream, v, c.takeRem(v), 0, decimal.Zero, "not in the upstream's report")
			}
		} else if r < 0 {
			if c.Unmapped {
				c.part(CauseUnknownPhoneNumber, 0, decimal.Zero, -r, c.takeRem(-r), "no customer has this phone number id")
			} else {
				c.part(CauseNotMetered, 0, decimal.Zero, -r, c.takeRem(-r), "billed by the upstream, never metered by postage")
			}
		}
		pc, uc := c.Postage.cost(), c.Upstream.cost()
		if !pc.Equal(uc) {
			detail := priceDetail(c)
			c.part(CausePrice, c.Postage.volume(), pc, c.Upstream.volume(), uc, detail)
			c.Postage.Regular, c.Postage.Free, c.Upstream.Regular, c.Upstream.Free = Pool{}, Pool{}, Pool{}, Pool{}
		}
		out = append(out, c.parts...)
	}
	return out
}

// pair matches the positive remainders of cells with the negative ones,
// in order, handing each matched quantity to f.
func pair(cells []*Cell, f func(pos, neg *Cell, v int64)) {
	if len(cells) < 2 {
		return
	}
	i, j := 0, 0
	for {
		for i < len(cells) && cells[i].rem() <= 0 {
			i++
		}
		for j < len(cells) && cells[j].rem() >= 0 {
			j++
		}
		if i == len(cells) || j == len(cells) {
			return
		}
		f(cells[i], cells[j], min(cells[i].rem(), -cells[j].rem()))
	}
}

// priceDetail says how the unit costs of the messages both sides counted
// differ.
func priceDetail(c *Cell) string {
	if c.Note != "" {
		return c.Note
	}
	unit := func(s *Side) string {
		if v := s.volume(); v > 0 {
			return s.cost().DivRound(decimal.NewFromInt(v), CostDecimals).String()
		}
		return "-"
	}
	return fmt.Sprintf("unit cost: postage %s, upstream %s", unit(&c.Postage), unit(&c.Upstream))
}
