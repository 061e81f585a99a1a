package reports

import (
	"context"
	"encoding/csv"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"postage"
	"postage/billing"
	billingpg "postage/billing/pgstore"
	"postage/internal/testenv"
	"postage/metering"
	"postage/metering/meteringtest"
	"postage/pricing"
	"postage/pricing/pgstore"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// now is the fixed clock of these tests: 2026-11-20 12:00 UTC, 19.5 days
// into a 30-day November.
var now = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)

var (
	aug = pricing.MustParseMonth("2026-08")
	sep = pricing.MustParseMonth("2026-09")
	oct = pricing.MustParseMonth("2026-10")
	nov = pricing.MustParseMonth("2026-11")
)

// use is test usage: a customer-month row, stored as one event (quantity
// may exceed 1) plus, for the first row, a duplicate re-send that must
// count once.
type use struct {
	customer string
	month    pricing.Month
	country  string
	category string
	quantity int64
}

// fixture is the book the tests read:
//   - acme (IN) on the default launch card;
//   - globex (DE) assigned meta-2026-01 from 2026-09;
//   - initech (BR) on launch with a 10% card discount;
//   - hooli (US), big enough to cross the first launch tier in October;
//   - ghost, usage of an id that is no customer.
var fixture = []use{
	{"acme", aug, "IN", "marketing", 1000},
	{"acme", aug, "IN", "utility", 500},
	{"acme", aug, "IN", "service", 200},
	{"acme", aug, "DE", "authentication", 300},
	{"acme", sep, "IN", "marketing", 1200},
	{"acme", oct, "BR", "marketing", 700},
	{"acme", nov, "IN", "marketing", 390},
	{"globex", aug, "DE", "marketing", 800},
	{"globex", sep, "DE", "marketing", 900},
	{"globex", sep, "FR", "authentication", 150},
	{"globex", oct, "AT", "utility", 400},
	{"globex", nov, "DE", "utility", 39},
	{"initech", aug, "BR", "marketing", 2000},
	{"initech", oct, "BR", "utility", 333},
	{"hooli", oct, "US", "marketing", 300000},
	{"hooli", oct, "US", "service", 5},
	{"hooli", nov, "US", "marketing", 195000},
	{"ghost", sep, "MX", "marketing", 42},
	{"ghost", nov, "MX", "marketing", 7},
}

var customers = []billing.Customer{
	{ID: "acme", Name: "Acme Ltd", Currency: "USD", Country: "IN"},
	{ID: "globex", Name: "Globex GmbH", Currency: "USD", Country: "DE"},
	{ID: "initech", Name: "Initech Ltda", Currency: "USD", Country: "BR"},
	{ID: "hooli", Name: "Hooli Inc", Currency: "USD", Country: "US"},
}

type world struct {
	svc       *Service
	cards     *pgstore.Store
	customers *billingpg.CustomerStore
	events    *meteringtest.Meter // one server's store, or the cluster's shards
}

