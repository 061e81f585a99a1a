package httpapi_test

import (
	"net/http"
	"testing"

	"postage/internal/auth"
)

// Least privilege, route by route: what each role may not do (the role
// table in README.md lists what it may).
func TestLeastPrivilege(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name   string
		role   auth.Role
		method string
		target string
		want   int
	}{
		// Defect: sales read any customer's month-to-date invoice.
		{"sales: upcoming invoice", auth.RoleSales, "GET", "/api/v1/customers/cust-a/invoices/upcoming", http.StatusForbidden},
		{"finance: upcoming invoice", auth.RoleFinance, "GET", "/api/v1/customers/cust-a/invoices/upcoming", http.StatusOK},
		{"customer: own upcoming invoice", auth.RoleCustomer, "GET", "/api/v1/customers/cust-a/invoices/upcoming", http.StatusOK},
		{"customer: another's upcoming invoice", auth.RoleCustomer, "GET", "/api/v1/customers/cust-b/invoices/upcoming", http.StatusNotFound},
		{"sales: invoices", auth.RoleSales, "GET", "/api/v1/customers/cust-a/invoices", http.StatusForbidden},
		{"sales: phone numbers", auth.RoleSales, "GET", "/api/v1/customers/cust-a/phone_numbers", http.StatusForbidden},
		// Rate cards and their versions (drafts included) are staff's.
		{"customer: rate cards", auth.RoleCustomer, "GET", "/api/v1/ratecards", http.StatusForbidden},
		{"customer: versions", auth.RoleCustomer, "GET", "/api/v1/ratecards/launch/versions", http.StatusForbidden},
		{"ingest: versions", auth.RoleIngest, "GET", "/api/v1/ratecards/launch/versions/1", http.StatusForbidden},
		{"ingest: prices", auth.RoleIngest, "GET", "/api/v1/prices?country=DE&category=notification", http.StatusForbidden},
		{"sales: rate cards", auth.RoleSales, "GET", "/api/v1/ratecards/launch/versions", http.StatusOK},
		// /prices: a customer key prices on its own card only.
		{"customer: own prices", auth.RoleCustomer, "GET", "/api/v1/prices?country=DE&category=notification", http.StatusOK},
		{"customer: own card named", auth.RoleCustomer, "GET", "/api/v1/prices?country=DE&category=notification&card_id=launch", http.StatusOK},
		{"customer: another card", auth.RoleCustomer, "GET", "/api/v1/prices?country=DE&category=notification&card_id=meta-2026-01", http.StatusNotFound},
		{"customer: another customer's prices", auth.RoleCustomer, "GET", "/api/v1/prices?country=DE&category=notification&customer_id=cust-b", http.StatusNotFound},
		{"sales: another card", auth.RoleSales, "GET", "/api/v1/prices?country=DE&category=notification&card_id=meta-2026-01", http.StatusOK},
	}
	for _, tt := range tests {
		w := f.do(tt.role, tt.method, tt.target, "", nil, nil)
		if w.Code != tt.want {
			t.Errorf("%s: %s %s: %d %s, want %d", tt.name, tt.method, tt.target, w.Code, w.Body.Bytes(), tt.want)
		}
	}
}
