package reports

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"postage"
	"postage/billing"
	"postage/metering"
	"postage/pricing"
)

// rowsOf returns the fixture rows of a customer-month, each quantity
// mapped by f (nil: as is).
func rowsOf(customer string, m pricing.Month, f func(int64) int64) []use {
	var out []use
	for _, u := range fixture {
		if u.customer == customer && u.month == m {
			if f != nil {
				u.quantity = f(u.quantity)
			}
			out = append(out, u)
		}
	}
	return out
}

// metaCost rates rows by hand at the meta card's prices times mult: one
// line per (market, category), each rounded half-even to cents.
func (pb *priceBook) metaCost(customer string, rows []use, mult decimal.Decimal) (total int64, lines map[[2]string]int64) {
	qty := map[[2]string]int64{}
	price := map[[2]string]decimal.Decimal{}
	for _, u := range rows {
		mk, cat, p, free := pb.metaLine(customer, u)
		if free {
			continue
		}
		k := [2]string{mk, cat}
		qty[k] += u.quantity
		price[k] = p
	}
	lines = map[[2]string]int64{}
	for k, q := range qty {
		c := price[k].Mul(mult).Mul(decimal.NewFromInt(q)).RoundBank(2).Shift(2).IntPart()
		lines[k] = c
		total += c
	}
	return total, lines
}

// launchRevenue rates rows by hand at the launch card (per country,
// graduated, then the discount, rounded once per line).
func (pb *priceBook) launchRevenue(rows []use, discount int64) int64 {
	qty := map[string]int64{}
	for _, u := range rows {
		if u.category != "service" {
			qty[u.country] += u.quantity
		}
	}
	var total int64
	for c, q := range qty {
		exact := pb.launchAmount(c, q)
		if discount != 0 {
			exact = exact.Mul(decimal.New(100-discount, -2))
		}
		total += exact.RoundBank(2).Shift(2).IntPart()
	}
	return total
}

// revenueOf rates rows by hand at the customer's card in m.
func (pb *priceBook) revenueOf(customer string, m pricing.Month, rows []use) int64 {
	card, disc := currentCard(customer, m)
	if card == "meta" {
		t, _ := pb.metaCost(customer, rows, decimal.NewFromInt(1))
		return t
	}
	return pb.launchRevenue(rows, disc)
}

func qtyOf(rows []use) int64 {
	var q int64
	for _, u := range rows {
		q += u.quantity
	}
	return q
}

