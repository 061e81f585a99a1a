package pricing

import (
	"container/heap"
	"math/big"
	"math/bits"
	"slices"
	"strings"

	"github.com/shopspring/decimal"

	"postage"
)

// ModeCostPlus is the mode of a line priced by a cost-plus rule (never a
// card price's mode).
const ModeCostPlus Mode = "cost_plus"

// Member is one customer's month of usage in a pool (Rater.RatePool):
// customers who share tier counts, such as the members of a portfolio
// rated by the same card version.
type Member struct {
	// Rater is the version that prices the member: nil (or the pool's
	// Rater) for the pool card's own prices, or a cost-plus version,
	// whose lines cost the pool card's price plus its rule.
	Rater *Rater
	// FX converts the pool card's currency into a cost-plus member's
	// currency (From = the pool card's, To = the member's); nil when they
	// are the same.
	FX        *ExchangeRate
	Overrides Overrides
	Usage     []Usage
	Opts      RateOptions
}

// RatePool rates the month of several customers who share tier counts
// (docs/PRICING.md, "Portfolios"). The quantities of all members are
// added per (market, category) of r: that pool volume decides the tiers.
// Each member gets a Result of its own, whose lines bill its own usage:
//
//   - volume tiers: every unit at the price of the tier the pool reached;
//   - graduated tiers: the pool's units are ordered by spreading each
//     member's units evenly over the month (member i's j-th of q units at
//     (2j−1)/2q; ties in member order) and the n-th unit falls in the
//     tier holding n; a member's quantity in a tier is how many of its
//     units fall there (see allocateUnits). So every tier's units add up
//     to the pool's, and the members' exact amounts to the pool priced as
//     one;
//   - then each member's overrides (custom price, discounts) or cost-plus
//     rule;
//   - rounding: the exact amounts of one (market, category) in one
//     currency are rounded once, together (the card's rounding mode), and
//     the rounded total is shared out in minor units: each member gets its
//     exact amount rounded down, and the units left go, one each, to the
//     largest remainders (ties in member order). The member lines add up
//     to the rounded pool line exactly, and each is within one minor unit
//     of its exact amount.
//
// A pool of one member rates exactly as Rate (a card member) would.
// Members are in the caller's order (billing: by customer id). Errors are
// as Rate's; the usage the card cannot rate is in each Result's Unrated.
func (r *Rater) RatePool(members []Member) ([]Result, error) {
	if r.plus != nil {
		return nil, postage.Errorf(postage.EINVALID, "rate card %s version %d is cost-plus: a pool counts tiers on a card with prices", r.v.CardID, r.v.Number)
	}
	nc := len(r.cats)
	type mstate struct {
		sell    *Rater
		fx      decimal.Decimal
		lines   map[int32][]int32 // line → the member's rows in it
		qty     map[int32]int64
		free    []int32
		unrated []int32
		viaUnm  bool
		res     Result
		total   decimal.Decimal
	}
	ms := make([]mstate, len(members))
	pool := map[int32]int64{}
	var errs []error
	bad := func(i int, format string, args ...any) {
		errs = append(errs, postage.Errorf(postage.EINVALID, "member %d: "+format, append([]any{i}, args...)...))
	}
	for i := range members {
		m, st := &members[i], &ms[i]
		st.sell, st.fx = m.Rater, decimal.New(1, 0)
		if st.sell == nil {
			st.sell = r
		}
		switch {
		case st.sell.plus == nil && st.sell != r:
			bad(i, "priced by rate card %s version %d, not the pool's %s version %d: a member is priced by the pool's card or a cost-plus version over it", st.sell.v.CardID, st.sell.v.Number, r.v.CardID, r.v.Number)
		case st.sell.plus == nil && m.FX != nil:
			bad(i, "an exchange rate applies to cost-plus members only")
		case st.sell.plus != nil && st.sell.v.Currency != r.v.Currency:
			if m.FX == nil || m.FX.From != r.v.Currency || m.FX.To != st.sell.v.Currency {
				bad(i, "cost-plus in %s over a cost card in %s needs a %s to %s exchange rate", st.sell.v.Currency, r.v.Currency, r.v.Currency, st.sell.v.Currency)
			} else if err := m.FX.Validate(); err != nil {
				errs = append(errs, err)
			} else if !m.Opts.Month.IsZero() && m.FX.Month != m.Opts.Month {
				bad(i, "the exchange rate of %s does not apply to %s", m.FX.Month, m.Opts.Month)
			} else {
				st.fx = m.FX.Rate
			}
		case st.sell.plus != nil && m.FX != nil:
			bad(i, "cost-plus in %s over a cost card in %s needs no exchange rate", st.sell.v.Currency, r.v.Currency)
		}
		if !m.Overrides.IsZero() {
			if err := m.Overrides.Validate(); err != nil {
				errs = append(errs, err)
			}
		}
		st.lines, st.qty = map[int32][]int32{}, map[int32]int64{}
		for k, u := range m.Usage {
			if u.Quantity < 0 || u.Quantity > MaxQuantity {
				bad(i, "usage row %d: quantity %d out of range", k, u.Quantity)
				continue
			}
			if u.FreeType != "" {
				st.free = append(st.free, int32(k))
				continue
			}
			c, ok := r.category(u.Category)
			if !ok {
				if r.unmapped < 0 {
					st.unrated = append(st.unrated, int32(k))
					continue
				}
				c, st.viaUnm = r.unmapped, true
			}
			mk := r.marketOf(u.Country)
			if ic := r.intl[c]; ic >= 0 && m.Opts.CustomerCountry != "" && m.Opts.CustomerCountry != u.Country {
				c = ic
			}
			a := int32(int(mk)*nc + int(c))
			if u.Quantity > MaxQuantity-pool[a] {
				bad(i, "usage row %d: monthly quantity of market %q category %q exceeds %d", k, r.markets[mk], r.cats[c].Name, MaxQuantity)
				continue
			}
			pool[a] += u.Quantity
			st.qty[a] += u.Quantity
			st.lines[a] = append(st.lines[a], int32(k))
		}
	}
	if len(errs) > 0 {
		return nil, postage.JoinInvalid(errs)
	}
	for i := range ms {
		st := &ms[i]
		sv := st.sell.v
		st.res = Result{CardID: sv.CardID, Version: sv.Number, Month: members[i].Opts.Month, Currency: sv.Currency,
			MinorUnits: st.sell.minor, Rounding: sv.Rounding, Lines: []Line{}}
		if st.sell.plus != nil {
			st.res.Cost = &CostRef{CardID: r.v.CardID, Version: r.v.Number, Currency: r.v.Currency}
			if members[i].FX != nil {
				fx := *members[i].FX
				st.res.FX = &fx
			}
		}
	}
	lines := make([]int32, 0, len(pool))
	for a := range pool {
		lines = append(lines, a)
	}
	slices.Sort(lines)
	pooled := len(members) > 1
	var in []int // members with usage in the line
	var qs []int64
	for _, a := range lines {
		in, qs = in[:0], qs[:0]
		for i := range ms {
			if _, ok := ms[i].lines[a]; ok {
				in = append(in, i)
				qs = append(qs, ms[i].qty[a])
			}
		}
		mk, c := int(a)/nc, int(a)%nc
		q := pool[a]
		// Each member's units per card tier (nil: the line is free).
		var cp *cprice
		if !r.cats[c].Free {
			if cp = r.prices[a]; cp == nil { // cannot happen for a validated version
				return nil, postage.Errorf(postage.EINTERNAL, "rate card %s has no price for market %q category %q", r.v.CardID, r.markets[mk], r.cats[c].Name)
			}
		}
		alloc := tierUnits(cp, q, qs)
		exact := make([]decimal.Decimal, len(in))
		for j, i := range in {
			st, m := &ms[i], &members[i]
			ln := Line{Market: r.markets[mk], Category: r.cats[c].Name, Quantity: qs[j]}
			ln.Countries = memberCountries(m.Usage, st.lines[a])
			if st.viaUnm {
				ln.Unmapped = r.unmappedOf(m.Usage, st.lines[a])
			}
			for _, k := range st.lines[a] {
				if n := m.Usage[k].Category; n != ln.Category {
					if _, known := r.category(n); known {
						ln.MessageCategories, _ = r.messageCategories(nil, m.Usage, st.lines[a])
						break
					}
				}
			}
			if pooled {
				ln.PoolQuantity = q
			}
			if cp == nil {
				ln.Free = true
				st.res.Lines = append(st.res.Lines, ln)
				exact[j] = decimal.Zero
				continue
			}
			ov := &m.Overrides
			custom, isCustom := ov.customPrice(ln.Market, ln.Category)
			switch {
			case isCustom:
				ln.Mode, ln.Custom, ln.UnitPrice = ModeFlat, true, custom
				ln.Subtotal = custom.Mul(decimal.New(qs[j], 0))
				ln.Tiers = []TierLine{{From: 1, Quantity: qs[j], UnitPrice: custom, Amount: ln.Subtotal}}
				if qs[j] == 0 {
					ln.Tiers = nil
				}
			case st.sell.plus != nil:
				_, cost := tierLines(cp, alloc[j])
				rule := st.sell.plus.Rule(ln.Market, ln.Category)
				ln.Mode = ModeCostPlus
				ln.CostPlus = &CostPlusLine{Cost: cost, UnitCost: divRound(cost, qs[j], MaxPriceDecimals),
					Markup: rule.Markup, Fee: rule.Fee, Floor: rule.Floor}
				qd := decimal.New(qs[j], 0)
				sub := cost.Mul(st.fx).Mul(hundred.Add(rule.Markup)).Shift(-2).Add(rule.Fee.Mul(qd)) // exact: decimal multiplication and a shift never round
				if fl := rule.Floor.Mul(qd); sub.LessThan(fl) {
					sub, ln.CostPlus.FloorApplied = fl, true
				}
				ln.Subtotal = sub
				ln.UnitPrice, ln.Average = divRound(sub, qs[j], MaxPriceDecimals), true
			default:
				ln.Mode = cp.p.Mode
				ln.Tiers, ln.Subtotal = tierLines(cp, alloc[j])
				switch len(ln.Tiers) {
				case 0:
					ln.UnitPrice = cp.tiers[0].price
				case 1:
					ln.UnitPrice = ln.Tiers[0].UnitPrice
				default:
					ln.UnitPrice, ln.Average = divRound(ln.Subtotal, qs[j], MaxPriceDecimals), true
				}
			}
			// Discounts as in Rate: the most specific scoped one, then the
			// whole-card one, multiplied; exact (factors are shifts of
			// percentages).
			ex := ln.Subtotal
			f1, f2, discounted := one, one, false
			if d, ok := ov.scopedDiscount(ln.Market, ln.Category); ok && !d.IsZero() {
				f1, discounted = hundred.Sub(d).Shift(-2), true
			}
			if !ov.CardDiscount.IsZero() {
				f2, discounted = hundred.Sub(ov.CardDiscount).Shift(-2), true
			}
			if discounted {
				ex = ex.Mul(f1).Mul(f2)
				ln.Discount = hundred.Sub(f1.Mul(f2).Mul(hundred))
			}
			ln.Exact = ex
			exact[j] = ex
			st.res.Lines = append(st.res.Lines, ln)
		}
		if cp != nil {
			// One rounding per (line, currency), shared out.
			done := make([]bool, len(in))
			for j0, i0 := range in {
				if done[j0] {
					continue
				}
				cur := ms[i0].sell
				var grp []int
				for j := j0; j < len(in); j++ {
					if s := ms[in[j]].sell; !done[j] && s.v.Currency == cur.v.Currency && s.v.Rounding == cur.v.Rounding {
						grp = append(grp, j)
						done[j] = true
					}
				}
				places, halfUp := min(cur.minor, MaxPriceDecimals), cur.v.Rounding == RoundHalfUp
				amounts := shareRounded(exact, grp, places, halfUp)
				for k, j := range grp {
					st := &ms[in[j]]
					ln := &st.res.Lines[len(st.res.Lines)-1]
					ln.Amount = amounts[k]
					st.total = st.total.Add(amounts[k])
					if !ln.Discount.IsZero() {
						// As in Rate: the list amount rounded alone, the
						// discount what it takes to the line's amount. The
						// shared rounding may put a line one minor unit above
						// its own rounding: the list amount is then the
						// amount (the discount was below a minor unit).
						list := roundMoney(ln.Subtotal, places, halfUp)
						if list.LessThan(ln.Amount) {
							list = ln.Amount
						}
						ln.ListAmount, ln.DiscountAmount = list, list.Sub(ln.Amount)
					}
				}
			}
		}
	}
	out := make([]Result, len(ms))
	for i := range ms {
		st, m := &ms[i], &members[i]
		if len(st.free) > 0 {
			countries := make([]CountryQuantity, 0, len(st.free))
			if err := r.freeLines(&st.res, m.Usage, st.free, countries); err != nil {
				return nil, err
			}
		}
		if len(st.unrated) > 0 {
			st.res.Unrated = r.unratedRows(m.Usage, st.unrated)
		}
		st.res.Total = st.total.Round(int32(st.res.MinorUnits))
		out[i] = st.res
	}
	return out, nil
}

