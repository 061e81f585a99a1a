package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"postage/billing"
	"postage/internal/auth"
	"postage/internal/config"
	"postage/pricing"
	"postage/reconcile"
	"postage/reports"
)

// upstreamCSV is Meta's report of October for the usage withUsage
// stores: cust-a's GB marketing as postage counted it, its IN
// authentication (international: cust-a is in GB), 100 fewer of cust-b's
// BR utility messages than postage counted, and a number nobody has
// (postage's ghost, an id that is no customer, is not in it).
func upstreamCSV() string {
	day := pricing.MustParseMonth("2026-10").Start().Add(36 * time.Hour).Truncate(24 * time.Hour).Unix()
	return "start,end,phone_number_id,country,pricing_category,pricing_type,volume,cost\n" +
		fmt.Sprintf("%d,%d,111,GB,MARKETING,REGULAR,3000,%s\n", day, day+86400, "158.7") + // 0.0529 × 3000 (United Kingdom)
		fmt.Sprintf("%d,%d,111,IN,AUTHENTICATION_INTERNATIONAL,REGULAR,120,3.36\n", day, day+86400) +
		fmt.Sprintf("%d,%d,222,BR,UTILITY,REGULAR,2000,13.6\n", day, day+86400) +
		fmt.Sprintf("%d,%d,999,MX,MARKETING,REGULAR,15,0.5\n", day, day+86400)
}

