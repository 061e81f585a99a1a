package pricing

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/shopspring/decimal"
)

func d(s string) decimal.Decimal { return decimal.RequireFromString(s) }

func i64(n int64) *int64 { return &n }

func mustSeed(t testing.TB, f func() (Seed, error)) *Rater {
	t.Helper()
	s, err := f()
	if err != nil {
		t.Fatal(err)
	}
	r, err := Compile(s.Version)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// oneMarket is a card with one market "M" (default) and one priced category "c".
func oneMarket(currency string, rounding Rounding, p Price) *Version {
	p.Market, p.Category = "M", "c"
	return &Version{
		CardID: "t", Number: 1, Status: StatusDraft, Currency: currency, Rounding: rounding,
		DefaultMarket: "M", Countries: map[string]string{"DE": "M"},
		Categories: []Category{{Name: "c"}, {Name: "free", Free: true}},
		Prices:     []Price{p},
	}
}

func rate(t *testing.T, v *Version, ov Overrides, opts RateOptions, usage ...Usage) Result {
	t.Helper()
	res, err := Rate(v, ov, usage, opts)
	if err != nil {
		t.Fatalf("Rate: %v", err)
	}
	return res
}

func TestLaunchTierEdges(t *testing.T) {
	r := mustSeed(t, LaunchSeed)
	tests := []struct {
		q                 int64
		exact, amount     string
		tiers             int
		lastTierUnitPrice string
	}{
		{0, "0", "0", 0, ""},
		{1, "0.0887", "0.09", 1, "0.0887"},
		{249_999, "22174.9113", "22174.91", 1, "0.0887"},
		{250_000, "22175", "22175", 1, "0.0887"},
		{250_001, "22175.084265", "22175.08", 2, "0.084265"},
		{1_000_000, "22175 + 750000*0.084265", "", 2, "0.084265"},
		{1_000_001, "22175 + 750000*0.084265 + 0.07983", "", 3, "0.07983"},
		{10_000_001, "22175 + 750000*0.084265 + 1000000*0.07983 + 3000000*0.075395 + 5000000*0.07096 + 0.066525", "", 6, "0.066525"},
	}
	for _, tt := range tests {
		res, err := r.Rate(Overrides{}, []Usage{{Country: "DE", Category: "notification", Quantity: tt.q}}, RateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Lines) != 1 {
			t.Fatalf("q=%d: %d lines", tt.q, len(res.Lines))
		}
		ln := res.Lines[0]
		want := evalSum(tt.exact)
		if !ln.Exact.Equal(want) {
			t.Errorf("q=%d: exact got %s, want %s", tt.q, ln.Exact, want)
		}
		wantAmount := want.RoundBank(2)
		if tt.amount != "" {
			wantAmount = d(tt.amount)
		}
		if !ln.Amount.Equal(wantAmount) || !res.Total.Equal(wantAmount) {
			t.Errorf("q=%d: amount got %s total %s, want %s", tt.q, ln.Amount, res.Total, wantAmount)
		}
		if len(ln.Tiers) != tt.tiers {
			t.Errorf("q=%d: %d tiers, want %d", tt.q, len(ln.Tiers), tt.tiers)
		}
		if tt.tiers > 0 && !ln.Tiers[len(ln.Tiers)-1].UnitPrice.Equal(d(tt.lastTierUnitPrice)) {
			t.Errorf("q=%d: last tier price %s, want %s", tt.q, ln.Tiers[len(ln.Tiers)-1].UnitPrice, tt.lastTierUnitPrice)
		}
		// Tier amounts add up to the subtotal; tier quantities to the quantity.
		sum, n := decimal.Zero, int64(0)
		for _, tl := range ln.Tiers {
			sum = sum.Add(tl.Amount)
			n += tl.Quantity
			if !tl.Amount.Equal(tl.UnitPrice.Mul(decimal.NewFromInt(tl.Quantity))) {
				t.Errorf("q=%d: tier from %d amount %s != %d × %s", tt.q, tl.From, tl.Amount, tl.Quantity, tl.UnitPrice)
			}
		}
		if !sum.Equal(ln.Subtotal) || n != tt.q {
			t.Errorf("q=%d: tiers sum %s qty %d, subtotal %s", tt.q, sum, n, ln.Subtotal)
		}
		if ln.Market != "DE" || ln.Category != "notification" || ln.Mode != ModeGraduated {
			t.Errorf("q=%d: line %+v", tt.q, ln)
		}
	}
}

// evalSum evaluates "a + b*c + ..." exactly.
func evalSum(s string) decimal.Decimal {
	sum := decimal.Zero
	for _, term := range strings.Split(s, "+") {
		p := decimal.New(1, 0)
		for _, f := range strings.Split(term, "*") {
			p = p.Mul(d(strings.TrimSpace(f)))
		}
		sum = sum.Add(p)
	}
	return sum
}

func TestLaunchTierPrices(t *testing.T) {
	s, _ := LaunchSeed()
	for _, p := range s.Version.Prices {
		if p.Market != "DE" {
			continue
		}
		want := []string{"0.0887", "0.084265", "0.07983", "0.075395", "0.07096", "0.066525"}
		for i, tr := range p.Tiers {
			if !tr.UnitPrice.Equal(d(want[i])) {
				t.Errorf("tier %d: got %s, want %s", i, tr.UnitPrice, want[i])
			}
		}
		return
	}
	t.Fatal("no DE price")
}

// randomTiered returns a tiered card with small random bounds and prices.
func randomTiered(rng *rand.Rand, mode Mode) *Version {
	n := 1 + rng.IntN(5)
	var tiers []Tier
	var bound int64
	for i := 0; i < n; i++ {
		tr := Tier{UnitPrice: decimal.New(rng.Int64N(100_000), -6)}
		if i < n-1 {
			bound += 1 + rng.Int64N(50)
			tr.UpTo = i64(bound)
		}
		tiers = append(tiers, tr)
	}
	return oneMarket("USD", RoundHalfEven, Price{Mode: mode, Tiers: tiers})
}

// unitPrice returns the price of the k-th unit (1-based) under graduated tiers.
func unitPrice(tiers []Tier, k int64) decimal.Decimal {
	for _, tr := range tiers {
		if tr.UpTo == nil || k <= *tr.UpTo {
			return tr.UnitPrice
		}
	}
	panic("unreachable")
}

func TestGraduatedIsSumOfUnitPrices(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 300; i++ {
		v := randomTiered(rng, ModeGraduated)
		q := rng.Int64N(300)
		res := rate(t, v, Overrides{}, RateOptions{}, Usage{Country: "DE", Category: "c", Quantity: q})
		want := decimal.Zero
		for k := int64(1); k <= q; k++ {
			want = want.Add(unitPrice(v.Prices[0].Tiers, k))
		}
		if got := res.Lines[0].Exact; !got.Equal(want) {
			t.Fatalf("case %d q=%d tiers %+v: got %s, want %s", i, q, v.Prices[0].Tiers, got, want)
		}
		if got := res.Total; !got.Equal(want.RoundBank(2)) {
			t.Fatalf("case %d: total %s, want %s", i, got, want.RoundBank(2))
		}
	}
}

func TestVolumeIsAllUnitsAtReachedTier(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 300; i++ {
		v := randomTiered(rng, ModeVolume)
		q := 1 + rng.Int64N(300)
		res := rate(t, v, Overrides{}, RateOptions{}, Usage{Country: "DE", Category: "c", Quantity: q})
		p := unitPrice(v.Prices[0].Tiers, q) // the tier the q-th unit is in
		want := p.Mul(decimal.NewFromInt(q))
		ln := res.Lines[0]
		if !ln.Exact.Equal(want) || len(ln.Tiers) != 1 || ln.Tiers[0].Quantity != q || !ln.UnitPrice.Equal(p) {
			t.Fatalf("case %d q=%d tiers %+v: got %s %+v, want %s", i, q, v.Prices[0].Tiers, ln.Exact, ln.Tiers, want)
		}
	}
}

func TestVolumeEdges(t *testing.T) {
	v := oneMarket("USD", RoundHalfEven, Price{Mode: ModeVolume, Tiers: []Tier{
		{UpTo: i64(250_000), UnitPrice: d("0.01")},
		{UnitPrice: d("0.008")},
	}})
	for _, tt := range []struct {
		q    int64
		want string
	}{{250_000, "2500"}, {250_001, "2000.008"}} {
		res := rate(t, v, Overrides{}, RateOptions{}, Usage{Country: "DE", Category: "c", Quantity: tt.q})
		if got := res.Lines[0].Exact; !got.Equal(d(tt.want)) {
			t.Errorf("q=%d: got %s, want %s", tt.q, got, tt.want)
		}
	}
}

func TestRoundingHalfMinorUnit(t *testing.T) {
	tests := []struct {
		currency string
		rounding Rounding
		price    string
		q        int64
		want     string
	}{
		{"USD", RoundHalfEven, "0.005", 1, "0.00"},
		{"USD", RoundHalfUp, "0.005", 1, "0.01"},
		{"USD", RoundHalfEven, "0.015", 1, "0.02"},
		{"USD", RoundHalfUp, "0.015", 1, "0.02"},
		{"USD", RoundHalfEven, "0.0125", 2, "0.02"}, // 0.025
		{"USD", RoundHalfUp, "0.0125", 2, "0.03"},
		{"USD", RoundHalfEven, "0.004999", 1, "0.00"},
		{"USD", RoundHalfUp, "0.004999", 1, "0.00"},
		{"USD", RoundHalfEven, "0.005001", 1, "0.01"},
		{"JPY", RoundHalfEven, "0.5", 1, "0"},
		{"JPY", RoundHalfUp, "0.5", 1, "1"},
		{"JPY", RoundHalfEven, "1.5", 1, "2"},
		{"JPY", RoundHalfEven, "2.5", 1, "2"},
		{"JPY", RoundHalfUp, "2.5", 1, "3"},
		{"JPY", RoundHalfEven, "0.5", 3, "2"}, // 1.5
		{"KWD", RoundHalfEven, "0.0005", 1, "0.000"},
		{"KWD", RoundHalfUp, "0.0005", 1, "0.001"},
		{"KWD", RoundHalfEven, "0.0015", 1, "0.002"},
		{"KWD", RoundHalfEven, "0.000125", 4, "0.000"}, // 0.0005
		{"KWD", RoundHalfUp, "0.000125", 4, "0.001"},
	}
	for _, tt := range tests {
		v := oneMarket(tt.currency, tt.rounding, Price{Mode: ModeFlat, UnitPrice: d(tt.price)})
		res := rate(t, v, Overrides{}, RateOptions{}, Usage{Country: "DE", Category: "c", Quantity: tt.q})
		if got := res.Lines[0].Amount; !got.Equal(d(tt.want)) || !res.Total.Equal(d(tt.want)) {
			t.Errorf("%s %s %s×%d: got %s total %s, want %s", tt.currency, tt.rounding, tt.price, tt.q, got, res.Total, tt.want)
		}
		if got := res.Lines[0].Exact; !got.Equal(d(tt.price).Mul(decimal.NewFromInt(tt.q))) {
			t.Errorf("%s %s×%d: exact %s", tt.currency, tt.price, tt.q, got)
		}
	}
	// The same half-unit cases through the decimal path (a 0% discount is no
	// discount, so use 50% of twice the price).
	for _, tt := range tests {
		v := oneMarket(tt.currency, tt.rounding, Price{Mode: ModeFlat, UnitPrice: d(tt.price).Mul(d("2"))})
		res := rate(t, v, Overrides{CardDiscount: d("50")}, RateOptions{}, Usage{Country: "DE", Category: "c", Quantity: tt.q})
		if got := res.Lines[0].Amount; !got.Equal(d(tt.want)) || !res.Total.Equal(d(tt.want)) {
			t.Errorf("discounted %s %s %s×%d: got %s total %s, want %s", tt.currency, tt.rounding, tt.price, tt.q, got, res.Total, tt.want)
		}
	}
}

func TestTotalIsSumOfRoundedLines(t *testing.T) {
	// Three lines of 0.005 each: rounded 0.00 each (half-even), so the total is
	// 0.00, not round(0.015) = 0.02.
	v := oneMarket("USD", RoundHalfEven, Price{Mode: ModeFlat, UnitPrice: d("0.005")})
	v.Countries = map[string]string{"DE": "A", "FR": "B"}
	v.DefaultMarket = "M"
	v.Prices = []Price{
		{Market: "A", Category: "c", Mode: ModeFlat, UnitPrice: d("0.005")},
		{Market: "B", Category: "c", Mode: ModeFlat, UnitPrice: d("0.005")},
		{Market: "M", Category: "c", Mode: ModeFlat, UnitPrice: d("0.005")},
	}
	res := rate(t, v, Overrides{}, RateOptions{}, Usage{Country: "DE", Category: "c", Quantity: 1}, Usage{Country: "FR", Category: "c", Quantity: 1}, Usage{Country: "US", Category: "c", Quantity: 1})
	if len(res.Lines) != 3 || !res.Total.Equal(decimal.Zero) {
		t.Fatalf("got %d lines total %s", len(res.Lines), res.Total)
	}
	for _, ln := range res.Lines {
		if !ln.Exact.Equal(d("0.005")) {
			t.Errorf("line %s exact %s", ln.Market, ln.Exact)
		}
	}
}

func TestTrillionExact(t *testing.T) {
	r := mustSeed(t, LaunchSeed)
	q := int64(1_000_000_000_000)
	res, err := r.Rate(Overrides{}, []Usage{{Country: "DE", Category: "notification", Quantity: q}}, RateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// 22175 + 750000×0.084265 + 1e6×0.07983 + 3e6×0.075395 + 5e6×0.07096 + (1e12 − 1e7)×0.066525
	want := evalSum("22175 + 750000*0.084265 + 1000000*0.07983 + 3000000*0.075395 + 5000000*0.07096 + 999990000000*0.066525")
	if got := res.Lines[0].Exact; !got.Equal(want) {
		t.Fatalf("got %s, want %s", got, want)
	}
	if got := res.Total.String(); got != want.RoundBank(2).String() {
		t.Fatalf("total %s, want %s", got, want.RoundBank(2))
	}
	// Flat: 10^12 × 0.999999 and the maximal price, beyond int64 micro-units.
	v := oneMarket("USD", RoundHalfEven, Price{Mode: ModeFlat, UnitPrice: d("999999.999999")})
	res = rate(t, v, Overrides{}, RateOptions{}, Usage{Country: "DE", Category: "c", Quantity: q}, Usage{Country: "DE", Category: "c", Quantity: q})
	want = d("999999.999999").Mul(decimal.NewFromInt(2 * q))
	if !res.Lines[0].Exact.Equal(want) || !res.Total.Equal(want) {
		t.Fatalf("got %s total %s, want %s", res.Lines[0].Exact, res.Total, want)
	}
	if res.Lines[0].Quantity != 2*q {
		t.Fatalf("quantity %d", res.Lines[0].Quantity)
	}
}

func TestMonthResetsTierCounts(t *testing.T) {
	// Tier volume is per customer-month: each call rates one month, so
	// 300,000 in January and 300,000 in February each start at tier 1.
	r := mustSeed(t, LaunchSeed)
	jan, _ := r.Rate(Overrides{}, []Usage{{Country: "DE", Category: "notification", Quantity: 300_000}}, RateOptions{Month: MustParseMonth("2026-01")})
	feb, _ := r.Rate(Overrides{}, []Usage{{Country: "DE", Category: "notification", Quantity: 300_000}}, RateOptions{Month: MustParseMonth("2026-02")})
	both, _ := r.Rate(Overrides{}, []Usage{{Country: "DE", Category: "notification", Quantity: 300_000}, {Country: "DE", Category: "notification", Quantity: 300_000}}, RateOptions{})
	want := evalSum("22175 + 50000*0.084265")
	if !jan.Lines[0].Exact.Equal(want) || !feb.Lines[0].Exact.Equal(want) {
		t.Fatalf("jan %s feb %s, want %s each", jan.Lines[0].Exact, feb.Lines[0].Exact, want)
	}
	if jan.Month.String() != "2026-01" || feb.Month.String() != "2026-02" {
		t.Fatalf("months %s %s", jan.Month, feb.Month)
	}
	if wantBoth := evalSum("22175 + 350000*0.084265"); !both.Lines[0].Exact.Equal(wantBoth) {
		t.Fatalf("one month of 600,000: %s, want %s", both.Lines[0].Exact, wantBoth)
	}
}

func TestTiersPerMarketAndCategory(t *testing.T) {
	// Tier volume is per (market, category): 200,000 to DE and 200,000 to FR
	// on the launch card (each country its own market) stay in tier 1, but
	// on a card where DE and FR share a market they cross into tier 2.
	r := mustSeed(t, LaunchSeed)
	res, _ := r.Rate(Overrides{}, []Usage{{Country: "DE", Category: "notification", Quantity: 200_000}, {Country: "FR", Category: "notification", Quantity: 200_000}}, RateOptions{})
	for _, ln := range res.Lines {
		if len(ln.Tiers) != 1 {
			t.Fatalf("%s: %d tiers", ln.Market, len(ln.Tiers))
		}
	}
	s, _ := LaunchSeed()
	v := s.Version.Clone()
	v.Countries["FR"] = "DE"
	var prices []Price
	for _, p := range v.Prices {
		if p.Market != "FR" {
			prices = append(prices, p)
		}
	}
	v.Prices = prices
	res = rate(t, v, Overrides{}, RateOptions{}, Usage{Country: "DE", Category: "notification", Quantity: 200_000}, Usage{Country: "FR", Category: "notification", Quantity: 200_000}, Usage{Country: "DE", Category: "session", Quantity: 7})
	if len(res.Lines) != 2 {
		t.Fatalf("lines %+v", res.Lines)
	}
	ln := res.Lines[0]
	if ln.Market != "DE" || ln.Quantity != 400_000 || len(ln.Tiers) != 2 || !ln.Average {
		t.Fatalf("line %+v", ln)
	}
	if got, want := ln.Countries, []CountryQuantity{{"DE", 200_000}, {"FR", 200_000}}; len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("countries %+v", got)
	}
	if want := evalSum("22175 + 150000*0.084265"); !ln.Exact.Equal(want) {
		t.Fatalf("exact %s, want %s", ln.Exact, want)
	}
	// average = 34814.75 / 400000 = 0.087036875 → 0.087037
	if !ln.UnitPrice.Equal(d("0.087037")) {
		t.Fatalf("average %s", ln.UnitPrice)
	}
	if fl := res.Lines[1]; !fl.Free || fl.Category != "session" || fl.Quantity != 7 || !fl.Amount.IsZero() {
		t.Fatalf("free line %+v", fl)
	}
}

func TestFreeAliasesAndAggregation(t *testing.T) {
	r := mustSeed(t, LaunchSeed)
	res, err := r.Rate(Overrides{}, []Usage{
		{Country: "FR", Category: "session", Quantity: 5}, {Country: "DE", Category: "marketing", Quantity: 1}, {Country: "DE", Category: "utility", Quantity: 2}, {Country: "DE", Category: "notification", Quantity: 3},
		{Country: "XK", Category: "notification", Quantity: 1}, {Country: "ZW", Category: "service", Quantity: 4}, {Country: "", Category: "notification", Quantity: 1},
	}, RateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	type key struct {
		market, category string
		q                int64
		amount           string
	}
	var got []key
	for _, ln := range res.Lines {
		got = append(got, key{ln.Market, ln.Category, ln.Quantity, ln.Amount.StringFixed(2)})
	}
	want := []key{
		{"DE", "notification", 6, "0.53"}, // 6 × 0.0887 = 0.5322
		{"FR", "session", 5, "0.00"},
		{"Other", "notification", 2, "0.08"}, // 2 × 0.0393
		{"ZW", "session", 4, "0.00"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	if other := res.Lines[2].Countries; len(other) != 2 || other[0].Country != "" || other[1].Country != "XK" {
		t.Errorf("Other countries %+v", other)
	}
	if !res.Total.Equal(d("0.61")) {
		t.Errorf("total %s", res.Total)
	}
}

func TestAuthenticationInternational(t *testing.T) {
	r := mustSeed(t, MetaSeed)
	tests := []struct {
		customer, recipient string
		category, market    string
		price               string
	}{
		{"DE", "IN", "authentication_international", "India", "0.028"},
		{"IN", "IN", "authentication", "India", "0.0014"},
		{"", "IN", "authentication", "India", "0.0014"},                         // no customer country: domestic
		{"DE", "FR", "authentication_international", "France", "0.03"},          // no international price: falls back
		{"DE", "ZW", "authentication_international", "Rest of Africa", "0.004"}, // idem
		{"US", "AQ", "authentication_international", "Other", "0.0077"},         // listed as Other
		{"US", "XK", "authentication_international", "Other", "0.0077"},         // not listed: Other
		{"FR", "ZA", "authentication_international", "South Africa", "0.02"},
	}
	for _, tt := range tests {
		res, err := r.Rate(Overrides{}, []Usage{{Country: tt.recipient, Category: "authentication", Quantity: 1000}, {Country: tt.recipient, Category: "marketing", Quantity: 1}}, RateOptions{CustomerCountry: tt.customer})
		if err != nil {
			t.Fatal(err)
		}
		ln := res.Lines[1] // categories in card order: marketing, then authentication*
		if ln.Category != tt.category || ln.Market != tt.market || !ln.UnitPrice.Equal(d(tt.price)) {
			t.Errorf("%s→%s: got %s/%s at %s, want %s/%s at %s", tt.customer, tt.recipient, ln.Market, ln.Category, ln.UnitPrice, tt.market, tt.category, tt.price)
		}
		pi, err := r.Lookup(tt.recipient, "authentication", tt.customer)
		if err != nil || pi.Category != tt.category || !pi.UnitPrice.Equal(d(tt.price)) {
			t.Errorf("Lookup %s→%s: %+v %v", tt.customer, tt.recipient, pi, err)
		}
	}
	// Marketing never becomes international.
	res, _ := r.Rate(Overrides{}, []Usage{{Country: "IN", Category: "marketing", Quantity: 1}}, RateOptions{CustomerCountry: "DE"})
	if res.Lines[0].Category != "marketing" {
		t.Errorf("marketing rated as %s", res.Lines[0].Category)
	}
}

func TestOverridesStacking(t *testing.T) {
	s, _ := MetaSeed()
	v := s.Version
	usage := []Usage{{Country: "DE", Category: "marketing", Quantity: 1000}, {Country: "DE", Category: "utility", Quantity: 1000}, {Country: "FR", Category: "marketing", Quantity: 1000}, {Country: "FR", Category: "utility", Quantity: 1000}}
	// Card: DE marketing 0.1365, DE utility 0.055, FR marketing 0.0859, FR utility 0.03.
	tests := []struct {
		name string
		ov   Overrides
		want []string // exact amounts of DE/marketing, DE/utility, FR/marketing, FR/utility
		disc []string
	}{
		{"none", Overrides{}, []string{"136.5", "55", "85.9", "30"}, []string{"0", "0", "0", "0"}},
		{"card 10%", Overrides{CardDiscount: d("10")}, []string{"122.85", "49.5", "77.31", "27"}, []string{"10", "10", "10", "10"}},
		{"market 20%", Overrides{Discounts: []Discount{{Market: "Germany", Percent: d("20")}}}, []string{"109.2", "44", "85.9", "30"}, []string{"20", "20", "0", "0"}},
		{"category 50%", Overrides{Discounts: []Discount{{Category: "utility", Percent: d("50")}}}, []string{"136.5", "27.5", "85.9", "15"}, []string{"0", "50", "0", "50"}},
		{"most specific scoped wins", Overrides{Discounts: []Discount{
			{Category: "utility", Percent: d("50")}, {Market: "Germany", Percent: d("20")}, {Market: "Germany", Category: "utility", Percent: d("1")},
		}}, []string{"109.2", "54.45", "85.9", "15"}, []string{"20", "1", "0", "50"}},
		{"scoped then card multiply", Overrides{CardDiscount: d("5"), Discounts: []Discount{{Market: "Germany", Percent: d("10")}}},
			// 136.5 × 0.9 × 0.95 = 116.7075; 55 × 0.855 = 47.025
			[]string{"116.7075", "47.025", "81.605", "28.5"}, []string{"14.5", "14.5", "5", "5"}},
		{"custom price then discounts", Overrides{
			CardDiscount: d("5"),
			Discounts:    []Discount{{Market: "Germany", Percent: d("10")}},
			UnitPrices:   []UnitPrice{{Market: "Germany", Category: "marketing", UnitPrice: d("0.1")}},
		}, []string{"85.5", "47.025", "81.605", "28.5"}, []string{"14.5", "14.5", "5", "5"}},
		{"custom price alone", Overrides{UnitPrices: []UnitPrice{{Market: "France", Category: "utility", UnitPrice: d("0.012345")}}},
			[]string{"136.5", "55", "85.9", "12.345"}, []string{"0", "0", "0", "0"}},
		{"100% off", Overrides{CardDiscount: d("100")}, []string{"0", "0", "0", "0"}, []string{"100", "100", "100", "100"}},
	}
	for _, tt := range tests {
		res, err := Rate(v, tt.ov, usage, RateOptions{})
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		sum := decimal.Zero
		for _, ln := range res.Lines {
			i := map[string]int{"Germany/marketing": 0, "Germany/utility": 1, "France/marketing": 2, "France/utility": 3}[ln.Market+"/"+ln.Category]
			// A discounted line reads list − discount = amount, each in
			// minor units; an undiscounted one carries neither.
			if ln.Discount.IsZero() {
				if !ln.ListAmount.IsZero() || !ln.DiscountAmount.IsZero() {
					t.Errorf("%s: undiscounted line %s/%s has list %s discount %s", tt.name, ln.Market, ln.Category, ln.ListAmount, ln.DiscountAmount)
				}
			} else if !ln.ListAmount.Equal(ln.Subtotal.RoundBank(2)) || !ln.ListAmount.Sub(ln.DiscountAmount).Equal(ln.Amount) {
				t.Errorf("%s: line %s/%s list %s − discount %s ≠ amount %s (subtotal %s)", tt.name, ln.Market, ln.Category, ln.ListAmount, ln.DiscountAmount, ln.Amount, ln.Subtotal)
			}
			if !ln.Exact.Equal(d(tt.want[i])) {
				t.Errorf("%s: line %s/%s exact %s, want %s", tt.name, ln.Market, ln.Category, ln.Exact, tt.want[i])
			}
			if !ln.Discount.Equal(d(tt.disc[i])) {
				t.Errorf("%s: line %s/%s discount %s, want %s", tt.name, ln.Market, ln.Category, ln.Discount, tt.disc[i])
			}
			if !ln.Amount.Equal(ln.Exact.RoundBank(2)) {
				t.Errorf("%s: amount %s of %s", tt.name, ln.Amount, ln.Exact)
			}
			sum = sum.Add(ln.Amount)
		}
		if !res.Total.Equal(sum) {
			t.Errorf("%s: total %s, sum of lines %s", tt.name, res.Total, sum)
		}
		if ln := res.Lines[2]; tt.name == "custom price then discounts" && (!ln.Custom || ln.Mode != ModeFlat || !ln.UnitPrice.Equal(d("0.1"))) {
			t.Errorf("custom line %+v", ln)
		}
	}
}

func TestCustomPriceReplacesTiers(t *testing.T) {
	r := mustSeed(t, LaunchSeed)
	res, err := r.Rate(Overrides{UnitPrices: []UnitPrice{{Market: "DE", Category: "notification", UnitPrice: d("0.05")}}},
		[]Usage{{Country: "DE", Category: "notification", Quantity: 2_000_000}}, RateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ln := res.Lines[0]; !ln.Exact.Equal(d("100000")) || len(ln.Tiers) != 1 || !ln.Custom {
		t.Fatalf("line %+v", ln)
	}
}

func TestRateErrors(t *testing.T) {
	r := mustSeed(t, LaunchSeed)
	tests := []struct {
		name  string
		ov    Overrides
		usage []Usage
		want  []string
	}{
		{"negative quantity", Overrides{}, []Usage{{Country: "DE", Category: "notification", Quantity: -1}}, []string{"quantity -1"}},
		{"overflow", Overrides{}, []Usage{{Country: "DE", Category: "notification", Quantity: MaxQuantity}, {Country: "DE", Category: "notification", Quantity: 1}}, []string{"exceeds"}},
		{"overflow past int64", Overrides{}, []Usage{{Country: "DE", Category: "notification", Quantity: MaxQuantity}, {Country: "DE", Category: "notification", Quantity: MaxQuantity}}, []string{"row 1", "exceeds"}},
		{"negative quantity of an unknown category", Overrides{}, []Usage{{Country: "DE", Category: "bogus", Quantity: -1}, {Country: "FR", Category: "bogus", Quantity: 1}, {Country: "DE", Category: "notification", Quantity: -5}}, []string{"row 0", "row 2", "quantity -5"}},
		{"bad percent", Overrides{CardDiscount: d("101")}, nil, []string{"card discount"}},
		{"bad percent decimals", Overrides{Discounts: []Discount{{Market: "DE", Percent: d("1.23456")}}}, nil, []string{"at most 4 decimals"}},
		{"unscoped discount", Overrides{Discounts: []Discount{{Percent: d("1")}}}, nil, []string{"name a market"}},
		{"bad custom price", Overrides{UnitPrices: []UnitPrice{{Market: "DE", Category: "notification", UnitPrice: d("-1")}}}, nil, []string{"negative"}},
		{"duplicate custom price", Overrides{UnitPrices: []UnitPrice{{Market: "DE", Category: "notification", UnitPrice: d("1")}, {Market: "DE", Category: "notification", UnitPrice: d("2")}}}, nil, []string{"duplicate"}},
	}
	for _, tt := range tests {
		_, err := r.Rate(tt.ov, tt.usage, RateOptions{})
		if err == nil {
			t.Errorf("%s: no error", tt.name)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q lacks %q", tt.name, err, w)
			}
		}
	}
	if _, err := r.Quote(Overrides{}, []QuoteItem{{Country: "D", Category: "notification", Quantity: 1}, {Country: "de", Category: "notification", Quantity: 1}}, RateOptions{}); err == nil || strings.Count(err.Error(), "ISO 3166") != 2 {
		t.Errorf("quote with bad countries: %v", err)
	}
}

func TestQuoteEqualsRate(t *testing.T) {
	r := mustSeed(t, MetaSeed)
	items := []QuoteItem{{Country: "DE", Category: "marketing", Quantity: 123_456}, {Country: "BR", Category: "utility", Quantity: 7}, {Country: "IN", Category: "authentication", Quantity: 99}, {Country: "US", Category: "service", Quantity: 5}}
	q, err := r.Quote(Overrides{CardDiscount: d("3")}, items, RateOptions{CustomerCountry: "US"})
	if err != nil {
		t.Fatal(err)
	}
	rt, _ := r.Rate(Overrides{CardDiscount: d("3")}, items, RateOptions{CustomerCountry: "US"})
	if !q.Total.Equal(rt.Total) || len(q.Lines) != len(rt.Lines) || q.Total.IsZero() {
		t.Fatalf("quote %s rate %s", q.Total, rt.Total)
	}
}

func TestRaterIsolatedFromEdits(t *testing.T) {
	s, _ := LaunchSeed()
	r, _ := Compile(s.Version)
	s.Version.Prices[0].Tiers[0].UnitPrice = d("5")
	pi, _ := r.Lookup(s.Version.Prices[0].Market, "notification", "")
	if pi.UnitPrice.Equal(d("5")) {
		t.Fatal("rater shares the version's prices")
	}
}

func TestCrossCardVocabulary(t *testing.T) {
	meta := mustSeed(t, MetaSeed)
	launch := mustSeed(t, LaunchSeed)
	usage := []Usage{{Country: "DE", Category: "notification", Quantity: 10}, {Country: "DE", Category: "session", Quantity: 3}, {Country: "DE", Category: "marketing", Quantity: 5}, {Country: "DE", Category: "service", Quantity: 1}}
	res, err := meta.Rate(Overrides{}, usage, RateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// meta: marketing 15 × 0.1365 = 2.0475 → 2.05; service 4 free.
	if len(res.Lines) != 2 || res.Lines[0].Category != "marketing" || res.Lines[0].Quantity != 15 || res.Lines[1].Category != "service" || res.Lines[1].Quantity != 4 || !res.Total.Equal(d("2.05")) {
		t.Fatalf("meta: %+v %s", res.Lines, res.Total)
	}
	res, err = launch.Rate(Overrides{}, usage, RateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// launch: notification 15 × 0.0887 = 1.3305 → 1.33; session 4 free.
	if len(res.Lines) != 2 || res.Lines[0].Quantity != 15 || res.Lines[1].Quantity != 4 || !res.Total.Equal(d("1.33")) {
		t.Fatalf("launch: %+v %s", res.Lines, res.Total)
	}
}

// TestMessageCategories: a line names the categories its messages were
// sent with when the card bills them as another category, in the card's
// order; a line sent under its own name only names none.
func TestMessageCategories(t *testing.T) {
	launch := mustSeed(t, LaunchSeed)
	meta := mustSeed(t, MetaSeed)
	tests := []struct {
		name  string
		r     *Rater
		opts  RateOptions
		usage []Usage
		want  map[string][]string // market/category → message categories
	}{
		{"aliases in card order", launch, RateOptions{}, []Usage{
			{Country: "DE", Category: "authentication", Quantity: 1}, {Country: "DE", Category: "marketing", Quantity: 2},
			{Country: "DE", Category: "utility", Quantity: 3}, {Country: "FR", Category: "marketing", Quantity: 1},
			{Country: "FR", Category: "service", Quantity: 4}, {Country: "ES", Category: "notification", Quantity: 1},
		}, map[string][]string{
			"DE/notification": {"marketing", "utility", "authentication"},
			"FR/notification": {"marketing"},
			"FR/session":      {"service"},
			"ES/notification": nil,
		}},
		{"own name with an alias", launch, RateOptions{}, []Usage{
			{Country: "DE", Category: "utility", Quantity: 1}, {Country: "DE", Category: "notification", Quantity: 1},
		}, map[string][]string{"DE/notification": {"notification", "utility"}}},
		{"international variant names its base", meta, RateOptions{CustomerCountry: "DE"}, []Usage{
			{Country: "IN", Category: "authentication", Quantity: 5}, {Country: "IN", Category: "marketing", Quantity: 1},
		}, map[string][]string{"India/authentication_international": {"authentication"}, "India/marketing": nil}},
	}
	for _, tt := range tests {
		res, err := tt.r.Rate(Overrides{}, tt.usage, tt.opts)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if len(res.Lines) != len(tt.want) {
			t.Fatalf("%s: %d lines, want %d: %+v", tt.name, len(res.Lines), len(tt.want), res.Lines)
		}
		for _, ln := range res.Lines {
			want, ok := tt.want[ln.Market+"/"+ln.Category]
			if !ok || strings.Join(ln.MessageCategories, ",") != strings.Join(want, ",") {
				t.Errorf("%s: %s/%s message categories %q, want %q", tt.name, ln.Market, ln.Category, ln.MessageCategories, want)
			}
		}
	}
}

func TestQuoteReportsUnknownCategoryOnce(t *testing.T) {
	r := mustSeed(t, LaunchSeed)
	_, err := r.Quote(Overrides{}, []Usage{{Country: "DE", Category: "bogus", Quantity: 1}, {Country: "FR", Category: "bogus", Quantity: 1}, {Country: "IT", Category: "bogus", Quantity: 1}}, RateOptions{})
	if err == nil || strings.Count(err.Error(), "bogus") != 1 || !strings.Contains(err.Error(), "notification, session") {
		t.Fatalf("%v", err)
	}
}

// Splitting a month's usage into more rows, or reordering the rows, never
// changes the bill: rating works on the month's aggregate.
func TestRatingIsAggregateInvariant(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, r := range []*Rater{mustSeed(t, LaunchSeed), mustSeed(t, MetaSeed)} {
		countries := append(sortedKeys(r.v.Countries)[:40], "XK", "")
		var cats []string
		for _, c := range r.cats {
			cats = append(cats, c.Name)
			cats = append(cats, c.Aliases...)
		}
		for i := 0; i < 50; i++ {
			var usage []Usage
			for j := 0; j < 30; j++ {
				usage = append(usage, Usage{Country: countries[rng.IntN(len(countries))], Category: cats[rng.IntN(len(cats))], Quantity: rng.Int64N(3_000_000)})
			}
			opts := RateOptions{CustomerCountry: countries[rng.IntN(len(countries))]}
			ov := Overrides{CardDiscount: decimal.New(rng.Int64N(3), 0)}
			want, err := r.Rate(ov, usage, opts)
			if err != nil {
				t.Fatal(err)
			}
			var split []Usage
			for _, u := range usage {
				k := rng.Int64N(u.Quantity + 1)
				split = append(split, Usage{Country: u.Country, Category: u.Category, Quantity: k}, Usage{Country: u.Country, Category: u.Category, Quantity: u.Quantity - k})
			}
			rng.Shuffle(len(split), func(a, b int) { split[a], split[b] = split[b], split[a] })
			got, err := r.Rate(ov, split, opts)
			if err != nil {
				t.Fatal(err)
			}
			if a, b := jsonOf(t, want), jsonOf(t, got); a != b {
				t.Fatalf("%s case %d: split/shuffled usage rates differently:\n%s\n%s", r.v.CardID, i, a, b)
			}
			sum := decimal.Zero
			for _, ln := range got.Lines {
				sum = sum.Add(ln.Amount)
			}
			if !sum.Equal(got.Total) {
				t.Fatalf("total %s != sum of lines %s", got.Total, sum)
			}
		}
	}
}

// Rows with a FreeType are free whatever their category (known to the
// card or not), on lines of their own, outside the tier volume.
func TestFreeTypeRows(t *testing.T) {
	v := oneMarket("USD", RoundHalfEven, Price{Mode: ModeGraduated, Tiers: []Tier{{UpTo: i64(10), UnitPrice: d("0.02")}, {UnitPrice: d("0.01")}}})
	res := rate(t, v, Overrides{CardDiscount: d("10")}, RateOptions{},
		Usage{Country: "DE", Category: "c", Quantity: 10},
		Usage{Country: "FR", Category: "c", Quantity: 4, FreeType: "free_customer_service"},
		Usage{Country: "DE", Category: "c", Quantity: 5, FreeType: "free_customer_service"},
		Usage{Country: "DE", Category: "not_on_card", Quantity: 3, FreeType: "free_entry_point"},
		Usage{Country: "DE", Category: "c", Quantity: 2, FreeType: "free_entry_point"},
	)
	type line struct {
		category, freeType string
		free               bool
		q                  int64
		countries          int
		amount             string
	}
	var got []line
	for _, l := range res.Lines {
		got = append(got, line{l.Category, l.FreeType, l.Free, l.Quantity, len(l.Countries), l.Amount.String()})
	}
	want := []line{
		{"c", "", false, 10, 1, "0.18"}, // 10 × 0.02 (all in the first tier: free rows do not count) − 10%
		{"c", "free_customer_service", true, 9, 2, "0"},
		{"c", "free_entry_point", true, 2, 1, "0"},
		{"not_on_card", "free_entry_point", true, 3, 1, "0"},
	}
	if len(got) != len(want) {
		t.Fatalf("lines %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if res.Total.String() != "0.18" {
		t.Errorf("total %s, want 0.18", res.Total)
	}
	if _, err := Rate(v, Overrides{}, []Usage{{Country: "DE", Category: "c", Quantity: -1, FreeType: "x"}}, RateOptions{}); err == nil {
		t.Error("a negative free quantity was accepted")
	}
}
