package billing

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"postage/pricing"
)

// TestAppendLinesJSONMatchesEncodingJSON checks the hand-written encoder
// against encoding/json on random lines, including every optional field,
// strings that need escaping and decimals of every sign and scale.
func TestAppendLinesJSONMatchesEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	strs := []string{"", "GB", "Rest of World", "marketing", `quote " and \ back`, "<b>&amp;</b>", "tab\there", "émoji 💬", "\u2028", "bad \xff utf8", "ctl \x01"}
	str := func() string { return strs[rng.IntN(len(strs))] }
	dec := func() decimal.Decimal {
		switch rng.IntN(4) {
		case 0:
			return decimal.Decimal{}
		case 1:
			return decimal.New(rng.Int64N(2_000_000)-1_000_000, -rng.Int32N(8))
		case 2:
			return decimal.RequireFromString("0.000000")
		default:
			return decimal.New(rng.Int64(), int32(rng.IntN(5)))
		}
	}
	modes := []pricing.Mode{"", pricing.ModeFlat, pricing.ModeGraduated, pricing.ModeVolume}
	for n := 0; n < 2000; n++ {
		var lines []Line
		if rng.IntN(20) > 0 {
			lines = []Line{}
		}
		for range rng.IntN(5) {
			l := Line{Kind: str(), Period: pricing.Month{Year: 2000 + rng.IntN(100), Month: time.Month(1 + rng.IntN(12))}, Market: str(), Category: str(),
				Free: rng.IntN(2) == 0, Mode: modes[rng.IntN(len(modes))], Custom: rng.IntN(2) == 0, Quantity: rng.Int64() - rng.Int64(),
				UnitPrice: NewMoney(dec(), rng.IntN(4)), Average: rng.IntN(2) == 0, Discount: dec(), Amount: NewMoney(dec(), rng.IntN(4)), Description: str(),
				ListAmount: NewMoney(dec(), rng.IntN(4)), DiscountAmount: NewMoney(dec(), rng.IntN(4))}
			for range rng.IntN(3) {
				l.MessageCategories = append(l.MessageCategories, str())
			}
			if rng.IntN(5) == 0 {
				l.Period = pricing.Month{}
			}
			for range rng.IntN(3) {
				l.Countries = append(l.Countries, pricing.CountryQuantity{Country: str(), Quantity: rng.Int64N(1e9)})
			}
			for range rng.IntN(3) {
				tl := Tier{From: rng.Int64N(1e6), Quantity: rng.Int64N(1e6), UnitPrice: NewMoney(dec(), rng.IntN(4)), Amount: NewMoney(dec(), rng.IntN(4))}
				if rng.IntN(2) == 0 {
					u := rng.Int64N(1e9)
					tl.UpTo = &u
				}
				l.Tiers = append(l.Tiers, tl)
			}
			switch rng.IntN(4) { // descriptions and country lists that storage leaves out
			case 0:
				l.Description = DescribeLine(l)
			case 1:
				l.Countries = []pricing.CountryQuantity{{Country: l.Market, Quantity: l.Quantity}}
			case 2:
				l.Kind = []string{KindUsage, KindAdjustment}[rng.IntN(2)]
				l.Description = DescribeLine(l)
			}
			lines = append(lines, l)
		}
		want, err := json.Marshal(lines)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendLinesJSON(nil, lines); string(got) != string(want) {
			t.Fatalf("lines %d:\n got %s\nwant %s", n, got, want)
		}
		want, err = json.Marshal(storedLines(lines))
		if err != nil {
			t.Fatal(err)
		}
		if got := appendStoredLinesJSON(nil, lines); string(got) != string(want) {
			t.Fatalf("stored lines %d:\n got %s\nwant %s", n, got, want)
		}
	}
}