// memberCountries lists the recipient countries of a member's rows of one
// line, sorted, with their quantities.
func memberCountries(usage []Usage, rows []int32) []CountryQuantity {
	rows = slices.Clone(rows)
	slices.SortStableFunc(rows, func(x, y int32) int { return strings.Compare(usage[x].Country, usage[y].Country) })
	var out []CountryQuantity
	for _, k := range rows {
		u := &usage[k]
		if n := len(out); n > 0 && out[n-1].Country == u.Country {
			out[n-1].Quantity += u.Quantity
		} else {
			out = append(out, CountryQuantity{Country: u.Country, Quantity: u.Quantity})
		}
	}
	return out
}

// tierUnits returns, per member (quantities qs of a pool total q), its
// units in each of the price's tiers: all in one tier for flat and volume
// prices (the tier q reaches), spread by allocateUnits over graduated
// tiers. nil for a free line.
func tierUnits(cp *cprice, q int64, qs []int64) [][]memberTier {
	if cp == nil {
		return nil
	}
	out := make([][]memberTier, len(qs))
	if cp.p.Mode != ModeGraduated {
		k := 0
		if cp.p.Mode == ModeVolume {
			for k < len(cp.tiers)-1 && q > cp.tiers[k].upTo {
				k++
			}
		}
		for j, qj := range qs {
			if qj > 0 {
				out[j] = []memberTier{{tier: k, units: qj}}
			}
		}
		return out
	}
	prev := make([]int64, len(qs))
	var lo int64
	for k := range cp.tiers {
		if q <= lo {
			break
		}
		hi := min(q, cp.tiers[k].upTo)
		cum := allocateUnits(qs, q, hi)
		for j := range qs {
			if n := cum[j] - prev[j]; n > 0 {
				out[j] = append(out[j], memberTier{tier: k, units: n})
			}
		}
		prev, lo = cum, hi
	}
	return out
}