func TestReconcileRoutes(t *testing.T) {
	// No grace: a run finalizes October's drafts at once, unless held.
	s := newStackWith(t, func(c *config.Config) { c.HTTP.MaxBodyBytes = 64 << 10; c.Billing.Grace.Duration = 0 }, nil)
	withUsage(t, s)
	// The clock a little ahead, so the run's usage cut-off (a minute
	// behind it) counts the events just stored.
	s.App.Now = func() time.Time { return time.Now().Add(5 * time.Minute) }
	ctx := context.Background()
	for p, c := range map[string]string{"111": "cust-a", "222": "cust-b"} {
		if _, err := s.App.Customers.AddPhoneNumber(ctx, c, p); err != nil {
			t.Fatal(err)
		}
	}
	fin := auth.RoleFinance

	// Refusals: a bad file (every problem by row and column), another
	// media type, a body over the limit, a bad month.
	resp, body := s.do(t, fin, "POST", "/api/v1/reconciliations/2026-10/reports", "text/csv", []byte("start,phone_number_id,country,pricing_category,volume,cost\n2026-10-02,111,GBR,MARKETING,x,1\n"))
	if resp.StatusCode != 400 || problemCode(t, resp, body) != "invalid" || !strings.Contains(string(body), `"column":"country"`) || !strings.Contains(string(body), `"column":"volume"`) {
		t.Errorf("bad file: %d %s", resp.StatusCode, body)
	}
	resp, body = s.do(t, fin, "POST", "/api/v1/reconciliations/2026-10/reports", "application/xml", []byte("<x/>"))
	if resp.StatusCode != 415 || problemCode(t, resp, body) != "unsupported_media_type" {
		t.Errorf("xml: %d %s", resp.StatusCode, body)
	}
	resp, body = s.do(t, fin, "POST", "/api/v1/reconciliations/2026-10/reports", "text/csv", []byte(strings.Repeat("x", 70<<10)))
	if resp.StatusCode != 413 || problemCode(t, resp, body) != "too_large" {
		t.Errorf("too large: %d %s", resp.StatusCode, body)
	}
	resp, body = s.do(t, fin, "GET", "/api/v1/reconciliations/2026-13", "", nil)
	if resp.StatusCode != 400 || problemCode(t, resp, body) != "invalid" {
		t.Errorf("bad month: %d %s", resp.StatusCode, body)
	}
	resp, body = s.do(t, fin, "GET", "/api/v1/reconciliations/2026-10", "", nil)
	if resp.StatusCode != 404 || problemCode(t, resp, body) != "not_found" {
		t.Errorf("nothing imported: %d %s", resp.StatusCode, body)
	}

	// Import: held (100 messages, 15 unknown, over 0.5%).
	resp, body = s.do(t, fin, "POST", "/api/v1/reconciliations/2026-10/reports?source=meta-oct.csv", "text/csv", []byte(upstreamCSV()))
	if resp.StatusCode != 201 {
		t.Fatalf("import: %d %s", resp.StatusCode, body)
	}
	rec := decode[reconcile.Reconciliation](t, body)
	want, err := s.App.Reconcile().Get(ctx, pricing.MustParseMonth("2026-10"))
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, "import", body, want)
	if rec.Status != reconcile.StatusHeld || rec.Report.Source != "meta-oct.csv" || rec.Report.ImportedBy != "test finance (key "+keyID(s.Keys[fin])+")" {
		t.Errorf("imported: %s %+v", rec.Status, rec.Report)
	}
	causes := map[reconcile.Cause]int64{}
	for _, c := range rec.Causes {
		causes[c.Cause] = c.Messages
	}
	if causes[reconcile.CauseNotInUpstream] != 100+15 || causes[reconcile.CauseUnknownPhoneNumber] != -15 || len(causes) != 2 || rec.Lines != 3 {
		t.Errorf("causes = %+v", rec.Causes)
	}
	_, body = s.do(t, fin, "GET", "/api/v1/reconciliations/2026-10", "", nil)
	sameJSON(t, "get", body, want)

	// Differences: pages, filters, CSV.
	_, body = s.do(t, fin, "GET", "/api/v1/reconciliations/2026-10/differences?limit=2", "", nil)
	page := decode[struct {
		Data       []reconcile.Difference `json:"data"`
		NextCursor string                 `json:"next_cursor"`
	}](t, body)
	if len(page.Data) != 2 || page.NextCursor == "" {
		t.Fatalf("page: %s", body)
	}
	_, body = s.do(t, fin, "GET", "/api/v1/reconciliations/2026-10/differences?limit=2&cursor="+page.NextCursor, "", nil)
	if p2 := decode[struct {
		Data       []reconcile.Difference `json:"data"`
		NextCursor string                 `json:"next_cursor"`
	}](t, body); len(p2.Data) != 1 || p2.NextCursor != "" || p2.Data[0].CustomerID != "unknown:999" || page.Data[1].CustomerID != "ghost" {
		t.Errorf("page 2: %s", body)
	}
	resp, body = s.do(t, fin, "GET", "/api/v1/reconciliations/2026-10/differences?format=csv&cause=not_in_upstream", "", nil)
	if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "customer_id,day,market,category,cause,postage_messages,upstream_messages,messages,postage_cost,upstream_cost,amount,detail\ncust-b,2026-10-02,Brazil,utility,not_in_upstream,100,0,100,0.68,0,0.68,") ||
		strings.Count(string(body), "\n") != 3 || !strings.Contains(string(body), "\nghost,2026-10-02,Mexico,marketing,not_in_upstream,15,0,15,0.4575,0,0.4575,") {
		t.Errorf("csv: %d %s", resp.StatusCode, body)
	}
	for _, q := range []string{"cause=weather", "limit=0", "cursor=x"} {
		resp, body := s.do(t, fin, "GET", "/api/v1/reconciliations/2026-10/differences?"+q, "", nil)
		if resp.StatusCode != 400 || problemCode(t, resp, body) != "invalid" {
			t.Errorf("%s: %d %s", q, resp.StatusCode, body)
		}
	}

	// The month's invoices wait: a run leaves them drafts, approval is refused.
	resp, body = s.do(t, fin, "POST", "/api/v1/invoice-runs", "application/json", []byte(`{"period":"2026-10"}`))
	if resp.StatusCode != 200 {
		t.Fatalf("run: %d %s", resp.StatusCode, body)
	}
	if run := decode[billing.Run](t, body); run.Created != 2 || run.Finalized != 0 {
		t.Errorf("held run: %+v", run)
	}
	_, body = s.do(t, fin, "GET", "/api/v1/invoices?period=2026-10", "", nil)
	invs := decode[struct {
		Data []billing.Invoice `json:"data"`
	}](t, body)
	if len(invs.Data) != 2 || invs.Data[0].Status != billing.StatusDraft || invs.Data[1].Status != billing.StatusDraft {
		t.Fatalf("invoices: %s", body)
	}
	resp, body = s.do(t, fin, "POST", "/api/v1/invoices/"+invs.Data[0].ID+"/approve", "", nil)
	if resp.StatusCode != 409 || problemCode(t, resp, body) != "conflict" || !strings.Contains(string(body), "finance must accept the difference") {
		t.Errorf("approve while held: %d %s", resp.StatusCode, body)
	}

	// Finance accepts: recorded with who and why; the next run finalizes.
	for _, b := range []string{`{}`, `{"reason":""}`, `{"reason":"ok","by":"me"}`} {
		resp, body := s.do(t, fin, "POST", "/api/v1/reconciliations/2026-10/accept", "application/json", []byte(b))
		if resp.StatusCode != 400 || problemCode(t, resp, body) != "invalid" {
			t.Errorf("accept %s: %d %s", b, resp.StatusCode, body)
		}
	}
	resp, body = s.do(t, fin, "POST", "/api/v1/reconciliations/2026-10/accept", "application/json", []byte(`{"reason":"cust-b's 100 were test sends Meta did not bill"}`))
	acc := decode[reconcile.Reconciliation](t, body)
	if resp.StatusCode != 200 || acc.Status != reconcile.StatusAccepted || len(acc.Acceptances) != 1 || time.Since(acc.Acceptances[0].At).Abs() > 10*time.Minute ||
		acc.Acceptances[0].By != rec.Report.ImportedBy || acc.Acceptances[0].Reason != "cust-b's 100 were test sends Meta did not bill" {
		t.Errorf("accept: %d %s", resp.StatusCode, body)
	}
	resp, body = s.do(t, fin, "POST", "/api/v1/invoice-runs", "application/json", []byte(`{"period":"2026-10"}`))
	if run := decode[billing.Run](t, body); resp.StatusCode != 200 || run.Finalized != 2 {
		t.Errorf("run after acceptance: %d %s", resp.StatusCode, body)
	}
	resp, body = s.do(t, fin, "POST", "/api/v1/reconciliations/2026-10/compare", "", nil)
	if resp.StatusCode != 200 || decode[reconcile.Reconciliation](t, body).Status != reconcile.StatusAccepted {
		t.Errorf("compare: %d %s", resp.StatusCode, body)
	}
}

