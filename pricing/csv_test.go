package pricing

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"postage"
)

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCSVRoundTrip(t *testing.T) {
	ss, err := Seeds()
	if err != nil {
		t.Fatal(err)
	}
	extra := oneMarket("KWD", RoundHalfUp, Price{Mode: ModeVolume, Tiers: []Tier{{UpTo: i64(10), UnitPrice: d("0.123456")}, {UnitPrice: d("0")}}})
	extra.Note = `quoted, "note"`
	extra.Categories = append(extra.Categories, Category{Name: "auth", International: "auth_intl", Aliases: []string{"a", "b"}}, Category{Name: "auth_intl"})
	extra.Prices = append(extra.Prices, Price{Market: "M", Category: "auth", Mode: ModeFlat, UnitPrice: d("1.5")})
	unm := ss[1].Version.Clone()
	unm.Unmapped = "marketing"
	plus := &Version{CardID: "acme", Number: 3, Status: StatusDraft, Currency: "EUR", Rounding: RoundHalfEven,
		CostPlus: &CostPlus{Markup: d("12.5"), Fee: d("0.001"), Floor: d("0.004"), Exceptions: []CostPlusRule{
			{Market: "India", Markup: d("3")}, {Category: "authentication", Fee: d("0.0005")}, {Market: "Brazil", Category: "marketing", Floor: d("0.05")}}}}
	plus.Normalize()
	for _, v := range []*Version{ss[0].Version, ss[1].Version, extra, unm, plus} {
		var b1 bytes.Buffer
		if err := EncodeCSV(&b1, v); err != nil {
			t.Fatal(err)
		}
		got, err := DecodeCSV(bytes.NewReader(b1.Bytes()))
		if err != nil {
			t.Fatalf("%s: decode: %v\n%v", v.CardID, err, postage.ErrorDetail(err))
		}
		if a, b := jsonOf(t, v), jsonOf(t, got); a != b {
			t.Fatalf("%s: round trip differs:\n%s\n%s", v.CardID, a, b)
		}
		var b2 bytes.Buffer
		_ = EncodeCSV(&b2, got)
		if b1.String() != b2.String() {
			t.Fatalf("%s: export → import → export differs", v.CardID)
		}
		if v.CostPlus != nil {
			continue // rates only over a cost card (pool_test.go)
		}
		// Rating is the same.
		usage := []Usage{{Country: "DE", Category: v.Categories[0].Name, Quantity: 1_234_567}, {Country: "FR", Category: v.Categories[0].Name, Quantity: 3}}
		r1, err1 := Rate(v, Overrides{}, usage, RateOptions{})
		r2, err2 := Rate(got, Overrides{}, usage, RateOptions{})
		if err1 != nil || err2 != nil || !r1.Total.Equal(r2.Total) {
			t.Fatalf("%s: rating differs: %v %v %s %s", v.CardID, err1, err2, r1.Total, r2.Total)
		}
	}
}

func TestCSVLaunchExcerpt(t *testing.T) {
	s, _ := LaunchSeed()
	var b bytes.Buffer
	_ = EncodeCSV(&b, s.Version)
	for _, want := range []string{
		"setting,currency,USD\n",
		"category,notification,priced,,marketing utility authentication authentication_international\n",
		"category,session,free,,service\n",
		"country,DE,DE\n",
		"price,DE,notification,graduated,250000,0.0887\nprice,DE,notification,graduated,1000000,0.084265\n",
		"price,Other,notification,graduated,,0.029475\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("export lacks %q", want)
		}
	}
}

const validCSV = `# test card
setting,currency,USD
setting,default_market,Other
category,notification,priced
category,session,free,,service
country,DE,Germany
country,FR,France
price,Germany,notification,flat,,0.05
price,France,notification,graduated,100,0.04
price,France,notification,graduated,,0.03
price,Other,notification,volume,10,0.02
price,Other,notification,volume,,0.01
`