// setup stores the fixture's usage and, after it, extra's.
func setup(t *testing.T, extra ...use) *world {
	t.Helper()
	ctx := context.Background()
	env := testenv.NewBackend(t)
	cards := pgstore.New(env.PG)
	if err := cards.Seed(ctx); err != nil {
		t.Fatal(err)
	}
	cs := billingpg.NewCustomerStore(env.PG)
	for _, c := range customers {
		if _, err := cs.Create(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if err := cards.AssignCard(ctx, "globex", pricing.MetaCardID, sep); err != nil {
		t.Fatal(err)
	}
	if err := cards.SetOverrides(ctx, "initech", pricing.Overrides{CardDiscount: decimal.New(10, 0)}); err != nil {
		t.Fatal(err)
	}
	store := meteringtest.Open(t, env)
	var evs []metering.Event
	for i, u := range append(slices.Clone(fixture), extra...) {
		e := metering.Event{
			CustomerID: u.customer, ID: fmt.Sprintf("ev-%d", i),
			Time:    u.month.Start().Add(time.Duration(i) * time.Hour),
			Country: u.country, Category: u.category, Quantity: uint64(u.quantity),
			IngestedAt: now,
		}
		e.PayloadHash = metering.HashPayload(e.Time, true, e.Country, e.Category, e.Quantity)
		evs = append(evs, e)
	}
	in := store.NewIngester(t, metering.IngesterConfig{Now: func() time.Time { return now }})
	defer in.Close()
	if _, err := in.Submit(ctx, evs); err != nil {
		t.Fatal(err)
	}
	// A re-send of the first event in a later request: counts once.
	if st, err := in.Submit(ctx, evs[:1]); err != nil || st[0] != metering.Duplicate {
		t.Fatalf("re-send: %v, %v; want a duplicate", st, err)
	}
	svc := &Service{
		Usage: billing.FromMeter(store.Usage), Series: meterSeries{store.Usage},
		Cards: cards, Customers: cs,
		Now: func() time.Time { return now },
	}
	return &world{svc: svc, cards: cards, customers: cs, events: store}
}

// --- the independent computation: prices read from the seed CSV files ---

func readCSV(t *testing.T, name string) [][]string {
	t.Helper()
	f, err := os.Open("../pricing/seed/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return rows[1:]
}

type priceBook struct {
	launch      map[string]decimal.Decimal // country → notification base price ("*" other)
	metaMarket  map[string]string          // country → market
	metaPrice   map[[2]string]decimal.Decimal
	customerCty map[string]string
}

func prices(t *testing.T) *priceBook {
	pb := &priceBook{launch: map[string]decimal.Decimal{}, metaMarket: map[string]string{}, metaPrice: map[[2]string]decimal.Decimal{}, customerCty: map[string]string{}}
	for _, r := range readCSV(t, "launch-prices.csv") {
		pb.launch[r[0]] = decimal.RequireFromString(r[1])
	}
	for _, r := range readCSV(t, "meta-markets.csv") {
		pb.metaMarket[r[0]] = r[1]
	}
	for _, r := range readCSV(t, "meta-rates-2026-01.csv") {
		pb.metaPrice[[2]string{r[0], r[1]}] = decimal.RequireFromString(r[2])
	}
	for _, c := range customers {
		pb.customerCty[c.ID] = c.Country
	}
	return pb
}

// launchPrice is the graduated launch price of q notifications to one
// country in a month (tiers per pricing/seed/README.md).
func (pb *priceBook) launchAmount(country string, q int64) decimal.Decimal {
	base, ok := pb.launch[country]
	if !ok {
		base = pb.launch["*"]
	}
	bounds := []int64{250_000, 1_000_000, 2_000_000, 5_000_000, 10_000_000, 1 << 62}
	disc := []int64{0, 5, 10, 15, 20, 25}
	var sum decimal.Decimal
	prev := int64(0)
	for i, b := range bounds {
		if q <= prev {
			break
		}
		n := min(q, b) - prev
		p := base.Mul(decimal.New(100-disc[i], -2)).RoundBank(6)
		sum = sum.Add(p.Mul(decimal.NewFromInt(n)))
		prev = b
	}
	return sum
}

func (pb *priceBook) metaLine(customer string, u use) (market, category string, price decimal.Decimal, free bool) {
	market, ok := pb.metaMarket[u.country]
	if !ok {
		market = "Other"
	}
	category = u.category
	if category == "service" {
		return market, "service", decimal.Zero, true
	}
	if category == "authentication" && pb.customerCty[customer] != u.country {
		category = "authentication_international"
		if _, ok := pb.metaPrice[[2]string{market, category}]; !ok {
			return market, category, pb.metaPrice[[2]string{market, "authentication"}], false
		}
	}
	return market, category, pb.metaPrice[[2]string{market, category}], false
}

// expect rates one customer-month by hand: launch lines per country
// (notification = everything but service), meta lines per (market,
// category); each line rounded half-even to cents; discount applied
// before rounding.
func (pb *priceBook) expect(customer string, m pricing.Month, card string, discount int64) (total int64, lines map[[2]string]int64) {
	lines = map[[2]string]int64{}
	qty := map[[2]string]int64{}
	price := map[[2]string]decimal.Decimal{}
	for _, u := range fixture {
		if u.customer != customer || u.month != m {
			continue
		}
		switch card {
		case "launch":
			if u.category == "service" {
				continue
			}
			qty[[2]string{u.country, "notification"}] += u.quantity
		case "meta":
			mk, cat, p, free := pb.metaLine(customer, u)
			if free {
				continue
			}
			k := [2]string{mk, cat}
			qty[k] += u.quantity
			price[k] = p
		}
	}
	for k, q := range qty {
		var exact decimal.Decimal
		if card == "launch" {
			exact = pb.launchAmount(k[0], q)
		} else {
			exact = price[k].Mul(decimal.NewFromInt(q))
		}
		if discount != 0 {
			exact = exact.Mul(decimal.New(100-discount, -2))
		}
		c := exact.RoundBank(2).Shift(2).IntPart()
		lines[k] = c
		total += c
	}
	return total, lines
}

// currentCard is each fixture customer's card and discount in a month.
func currentCard(customer string, m pricing.Month) (string, int64) {
	switch {
	case customer == "globex" && !m.Before(sep):
		return "meta", 0
	case customer == "initech":
		return "launch", 10
	}
	return "launch", 0
}

func cents(c int64) string { return fromMinor(c, 2) }

// --- tests ---

func TestRevenue(t *testing.T) {
	w := setup(t)
	pb := prices(t)
	ctx := context.Background()

	type agg struct {
		cents int64
		qty   int64
	}
	byMonth := map[string]*agg{}
	byCustomer := map[string]*agg{}
	byCountry := map[string]int64{}
	var total agg
	for _, c := range customers {
		for _, m := range []pricing.Month{aug, sep, oct} {
			card, disc := currentCard(c.ID, m)
			tot, lines := pb.expect(c.ID, m, card, disc)
			var q int64
			for _, u := range fixture {
				if u.customer == c.ID && u.month == m {
					q += u.quantity
				}
			}
			if q == 0 {
				continue
			}
			if byMonth[m.String()] == nil {
				byMonth[m.String()] = &agg{}
			}
			byMonth[m.String()].cents += tot
			byMonth[m.String()].qty += q
			if byCustomer[c.ID] == nil {
				byCustomer[c.ID] = &agg{}
			}
			byCustomer[c.ID].cents += tot
			byCustomer[c.ID].qty += q
			total.cents += tot
			total.qty += q
			if card == "launch" {
				for k, v := range lines {
					byCountry[k[0]] += v
				}
			}
		}
	}

	t.Run("month", func(t *testing.T) {
		rep, err := w.svc.Revenue(ctx, RevenueQuery{From: aug, To: oct})
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Rows) != 3 {
			t.Fatalf("rows = %+v, want 3 months", rep.Rows)
		}
		for _, r := range rep.Rows {
			want := byMonth[r.Key]
			if r.Amount != cents(want.cents) || r.Quantity != want.qty || r.Currency != "USD" {
				t.Errorf("month %s: got %s %d, want %s %d", r.Key, r.Amount, r.Quantity, cents(want.cents), want.qty)
			}
		}
		if len(rep.Totals) != 1 || rep.Totals[0].Amount != cents(total.cents) || rep.Totals[0].Quantity != total.qty || rep.Totals[0].Customers != 4 {
			t.Errorf("totals = %+v, want %s %d 4 customers", rep.Totals, cents(total.cents), total.qty)
		}
	})
	t.Run("customer", func(t *testing.T) {
		rep, err := w.svc.Revenue(ctx, RevenueQuery{From: aug, To: oct, GroupBy: ByCustomer})
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Rows) != len(byCustomer) {
			t.Fatalf("got %d rows, want %d", len(rep.Rows), len(byCustomer))
		}
		for i, r := range rep.Rows {
			want := byCustomer[r.Key]
			if r.Amount != cents(want.cents) || r.Quantity != want.qty {
				t.Errorf("customer %s: got %s %d, want %s %d", r.Key, r.Amount, r.Quantity, cents(want.cents), want.qty)
			}
			if i > 0 && rep.Rows[i-1].minor < r.minor {
				t.Errorf("rows not sorted by amount descending at %d", i)
			}
		}
		if rep.Rows[0].Name == rep.Rows[0].Key {
			t.Errorf("customer rows carry the customer's name, got %q", rep.Rows[0].Name)
		}
	})
	t.Run("country adds up", func(t *testing.T) {
		rep, err := w.svc.Revenue(ctx, RevenueQuery{From: aug, To: oct, GroupBy: ByCountry})
		if err != nil {
			t.Fatal(err)
		}
		var sum int64
		got := map[string]int64{}
		for _, r := range rep.Rows {
			sum += r.minor
			got[r.Key] = r.minor
		}
		if sum != total.cents {
			t.Errorf("country rows add up to %s, want %s", cents(sum), cents(total.cents))
		}
		// Launch-only countries (every launch line is one country) are exact.
		if got["US"] != byCountry["US"] {
			t.Errorf("US = %s, want %s", cents(got["US"]), cents(byCountry["US"]))
		}
		for _, r := range rep.Rows {
			if r.Name != CountryName(r.Key) {
				t.Errorf("country %s named %q", r.Key, r.Name)
			}
		}
	})
	t.Run("market", func(t *testing.T) {
		rep, err := w.svc.Revenue(ctx, RevenueQuery{From: aug, To: oct, GroupBy: ByMarket})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]RevenueRow{}
		for _, r := range rep.Rows {
			got[r.Key] = r
		}
		// globex is the only meta customer with German usage (September);
		// launch's market "DE" has acme's and globex's August usage.
		_, sepLines := pb.expect("globex", sep, "meta", 0)
		_, augLines := pb.expect("acme", aug, "launch", 0)
		_, gAugLines := pb.expect("globex", aug, "launch", 0) // launch until September
		augLines[[2]string{"DE", "notification"}] += gAugLines[[2]string{"DE", "notification"}]
		if g := got["Germany"]; g.minor != sepLines[[2]string{"Germany", "marketing"}] || g.Quantity != 900 || g.Customers != 1 {
			t.Errorf("Germany = %+v, want %s", g, cents(sepLines[[2]string{"Germany", "marketing"}]))
		}
		if d := got["DE"]; d.minor != augLines[[2]string{"DE", "notification"}] || d.Quantity != 1100 || d.Customers != 2 {
			t.Errorf("DE = %+v, want %s", d, cents(augLines[[2]string{"DE", "notification"}]))
		}
		// A market named by a country code is named by the country; one
		// with a name of its own needs none.
		if got["DE"].Name != "Germany" || got["Germany"].Name != "" {
			t.Errorf("names: DE %q, Germany %q", got["DE"].Name, got["Germany"].Name)
		}
	})
	t.Run("market and category add up", func(t *testing.T) {
		for _, g := range []string{ByMarket, ByCategory} {
			rep, err := w.svc.Revenue(ctx, RevenueQuery{From: aug, To: oct, GroupBy: g})
			if err != nil {
				t.Fatal(err)
			}
			var sum int64
			for _, r := range rep.Rows {
				sum += r.minor
			}
			if sum != total.cents {
				t.Errorf("%s rows add up to %s, want %s", g, cents(sum), cents(total.cents))
			}
		}
	})
	t.Run("one customer, csv", func(t *testing.T) {
		rep, err := w.svc.Revenue(ctx, RevenueQuery{From: aug, To: oct, GroupBy: ByMonth, CustomerID: "initech"})
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		if err := rep.Table().WriteCSV(&b); err != nil {
			t.Fatal(err)
		}
		a, _ := pb.expect("initech", aug, "launch", 10)
		o, _ := pb.expect("initech", oct, "launch", 10)
		want := "key,name,currency,quantity,amount,customers\n" +
			"2026-08,,USD,2000," + cents(a) + ",1\n" +
			"2026-10,,USD,333," + cents(o) + ",1\n"
		if b.String() != want {
			t.Errorf("csv:\n%s\nwant:\n%s", b.String(), want)
		}
	})
	t.Run("bad input", func(t *testing.T) {
		for _, q := range []RevenueQuery{{From: oct, To: aug}, {From: aug, To: oct, GroupBy: "planet"}, {From: pricing.MustParseMonth("2020-01"), To: oct}} {
			if _, err := w.svc.Revenue(ctx, q); err == nil {
				t.Errorf("%+v: no error", q)
			}
		}
	})
}

