// Package e2e drives the dashboard in headless Chromium against a real
// postage (PostgreSQL and ClickHouse from internal/testenv) filled through
// the public API, and checks that what the page shows is what the API says.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"postage/internal/app"
	"postage/internal/apptest"
	"postage/internal/auth"
	"postage/internal/config"
	"postage/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// stack is a wired postage on fresh databases, served by httptest.
type stack struct {
	App  *app.App
	URL  string
	Keys map[auth.Role]string // one key per role; the customer key belongs to "acme"
	// OtherCustomerKey belongs to "globex".
	OtherCustomerKey string
	Now              time.Time
	// ahead is how far the app's clock runs ahead of the wall clock
	// (setAhead); read by the app's jobs, so atomic.
	ahead *atomic.Int64
}

// setAhead moves the app's clock d ahead of the wall clock, race-free
// with the jobs (webhook dispatcher, alerts) that read it.
func (s *stack) setAhead(d time.Duration) { s.ahead.Store(int64(d)) }

// customers seeded by every test, with their home countries.
var seedCustomers = []struct{ ID, Name, Country string }{
	{"acme", "Acme Retail GmbH", "DE"},
	{"globex", "Globex Travel Ltd", "GB"},
	{"initech", "Initech Bank", "IN"},
	{"umbrella", "Umbrella Health", "BR"},
	{"hooli", "Hooli Labs", "US"},  // no traffic: the empty states
	{"tiny", "Tiny Florist", "DE"}, // a few messages a day: small chart scales
}

func newStack(t *testing.T) *stack {
	t.Helper()
	a := apptest.Open(t, func(cfg *config.Config) {
		cfg.Ingest.Horizon = config.Duration{Duration: 400 * 24 * time.Hour}
		cfg.Billing.Scheduler = false
		// Drafts stay drafts until approved, so the finance view has some.
		cfg.Billing.Grace = config.Duration{Duration: 5 * 365 * 24 * time.Hour}
	})
	ctx := context.Background()
	// Invoice runs count events ingested before their cut-off, one minute
	// behind the clock in production. Here the runs follow the seeding at
	// once, so the billing clock runs two seconds ahead with no lag.
	a.Billing.CutoffLag = 0
	a.Billing.Now = func() time.Time { return time.Now().UTC().Add(2 * time.Second) }
	ahead := new(atomic.Int64)
	a.Now = func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }
	stop, err := a.StartJobs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	s := &stack{App: a, Keys: apptest.Keys(t, a, ""), Now: time.Now().UTC(), ahead: ahead}
	s.URL = apptest.Serve(t, a)

	for _, c := range seedCustomers {
		s.mustJSON(t, auth.RoleAdmin, "POST", "/api/v1/customers", map[string]string{
			"id": c.ID, "name": c.Name, "currency": "USD", "country": c.Country, "email": "billing@" + c.ID + ".example",
		}, http.StatusCreated, nil)
	}
	_, tok, err := a.Keys.Create(ctx, auth.NewKey{Name: "Acme dashboard", Role: auth.RoleCustomer, CustomerID: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	s.Keys[auth.RoleCustomer] = tok
	if _, s.OtherCustomerKey, err = a.Keys.Create(ctx, auth.NewKey{Name: "Globex dashboard", Role: auth.RoleCustomer, CustomerID: "globex"}); err != nil {
		t.Fatal(err)
	}
	// acme has negotiated discounts (5% on the card, 10% more in France):
	// its bills show list price, discount and net.
	s.mustJSON(t, auth.RoleAdmin, "PUT", "/api/v1/customers/acme/overrides",
		map[string]any{"card_discount": "5", "discounts": []map[string]string{{"market": "FR", "percent": "10"}}}, http.StatusOK, nil)
	s.seedEvents(t)
	s.seedInvoices(t)
	// The same binary serves the dashboard, without a key.
	for _, p := range []string{"/", "/js/main.js", "/vendor/chart.umd.min.js"} {
		if status, _, _ := s.call(t, "", "GET", p, nil, ""); status != http.StatusOK {
			t.Fatalf("GET %s: %d, want the dashboard asset", p, status)
		}
	}
	return s
}

// seedInvoices runs the three past months through POST /api/v1/invoice-runs
// and approves the two older months' drafts, leaving last month in draft.
func (s *stack) seedInvoices(t *testing.T) {
	t.Helper()
	month := time.Date(s.Now.Year(), s.Now.Month(), 1, 0, 0, 0, 0, time.UTC)
	for m := 3; m >= 1; m-- {
		period := month.AddDate(0, -m, 0).Format("2006-01")
		var run map[string]any
		s.mustJSON(t, auth.RoleFinance, "POST", "/api/v1/invoice-runs", map[string]string{"period": period}, http.StatusOK, &run)
		if m == 1 {
			continue
		}
		var list struct {
			Data []struct{ ID string } `json:"data"`
		}
		s.mustJSON(t, auth.RoleFinance, "GET", "/api/v1/invoices?status=draft&period="+period, nil, http.StatusOK, &list)
		if len(list.Data) == 0 {
			t.Fatalf("the run of %s made no drafts: %v", period, run)
		}
		for _, inv := range list.Data {
			s.mustJSON(t, auth.RoleFinance, "POST", "/api/v1/invoices/"+inv.ID+"/approve", map[string]string{}, http.StatusOK, nil)
		}
	}
}

// call sends a request with the role's key and returns status and body.
func (s *stack) call(t *testing.T, key, method, path string, body any, accept string) (int, []byte, http.Header) {
	t.Helper()
	var rd io.Reader
	ct := ""
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
		ct = "application/cloudevents-batch+json"
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(j)
		ct = "application/json"
	}
	req, err := http.NewRequest(method, s.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, b, res.Header
}

// mustJSON calls the API as role, requires status want and decodes into out.
func (s *stack) mustJSON(t *testing.T, role auth.Role, method, path string, body any, want int, out any) {
	t.Helper()
	s.mustKey(t, s.Keys[role], method, path, body, want, out)
}

func (s *stack) mustKey(t *testing.T, key, method, path string, body any, want int, out any) {
	t.Helper()
	status, b, _ := s.call(t, key, method, path, body, "")
	if status != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, path, status, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decode: %v: %s", method, path, err, b)
		}
	}
}

