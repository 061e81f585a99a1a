package pricing

import (
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"github.com/shopspring/decimal"
)

// BenchmarkRate50kCustomers rates one month of 50,000 customers, each with
// usage in 150 countries × 2 categories (notification priced with the
// launch card's graduated tiers, session free), and in the same iteration
// runs the baseline: the same rows with only decimal quantity × flat price
// multiply-and-add. It reports both and their ratio (docs/BENCHMARKS.md).
//
//	go test ./pricing -run '^$' -bench Rate50k -benchtime 3x -benchmem
func BenchmarkRate50kCustomers(b *testing.B) {
	const customers, profiles = 50_000, 64
	s, err := LaunchSeed()
	if err != nil {
		b.Fatal(err)
	}
	r, err := Compile(s.Version)
	if err != nil {
		b.Fatal(err)
	}
	countries := sortedKeys(s.Version.Countries)[:147]
	countries = append(countries, "XK", "XA", "ZZ") // 150, three in the default market
	rng := rand.New(rand.NewPCG(7, 7))
	usage := make([][]Usage, profiles)
	prices := make([][]decimal.Decimal, profiles) // baseline: one flat price per row
	for p := range usage {
		for _, c := range countries {
			for _, cat := range []string{"notification", "session"} {
				q := rng.Int64N(1 << (1 + rng.IntN(22))) // 0 .. ~4M, log-uniform
				usage[p] = append(usage[p], Usage{Country: c, Category: cat, Quantity: q})
				pi, _ := r.Lookup(c, cat, "")
				prices[p] = append(prices[p], pi.UnitPrice)
			}
		}
	}
	var base, rate time.Duration
	var lines int
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		var sink decimal.Decimal
		for c := 0; c < customers; c++ {
			us, ps := usage[c%profiles], prices[c%profiles]
			total := decimal.Zero
			for j, u := range us {
				total = total.Add(decimal.NewFromInt(u.Quantity).Mul(ps[j]))
			}
			sink = total
		}
		t1 := time.Now()
		for c := 0; c < customers; c++ {
			res, err := r.Rate(Overrides{}, usage[c%profiles], RateOptions{})
			if err != nil {
				b.Fatal(err)
			}
			lines += len(res.Lines)
		}
		t2 := time.Now()
		base += t1.Sub(t0)
		rate += t2.Sub(t1)
		_ = sink
	}
	b.StopTimer()
	if lines != b.N*customers*296 { // 147 own markets + 3 countries in "Other", × 2 categories
		b.Fatalf("lines %d", lines)
	}
	n := float64(b.N)
	b.ReportMetric(float64(rate.Nanoseconds())/n, "ns/rating")
	b.ReportMetric(float64(base.Nanoseconds())/n, "ns/baseline")
	b.ReportMetric(float64(rate)/float64(base), "x-baseline")
	b.ReportMetric(float64(rate.Nanoseconds())/n/customers, "ns/customer")
}

// TestBenchmarkInputsAgree checks, on a small scale, that the benchmark's
// baseline (flat base prices, no tiers) and the rating agree where no
// tier is crossed, so the comparison is between equal work.
func TestBenchmarkInputsAgree(t *testing.T) {
	r := mustSeed(t, LaunchSeed)
	var usage []Usage
	want := decimal.Zero
	countries := sortedKeys(r.v.Countries)
	sort.Strings(countries)
	for i, c := range countries {
		u := Usage{Country: c, Category: "notification", Quantity: int64(i * 1000)}
		usage = append(usage, u, Usage{Country: c, Category: "session", Quantity: 5})
		pi, _ := r.Lookup(c, "notification", "")
		want = want.Add(pi.UnitPrice.Mul(decimal.NewFromInt(u.Quantity)).RoundBank(2))
	}
	res, err := r.Rate(Overrides{}, usage, RateOptions{})
	if err != nil || !res.Total.Equal(want) || len(res.Lines) != 2*len(countries) {
		t.Fatalf("%v %s %s", err, res.Total, want)
	}
}

// BenchmarkRateOneCustomer rates one customer-month of 150 countries × 2
// categories (the unit of the benchmark above, for quick comparisons).
func BenchmarkRateOneCustomer(b *testing.B) {
	s, _ := LaunchSeed()
	r, _ := Compile(s.Version)
	countries := append(sortedKeys(s.Version.Countries)[:147], "XK", "XA", "ZZ")
	rng := rand.New(rand.NewPCG(7, 7))
	var us []Usage
	for _, c := range countries {
		for _, cat := range []string{"notification", "session"} {
			us = append(us, Usage{Country: c, Category: cat, Quantity: rng.Int64N(1 << (1 + rng.IntN(22)))})
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Rate(Overrides{}, us, RateOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRateOneCustomerDiscounted is BenchmarkRateOneCustomer with a
// scoped and a whole-card discount on every line: the rounding of
// discounted amounts.
func BenchmarkRateOneCustomerDiscounted(b *testing.B) {
	s, _ := LaunchSeed()
	r, _ := Compile(s.Version)
	countries := append(sortedKeys(s.Version.Countries)[:147], "XK", "XA", "ZZ")
	rng := rand.New(rand.NewPCG(7, 7))
	var us []Usage
	for _, c := range countries {
		for _, cat := range []string{"notification", "session"} {
			us = append(us, Usage{Country: c, Category: cat, Quantity: rng.Int64N(1 << (1 + rng.IntN(22)))})
		}
	}
	ov := Overrides{CardDiscount: decimal.RequireFromString("2.5"), Discounts: []Discount{{Category: "notification", Percent: decimal.RequireFromString("12.3456")}}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Rate(ov, us, RateOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPortfolio rates a portfolio of 20 members, each sending 12 rows
// (3 countries × 4 categories of the launch card, graduated tiers), as one
// pool (RatePool: shared tiers, unit allocation, one shared rounding per
// line) against the same 20 members rated alone (Rate, the baseline), in
// the same command:
//
//	go test ./pricing -run '^$' -bench Portfolio -benchmem
func BenchmarkPortfolio(b *testing.B) {
	s, _ := LaunchSeed()
	r, _ := Compile(s.Version)
	rng := rand.New(rand.NewPCG(8, 8))
	members := make([]Member, 20)
	for i := range members {
		for _, c := range []string{"DE", "GB", "IN"} {
			for _, cat := range []string{"marketing", "utility", "authentication", "service"} {
				members[i].Usage = append(members[i].Usage, Usage{Country: c, Category: cat, Quantity: rng.Int64N(1 << (1 + rng.IntN(20)))})
			}
		}
	}
	b.Run("alone", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for i := range members {
				if _, err := r.Rate(members[i].Overrides, members[i].Usage, members[i].Opts); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("pooled", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := r.RatePool(members); err != nil {
				b.Fatal(err)
			}
		}
	})
}
