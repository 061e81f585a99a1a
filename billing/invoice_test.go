package billing

import (
	"context"
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"postage"
	"postage/pricing"
)

func TestNumberFormat(t *testing.T) {
	tests := []struct {
		pattern string
		year    int
		seq     int64
		want    string
	}{
		{"PST-{year}-{seq:6}", 2026, 1, "PST-2026-000001"},
		{"PST-{year}-{seq:6}", 2027, 1234567, "PST-2027-1234567"},
		{"{year}/{seq}", 2026, 42, "2026/42"},
		{"INV{seq:4}-{year}", 2026, 7, "INV0007-2026"},
	}
	for _, tt := range tests {
		f, err := ParseNumberFormat(tt.pattern)
		if err != nil {
			t.Fatalf("%s: %v", tt.pattern, err)
		}
		if got := f.Format(tt.year, tt.seq); got != tt.want {
			t.Errorf("%s(%d, %d) = %s, want %s", tt.pattern, tt.year, tt.seq, got, tt.want)
		}
	}
	for _, bad := range []string{"PST-{seq:6}", "PST-{year}", "{year}-{seq}-{seq}", "{year}-{seq}-{month}", "{year}{seq:0}"} {
		if _, err := ParseNumberFormat(bad); postage.ErrorCode(err) != postage.EINVALID {
			t.Errorf("%q: %v, want invalid", bad, err)
		}
	}
}

func TestInvoiceIDIsDeterministic(t *testing.T) {
	m := pricing.MustParseMonth("2026-10")
	a, b := InvoiceID("acme", m, 1), InvoiceID("acme", m, 1)
	if a != b || len(a) != 29 || !strings.HasPrefix(a, "in_") {
		t.Fatalf("ids %q %q", a, b)
	}
	for _, other := range []string{InvoiceID("acme", m, 2), InvoiceID("acme", m.Next(), 1), InvoiceID("acmf", m, 1)} {
		if other == a {
			t.Fatalf("id collision %s", a)
		}
	}
}

func TestMoneyJSON(t *testing.T) {
	for _, tt := range []struct {
		d      string
		places int
		want   string
	}{{"12.3", 2, `"12.30"`}, {"0", 2, `"0.00"`}, {"-0.03", 2, `"-0.03"`}, {"1230", 0, `"1230"`}, {"1.5", 3, `"1.500"`}} {
		b, err := json.Marshal(NewMoney(decimal.RequireFromString(tt.d), tt.places))
		if err != nil || string(b) != tt.want {
			t.Errorf("%s/%d = %s, want %s", tt.d, tt.places, b, tt.want)
		}
		var m Money
		if err := json.Unmarshal(b, &m); err != nil || m.String() != strings.Trim(tt.want, `"`) {
			t.Errorf("round trip of %s = %s, %v", b, m, err)
		}
	}
}

func TestAdjustmentLines(t *testing.T) {
	sep := pricing.MustParseMonth("2026-09")
	l := func(kind, market, cat string, q int64, amount string) Line {
		return Line{Kind: kind, Period: sep, Market: market, Category: cat, Quantity: q, Amount: NewMoney(decimal.RequireFromString(amount), 2)}
	}
	rerated := []Line{l(KindUsage, "GB", "marketing", 13, "0.24"), l(KindUsage, "DE", "marketing", 4, "0.05"), l(KindUsage, "US", "marketing", 2, "0.02")}
	billed := []Line{l(KindUsage, "GB", "marketing", 8, "0.16"), l(KindUsage, "DE", "marketing", 4, "0.05"), l(KindAdjustment, "GB", "marketing", 3, "0.06"),
		{Kind: KindUsage, Period: sep.Next(), Market: "GB", Category: "marketing", Quantity: 100, Amount: NewMoney(decimal.New(1, 0), 2)}}
	got := adjustmentLines(rerated, billed, sep, 2)
	if len(got) != 2 {
		t.Fatalf("got %+v", got)
	}
	if g := got[0]; g.Market != "GB" || g.Quantity != 2 || g.Amount.String() != "0.02" || g.Kind != KindAdjustment || g.Period != sep {
		t.Errorf("GB adjustment %+v", g)
	}
	if g := got[1]; g.Market != "US" || g.Quantity != 2 || g.Amount.String() != "0.02" {
		t.Errorf("US adjustment %+v", g)
	}
	if !strings.Contains(got[0].Description, "2026-09") {
		t.Errorf("description %q does not name the month", got[0].Description)
	}
}

