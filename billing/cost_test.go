package billing_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"postage"
	"postage/billing"
	"postage/pricing"
)

// costVersion is an upstream price list: DE marketing flat.
func costVersion(card, de string) *pricing.Version {
	return &pricing.Version{
		CardID: card, Status: pricing.StatusDraft, Currency: "USD", Rounding: pricing.RoundHalfEven, DefaultMarket: "Other",
		Countries:  map[string]string{"DE": "Germany"},
		Categories: []pricing.Category{{Name: "marketing"}, {Name: "service", Free: true}},
		Prices: []pricing.Price{
			{Market: "Germany", Category: "marketing", Mode: pricing.ModeFlat, UnitPrice: decimal.RequireFromString(de)},
			{Market: "Other", Category: "marketing", Mode: pricing.ModeFlat, UnitPrice: decimal.RequireFromString("0.05")},
		},
	}
}

// at runs f with the pricing store's clock in the month before `month`
// (activations and schedules are for later months only).
func (f *fixture) at(month string, fn func()) {
	f.t.Helper()
	now := f.prices.Now
	f.prices.Now = func() time.Time { return pricing.MustParseMonth(month).Prev().Start() }
	defer func() { f.prices.Now = now }()
	fn()
}

func (f *fixture) card(c pricing.RateCard, v *pricing.Version, from string) {
	f.t.Helper()
	ctx := context.Background()
	if _, err := f.prices.GetCard(ctx, c.ID); err != nil {
		if err := f.prices.CreateCard(ctx, c); err != nil {
			f.t.Fatal(err)
		}
	}
	f.at(from, func() {
		d, err := f.prices.CreateDraft(ctx, v)
		if err != nil {
			f.t.Fatal(err)
		}
		if _, err := f.prices.Activate(ctx, c.ID, d.Number, pricing.MustParseMonth(from)); err != nil {
			f.t.Fatal(err)
		}
	})
}

// costPlusFixture: the cost card "upstream" (USD; DE marketing 0.10 from
// 2026-01, 0.12 from 2026-03) is the cost card from 2026-01; "plus" (USD)
// and "plus-eur" (EUR) are cost-plus: 10% and 0.001 a message, at least
// 0.06 a message, India at cost.
func costPlusFixture(t *testing.T) *fixture {
	f := newFixture(t, "cp")
	ctx := context.Background()
	f.card(pricing.RateCard{ID: "upstream", Name: "Upstream", Currency: "USD", Kind: pricing.KindCost}, costVersion("upstream", "0.10"), "2026-01")
	f.card(pricing.RateCard{ID: "upstream"}, costVersion("upstream", "0.12"), "2026-03")
	f.at("2026-01", func() {
		if err := f.prices.SetCostCard(ctx, "upstream", pricing.MustParseMonth("2026-01")); err != nil {
			t.Fatal(err)
		}
	})
	rule := &pricing.CostPlus{Markup: decimal.New(10, 0), Fee: decimal.RequireFromString("0.001"), Floor: decimal.RequireFromString("0.06"),
		Exceptions: []pricing.CostPlusRule{{Market: "India"}}}
	f.card(pricing.RateCard{ID: "plus", Name: "Cost plus", Currency: "USD"}, &pricing.Version{CardID: "plus", CostPlus: rule}, "2026-01")
	f.card(pricing.RateCard{ID: "plus-eur", Name: "Cost plus EUR", Currency: "EUR"}, &pricing.Version{CardID: "plus-eur", CostPlus: rule}, "2026-01")
	if err := f.prices.AssignCard(ctx, "cp", "plus", pricing.MustParseMonth("2026-01")); err != nil {
		t.Fatal(err)
	}
	return f
}

