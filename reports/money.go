package reports

import (
	"math/big"
	"math/bits"
	"sort"

	"github.com/shopspring/decimal"

	"postage/pricing"
)

// minorOf returns a rounded amount as an integer of minor units (cents).
func minorOf(d decimal.Decimal, minor int) int64 {
	return d.Shift(int32(minor)).IntPart()
}

// fromMinor formats an integer of minor units as a decimal string with
// exactly `minor` decimals ("12.30").
func fromMinor(v int64, minor int) string {
	return decimal.New(v, int32(-minor)).StringFixed(int32(minor))
}

// minorUnits returns the minor units of a currency (2 when unknown).
func minorUnits(currency string) int {
	if n, ok := pricing.MinorUnits(currency); ok {
		return n
	}
	return 2
}

// percent returns num/den × 100 rounded half-even to two decimals, or nil
// when den is zero.
func percent(num, den int64) *decimal.Decimal {
	if den == 0 {
		return nil
	}
	// Exactly: hundredths of a percent = num × 10^4 / den, rounded half-even.
	n := new(big.Int).Mul(big.NewInt(num), big.NewInt(10_000))
	d := big.NewInt(den)
	if d.Sign() < 0 {
		n.Neg(n)
		d.Neg(d)
	}
	q, r := new(big.Int).QuoRem(n, d, new(big.Int))
	twice := new(big.Int).Abs(r)
	twice.Lsh(twice, 1)
	if c := twice.Cmp(d); c > 0 || c == 0 && q.Bit(0) == 1 {
		if r.Sign() < 0 {
			q.Sub(q, big.NewInt(1))
		} else {
			q.Add(q, big.NewInt(1))
		}
	}
	p := decimal.NewFromBigInt(q, -2)
	return &p
}

// percentString is percent as a fixed two-decimal string ("" when nil).
func percentString(p *decimal.Decimal) string {
	if p == nil {
		return ""
	}
	return p.StringFixed(2)
}

// allocate splits total (≥ 0) over weights (≥ 0) in proportion, in whole
// units, with the largest-remainder method: the parts add up to total
// exactly, and ties go to the earlier weight. When every weight is zero
// the whole total goes to the first part.
func allocate(total int64, weights []int64) []int64 {
	parts := make([]int64, len(weights))
	if len(weights) == 0 {
		return parts
	}
	var sum uint64
	for _, w := range weights {
		sum += uint64(w)
	}
	if sum == 0 || total <= 0 {
		parts[0] = total
		return parts
	}
	if len(weights) == 1 {
		parts[0] = total
		return parts
	}
	type rem struct {
		i int
		r uint64
	}
	rems := make([]rem, len(weights))
	var given int64
	for i, w := range weights {
		hi, lo := bits.Mul64(uint64(total), uint64(w))
		q, r := bits.Div64(hi, lo, sum)
		parts[i] = int64(q)
		given += int64(q)
		rems[i] = rem{i, r}
	}
	left := total - given
	if left > 0 {
		sort.SliceStable(rems, func(a, b int) bool { return rems[a].r > rems[b].r })
		for k := 0; k < int(left); k++ {
			parts[rems[k].i]++
		}
	}
	return parts
}
