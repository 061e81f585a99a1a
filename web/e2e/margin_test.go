package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/shopspring/decimal"

	"postage/internal/auth"
	"postage/pricing"
)

// marginReport is what the margin view shows of GET /api/v1/reports/margin.
type marginReport struct {
	Rows []struct {
		CustomerID string `json:"customer_id"`
		Margin     string `json:"margin"`
		Negative   bool   `json:"negative"`
	} `json:"rows"`
	Totals []struct {
		Currency     string `json:"currency"`
		Revenue      string `json:"revenue"`
		Cost         string `json:"cost"`
		Margin       string `json:"margin"`
		NegativeRows int    `json:"negative_rows"`
	} `json:"totals"`
	CostCard struct {
		CardID  string `json:"card_id"`
		Version int    `json:"version"`
	} `json:"cost_card"`
}

// signed formats an amount as the margin view does: "+1,234.50 USD" or
// "−1,234.50 USD".
func signed(amount, currency string) string {
	s := money(amount, currency)
	if d := decimal.RequireFromString(amount); d.IsPositive() {
		return "+" + s
	}
	return s
}

// costPlusCustomer adds "plusco" (DE), priced cost-plus from month
// last (20% over the cost card), with 1,000 German marketing messages in
// it: at meta-2026-01's 0.1365 they cost 136.50 and bill 163.80.
func costPlusCustomer(t *testing.T, s *stack, last pricing.Month) {
	t.Helper()
	ctx := context.Background()
	s.mustJSON(t, auth.RoleAdmin, "POST", "/api/v1/customers", map[string]string{
		"id": "plusco", "name": "Plus Co", "currency": "USD", "country": "DE", "email": "billing@plusco.example",
	}, http.StatusCreated, nil)
	// Versions activate for later months only: the clock goes back to
	// the month before last while the card is made.
	s.setAhead(last.Prev().Start().Add(time.Hour).Sub(time.Now()))
	p := s.App.Pricing
	if err := p.CreateCard(ctx, pricing.RateCard{ID: "plus", Name: "Cost plus 20%", Currency: "USD"}); err != nil {
		t.Fatal(err)
	}
	d, err := p.CreateDraft(ctx, &pricing.Version{CardID: "plus", CostPlus: &pricing.CostPlus{Markup: decimal.New(20, 0)}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Activate(ctx, "plus", d.Number, last); err != nil {
		t.Fatal(err)
	}
	s.setAhead(0)
	if err := p.AssignCard(ctx, "plusco", "plus", last); err != nil {
		t.Fatal(err)
	}
	ev := []map[string]any{{"specversion": "1.0", "type": "message.sent", "source": "e2e", "subject": "plusco", "id": "plusco-1",
		"time": last.Start().Add(9 * 24 * time.Hour).Format(time.RFC3339), "data": map[string]any{"country": "DE", "category": "marketing", "quantity": 1000}}}
	body, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	var res struct{ Accepted int }
	status, b, _ := s.call(t, s.Keys[auth.RoleIngest], "POST", "/api/v1/events", body, "")
	if err := json.Unmarshal(b, &res); err != nil || (status != http.StatusOK && status != http.StatusAccepted) || res.Accepted != 1 {
		t.Fatalf("plusco's event: %d %s", status, b)
	}
}

// testMargin: the margin view's figures, flagged rows and CSV are the
// API's; a proposed cost card version shows the API's simulation, a
// cost-plus customer's revenue following it; a customer key may not open
// it.
func testMargin(t *testing.T, s *stack, tb *tab, downloads string) {
	last := time.Now().UTC().AddDate(0, -1, 0).Format("2006-01")
	costPlusCustomer(t, s, pricing.MustParseMonth(last))
	// A draft of the cost card with every upstream price doubled.
	var v map[string]any
	s.mustJSON(t, auth.RoleSales, "GET", "/api/v1/ratecards/meta-2026-01/versions/1", nil, http.StatusOK, &v)
	for _, p := range v["prices"].([]any) {
		pm := p.(map[string]any)
		if up, ok := pm["unit_price"].(string); ok {
			pm["unit_price"] = decimal.RequireFromString(up).Mul(decimal.NewFromInt(2)).String()
		}
	}
	for _, k := range []string{"card_id", "number", "status", "effective_from"} {
		delete(v, k)
	}
	var draft struct{ Number int }
	s.mustJSON(t, auth.RoleSales, "POST", "/api/v1/ratecards/meta-2026-01/versions", v, http.StatusCreated, &draft)

	tb.signIn(s.Keys[auth.RoleSales])
	tb.open("#/margin/" + last)
	tb.do(chromedp.WaitVisible(chromedp.ID("margin-kpis")))
	var rep marginReport
	s.mustJSON(t, auth.RoleSales, "GET", "/api/v1/reports/margin?month="+last, nil, http.StatusOK, &rep)
	if len(rep.Totals) != 1 || len(rep.Rows) == 0 {
		t.Fatalf("margin report: %+v", rep)
	}
	tot := rep.Totals[0]
	for kpi, want := range map[string]string{
		"revenue": money(tot.Revenue, tot.Currency), "cost": money(tot.Cost, tot.Currency),
		"margin": signed(tot.Margin, tot.Currency), "negative": fmt.Sprint(tot.NegativeRows),
	} {
		if got := tb.text(fmt.Sprintf(`#margin-kpis [data-kpi=%q] .kpi-value`, kpi)); got != want {
			t.Errorf("%s shown %q, API %q", kpi, got, want)
		}
	}
	if got := len(tb.texts("#margin-rows tbody tr")); got != len(rep.Rows) {
		t.Errorf("rows shown %d, API %d", got, len(rep.Rows))
	}
	negatives := 0
	for _, r := range rep.Rows {
		if r.Negative {
			negatives++
		}
	}
	if got := len(tb.texts(`#margin-rows tbody tr[data-negative="true"] .badge`)); got != negatives || negatives != tot.NegativeRows {
		t.Errorf("rows flagged below cost: %d shown, %d in the API's rows, %d in its total", got, negatives, tot.NegativeRows)
	}
	// Worst margin first, as the API orders them.
	if first := tb.texts(`#margin-rows tbody tr:first-child td[data-col="margin"]`); len(first) != 1 || !strings.HasPrefix(first[0], strings.TrimSuffix(signed(rep.Rows[0].Margin, tot.Currency), " "+tot.Currency)) {
		t.Errorf("first row's margin %q, API %s", first, rep.Rows[0].Margin)
	}
	tb.shot("40-margin")

	// By line; the CSV download is the API's.
	tb.do(chromedp.SetValue(chromedp.ID("margin-group"), "line"))
	eval[bool](tb, `(document.getElementById("margin-group").dispatchEvent(new Event("change")), true)`)
	var lines marginReport
	s.mustJSON(t, auth.RoleSales, "GET", "/api/v1/reports/margin?month="+last+"&group_by=line", nil, http.StatusOK, &lines)
	deadline := time.Now().Add(10 * time.Second)
	for len(tb.texts("#margin-rows tbody tr")) != min(len(lines.Rows), 100) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if got := len(tb.texts("#margin-rows tbody tr")); got != min(len(lines.Rows), 100) {
		t.Errorf("line rows shown %d, API %d", got, len(lines.Rows))
	}
	tb.do(chromedp.Click(chromedp.ID("margin-csv")))
	_, csvBody, hdr := s.call(t, s.Keys[auth.RoleSales], "GET", "/api/v1/reports/margin?month="+last+"&group_by=line&format=csv", nil, "text/csv")
	name := strings.Trim(strings.SplitN(hdr.Get("Content-Disposition"), "filename=", 2)[1], `"`)
	if got := waitFile(t, downloads, name); string(got) != string(csvBody) {
		t.Errorf("margin CSV differs from the API's (%d vs %d bytes)", len(got), len(csvBody))
	}
	tb.shot("41-margin-lines")

	// The upstream doubles its prices: the proposed draft is picked.
	tb.do(chromedp.WaitVisible(chromedp.ID("msim-form")))
	deadline = time.Now().Add(10 * time.Second)
	for eval[string](tb, `document.getElementById("msim-version").value`) != fmt.Sprint(draft.Number) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	tb.do(chromedp.SetValue(chromedp.ID("msim-from"), last), chromedp.SetValue(chromedp.ID("msim-to"), last))
	tb.submit("#msim-form")
	tb.do(chromedp.WaitVisible(chromedp.ID("msim-kpis")))
	var sim struct {
		Totals []struct {
			Currency       string `json:"currency"`
			CurrentMargin  string `json:"current_margin"`
			ProposedMargin string `json:"proposed_margin"`
			TurnsNegative  int    `json:"turns_negative"`
		} `json:"totals"`
		Customers []struct {
			CustomerID      string `json:"customer_id"`
			Currency        string `json:"currency"`
			Revenue         string `json:"revenue"`
			ProposedRevenue string `json:"proposed_revenue"`
			Skipped         string `json:"skipped"`
		} `json:"customers"`
	}
	s.mustJSON(t, auth.RoleSales, "POST", "/api/v1/simulations/margin", map[string]any{"card_id": "meta-2026-01", "version": draft.Number, "from": last, "to": last}, http.StatusOK, &sim)
	if len(sim.Totals) != 1 {
		t.Fatalf("simulation totals: %+v", sim.Totals)
	}
	st := sim.Totals[0]
	for kpi, want := range map[string]string{
		"current": signed(st.CurrentMargin, st.Currency), "proposed": signed(st.ProposedMargin, st.Currency), "turns": fmt.Sprint(st.TurnsNegative),
	} {
		if got := tb.text(fmt.Sprintf(`#msim-kpis [data-kpi=%q] .kpi-value`, kpi)); got != want {
			t.Errorf("simulation %s shown %q, API %q", kpi, got, want)
		}
	}
	if got := len(tb.texts("#msim-customers tbody tr")); got != len(sim.Customers) {
		t.Errorf("simulation rows %d, API %d", got, len(sim.Customers))
	}
	if st.CurrentMargin == st.ProposedMargin {
		t.Errorf("doubling the upstream's prices left the margin at %s", st.CurrentMargin)
	}
	// Each customer's proposed revenue is the API's; fixed prices do not
	// move, plusco's cost-plus price doubles with the upstream's:
	// 1,000 × 0.1365 × 2 × 1.20.
	for _, c := range sim.Customers {
		if c.Skipped != "" {
			continue
		}
		cell := tb.texts(fmt.Sprintf(`#msim-customers tbody tr[data-customer=%q] td[data-col="proposed_revenue"]`, c.CustomerID))
		if len(cell) != 1 || strings.Join(strings.Fields(cell[0]), " ") != money(c.ProposedRevenue, c.Currency) {
			t.Errorf("%s's proposed revenue shown %q, API %s", c.CustomerID, cell, c.ProposedRevenue)
		}
		want := c.Revenue
		if c.CustomerID == "plusco" {
			if c.Revenue != "163.80" {
				t.Errorf("plusco's revenue %s, want 163.80", c.Revenue)
			}
			want = "327.60"
		}
		if c.ProposedRevenue != want {
			t.Errorf("%s: revenue %s → %s, want → %s", c.CustomerID, c.Revenue, c.ProposedRevenue, want)
		}
	}
	tb.shot("42-margin-simulation")

	// A customer key may not open the view (nor call its API).
	tb.do(chromedp.Click(chromedp.ID("signout")))
	tb.signIn(s.Keys[auth.RoleCustomer])
	tb.open("#/margin")
	tb.do(chromedp.WaitVisible(chromedp.ID("forbidden")))
	if status, _, _ := s.call(t, s.Keys[auth.RoleCustomer], "GET", "/api/v1/reports/margin", nil, ""); status != http.StatusForbidden {
		t.Errorf("customer key: GET /api/v1/reports/margin answered %d", status)
	}
}