// A cost card version effective from 1 March changes March's cost-plus
// prices and not February's, through runs, re-runs and the month-to-date bill.
func TestCostPlusFollowsTheCostCardVersion(t *testing.T) {
	f := costPlusFixture(t)
	f.events(
		ev{customer: "cp", country: "DE", category: "marketing", at: "2026-02-10 10:00:00", ingested: "2026-02-10 10:00:01", qty: 100},
		ev{customer: "cp", country: "DE", category: "marketing", at: "2026-03-10 10:00:00", ingested: "2026-03-10 10:00:01", qty: 100},
		ev{customer: "cp", country: "DE", category: "service", at: "2026-03-10 10:00:00", ingested: "2026-03-10 10:00:01", qty: 3},
	)
	// In March: February billed at February's cost; March's month-to-date at March's.
	f.clock.Set(time.Date(2026, 3, 2, 2, 0, 0, 0, time.UTC))
	f.run("2026-02")
	f.clock.Set(time.Date(2026, 3, 20, 0, 0, 0, 0, time.UTC))
	up, err := f.runner.Upcoming(context.Background(), "cp")
	if err != nil {
		t.Fatal(err)
	}
	if up.Total.String() != "13.30" { // 100 × 0.12 × 1.10 + 100 × 0.001
		t.Fatalf("March month-to-date %s: %+v", up.Total, up.Lines)
	}
	f.clock.Set(time.Date(2026, 4, 1, 2, 0, 0, 0, time.UTC))
	f.run("2026-03")
	f.run("2026-02") // February again, after March's version took effect: unchanged
	feb, mar := f.live("cp", "2026-02"), f.live("cp", "2026-03")
	if feb.Total.String() != "11.10" { // 100 × 0.10 × 1.10 + 0.10
		t.Errorf("February %s: %+v", feb.Total, feb.Lines)
	}
	if mar.Total.String() != "13.30" {
		t.Errorf("March %s: %+v", mar.Total, mar.Lines)
	}
	if feb.CardID != "plus" || feb.CostCard == nil || feb.CostCard.CardID != "upstream" || feb.CostCard.Version != 1 || mar.CostCard.Version != 2 {
		t.Errorf("cards: February %s %+v, March %+v", feb.CardID, feb.CostCard, mar.CostCard)
	}
	l := mar.Lines[0]
	if l.Mode != pricing.ModeCostPlus || l.CostPlus == nil || l.CostPlus.Cost.String() != "12" || l.CostPlus.UnitCost.String() != "0.12" || l.CostPlus.Markup.String() != "10" {
		t.Errorf("March line %+v %+v", l, l.CostPlus)
	}
	// The free category stays free.
	if free := mar.Lines[1]; !free.Free || free.Amount.String() != "0.00" {
		t.Errorf("free line %+v", free)
	}
	// At cost, the same usage: the API recon builds on.
	res, err := billing.NewRating(f.prices).RateAtCost(context.Background(), pricing.MustParseMonth("2026-03"),
		[]billing.Member{{Customer: billing.Customer{ID: "cp", Currency: "USD"}, Usage: []pricing.Usage{{Country: "DE", Category: "marketing", Quantity: 100}}}})
	if err != nil || res[0].Unbilled != "" || res[0].Result.Total.String() != "12" || res[0].CardID != "upstream" {
		t.Fatalf("at cost: %+v %v", res, err)
	}
}

