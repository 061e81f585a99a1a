package reconcile

import (
	"context"
	"fmt"
	"math/bits"
	"sort"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"postage/billing"
	"postage/metering"
	"postage/pricing"
)

// Comparing a report. Postage's side is one read of the month through
// metering's usage API (per customer, day, country, category, pricing
// type and billable status), kept compactly per customer; the upstream's
// rows arrive grouped by customer; each customer is then compared on its
// own — its month rated at the cost card, the rated lines' exact amounts
// split over its days, cells built and their differences attributed — so
// what is held at once is the month's usage rows, never a customer's
// cells beyond its own.

// prow is one postage usage row, compactly.
type prow struct {
	quantity uint64
	category uint16 // index in comparer.names
	ptype    uint16
	status   uint16
	country  [2]byte
	day      uint8 // day of the month, from 0
}

// comparer compares one report.
type comparer struct {
	month     pricing.Month
	firstDay  int32
	cr        *pricing.Rater
	customers map[string]billing.Customer
	names     []string
	nameIdx   map[string]uint16
	postage   map[string][]prow
	look      map[lookKey]lookVal
	// pooled holds the cost of portfolio members, rated with their
	// portfolio (the upstream counts tiers per portfolio); customers
	// alone are rated when compared.
	pooled map[string]*pricing.Result

	res   Result
	diffs []Difference
	cause map[Cause]*CauseTotal
	unmap map[string]*UnmappedPhoneNumber
}

type lookKey struct {
	country, category, customerCountry string
}

type lookVal struct {
	market, category string
	known            bool
}

func (c *comparer) intern(s string) uint16 {
	if i, ok := c.nameIdx[s]; ok {
		return i
	}
	if len(c.names) >= 1<<16 {
		return 0 // cannot happen with real data: 65,536 categories and types
	}
	i := uint16(len(c.names))
	c.names = append(c.names, s)
	c.nameIdx[s] = i
	return i
}

// lookup returns where (country, category) falls on the cost card: its
// market and the category it is rated as (its name for a category the
// card does not know, with known false). customerCountry turns a
// category into its international variant, as rating does.
func (c *comparer) lookup(country, category, customerCountry string) lookVal {
	k := lookKey{country, category, customerCountry}
	if v, ok := c.look[k]; ok {
		return v
	}
	v := lookVal{market: c.cr.Market(country), category: category}
	if pi, err := c.cr.Lookup(country, category, customerCountry); err == nil {
		v = lookVal{market: pi.Market, category: pi.Category, known: true}
	}
	c.look[k] = v
	return v
}

