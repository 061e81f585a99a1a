package pricing

import (
	"strings"
	"testing"

	"github.com/shopspring/decimal"

	"postage"
)

func TestVersionValidate(t *testing.T) {
	base := func() *Version {
		return oneMarket("USD", RoundHalfEven, Price{Mode: ModeGraduated, Tiers: []Tier{{UpTo: i64(10), UnitPrice: d("0.1")}, {UnitPrice: d("0.05")}}})
	}
	tests := []struct {
		name string
		edit func(v *Version)
		want []string
	}{
		{"ok", func(v *Version) {}, nil},
		{"currency", func(v *Version) { v.Currency = "usd" }, []string{"ISO 4217"}},
		{"rounding", func(v *Version) { v.Rounding = "up" }, []string{"rounding"}},
		{"no default market", func(v *Version) { v.DefaultMarket = "" }, []string{"default market is empty"}},
		{"long names", func(v *Version) { v.Note = strings.Repeat("n", 501); v.Countries["DE"] = strings.Repeat("m", 65) }, []string{"note longer than 500 bytes", "market longer than 64 bytes"}},
		{"country", func(v *Version) { v.Countries["EU"] = "M" }, []string{`"EU" is not an ISO 3166-1`}},
		{"category name", func(v *Version) { v.Categories[0].Name = "Bad Name" }, []string{"category name", "unknown category"}},
		{"duplicate category", func(v *Version) { v.Categories = append(v.Categories, Category{Name: "c"}) }, []string{"duplicate category"}},
		{"alias clash", func(v *Version) { v.Categories[1].Aliases = []string{"c"} }, []string{`alias "c" is already used`}},
		{"international unknown", func(v *Version) { v.Categories[0].International = "x" }, []string{"international category"}},
		{"missing price", func(v *Version) { v.Prices = nil }, []string{`missing price for market "M" category "c"`}},
		{"unordered tiers", func(v *Version) {
			v.Prices[0].Tiers = []Tier{{UpTo: i64(10), UnitPrice: d("1")}, {UpTo: i64(5), UnitPrice: d("1")}, {UnitPrice: d("1")}}
		}, []string{"tier 2: tiers overlap or are out of order"}},
		{"unbounded middle", func(v *Version) {
			v.Prices[0].Tiers = []Tier{{UnitPrice: d("1")}, {UnitPrice: d("1")}}
		}, []string{"only the last tier may be unbounded"}},
		{"no tiers", func(v *Version) { v.Prices[0].Tiers = nil }, []string{"at least one tier"}},
		{"flat with tiers", func(v *Version) { v.Prices[0].Mode = ModeFlat }, []string{"a flat price has no tiers"}},
		{"price too big", func(v *Version) { v.Prices[0].Tiers[1].UnitPrice = decimal.New(1, 6) }, []string{"too large"}},
		{"active without month", func(v *Version) { v.Status = StatusActive }, []string{"effective month"}},
		{"many at once", func(v *Version) { v.Currency = ""; v.Countries["xx"] = "" }, []string{"ISO 4217", "xx", "market is empty"}},
	}
	for _, tt := range tests {
		v := base()
		tt.edit(v)
		err := v.Validate()
		if len(tt.want) == 0 {
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: no error", tt.name)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q lacks %q", tt.name, err, w)
			}
		}
	}
}

func TestRateCardValidate(t *testing.T) {
	if err := (RateCard{ID: "launch", Name: "Launch", Currency: "USD"}).Validate(); err != nil {
		t.Fatal(err)
	}
	err := (RateCard{ID: "Bad Id", Currency: "XXX1", Rounding: "x"}).Validate()
	for _, w := range []string{"card id", "name is empty", "ISO 4217", "rounding"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("%v lacks %q", err, w)
		}
	}
	if err := (RateCard{ID: "long", Name: strings.Repeat("n", MaxNameLen+1), Currency: "USD"}).Validate(); err == nil || !strings.Contains(err.Error(), "name longer than 200 bytes") {
		t.Errorf("long name: %v", err)
	}
}

func TestMinorUnits(t *testing.T) {
	for code, want := range map[string]int{"USD": 2, "JPY": 0, "KWD": 3, "EUR": 2, "BHD": 3} {
		if got, ok := MinorUnits(code); !ok || got != want {
			t.Errorf("%s: %d %v", code, got, ok)
		}
	}
}

func TestMetaSeed(t *testing.T) {
	s, err := MetaSeed()
	if err != nil {
		t.Fatal(err)
	}
	v := s.Version
	if len(v.Countries) != 147 || v.Market("DE") != "Germany" || v.Market("XK") != "Other" || v.Market("AQ") != "Other" {
		t.Fatalf("markets: %d %s", len(v.Countries), v.Market("DE"))
	}
	if len(v.Prices) != 105 {
		t.Fatalf("%d prices", len(v.Prices))
	}
	l, _ := LaunchSeed()
	if len(l.Version.Countries) != 147 || len(l.Version.Prices) != 148 || !l.Card.Default {
		t.Fatalf("launch: %d countries %d prices", len(l.Version.Countries), len(l.Version.Prices))
	}
}

func TestValidateReportsEveryProblemInTheMessage(t *testing.T) {
	v := oneMarket("", "x", Price{Mode: ModeFlat, UnitPrice: d("-1")})
	err := v.Validate()
	msg := postage.ErrorMessage(err)
	for _, w := range []string{"ISO 4217", "rounding", "negative"} {
		if !strings.Contains(msg, w) {
			t.Errorf("message %q lacks %q", msg, w)
		}
	}
	if postage.ErrorCode(err) != postage.EINVALID {
		t.Errorf("code %q", postage.ErrorCode(err))
	}
	if ps, ok := postage.ErrorDetail(err).([]string); !ok || len(ps) != 3 {
		t.Errorf("detail %#v", postage.ErrorDetail(err))
	}
}