// A customer billed in another currency than the cost card's needs the
// month's exchange rate: without one its month is unbilled with a clear
// reason; with one, the invoice is priced and shows (and freezes) it.
func TestCostPlusInAnotherCurrency(t *testing.T) {
	f := costPlusFixture(t)
	ctx := context.Background()
	if _, err := f.runner.Customers.Create(ctx, billing.Customer{ID: "eu", Name: "EU shop", Currency: "EUR"}); err != nil {
		t.Fatal(err)
	}
	if err := f.prices.AssignCard(ctx, "eu", "plus-eur", pricing.MustParseMonth("2026-01")); err != nil {
		t.Fatal(err)
	}
	f.events(
		ev{customer: "eu", country: "DE", category: "marketing", at: "2026-02-10 10:00:00", ingested: "2026-02-10 10:00:01", qty: 100},
		ev{customer: "eu", country: "FR", category: "marketing", at: "2026-02-10 10:00:00", ingested: "2026-02-10 10:00:01", qty: 10},
	)
	f.clock.Set(time.Date(2026, 3, 2, 2, 0, 0, 0, time.UTC))
	run := f.run("2026-02")
	if run.Created != 0 || run.Unbilled != 2 {
		t.Fatalf("run without a rate: %+v", run)
	}
	rows, err := f.store.Unbilled(ctx, pricing.MustParseMonth("2026-02"))
	if err != nil || len(rows) != 2 || rows[0].Reason != billing.UnbilledNoExchangeRate || !strings.Contains(rows[0].Detail, "no USD to EUR rate is recorded for 2026-02") {
		t.Fatalf("unbilled %+v %v", rows, err)
	}
	// January's rate is no rate for February.
	for _, x := range []pricing.ExchangeRate{
		{From: "USD", To: "EUR", Month: pricing.MustParseMonth("2026-01"), Rate: decimal.RequireFromString("0.95")},
		{From: "USD", To: "EUR", Month: pricing.MustParseMonth("2026-02"), Rate: decimal.RequireFromString("0.9")},
	} {
		if _, err := f.prices.SetExchangeRate(ctx, x); err != nil {
			t.Fatal(err)
		}
	}
	run = f.run("2026-02")
	if run.Created != 1 || run.Unbilled != 0 {
		t.Fatalf("run with the rate: %+v", run)
	}
	inv := f.live("eu", "2026-02")
	// DE: 100 × 0.10 × 0.9 × 1.10 + 100 × 0.001 = 10.00; FR (Other): 10 × 0.05 × 0.9 × 1.1 + 0.01 = 0.505, below the floor 0.60.
	if inv.Currency != "EUR" || inv.Total.String() != "10.60" || len(inv.ExchangeRates) != 1 || inv.ExchangeRates[0].Rate.String() != "0.9" {
		t.Fatalf("invoice %s %s %+v %+v", inv.Currency, inv.Total, inv.ExchangeRates, inv.Lines)
	}
	if fr := inv.Lines[1]; fr.Amount.String() != "0.60" || !fr.CostPlus.FloorApplied {
		t.Errorf("floor: %+v %+v", fr, fr.CostPlus)
	}
	fin, err := f.runner.Approve(ctx, inv.ID)
	if err != nil {
		t.Fatal(err)
	}
	if doc := string(fin.Document()); !strings.Contains(doc, `"exchange_rates":[{"from":"USD","to":"EUR","month":"2026-02","rate":"0.9"`) {
		t.Errorf("frozen document %s", doc)
	}
	pdf, err := f.runner.Document(ctx, fin, billing.FormatPDF)
	if err != nil {
		t.Fatal(err)
	}
	if text := pdfText(t, pdf); !strings.Contains(text, "1 USD = 0.9 EUR") {
		t.Errorf("PDF lacks the rate:\n%s", text)
	}
	// No cost card in effect: cost-plus cannot be priced.
	if _, err := f.env.PG.Exec(ctx, `DELETE FROM cost_card_schedule`); err != nil {
		t.Fatal(err)
	}
	f.events(ev{customer: "cp", country: "DE", category: "marketing", at: "2026-02-11 10:00:00", ingested: "2026-02-11 10:00:01", qty: 1})
	f.runner = &billing.Runner{Invoices: f.store, Customers: f.runner.Customers, Usage: f.runner.Usage, Pricing: f.prices, Locks: f.runner.Locks, Now: f.clock.Now, Grace: 72 * time.Hour}
	f.run("2026-02")
	rows, _ = f.store.Unbilled(ctx, pricing.MustParseMonth("2026-02"))
	if len(rows) != 1 || rows[0].CustomerID != "cp" || rows[0].Reason != billing.UnbilledNoCostCard {
		t.Fatalf("without a cost card: %+v", rows)
	}
}

// A card version's unmapped rule prices categories it does not list; a
// version without one leaves their rows unbilled. A new version with the
// rule applies from its month.
func TestUnmappedRuleThroughARun(t *testing.T) {
	f := newFixture(t, "a")
	v := testVersion("0.0125")
	v.Unmapped = "marketing"
	f.activate(v, "2026-11")
	for _, m := range []string{"2026-10", "2026-11"} {
		f.events(
			ev{customer: "a", country: "DE", category: "marketing", at: m + "-05 10:00:00", ingested: m + "-05 10:00:01", qty: 4},
			ev{customer: "a", country: "DE", category: "marketing_lite", at: m + "-05 10:00:00", ingested: m + "-05 10:00:01", qty: 4},
		)
	}
	f.run("2026-10")
	oct := f.live("a", "2026-10")
	if oct.Total.String() != "0.05" || len(oct.Unbilled) != 1 || oct.Unbilled[0].Category != "marketing_lite" {
		t.Fatalf("October %s %+v", oct.Total, oct.Unbilled)
	}
	f.clock.Set(time.Date(2026, 12, 1, 2, 0, 0, 0, time.UTC))
	f.run("2026-11")
	nov := f.live("a", "2026-11")
	if nov.Total.String() != "0.10" || len(nov.Unbilled) != 0 || len(nov.Lines) != 1 || nov.Lines[0].Quantity != 8 ||
		len(nov.Lines[0].Unmapped) != 1 || !strings.Contains(nov.Lines[0].Description, "including marketing_lite") {
		t.Fatalf("November %s %+v %+v", nov.Total, nov.Lines, nov.Unbilled)
	}
}