// TestMoneyString: money shows at least its currency's decimals, and an
// exact amount's further decimals without trailing zeros, as the decimal
// library's fixed form trimmed does (checked on random values too).
func TestMoneyString(t *testing.T) {
	tests := []struct {
		amount string
		places int
		want   string
	}{
		{"22175", 2, "22175.00"},
		{"0", 2, "0.00"},
		{"0.2661", 2, "0.2661"},
		{"1.20000", 2, "1.20"},
		{"1.23400", 2, "1.234"},
		{"-0.5", 0, "-0.5"},
		{"12.300", 0, "12.3"},
		{"100", 0, "100"},
		{"5", 3, "5.000"},
		{"12.30", 2, "12.30"},
	}
	for _, tt := range tests {
		m := NewMoney(decimal.RequireFromString(tt.amount), tt.places)
		if got := m.String(); got != tt.want {
			t.Errorf("Money(%s, %d) = %q, want %q", tt.amount, tt.places, got, tt.want)
		}
		if got := fmt.Sprintf("%s|%v", m, m); got != tt.want+"|"+tt.want {
			t.Errorf("fmt of Money(%s, %d) = %q, want %q", tt.amount, tt.places, got, tt.want)
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 100000 {
		d := decimal.New(rng.Int64N(2_000_000_000)-1_000_000_000, -rng.Int32N(12))
		if rng.IntN(50) == 0 {
			d = decimal.New(rng.Int64(), -rng.Int32N(30)).Mul(decimal.New(rng.Int64(), 0))
		}
		places := int32(rng.IntN(5))
		want := d.StringFixed(max(places, -d.Exponent()))
		if i := strings.IndexByte(want, '.'); i >= 0 {
			for len(want)-i-1 > int(places) && want[len(want)-1] == '0' {
				want = want[:len(want)-1]
			}
			want = strings.TrimSuffix(want, ".")
		}
		if got := (Money{Decimal: d, Places: places}).String(); got != want {
			t.Fatalf("Money(%s, %d) = %q, want %q", d, places, got, want)
		}
	}
}

func TestIsDescription(t *testing.T) {
	describe := func(market, category string, free bool) string {
		return DescribeLine(Line{Kind: KindUsage, Market: market, Category: category, Free: free})
	}
	for _, m := range []string{"", "GB", "Rest of World"} {
		for _, c := range []string{"", "marketing", "service"} {
			for _, free := range []bool{false, true} {
				if !isDescription(describe(m, c, free), m, c, free) {
					t.Errorf("isDescription(describe(%q, %q, %v)) = false", m, c, free)
				}
				if isDescription(describe(m, c, !free), m, c, free) {
					t.Errorf("isDescription(describe(%q, %q, %v)) with free=%v = true", m, c, !free, free)
				}
				if isDescription(describe(m+"x", c, free), m, c, free) || isDescription(describe(m, c+"x", free), m, c, free) ||
					isDescription(describe(m, c, free)+" ", m, c, free) || isDescription("x"+describe(m, c, free)[1:], m, c, free) {
					t.Errorf("isDescription accepts a different text for (%q, %q, %v)", m, c, free)
				}
			}
		}
	}
}

// appendLinesJSON appends lines as JSON with the encoder of stored lines,
// unchanged (every field as given), to check that encoder against
// encoding/json on its own.
func appendLinesJSON(b []byte, lines []Line) []byte {
	if lines == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i := range lines {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendLineJSON(b, &lines[i])
	}
	return append(b, ']')
}

// storedLines returns lines in the stored form appendStoredLinesJSON
// writes, for comparing it with encoding/json.
func storedLines(lines []Line) []Line {
	out := make([]Line, len(lines))
	for i, l := range lines {
		l.Description, l.Countries = storedDescription(&l), storedCountries(&l)
		out[i] = l
	}
	return out
}

// TestDecimalWritersMatchTheLibrary compares appendDecimal and
// appendDecimalFixed with decimal.Decimal's String and StringFixed on
// random values of every size, sign and exponent, including those that
// take the library's path (more than 18 digits).
func TestDecimalWritersMatchTheLibrary(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	big := decimal.RequireFromString("123456789012345678901234567890")
	values := []decimal.Decimal{decimal.Zero, decimal.New(0, -5), decimal.New(0, 3), decimal.New(-5, -1), decimal.New(5, -3),
		decimal.New(999_999_999_999_999_999, 0), decimal.New(-999_999_999_999_999_999, -18), decimal.New(1, 17), decimal.New(1, 18),
		big, big.Neg(), big.Shift(-40), decimal.RequireFromString("-0.000"), decimal.RequireFromString("7.60"), decimal.RequireFromString("100")}
	for range 200_000 {
		var c int64
		switch rng.IntN(3) {
		case 0:
			c = rng.Int64N(2000) - 1000
		case 1:
			c = rng.Int64N(2_000_000_000) - 1_000_000_000
		default:
			c = rng.Int64()
			if rng.IntN(2) == 0 {
				c = -c
			}
		}
		values = append(values, decimal.New(c, int32(rng.IntN(30)-24)))
	}
	// The library's global string options are honoured too.
	for _, set := range []func(bool){func(v bool) { decimal.TrimTrailingZeros = !v }, func(v bool) { decimal.UseScientificNotation = v }} {
		set(true)
		for _, d := range []decimal.Decimal{decimal.RequireFromString("1.50"), decimal.New(15, 2)} {
			if got, want := string(appendDecimal(nil, d)), d.String(); got != want {
				t.Errorf("with a global option changed: appendDecimal(%s) = %q, want %q", d.Coefficient(), got, want)
			}
		}
		set(false)
	}
	for _, d := range values {
		if got, want := string(appendDecimal([]byte("x"), d)), "x"+d.String(); got != want {
			t.Fatalf("appendDecimal(%s exp %d) = %q, want %q", d.Coefficient(), d.Exponent(), got, want)
		}
		for places := int32(0); places <= 4; places++ {
			if got, want := string(appendDecimalFixed([]byte("x"), d, places)), "x"+d.StringFixed(places); got != want {
				t.Fatalf("appendDecimalFixed(%s exp %d, %d) = %q, want %q", d.Coefficient(), d.Exponent(), places, got, want)
			}
		}
	}
}

// TestAppendCustomerJSONMatchesEncodingJSON: the stored customer snapshot
// is byte for byte what encoding/json writes (it feeds the content hash).
func TestAppendCustomerJSONMatchesEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	strs := []string{"", "c1", "Acme <b>&</b> Co", `quote " back \`, "émoji 💬", "\u2028", "bad \xff", "ctl \x01", "GB", "USD", "a@b.example"}
	for range 20_000 {
		pick := func() string { return strs[rng.IntN(len(strs))] }
		c := CustomerSnapshot{ID: pick(), Name: pick(), Country: pick(), Email: pick(), Currency: pick(),
			TaxID: pick(), TaxStatus: TaxStatus(pick()), TaxCountry: pick(), TaxRegion: pick()}
		if rng.IntN(2) == 0 {
			c.Address = &Address{Line1: pick(), Line2: pick(), City: pick(), PostalCode: pick(), Region: pick(), Country: pick()}
		}
		want, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendCustomerJSON(nil, &c); string(got) != string(want) {
			t.Fatalf("customer %+v:\n got %s\nwant %s", c, got, want)
		}
	}
}

// TestEncodeTaxLinesMatchesEncodingJSON: stored tax lines are byte for
// byte what encoding/json writes (they feed the content hash).
func TestEncodeTaxLinesMatchesEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	strs := []string{"", "VAT", "GST", "Reverse charge", `q"uote`, "émoji 💬", "\u2028", "DE", "CA-QC", "txr_abc"}
	decs := []string{"0", "19", "9.975", "-1.5", "100", "0.0001"}
	moneys := []string{"0", "12.3", "-0.07", "1234567.89", "0.005"}
	for range 20_000 {
		var tl []TaxLine
		for range rng.IntN(4) {
			places := rng.IntN(4)
			tl = append(tl, TaxLine{Name: strs[rng.IntN(len(strs))], Jurisdiction: strs[rng.IntN(len(strs))], Rate: decimal.RequireFromString(decs[rng.IntN(len(decs))]),
				RateID: strs[rng.IntN(len(strs))], TaxableAmount: NewMoney(decimal.RequireFromString(moneys[rng.IntN(len(moneys))]), places),
				Tax: NewMoney(decimal.RequireFromString(moneys[rng.IntN(len(moneys))]), places)})
		}
		want, err := json.Marshal(tl)
		if err != nil {
			t.Fatal(err)
		}
		if len(tl) == 0 {
			want = []byte("[]")
		}
		if got := encodeTaxLines(tl); string(got) != string(want) {
			t.Fatalf("tax lines %+v:\n got %s\nwant %s", tl, got, want)
		}
	}
}
