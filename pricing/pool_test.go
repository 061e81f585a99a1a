package pricing

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/shopspring/decimal"

	"postage"
)

// Rows of a category the card does not list are left out of the rating,
// each listed with its reason; the rest is rated as if they were absent.
func TestUnmappedRowsAreUnratedAlone(t *testing.T) {
	r := mustSeed(t, LaunchSeed)
	usage := []Usage{
		{Country: "DE", Category: "notification", Quantity: 10},
		{Country: "DE", Category: "marketing_lite", Quantity: 5},
		{Country: "FR", Category: "marketing_lite", Quantity: 3},
		{Country: "DE", Category: "marketing_lite", Quantity: 2}, // another row of the same (country, category)
		{Country: "DE", Category: "referral", Quantity: 1},
		{Country: "DE", Category: "brand_new", Quantity: 4, FreeType: "free_entry_point"}, // free whatever its category
	}
	res, err := r.Rate(Overrides{}, usage, RateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	alone, _ := r.Rate(Overrides{}, []Usage{usage[0], usage[5]}, RateOptions{})
	if jsonOf(t, res.Lines) != jsonOf(t, alone.Lines) || !res.Total.Equal(alone.Total) {
		t.Fatalf("the rated rows differ from rating them alone:\n%s\n%s", jsonOf(t, res.Lines), jsonOf(t, alone.Lines))
	}
	type row struct {
		country, category string
		q                 int64
		reason            string
	}
	var got []row
	for _, u := range res.Unrated {
		got = append(got, row{u.Country, u.Category, u.Quantity, u.Reason})
		if !strings.Contains(u.Detail, "not on rate card launch") {
			t.Errorf("detail %q", u.Detail)
		}
	}
	want := []row{{"DE", "marketing_lite", 7, UnratedUnmapped}, {"FR", "marketing_lite", 3, UnratedUnmapped}, {"DE", "referral", 1, UnratedUnmapped}}
	if !slices.Equal(got, want) {
		t.Fatalf("unrated %+v, want %+v", got, want)
	}
	// Every quantity is in exactly one place: a line or the unrated rows.
	var sum int64
	for _, l := range res.Lines {
		sum += l.Quantity
	}
	for _, u := range res.Unrated {
		sum += u.Quantity
	}
	if sum != 25 {
		t.Fatalf("quantities add up to %d, want 25", sum)
	}
}

// A version's unmapped rule rates every unlisted category as one of its
// categories: on that category's line, in its tier volume, named on the line.
func TestUnmappedRule(t *testing.T) {
	v := oneMarket("USD", RoundHalfEven, Price{Mode: ModeGraduated, Tiers: []Tier{{UpTo: i64(10), UnitPrice: d("0.10")}, {UnitPrice: d("0.05")}}})
	v.Categories = append(v.Categories, Category{Name: "marketing"})
	v.Prices = append(v.Prices, Price{Market: "M", Category: "marketing", Mode: ModeGraduated, Tiers: []Tier{{UpTo: i64(10), UnitPrice: d("0.20")}, {UnitPrice: d("0.15")}}})
	v.Unmapped = "marketing"
	r, err := Compile(v)
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Rate(Overrides{}, []Usage{
		{Country: "DE", Category: "marketing", Quantity: 8},
		{Country: "DE", Category: "marketing_lite", Quantity: 3},
		{Country: "FR", Category: "brand_new", Quantity: 1},
		{Country: "DE", Category: "c", Quantity: 2},
	}, RateOptions{})
	if err != nil || len(res.Unrated) != 0 {
		t.Fatalf("%v %+v", err, res.Unrated)
	}
	if len(res.Lines) != 2 {
		t.Fatalf("%+v", res.Lines)
	}
	c, mk := res.Lines[0], res.Lines[1]
	if c.Category != "c" || c.Unmapped != nil || c.Quantity != 2 {
		t.Fatalf("%+v", c)
	}
	// 12 marketing units: 10 at 0.20, 2 at 0.15 = 2.30: the unmapped ones count toward the tiers.
	if mk.Category != "marketing" || mk.Quantity != 12 || !slices.Equal(mk.Unmapped, []string{"brand_new", "marketing_lite"}) || !mk.Exact.Equal(d("2.30")) {
		t.Fatalf("%+v", mk)
	}
	pi, err := r.Lookup("DE", "marketing_lite", "")
	if err != nil || pi.Category != "marketing" || !pi.UnitPrice.Equal(d("0.20")) {
		t.Fatalf("%v %+v", err, pi)
	}
	// A quote prices the unmapped category too.
	if _, err := r.Quote(Overrides{}, []Usage{{Country: "DE", Category: "marketing_lite", Quantity: 1}}, RateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The rule must name a category of the version.
	bad := v.Clone()
	bad.Unmapped = "nope"
	if err := bad.Validate(); postage.ErrorCode(err) != postage.EINVALID || !strings.Contains(err.Error(), "unmapped") {
		t.Fatalf("%v", err)
	}
}

// allocateUnits agrees with sorting every unit by position, for every
// bound, on small pools.
func TestAllocateUnitsMatchesSortingEveryUnit(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for i := 0; i < 2000; i++ {
		n := 1 + rng.IntN(5)
		qs := make([]int64, n)
		var q int64
		for j := range qs {
			qs[j] = rng.Int64N(25)
			if rng.IntN(3) == 0 {
				qs[j] = qs[(j+1)%n] // equal quantities: ties
			}
			q += qs[j]
		}
		// Every unit: (position numerator over common denominator, member).
		type unit struct {
			num, den int64
			m        int
		}
		var units []unit
		for m, qm := range qs {
			for j := int64(1); j <= qm; j++ {
				units = append(units, unit{2*j - 1, 2 * qm, m})
			}
		}
		slices.SortStableFunc(units, func(a, b unit) int {
			l, r := a.num*b.den, b.num*a.den
			switch {
			case l < r:
				return -1
			case l > r:
				return 1
			}
			return a.m - b.m
		})
		want := make([]int64, n)
		for b := int64(0); b <= q; b++ {
			if b > 0 {
				want[units[b-1].m]++
			}
			if got := allocateUnits(qs, q, b); !slices.Equal(got, want) {
				t.Fatalf("qs %v b %d: got %v, want %v", qs, b, got, want)
			}
		}
	}
}

// On large pools: every bound's allocation adds up to it, never takes a
// unit back as the bound grows, and stays within Sainte-Laguë's bound of
// the proportional share (half a unit plus half a unit per other member,
// weighted by the member's share of the pool).
func TestAllocateUnitsLarge(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for i := 0; i < 3000; i++ {
		n := 1 + rng.IntN(12)
		qs := make([]int64, n)
		var q int64
		for j := range qs {
			qs[j] = randomQuantity(rng) >> 3 // the sum stays below 2^62
			q += qs[j]
		}
		if q == 0 {
			continue
		}
		bounds := []int64{0, q}
		for k := 0; k < 6; k++ {
			bounds = append(bounds, rng.Int64N(q+1))
		}
		slices.Sort(bounds)
		prev := make([]int64, n)
		for _, b := range bounds {
			c := allocateUnits(qs, q, b)
			var s int64
			for j := range c {
				s += c[j]
				if c[j] < prev[j] || c[j] > qs[j] {
					t.Fatalf("qs %v b %d: %v after %v", qs, b, c, prev)
				}
				// Sainte-Laguë's bound: |c − b·qs[j]/q| ≤ (1 + n·qs[j]/q)/2,
				// i.e. 2·|c·q − b·qs[j]| ≤ q + n·qs[j], in exact integers.
				lhs := decimal.New(c[j], 0).Mul(decimal.New(q, 0)).Sub(decimal.New(b, 0).Mul(decimal.New(qs[j], 0))).Abs().Mul(decimal.New(2, 0))
				if lhs.GreaterThan(decimal.New(q, 0).Add(decimal.New(int64(n), 0).Mul(decimal.New(qs[j], 0)))) {
					t.Fatalf("qs %v b %d: member %d has %d units, quota %s", qs, b, j, c[j], decimal.New(b, 0).Mul(decimal.New(qs[j], 0)).Div(decimal.New(q, 0)))
				}
			}
			if s != b {
				t.Fatalf("qs %v b %d: %v adds up to %d", qs, b, c, s)
			}
			prev = c
		}
	}
}

func launchDE(t *testing.T) *Rater {
	t.Helper()
	v := oneMarket("USD", RoundHalfEven, Price{Mode: ModeGraduated, Tiers: []Tier{
		{UpTo: i64(250_000), UnitPrice: d("0.0887")}, {UpTo: i64(1_000_000), UnitPrice: d("0.084265")}, {UnitPrice: d("0.07983")}}})
	r, err := Compile(v)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func volumeCard(t *testing.T) *Rater {
	t.Helper()
	v := oneMarket("USD", RoundHalfEven, Price{Mode: ModeVolume, Tiers: []Tier{{UpTo: i64(1000), UnitPrice: d("0.10")}, {UnitPrice: d("0.08")}}})
	r, err := Compile(v)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// Tier edges that the portfolio crosses while no member does.
func TestPortfolioTierEdges(t *testing.T) {
	type tierQ []int64 // a member's units per tier
	tests := []struct {
		name    string
		r       *Rater
		qs      []int64
		tiers   []tierQ  // per member
		amounts []string // per member
		total   string   // the pool priced as one customer
	}{
		{"graduated: two members of 150,000 cross 250,000 together", launchDE(t), []int64{150_000, 150_000},
			[]tierQ{{125_000, 25_000}, {125_000, 25_000}}, []string{"13194.13", "13194.12"}, "26388.25"},
		{"graduated: uneven members", launchDE(t), []int64{200_000, 100_000},
			[]tierQ{{166_667, 33_333}, {83_333, 16_667}}, []string{"17592.17", "8796.08"}, "26388.25"},
		{"graduated: exactly at the edge", launchDE(t), []int64{125_000, 125_000},
			[]tierQ{{125_000}, {125_000}}, []string{"11087.50", "11087.50"}, "22175.00"},
		{"graduated: one unit past the edge goes to the larger member", launchDE(t), []int64{125_000, 125_001},
			[]tierQ{{125_000}, {125_000, 1}}, []string{"11087.50", "11087.58"}, "22175.08"},
		{"graduated: three members, none past the first edge, the pool past two", launchDE(t), []int64{240_000, 240_000, 240_000},
			[]tierQ{{83_334, 156_666}, {83_333, 156_667}, {83_333, 156_667}}, []string{"20593.19", "20593.18", "20593.18"}, "61779.55"},
		{"volume: 600 + 600 reach the second tier", volumeCard(t), []int64{600, 600},
			[]tierQ{{600}, {600}}, []string{"48.00", "48.00"}, "96.00"},
		{"volume: 500 + 500 stay in the first", volumeCard(t), []int64{500, 500},
			[]tierQ{{500}, {500}}, []string{"50.00", "50.00"}, "100.00"},
		{"volume: 500 + 501", volumeCard(t), []int64{500, 501},
			[]tierQ{{500}, {501}}, []string{"40.00", "40.08"}, "80.08"},
		{"a member without usage of the line", launchDE(t), []int64{300_000, 0},
			[]tierQ{{250_000, 50_000}, nil}, []string{"26388.25", "0"}, "26388.25"},
	}
	for _, tt := range tests {
		var ms []Member
		var all []Usage
		for _, q := range tt.qs {
			u := []Usage{{Country: "DE", Category: "c", Quantity: q}}
			if q == 0 {
				u = nil
			}
			ms = append(ms, Member{Usage: u})
			all = append(all, u...)
		}
		res, err := tt.r.RatePool(ms)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		var sum decimal.Decimal
		for i, rs := range res {
			var got tierQ
			for _, l := range rs.Lines {
				for _, tl := range l.Tiers {
					got = append(got, tl.Quantity)
				}
				if len(tt.qs) > 1 && l.PoolQuantity != sumOf(tt.qs) {
					t.Errorf("%s: member %d pool quantity %d", tt.name, i, l.PoolQuantity)
				}
			}
			if !slices.Equal(got, tt.tiers[i]) {
				t.Errorf("%s: member %d tiers %v, want %v", tt.name, i, got, tt.tiers[i])
			}
			if rs.Total.StringFixed(2) != tt.amounts[i] && !(tt.amounts[i] == "0" && rs.Total.IsZero()) {
				t.Errorf("%s: member %d total %s, want %s", tt.name, i, rs.Total.StringFixed(2), tt.amounts[i])
			}
			sum = sum.Add(rs.Total)
		}
		one, err := tt.r.Rate(Overrides{}, all, RateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if one.Total.StringFixed(2) != tt.total || !sum.Equal(one.Total) {
			t.Errorf("%s: members add up to %s, the pool as one is %s, want %s", tt.name, sum, one.Total, tt.total)
		}
	}
}

func sumOf(qs []int64) int64 {
	var s int64
	for _, q := range qs {
		s += q
	}
	return s
}

// Random pools: each member's tier quantities add up to its quantity, each
// tier's over the members to the pool's; the members' exact amounts add up
// to the pool rated as one customer, their rounded amounts to the pool's
// rounded line; each member is within one minor unit of its exact amount.
func TestPoolProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	cases := 3000
	if testing.Short() {
		cases = 300
	}
	for i := 0; i < cases; i++ {
		v := randomVersion(rng)
		r, err := Compile(v)
		if err != nil {
			t.Fatal(err)
		}
		n := 1 + rng.IntN(6)
		ms := make([]Member, n)
		var all []Usage
		for j := range ms {
			for _, country := range []string{"DE", "ZZ"} {
				if rng.IntN(3) > 0 {
					q := randomQuantity(rng) >> 4 // six members stay below 2^62
					if rng.IntN(3) == 0 {
						q = rng.Int64N(1000)
					}
					ms[j].Usage = append(ms[j].Usage, Usage{Country: country, Category: "c", Quantity: q})
				}
			}
			all = append(all, ms[j].Usage...)
		}
		res, err := r.RatePool(ms)
		if err != nil {
			t.Fatal(err)
		}
		one, err := r.Rate(Overrides{}, all, RateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		unit := decimal.New(1, -int32(one.MinorUnits))
		for _, pl := range one.Lines {
			var q int64
			var exact, amount decimal.Decimal
			tierSum := make([]int64, len(pl.Tiers))
			for j, rs := range res {
				for _, l := range rs.Lines {
					if l.Market != pl.Market {
						continue
					}
					q += l.Quantity
					exact = exact.Add(l.Exact)
					amount = amount.Add(l.Amount)
					var lq int64
					for _, tl := range l.Tiers {
						lq += tl.Quantity
						for k, ptl := range pl.Tiers {
							if ptl.From == tl.From {
								tierSum[k] += tl.Quantity
							}
						}
					}
					if l.Quantity > 0 && lq != l.Quantity {
						t.Fatalf("case %d member %d: tiers %+v add up to %d, not %d", i, j, l.Tiers, lq, l.Quantity)
					}
					if l.Amount.Sub(l.Exact).Abs().GreaterThanOrEqual(unit) {
						t.Fatalf("case %d member %d: amount %s, exact %s", i, j, l.Amount, l.Exact)
					}
					if n > 1 && l.PoolQuantity != pl.Quantity {
						t.Fatalf("case %d: pool quantity %d, want %d", i, l.PoolQuantity, pl.Quantity)
					}
				}
			}
			if q != pl.Quantity || !exact.Equal(pl.Exact) || !amount.Equal(pl.Amount) {
				t.Fatalf("case %d market %s: members q %d exact %s amount %s; pool %d %s %s\nversion %+v\nmembers %+v", i, pl.Market, q, exact, amount, pl.Quantity, pl.Exact, pl.Amount, v, ms)
			}
			for k, ptl := range pl.Tiers {
				if tierSum[k] != ptl.Quantity {
					t.Fatalf("case %d market %s tier %d: members %d, pool %d", i, pl.Market, k, tierSum[k], ptl.Quantity)
				}
			}
		}
	}
}

// A pool of one member rates exactly as Rate, whatever the usage and
// overrides (free types, unlisted categories, international variants).
func TestPoolOfOneIsRate(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	for _, r := range []*Rater{mustSeed(t, LaunchSeed), mustSeed(t, MetaSeed)} {
		countries := append(sortedKeys(r.v.Countries)[:30], "XK", "")
		cats := []string{"marketing_lite", "bogus"}
		for _, c := range r.cats {
			cats = append(cats, c.Name)
			cats = append(cats, c.Aliases...)
		}
		markets := r.Markets()
		for i := 0; i < 300; i++ {
			var usage []Usage
			for j := 0; j < 1+rng.IntN(20); j++ {
				u := Usage{Country: countries[rng.IntN(len(countries))], Category: cats[rng.IntN(len(cats))], Quantity: rng.Int64N(3_000_000)}
				if rng.IntN(8) == 0 {
					u.FreeType = "free_customer_service"
				}
				usage = append(usage, u)
			}
			var ov Overrides
			if rng.IntN(2) == 0 {
				ov.CardDiscount = randomPercent(rng)
			}
			if rng.IntN(2) == 0 {
				ov.Discounts = []Discount{{Market: markets[rng.IntN(len(markets))], Percent: randomPercent(rng)}}
			}
			if rng.IntN(3) == 0 {
				ov.UnitPrices = []UnitPrice{{Market: markets[rng.IntN(len(markets))], Category: r.cats[0].Name, UnitPrice: randomPrice(rng)}}
			}
			opts := RateOptions{CustomerCountry: countries[rng.IntN(len(countries))], Month: MustParseMonth("2026-05")}
			want, err := r.Rate(ov, usage, opts)
			if err != nil {
				t.Fatal(err)
			}
			got, err := r.RatePool([]Member{{Overrides: ov, Usage: usage, Opts: opts}})
			if err != nil {
				t.Fatal(err)
			}
			if a, b := jsonOf(t, want), jsonOf(t, got[0]); a != b {
				t.Fatalf("%s case %d:\nRate     %s\nRatePool %s", r.v.CardID, i, a, b)
			}
		}
	}
}

func costPlusRater(t *testing.T, currency string, cp CostPlus) *Rater {
	t.Helper()
	v := &Version{CardID: "plus", Number: 2, Status: StatusActive, EffectiveFrom: MustParseMonth("2026-01"), Currency: currency, Rounding: RoundHalfEven, CostPlus: &cp}
	r, err := Compile(v)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestCostPlus(t *testing.T) {
	meta := mustSeed(t, MetaSeed)
	de := func(cat string) decimal.Decimal {
		pi, err := meta.Lookup("DE", cat, "")
		if err != nil {
			t.Fatal(err)
		}
		return pi.UnitPrice
	}
	in := func(cat string) decimal.Decimal {
		pi, _ := meta.Lookup("IN", cat, "")
		return pi.UnitPrice
	}
	rule := CostPlus{Markup: d("10"), Fee: d("0.001"), Floor: d("0.02"), Exceptions: []CostPlusRule{
		{Market: "India", Markup: d("0")},                             // at cost in India (no fee, no floor)
		{Category: "authentication", Markup: d("5"), Fee: d("0.002")}, // every market's authentication
	}}
	usd := costPlusRater(t, "USD", rule)
	eur := costPlusRater(t, "EUR", rule)
	may := MustParseMonth("2026-05")
	fx := &ExchangeRate{From: "USD", To: "EUR", Month: may, Rate: d("0.9125")}
	usage := []Usage{
		{Country: "DE", Category: "marketing", Quantity: 1000},
		{Country: "DE", Category: "authentication", Quantity: 100},
		{Country: "IN", Category: "utility", Quantity: 10_000},
		{Country: "DE", Category: "service", Quantity: 7},
	}
	q := func(n int64) decimal.Decimal { return decimal.New(n, 0) }
	want := map[string]decimal.Decimal{ // exact, USD
		"Germany/marketing":      de("marketing").Mul(q(1000)).Mul(d("1.10")).Add(d("1.000")),
		"Germany/authentication": de("authentication").Mul(q(100)).Mul(d("1.05")).Add(d("0.200")),
		"India/utility":          in("utility").Mul(q(10_000)),
	}
	res, err := meta.RatePool([]Member{{Rater: usd, Usage: usage, Opts: RateOptions{Month: may}}})
	if err != nil {
		t.Fatal(err)
	}
	r0 := res[0]
	if r0.CardID != "plus" || r0.Currency != "USD" || r0.Cost == nil || r0.Cost.CardID != MetaCardID || r0.FX != nil {
		t.Fatalf("%+v", r0)
	}
	var total decimal.Decimal
	for _, l := range r0.Lines {
		k := l.Market + "/" + l.Category
		if l.Free {
			if l.Category != "service" || !l.Amount.IsZero() {
				t.Errorf("free line %+v", l)
			}
			continue
		}
		w, ok := want[k]
		if !ok || l.Mode != ModeCostPlus || l.CostPlus == nil || !l.Exact.Equal(w) || !l.Amount.Equal(w.RoundBank(2)) {
			t.Errorf("%s: %+v %+v, want exact %s", k, l, l.CostPlus, w)
		}
		total = total.Add(l.Amount)
	}
	if !total.Equal(r0.Total) {
		t.Errorf("total %s, lines %s", r0.Total, total)
	}

	// In EUR: cost × rate × (1 + markup) + fee (fee and floor are EUR).
	res, err = meta.RatePool([]Member{{Rater: eur, FX: fx, Usage: usage[:1], Opts: RateOptions{Month: may}}})
	if err != nil {
		t.Fatal(err)
	}
	w := de("marketing").Mul(q(1000)).Mul(d("0.9125")).Mul(d("1.10")).Add(d("1.000"))
	if l := res[0].Lines[0]; !l.Exact.Equal(w) || res[0].Currency != "EUR" || res[0].FX == nil || !res[0].FX.Rate.Equal(d("0.9125")) || !l.CostPlus.Cost.Equal(de("marketing").Mul(q(1000))) {
		t.Fatalf("%+v %+v, want %s", l, res[0].FX, w)
	}

	// The floor: 10,000 Indian utility messages cost less than 0.05 each.
	floored := costPlusRater(t, "USD", CostPlus{Floor: d("0.05")})
	res, err = meta.RatePool([]Member{{Rater: floored, Usage: usage[2:3]}})
	if err != nil {
		t.Fatal(err)
	}
	if l := res[0].Lines[0]; !l.Exact.Equal(d("500")) || !l.CostPlus.FloorApplied || !l.UnitPrice.Equal(d("0.05")) {
		t.Fatalf("%+v %+v", l, l.CostPlus)
	}

	// Overrides apply on top: a custom price replaces the line, a discount reduces it.
	ov := Overrides{UnitPrices: []UnitPrice{{Market: "India", Category: "utility", UnitPrice: d("0.01")}}, CardDiscount: d("10")}
	res, err = meta.RatePool([]Member{{Rater: usd, Overrides: ov, Usage: usage[:3]}})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range res[0].Lines {
		switch l.Market + "/" + l.Category {
		case "India/utility":
			if !l.Custom || l.CostPlus != nil || !l.Exact.Equal(d("90")) {
				t.Errorf("custom: %+v", l)
			}
		case "Germany/marketing":
			if !l.Exact.Equal(want["Germany/marketing"].Mul(d("0.9"))) {
				t.Errorf("discount: %+v", l)
			}
		}
	}

	// Errors: a cost-plus rater alone; a missing or wrong exchange rate.
	if _, err := usd.Rate(Overrides{}, usage, RateOptions{}); postage.ErrorCode(err) != postage.EINVALID {
		t.Errorf("cost-plus alone: %v", err)
	}
	for name, m := range map[string]Member{
		"no rate":          {Rater: eur, Usage: usage},
		"wrong pair":       {Rater: eur, FX: &ExchangeRate{From: "EUR", To: "USD", Month: may, Rate: d("1.1")}, Usage: usage},
		"another month":    {Rater: eur, FX: &ExchangeRate{From: "USD", To: "EUR", Month: MustParseMonth("2026-04"), Rate: d("0.9")}, Usage: usage, Opts: RateOptions{Month: may}},
		"rate for nothing": {Rater: usd, FX: fx, Usage: usage},
		"another card":     {Rater: mustSeed(t, LaunchSeed), Usage: usage},
	} {
		if _, err := meta.RatePool([]Member{m}); postage.ErrorCode(err) != postage.EINVALID {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// Cost-plus members of a portfolio share the cost card's tiers with the
// members priced by that card itself; a new cost version changes what
// cost-plus costs from its month on (the billing tests show it through a run).
func TestCostPlusInAPool(t *testing.T) {
	cost := launchDE(t) // a tiered cost card
	plus := costPlusRater(t, "USD", CostPlus{Markup: d("20")})
	ms := []Member{
		{Usage: []Usage{{Country: "DE", Category: "c", Quantity: 150_000}}},              // on the cost card itself
		{Rater: plus, Usage: []Usage{{Country: "DE", Category: "c", Quantity: 150_000}}}, // cost-plus
	}
	res, err := cost.RatePool(ms)
	if err != nil {
		t.Fatal(err)
	}
	// Both are priced at the tiers the pool of 300,000 reached: 125,000 + 25,000 each.
	c0 := res[0].Lines[0]
	c1 := res[1].Lines[0]
	if !c0.Exact.Equal(d("13194.125")) || !c1.CostPlus.Cost.Equal(d("13194.125")) || !c1.Exact.Equal(d("15832.95")) {
		t.Fatalf("%+v\n%+v %+v", c0, c1, c1.CostPlus)
	}
	// Both bill USD, so the line is rounded once for both: 13194.125 +
	// 15832.95 = 29027.075 → 29027.08 (half-even), the half cent going to the
	// larger remainder, the card member's.
	if !c0.Amount.Equal(d("13194.13")) || !c1.Amount.Equal(d("15832.95")) {
		t.Fatalf("%s %s", c0.Amount, c1.Amount)
	}
}

func TestCostPlusValidate(t *testing.T) {
	base := func() *Version {
		return &Version{CardID: "p", Currency: "USD", Rounding: RoundHalfEven, CostPlus: &CostPlus{Markup: d("10")}}
	}
	tests := []struct {
		name string
		edit func(v *Version)
		want string
	}{
		{"negative markup", func(v *Version) { v.CostPlus.Markup = d("-1") }, "markup"},
		{"markup too large", func(v *Version) { v.CostPlus.Markup = d("10001") }, "markup"},
		{"fee decimals", func(v *Version) { v.CostPlus.Fee = d("0.0000001") }, "fee"},
		{"negative floor", func(v *Version) { v.CostPlus.Floor = d("-0.01") }, "floor"},
		{"exception without scope", func(v *Version) { v.CostPlus.Exceptions = []CostPlusRule{{Markup: d("1")}} }, "names a market"},
		{"duplicate exception", func(v *Version) {
			v.CostPlus.Exceptions = []CostPlusRule{{Market: "India"}, {Market: "India", Markup: d("2")}}
		}, "duplicate"},
		{"prices of its own", func(v *Version) { v.Categories = []Category{{Name: "c"}} }, "no markets"},
	}
	if err := base().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		v := base()
		tt.edit(v)
		if err := v.Validate(); postage.ErrorCode(err) != postage.EINVALID || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v", tt.name, err)
		}
	}
	// CSV: problems point at the cost_plus row.
	_, err := DecodeCSV(bytes.NewReader([]byte("setting,currency,USD\ncost_plus,,,10,0,0\ncost_plus,India,,-5,0,0\n")))
	rows, _ := postage.ErrorDetail(err).([]RowError)
	if len(rows) != 1 || rows[0].Row != 3 || rows[0].Column != "markup_percent" {
		t.Fatalf("%v %+v", err, rows)
	}
	if got := (&CostPlus{Markup: d("1"), Exceptions: []CostPlusRule{{Market: "A", Markup: d("2")}, {Category: "c", Markup: d("3")}, {Market: "A", Category: "c", Markup: d("4")}}}); !got.Rule("A", "c").Markup.Equal(d("4")) ||
		!got.Rule("A", "x").Markup.Equal(d("2")) || !got.Rule("B", "c").Markup.Equal(d("3")) || !got.Rule("B", "x").Markup.Equal(d("1")) {
		t.Fatal("rule precedence")
	}
}

func TestExchangeRateValidate(t *testing.T) {
	ok := ExchangeRate{From: "USD", To: "EUR", Month: MustParseMonth("2026-03"), Rate: d("0.9123456789")}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []ExchangeRate{
		{From: "USD", To: "USD", Month: ok.Month, Rate: ok.Rate},
		{From: "usd", To: "EUR", Month: ok.Month, Rate: ok.Rate},
		{From: "USD", To: "EUR", Rate: ok.Rate},
		{From: "USD", To: "EUR", Month: ok.Month, Rate: d("-1")},
		{From: "USD", To: "EUR", Month: ok.Month, Rate: d("0.12345678901")},
		{From: "USD", To: "EUR", Month: ok.Month, Rate: d("1000000000")},
	} {
		if err := bad.Validate(); postage.ErrorCode(err) != postage.EINVALID {
			t.Errorf("%+v: %v", bad, err)
		}
	}
}

// A cost-plus member's quote and one message's price, over the cost card.
func TestCostPlusQuoteAndLookup(t *testing.T) {
	meta := mustSeed(t, MetaSeed)
	plus := costPlusRater(t, "USD", CostPlus{Markup: d("10"), Fee: d("0.001"), Floor: d("0.05")})
	de, _ := meta.Lookup("DE", "marketing", "")
	pi, err := meta.LookupMember(Member{Rater: plus}, "DE", "marketing")
	want := de.UnitPrice.Mul(d("1.1")).Add(d("0.001"))
	if err != nil || pi.Mode != ModeCostPlus || !pi.UnitPrice.Equal(want) || pi.Market != "Germany" || pi.Currency != "USD" {
		t.Fatalf("%v %+v, want %s", err, pi, want)
	}
	in, _ := meta.LookupMember(Member{Rater: plus}, "IN", "utility") // cheaper than the floor
	if !in.UnitPrice.Equal(d("0.05")) {
		t.Fatalf("%+v", in)
	}
	if pi, _ := meta.LookupMember(Member{Rater: plus}, "DE", "service"); !pi.Free {
		t.Fatalf("%+v", pi)
	}
	for _, items := range [][]Usage{{{Country: "D", Category: "marketing", Quantity: 1}}, {{Country: "DE", Category: "bogus", Quantity: 1}}} {
		if _, err := meta.QuoteMember(Member{Rater: plus, Usage: items}); postage.ErrorCode(err) != postage.EINVALID {
			t.Errorf("%+v: %v", items, err)
		}
	}
}

// Pool members' discounted lines read list − discount = amount, as Rate's
// do, with the shared rounding; lines name the categories their messages
// were sent with.
func TestPoolListAmountsAndMessageCategories(t *testing.T) {
	r := mustSeed(t, LaunchSeed)
	rng := rand.New(rand.NewPCG(15, 16))
	cats := []string{"marketing", "utility", "notification", "authentication"}
	for i := 0; i < 500; i++ {
		ms := make([]Member, 2+rng.IntN(4))
		for j := range ms {
			for _, c := range cats[:1+rng.IntN(len(cats))] {
				ms[j].Usage = append(ms[j].Usage, Usage{Country: "DE", Category: c, Quantity: 1 + rng.Int64N(400_000)})
			}
			if rng.IntN(2) == 0 {
				ms[j].Overrides.CardDiscount = randomPercent(rng)
			}
		}
		res, err := r.RatePool(ms)
		if err != nil {
			t.Fatal(err)
		}
		for j, rs := range res {
			ln := rs.Lines[0]
			var sent []string
			for _, u := range ms[j].Usage {
				if u.Category != "notification" || len(ms[j].Usage) > 1 {
					sent = append(sent, u.Category)
				}
			}
			slices.SortFunc(sent, func(a, b string) int { return r.nameOrder(a) - r.nameOrder(b) })
			if !slices.Equal(ln.MessageCategories, sent) && !(len(sent) == 0 && ln.MessageCategories == nil) {
				t.Fatalf("case %d member %d: message categories %v, want %v", i, j, ln.MessageCategories, sent)
			}
			if ln.Discount.IsZero() {
				if !ln.ListAmount.IsZero() || !ln.DiscountAmount.IsZero() {
					t.Fatalf("case %d member %d: undiscounted line with list %s discount %s", i, j, ln.ListAmount, ln.DiscountAmount)
				}
				continue
			}
			if !ln.ListAmount.Sub(ln.DiscountAmount).Equal(ln.Amount) || ln.DiscountAmount.IsNegative() {
				t.Fatalf("case %d member %d: list %s − discount %s ≠ amount %s", i, j, ln.ListAmount, ln.DiscountAmount, ln.Amount)
			}
			if own := ln.Subtotal.RoundBank(2); !ln.ListAmount.Equal(own) && !(ln.DiscountAmount.IsZero() && ln.Amount.GreaterThan(own)) {
				t.Fatalf("case %d member %d: list %s, the subtotal %s rounds to %s", i, j, ln.ListAmount, ln.Subtotal, own)
			}
		}
	}
}
