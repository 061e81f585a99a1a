package httpapi_test

import (
	"encoding/json"
	"strings"
	"testing"

	"postage/internal/auth"
)

func TestPricingReadsAndPrices(t *testing.T) {
	s := newStack(t)
	resp, body := s.do(t, auth.RoleFinance, "GET", "/api/v1/ratecards", "", nil)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"id":"launch"`) || !strings.Contains(string(body), `"id":"meta-2026-01"`) {
		t.Fatalf("list: %d %s", resp.StatusCode, body)
	}
	resp, body = s.do(t, auth.RoleSales, "GET", "/api/v1/ratecards/launch/versions", "", nil)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"effective_from":"2026-01"`) {
		t.Fatalf("versions: %d %s", resp.StatusCode, body)
	}
	resp, body = s.do(t, auth.RoleSales, "GET", "/api/v1/ratecards/nope", "", nil)
	if resp.StatusCode != 404 || problemCode(t, resp, body) != "not_found" {
		t.Fatalf("missing card: %d %s", resp.StatusCode, body)
	}

	var got struct {
		CardID string `json:"card_id"`
		Price  struct {
			Market    string `json:"market"`
			Category  string `json:"category"`
			UnitPrice string `json:"unit_price"`
			Tiers     []any  `json:"tiers"`
		} `json:"price"`
	}
	resp, body = s.do(t, auth.RoleCustomer, "GET", "/api/v1/prices?country=DE&category=notification", "", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("price: %d %s", resp.StatusCode, body)
	}
	_ = json.Unmarshal(body, &got)
	if got.CardID != "launch" || got.Price.Market != "DE" || got.Price.UnitPrice != "0.0887" || len(got.Price.Tiers) != 6 {
		t.Fatalf("price: %s", body)
	}
	// cust-a is registered in GB: authentication to India is international on meta.
	resp, body = s.do(t, auth.RoleSales, "GET", "/api/v1/prices?country=IN&category=authentication&card_id=meta-2026-01&customer_id=cust-a", "", nil)
	_ = json.Unmarshal(body, &got)
	if resp.StatusCode != 200 || got.Price.Category != "authentication_international" || got.Price.UnitPrice != "0.028" {
		t.Fatalf("meta price: %d %s", resp.StatusCode, body)
	}
	for _, q := range []string{"?country=DE", "?country=XX&category=notification", "?country=DE&category=bogus", "?country=DE&category=notification&month=2026-13"} {
		resp, body = s.do(t, auth.RoleSales, "GET", "/api/v1/prices"+q, "", nil)
		if resp.StatusCode != 400 || problemCode(t, resp, body) != "invalid" {
			t.Errorf("%s: %d %s", q, resp.StatusCode, body)
		}
	}
	// A customer key asking for another customer's price: not found.
	resp, body = s.do(t, auth.RoleCustomer, "GET", "/api/v1/prices?country=DE&category=notification&customer_id=cust-b", "", nil)
	if resp.StatusCode != 404 {
		t.Fatalf("other customer: %d %s", resp.StatusCode, body)
	}
}

type quoteAnswer struct {
	CardID  string `json:"card_id"`
	Version int    `json:"version"`
	Total   string `json:"total"`
	Lines   []struct {
		Market   string `json:"market"`
		Category string `json:"category"`
		Amount   string `json:"amount"`
		Exact    string `json:"exact"`
		Tiers    []struct {
			Quantity  int64  `json:"quantity"`
			UnitPrice string `json:"unit_price"`
		} `json:"tiers"`
	} `json:"lines"`
}

func quote(t *testing.T, s *stack, body string) (int, quoteAnswer, string) {
	t.Helper()
	resp, b := s.do(t, auth.RoleSales, "POST", "/api/v1/quotes", "application/json", []byte(body))
	var q quoteAnswer
	_ = json.Unmarshal(b, &q)
	return resp.StatusCode, q, string(b)
}