func TestCSVDecodeValid(t *testing.T) {
	v, err := DecodeCSV(strings.NewReader(validCSV))
	if err != nil {
		t.Fatalf("%v %v", err, postage.ErrorDetail(err))
	}
	if v.Status != StatusDraft || v.Rounding != RoundHalfEven || len(v.Prices) != 3 || len(v.Prices[1].Tiers) != 2 {
		t.Fatalf("%+v", v)
	}
}

func TestCSVRejections(t *testing.T) {
	tests := []struct {
		name string
		edit func(string) string
		want []RowError // Row and Column must match; Message must contain the given text
	}{
		{"bad country code", func(s string) string { return strings.Replace(s, "country,DE,", "country,XX,", 1) },
			[]RowError{{6, "country", "not an ISO 3166-1"}}},
		{"lower-case country", func(s string) string { return strings.Replace(s, "country,DE,", "country,de,", 1) },
			[]RowError{{6, "country", "not an ISO 3166-1"}}},
		{"negative price", func(s string) string { return strings.Replace(s, ",,0.05", ",,-0.05", 1) },
			[]RowError{{8, "unit_price", "negative"}}},
		{"non-numeric price", func(s string) string { return strings.Replace(s, ",,0.05", ",,five cents", 1) },
			[]RowError{{8, "unit_price", "not a decimal"}}},
		{"too many decimals", func(s string) string { return strings.Replace(s, ",,0.05", ",,0.0500001", 1) },
			[]RowError{{8, "unit_price", "more than 6 decimals"}}},
		{"unordered tiers", func(s string) string {
			return strings.Replace(s, "volume,10,0.02\n", "volume,10,0.02\nprice,Other,notification,volume,5,0.015\n", 1)
		}, []RowError{{12, "tier_up_to", "overlap or are out of order"}}},
		{"overlapping tiers", func(s string) string {
			return strings.Replace(s, "volume,10,0.02\n", "volume,10,0.02\nprice,Other,notification,volume,10,0.015\n", 1)
		}, []RowError{{12, "tier_up_to", "duplicate tier 10"}}},
		{"bounded last tier", func(s string) string { return strings.Replace(s, "volume,,0.01", "volume,20,0.01", 1) },
			[]RowError{{12, "tier_up_to", "last tier must be unbounded"}}},
		{"unknown category", func(s string) string { return strings.Replace(s, "Germany,notification", "Germany,notifcation", 1) },
			[]RowError{{0, "unit_price", `missing price for market "Germany"`}, {8, "category", "unknown category"}}},
		{"duplicate price row", func(s string) string { return s + "price,Germany,notification,flat,,0.06\n" },
			[]RowError{{13, "category", "duplicate"}}},
		{"duplicate country", func(s string) string { return s + "country,DE,France\n" },
			[]RowError{{13, "country", "duplicate country"}}},
		{"duplicate category", func(s string) string { return s + "category,session,free\n" },
			[]RowError{{13, "category", "duplicate category"}}},
		{"unknown kind", func(s string) string { return s + "prize,Germany,notification,flat,,1\n" },
			[]RowError{{13, "kind", "unknown row kind"}}},
		{"wrong column count", func(s string) string { return s + "country,IT\n" },
			[]RowError{{13, "kind", "3 columns"}}},
		{"bad currency", func(s string) string { return strings.Replace(s, "USD", "XYZ", 1) },
			[]RowError{{2, "value", "ISO 4217"}}},
		{"price of a free category", func(s string) string { return s + "price,Germany,session,flat,,0.01\n" },
			[]RowError{{13, "category", "is free"}}},
		{"unknown market", func(s string) string { return s + "price,Atlantis,notification,flat,,0.01\n" },
			[]RowError{{13, "market", "unknown market"}}},
		{"bad mode", func(s string) string {
			return strings.Replace(s, "Germany,notification,flat", "Germany,notification,tiered", 1)
		},
			[]RowError{{8, "mode", "price mode"}}},
		{"bad tier bound", func(s string) string { return strings.Replace(s, "graduated,100,", "graduated,1e3,", 1) },
			[]RowError{{9, "tier_up_to", "positive whole number"}}},
		{"unmapped to an unknown category", func(s string) string { return s + "setting,unmapped,marketing\n" },
			[]RowError{{13, "value", `unmapped: "marketing" is not a category`}}},
		{"cost-plus rows in a card with prices", func(s string) string { return s + "cost_plus,,,10,0,0\n" },
			[]RowError{{0, "value", "a cost-plus version has no markets"}}},
	}
	for _, tt := range tests {
		_, err := DecodeCSV(strings.NewReader(tt.edit(validCSV)))
		if postage.ErrorCode(err) != postage.EINVALID {
			t.Errorf("%s: got %v, want EINVALID", tt.name, err)
			continue
		}
		got, _ := postage.ErrorDetail(err).([]RowError)
		if len(got) != len(tt.want) {
			t.Errorf("%s: got %d problems %+v, want %+v", tt.name, len(got), got, tt.want)
			continue
		}
		for i, w := range tt.want {
			g := got[i]
			if g.Row != w.Row || g.Column != w.Column || !strings.Contains(g.Message, w.Message) {
				t.Errorf("%s: problem %d: got %+v, want %+v", tt.name, i, g, w)
			}
		}
	}
}