// memberTier is a member's units in one tier of a price.
type memberTier struct {
	tier  int
	units int64
}

// tierLines prices a member's units per tier: its tier lines (the tier's
// own bounds, the member's quantity in it) and the exact sum.
func tierLines(cp *cprice, units []memberTier) ([]TierLine, decimal.Decimal) {
	var sub u128
	out := make([]TierLine, 0, len(units))
	for _, mt := range units {
		t := &cp.tiers[mt.tier]
		var from int64 = 1
		if mt.tier > 0 {
			from = cp.tiers[mt.tier-1].upTo + 1
		}
		part := mul64(uint64(mt.units), t.micros)
		sub = sub.add(part)
		out = append(out, TierLine{From: from, UpTo: t.upToP, Quantity: mt.units, UnitPrice: t.price, Amount: part.decimal(MaxPriceDecimals)})
	}
	return out, sub.decimal(MaxPriceDecimals)
}

// allocateUnits returns how many units each member has among the first b
// units of the pool, when the pool's units (q = Σ qs) are ordered by
// position: member i's j-th unit (1 ≤ j ≤ qs[i]) stands at (2j−1)/(2·qs[i]),
// ties in member order. This is the Sainte-Laguë (Webster) apportionment
// of b among the members by their quantities: near b·qs[i]/q, and
// monotone in b (a member never has fewer units among more), so the
// differences between consecutive tier bounds are each member's units in
// a tier, adding up to its quantity across tiers and to the tier's units
// across members.
func allocateUnits(qs []int64, q, b int64) []int64 {
	c := make([]int64, len(qs))
	if b <= 0 {
		return c
	}
	if b >= q {
		copy(c, qs)
		return c
	}
	// Units strictly before b/q: member i's j-th is before it when
	// (2j−1)·q < 2·b·qs[i], i.e. j ≤ ⌈2·b·qs[i]/q⌉/2.
	var s int64
	for i, qi := range qs {
		hi, lo := bits.Mul64(uint64(b), uint64(qi))
		hi, lo = hi<<1|lo>>63, lo<<1 // 2·b·qi < 2^127
		t, rem := bits.Div64(hi, lo, uint64(q))
		if rem != 0 {
			t++
		}
		c[i] = int64(t / 2)
		s += c[i]
	}
	if s == b {
		return c
	}
	h := &unitHeap{qs: qs, c: c, next: s < b}
	for i := range qs {
		if (h.next && c[i] < qs[i]) || (!h.next && c[i] > 0) {
			h.idx = append(h.idx, i)
		}
	}
	heap.Init(h)
	for s != b {
		i := h.idx[0]
		if h.next {
			c[i]++
			s++
			if c[i] == qs[i] {
				heap.Pop(h)
				continue
			}
		} else {
			c[i]--
			s--
			if c[i] == 0 {
				heap.Pop(h)
				continue
			}
		}
		heap.Fix(h, 0)
	}
	return c
}

