package httpapi_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"postage/internal/auth"
	"postage/internal/httpapi"
)

// Strings with a NUL or invalid UTF-8 never reach a store: each answers 400
// invalid naming its field (they answered 500 when PostgreSQL refused them:
// invalid byte sequence for encoding "UTF8", SQLSTATE 22021).
func TestBadStringsNeverReachStores(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		role         auth.Role
		method, path string
		body         string
		in, field    string
	}{
		{auth.RoleFinance, "GET", "/api/v1/customers/%00", "", "path", "id"},
		{auth.RoleFinance, "GET", "/api/v1/customers/%FF", "", "path", "id"},
		{auth.RoleFinance, "GET", "/api/v1/customers/a%00b", "", "path", "id"},
		{auth.RoleFinance, "GET", "/api/v1/customers/a%00b/usage", "", "path", "id"},
		{auth.RoleFinance, "GET", "/api/v1/customers/%FF/invoices", "", "path", "id"},
		{auth.RoleFinance, "GET", "/api/v1/customers/%00/invoices/upcoming", "", "path", "id"},
		{auth.RoleFinance, "GET", "/api/v1/customers/%00/pricing", "", "path", "id"},
		{auth.RoleFinance, "GET", "/api/v1/customers/%FF/phone_numbers", "", "path", "id"},
		{auth.RoleFinance, "GET", "/api/v1/invoices/%00", "", "path", "id"},
		{auth.RoleCustomer, "GET", "/api/v1/invoices/%00", "", "path", "id"},
		{auth.RoleFinance, "GET", "/api/v1/invoices?customer=a%00b", "", "query", "customer"},
		{auth.RoleSales, "GET", "/api/v1/ratecards/%FF", "", "path", "card_id"},
		{auth.RoleSales, "GET", "/api/v1/ratecards/a%00b/versions", "", "path", "card_id"},
		{auth.RoleSales, "GET", "/api/v1/prices?country=DE&category=notification&card_id=%00", "", "query", "card_id"},
		{auth.RoleFinance, "POST", "/api/v1/customers", `{"id":"nul-1","name":"Acme\u0000Ltd","currency":"USD"}`, "body", "name"},
		{auth.RoleFinance, "POST", "/api/v1/customers", `{"id":"nul-2","name":"Acme","currency":"USD","email":"a\u0000@b.c"}`, "body", "email"},
		{auth.RoleFinance, "PATCH", "/api/v1/customers/cust-a", `{"name":"\u0000"}`, "body", "name"},
		{auth.RoleAdmin, "POST", "/api/v1/apikeys", `{"name":"k\u0000","role":"sales"}`, "body", "name"},
		{auth.RoleSales, "POST", "/api/v1/quotes", `{"customer_id":"cust-a\u0000","items":[{"country":"DE","category":"notification","quantity":1}]}`, "body", "customer_id"},
		{auth.RoleAdmin, "DELETE", "/api/v1/apikeys/%00", "", "path", "key_id"},
		{auth.RoleFinance, "POST", "/api/v1/invoices/%00/approve", "", "path", "id"},
		{auth.RoleFinance, "POST", "/api/v1/invoices/" + "x" + "/void", `{"reason":"\ud800"}`, "body", "reason"},
	}
	for _, tt := range tests {
		ctype := ""
		if tt.body != "" {
			ctype = "application/json"
		}
		w := f.do(tt.role, tt.method, tt.path, ctype, []byte(tt.body), nil)
		var p struct {
			httpapi.Problem
			Errors []httpapi.FieldProblem `json:"errors"`
		}
		_ = json.Unmarshal(w.Body.Bytes(), &p)
		if w.Code != http.StatusBadRequest || p.Code != "invalid" || len(p.Errors) == 0 || p.Errors[0].In != tt.in || p.Errors[0].Field != tt.field {
			t.Errorf("%s %s %s as %s: %d %s, want 400 invalid naming %s %s", tt.method, tt.path, tt.body, tt.role, w.Code, w.Body.Bytes(), tt.in, tt.field)
		}
	}
}
