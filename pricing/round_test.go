package pricing

import (
	"math/big"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"

	"github.com/shopspring/decimal"
)

// TestRoundingAgreesWithDecimal checks the one rounding of money (Rate's
// 128/192-bit integer path, u192.roundDiv) against an independent
// reference on random cases: the exact amount computed with the decimal
// library (tiers, custom prices, scoped and whole-card discounts) and
// rounded by the library's own RoundBank / Round, the average unit price
// rounded half-even with math/big, the total as the sum of the rounded
// lines. Quantities are log-uniform up to 2^62, unit prices up to
// 999,999.999999, in currencies of 0 to 4 decimals and both rounding modes.
//
// POSTAGE_ROUNDING_CASES sets the number of cases (default 100,000; the
// figure in docs/PRICING.md was measured with 10,000,000).
func TestRoundingAgreesWithDecimal(t *testing.T) {
	cases := 100_000
	if s := os.Getenv("POSTAGE_ROUNDING_CASES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("POSTAGE_ROUNDING_CASES=%q", s)
		}
		cases = n
	}
	if testing.Short() {
		cases = 10_000
	}
	rng := rand.New(rand.NewPCG(18, 5))
	const perVersion = 100 // usages rated per random version
	for done := 0; done < cases; {
		v := randomVersion(rng)
		r, err := Compile(v)
		if err != nil {
			t.Fatalf("random version: %v\n%+v", err, v)
		}
		for k := 0; k < perVersion && done < cases; k++ {
			ov := randomOverrides(rng, v)
			var usage []Usage
			for _, country := range []string{"DE", "ZZ"} { // markets A and B (the default)
				if rng.IntN(4) > 0 {
					usage = append(usage, Usage{Country: country, Category: "c", Quantity: randomQuantity(rng)})
				}
			}
			res, err := r.Rate(ov, usage, RateOptions{})
			if err != nil {
				t.Fatalf("rate: %v", err)
			}
			checkAgainstReference(t, v, ov, usage, res)
			done += len(usage)
			if t.Failed() {
				t.Fatalf("version %+v\noverrides %+v\nusage %+v", v, ov, usage)
			}
		}
	}
}

var currencies = []string{"JPY", "USD", "EUR", "KWD", "CLF"} // 0, 2, 2, 3, 4 decimals

func randomVersion(rng *rand.Rand) *Version {
	v := &Version{
		CardID: "r", Number: 1, Status: StatusDraft, Currency: currencies[rng.IntN(len(currencies))],
		Rounding: RoundHalfEven, DefaultMarket: "B", Countries: map[string]string{"DE": "A"},
		Categories: []Category{{Name: "c"}},
	}
	if rng.IntN(2) == 0 {
		v.Rounding = RoundHalfUp
	}
	for _, m := range []string{"A", "B"} {
		p := Price{Market: m, Category: "c"}
		switch rng.IntN(3) {
		case 0:
			p.Mode, p.UnitPrice = ModeFlat, randomPrice(rng)
		case 1, 2:
			p.Mode = ModeGraduated
			if rng.IntN(2) == 0 {
				p.Mode = ModeVolume
			}
			var upTo int64
			for n := 1 + rng.IntN(4); n > 0; n-- {
				t := Tier{UnitPrice: randomPrice(rng)}
				if n > 1 {
					upTo += 1 + randomQuantity(rng)/4
					u := upTo
					t.UpTo = &u
				}
				p.Tiers = append(p.Tiers, t)
			}
		}
		v.Prices = append(v.Prices, p)
	}
	return v
}

// randomQuantity is log-uniform in [0, 2^62).
func randomQuantity(rng *rand.Rand) int64 {
	return rng.Int64N(int64(1) << (1 + rng.IntN(62)))
}

// randomPrice has up to six decimals and is below 10^6.
func randomPrice(rng *rand.Rand) decimal.Decimal {
	micros := rng.Int64N(int64(1) << (1 + rng.IntN(39))) // < 2^39 < 10^12
	if rng.IntN(8) == 0 {
		micros = rng.Int64N(1_000_000_000_000)
	}
	return decimal.New(micros, -MaxPriceDecimals)
}

func randomPercent(rng *rand.Rand) decimal.Decimal {
	switch rng.IntN(10) {
	case 0:
		return decimal.New(100, 0)
	case 1:
		return decimal.New(int64(rng.IntN(100)), 0)
	}
	return decimal.New(rng.Int64N(1_000_001), -MaxPercentDecimals)
}