// unitHeap orders members by their next unit's position (next: the first
// unit not counted, smallest first, ties to the lower member) or their
// last counted unit's (largest first, ties to the higher member).
type unitHeap struct {
	qs, c []int64
	next  bool
	idx   []int
}

func (h *unitHeap) Len() int      { return len(h.idx) }
func (h *unitHeap) Swap(i, j int) { h.idx[i], h.idx[j] = h.idx[j], h.idx[i] }
func (h *unitHeap) Push(x any)    { h.idx = append(h.idx, x.(int)) }
func (h *unitHeap) Pop() any {
	x := h.idx[len(h.idx)-1]
	h.idx = h.idx[:len(h.idx)-1]
	return x
}

// Less compares positions (2k+1)/(2q) with k the unit's 0-based index:
// (2ka+1)·qb against (2kb+1)·qa, in 128 bits.
func (h *unitHeap) Less(x, y int) bool {
	a, b := h.idx[x], h.idx[y]
	ka, kb := h.c[a], h.c[b]
	if !h.next {
		ka, kb = ka-1, kb-1
	}
	ah, al := bits.Mul64(uint64(2*ka+1), uint64(h.qs[b]))
	bh, bl := bits.Mul64(uint64(2*kb+1), uint64(h.qs[a]))
	cmp := 0
	switch {
	case ah < bh || (ah == bh && al < bl):
		cmp = -1
	case ah > bh || (ah == bh && al > bl):
		cmp = 1
	}
	if h.next {
		return cmp < 0 || (cmp == 0 && a < b)
	}
	return cmp > 0 || (cmp == 0 && a > b)
}