func TestMargin(t *testing.T) {
	w := setup(t)
	pb := prices(t)
	ctx := context.Background()
	one := decimal.NewFromInt(1)

	t.Run("past month by customer", func(t *testing.T) {
		rep, err := w.svc.Margin(ctx, MarginQuery{Month: oct})
		if err != nil {
			t.Fatal(err)
		}
		if rep.ElapsedFraction != "1.0000" || rep.CostCard.CardID != pricing.MetaCardID || rep.CostCard.Version != 1 || rep.CostCard.Currency != "USD" {
			t.Errorf("header = %+v", rep)
		}
		if len(rep.Rows) != 4 {
			t.Fatalf("rows = %+v, want acme, globex, hooli, initech", rep.Rows)
		}
		var rev, cost int64
		negatives := 0
		for _, r := range rep.Rows {
			rows := rowsOf(r.CustomerID, oct, nil)
			wantRev := pb.revenueOf(r.CustomerID, oct, rows)
			wantCost, _ := pb.metaCost(r.CustomerID, rows, one)
			rev, cost = rev+wantRev, cost+wantCost
			if wantRev < wantCost {
				negatives++
			}
			if r.Revenue != cents(wantRev) || r.Cost != cents(wantCost) || r.Margin != cents(wantRev-wantCost) || r.Negative != (wantRev < wantCost) ||
				r.Quantity != qtyOf(rows) || r.Customers != 1 || r.Currency != "USD" {
				t.Errorf("%s = %+v, want revenue %s cost %s", r.CustomerID, r, cents(wantRev), cents(wantCost))
			}
			// A past month is its own projection.
			if r.ProjectedRevenue != r.Revenue || r.ProjectedCost != r.Cost || r.ProjectedQuantity != r.Quantity || r.ProjectedNegative != r.Negative {
				t.Errorf("%s projection %+v differs from the month", r.CustomerID, r)
			}
			if want := percent(wantRev-wantCost, wantRev); fmt.Sprint(r.MarginPercent) != fmt.Sprint(want) {
				t.Errorf("%s margin percent %v, want %v", r.CustomerID, r.MarginPercent, want)
			}
		}
		// globex is billed at the cost card itself: no margin at all.
		for _, r := range rep.Rows {
			if r.CustomerID == "globex" && (r.Margin != "0.00" || r.Revenue == "0.00") {
				t.Errorf("globex on the cost card: %+v, want a zero margin", r)
			}
		}
		// Worst margin first.
		for i := 1; i < len(rep.Rows); i++ {
			a, b := rep.Rows[i-1], rep.Rows[i]
			if decimal.RequireFromString(a.Margin).GreaterThan(decimal.RequireFromString(b.Margin)) {
				t.Errorf("rows not sorted by margin: %s before %s", a.Margin, b.Margin)
			}
		}
		if len(rep.Totals) != 1 {
			t.Fatalf("totals = %+v", rep.Totals)
		}
		tot := rep.Totals[0]
		if tot.Revenue != cents(rev) || tot.Cost != cents(cost) || tot.Margin != cents(rev-cost) || tot.Customers != 4 || tot.NegativeRows != negatives {
			t.Errorf("totals = %+v, want revenue %s cost %s, %d negative", tot, cents(rev), cents(cost), negatives)
		}
		if negatives == 0 {
			t.Error("the fixture should have a customer priced below cost (launch's BR marketing is below Meta's)")
		}
		// The revenue is the revenue report's.
		revRep, err := w.svc.Revenue(ctx, RevenueQuery{From: oct, To: oct, GroupBy: ByCustomer})
		if err != nil {
			t.Fatal(err)
		}
		for _, rr := range revRep.Rows {
			for _, r := range rep.Rows {
				if r.CustomerID == rr.Key && r.Revenue != rr.Amount {
					t.Errorf("%s: margin revenue %s, revenue report %s", r.CustomerID, r.Revenue, rr.Amount)
				}
			}
		}
		var b strings.Builder
		if err := rep.Table().WriteCSV(&b); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(b.String()), "\n")
		if len(lines) != 5 || lines[0] != "customer_id,name,market,category,currency,customers,quantity,revenue,cost,margin,margin_percent,negative,projected_quantity,projected_revenue,projected_cost,projected_margin,projected_margin_percent,projected_negative" {
			t.Errorf("csv = %q", b.String())
		}
	})

	t.Run("lines, markets and categories add up", func(t *testing.T) {
		byCust, err := w.svc.Margin(ctx, MarginQuery{Month: oct})
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range []string{ByLine, ByMarket, ByCategory} {
			rep, err := w.svc.Margin(ctx, MarginQuery{Month: oct, GroupBy: g})
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Totals) != 1 {
				t.Fatalf("%s totals %+v", g, rep.Totals)
			}
			// The totals do not depend on the grouping (but for the count
			// of negative rows).
			gt, ct := rep.Totals[0], byCust.Totals[0]
			gt.NegativeRows = ct.NegativeRows
			if fmt.Sprint(gt) != fmt.Sprint(ct) {
				t.Errorf("%s totals %+v, by customer %+v", g, gt, ct)
			}
			var rev, cost, q int64
			neg := 0
			for _, r := range rep.Rows {
				rev += minorOf(decimal.RequireFromString(r.Revenue), 2)
				cost += minorOf(decimal.RequireFromString(r.Cost), 2)
				q += r.Quantity
				if r.Negative {
					neg++
				}
				if r.Negative != decimal.RequireFromString(r.Margin).IsNegative() {
					t.Errorf("%s row %+v: negative flag", g, r)
				}
			}
			tot := byCust.Totals[0]
			if cents(rev) != tot.Revenue || cents(cost) != tot.Cost || q != tot.Quantity || rep.Totals[0].NegativeRows != neg {
				t.Errorf("%s: rows add up to %s / %s / %d, want %s / %s / %d", g, cents(rev), cents(cost), q, tot.Revenue, tot.Cost, tot.Quantity)
			}
		}
		// Each line's cost is the meta card's line, by hand; globex's
		// revenue equals its cost line by line.
		rep, err := w.svc.Margin(ctx, MarginQuery{Month: oct, GroupBy: ByLine})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]MarginRow{}
		for _, r := range rep.Rows {
			got[r.CustomerID+"/"+r.Market+"/"+r.Category] = r
		}
		for _, c := range customers {
			_, lines := pb.metaCost(c.ID, rowsOf(c.ID, oct, nil), one)
			for k, v := range lines {
				r, ok := got[c.ID+"/"+k[0]+"/"+k[1]]
				if !ok || r.Cost != cents(v) || r.Name != c.Name {
					t.Errorf("%s %v: row %+v, want cost %s", c.ID, k, r, cents(v))
				}
				if c.ID == "globex" && r.Revenue != r.Cost {
					t.Errorf("globex line %v: revenue %s, cost %s", k, r.Revenue, r.Cost)
				}
			}
		}
		// hooli's free service messages are a line at zero on both sides.
		if r, ok := got["hooli/North America/service"]; !ok || r.Quantity != 5 || r.Revenue != "0.00" || r.Cost != "0.00" || r.Negative {
			t.Errorf("hooli service line = %+v (of %v)", r, got)
		}
	})

	t.Run("running month and its projection", func(t *testing.T) {
		rep, err := w.svc.Margin(ctx, MarginQuery{})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Month != nov || rep.ElapsedFraction != "0.6500" {
			t.Fatalf("month %s fraction %s", rep.Month, rep.ElapsedFraction)
		}
		fc, err := w.svc.Forecast(ctx, ForecastQuery{})
		if err != nil {
			t.Fatal(err)
		}
		proj := func(q int64) int64 { return (q*60 + 19) / 39 }
		if len(rep.Rows) != len(fc.Rows) {
			t.Fatalf("rows %+v, forecast %+v", rep.Rows, fc.Rows)
		}
		for _, f := range fc.Rows {
			var r MarginRow
			for _, x := range rep.Rows {
				if x.CustomerID == f.CustomerID {
					r = x
				}
			}
			wantCost, _ := pb.metaCost(f.CustomerID, rowsOf(f.CustomerID, nov, nil), one)
			wantPCost, _ := pb.metaCost(f.CustomerID, rowsOf(f.CustomerID, nov, proj), one)
			if r.Revenue != f.AmountToDate || r.ProjectedRevenue != f.ProjectedAmount || r.ProjectedQuantity != f.ProjectedQuantity ||
				r.Cost != cents(wantCost) || r.ProjectedCost != cents(wantPCost) {
				t.Errorf("%s = %+v; forecast %+v, cost %s projected %s", f.CustomerID, r, f, cents(wantCost), cents(wantPCost))
			}
		}
		// ghost's usage is billed to nobody and still costs.
		if len(rep.Unbilled) != 1 {
			t.Fatalf("unbilled = %+v", rep.Unbilled)
		}
		u := rep.Unbilled[0]
		wantCost, _ := pb.metaCost("ghost", rowsOf("ghost", nov, nil), one)
		wantPCost, _ := pb.metaCost("ghost", rowsOf("ghost", nov, proj), one)
		if u.CustomerID != "ghost" || u.Reason != billing.UnbilledUnknownCustomer || u.Quantity != 7 || u.Cost != cents(wantCost) || u.ProjectedCost != cents(wantPCost) || u.CostCurrency != "USD" || u.Revenue != "" {
			t.Errorf("ghost = %+v, want cost %s projected %s", u, cents(wantCost), cents(wantPCost))
		}
	})

	t.Run("another currency is not comparable", func(t *testing.T) {
		w.cards.Now = func() time.Time { return time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC) }
		defer func() { w.cards.Now = func() time.Time { return now } }()
		if err := w.cards.CreateCard(ctx, pricing.RateCard{ID: "euro", Name: "Euro", Currency: "EUR"}); err != nil {
			t.Fatal(err)
		}
		v, err := w.cards.VersionFor(ctx, pricing.LaunchCardID, oct)
		if err != nil {
			t.Fatal(err)
		}
		d := v.Clone()
		d.CardID, d.Currency, d.Status, d.EffectiveFrom = "euro", "EUR", pricing.StatusDraft, pricing.Month{}
		if d, err = w.cards.CreateDraft(ctx, d); err != nil {
			t.Fatal(err)
		}
		if _, err := w.cards.Activate(ctx, "euro", d.Number, aug); err != nil {
			t.Fatal(err)
		}
		if _, err := w.customers.Create(ctx, billing.Customer{ID: "eurco", Name: "Euro Co", Currency: "EUR", Country: "FR"}); err != nil {
			t.Fatal(err)
		}
		if err := w.cards.AssignCard(ctx, "eurco", "euro", aug); err != nil {
			t.Fatal(err)
		}
		e := metering.Event{CustomerID: "eurco", ID: "eur-1", Time: oct.Start().Add(time.Hour), Country: "FR", Category: "marketing", Quantity: 100, IngestedAt: now}
		e.PayloadHash = metering.HashPayload(e.Time, true, e.Country, e.Category, e.Quantity)
		if err := w.events.Insert(ctx, []metering.Event{e}); err != nil {
			t.Fatal(err)
		}
		rep, err := w.svc.Margin(ctx, MarginQuery{Month: oct})
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.NotComparable) != 1 {
			t.Fatalf("not comparable = %+v", rep.NotComparable)
		}
		nc := rep.NotComparable[0]
		wantCost, _ := pb.metaCost("eurco", []use{{"eurco", oct, "FR", "marketing", 100}}, one)
		if nc.CustomerID != "eurco" || nc.Reason != "currency_mismatch" || nc.Currency != "EUR" || nc.Revenue == "" || nc.CostCurrency != "USD" || nc.Cost != cents(wantCost) ||
			!strings.Contains(nc.Detail, "revenue in EUR, cost card in USD") {
			t.Errorf("eurco = %+v", nc)
		}
		for _, r := range rep.Rows {
			if r.CustomerID == "eurco" {
				t.Errorf("eurco in the rows: %+v", r)
			}
		}
		if len(rep.Totals) != 1 || rep.Totals[0].Currency != "USD" || len(rep.ExchangeRates) != 0 {
			t.Errorf("totals = %+v, rates %+v, want USD only", rep.Totals, rep.ExchangeRates)
		}

		// With October's USD → EUR rate recorded (pricing's rates, the
		// ones cost-plus prices use), the cost converts and eurco compares.
		rate := decimal.RequireFromString("0.8765")
		if _, err := w.cards.SetExchangeRate(ctx, pricing.ExchangeRate{From: "USD", To: "EUR", Month: oct, Rate: rate}); err != nil {
			t.Fatal(err)
		}
		if rep, err = w.svc.Margin(ctx, MarginQuery{Month: oct}); err != nil {
			t.Fatal(err)
		}
		wantEUR := decimal.New(wantCost, -2).Mul(rate).RoundBank(2).Shift(2).IntPart()
		var row *MarginRow
		for i := range rep.Rows {
			if rep.Rows[i].CustomerID == "eurco" {
				row = &rep.Rows[i]
			}
		}
		if row == nil || row.Currency != "EUR" || row.Revenue != nc.Revenue || row.Cost != cents(wantEUR) || len(rep.NotComparable) != 0 {
			t.Errorf("eurco at the rate: %+v, want cost %s; not comparable %+v", row, cents(wantEUR), rep.NotComparable)
		}
		if len(rep.ExchangeRates) != 1 || !rep.ExchangeRates[0].Rate.Equal(rate) || len(rep.Totals) != 2 || rep.Totals[0].Currency != "EUR" {
			t.Errorf("rates %+v, totals %+v", rep.ExchangeRates, rep.Totals)
		}
		lines, err := w.svc.Margin(ctx, MarginQuery{Month: oct, GroupBy: ByLine, CustomerID: "eurco"})
		if err != nil {
			t.Fatal(err)
		}
		var lineCost int64
		for _, r := range lines.Rows {
			lineCost += minorOf(decimal.RequireFromString(r.Cost), 2)
		}
		if len(lines.Rows) == 0 || lineCost != wantEUR {
			t.Errorf("eurco's lines cost %d, want %d: %+v", lineCost, wantEUR, lines.Rows)
		}
	})

	t.Run("bad queries", func(t *testing.T) {
		for _, q := range []MarginQuery{{GroupBy: "country"}, {Month: nov.Next()}, {Month: pricing.Month{Year: 2026, Month: 13}}} {
			if _, err := w.svc.Margin(ctx, q); err == nil {
				t.Errorf("%+v: no error", q)
			}
		}
		// The seeded cost card is in effect from 2026-01: none before.
		if _, err := w.svc.Margin(ctx, MarginQuery{Month: pricing.Month{Year: 2025, Month: 12}}); postage.ErrorCode(err) != postage.EINVALID || !strings.Contains(err.Error(), "no cost card in effect in 2025-12") {
			t.Errorf("no cost card: %v", err)
		}
	})
}