// The cost card in effect changes on the 1st: a second cost card
// scheduled from April rates April's usage, the first March's, down to
// the last second of March and the first of April; in runs of both months
// by one Runner (whose pipeline caches the cost card per month), the
// month-to-date bill and RateAtCost.
func TestCostCardScheduleChangesOnTheFirst(t *testing.T) {
	f := costPlusFixture(t)
	ctx := context.Background()
	f.card(pricing.RateCard{ID: "upstream-b", Name: "Upstream B", Currency: "USD", Kind: pricing.KindCost}, costVersion("upstream-b", "0.20"), "2026-04")
	f.at("2026-04", func() {
		if err := f.prices.SetCostCard(ctx, "upstream-b", pricing.MustParseMonth("2026-04")); err != nil {
			t.Fatal(err)
		}
	})
	f.events(
		ev{customer: "cp", country: "DE", category: "marketing", at: "2026-03-31 23:59:59", ingested: "2026-04-01 00:00:01", qty: 100},
		ev{customer: "cp", country: "DE", category: "marketing", at: "2026-04-01 00:00:00", ingested: "2026-04-01 00:00:01", qty: 100},
	)
	// The month-to-date bill of April, before March is invoiced.
	f.clock.Set(time.Date(2026, 4, 15, 0, 0, 0, 0, time.UTC))
	up, err := f.runner.Upcoming(ctx, "cp")
	if err != nil {
		t.Fatal(err)
	}
	if up.Total.String() != "22.10" || up.CostCard == nil || up.CostCard.CardID != "upstream-b" { // 100 × 0.20 × 1.10 + 100 × 0.001
		t.Fatalf("April month-to-date %s %+v: %+v", up.Total, up.CostCard, up.Lines)
	}
	f.clock.Set(time.Date(2026, 5, 1, 2, 0, 0, 0, time.UTC))
	f.run("2026-04")
	f.run("2026-03")
	mar, apr := f.live("cp", "2026-03"), f.live("cp", "2026-04")
	if mar.Total.String() != "13.30" || mar.CostCard == nil || mar.CostCard.CardID != "upstream" || mar.CostCard.Version != 2 {
		t.Errorf("March %s %+v: %+v", mar.Total, mar.CostCard, mar.Lines)
	}
	if apr.Total.String() != "22.10" || apr.CostCard == nil || apr.CostCard.CardID != "upstream-b" || apr.CostCard.Version != 1 {
		t.Errorf("April %s %+v: %+v", apr.Total, apr.CostCard, apr.Lines)
	}
	if l := apr.Lines[0]; l.CostPlus == nil || l.CostPlus.Cost.String() != "20" || l.CostPlus.UnitCost.String() != "0.2" {
		t.Errorf("April line %+v", l.CostPlus)
	}
	// At cost, through one Rating asked in either order.
	g := billing.NewRating(f.prices)
	usage := []billing.Member{{Customer: billing.Customer{ID: "cp", Currency: "USD"}, Usage: []pricing.Usage{{Country: "DE", Category: "marketing", Quantity: 100}}}}
	for _, c := range []struct{ month, card, cost string }{{"2026-04", "upstream-b", "20"}, {"2026-03", "upstream", "12"}, {"2026-02", "upstream", "10"}, {"2026-05", "upstream-b", "20"}} {
		m := pricing.MustParseMonth(c.month)
		card, rt, err := g.CostCard(ctx, m)
		if err != nil || card.ID != c.card || rt.Version().CardID != c.card {
			t.Fatalf("%s: cost card %s %v, want %s", c.month, card.ID, err, c.card)
		}
		res, err := g.RateAtCost(ctx, m, usage)
		if err != nil || res[0].CardID != c.card || res[0].Result.Total.String() != c.cost {
			t.Errorf("%s at cost: %+v %v, want %s on %s", c.month, res, err, c.cost, c.card)
		}
	}
	// Before the first scheduled month no cost card is in effect.
	if _, _, err := g.CostCard(ctx, pricing.MustParseMonth("2025-12")); postage.ErrorCode(err) != postage.ENOTFOUND {
		t.Fatalf("December 2025: %v", err)
	}
}

