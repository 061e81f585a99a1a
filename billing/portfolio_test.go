package billing_test

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"postage"
	"postage/billing"
	"postage/pricing"
)

// portfolio makes members of parent from month `from` (set while the clock
// is in the month before, as the rule wants).
func (f *fixture) portfolio(parent string, consolidated bool, from string, members ...string) {
	f.t.Helper()
	ctx := context.Background()
	cs := f.runner.Customers.(interface {
		SetPortfolio(context.Context, billing.PortfolioSetting) (billing.PortfolioSetting, error)
	})
	now := f.clock.Now()
	f.clock.Set(pricing.MustParseMonth(from).Prev().Start())
	defer f.clock.Set(now)
	m := pricing.MustParseMonth(from)
	if _, err := cs.SetPortfolio(ctx, billing.PortfolioSetting{CustomerID: parent, EffectiveFrom: m, Consolidated: consolidated}); err != nil {
		f.t.Fatal(err)
	}
	for _, c := range members {
		if _, err := cs.SetPortfolio(ctx, billing.PortfolioSetting{CustomerID: c, EffectiveFrom: m, ParentID: parent}); err != nil {
			f.t.Fatal(err)
		}
	}
}

func tierQuantities(l billing.Line) []int64 {
	var out []int64
	for _, t := range l.Tiers {
		out = append(out, t.Quantity)
	}
	return out
}

// The members of a portfolio share the tier count of a (market, category):
// GB is 0.02 up to 10 messages, then 0.015. m1 and m2 send 6 each: neither
// crosses 10, the portfolio does. Before the portfolio takes effect each
// pays for itself.
func TestPortfolioSharesTiersThroughARun(t *testing.T) {
	f := newFixture(t, "parent", "m1", "m2", "alone")
	f.portfolio("parent", false, "2026-10", "m1", "m2")
	for _, month := range []string{"2026-09", "2026-10"} {
		f.events(
			ev{customer: "m1", country: "GB", category: "marketing", at: month + "-05 10:00:00", ingested: month + "-05 10:00:01", qty: 6},
			ev{customer: "m2", country: "GB", category: "marketing", at: month + "-06 10:00:00", ingested: month + "-06 10:00:01", qty: 6},
			ev{customer: "alone", country: "GB", category: "marketing", at: month + "-06 10:00:00", ingested: month + "-06 10:00:01", qty: 6},
		)
	}
	f.clock.Set(time.Date(2026, 10, 1, 2, 0, 0, 0, time.UTC))
	f.run("2026-09")
	f.clock.Set(time.Date(2026, 11, 1, 2, 0, 0, 0, time.UTC))
	run := f.run("2026-10")
	if run.Created != 3 || run.Unbilled != 0 {
		t.Fatalf("run %+v", run)
	}
	// September: no portfolio yet, 6 × 0.02 each.
	for _, c := range []string{"m1", "m2", "alone"} {
		if inv := f.live(c, "2026-09"); inv.Total.String() != "0.12" || inv.Lines[0].PoolQuantity != 0 {
			t.Errorf("%s September: %s %+v", c, inv.Total, inv.Lines)
		}
	}
	// October: the portfolio's 12 messages reach the second tier. The
	// units interleave (equal quantities: m1, m2, m1, ...), so each has 5
	// in the first tier and 1 in the second: 0.115 each, 0.23 together,
	// the portfolio priced as one (10 × 0.02 + 2 × 0.015). Rounded once
	// for both: 0.23, the half cent to the first member.
	m1, m2 := f.live("m1", "2026-10"), f.live("m2", "2026-10")
	if m1.Total.String() != "0.12" || m2.Total.String() != "0.11" {
		t.Fatalf("totals %s %s, want 0.12 0.11", m1.Total, m2.Total)
	}
	for _, inv := range []billing.Invoice{m1, m2} {
		l := inv.Lines[0]
		if got := tierQuantities(l); len(got) != 2 || got[0] != 5 || got[1] != 1 || l.PoolQuantity != 12 || l.Quantity != 6 {
			t.Errorf("%s: tiers %v pool %d quantity %d", inv.CustomerID, got, l.PoolQuantity, l.Quantity)
		}
	}
	if alone := f.live("alone", "2026-10"); alone.Total.String() != "0.12" {
		t.Errorf("alone: %s", alone.Total)
	}
	// The parent without usage gets no invoice; its members have no sections.
	if got := f.invoices(billing.InvoiceFilter{CustomerID: "parent"}); len(got) != 0 {
		t.Errorf("parent invoices %+v", got)
	}
	if len(m1.Sections) != 0 || m1.Lines[0].Member != "" {
		t.Errorf("m1 %+v %+v", m1.Sections, m1.Lines[0])
	}
	// The month-to-date bill of a member in November counts the portfolio too.
	f.events(
		ev{customer: "m1", country: "GB", category: "marketing", at: "2026-11-02 10:00:00", ingested: "2026-11-02 10:00:01", qty: 8},
		ev{customer: "m2", country: "GB", category: "marketing", at: "2026-11-02 10:00:00", ingested: "2026-11-02 10:00:01", qty: 8},
	)
	f.clock.Set(time.Date(2026, 11, 3, 0, 0, 0, 0, time.UTC))
	up, err := f.runner.Upcoming(context.Background(), "m2")
	if err != nil {
		t.Fatal(err)
	}
	// 16 in the portfolio: 5 + 3 each... m1 and m2 have 8 each: 5 in the first tier, 3 in the second.
	if l := up.Lines[0]; l.PoolQuantity != 16 || len(l.Tiers) != 2 || l.Tiers[0].Quantity != 5 || l.Tiers[1].Quantity != 3 {
		t.Fatalf("upcoming of m2: %+v", up.Lines)
	}
}