func keyID(token string) string { return strings.Split(token, "_")[1] }

func TestMarginRoutes(t *testing.T) {
	s := newStack(t)
	now := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	s.App.Now = func() time.Time { return now }
	withUsage(t, s)
	ctx := context.Background()
	svc := s.App.Reports()
	want, err := svc.Margin(ctx, reports.MarginQuery{Month: pricing.MustParseMonth("2026-10"), GroupBy: reports.ByLine})
	if err != nil {
		t.Fatal(err)
	}
	resp, body := s.do(t, auth.RoleSales, "GET", "/api/v1/reports/margin?month=2026-10&group_by=line", "", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("margin: %d %s", resp.StatusCode, body)
	}
	sameJSON(t, "margin", body, want)
	var csvWant strings.Builder
	_ = want.Table().WriteCSV(&csvWant)
	resp, body = s.do(t, auth.RoleFinance, "GET", "/api/v1/reports/margin?month=2026-10&group_by=line&format=csv", "", nil)
	if resp.StatusCode != 200 || string(body) != csvWant.String() || !strings.Contains(resp.Header.Get("Content-Disposition"), "margin-2026-10-line.csv") {
		t.Errorf("csv: %d %s", resp.StatusCode, body)
	}
	for _, q := range []string{"group_by=country", "month=2026-13", "month=2027-01"} {
		resp, body := s.do(t, auth.RoleSales, "GET", "/api/v1/reports/margin?"+q, "", nil)
		if resp.StatusCode != 400 || problemCode(t, resp, body) != "invalid" {
			t.Errorf("%s: %d %s", q, resp.StatusCode, body)
		}
	}

	// A draft of the cost card with every price up 10%.
	v, err := s.App.Pricing.VersionFor(ctx, pricing.MetaCardID, pricing.MustParseMonth("2026-10"))
	if err != nil {
		t.Fatal(err)
	}
	d := v.Clone()
	d.Status, d.EffectiveFrom = pricing.StatusDraft, pricing.Month{}
	for i := range d.Prices {
		d.Prices[i].UnitPrice = d.Prices[i].UnitPrice.Mul(mustDec("1.1"))
	}
	if d, err = s.App.Pricing.CreateDraft(ctx, d); err != nil {
		t.Fatal(err)
	}
	req := reports.MarginSimulationRequest{Version: d.Number, From: pricing.MustParseMonth("2026-09"), To: pricing.MustParseMonth("2026-10"), Breakdown: true}
	sim, err := svc.SimulateMargin(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	sim.ElapsedMS = 0
	resp, body = s.do(t, auth.RoleFinance, "POST", "/api/v1/simulations/margin", "application/json", mustJSON(req))
	if resp.StatusCode != 200 {
		t.Fatalf("simulate: %d %s", resp.StatusCode, body)
	}
	got := decode[reports.MarginSimulation](t, body)
	got.ElapsedMS = 0
	sameJSON(t, "margin simulation", mustJSON(got), sim)
	if len(got.Totals) != 1 || got.Totals[0].ProposedCost == got.Totals[0].CurrentCost || len(got.Breakdown) == 0 {
		t.Errorf("simulation: %s", body)
	}
	resp, body = s.do(t, auth.RoleSales, "POST", "/api/v1/simulations/margin?format=csv", "application/json", mustJSON(req))
	if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "customer_id,name,currency,quantity,revenue,proposed_revenue,current_cost,proposed_cost,") {
		t.Errorf("simulation csv: %d %s", resp.StatusCode, body)
	}
	for _, b := range []string{`{}`, `{"version":99}`, `{"version":1,"from":"2026-12","to":"2026-12"}`, `{"version":1,"colour":"red"}`} {
		resp, body := s.do(t, auth.RoleSales, "POST", "/api/v1/simulations/margin", "application/json", []byte(b))
		if resp.StatusCode != 400 || problemCode(t, resp, body) != "invalid" {
			t.Errorf("%s: %d %s", b, resp.StatusCode, body)
		}
	}
}