// A Rating with a clock (a Runner's, which lives as long as the process)
// does not keep what is in effect in a month that has not begun: a cost
// card scheduled, or a version activated, for next month after the Rating
// was asked about it is what rates that month.
func TestRatingDoesNotCacheMonthsNotBegun(t *testing.T) {
	f := costPlusFixture(t)
	ctx := context.Background()
	f.clock.Set(time.Date(2026, 3, 15, 0, 0, 0, 0, time.UTC))
	g := billing.NewRating(f.prices)
	g.Now = f.clock.Now
	apr := pricing.MustParseMonth("2026-04")
	if card, rt, err := g.CostCard(ctx, apr); err != nil || card.ID != "upstream" || rt.Version().Number != 2 {
		t.Fatalf("April before: %s %v", card.ID, err)
	}
	f.card(pricing.RateCard{ID: "upstream"}, costVersion("upstream", "0.15"), "2026-04")
	if rt, err := g.InEffect(ctx, "upstream", apr); err != nil || rt.Version().Number != 3 {
		t.Fatalf("April's version of upstream after activating version 3 from April: %v", err)
	}
	f.card(pricing.RateCard{ID: "upstream-b", Name: "Upstream B", Currency: "USD", Kind: pricing.KindCost}, costVersion("upstream-b", "0.20"), "2026-04")
	if err := f.prices.SetCostCard(ctx, "upstream-b", apr); err != nil {
		t.Fatal(err)
	}
	card, _, err := g.CostCard(ctx, apr)
	if err != nil || card.ID != "upstream-b" {
		t.Fatalf("April after scheduling upstream-b: %s %v", card.ID, err)
	}
	// March has begun: its cost card is the first's, whatever happens later.
	if card, rt, err := g.CostCard(ctx, pricing.MustParseMonth("2026-03")); err != nil || card.ID != "upstream" || rt.Version().Number != 2 {
		t.Fatalf("March: %s %v", card.ID, err)
	}
}

// RateGroupAtCostVersion prices a month as if a cost card version not in
// effect were (a margin simulation's proposed upstream prices): a
// cost-plus customer over it, a customer on the cost card itself at it,
// a fixed-price customer as RateGroup does; in another currency at the
// month's exchange rate.
func TestRateGroupAtCostVersion(t *testing.T) {
	f := costPlusFixture(t)
	ctx := context.Background()
	f.card(pricing.RateCard{ID: "fixed", Name: "Fixed", Currency: "USD"}, costVersion("fixed", "0.30"), "2026-01")
	for _, c := range []struct{ id, currency, card string }{{"at-cost", "USD", "upstream"}, {"fix", "USD", "fixed"}, {"eu", "EUR", "plus-eur"}} {
		if _, err := f.runner.Customers.Create(ctx, billing.Customer{ID: c.id, Name: c.id, Currency: c.currency}); err != nil {
			t.Fatal(err)
		}
		if err := f.prices.AssignCard(ctx, c.id, c.card, pricing.MustParseMonth("2026-01")); err != nil {
			t.Fatal(err)
		}
	}
	feb := pricing.MustParseMonth("2026-02")
	if _, err := f.prices.SetExchangeRate(ctx, pricing.ExchangeRate{From: "USD", To: "EUR", Month: feb, Rate: decimal.RequireFromString("0.9")}); err != nil {
		t.Fatal(err)
	}
	// The upstream's proposed prices: DE marketing 0.20 (0.10 in effect).
	d, err := f.prices.CreateDraft(ctx, costVersion("upstream", "0.20"))
	if err != nil {
		t.Fatal(err)
	}
	g := billing.NewRating(f.prices)
	proposed, err := g.Compile(d)
	if err != nil {
		t.Fatal(err)
	}
	usage := []pricing.Usage{{Country: "DE", Category: "marketing", Quantity: 100}}
	for _, c := range []struct{ id, currency, now, proposed string }{
		{"cp", "USD", "11.10", "22.10"},      // 100 × 0.10 × 1.10 + 0.10 → 100 × 0.20 × 1.10 + 0.10
		{"at-cost", "USD", "10.00", "20.00"}, // the cost card's own prices
		{"fix", "USD", "30.00", "30.00"},     // a fixed price does not move
		{"eu", "EUR", "10.00", "19.90"},      // 100 × 0.20 × 0.9 × 1.10 + 0.10
	} {
		group := []billing.Member{{Customer: billing.Customer{ID: c.id, Currency: c.currency}, Usage: usage}}
		cur, err := g.RateGroup(ctx, nil, feb, group)
		if err != nil {
			t.Fatal(err)
		}
		prop, err := g.RateGroupAtCostVersion(ctx, nil, feb, group, proposed)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := cur[0].Result.Total.StringFixed(2)+" → "+prop[0].Result.Total.StringFixed(2), c.now+" → "+c.proposed; got != want || prop[0].Unbilled != "" {
			t.Errorf("%s: %s, want %s (%s %s)", c.id, got, want, prop[0].Unbilled, prop[0].Detail)
		}
		if c.id == "cp" && (prop[0].Basis != proposed || prop[0].Result.Cost == nil || prop[0].Result.Cost.Version != d.Number) {
			t.Errorf("cp's basis %+v, cost %+v: want the proposed version", prop[0].Basis.Version(), prop[0].Result.Cost)
		}
	}
}
