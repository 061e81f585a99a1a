package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"postage/internal/auth"
	"postage/metering"
	"postage/pricing"
	"postage/reports"
)

// withUsage stores three months of usage for cust-a and cust-b (and an
// unknown id) through metering's store.
func withUsage(t *testing.T, s *stack) {
	t.Helper()
	var evs []metering.Event
	for i, m := range []string{"2026-08", "2026-09", "2026-10"} {
		start := pricing.MustParseMonth(m).Start()
		for j, u := range []struct {
			c, country, cat string
			q               uint64
		}{{"cust-a", "GB", "marketing", 1000}, {"cust-a", "IN", "authentication", 40}, {"cust-b", "BR", "utility", 700}, {"ghost", "MX", "marketing", 5}} {
			e := metering.Event{CustomerID: u.c, ID: fmt.Sprintf("e%d-%d", i, j), Time: start.Add(36 * time.Hour), Country: u.country, Category: u.cat,
				Quantity: u.q * uint64(i+1), IngestedAt: time.Now().UTC().Truncate(time.Second)}
			e.PayloadHash = metering.HashPayload(e.Time, true, e.Country, e.Category, e.Quantity)
			evs = append(evs, e)
		}
	}
	if err := s.App.Events.Insert(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
}

// sameJSON compares an answer with a value marshalled the same way.
func sameJSON(t *testing.T, what string, body []byte, want any) {
	t.Helper()
	w, _ := json.Marshal(want)
	var a, b any
	if err := json.Unmarshal(body, &a); err != nil {
		t.Fatalf("%s: %v: %s", what, err, body)
	}
	_ = json.Unmarshal(w, &b)
	if x, y := fmt.Sprint(a), fmt.Sprint(b); x != y {
		t.Errorf("%s:\n got %s\nwant %s", what, body, w)
	}
}

func TestReportRoutes(t *testing.T) {
	s := newStack(t)
	withUsage(t, s)
	ctx := context.Background()
	svc := s.App.Reports()
	aug, oct := pricing.MustParseMonth("2026-08"), pricing.MustParseMonth("2026-10")

	rev, err := svc.Revenue(ctx, reports.RevenueQuery{From: aug, To: oct, GroupBy: reports.ByCustomer})
	if err != nil {
		t.Fatal(err)
	}
	if len(rev.Rows) != 2 || rev.Totals[0].Amount == "0.00" {
		t.Fatalf("revenue = %+v", rev)
	}
	resp, body := s.do(t, auth.RoleFinance, "GET", "/api/v1/reports/revenue?from=2026-08&to=2026-10&group_by=customer", "", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("revenue: %d %s", resp.StatusCode, body)
	}
	sameJSON(t, "revenue", body, rev)

	var csvWant strings.Builder
	_ = rev.Table().WriteCSV(&csvWant)
	for _, q := range []string{"&format=csv", ""} {
		req, _ := http.NewRequest("GET", s.URL+"/api/v1/reports/revenue?from=2026-08&to=2026-10&group_by=customer"+q, nil)
		req.Header.Set("Authorization", "Bearer "+s.Keys[auth.RoleSales])
		if q == "" {
			req.Header.Set("Accept", "text/csv")
		}
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		_, _ = fmt.Fprint(&b, readAll(r))
		if r.StatusCode != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/csv") || b.String() != csvWant.String() ||
			!strings.Contains(r.Header.Get("Content-Disposition"), "revenue-2026-08-2026-10.csv") {
			t.Errorf("csv %q: %d %s %q\n%s", q, r.StatusCode, r.Header.Get("Content-Type"), r.Header.Get("Content-Disposition"), b.String())
		}
	}

	for _, tc := range []struct {
		path string
		keys []string
	}{
		{"/api/v1/reports/revenue", []string{"rows", "totals", "basis"}},
		{"/api/v1/reports/usage?from=2026-08-01&to=2026-11-01&window=month&group_by=category", []string{"points", "totals", "window"}},
		{"/api/v1/reports/top-customers?from=2026-08&to=2026-10&limit=1", []string{"rows", "by"}},
		{"/api/v1/reports/unbilled?from=2026-08&to=2026-10", []string{"rows", "totals"}},
		{"/api/v1/reports/forecast?month=2026-10", []string{"rows", "totals", "method", "elapsed_fraction"}},
	} {
		resp, body := s.do(t, auth.RoleAdmin, "GET", tc.path, "", nil)
		if resp.StatusCode != 200 {
			t.Errorf("%s: %d %s", tc.path, resp.StatusCode, body)
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatal(err)
		}
		for _, k := range tc.keys {
			if _, ok := m[k]; !ok {
				t.Errorf("%s: no %q in %s", tc.path, k, body)
			}
		}
	}
	_, body = s.do(t, auth.RoleFinance, "GET", "/api/v1/reports/unbilled?from=2026-08&to=2026-10", "", nil)
	if !strings.Contains(string(body), `"customer_id":"ghost"`) || !strings.Contains(string(body), `"reason":"unknown_customer"`) {
		t.Errorf("unbilled: %s", body)
	}
	_, body = s.do(t, auth.RoleFinance, "GET", "/api/v1/reports/top-customers?from=2026-08&to=2026-10&limit=1", "", nil)
	if !strings.Contains(string(body), `"rank":1`) || strings.Count(string(body), `"rank"`) != 1 {
		t.Errorf("top: %s", body)
	}

	// Bad parameters are problems with code invalid.
	for _, p := range []string{
		"/api/v1/reports/revenue?from=2026-8",
		"/api/v1/reports/revenue?group_by=planet",
		"/api/v1/reports/revenue?from=2026-10&to=2026-08",
		"/api/v1/reports/usage?window=week",
		"/api/v1/reports/usage?from=yesterday",
		"/api/v1/reports/top-customers?limit=0",
		"/api/v1/reports/forecast?month=2099-01",
	} {
		resp, body := s.do(t, auth.RoleAdmin, "GET", p, "", nil)
		if resp.StatusCode != 400 || problemCode(t, resp, body) != "invalid" {
			t.Errorf("%s: %d %s", p, resp.StatusCode, body)
		}
	}
}

func TestSimulationRoute(t *testing.T) {
	s := newStack(t)
	withUsage(t, s)
	svc := s.App.Reports()
	req := reports.SimulationRequest{CardID: pricing.MetaCardID, From: pricing.MustParseMonth("2026-08"), To: pricing.MustParseMonth("2026-10"), Breakdown: true}
	want, err := svc.Simulate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	want.ElapsedMS = 0
	body, _ := json.Marshal(req)
	resp, got := s.do(t, auth.RoleSales, "POST", "/api/v1/simulations", "application/json", body)
	if resp.StatusCode != 200 {
		t.Fatalf("simulate: %d %s", resp.StatusCode, got)
	}
	var sim reports.Simulation
	if err := json.Unmarshal(got, &sim); err != nil {
		t.Fatal(err)
	}
	sim.ElapsedMS = 0
	sameJSON(t, "simulation", mustJSON(sim), want)
	if len(sim.Customers) != 3 || sim.Totals[0].Customers != 2 || len(sim.Customers[0].Breakdown) == 0 {
		t.Errorf("simulation = %s", got)
	}

	// An empty customer list (what a form sends) means every customer.
	resp, got = s.do(t, auth.RoleSales, "POST", "/api/v1/simulations", "application/json", []byte(`{"card_id":"meta-2026-01","from":"2026-08","to":"2026-10","customers":[]}`))
	var all reports.Simulation
	if err := json.Unmarshal(got, &all); err != nil || resp.StatusCode != 200 || fmt.Sprint(all.Totals) != fmt.Sprint(want.Totals) {
		t.Errorf("customers []: %d %s, want totals %+v", resp.StatusCode, got, want.Totals)
	}

	resp, got = s.do(t, auth.RoleAdmin, "POST", "/api/v1/simulations?format=csv", "application/json", []byte(`{"card_id":"meta-2026-01","from":"2026-08","to":"2026-10","customers":["cust-b"]}`))
	if resp.StatusCode != 200 || !strings.HasPrefix(string(got), "customer_id,name,currency,quantity,current,proposed,difference,percent,skipped\ncust-b,Customer cust-b,USD,4200,") {
		t.Errorf("csv: %d %s", resp.StatusCode, got)
	}

	for _, tc := range []struct {
		body string
		code string
	}{
		{`{"from":"2026-08","to":"2026-10"}`, "invalid"},
		{`{"card_id":"nope","from":"2026-08","to":"2026-10"}`, "invalid"},
		{`{"card_id":"meta-2026-01","from":"2026-8","to":"2026-10"}`, "invalid"},
		{`{"card_id":"meta-2026-01","from":"2026-08","to":"2026-10","colour":"red"}`, "invalid"},
		{`{"card_id":"meta-2026-01","version":7,"from":"2026-08","to":"2026-10"}`, "invalid"},
	} {
		resp, got := s.do(t, auth.RoleSales, "POST", "/api/v1/simulations", "application/json", []byte(tc.body))
		if resp.StatusCode != 400 || problemCode(t, resp, got) != tc.code {
			t.Errorf("%s: %d %s", tc.body, resp.StatusCode, got)
		}
	}
}

func TestReportRoles(t *testing.T) {
	s := newStack(t)
	for _, tc := range []struct {
		method, path string
		allowed      []auth.Role
	}{
		{"GET", "/api/v1/reports/revenue", []auth.Role{auth.RoleAdmin, auth.RoleFinance, auth.RoleSales}},
		{"GET", "/api/v1/reports/usage", []auth.Role{auth.RoleAdmin, auth.RoleFinance, auth.RoleSales}},
		{"GET", "/api/v1/reports/top-customers", []auth.Role{auth.RoleAdmin, auth.RoleFinance, auth.RoleSales}},
		{"GET", "/api/v1/reports/unbilled", []auth.Role{auth.RoleAdmin, auth.RoleFinance}},
		{"GET", "/api/v1/reports/forecast", []auth.Role{auth.RoleAdmin, auth.RoleFinance}},
		{"POST", "/api/v1/simulations", []auth.Role{auth.RoleAdmin, auth.RoleSales}},
	} {
		for _, r := range auth.Roles {
			var body []byte
			if tc.method == "POST" {
				body = []byte(`{"card_id":"meta-2026-01","from":"2026-08","to":"2026-10"}`)
			}
			resp, got := s.do(t, r, tc.method, tc.path, "application/json", body)
			ok := false
			for _, a := range tc.allowed {
				ok = ok || a == r
			}
			if ok && resp.StatusCode != 200 || !ok && resp.StatusCode != 403 {
				t.Errorf("%s %s as %s: %d %s", tc.method, tc.path, r, resp.StatusCode, got)
			}
		}
		resp, _ := s.do(t, "", tc.method, tc.path, "", nil)
		if resp.StatusCode != 401 {
			t.Errorf("%s %s without a key: %d", tc.method, tc.path, resp.StatusCode)
		}
	}
}

func readAll(r *http.Response) string {
	defer r.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := r.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String()
		}
	}
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}