func TestCSVRejectsWholeFileWithEveryProblem(t *testing.T) {
	bad := validCSV +
		"country,XX,Germany\n" + // 13 bad code
		"price,France,notification,graduated,50,0.1\n" + // 14 non-consecutive duplicate
		"price,Germany,bogus,flat,,-1\n" // 15 unknown category, negative
	_, err := DecodeCSV(strings.NewReader(bad))
	var pe *postage.Error
	if !errors.As(err, &pe) {
		t.Fatalf("got %v", err)
	}
	got := pe.Detail.([]RowError)
	rows := map[int]int{}
	for _, e := range got {
		rows[e.Row]++
	}
	if rows[13] != 1 || rows[14] != 1 || rows[15] != 2 || len(got) != 4 {
		t.Fatalf("problems %+v", got)
	}
	if b, _ := json.Marshal(got[0]); !strings.Contains(string(b), `"row":13`) || !strings.Contains(string(b), `"column":"country"`) {
		t.Fatalf("json %s", b)
	}
}

// FuzzDecodeCSV: any input either is rejected with row problems or decodes
// to a valid version that round-trips exactly.
func FuzzDecodeCSV(f *testing.F) {
	f.Add(validCSV)
	f.Add(validCSV + "country,XX,Germany\n")
	f.Add("price,\"a\nb\",c,flat,,1\n")
	f.Add("setting,currency,JPY\nsetting,default_market,M\ncategory,c,priced\nprice,M,c,volume,1,0.5\nprice,M,c,volume,,0\n")
	f.Fuzz(func(t *testing.T, in string) {
		v, err := DecodeCSV(strings.NewReader(in))
		if err != nil {
			if postage.ErrorCode(err) != postage.EINVALID {
				t.Fatalf("error code %q: %v", postage.ErrorCode(err), err)
			}
			if rows, ok := postage.ErrorDetail(err).([]RowError); !ok || len(rows) == 0 {
				t.Fatalf("no row problems: %v", err)
			}
			return
		}
		if err := v.Validate(); err != nil {
			t.Fatalf("decoded an invalid version: %v", err)
		}
		var b1, b2 bytes.Buffer
		_ = EncodeCSV(&b1, v)
		v2, err := DecodeCSV(bytes.NewReader(b1.Bytes()))
		if err != nil {
			t.Fatalf("re-decode: %v\n%s", err, b1.String())
		}
		_ = EncodeCSV(&b2, v2)
		if b1.String() != b2.String() {
			t.Fatalf("round trip differs:\n%s\n%s", b1.String(), b2.String())
		}
	})
}
