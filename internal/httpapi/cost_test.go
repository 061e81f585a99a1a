package httpapi_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"postage/internal/auth"
	"postage/pricing"
)

func TestCostCardsAndExchangeRates(t *testing.T) {
	s := newStack(t)
	resp, body := s.do(t, auth.RoleSales, "GET", "/api/v1/cost-cards", "", nil)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `{"card_id":"meta-2026-01","effective_from":"2026-01"}`) {
		t.Fatalf("cost cards: %d %s", resp.StatusCode, body)
	}
	for _, tt := range []struct {
		body string
		code int
	}{
		{`{"card_id":"launch","effective_from":"2099-01"}`, 409},       // a selling card
		{`{"card_id":"meta-2026-01","effective_from":"2026-01"}`, 400}, // a month that may be billed
		{`{"card_id":"nope","effective_from":"2099-01"}`, 404},
		{`{"card_id":"meta-2026-01","effective_from":"2099-01"}`, 200},
	} {
		if resp, body := s.do(t, auth.RoleSales, "POST", "/api/v1/cost-cards", "application/json", []byte(tt.body)); resp.StatusCode != tt.code {
			t.Errorf("%s: %d %s", tt.body, resp.StatusCode, body)
		}
	}
	rate := `{"from":"USD","to":"EUR","month":"2026-10","rate":"0.9231","source":"ECB"}`
	if resp, body := s.do(t, auth.RoleSales, "POST", "/api/v1/exchange-rates", "application/json", []byte(rate)); resp.StatusCode != 403 {
		t.Errorf("sales records a rate: %d %s", resp.StatusCode, body)
	}
	for i, want := range []int{201, 201} { // the same rate again is fine
		if resp, body := s.do(t, auth.RoleFinance, "POST", "/api/v1/exchange-rates", "application/json", []byte(rate)); resp.StatusCode != want {
			t.Errorf("record %d: %d %s", i, resp.StatusCode, body)
		}
	}
	resp, body = s.do(t, auth.RoleFinance, "POST", "/api/v1/exchange-rates", "application/json", []byte(strings.Replace(rate, "0.9231", "0.95", 1)))
	if resp.StatusCode != 409 || problemCode(t, resp, body) != "conflict" {
		t.Errorf("another rate: %d %s", resp.StatusCode, body)
	}
	resp, body = s.do(t, auth.RoleFinance, "POST", "/api/v1/exchange-rates", "application/json", []byte(`{"from":"USD","to":"USD","month":"2026-10","rate":"1"}`))
	if resp.StatusCode != 400 {
		t.Errorf("same currency: %d %s", resp.StatusCode, body)
	}
	resp, body = s.do(t, auth.RoleSales, "GET", "/api/v1/exchange-rates?from=USD", "", nil)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"rate":"0.9231"`) || !strings.Contains(string(body), `"source":"ECB"`) {
		t.Fatalf("rates: %d %s", resp.StatusCode, body)
	}
}

// A cost-plus card (a draft version, to try it) is quoted and priced over
// the cost card in effect; in another currency it needs the month's rate.
func TestCostPlusQuoteAndPrice(t *testing.T) {
	s := newStack(t)
	month := pricing.MonthOf(time.Now()).String()
	var meta struct {
		Price struct {
			UnitPrice decimal.Decimal `json:"unit_price"`
		} `json:"price"`
	}
	_, body := s.do(t, auth.RoleSales, "GET", "/api/v1/prices?country=DE&category=marketing&card_id=meta-2026-01", "", nil)
	if err := json.Unmarshal(body, &meta); err != nil || meta.Price.UnitPrice.IsZero() {
		t.Fatalf("meta price %s", body)
	}
	for _, card := range []string{`{"id":"plus","name":"Cost plus","currency":"USD"}`, `{"id":"plus-eur","name":"Cost plus EUR","currency":"EUR"}`} {
		if resp, body := s.do(t, auth.RoleSales, "POST", "/api/v1/ratecards", "application/json", []byte(card)); resp.StatusCode != 201 {
			t.Fatalf("card: %d %s", resp.StatusCode, body)
		}
	}
	rule := `{"cost_plus":{"markup_percent":"10","fee":"0.001","exceptions":[{"market":"India","markup_percent":"0"}]}}`
	for _, card := range []string{"plus", "plus-eur"} {
		if resp, body := s.do(t, auth.RoleSales, "POST", "/api/v1/ratecards/"+card+"/versions", "application/json", []byte(rule)); resp.StatusCode != 201 || !strings.Contains(string(body), `"countries":{}`) {
			t.Fatalf("cost-plus version: %d %s", resp.StatusCode, body)
		}
	}
	code, q, raw := quote(t, s, `{"card_id":"plus","version":1,"items":[{"country":"DE","category":"marketing","quantity":1000}]}`)
	want := meta.Price.UnitPrice.Mul(decimal.New(1000, 0)).Mul(decimal.RequireFromString("1.1")).Add(decimal.New(1, 0))
	if code != 200 || q.Total != want.StringFixed(2) || !strings.Contains(raw, `"mode":"cost_plus"`) || !strings.Contains(raw, `"cost":{"card_id":"meta-2026-01"`) {
		t.Fatalf("quote: %d %s, want total %s", code, raw, want.StringFixed(2))
	}
	// EUR without this month's rate: a conflict naming it; with it, priced.
	code, _, raw = quote(t, s, `{"card_id":"plus-eur","version":1,"items":[{"country":"DE","category":"marketing","quantity":1000}]}`)
	if code != 409 || !strings.Contains(raw, "no USD to EUR rate is recorded for "+month) {
		t.Fatalf("EUR without a rate: %d %s", code, raw)
	}
	if resp, body := s.do(t, auth.RoleFinance, "POST", "/api/v1/exchange-rates", "application/json", []byte(`{"from":"USD","to":"EUR","month":"`+month+`","rate":"0.5"}`)); resp.StatusCode != 201 {
		t.Fatalf("rate: %d %s", resp.StatusCode, body)
	}
	code, q, raw = quote(t, s, `{"card_id":"plus-eur","version":1,"items":[{"country":"DE","category":"marketing","quantity":1000}]}`)
	want = meta.Price.UnitPrice.Mul(decimal.New(500, 0)).Mul(decimal.RequireFromString("1.1")).Add(decimal.New(1, 0))
	if code != 200 || q.Total != want.StringFixed(2) || !strings.Contains(raw, `"fx":{"from":"USD","to":"EUR"`) {
		t.Fatalf("EUR quote: %d %s, want %s", code, raw, want.StringFixed(2))
	}
	// The CSV export carries the rule; importing it makes the same draft.
	resp, body := s.do(t, auth.RoleSales, "GET", "/api/v1/ratecards/plus/versions/1/export", "", nil)
	if resp.StatusCode != 200 || !strings.Contains(string(body), "cost_plus,,,10,0.001,0") || !strings.Contains(string(body), "cost_plus,India,,0,0,0") {
		t.Fatalf("export: %d %s", resp.StatusCode, body)
	}
	if resp, b := s.do(t, auth.RoleSales, "POST", "/api/v1/ratecards/plus/versions/import", "text/csv", body); resp.StatusCode != 201 {
		t.Fatalf("import: %d %s", resp.StatusCode, b)
	}
}

func TestPortfolioRoutes(t *testing.T) {
	s := newStack(t)
	now := pricing.MonthOf(time.Now())
	next := now.Next().String()
	// This month is not allowed; the default is next month.
	resp, body := s.do(t, auth.RoleFinance, "PUT", "/api/v1/customers/cust-a/portfolio", "application/json", []byte(`{"parent_id":"cust-b","effective_from":"`+now.String()+`"}`))
	if resp.StatusCode != 400 {
		t.Fatalf("this month: %d %s", resp.StatusCode, body)
	}
	resp, body = s.do(t, auth.RoleSales, "PUT", "/api/v1/customers/cust-a/portfolio", "application/json", []byte(`{"parent_id":"cust-b"}`))
	if resp.StatusCode != 403 {
		t.Fatalf("sales: %d %s", resp.StatusCode, body)
	}
	resp, body = s.do(t, auth.RoleFinance, "PUT", "/api/v1/customers/cust-a/portfolio", "application/json", []byte(`{"parent_id":"cust-b"}`))
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"effective_from":"`+next+`"`) {
		t.Fatalf("set: %d %s", resp.StatusCode, body)
	}
	for _, tt := range []struct {
		body string
		code int
	}{
		{`{"parent_id":"nobody"}`, 404},
		{`{"parent_id":"cust-a"}`, 400},                     // itself
		{`{"parent_id":"cust-b","consolidated":true}`, 400}, // a member does not consolidate
	} {
		if resp, body := s.do(t, auth.RoleFinance, "PUT", "/api/v1/customers/cust-a/portfolio", "application/json", []byte(tt.body)); resp.StatusCode != tt.code {
			t.Errorf("%s: %d %s", tt.body, resp.StatusCode, body)
		}
	}
	if resp, body := s.do(t, auth.RoleFinance, "PUT", "/api/v1/customers/cust-b/portfolio", "application/json", []byte(`{"parent_id":"cust-a","effective_from":"2099-01"}`)); resp.StatusCode != 409 {
		t.Errorf("two levels: %d %s", resp.StatusCode, body)
	}
	var got struct {
		ParentID string   `json:"parent_id"`
		Members  []string `json:"members"`
		History  []any    `json:"history"`
	}
	// The customer's own key: no parent this month, cust-b from next month; no siblings shown.
	resp, body = s.do(t, auth.RoleCustomer, "GET", "/api/v1/customers/cust-a/portfolio", "", nil)
	_ = json.Unmarshal(body, &got)
	if resp.StatusCode != 200 || got.ParentID != "" || len(got.History) != 1 {
		t.Fatalf("this month: %d %s", resp.StatusCode, body)
	}
	resp, body = s.do(t, auth.RoleCustomer, "GET", "/api/v1/customers/cust-a/portfolio?month="+next, "", nil)
	got.Members = nil
	_ = json.Unmarshal(body, &got)
	if resp.StatusCode != 200 || got.ParentID != "cust-b" || len(got.Members) != 0 {
		t.Fatalf("next month: %d %s", resp.StatusCode, body)
	}
	if resp, _ := s.do(t, auth.RoleCustomer, "GET", "/api/v1/customers/cust-b/portfolio", "", nil); resp.StatusCode != 404 {
		t.Errorf("another customer's portfolio: %d", resp.StatusCode)
	}
	resp, body = s.do(t, auth.RoleFinance, "GET", "/api/v1/customers/cust-b/portfolio?month="+next, "", nil)
	_ = json.Unmarshal(body, &got)
	if resp.StatusCode != 200 || len(got.Members) != 1 || got.Members[0] != "cust-a" {
		t.Fatalf("parent: %d %s", resp.StatusCode, body)
	}
	// A customer created with a parent: from this month, shown on the customer.
	resp, body = s.do(t, auth.RoleFinance, "POST", "/api/v1/customers", "application/json", []byte(`{"id":"cust-c","name":"C","currency":"USD","parent_id":"cust-b"}`))
	if resp.StatusCode != 201 || !strings.Contains(string(body), `"parent_id":"cust-b"`) {
		t.Fatalf("create with a parent: %d %s", resp.StatusCode, body)
	}
}