func TestFromMeterEmptyCustomerListIsNobody(t *testing.T) {
	rows, err := FromMeter(nil).MonthlyUsage(context.Background(), pricing.MustParseMonth("2026-10"), time.Now(), []string{})
	if err != nil || rows != nil {
		t.Fatalf("got %v, %v", rows, err)
	}
}

func TestCheckPeriod(t *testing.T) {
	now := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	if err := CheckPeriod(pricing.MustParseMonth("2026-10"), now); err != nil {
		t.Errorf("last month: %v", err)
	}
	for _, p := range []pricing.Month{{Year: 2026, Month: 11}, {Year: 2026, Month: 12}, {}, {Year: 2026, Month: 0}} {
		if err := CheckPeriod(p, now); postage.ErrorCode(err) != postage.EINVALID {
			t.Errorf("%v: %v", p, err)
		}
	}
	if _, err := ParseSchedule("0 2 1 * *"); err != nil {
		t.Error(err)
	}
	if _, err := ParseSchedule("every day"); err == nil {
		t.Error("bad schedule accepted")
	}
}

func TestStoredLinesRoundTrip(t *testing.T) {
	oct := pricing.MustParseMonth("2026-10")
	lines := []Line{
		{Kind: KindUsage, Period: oct, Market: "GB", Countries: []pricing.CountryQuantity{{Country: "GB", Quantity: 5}}, Category: "marketing", Quantity: 5},
		{Kind: KindUsage, Period: oct, Market: "EU", Countries: []pricing.CountryQuantity{{Country: "DE", Quantity: 2}, {Country: "FR", Quantity: 1}}, Category: "marketing", Quantity: 3},
		{Kind: KindUsage, Period: oct, Market: "Other", Countries: []pricing.CountryQuantity{{Country: "US", Quantity: 1}}, Category: "session", Free: true, Quantity: 1},
		{Kind: KindAdjustment, Period: oct.Prev(), Market: "GB", Category: "marketing", Quantity: 2},
		{Kind: KindAdjustment, Period: oct, Market: "GB", Category: "marketing", Quantity: -2, Description: "Already billed as adjustments on later invoices"},
	}
	for i := range lines {
		lines[i].Amount = NewMoney(decimal.Zero, 2)
		if lines[i].Description == "" {
			lines[i].Description = DescribeLine(lines[i])
		}
	}
	stored := storedLines(lines)
	if stored[0].Countries != nil || stored[0].Description != "" || stored[1].Countries == nil || stored[2].Countries == nil || stored[4].Description == "" {
		t.Fatalf("stored %+v", stored)
	}
	b, _ := json.Marshal(stored)
	var back []Line
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	expandLines(back)
	want, _ := json.Marshal(lines)
	got, _ := json.Marshal(back)
	if string(got) != string(want) {
		t.Fatalf("round trip\n got %s\nwant %s", got, want)
	}
}

// Ids already stored must come out the same: the id is SHA-256 of
// "customer\x00period\x00seq", its first 26 base32 characters, lower case.
func TestInvoiceIDFormula(t *testing.T) {
	for _, tt := range []struct {
		customer string
		seq      int
	}{{"acme", 1}, {"c000042", 2}, {strings.Repeat("long-customer-id.", 10), 13}, {"", 1}} {
		m := pricing.MustParseMonth("2026-10")
		h := sha256.Sum256([]byte(tt.customer + "\x00" + m.String() + "\x00" + strconv.Itoa(tt.seq)))
		want := "in_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(h[:])[:26])
		if got := InvoiceID(tt.customer, m, tt.seq); got != want {
			t.Errorf("InvoiceID(%q, %s, %d) = %s, want %s", tt.customer, m, tt.seq, got, want)
		}
	}
}