// shareRounded rounds the sum of exact[grp...] once to `places` decimals
// and shares it out: each gets its amount rounded down, and the units
// left go one each to the largest remainders, ties to the earlier.
func shareRounded(exact []decimal.Decimal, grp []int, places int, halfUp bool) []decimal.Decimal {
	var sum decimal.Decimal
	for _, j := range grp {
		sum = sum.Add(exact[j])
	}
	total := roundMoney(sum, places, halfUp)
	out := make([]decimal.Decimal, len(grp))
	rems := make([]decimal.Decimal, len(grp))
	var floors decimal.Decimal
	for k, j := range grp {
		out[k] = exact[j].Truncate(int32(places)) // amounts are never negative: truncation is the floor
		rems[k] = exact[j].Sub(out[k])
		floors = floors.Add(out[k])
	}
	unit := decimal.New(1, int32(-places))
	left := total.Sub(floors).Div(unit).IntPart() // 0 ≤ left ≤ len(grp)
	order := make([]int, len(grp))
	for k := range order {
		order[k] = k
	}
	slices.SortStableFunc(order, func(x, y int) int { return rems[y].Cmp(rems[x]) })
	for _, k := range order[:left] {
		out[k] = out[k].Add(unit)
	}
	return out
}

// roundMoney rounds a non-negative amount to places decimals, half-even or half-up.
func roundMoney(d decimal.Decimal, places int, halfUp bool) decimal.Decimal {
	if halfUp {
		return d.Round(int32(places)) // half away from zero: half-up for amounts, which are never negative
	}
	return d.RoundBank(int32(places))
}

