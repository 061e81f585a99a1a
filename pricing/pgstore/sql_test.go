package pgstore

import (
	"strings"
	"testing"

	"postage/pricing"
)

func TestSQLText(t *testing.T) {
	m := pricing.MustParseMonth("2026-03")
	tests := []struct {
		name  string
		q     string
		args  []any
		wants []string
		nargs int
	}{
		{"versionFor", first(versionForSQL("launch", m)), second(versionForSQL("launch", m)),
			[]string{"status = 'active'", "effective_from <= $2", "ORDER BY effective_from DESC LIMIT 1"}, 2},
		{"assignedCard", first(assignedCardSQL("c1", m)), second(assignedCardSQL("c1", m)),
			[]string{"customer_rate_cards", "a.effective_from <= $2", "ORDER BY a.effective_from DESC LIMIT 1"}, 2},
		{"activate", first(activateSQL("launch", 2, m)), second(activateSQL("launch", 2, m)),
			[]string{"status = 'active'", "AND status = 'draft'"}, 3},
		{"updateDraft", first(updateDraftSQL(&pricing.Version{CardID: "x", Number: 1}, nil)), second(updateDraftSQL(&pricing.Version{CardID: "x", Number: 1}, nil)),
			[]string{"AND status = 'draft'"}, 4},
		{"lockCard", first(lockCardSQL("x")), second(lockCardSQL("x")), []string{"FOR UPDATE"}, 1},
		{"assign", first(assignCardSQL("c", "x", m)), second(assignCardSQL("c", "x", m)), []string{"ON CONFLICT (customer_id, effective_from) DO UPDATE"}, 3},
		{"seedCard", first(insertSeedCardSQL(pricing.RateCard{ID: "x"})), second(insertSeedCardSQL(pricing.RateCard{ID: "x"})), []string{"ON CONFLICT (id) DO NOTHING"}, 5},
		{"latest", first(latestActivationSQL("x")), second(latestActivationSQL("x")), []string{"max(effective_from)", "status = 'active'"}, 1},
		{"costCardFor", first(costCardForSQL(m)), second(costCardForSQL(m)), []string{"cost_card_schedule", "effective_from <= $1", "ORDER BY s.effective_from DESC LIMIT 1"}, 1},
		{"setCostCard", first(setCostCardSQL("x", m)), second(setCostCardSQL("x", m)), []string{"ON CONFLICT (effective_from) DO UPDATE"}, 2},
		{"seedCostCard", first(seedCostCardSQL("x", m)), second(seedCostCardSQL("x", m)), []string{"WHERE NOT EXISTS (SELECT 1 FROM cost_card_schedule)"}, 2},
		{"insertRate", first(insertExchangeRateSQL(pricing.ExchangeRate{})), second(insertExchangeRateSQL(pricing.ExchangeRate{})), []string{"ON CONFLICT (from_currency, to_currency, month) DO NOTHING"}, 5},
		{"rate", first(exchangeRateSQL("USD", "EUR", m)), second(exchangeRateSQL("USD", "EUR", m)), []string{"month = $3"}, 3},
	}
	for _, tt := range tests {
		for _, w := range tt.wants {
			if !strings.Contains(tt.q, w) {
				t.Errorf("%s: %q lacks %q", tt.name, tt.q, w)
			}
		}
		if len(tt.args) != tt.nargs {
			t.Errorf("%s: %d args, want %d", tt.name, len(tt.args), tt.nargs)
		}
	}
	if _, args := versionForSQL("launch", m); args[1] != "2026-03" {
		t.Errorf("month arg %v", args[1])
	}
	// A draft has no effective month (NULL), an active version its month.
	if _, args := insertVersionSQL(&pricing.Version{CardID: "x", Number: 1, Status: pricing.StatusDraft}, nil); args[3] != nil {
		t.Errorf("draft effective_from %v", args[3])
	}
	if _, args := insertVersionSQL(&pricing.Version{CardID: "x", Number: 1, Status: pricing.StatusActive, EffectiveFrom: m}, nil); args[3] != "2026-03" {
		t.Errorf("active effective_from %v", args[3])
	}
}

func first(q string, _ []any) string { return q }
func second(_ string, a []any) []any { return a }

func TestBulkSQL(t *testing.T) {
	q, args := cardsForSQL([]string{"a", "b"}, pricing.MustParseMonth("2026-10"))
	for _, want := range []string{"customer_id = ANY($1)", "effective_from <= $2", "DISTINCT ON (customer_id)", "ORDER BY customer_id, effective_from DESC", "UNION ALL", "WHERE d.is_default"} {
		if !strings.Contains(q, want) {
			t.Errorf("cardsForSQL lacks %q:\n%s", want, q)
		}
	}
	if len(args) != 2 || args[1] != "2026-10" {
		t.Errorf("args %v", args)
	}
	if q, args := overridesForSQL(nil); strings.Contains(q, "WHERE") || args != nil {
		t.Errorf("all overrides: %s %v", q, args)
	}
	if q, _ := overridesForSQL([]string{"a"}); !strings.Contains(q, "= ANY($1)") {
		t.Errorf("some overrides: %s", q)
	}
}