func TestTopCustomersAndUnbilled(t *testing.T) {
	w := setup(t)
	pb := prices(t)
	ctx := context.Background()
	rep, err := w.svc.TopCustomers(ctx, TopQuery{From: aug, To: oct, Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	hooli, _ := pb.expect("hooli", oct, "launch", 0)
	if len(rep.Rows) != 2 || rep.Rows[0].CustomerID != "hooli" || rep.Rows[0].Amount != cents(hooli) || rep.Rows[0].Rank != 1 {
		t.Fatalf("top = %+v, want hooli first with %s", rep.Rows, cents(hooli))
	}
	byQty, err := w.svc.TopCustomers(ctx, TopQuery{From: aug, To: oct, By: "quantity"})
	if err != nil {
		t.Fatal(err)
	}
	if len(byQty.Rows) != 4 || byQty.Rows[0].Quantity != 300005 {
		t.Errorf("by quantity = %+v", byQty.Rows)
	}

	ub, err := w.svc.Unbilled(ctx, aug, nov)
	if err != nil {
		t.Fatal(err)
	}
	want := []UnbilledMonth{
		{CustomerID: "ghost", Month: sep, Reason: billing.UnbilledUnknownCustomer, Quantity: 42, Detail: "no customer with this id"},
		{CustomerID: "ghost", Month: nov, Reason: billing.UnbilledUnknownCustomer, Quantity: 7, Detail: "no customer with this id"},
	}
	if fmt.Sprint(ub.Rows) != fmt.Sprint(want) || ub.Totals.Quantity != 49 || ub.Totals.Customers != 1 {
		t.Errorf("unbilled = %+v %+v, want %+v", ub.Rows, ub.Totals, want)
	}
}

func TestUsageTrend(t *testing.T) {
	w := setup(t)
	ctx := context.Background()
	from, to := aug.Start(), nov.End()
	t.Run("month by category", func(t *testing.T) {
		rep, err := w.svc.UsageTrend(ctx, SeriesQuery{From: from, To: to, Window: Month, GroupBy: "category"})
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]int64{}
		for _, u := range fixture {
			want[u.month.String()+" "+u.category] += u.quantity
		}
		got := map[string]int64{}
		for _, p := range rep.Points {
			got[pricing.MonthOf(p.Start).String()+" "+p.Key] += p.Quantity
			if !p.Start.Equal(pricing.MonthOf(p.Start).Start()) {
				t.Errorf("month point starts at %s", p.Start)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("got %v\nwant %v", got, want)
		}
	})
	t.Run("day, one customer", func(t *testing.T) {
		rep, err := w.svc.UsageTrend(ctx, SeriesQuery{From: from, To: to, Window: Day, CustomerID: "acme"})
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]int64{}
		for i, u := range fixture {
			if u.customer == "acme" {
				day := u.month.Start().Add(time.Duration(i) * time.Hour).Truncate(24 * time.Hour)
				want[day.Format("2006-01-02")] += u.quantity
			}
		}
		got := map[string]int64{}
		for _, p := range rep.Points {
			got[p.Start.Format("2006-01-02")] += p.Quantity
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("got %v\nwant %v", got, want)
		}
		var b strings.Builder
		if err := rep.Table().WriteCSV(&b); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(b.String(), "start,key,quantity\n2026-08-01T00:00:00Z,,") {
			t.Errorf("csv = %q", b.String())
		}
	})
	t.Run("bad input", func(t *testing.T) {
		for _, q := range []SeriesQuery{{From: to, To: from, Window: Day}, {From: from, To: to, Window: "week"}, {From: from, To: to, Window: Day, GroupBy: "planet"}} {
			if _, err := w.svc.UsageTrend(ctx, q); err == nil {
				t.Errorf("%+v: no error", q)
			}
		}
	})
}

func TestForecast(t *testing.T) {
	w := setup(t)
	pb := prices(t)
	ctx := context.Background()
	rep, err := w.svc.Forecast(ctx, ForecastQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Month != nov || rep.ElapsedFraction != "0.6500" {
		t.Fatalf("month %s fraction %s, want 2026-11 0.6500", rep.Month, rep.ElapsedFraction)
	}
	// 19.5 of 30 days: every row × 30/19.5, rounded half up.
	proj := func(q int64) int64 { return (q*60 + 19) / 39 }
	got := map[string]ForecastRow{}
	for _, r := range rep.Rows {
		got[r.CustomerID] = r
	}
	if len(got) != 3 {
		t.Fatalf("rows = %+v, want acme, globex, hooli (ghost is unbilled)", rep.Rows)
	}
	// hooli: 195,000 so far → 300,000 projected, crossing the first tier.
	h := got["hooli"]
	toDate := pb.launchAmount("US", 195000).RoundBank(2)
	projected := pb.launchAmount("US", 300000).RoundBank(2)
	if h.ProjectedQuantity != proj(195000) || h.ProjectedQuantity != 300000 || h.AmountToDate != toDate.StringFixed(2) || h.ProjectedAmount != projected.StringFixed(2) {
		t.Errorf("hooli = %+v, want 300000 projected, %s to date, %s projected", h, toDate.StringFixed(2), projected.StringFixed(2))
	}
	// A linear projection of the amount would overstate the tiered month.
	linear := toDate.Mul(decimal.NewFromInt(30)).Div(decimal.NewFromFloat(19.5))
	if !projected.LessThan(linear) {
		t.Errorf("tier-aware projection %s should be below the linear amount %s", projected, linear)
	}
	a := got["acme"]
	if a.ProjectedQuantity != proj(390) || a.ProjectedQuantity != 600 {
		t.Errorf("acme projected %d, want 600", a.ProjectedQuantity)
	}
	if g := got["globex"]; g.ProjectedQuantity != 60 {
		t.Errorf("globex projected %d, want 60", g.ProjectedQuantity)
	}
	if rep.Rows[0].CustomerID != "hooli" {
		t.Errorf("rows not sorted by projected amount: %+v", rep.Rows)
	}
	// A past month is its actual; a future one is an error.
	past, err := w.svc.Forecast(ctx, ForecastQuery{Month: oct, CustomerID: "initech"})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := pb.expect("initech", oct, "launch", 10)
	if len(past.Rows) != 1 || past.Rows[0].ProjectedAmount != cents(want) || past.Rows[0].AmountToDate != cents(want) || past.ElapsedFraction != "1.0000" {
		t.Errorf("october forecast = %+v, want %s", past.Rows, cents(want))
	}
	if _, err := w.svc.Forecast(ctx, ForecastQuery{Month: nov.Next()}); err == nil {
		t.Error("future month: no error")
	}
}

func TestSimulate(t *testing.T) {
	w := setup(t)
	pb := prices(t)
	ctx := context.Background()
	sim, err := w.svc.Simulate(ctx, SimulationRequest{CardID: pricing.MetaCardID, From: aug, To: oct, Breakdown: true})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(sim.Versions) != "[1]" || len(sim.Months) != 3 {
		t.Errorf("versions %v months %v", sim.Versions, sim.Months)
	}
	var bookCur, bookProp int64
	seen := map[string]bool{}
	for _, c := range sim.Customers {
		seen[c.CustomerID] = true
		if c.CustomerID == "ghost" {
			if c.Skipped != "unknown customer" || c.Quantity != 42 {
				t.Errorf("ghost = %+v", c)
			}
			continue
		}
		var cur, prop int64
		for _, m := range []pricing.Month{aug, sep, oct} {
			card, disc := currentCard(c.CustomerID, m)
			x, _ := pb.expect(c.CustomerID, m, card, disc)
			y, _ := pb.expect(c.CustomerID, m, "meta", disc)
			cur += x
			prop += y
		}
		if c.Skipped != "" || c.Current != cents(cur) || c.Proposed != cents(prop) || c.Difference != cents(prop-cur) {
			t.Errorf("%s: got current %s proposed %s diff %s skipped %q, want %s %s %s", c.CustomerID, c.Current, c.Proposed, c.Difference, c.Skipped, cents(cur), cents(prop), cents(prop-cur))
		}
		if p := percent(prop-cur, cur); percentString(p) != percentString(c.Percent) {
			t.Errorf("%s: percent %s, want %s", c.CustomerID, percentString(c.Percent), percentString(p))
		}
		// The breakdown adds up to the customer's totals on both sides.
		var bc, bp int64
		for _, l := range c.Breakdown {
			bc += minorOf(decimal.RequireFromString(l.Current), 2)
			bp += minorOf(decimal.RequireFromString(l.Proposed), 2)
		}
		if bc != cur || bp != prop {
			t.Errorf("%s: breakdown adds up to %s/%s, want %s/%s", c.CustomerID, cents(bc), cents(bp), cents(cur), cents(prop))
		}
		if c.CustomerID == "globex" && fmt.Sprint(c.CurrentCards) != "[launch meta-2026-01]" {
			t.Errorf("globex current cards %v, want launch then meta-2026-01", c.CurrentCards)
		}
		bookCur += cur
		bookProp += prop
	}
	if len(seen) != 5 {
		t.Errorf("customers = %v", seen)
	}
	if len(sim.Totals) != 1 || sim.Totals[0].Current != cents(bookCur) || sim.Totals[0].Proposed != cents(bookProp) || sim.Totals[0].Customers != 4 {
		t.Errorf("totals = %+v, want %s → %s over 4 customers", sim.Totals, cents(bookCur), cents(bookProp))
	}
	// Book breakdown: India marketing is acme's Aug+Sep marketing to IN.
	for _, l := range sim.Breakdown {
		if l.Market == "India" && l.Category == "marketing" {
			p := pb.metaPrice[[2]string{"India", "marketing"}]
			want := p.Mul(decimal.NewFromInt(1000)).RoundBank(2).Add(p.Mul(decimal.NewFromInt(1200)).RoundBank(2))
			if l.Quantity != 2200 || l.Proposed != want.StringFixed(2) {
				t.Errorf("India marketing = %+v, want 2200 at %s", l, want.StringFixed(2))
			}
		}
	}
	// Sorted by difference, descending, skipped last.
	for i := 1; i < len(sim.Customers); i++ {
		a, b := sim.Customers[i-1], sim.Customers[i]
		if a.Skipped == "" && b.Skipped == "" && a.prop-a.cur < b.prop-b.cur {
			t.Errorf("not sorted at %d", i)
		}
	}
	if sim.Customers[len(sim.Customers)-1].CustomerID != "ghost" {
		t.Errorf("skipped customers come last")
	}

	t.Run("customer set, no overrides", func(t *testing.T) {
		no := false
		s2, err := w.svc.Simulate(ctx, SimulationRequest{CardID: pricing.MetaCardID, From: aug, To: aug, Customers: []string{"initech"}, KeepOverrides: &no})
		if err != nil {
			t.Fatal(err)
		}
		cur, _ := pb.expect("initech", aug, "launch", 10)
		prop, _ := pb.expect("initech", aug, "meta", 0)
		if len(s2.Customers) != 1 || s2.Customers[0].Current != cents(cur) || s2.Customers[0].Proposed != cents(prop) || s2.Customers[0].Breakdown != nil {
			t.Errorf("initech = %+v, want %s → %s", s2.Customers, cents(cur), cents(prop))
		}
	})
	t.Run("unknown customers named", func(t *testing.T) {
		// An id that is no customer is an error naming it, not an empty
		// book (ghost has usage but is no customer either).
		_, err := w.svc.Simulate(ctx, SimulationRequest{CardID: pricing.MetaCardID, From: aug, To: aug, Customers: []string{"initech", "nope", "ghost"}})
		if postage.ErrorCode(err) != postage.EINVALID || !strings.Contains(postage.ErrorMessage(err), `"nope", "ghost"`) {
			t.Errorf("err = %v, want invalid naming nope and ghost", err)
		}
	})
	t.Run("draft version", func(t *testing.T) {
		// A draft of launch with every price doubled.
		v, err := w.cards.VersionFor(ctx, pricing.LaunchCardID, oct)
		if err != nil {
			t.Fatal(err)
		}
		d := v.Clone()
		for i := range d.Prices {
			for j := range d.Prices[i].Tiers {
				d.Prices[i].Tiers[j].UnitPrice = d.Prices[i].Tiers[j].UnitPrice.Mul(decimal.New(2, 0))
			}
		}
		d, err = w.cards.CreateDraft(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		s3, err := w.svc.Simulate(ctx, SimulationRequest{CardID: pricing.LaunchCardID, Version: d.Number, From: oct, To: oct, Customers: []string{"hooli"}})
		if err != nil {
			t.Fatal(err)
		}
		base, _ := pb.expect("hooli", oct, "launch", 0)
		// every tier price doubled exactly, so the exact amount doubles
		want := pb.launchAmount("US", 300000).Mul(decimal.New(2, 0)).RoundBank(2)
		c := s3.Customers[0]
		if fmt.Sprint(s3.Versions) != fmt.Sprint([]int{d.Number}) || c.Current != cents(base) || c.Proposed != want.StringFixed(2) || c.Percent == nil {
			t.Errorf("draft: %+v versions %v, want %s → %s", c, s3.Versions, cents(base), want.StringFixed(2))
		}
		var b strings.Builder
		if err := s3.Table().WriteCSV(&b); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(b.String(), "customer_id,name,currency,quantity,current,proposed,difference,percent,skipped\nhooli,Hooli Inc,USD,300005,"+cents(base)+",") {
			t.Errorf("csv = %q", b.String())
		}
	})
	t.Run("other currency", func(t *testing.T) {
		if err := w.cards.CreateCard(ctx, pricing.RateCard{ID: "euro", Name: "Euro", Currency: "EUR"}); err != nil {
			t.Fatal(err)
		}
		v, err := w.cards.VersionFor(ctx, pricing.MetaCardID, oct)
		if err != nil {
			t.Fatal(err)
		}
		d := v.Clone()
		d.CardID, d.Currency, d.Status, d.EffectiveFrom = "euro", "EUR", pricing.StatusDraft, pricing.Month{}
		if d, err = w.cards.CreateDraft(ctx, d); err != nil {
			t.Fatal(err)
		}
		s4, err := w.svc.Simulate(ctx, SimulationRequest{CardID: "euro", Version: d.Number, From: oct, To: oct})
		if err != nil {
			t.Fatal(err)
		}
		if len(s4.Totals) != 0 || len(s4.Breakdown) != 0 {
			t.Errorf("totals %+v breakdown %+v, want none", s4.Totals, s4.Breakdown)
		}
		for _, c := range s4.Customers {
			if c.Skipped == "" || (c.CustomerID != "ghost" && !strings.Contains(c.Skipped, "currency USD differs from the proposed card's EUR")) {
				t.Errorf("%s: skipped %q", c.CustomerID, c.Skipped)
			}
		}
	})
	t.Run("bad requests", func(t *testing.T) {
		for _, r := range []SimulationRequest{
			{From: aug, To: oct},
			{CardID: "nope", From: aug, To: oct},
			{CardID: pricing.MetaCardID, From: oct, To: aug},
			{CardID: pricing.MetaCardID, From: aug, To: nov.Next()},
			{CardID: pricing.MetaCardID, Version: 99, From: aug, To: oct},
		} {
			if _, err := w.svc.Simulate(ctx, r); err == nil {
				t.Errorf("%+v: no error", r)
			}
		}
	})
}

func TestAllocate(t *testing.T) {
	tests := []struct {
		total   int64
		weights []int64
		want    []int64
	}{
		{100, []int64{1, 1, 1}, []int64{34, 33, 33}},
		{1, []int64{1, 1}, []int64{1, 0}},
		{10, []int64{0, 0}, []int64{10, 0}},
		{0, []int64{5, 5}, []int64{0, 0}},
		{999, []int64{1, 2, 997}, []int64{1, 2, 996}},
		{7, []int64{1 << 40, 1 << 40}, []int64{4, 3}},
	}
	for _, tt := range tests {
		got := allocate(tt.total, tt.weights)
		var sum int64
		for _, g := range got {
			sum += g
		}
		if fmt.Sprint(got) != fmt.Sprint(tt.want) || sum != tt.total {
			t.Errorf("allocate(%d, %v) = %v, want %v", tt.total, tt.weights, got, tt.want)
		}
	}
}

func TestPercent(t *testing.T) {
	tests := []struct {
		num, den int64
		want     string
	}{
		{1, 3, "33.33"},
		{2, 3, "66.67"},
		{-1, 3, "-33.33"},
		{1, 8, "12.50"},
		{1, 16000, "0.01"}, // 0.00625 → 0.01 (half-even: 0.006|25 is above half)
		{1, 80000, "0.00"}, // 0.00125 → 0.00
		{3, 80000, "0.00"}, // 0.00375 → 0.00
		{1, 40000, "0.00"}, // 0.0025 → half, even 0
		{3, 40000, "0.01"}, // 0.0075 → half, even 0.01
		{-3, 40000, "-0.01"},
		{5, -2, "-250.00"},
		{1 << 62, 3, "153722867280912930133.33"},
	}
	for _, tt := range tests {
		if got := percentString(percent(tt.num, tt.den)); got != tt.want {
			t.Errorf("percent(%d, %d) = %s, want %s", tt.num, tt.den, got, tt.want)
		}
	}
	if percent(1, 0) != nil {
		t.Error("percent of zero is not nil")
	}
}

func TestProject(t *testing.T) {
	tests := []struct{ q, e, total, want int64 }{
		{390, 39, 60, 600},
		{1, 3, 6, 2},
		{1, 2, 3, 2}, // 1.5 rounds half up
		{5, 10, 10, 5},
		{1 << 61, 1, 30, pricing.MaxQuantity},
	}
	for _, tt := range tests {
		if got := project(tt.q, tt.e, tt.total); got != tt.want {
			t.Errorf("project(%d, %d, %d) = %d, want %d", tt.q, tt.e, tt.total, got, tt.want)
		}
	}
}

func TestCSVFormulaCells(t *testing.T) {
	var b strings.Builder
	tb := Table{Header: []string{"a", "b", "c"}, Rows: [][]string{{"=1+1", "-12.30", "-x"}}}
	if err := tb.WriteCSV(&b); err != nil {
		t.Fatal(err)
	}
	if b.String() != "a,b,c\n'=1+1,-12.30,'-x\n" {
		t.Errorf("csv = %q", b.String())
	}
}

// Rows of categories the card does not list (marketing_lite, referral on
// launch) are unbilled row by row, per category, in the unbilled report;
// the rest of their customer-month is in revenue exactly as without them.
func TestUnmappedCategoriesUnbilledWhileTheRestBills(t *testing.T) {
	w := setup(t,
		use{"acme", oct, "DE", "marketing_lite", 6},
		use{"acme", oct, "FR", "marketing_lite", 5},
		use{"acme", oct, "FR", "referral", 3},
		use{"globex", oct, "DE", "marketing_lite", 2}, // on meta-2026-01 from September
	)
	pb := prices(t)
	ctx := context.Background()
	ub, err := w.svc.Unbilled(ctx, oct, oct)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		customer, category, reason string
		q                          int64
	}
	var got []row
	for _, r := range ub.Rows {
		got = append(got, row{r.CustomerID, r.Category, r.Reason, r.Quantity})
	}
	want := []row{
		{"acme", "marketing_lite", billing.UnbilledUnmappedCategory, 11},
		{"acme", "referral", billing.UnbilledUnmappedCategory, 3},
		{"globex", "marketing_lite", billing.UnbilledUnmappedCategory, 2},
	}
	if !slices.Equal(got, want) || ub.Totals.Quantity != 16 || ub.Totals.Customers != 2 {
		t.Fatalf("unbilled %+v %+v, want %+v", got, ub.Totals, want)
	}
	rev, err := w.svc.Revenue(ctx, RevenueQuery{From: oct, To: oct, GroupBy: ByCustomer})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"acme", "globex"} {
		card, disc := currentCard(c, oct)
		tot, _ := pb.expect(c, oct, card, disc)
		var q int64
		for _, u := range fixture {
			if u.customer == c && u.month == oct {
				q += u.quantity
			}
		}
		var found bool
		for _, r := range rev.Rows {
			if r.Key == c {
				found = true
				if r.Amount != cents(tot) || r.Quantity != q {
					t.Errorf("%s October revenue %s for %d, want %s for %d", c, r.Amount, r.Quantity, cents(tot), q)
				}
			}
		}
		if !found {
			t.Errorf("%s has no October revenue: %+v", c, rev.Rows)
		}
	}
}