func TestQuotes(t *testing.T) {
	s := newStack(t)
	code, q, raw := quote(t, s, `{"items":[{"country":"DE","category":"notification","quantity":250001},{"country":"FR","category":"session","quantity":10}]}`)
	if code != 200 || q.CardID != "launch" || q.Total != "22175.08" || len(q.Lines) != 2 {
		t.Fatalf("%d %s", code, raw)
	}
	de := q.Lines[0]
	if de.Exact != "22175.084265" || len(de.Tiers) != 2 || de.Tiers[1].UnitPrice != "0.084265" || de.Tiers[1].Quantity != 1 {
		t.Fatalf("DE line %s", raw)
	}
	if q.Lines[1].Amount != "0.00" {
		t.Fatalf("free line %s", raw)
	}
	// A customer's card and overrides apply.
	resp, b := s.do(t, auth.RoleFinance, "POST", "/api/v1/customers/cust-a/ratecards", "application/json", []byte(`{"card_id":"meta-2026-01","effective_from":"2026-01"}`))
	if resp.StatusCode != 200 {
		t.Fatalf("assign: %d %s", resp.StatusCode, b)
	}
	resp, b = s.do(t, auth.RoleSales, "PUT", "/api/v1/customers/cust-a/overrides", "application/json", []byte(`{"card_discount":"10"}`))
	if resp.StatusCode != 200 {
		t.Fatalf("overrides: %d %s", resp.StatusCode, b)
	}
	resp, b = s.do(t, auth.RoleCustomer, "GET", "/api/v1/customers/cust-a/pricing?month=2026-11", "", nil)
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"id":"meta-2026-01"`) || !strings.Contains(string(b), `"card_discount":"10"`) {
		t.Fatalf("customer pricing: %d %s", resp.StatusCode, b)
	}
	resp, b = s.do(t, auth.RoleCustomer, "GET", "/api/v1/customers/cust-b/pricing", "", nil)
	if resp.StatusCode != 404 {
		t.Fatalf("other customer's pricing: %d %s", resp.StatusCode, b)
	}
	// 1000 authentication messages to India from a GB business: international 0.028 × 1000 × 0.9.
	code, q, raw = quote(t, s, `{"customer_id":"cust-a","month":"2026-11","items":[{"country":"IN","category":"authentication","quantity":1000}]}`)
	if code != 200 || q.CardID != "meta-2026-01" || q.Total != "25.20" || q.Lines[0].Category != "authentication_international" {
		t.Fatalf("customer quote: %d %s", code, raw)
	}
	// Bad input.
	for _, body := range []string{`{"items":[]}`, `{"items":[{"country":"XX","category":"notification","quantity":1}]}`, `{"items":[{"country":"DE","category":"nope","quantity":1}]}`, `{"items":[{"country":"DE","category":"notification","quantity":-1}]}`, `{"version":2,"items":[{"country":"DE","category":"notification","quantity":1}]}`} {
		if code, _, raw := quote(t, s, body); code != 400 {
			t.Errorf("%s: %d %s", body, code, raw)
		}
	}
}

func TestRateCardVersionsLifecycle(t *testing.T) {
	s := newStack(t)
	resp, csv := s.do(t, auth.RoleFinance, "GET", "/api/v1/ratecards/launch/versions/1/export", "", nil)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") || !strings.Contains(string(csv), "price,DE,notification,graduated,250000,0.0887") {
		t.Fatalf("export: %d %s", resp.StatusCode, csv)
	}
	// Import a changed copy as a draft.
	changed := strings.Replace(string(csv), "price,DE,notification,graduated,250000,0.0887", "price,DE,notification,graduated,250000,0.08", 1)
	resp, b := s.do(t, auth.RoleSales, "POST", "/api/v1/ratecards/launch/versions/import", "text/csv", []byte(changed))
	if resp.StatusCode != 201 || !strings.Contains(string(b), `"number":2`) || !strings.Contains(string(b), `"status":"draft"`) {
		t.Fatalf("import: %d %s", resp.StatusCode, b)
	}
	// The draft can be quoted before it is active.
	code, q, raw := quote(t, s, `{"card_id":"launch","version":2,"items":[{"country":"DE","category":"notification","quantity":100}]}`)
	if code != 200 || q.Version != 2 || q.Total != "8.00" {
		t.Fatalf("draft quote: %d %s", code, raw)
	}
	// An invalid file: rejected whole, every problem by row and column.
	bad := changed + "country,XX,DE\nprice,DE,notification,graduated,,-1\n"
	resp, b = s.do(t, auth.RoleSales, "POST", "/api/v1/ratecards/launch/versions/import", "text/csv", []byte(bad))
	if resp.StatusCode != 400 || problemCode(t, resp, b) != "invalid" {
		t.Fatalf("bad import: %d %s", resp.StatusCode, b)
	}
	var p struct {
		Errors []struct {
			Row     int    `json:"row"`
			Column  string `json:"column"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	_ = json.Unmarshal(b, &p)
	if len(p.Errors) != 2 || p.Errors[0].Column != "country" || p.Errors[1].Row == 0 {
		t.Fatalf("problems: %s", b)
	}
	// Edit the draft through JSON, then activate it.
	resp, b = s.do(t, auth.RoleSales, "GET", "/api/v1/ratecards/launch/versions/2", "", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("get: %d %s", resp.StatusCode, b)
	}
	edited := strings.Replace(string(b), `"note":""`, `"note":"edited"`, 1)
	edited = strings.Replace(edited, `"note":"seeded from launch-prices.csv"`, `"note":"edited"`, 1)
	resp, b = s.do(t, auth.RoleSales, "PUT", "/api/v1/ratecards/launch/versions/2", "application/json", []byte(edited))
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"note":"edited"`) {
		t.Fatalf("put: %d %s", resp.StatusCode, b)
	}
	resp, b = s.do(t, auth.RoleSales, "POST", "/api/v1/ratecards/launch/versions/2/activate", "application/json", []byte(`{"effective_from":"2020-01"}`))
	if resp.StatusCode != 400 {
		t.Fatalf("activate in the past: %d %s", resp.StatusCode, b)
	}
	resp, b = s.do(t, auth.RoleSales, "POST", "/api/v1/ratecards/launch/versions/2/activate", "application/json", []byte(`{"effective_from":"2099-01"}`))
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"status":"active"`) {
		t.Fatalf("activate: %d %s", resp.StatusCode, b)
	}
	resp, b = s.do(t, auth.RoleSales, "PUT", "/api/v1/ratecards/launch/versions/2", "application/json", []byte(edited))
	if resp.StatusCode != 409 {
		t.Fatalf("edit active: %d %s", resp.StatusCode, b)
	}
	// 2099 prices apply from 2099 on.
	code, q, raw = quote(t, s, `{"month":"2099-02","items":[{"country":"DE","category":"notification","quantity":100}]}`)
	if code != 200 || q.Version != 2 || q.Total != "8.00" {
		t.Fatalf("2099 quote: %d %s", code, raw)
	}
	// Copy and create cards.
	resp, b = s.do(t, auth.RoleSales, "POST", "/api/v1/ratecards/launch/versions/1/copy", "application/json", nil)
	if resp.StatusCode != 201 || !strings.Contains(string(b), `"number":3`) {
		t.Fatalf("copy: %d %s", resp.StatusCode, b)
	}
	resp, b = s.do(t, auth.RoleFinance, "POST", "/api/v1/ratecards", "application/json", []byte(`{"id":"acme","name":"Acme","currency":"JPY"}`))
	if resp.StatusCode != 201 || !strings.Contains(string(b), `"rounding":"half_even"`) {
		t.Fatalf("create card: %d %s", resp.StatusCode, b)
	}
	resp, b = s.do(t, auth.RoleCustomer, "POST", "/api/v1/ratecards", "application/json", []byte(`{"id":"x","name":"X","currency":"USD"}`))
	if resp.StatusCode != 403 {
		t.Fatalf("customer creates a card: %d %s", resp.StatusCode, b)
	}
}