func randomOverrides(rng *rand.Rand, v *Version) Overrides {
	var ov Overrides
	if rng.IntN(2) == 0 {
		ov.CardDiscount = randomPercent(rng)
	}
	if rng.IntN(2) == 0 {
		ov.Discounts = append(ov.Discounts, Discount{Market: "A", Percent: randomPercent(rng)})
	}
	if rng.IntN(4) == 0 {
		ov.UnitPrices = append(ov.UnitPrices, UnitPrice{Market: "B", Category: "c", UnitPrice: randomPrice(rng)})
	}
	return ov
}

// checkAgainstReference recomputes every line with the decimal library.
func checkAgainstReference(t *testing.T, v *Version, ov Overrides, usage []Usage, res Result) {
	t.Helper()
	minor, _ := MinorUnits(v.Currency)
	if len(res.Lines) != len(usage) {
		t.Fatalf("%d lines for %d rows", len(res.Lines), len(usage))
	}
	total := decimal.Zero
	for i, u := range usage {
		ln := res.Lines[i]
		p := v.Prices[0]
		if u.Country != "DE" {
			p = v.Prices[1]
		}
		if ln.Market != p.Market {
			t.Fatalf("line %d market %s, want %s", i, ln.Market, p.Market)
		}
		tiers := p.Tiers
		mode := p.Mode
		if p.Mode == ModeFlat {
			tiers = []Tier{{UnitPrice: p.UnitPrice}}
		}
		for _, up := range ov.UnitPrices {
			if up.Market == p.Market {
				tiers, mode = []Tier{{UnitPrice: up.UnitPrice}}, ModeFlat
			}
		}
		q := decimal.NewFromInt(u.Quantity)
		sub := decimal.Zero
		if mode == ModeVolume {
			k := 0
			for k < len(tiers)-1 && u.Quantity > *tiers[k].UpTo {
				k++
			}
			sub = q.Mul(tiers[k].UnitPrice)
		} else {
			prev := int64(0)
			for _, tr := range tiers {
				if u.Quantity <= prev {
					break
				}
				end := u.Quantity
				if tr.UpTo != nil && *tr.UpTo < end {
					end = *tr.UpTo
				}
				sub = sub.Add(decimal.NewFromInt(end - prev).Mul(tr.UnitPrice))
				if tr.UpTo == nil {
					break
				}
				prev = *tr.UpTo
			}
		}
		exact := sub
		for _, d := range []decimal.Decimal{scoped(ov, p.Market), ov.CardDiscount} {
			if !d.IsZero() {
				exact = exact.Mul(hundred.Sub(d)).Shift(-2) // exact: no division
			}
		}
		want := exact.RoundBank(int32(minor))
		if v.Rounding == RoundHalfUp {
			want = exact.Round(int32(minor))
		}
		if !ln.Subtotal.Equal(sub) || !ln.Exact.Equal(exact) || !ln.Amount.Equal(want) {
			t.Errorf("line %d (q %d, %s, %s): subtotal %s exact %s amount %s, want %s %s %s",
				i, u.Quantity, mode, v.Rounding, ln.Subtotal, ln.Exact, ln.Amount, sub, exact, want)
		}
		if ln.Average {
			if avg := roundHalfEvenRat(sub, u.Quantity, MaxPriceDecimals); !ln.UnitPrice.Equal(avg) {
				t.Errorf("line %d average price %s, want %s", i, ln.UnitPrice, avg)
			}
		}
		total = total.Add(want)
	}
	if !res.Total.Equal(total) {
		t.Errorf("total %s, want the sum of rounded lines %s", res.Total, total)
	}
}

func scoped(ov Overrides, market string) decimal.Decimal {
	for _, d := range ov.Discounts {
		if d.Market == market {
			return d.Percent
		}
	}
	return decimal.Zero
}

// roundHalfEvenRat returns sub / q rounded half-even to places decimals,
// with math/big.
func roundHalfEvenRat(sub decimal.Decimal, q int64, places int) decimal.Decimal {
	num := sub.Shift(int32(places)).BigInt() // sub has at most six decimals
	den := big.NewInt(q)
	quo, rem := new(big.Int).QuoRem(num, den, new(big.Int))
	twice := new(big.Int).Lsh(rem, 1)
	if c := twice.Cmp(den); c > 0 || (c == 0 && quo.Bit(0) == 1) {
		quo.Add(quo, big.NewInt(1))
	}
	return decimal.NewFromBigInt(quo, int32(-places))
}