// A consolidating parent gets one invoice with a section per member; its
// members get none. Its frozen document keeps the sections.
func TestConsolidatedInvoice(t *testing.T) {
	f := newFixture(t, "group", "shop-a", "shop-b")
	f.portfolio("group", true, "2026-10", "shop-a", "shop-b")
	f.events(
		ev{customer: "shop-a", country: "GB", category: "marketing", at: "2026-10-05 10:00:00", ingested: "2026-10-05 10:00:01", qty: 6},
		ev{customer: "shop-b", country: "GB", category: "marketing", at: "2026-10-06 10:00:00", ingested: "2026-10-06 10:00:01", qty: 6},
		ev{customer: "shop-b", country: "DE", category: "marketing", at: "2026-10-06 10:00:00", ingested: "2026-10-06 10:00:01", qty: 4},
		ev{customer: "group", country: "DE", category: "marketing", at: "2026-10-07 10:00:00", ingested: "2026-10-07 10:00:01", qty: 2},
		ev{customer: "shop-a", country: "DE", category: "brand_new", at: "2026-10-07 10:00:00", ingested: "2026-10-07 10:00:01", qty: 3},
	)
	run := f.run("2026-10")
	if run.Created != 1 {
		t.Fatalf("run %+v", run)
	}
	for _, c := range []string{"shop-a", "shop-b"} {
		if got := f.invoices(billing.InvoiceFilter{CustomerID: c}); len(got) != 0 {
			t.Errorf("%s has invoices %+v", c, got)
		}
	}
	inv := f.live("group", "2026-10")
	type line struct {
		member, market, amount string
		q                      int64
	}
	var got []line
	for _, l := range inv.Lines {
		got = append(got, line{l.Member, l.Market, l.Amount.String(), l.Quantity})
	}
	// group: DE 2 × 0.0125 = 0.025 → 0.02 (one rounding of the portfolio's DE line, shared: 0.025 + 0.05 = 0.075 → 0.08);
	// shop-a: GB 0.115, shop-b: GB 0.115 (0.23 → 0.12 + 0.11), DE 4 × 0.0125 = 0.05.
	want := []line{
		{"group", "DE", "0.03", 2},
		{"shop-a", "GB", "0.12", 6},
		{"shop-b", "DE", "0.05", 4},
		{"shop-b", "GB", "0.11", 6},
	}
	if len(got) != len(want) {
		t.Fatalf("lines %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if inv.Total.String() != "0.31" {
		t.Errorf("total %s", inv.Total)
	}
	var secs []string
	for _, s := range inv.Sections {
		secs = append(secs, s.CustomerID+" "+s.Name+" "+s.Total.String())
	}
	if strings.Join(secs, "|") != "group Customer group 0.03|shop-a Customer shop-a 0.12|shop-b Customer shop-b 0.16" {
		t.Errorf("sections %q", secs)
	}
	// The row the card cannot price is on the invoice, named with its member.
	if len(inv.Unbilled) != 1 || inv.Unbilled[0].Member != "shop-a" || inv.Unbilled[0].Category != "brand_new" || inv.Unbilled[0].Reason != billing.UnbilledUnmappedCategory {
		t.Errorf("unbilled %+v", inv.Unbilled)
	}
	// Finalized: the frozen document, the CSV and the PDF show the sections.
	fin, err := f.runner.Approve(context.Background(), inv.ID)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(fin.Document())
	if !strings.Contains(doc, `"sections":[{"customer_id":"group"`) || !strings.Contains(doc, `"member":"shop-b"`) || !strings.Contains(doc, `"unbilled":[`) {
		t.Errorf("frozen document %s", doc)
	}
	csv, err := f.runner.Document(context.Background(), fin, billing.FormatCSV)
	if err != nil || !strings.Contains(string(csv), "shop-b") || !strings.Contains(string(csv), "brand_new") {
		t.Errorf("CSV %s %v", csv, err)
	}
	pdf, err := f.runner.Document(context.Background(), fin, billing.FormatPDF)
	if err != nil {
		t.Fatal(err)
	}
	if text := pdfText(t, pdf); !strings.Contains(text, "Customer shop-a") || !strings.Contains(text, "brand_new") || !strings.Contains(text, "Not billed") {
		t.Errorf("PDF text:\n%s", text)
	}
}

// A member's late usage changes its portfolio's tiers: the other members'
// months are re-rated too, and each bills the difference on its next invoice.
func TestPortfolioLateUsageAdjustsEveryMember(t *testing.T) {
	f := newFixture(t, "parent", "m1", "m2")
	f.portfolio("parent", false, "2026-10", "m1", "m2")
	f.events(
		ev{customer: "m1", country: "GB", category: "marketing", at: "2026-10-05 10:00:00", ingested: "2026-10-05 10:00:01", qty: 5},
		ev{customer: "m2", country: "GB", category: "marketing", at: "2026-10-05 10:00:00", ingested: "2026-10-05 10:00:01", qty: 5},
	)
	f.run("2026-10")
	for _, c := range []string{"m1", "m2"} {
		inv := f.live(c, "2026-10")
		if inv.Total.String() != "0.10" {
			t.Fatalf("%s: %s", c, inv.Total)
		}
		if _, err := f.runner.Approve(context.Background(), inv.ID); err != nil {
			t.Fatal(err)
		}
	}
	// 10 more of m2's October, ingested in November: the portfolio's 20
	// split m1 3 + 2, m2 7 + 8 between the tiers: m1 0.09 (was 0.10), m2 0.26.
	f.events(ev{customer: "m2", country: "GB", category: "marketing", at: "2026-10-30 10:00:00", ingested: "2026-11-10 10:00:00", qty: 10})
	f.events(ev{customer: "m1", country: "DE", category: "marketing", at: "2026-11-05 10:00:00", ingested: "2026-11-05 10:00:01", qty: 8})
	f.clock.Set(time.Date(2026, 12, 1, 2, 0, 0, 0, time.UTC))
	f.run("2026-11")
	m1, m2 := f.live("m1", "2026-11"), f.live("m2", "2026-11")
	if m1.Adjustments.String() != "-0.01" || m2.Adjustments.String() != "0.16" {
		t.Fatalf("adjustments m1 %s (%+v), m2 %s (%+v)", m1.Adjustments, m1.Lines, m2.Adjustments, m2.Lines)
	}
	// In all, October is billed as the portfolio's 20 messages priced as
	// one: 10 × 0.02 + 10 × 0.015 = 0.35 = 0.10 + 0.10 + 0.15.
	if got := m1.Adjustments.Add(m2.Adjustments.Decimal); got.String() != "0.15" {
		t.Errorf("adjustments add up to %s", got)
	}
	for _, l := range m1.Lines {
		if l.Kind == billing.KindAdjustment && (l.Quantity != 0 || l.Period.String() != "2026-10") {
			t.Errorf("m1's adjustment %+v", l)
		}
	}
}

// Portfolio settings: effective from a later month only (the month in
// progress never changes), one level deep, one currency; given when a
// customer is created they apply from that month.
func TestPortfolioRules(t *testing.T) {
	f := newFixture(t, "p", "q", "a", "b")
	ctx := context.Background()
	cs := f.runner.Customers
	oct, nov := pricing.MustParseMonth("2026-10"), pricing.MustParseMonth("2026-11")
	f.clock.Set(time.Date(2026, 10, 15, 12, 0, 0, 0, time.UTC))
	set := func(c, parent string, from pricing.Month) error {
		_, err := cs.SetPortfolio(ctx, billing.PortfolioSetting{CustomerID: c, ParentID: parent, EffectiveFrom: from})
		return err
	}
	if err := set("a", "p", oct); postage.ErrorCode(err) != postage.EINVALID {
		t.Errorf("this month: %v", err)
	}
	if err := set("a", "p", nov); err != nil {
		t.Fatal(err)
	}
	if c, _ := cs.Get(ctx, "a"); c.ParentID != "" {
		t.Errorf("a's parent shows %q in October", c.ParentID)
	}
	for name, err := range map[string]error{
		"self":                  set("b", "b", nov),
		"unknown parent":        set("b", "nobody", nov),
		"parent is a member":    set("b", "a", nov),
		"member becomes parent": set("p", "q", pricing.MustParseMonth("2027-01")),
		"unknown customer":      set("nobody", "p", nov),
	} {
		want := postage.ECONFLICT
		switch name {
		case "self":
			want = postage.EINVALID
		case "unknown parent", "unknown customer":
			want = postage.ENOTFOUND
		}
		if postage.ErrorCode(err) != want {
			t.Errorf("%s: %v, want %s", name, err, want)
		}
	}
	// p has a member from November on: it cannot join q from then.
	if err := set("p", "q", nov); postage.ErrorCode(err) != postage.ECONFLICT {
		t.Errorf("p under q from November: %v", err)
	}
	// Currency: a EUR customer cannot join a USD parent, nor can a parent change currency under its members.
	if _, err := cs.Create(ctx, billing.Customer{ID: "eu", Name: "EU", Currency: "EUR"}); err != nil {
		t.Fatal(err)
	}
	if err := set("eu", "p", nov); postage.ErrorCode(err) != postage.ECONFLICT {
		t.Errorf("EUR under USD: %v", err)
	}
	eur := "EUR"
	if _, err := cs.Update(ctx, "p", billing.CustomerUpdate{Currency: &eur}); postage.ErrorCode(err) != postage.ECONFLICT {
		t.Errorf("parent currency change: %v", err)
	}
	// Created with a parent: from the month of creation.
	c, err := cs.Create(ctx, billing.Customer{ID: "c", Name: "C", Currency: "USD", ParentID: "q"})
	if err != nil || c.ParentID != "q" {
		t.Fatalf("%+v %v", c, err)
	}
	hist, err := cs.PortfolioHistory(ctx, "c")
	if err != nil || len(hist) != 1 || hist[0].EffectiveFrom != oct || hist[0].ParentID != "q" {
		t.Fatalf("%+v %v", hist, err)
	}
	pf, err := cs.PortfoliosIn(ctx, nov)
	if err != nil || strings.Join(pf.Group("a"), ",") != "p,a" || strings.Join(pf.Group("q"), ",") != "q,c" || pf.Account("a") != "a" {
		t.Fatalf("%v %v %v", pf.Group("a"), pf.Group("q"), err)
	}
	// Leaving: a NULL parent from December.
	if err := set("a", "", pricing.MustParseMonth("2026-12")); err != nil {
		t.Fatal(err)
	}
	pf, _ = cs.PortfoliosIn(ctx, pricing.MustParseMonth("2026-12"))
	if len(pf.Group("a")) != 1 {
		t.Errorf("a still in %v", pf.Group("a"))
	}
}

// Random months of two portfolios (one consolidating, one not) and a
// customer alone, through runs: every portfolio's invoices add up exactly
// (quantities, rounded amounts, totals) to its usage rated as ONE
// customer on the same card version, line by line; a consolidated
// invoice's sections add up to its total; the rows of a category the card
// does not list are unbilled row by row while the rest of the month bills.
func TestPortfolioInvoicesAddUpToThePortfolioRatedAsOne(t *testing.T) {
	f := newFixture(t, "grp", "a", "b", "c", "p2", "x", "y", "solo")
	f.portfolio("grp", true, "2026-06", "a", "b", "c")
	f.portfolio("p2", false, "2026-06", "x", "y")
	groups := [][]string{{"grp", "a", "b", "c"}, {"p2", "x", "y"}, {"solo"}}
	rng := rand.New(rand.NewPCG(20, 26))
	ctx := context.Background()
	for _, month := range []string{"2026-06", "2026-07", "2026-08", "2026-09"} {
		m := pricing.MustParseMonth(month)
		used := map[string][]pricing.Usage{}
		var evs []ev
		for _, g := range groups {
			for _, c := range g {
				// GB's tier edge (10) is crossed by the portfolio more often
				// than by a member; DE's 0.0125 leaves half cents to share;
				// marketing_lite is on no card; session is free.
				for _, u := range []struct {
					country, category string
					max               int
				}{{"GB", "marketing", 8}, {"DE", "marketing", 7}, {"FR", "marketing", 5}, {"DE", "marketing_lite", 4}, {"GB", "session", 3}} {
					q := rng.IntN(u.max + 1)
					if q == 0 {
						continue
					}
					evs = append(evs, ev{customer: c, country: u.country, category: u.category, at: month + "-10 10:00:00", ingested: month + "-10 10:00:01", qty: uint64(q)})
					used[c] = append(used[c], pricing.Usage{Country: u.country, Category: u.category, Quantity: int64(q)})
				}
			}
		}
		f.events(evs...)
		f.clock.Set(m.End().Add(2 * time.Hour))
		f.run(month)
		rows, err := f.store.Unbilled(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		runUnbilled := map[string]int64{}
		for _, u := range rows {
			if u.Reason != billing.UnbilledUnmappedCategory || u.Category != "marketing_lite" {
				t.Fatalf("%s: unbilled %+v", month, u)
			}
			runUnbilled[u.CustomerID] += u.Quantity
		}

		v, err := f.prices.VersionFor(ctx, "test", m)
		if err != nil {
			t.Fatal(err)
		}
		r, err := pricing.Compile(v)
		if err != nil {
			t.Fatal(err)
		}
		type key struct{ market, category string }
		type sum struct {
			q      int64
			amount decimal.Decimal
		}
		for _, g := range groups {
			var all []pricing.Usage
			for _, c := range g {
				all = append(all, used[c]...)
			}
			one, err := r.Rate(pricing.Overrides{}, all, pricing.RateOptions{CustomerCountry: "DE", Month: m})
			if err != nil {
				t.Fatal(err)
			}
			want := map[key]sum{}
			for _, l := range one.Lines {
				want[key{l.Market, l.Category}] = sum{l.Quantity, l.Amount}
			}
			wantUnbilled := map[string]int64{}
			for _, c := range g {
				for _, u := range used[c] {
					if u.Category == "marketing_lite" {
						wantUnbilled[c] += u.Quantity
					}
				}
			}
			var invs []billing.Invoice
			for _, c := range g {
				got := f.invoices(billing.InvoiceFilter{CustomerID: c, Period: m})
				if c != "grp" && g[0] == "grp" && len(got) != 0 {
					t.Fatalf("%s %s: a member of a consolidating parent has invoices %+v", month, c, got)
				}
				invs = append(invs, got...)
			}
			got := map[key]sum{}
			gotUnbilled := map[string]int64{}
			var total decimal.Decimal
			for _, inv := range invs {
				var lines, sections decimal.Decimal
				for _, l := range inv.Lines {
					k := key{l.Market, l.Category}
					got[k] = sum{got[k].q + l.Quantity, got[k].amount.Add(l.Amount.Decimal)}
					lines = lines.Add(l.Amount.Decimal)
				}
				for _, s := range inv.Sections {
					sections = sections.Add(s.Total.Decimal)
				}
				if !lines.Equal(inv.Total.Decimal) || (len(inv.Sections) > 0 && !sections.Equal(inv.Total.Decimal)) {
					t.Fatalf("%s %s: lines %s, sections %s, total %s", month, inv.CustomerID, lines, sections, inv.Total)
				}
				for _, u := range inv.Unbilled {
					if u.Reason != billing.UnbilledUnmappedCategory || u.Category != "marketing_lite" {
						t.Fatalf("%s %s: unbilled %+v", month, inv.CustomerID, u)
					}
					who := inv.CustomerID
					if u.Member != "" {
						who = u.Member
					}
					gotUnbilled[who] += u.Quantity
				}
				total = total.Add(inv.Total.Decimal)
			}
			if len(got) != len(want) {
				t.Fatalf("%s %v: lines %v, the portfolio rated as one %v", month, g, got, want)
			}
			for k, w := range want {
				if s := got[k]; s.q != w.q || !s.amount.Equal(w.amount) {
					t.Errorf("%s %v %v: invoices bill %d for %s, the portfolio rated as one %d for %s", month, g, k, s.q, s.amount, w.q, w.amount)
				}
			}
			if !total.Equal(one.Total) {
				t.Errorf("%s %v: invoices add up to %s, the portfolio rated as one to %s", month, g, total, one.Total)
			}
			// The run lists every unbilled row; an invoice lists those of
			// the usage it bills (a customer whose month has only such rows
			// gets no invoice).
			for c, q := range gotUnbilled {
				if wantUnbilled[c] != q {
					t.Errorf("%s %s: invoice lists %d unbilled, want %d", month, c, q, wantUnbilled[c])
				}
			}
			for _, c := range g {
				if runUnbilled[c] != wantUnbilled[c] {
					t.Errorf("%s %s: the run left %d unbilled, want %d", month, c, runUnbilled[c], wantUnbilled[c])
				}
			}
		}
	}
}