func TestSimulateMargin(t *testing.T) {
	w := setup(t)
	pb := prices(t)
	ctx := context.Background()
	one, two := decimal.NewFromInt(1), decimal.NewFromInt(2)

	// The upstream doubles every price: a draft of the cost card.
	v, err := w.cards.VersionFor(ctx, pricing.MetaCardID, oct)
	if err != nil {
		t.Fatal(err)
	}
	d := v.Clone()
	d.Status, d.EffectiveFrom = pricing.StatusDraft, pricing.Month{}
	for i := range d.Prices {
		d.Prices[i].UnitPrice = d.Prices[i].UnitPrice.Mul(two)
	}
	if d, err = w.cards.CreateDraft(ctx, d); err != nil {
		t.Fatal(err)
	}

	sim, err := w.svc.SimulateMargin(ctx, MarginSimulationRequest{Version: d.Number, From: sep, To: oct, Breakdown: true})
	if err != nil {
		t.Fatal(err)
	}
	if sim.CardID != pricing.MetaCardID || sim.ProposedVersion != d.Number || fmt.Sprint(sim.Current) != "[{meta-2026-01 1 USD}]" || len(sim.Months) != 2 {
		t.Errorf("header = %+v", sim)
	}
	var rev, prev, cur, prop int64
	turns := 0
	got := map[string]MarginSimCustomer{}
	for _, c := range sim.Customers {
		got[c.CustomerID] = c
	}
	for _, c := range customers {
		var r, pr, cc, pc int64
		for _, m := range []pricing.Month{sep, oct} {
			rows := rowsOf(c.ID, m, nil)
			r += pb.revenueOf(c.ID, m, rows)
			a, _ := pb.metaCost(c.ID, rows, one)
			b, _ := pb.metaCost(c.ID, rows, two)
			cc, pc = cc+a, pc+b
			// A customer on the cost card itself pays the proposed
			// version once it applies; the launch card's do not move.
			if card, _ := currentCard(c.ID, m); card == "meta" {
				pr += b
			} else {
				pr += pb.revenueOf(c.ID, m, rows)
			}
		}
		if r == 0 && cc == 0 {
			if _, ok := got[c.ID]; ok {
				t.Errorf("%s without usage listed", c.ID)
			}
			continue
		}
		rev, prev, cur, prop = rev+r, prev+pr, cur+cc, prop+pc
		if pr-pc < 0 && r-cc >= 0 {
			turns++
		}
		g := got[c.ID]
		if g.Revenue != cents(r) || g.ProposedRevenue != cents(pr) || g.CurrentCost != cents(cc) || g.ProposedCost != cents(pc) || g.Difference != cents((pr-pc)-(r-cc)) ||
			g.CurrentMargin != cents(r-cc) || g.ProposedMargin != cents(pr-pc) || g.Negative != (pr-pc < 0) || g.TurnsNegative != (pr-pc < 0 && r-cc >= 0) || g.Skipped != "" {
			t.Errorf("%s = %+v, want revenue %s → %s, cost %s → %s", c.ID, g, cents(r), cents(pr), cents(cc), cents(pc))
		}
		// The customer's breakdown adds up to its totals.
		var br, bpr, bc, bp int64
		for _, l := range g.Breakdown {
			br += minorOf(decimal.RequireFromString(l.Revenue), 2)
			bpr += minorOf(decimal.RequireFromString(l.ProposedRevenue), 2)
			bc += minorOf(decimal.RequireFromString(l.CurrentCost), 2)
			bp += minorOf(decimal.RequireFromString(l.ProposedCost), 2)
		}
		if br != r || bpr != pr || bc != cc || bp != pc {
			t.Errorf("%s breakdown adds up to %d/%d/%d/%d, want %d/%d/%d/%d", c.ID, br, bpr, bc, bp, r, pr, cc, pc)
		}
	}
	if g := got["ghost"]; g.Skipped != "unknown customer" {
		t.Errorf("ghost = %+v, want skipped", g)
	}
	if len(sim.Totals) != 1 {
		t.Fatalf("totals = %+v", sim.Totals)
	}
	tot := sim.Totals[0]
	if tot.Revenue != cents(rev) || tot.ProposedRevenue != cents(prev) || tot.CurrentCost != cents(cur) || tot.ProposedCost != cents(prop) ||
		tot.Difference != cents((prev-prop)-(rev-cur)) || tot.TurnsNegative != turns || tot.Customers != 4 {
		t.Errorf("totals = %+v, want revenue %s → %s, cost %s → %s, %d turning negative", tot, cents(rev), cents(prev), cents(cur), cents(prop), turns)
	}
	if prev == rev {
		t.Error("globex, on the cost card itself, should pay the proposed prices")
	}
	// globex, billed at the cost card itself, pays what the upstream
	// charges under either version: no margin either way.
	if g := got["globex"]; g.CurrentMargin != "0.00" || g.ProposedMargin != "0.00" || g.Negative {
		t.Errorf("globex = %+v, want no margin now and at the proposed version", g)
	}
	var br, bpr, bc, bp int64
	for _, l := range sim.Breakdown {
		br += minorOf(decimal.RequireFromString(l.Revenue), 2)
		bpr += minorOf(decimal.RequireFromString(l.ProposedRevenue), 2)
		bc += minorOf(decimal.RequireFromString(l.CurrentCost), 2)
		bp += minorOf(decimal.RequireFromString(l.ProposedCost), 2)
	}
	if br != rev || bpr != prev || bc != cur || bp != prop {
		t.Errorf("book breakdown adds up to %d/%d/%d/%d, want %d/%d/%d/%d", br, bpr, bc, bp, rev, prev, cur, prop)
	}
	// Biggest loss of margin first.
	if sim.Customers[0].CustomerID != "hooli" {
		t.Errorf("first customer %s, want hooli (the most volume)", sim.Customers[0].CustomerID)
	}
	var b strings.Builder
	if err := sim.Table().WriteCSV(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(b.String(), "customer_id,name,currency,quantity,revenue,proposed_revenue,current_cost,proposed_cost,current_margin,proposed_margin,difference,current_margin_percent,proposed_margin_percent,negative,turns_negative,skipped\nhooli,") {
		t.Errorf("csv = %q", b.String())
	}

	// Defaults: the last complete month.
	def, err := w.svc.SimulateMargin(ctx, MarginSimulationRequest{Version: d.Number})
	if err != nil || def.From != oct || def.To != oct {
		t.Errorf("default range: %v %v", def, err)
	}
	for _, r := range []MarginSimulationRequest{
		{From: oct, To: oct},
		{Version: 99, From: oct, To: oct},
		{Version: d.Number, From: oct, To: nov.Next()},
		{CardID: "nope", Version: 1, From: oct, To: oct},
		{Version: d.Number, From: pricing.MustParseMonth("2025-12"), To: oct}, // before the cost card
	} {
		if _, err := w.svc.SimulateMargin(ctx, r); err == nil {
			t.Errorf("%+v: no error", r)
		}
	}
}

// The upstream counts volume tiers per business portfolio: a portfolio's
// members are rated at cost together (billing's RateAtCost), so a tier
// the portfolio crosses and no member does lowers their cost. Margin
// reads cost through it, for the whole book and for one member asked
// alone (its portfolio's other members read for the tiers, not shown).
func TestMarginPoolsPortfoliosAtCost(t *testing.T) {
	w := setup(t)
	ctx := context.Background()
	upTo := int64(100)
	// A tiered cost card, the cost card from November (scheduled in October).
	w.cards.Now = func() time.Time { return oct.Start() }
	defer func() { w.cards.Now = func() time.Time { return now } }()
	if err := w.cards.CreateCard(ctx, pricing.RateCard{ID: "tiered", Name: "Tiered upstream", Currency: "USD", Kind: pricing.KindCost}); err != nil {
		t.Fatal(err)
	}
	d, err := w.cards.CreateDraft(ctx, &pricing.Version{
		CardID: "tiered", Status: pricing.StatusDraft, Currency: "USD", Rounding: pricing.RoundHalfEven, DefaultMarket: "Other",
		Countries:  map[string]string{"DE": "Germany"},
		Categories: []pricing.Category{{Name: "marketing"}, {Name: "service", Free: true}},
		Prices: []pricing.Price{
			{Market: "Germany", Category: "marketing", Mode: pricing.ModeGraduated, Tiers: []pricing.Tier{
				{UpTo: &upTo, UnitPrice: decimal.RequireFromString("0.10")}, {UnitPrice: decimal.RequireFromString("0.05")}}},
			{Market: "Other", Category: "marketing", Mode: pricing.ModeFlat, UnitPrice: decimal.RequireFromString("0.05")},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.cards.Activate(ctx, "tiered", d.Number, nov); err != nil {
		t.Fatal(err)
	}
	if err := w.cards.SetCostCard(ctx, "tiered", nov); err != nil {
		t.Fatal(err)
	}
	// A portfolio from November: parent p, members m1 and m2, 80 German
	// marketing messages each (alone under the 100 of the first tier; 160
	// together); and lone, 80 on its own.
	w.customers.Now = func() time.Time { return oct.Start() }
	for _, c := range []string{"p", "m1", "m2", "lone"} {
		if _, err := w.customers.Create(ctx, billing.Customer{ID: c, Name: c, Currency: "USD", Country: "DE"}); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []billing.PortfolioSetting{{CustomerID: "p", EffectiveFrom: nov}, {CustomerID: "m1", ParentID: "p", EffectiveFrom: nov}, {CustomerID: "m2", ParentID: "p", EffectiveFrom: nov}} {
		if _, err := w.customers.SetPortfolio(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	var evs []metering.Event
	for _, c := range []string{"m1", "m2", "lone"} {
		e := metering.Event{CustomerID: c, ID: "pf-" + c, Time: nov.Start().Add(time.Hour), Country: "DE", Category: "marketing", Quantity: 80, IngestedAt: now}
		e.PayloadHash = metering.HashPayload(e.Time, true, e.Country, e.Category, e.Quantity)
		evs = append(evs, e)
	}
	if err := w.events.Insert(ctx, evs); err != nil {
		t.Fatal(err)
	}

	rep, err := w.svc.Margin(ctx, MarginQuery{Month: nov})
	if err != nil {
		t.Fatal(err)
	}
	if rep.CostCard.CardID != "tiered" {
		t.Errorf("cost card %+v, want tiered (in effect in November)", rep.CostCard)
	}
	got := map[string]MarginRow{}
	for _, r := range rep.Rows {
		got[r.CustomerID] = r
	}
	m1, m2 := decimal.RequireFromString(got["m1"].Cost), decimal.RequireFromString(got["m2"].Cost)
	// Together: 100 × 0.10 + 60 × 0.05 = 13.00 (each alone: 8.00, 16.00 in all).
	if sum := m1.Add(m2); sum.StringFixed(2) != "13.00" {
		t.Errorf("the portfolio's cost %s (m1 %s, m2 %s), want 13.00: its members rated together", sum, m1, m2)
	}
	if got["lone"].Cost != "8.00" {
		t.Errorf("lone's cost %s, want 8.00", got["lone"].Cost)
	}
	one, err := w.svc.Margin(ctx, MarginQuery{Month: nov, CustomerID: "m1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(one.Rows) != 1 || one.Rows[0].CustomerID != "m1" || one.Rows[0].Cost != got["m1"].Cost {
		t.Errorf("m1 asked alone: %+v, want its cost %s in the portfolio", one.Rows, got["m1"].Cost)
	}
}

// cpRule is a cost-plus rule as data for the hand computation below.
type cpRule struct{ markup, fee, floor string }

// costPlusLine prices one cost-plus line by hand, independently of
// pricing: max(cost × fx × (1 + markup/100) + fee × q, floor × q), cost
// being the line's exact cost at the cost card's unit price, rounded once
// half-even to cents.
func costPlusLine(unit decimal.Decimal, q int64, fx decimal.Decimal, r cpRule) int64 {
	qd := decimal.NewFromInt(q)
	markup := decimal.RequireFromString(r.markup)
	sub := unit.Mul(qd).Mul(fx).Mul(decimal.NewFromInt(100).Add(markup)).Div(decimal.NewFromInt(100)).Add(decimal.RequireFromString(r.fee).Mul(qd))
	if fl := decimal.RequireFromString(r.floor).Mul(qd); sub.LessThan(fl) {
		sub = fl
	}
	return sub.RoundBank(2).Shift(2).IntPart()
}

// A customer priced cost-plus pays what the upstream charges plus its
// margin, so a new upstream price flows through to its price: the margin
// simulation re-rates its revenue at the proposed cost card version
// through the same pipeline (markup, fee per message, floor, per-market
// and per-category exceptions; in another currency at the month's
// exchange rate), while a fixed-price customer's revenue does not move.
func TestSimulateMarginCostPlus(t *testing.T) {
	w := setup(t, costPlusRows...)
	pb := prices(t)
	ctx := context.Background()
	two := decimal.NewFromInt(2)
	w.cards.Now = func() time.Time { return aug.Start() }
	defer func() { w.cards.Now = func() time.Time { return now } }()

	// The rule: 10% and 0.001 a message; India at cost plus 0.002, at
	// least 0.02 a message (the floor prices India's marketing today,
	// not at the doubled price); German utility 25%; utility elsewhere 5%.
	rules := map[[2]string]cpRule{
		{"", ""}:               {"10", "0.001", "0"},
		{"India", ""}:          {"0", "0.002", "0.02"},
		{"Germany", "utility"}: {"25", "0", "0"},
		{"", "utility"}:        {"5", "0", "0"},
	}
	rule := &pricing.CostPlus{Markup: decimal.New(10, 0), Fee: decimal.RequireFromString("0.001"), Exceptions: []pricing.CostPlusRule{
		{Market: "India", Fee: decimal.RequireFromString("0.002"), Floor: decimal.RequireFromString("0.02")},
		{Market: "Germany", Category: "utility", Markup: decimal.New(25, 0)},
		{Category: "utility", Markup: decimal.New(5, 0)},
	}}
	ruleOf := func(market, category string) cpRule {
		for _, k := range [][2]string{{market, category}, {market, ""}, {"", category}} {
			if r, ok := rules[k]; ok {
				return r
			}
		}
		return rules[[2]string{"", ""}]
	}
	// Meta's prices, resold at a fixed price: a selling card with the
	// same prices, which a new upstream version does not change.
	meta, err := w.cards.VersionFor(ctx, pricing.MetaCardID, oct)
	if err != nil {
		t.Fatal(err)
	}
	resale := meta.Clone()
	resale.CardID, resale.Status, resale.EffectiveFrom = "resale", pricing.StatusDraft, pricing.Month{}
	for _, c := range []struct {
		card pricing.RateCard
		v    *pricing.Version
	}{
		{pricing.RateCard{ID: "plus", Name: "Cost plus", Currency: "USD"}, &pricing.Version{CardID: "plus", CostPlus: rule}},
		{pricing.RateCard{ID: "plus-eur", Name: "Cost plus EUR", Currency: "EUR"}, &pricing.Version{CardID: "plus-eur", Currency: "EUR", CostPlus: rule}},
		{pricing.RateCard{ID: "resale", Name: "Meta resold", Currency: "USD"}, resale},
	} {
		if err := w.cards.CreateCard(ctx, c.card); err != nil {
			t.Fatal(err)
		}
		d, err := w.cards.CreateDraft(ctx, c.v)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.cards.Activate(ctx, c.card.ID, d.Number, sep); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct{ id, currency, country, card string }{{"cpus", "USD", "DE", "plus"}, {"cpeur", "EUR", "FR", "plus-eur"}, {"fixed", "USD", "DE", "resale"}} {
		if _, err := w.customers.Create(ctx, billing.Customer{ID: c.id, Name: c.id, Currency: c.currency, Country: c.country}); err != nil {
			t.Fatal(err)
		}
		if err := w.cards.AssignCard(ctx, c.id, c.card, sep); err != nil {
			t.Fatal(err)
		}
	}
	// The upstream doubles its prices: a draft of the cost card.
	d := meta.Clone()
	d.Status, d.EffectiveFrom = pricing.StatusDraft, pricing.Month{}
	for i := range d.Prices {
		d.Prices[i].UnitPrice = d.Prices[i].UnitPrice.Mul(two)
	}
	if d, err = w.cards.CreateDraft(ctx, d); err != nil {
		t.Fatal(err)
	}
	ask := MarginSimulationRequest{Version: d.Number, From: sep, To: oct, Customers: []string{"cpus", "cpeur", "fixed", "acme"}, Breakdown: true}

	// cpeur is billed in EUR over a cost card in USD: without October's
	// rate it cannot be billed, nor simulated.
	sim, err := w.svc.SimulateMargin(ctx, ask)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range sim.Customers {
		if c.CustomerID == "cpeur" && !strings.Contains(c.Skipped, "no_exchange_rate") {
			t.Errorf("cpeur without a rate = %+v, want skipped for no_exchange_rate", c)
		}
	}
	rate := decimal.RequireFromString("0.8765")
	if _, err := w.cards.SetExchangeRate(ctx, pricing.ExchangeRate{From: "USD", To: "EUR", Month: oct, Rate: rate}); err != nil {
		t.Fatal(err)
	}
	if sim, err = w.svc.SimulateMargin(ctx, ask); err != nil {
		t.Fatal(err)
	}
	got := map[string]MarginSimCustomer{}
	for _, c := range sim.Customers {
		got[c.CustomerID] = c
	}

	// The hand computation: each customer-month's lines at the meta card
	// (× mult), priced cost-plus at fx; the cost at fx rounded once.
	one := decimal.NewFromInt(1)
	type want struct{ rev, prev, cur, prop int64 }
	costPlus := func(customer string, fx decimal.Decimal, months ...pricing.Month) want {
		var w want
		for _, m := range months {
			rows := extraRows(customer, m)
			qty := map[[2]string]int64{}
			unit := map[[2]string]decimal.Decimal{}
			for _, u := range rows {
				mk, cat, p, free := pb.metaLine(customer, u)
				if !free {
					qty[[2]string{mk, cat}] += u.quantity
					unit[[2]string{mk, cat}] = p
				}
			}
			for k, q := range qty {
				w.rev += costPlusLine(unit[k], q, fx, ruleOf(k[0], k[1]))
				w.prev += costPlusLine(unit[k].Mul(two), q, fx, ruleOf(k[0], k[1]))
			}
			if len(qty) > 0 {
				c1, _ := pb.metaCost(customer, rows, one)
				c2, _ := pb.metaCost(customer, rows, two)
				w.cur += decimal.New(c1, -2).Mul(fx).RoundBank(2).Shift(2).IntPart()
				w.prop += decimal.New(c2, -2).Mul(fx).RoundBank(2).Shift(2).IntPart()
			}
		}
		return w
	}
	fixedRows := extraRows("fixed", oct)
	fixedRev, _ := pb.metaCost("fixed", fixedRows, one)
	fixedProp, _ := pb.metaCost("fixed", fixedRows, two)
	acmeRev := pb.revenueOf("acme", sep, rowsOf("acme", sep, nil)) + pb.revenueOf("acme", oct, rowsOf("acme", oct, nil))
	acmeSep, _ := pb.metaCost("acme", rowsOf("acme", sep, nil), one)
	acmeOct, _ := pb.metaCost("acme", rowsOf("acme", oct, nil), one)
	acmeSep2, _ := pb.metaCost("acme", rowsOf("acme", sep, nil), two)
	acmeOct2, _ := pb.metaCost("acme", rowsOf("acme", oct, nil), two)
	wants := map[string]want{
		"cpus":  costPlus("cpus", one, sep, oct),
		"cpeur": costPlus("cpeur", rate, sep, oct),
		"fixed": {fixedRev, fixedRev, fixedRev, fixedProp},
		"acme":  {acmeRev, acmeRev, acmeSep + acmeOct, acmeSep2 + acmeOct2},
	}
	byCurrency := map[string]want{}
	for id, wt := range wants {
		g := got[id]
		if g.Skipped != "" || g.Revenue != cents(wt.rev) || g.ProposedRevenue != cents(wt.prev) || g.CurrentCost != cents(wt.cur) || g.ProposedCost != cents(wt.prop) ||
			g.CurrentMargin != cents(wt.rev-wt.cur) || g.ProposedMargin != cents(wt.prev-wt.prop) || g.Difference != cents((wt.prev-wt.prop)-(wt.rev-wt.cur)) {
			t.Errorf("%s = %+v\nwant revenue %s → %s, cost %s → %s", id, g, cents(wt.rev), cents(wt.prev), cents(wt.cur), cents(wt.prop))
		}
		var br, bpr int64
		for _, l := range g.Breakdown {
			br += minorOf(decimal.RequireFromString(l.Revenue), 2)
			bpr += minorOf(decimal.RequireFromString(l.ProposedRevenue), 2)
		}
		if br != wt.rev || bpr != wt.prev {
			t.Errorf("%s breakdown revenue %d → %d, want %d → %d", id, br, bpr, wt.rev, wt.prev)
		}
		b := byCurrency[g.Currency]
		b.rev, b.prev, b.cur, b.prop = b.rev+wt.rev, b.prev+wt.prev, b.cur+wt.cur, b.prop+wt.prop
		byCurrency[g.Currency] = b
	}
	// Fixed prices do not move: fixed is priced at exactly today's
	// upstream prices, so doubled ones turn its margin negative.
	if g := got["fixed"]; g.Revenue != g.ProposedRevenue || !g.TurnsNegative {
		t.Errorf("fixed = %+v, want its revenue unchanged and its margin turning negative", g)
	}
	if g := got["acme"]; g.Revenue != g.ProposedRevenue {
		t.Errorf("acme = %+v, want its revenue unchanged", g)
	}
	// Cost-plus follows: its revenue moves and its margin stays positive.
	for _, id := range []string{"cpus", "cpeur"} {
		if g := got[id]; g.Revenue == g.ProposedRevenue || g.Negative || g.Currency != map[string]string{"cpus": "USD", "cpeur": "EUR"}[id] {
			t.Errorf("%s = %+v, want its revenue to follow the cost card", id, g)
		}
	}
	if len(sim.Totals) != 2 {
		t.Fatalf("totals = %+v, want EUR and USD", sim.Totals)
	}
	for _, tot := range sim.Totals {
		wt := byCurrency[tot.Currency]
		if tot.Revenue != cents(wt.rev) || tot.ProposedRevenue != cents(wt.prev) || tot.CurrentCost != cents(wt.cur) || tot.ProposedCost != cents(wt.prop) ||
			tot.ProposedMargin != cents(wt.prev-wt.prop) || tot.Difference != cents((wt.prev-wt.prop)-(wt.rev-wt.cur)) {
			t.Errorf("%s totals = %+v, want revenue %s → %s, cost %s → %s", tot.Currency, tot, cents(wt.rev), cents(wt.prev), cents(wt.cur), cents(wt.prop))
		}
	}
	if len(sim.ExchangeRates) != 1 || !sim.ExchangeRates[0].Rate.Equal(rate) {
		t.Errorf("exchange rates %+v", sim.ExchangeRates)
	}
	var b strings.Builder
	if err := sim.Table().WriteCSV(&b); err != nil {
		t.Fatal(err)
	}
	// The margin report rates the same revenue: October's cost-plus
	// prices over the cost card in effect.
	for _, id := range []string{"cpus", "cpeur"} {
		rep, err := w.svc.Margin(ctx, MarginQuery{Month: oct, CustomerID: id})
		if err != nil {
			t.Fatal(err)
		}
		wt := costPlus(id, map[string]decimal.Decimal{"cpus": one, "cpeur": rate}[id], oct)
		if len(rep.Rows) != 1 || rep.Rows[0].Revenue != cents(wt.rev) || rep.Rows[0].Cost != cents(wt.cur) || rep.Rows[0].Margin != cents(wt.rev-wt.cur) {
			t.Errorf("%s's October margin %+v, want revenue %s cost %s", id, rep.Rows, cents(wt.rev), cents(wt.cur))
		}
	}
	if wt := wants["cpus"]; !strings.Contains(b.String(), "\ncpus,cpus,USD,2269,"+cents(wt.rev)+","+cents(wt.prev)+","+cents(wt.cur)+","+cents(wt.prop)+",") {
		t.Errorf("csv lacks cpus's proposed revenue:\n%s", b.String())
	}
}

// costPlusRows are the rows TestSimulateMarginCostPlus adds to the
// fixture: cpus (DE, cost-plus in USD), cpeur (FR, cost-plus in EUR) and
// fixed (DE, meta's prices resold on a selling card).
var costPlusRows = []use{
	{"cpus", sep, "IN", "marketing", 100},
	{"cpus", oct, "DE", "marketing", 1000},
	{"cpus", oct, "DE", "utility", 333},
	{"cpus", oct, "IN", "marketing", 777},
	{"cpus", oct, "FR", "utility", 50},
	{"cpus", oct, "DE", "service", 9},
	{"cpeur", oct, "FR", "marketing", 400},
	{"cpeur", oct, "IN", "marketing", 200},
	{"fixed", oct, "DE", "marketing", 500},
}

// extraRows returns a customer-month's rows of costPlusRows.
func extraRows(customer string, m pricing.Month) []use {
	var out []use
	for _, u := range costPlusRows {
		if u.customer == customer && u.month == m {
			out = append(out, u)
		}
	}
	return out
}