// mix is one customer's traffic pattern: (country, category, base volume).
var mixes = map[string][]struct {
	Country, Category string
	Base              int
}{
	"acme":     {{"DE", "marketing", 900}, {"DE", "utility", 1400}, {"FR", "marketing", 300}, {"AT", "authentication", 500}, {"US", "utility", 200}, {"DE", "service", 700}},
	"globex":   {{"GB", "utility", 1200}, {"ES", "marketing", 600}, {"US", "authentication", 400}, {"GB", "service", 300}},
	"initech":  {{"IN", "authentication", 5000}, {"IN", "utility", 2500}, {"AE", "authentication", 300}},
	"umbrella": {{"BR", "utility", 800}, {"BR", "marketing", 1100}, {"MX", "marketing", 250}},
	"tiny":     {{"DE", "marketing", 1}},
}

// seedEvents sends three months and twenty days of traffic through
// POST /api/v1/events, in batches, as the ingest role.
func (s *stack) seedEvents(t *testing.T) {
	t.Helper()
	type data struct {
		Country  string `json:"country"`
		Category string `json:"category"`
		Quantity int    `json:"quantity"`
	}
	type event struct {
		SpecVersion string `json:"specversion"`
		Type        string `json:"type"`
		Source      string `json:"source"`
		ID          string `json:"id"`
		Subject     string `json:"subject"`
		Time        string `json:"time"`
		Data        data   `json:"data"`
	}
	var times []time.Time
	today := time.Date(s.Now.Year(), s.Now.Month(), s.Now.Day(), 0, 0, 0, 0, time.UTC)
	for d := 1; d <= 20; d++ {
		times = append(times, today.AddDate(0, 0, -d).Add(12*time.Hour))
	}
	times = append(times, s.Now.Add(-2*time.Minute))
	month := time.Date(s.Now.Year(), s.Now.Month(), 1, 0, 0, 0, 0, time.UTC)
	for m := 1; m <= 3; m++ {
		for _, day := range []int{3, 10, 17, 24} {
			ts := month.AddDate(0, -m, day-1).Add(9 * time.Hour)
			if ts.Before(today.AddDate(0, 0, -20)) {
				times = append(times, ts)
			}
		}
	}
	var batch []event
	for ci, c := range seedCustomers {
		for ti, tm := range times {
			for mi, m := range mixes[c.ID] {
				q := m.Base + (ti*37+mi*11+ci*5)%(m.Base/2+1)
				batch = append(batch, event{
					SpecVersion: "1.0", Type: "message.sent", Source: "e2e", Subject: c.ID,
					ID:   fmt.Sprintf("%s-%d-%d", c.ID, ti, mi),
					Time: tm.Format(time.RFC3339), Data: data{Country: m.Country, Category: m.Category, Quantity: q},
				})
			}
		}
	}
	// Usage of an id that is no customer: shows up as unbilled.
	batch = append(batch, event{SpecVersion: "1.0", Type: "message.sent", Source: "e2e", Subject: "ghost-7", ID: "ghost-1",
		Time: times[0].Format(time.RFC3339), Data: data{Country: "DE", Category: "marketing", Quantity: 1200}})
	body, err := json.Marshal(batch)
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Accepted, Rejected int
		Results            []map[string]any
	}
	status, b, _ := s.call(t, s.Keys[auth.RoleIngest], "POST", "/api/v1/events", body, "")
	if status != http.StatusOK && status != http.StatusAccepted && status != http.StatusCreated {
		t.Fatalf("POST /api/v1/events: status %d: %.400s", status, b)
	}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatalf("events answer: %v: %.300s", err, b)
	}
	if res.Rejected != 0 || res.Accepted != len(batch) {
		t.Fatalf("events: accepted %d of %d, rejected %d: %.600s", res.Accepted, len(batch), res.Rejected, b)
	}
}