// compare compares report r with postage's usage of its month and stores
// the result.
func (s *Service) compare(ctx context.Context, rating *billing.Rating, cr *pricing.Rater, r Report) (*Result, error) {
	v := cr.Version()
	customers, err := s.Customers.All(ctx)
	if err != nil {
		return nil, fmt.Errorf("load customers: %w", err)
	}
	c := &comparer{month: r.Month, firstDay: DayOf(r.Month.Start()), cr: cr, customers: customers,
		nameIdx: map[string]uint16{}, postage: map[string][]prow{}, look: map[lookKey]lookVal{},
		cause: map[Cause]*CauseTotal{}, unmap: map[string]*UnmappedPhoneNumber{}}
	c.res = Result{Month: r.Month, ReportID: r.ID, Currency: r.Currency, CostCard: CostCard{CardID: v.CardID, Version: v.Number}, ComparedAt: s.now()}
	err = s.Usage.EachDailyAggregate(ctx, r.Month.Start(), time.Time{}, nil, func(a *metering.DayAggregate) error {
		if len(a.Country) != 2 {
			return fmt.Errorf("usage of %s: country %q", a.CustomerID, a.Country)
		}
		c.postage[a.CustomerID] = append(c.postage[a.CustomerID], prow{
			quantity: a.Quantity, category: c.intern(a.Category), ptype: c.intern(a.PricingType), status: c.intern(a.Status),
			country: [2]byte{a.Country[0], a.Country[1]}, day: uint8(DayOf(a.Day) - c.firstDay),
		})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read postage's usage of %s: %w", r.Month, err)
	}
	if err := c.ratePortfolios(ctx, rating); err != nil {
		return nil, err
	}
	var cur string
	var mapped bool
	var ups []UpstreamRow
	flush := func() error {
		if cur == "" {
			return nil
		}
		err := c.customer(cur, mapped, ups, c.postage[cur])
		delete(c.postage, cur)
		cur, ups = "", ups[:0]
		return err
	}
	err = s.Store.EachUpstreamRow(ctx, r.ID, func(customer string, m bool, row *UpstreamRow) error {
		if customer != cur {
			if err := flush(); err != nil {
				return err
			}
			cur, mapped = customer, m
		}
		ups = append(ups, *row)
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return nil, fmt.Errorf("compare the upstream report %d: %w", r.ID, err)
	}
	rest := make([]string, 0, len(c.postage))
	for id := range c.postage {
		rest = append(rest, id)
	}
	sort.Strings(rest)
	for _, id := range rest {
		if err := c.customer(id, !strings.HasPrefix(id, "unknown:"), nil, c.postage[id]); err != nil {
			return nil, err
		}
	}
	c.finish()
	if err := s.Store.SaveResult(ctx, &c.res, c.diffs); err != nil {
		return nil, fmt.Errorf("store the comparison: %w", err)
	}
	return &c.res, nil
}

// ratePortfolios rates the month of every portfolio with usage at cost,
// its members pooled, and keeps each member's result for costOf.
func (c *comparer) ratePortfolios(ctx context.Context, rating *billing.Rating) error {
	pf, err := rating.PortfoliosIn(ctx, nil, c.month)
	if err != nil {
		return err
	}
	c.pooled = map[string]*pricing.Result{}
	done := map[string]bool{}
	ids := make([]string, 0, len(c.postage))
	for id := range c.postage {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		group := pf.Group(id)
		if len(group) < 2 || done[group[0]] {
			continue
		}
		done[group[0]] = true
		var members []billing.Member
		for _, m := range group {
			cust, known := c.customers[m]
			if rows, ok := c.postage[m]; ok && known {
				usage, _, _ := c.usageOf(rows, cust.Country)
				members = append(members, billing.Member{Customer: cust, Usage: usage})
			}
		}
		rated, err := rating.RateAtCost(ctx, c.month, members)
		if err != nil {
			return fmt.Errorf("rate the portfolio of %s at cost: %w", group[0], err)
		}
		for i, m := range members {
			if rated[i].Unbilled == "" {
				res := rated[i].Result
				c.pooled[m.Customer.ID] = &res
			}
		}
	}
	return nil
}

// customer compares one customer's month.
func (c *comparer) customer(id string, mapped bool, ups []UpstreamRow, rows []prow) error {
	cc := c.customers[id].Country
	cells := map[Key]*Cell{}
	cell := func(day int32, market, category string) *Cell {
		k := Key{Customer: id, Day: day, Market: market, Category: category}
		x := cells[k]
		if x == nil {
			x = &Cell{Key: k, Unmapped: !mapped}
			cells[k] = x
		}
		return x
	}
	var pv, uv int64
	var pc, uc decimal.Decimal

	// Postage: the month rated at the cost card, each line's exact amount
	// split over the rows it rates.
	costs, uncosted := c.costOf(id, rows, cc)
	for i, r := range rows {
		country := string(r.country[:])
		category := c.names[r.category]
		lv := c.lookup(country, category, cc)
		x := cell(c.firstDay+int32(r.day), lv.market, lv.category)
		q := int64(r.quantity)
		if billing.FreeType(c.names[r.ptype]) != "" {
			x.Postage.Free.Add(q, costs[i])
		} else {
			x.Postage.Regular.Add(q, costs[i])
		}
		if c.names[r.status] == metering.StatusSent {
			x.Postage.Sent += q
		}
		if !lv.known || uncosted[i] {
			x.Note = fmt.Sprintf("the cost card %s does not price %s", c.res.CostCard.CardID, category)
		}
		pv += q
		pc = pc.Add(costs[i])
	}
	// The upstream: each row where its category falls on the cost card.
	for i := range ups {
		u := &ups[i]
		lv := c.lookup(u.Country, u.Category, "")
		x := cell(DayOf(u.Day), lv.market, lv.category)
		if billing.FreeType(u.PricingType) != "" {
			x.Upstream.Free.Add(u.Volume, u.Cost)
		} else {
			x.Upstream.Regular.Add(u.Volume, u.Cost)
		}
		uv += u.Volume
		uc = uc.Add(u.Cost)
		if !mapped {
			n := c.unmap[u.PhoneNumberID]
			if n == nil {
				n = &UnmappedPhoneNumber{PhoneNumberID: u.PhoneNumberID}
				c.unmap[u.PhoneNumberID] = n
			}
			n.UpstreamMessages += u.Volume
			n.UpstreamCost = n.UpstreamCost.Add(u.Cost)
		}
	}
	if !mapped && strings.HasPrefix(id, "unknown:") {
		if n := c.unmap[strings.TrimPrefix(id, "unknown:")]; n != nil {
			n.PostageMessages += pv
		}
	}
	list := make([]*Cell, 0, len(cells))
	for _, x := range cells {
		list = append(list, x)
	}
	ds := Attribute(list)
	c.res.PostageMessages += pv
	c.res.UpstreamMessages += uv
	c.res.PostageCost = c.res.PostageCost.Add(pc)
	c.res.UpstreamCost = c.res.UpstreamCost.Add(uc)
	c.res.GrossMessages += abs(pv - uv)
	c.res.GrossAmount = c.res.GrossAmount.Add(pc.Sub(uc).Abs())
	if len(ds) > 0 {
		c.res.Customers++
	}
	for _, d := range ds {
		t := c.cause[d.Cause]
		if t == nil {
			t = &CauseTotal{Cause: d.Cause}
			c.cause[d.Cause] = t
		}
		t.Lines++
		t.Messages += d.Messages
		t.Amount = t.Amount.Add(d.Amount)
	}
	c.diffs = append(c.diffs, ds...)
	return nil
}

// costKey is a row's line on the cost card: (market, category) and the
// free pricing type.
type costKey struct{ market, category, free string }

// usageOf sums a customer's rows into the usage its month is rated with
// (per country, category and free type), and returns each row's line on
// the cost card and whether the card cannot price it.
func (c *comparer) usageOf(rows []prow, customerCountry string) ([]pricing.Usage, []costKey, []bool) {
	type ukey struct {
		country, category, free string
	}
	sums := map[ukey]int64{}
	var order []ukey
	uncosted := make([]bool, len(rows))
	rowLine := make([]costKey, len(rows))
	for i, r := range rows {
		country, category := string(r.country[:]), c.names[r.category]
		free := billing.FreeType(c.names[r.ptype])
		if free == "" {
			lv := c.lookup(country, category, customerCountry)
			if !lv.known {
				uncosted[i] = true
				continue
			}
			rowLine[i] = costKey{lv.market, lv.category, ""}
		} else {
			rowLine[i] = costKey{c.cr.Market(country), category, free}
		}
		k := ukey{country, category, free}
		if _, ok := sums[k]; !ok {
			order = append(order, k)
		}
		sums[k] += int64(r.quantity)
	}
	usage := make([]pricing.Usage, len(order))
	for i, k := range order {
		usage[i] = pricing.Usage{Country: k.country, Category: k.category, Quantity: sums[k], FreeType: k.free}
	}
	return usage, rowLine, uncosted
}

// costOf rates a customer's month at the cost card (or takes its
// portfolio's pooled rating) and splits each line's exact amount over the
// rows it rates (by quantity, the largest remainder in millionths), so a
// row's cost is exact and the rows of a line add up to it. Rows of a
// category the card does not price cost 0 and are marked.
func (c *comparer) costOf(id string, rows []prow, customerCountry string) ([]decimal.Decimal, []bool) {
	costs := make([]decimal.Decimal, len(rows))
	usage, rowLine, uncosted := c.usageOf(rows, customerCountry)
	if len(usage) == 0 {
		return costs, uncosted
	}
	res := c.pooled[id]
	if res == nil {
		r, err := c.cr.Rate(pricing.Overrides{}, usage, pricing.RateOptions{CustomerCountry: customerCountry, Month: c.month})
		if err != nil {
			for i := range uncosted {
				uncosted[i] = true
			}
			return costs, uncosted
		}
		res = &r
	}
	byLine := map[costKey][]int{}
	for i := range rows {
		if !uncosted[i] {
			byLine[rowLine[i]] = append(byLine[rowLine[i]], i)
		}
	}
	for _, ln := range res.Lines {
		idx := byLine[costKey{ln.Market, ln.Category, ln.FreeType}]
		if len(idx) == 0 || ln.Exact.IsZero() {
			continue
		}
		micro := ln.Exact.Shift(CostDecimals).IntPart()
		w := make([]int64, len(idx))
		for j, i := range idx {
			w[j] = int64(rows[i].quantity)
		}
		for j, part := range allocate(micro, w) {
			costs[idx[j]] = decimal.New(part, -CostDecimals)
		}
	}
	return costs, uncosted
}

// finish sorts the differences and totals the causes.
func (c *comparer) finish() {
	sortDiffs(c.diffs)
	c.res.Lines = len(c.diffs)
	c.res.Messages = c.res.PostageMessages - c.res.UpstreamMessages
	c.res.Amount = c.res.PostageCost.Sub(c.res.UpstreamCost)
	c.res.Causes = []CauseTotal{}
	for _, cause := range Causes {
		if t := c.cause[cause]; t != nil {
			c.res.Causes = append(c.res.Causes, *t)
		}
	}
	c.res.Unmapped = []UnmappedPhoneNumber{}
	for _, n := range c.unmap {
		c.res.Unmapped = append(c.res.Unmapped, *n)
	}
	sort.Slice(c.res.Unmapped, func(i, j int) bool {
		a, b := c.res.Unmapped[i], c.res.Unmapped[j]
		if a.UpstreamMessages != b.UpstreamMessages {
			return a.UpstreamMessages > b.UpstreamMessages
		}
		return a.PhoneNumberID < b.PhoneNumberID
	})
}

// allocate splits total (≥ 0) over weights (> 0) in proportion, in whole
// units, with the largest-remainder method (ties to the earlier weight):
// the parts add up to total exactly.
func allocate(total int64, weights []int64) []int64 {
	parts := make([]int64, len(weights))
	var sum uint64
	for _, w := range weights {
		sum += uint64(w)
	}
	if len(weights) == 1 || sum == 0 || total <= 0 {
		parts[0] = total
		return parts
	}
	type rem struct {
		i int
		r uint64
	}
	rems := make([]rem, len(weights))
	given := int64(0)
	for i, w := range weights {
		hi, lo := bits.Mul64(uint64(total), uint64(w))
		q, r := bits.Div64(hi, lo, sum)
		parts[i] = int64(q)
		given += int64(q)
		rems[i] = rem{i, r}
	}
	sort.SliceStable(rems, func(a, b int) bool { return rems[a].r > rems[b].r })
	for k := 0; k < int(total-given); k++ {
		parts[rems[k].i]++
	}
	return parts
}