func mustDec(s string) decimal.Decimal { return decimal.RequireFromString(s) }

// Least role: margins are sales' and finance's, reconciliation finance's.
func TestMarginAndReconcileRoles(t *testing.T) {
	s := newStack(t)
	for _, tc := range []struct {
		method, path, ct, body string
		allowed                []auth.Role
		okStatus               int
	}{
		{"GET", "/api/v1/reports/margin?month=2026-10", "", "", []auth.Role{auth.RoleAdmin, auth.RoleFinance, auth.RoleSales}, 200},
		{"POST", "/api/v1/simulations/margin", "application/json", `{"version":1,"from":"2026-10","to":"2026-10"}`, []auth.Role{auth.RoleAdmin, auth.RoleFinance, auth.RoleSales}, 200},
		{"POST", "/api/v1/reconciliations/2026-10/reports", "text/csv", "start,phone_number_id,country,pricing_category,volume,cost\n", []auth.Role{auth.RoleAdmin, auth.RoleFinance}, 201},
		{"GET", "/api/v1/reconciliations/2026-10", "", "", []auth.Role{auth.RoleAdmin, auth.RoleFinance}, 200},
		{"GET", "/api/v1/reconciliations/2026-10/differences", "", "", []auth.Role{auth.RoleAdmin, auth.RoleFinance}, 200},
		{"POST", "/api/v1/reconciliations/2026-10/compare", "", "", []auth.Role{auth.RoleAdmin, auth.RoleFinance}, 200},
		{"POST", "/api/v1/reconciliations/2026-10/accept", "application/json", `{"reason":"empty month"}`, []auth.Role{auth.RoleAdmin, auth.RoleFinance}, 200},
	} {
		for _, r := range auth.Roles {
			resp, got := s.do(t, r, tc.method, tc.path, tc.ct, []byte(tc.body))
			ok := false
			for _, a := range tc.allowed {
				ok = ok || a == r
			}
			if ok && resp.StatusCode != tc.okStatus || !ok && resp.StatusCode != http.StatusForbidden {
				t.Errorf("%s %s as %s: %d %s", tc.method, tc.path, r, resp.StatusCode, got)
			}
		}
		if resp, _ := s.do(t, "", tc.method, tc.path, tc.ct, []byte(tc.body)); resp.StatusCode != 401 {
			t.Errorf("%s %s without a key: %d", tc.method, tc.path, resp.StatusCode)
		}
	}
}
