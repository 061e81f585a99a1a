package billing_test

import (
	"encoding/json"
	"regexp"
	"testing"
)

// Every money figure of an invoice's lines and tiers (amounts and unit
// prices alike) is a decimal string with at least the currency's
// minor-unit decimals: a free line's unit price is "0.00", a tier's
// "0.02", never "0" or "0.2" (issue #19).
func TestInvoiceLinesMoneyHasMinorUnits(t *testing.T) {
	f := newFixture(t, "a")
	f.events(
		ev{customer: "a", country: "GB", category: "marketing", at: "2026-10-05 10:00:00", ingested: "2026-10-05 10:00:01", qty: 12},
		ev{customer: "a", country: "GB", category: "session", at: "2026-10-05 10:00:00", ingested: "2026-10-05 10:00:01", qty: 2},
	)
	f.run("2026-10")
	b, err := json.Marshal(f.live("a", "2026-10"))
	if err != nil {
		t.Fatal(err)
	}
	var inv struct {
		Lines []struct {
			Category  string            `json:"category"`
			UnitPrice string            `json:"unit_price"`
			Amount    string            `json:"amount"`
			Tiers     []json.RawMessage `json:"tiers"`
		} `json:"lines"`
	}
	if err := json.Unmarshal(b, &inv); err != nil {
		t.Fatal(err)
	}
	money := regexp.MustCompile(`^-?[0-9]+\.[0-9]{2,6}$`)
	var tiers int
	for _, l := range inv.Lines {
		for _, v := range []string{l.UnitPrice, l.Amount} {
			if !money.MatchString(v) {
				t.Errorf("%s line: %q has not the minor unit's decimals", l.Category, v)
			}
		}
		for _, raw := range l.Tiers {
			var tier struct {
				UnitPrice string `json:"unit_price"`
				Amount    string `json:"amount"`
			}
			if err := json.Unmarshal(raw, &tier); err != nil {
				t.Fatal(err)
			}
			tiers++
			if !money.MatchString(tier.UnitPrice) || !money.MatchString(tier.Amount) {
				t.Errorf("%s tier %s", l.Category, raw)
			}
		}
	}
	if len(inv.Lines) != 2 || tiers != 2 {
		t.Fatalf("want a graduated line with two tiers and a free line: %s", b)
	}
}