// divRound returns d/q rounded half-even to places decimals (0 when q is 0).
func divRound(d decimal.Decimal, q int64, places int) decimal.Decimal {
	if q == 0 {
		return decimal.Zero
	}
	// d = coef·10^exp: d/q·10^places = coef·10^(exp+places)/q.
	num := new(big.Int).Set(d.Coefficient())
	den := big.NewInt(q)
	if e := int(d.Exponent()) + places; e >= 0 {
		num.Mul(num, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(e)), nil))
	} else {
		den.Mul(den, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(-e)), nil))
	}
	quo, rem := new(big.Int).QuoRem(num, den, new(big.Int))
	two := new(big.Int).Lsh(rem, 1)
	if c := two.Cmp(den); c > 0 || (c == 0 && quo.Bit(0) == 1) {
		quo.Add(quo, big.NewInt(1))
	}
	return decimal.NewFromBigInt(quo, int32(-places))
}

var one = decimal.New(1, 0)

// CostPlus returns the version's cost-plus rule (nil for a card with prices).
func (r *Rater) CostPlus() *CostPlus { return r.plus }

// QuoteMember prices a hypothetical month of one member over r (a cost
// card for a cost-plus member) exactly as RatePool would bill it alone;
// like Quote, it rejects country codes that are not ISO 3166-1 and
// categories neither card can price.
func (r *Rater) QuoteMember(m Member) (Result, error) {
	var errs []error
	for i, it := range m.Usage {
		if !ValidCountry(it.Country) {
			errs = append(errs, postage.Errorf(postage.EINVALID, "item %d: country %q is not an ISO 3166-1 alpha-2 code", i, it.Country))
		}
	}
	if len(errs) > 0 {
		return Result{}, postage.JoinInvalid(errs)
	}
	res, err := r.RatePool([]Member{m})
	if err != nil {
		return Result{}, err
	}
	for _, u := range res[0].Unrated {
		errs = append(errs, postage.Errorf(postage.EINVALID, "category %q is not on rate card %s (categories: %s)", u.Category, r.v.CardID, strings.Join(r.categoryNames(), ", ")))
	}
	if len(errs) > 0 {
		return Result{}, postage.JoinInvalid(slices.CompactFunc(errs, func(a, b error) bool { return a.Error() == b.Error() }))
	}
	return res[0], nil
}

// LookupMember answers the price of one message of category to country
// for a member priced over r (a cost-plus version over the cost card r):
// the market and category of r, the member's currency, mode cost_plus, and
// the exact price of one message (cost × FX × (1 + markup) + fee, at least
// the floor); Tiers are not shown (they are the cost card's, in its
// currency).
func (r *Rater) LookupMember(m Member, country, category string) (PriceInfo, error) {
	m.Usage = []Usage{{Country: country, Category: category, Quantity: 1}}
	m.Overrides = Overrides{}
	res, err := r.QuoteMember(m)
	if err != nil {
		return PriceInfo{}, err
	}
	l := res.Lines[0]
	pi := PriceInfo{Country: country, Market: l.Market, Category: l.Category, Currency: res.Currency, Free: l.Free}
	if !l.Free {
		pi.Mode, pi.UnitPrice = l.Mode, l.Subtotal
	}
	return pi, nil
}
