package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"postage/billing"
	"postage/internal/app"
	"postage/internal/apptest"
	"postage/internal/auth"
	"postage/internal/config"
	"postage/metering"
	"postage/pricing"
)

// fixture is a wired postage holding data every route can act on (two
// customers, a key per role, a mapped phone number, a month of usage, its
// invoices, one of them finalized) and a valid request for every route, so
// a walk of the route table reaches each handler's stores.
type fixture struct {
	App     *app.App
	Handler http.Handler
	Keys    map[auth.Role]string
	Now     time.Time

	InvoiceID string // a draft of cust-a
	FinalID   string // a finalized invoice of cust-b
	VictimKey string // a key id that DELETE /apikeys/{key_id} may revoke
	// An every-customer webhook endpoint, the delivery of FinalID's
	// invoice.finalized to it, and an alert of cust-a.
	EndpointID, DeliveryID, AlertID string
	// FreshEvents makes every sample of the ingest routes carry ids new
	// to the meter (a re-sent event is answered from the key index
	// without ClickHouse; a new one needs ClickHouse to be stored).
	FreshEvents bool
	eventSeq    atomic.Int64
	TaxRateID   string // a tax rate (of FR)
	CreditID    string // a credit note of FinalID
	version     []byte // a valid rate-card version body (JSON)
	csv         []byte // the same as CSV
}

const (
	fixSecret      = "walk-app-secret"
	fixVerifyToken = "walk-verify-token"
	fixPhone       = "106540352242922"
)

// fixtureConfig is what every fixture's app runs with.
func fixtureConfig(cfg *config.Config) {
	cfg.HTTP.MaxBodyBytes = 256 << 10
	cfg.Ingest.FlushInterval = config.Duration{Duration: time.Millisecond}
	cfg.WhatsApp.AppSecret = fixSecret
	cfg.WhatsApp.VerifyToken = fixVerifyToken
	cfg.Billing.Scheduler = false
	cfg.Notify.SecretKey = fixNotifyKey
	cfg.Notify.AllowNetworks = []string{"127.0.0.0/8"}
}

// fixNotifyKey seals the fixture's webhook secrets.
const fixNotifyKey = "cG9zdGFnZSB3YWxrIHdlYmhvb2sgc2VjcmV0IGtleSE="

// newFixture wires postage on fresh testenv databases.
func newFixture(t testing.TB) *fixture {
	t.Helper()
	return fillFixture(t, apptest.Open(t, fixtureConfig))
}

// fillFixture fills a's databases (the app must be seeded, on empty
// databases) and returns the fixture. The app's clock is fixed at
// 2026-11-02 09:00 UTC.
func fillFixture(t testing.TB, a *app.App) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{App: a, Now: time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)}
	a.Now = func() time.Time { return f.Now }
	for _, id := range []string{"cust-a", "cust-b"} {
		if _, err := a.Customers.Create(ctx, billing.Customer{ID: id, Name: "Customer " + id, Currency: "USD", Country: "GB", Email: "billing@" + id + ".example"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Customers.AddPhoneNumber(ctx, "cust-a", fixPhone); err != nil {
		t.Fatal(err)
	}
	f.Keys = apptest.Keys(t, a, "cust-a")
	victim, _, err := a.Keys.Create(ctx, auth.NewKey{Name: "victim", Role: auth.RoleSales})
	if err != nil {
		t.Fatal(err)
	}
	f.VictimKey = victim.ID
	f.Handler = a.Server().Handler()

	// October's usage, then October's invoices: cust-b's finalized.
	var evs []string
	for i, c := range []string{"cust-a", "cust-a", "cust-b"} {
		evs = append(evs, fmt.Sprintf(`{"specversion":"1.0","type":"message.sent","source":"walk","id":"oct-%d","subject":%q,"time":"2026-10-10T12:00:00Z","data":{"country":"DE","category":"marketing"}}`, i, c))
	}
	now := f.Now
	f.Now = time.Date(2026, 10, 20, 12, 0, 0, 0, time.UTC) // ingested well before the run's cut-off
	f.mustDo(t, auth.RoleIngest, "POST", "/api/v1/events", "application/cloudevents-batch+json", []byte("["+strings.Join(evs, ",")+"]"), http.StatusOK)
	f.Now = now
	f.mustDo(t, auth.RoleFinance, "POST", "/api/v1/invoice-runs", "application/json", []byte(`{"period":"2026-10"}`), http.StatusOK)
	invs, _, err := a.Invoices.List(ctx, billing.InvoiceFilter{Period: pricing.MustParseMonth("2026-10")}, billing.Page{})
	if err != nil || len(invs) != 2 {
		t.Fatalf("fixture invoices: %v %v", invs, err)
	}
	for _, inv := range invs {
		if inv.CustomerID == "cust-a" {
			f.InvoiceID = inv.ID
		} else {
			f.FinalID = inv.ID
		}
	}
	var ep struct{ ID string }
	_ = json.Unmarshal(f.mustDo(t, auth.RoleAdmin, "POST", "/api/v1/webhook-endpoints", "application/json",
		[]byte(`{"url":"http://127.0.0.1:9/walk","event_types":["*"]}`), http.StatusCreated), &ep)
	f.EndpointID = ep.ID
	f.mustDo(t, auth.RoleFinance, "POST", "/api/v1/invoices/"+f.FinalID+"/approve", "", nil, http.StatusOK)
	var dl struct{ Data []struct{ ID int64 } }
	_ = json.Unmarshal(f.mustDo(t, auth.RoleAdmin, "GET", "/api/v1/webhook-endpoints/"+f.EndpointID+"/deliveries", "", nil, http.StatusOK), &dl)
	if len(dl.Data) != 1 {
		t.Fatalf("fixture deliveries: %+v", dl)
	}
	f.DeliveryID = fmt.Sprint(dl.Data[0].ID)
	var al struct{ ID string }
	_ = json.Unmarshal(f.mustDo(t, auth.RoleAdmin, "POST", "/api/v1/customers/cust-a/alerts", "application/json",
		[]byte(`{"metric":"messages","threshold":"1000"}`), http.StatusCreated), &al)
	f.AlertID = al.ID
	// The upstream's report of October (it lacks cust-b's message, which
	// holds the month).
	f.mustDo(t, auth.RoleFinance, "POST", "/api/v1/reconciliations/2026-10/reports", "text/csv", fixUpstreamReport, http.StatusCreated)
	var rate billing.TaxRate
	_ = json.Unmarshal(f.mustDo(t, auth.RoleFinance, "POST", "/api/v1/tax-rates", "application/json",
		[]byte(`{"jurisdiction":"FR","name":"TVA","rate":"20","effective_from":"2014-01-01"}`), http.StatusCreated), &rate)
	var cn struct{ ID string }
	_ = json.Unmarshal(f.mustDo(t, auth.RoleFinance, "POST", "/api/v1/invoices/"+f.FinalID+"/credit-notes", "application/json",
		[]byte(`{"reason":"walk","lines":[{"amount":"0.01"}]}`), http.StatusCreated), &cn)
	f.TaxRateID, f.CreditID = rate.ID, cn.ID

	// A small version (the seeded ones have hundreds of prices): the walks
	// send it thousands of times.
	f.version = []byte(`{"note":"walk","currency":"USD","rounding":"half_even","default_market":"ROW","countries":{"DE":"EU","FR":"EU"},` +
		`"categories":[{"name":"notification","aliases":["marketing"]},{"name":"service","free":true}],` +
		`"prices":[{"market":"EU","category":"notification","mode":"flat","unit_price":"0.05"},` +
		`{"market":"ROW","category":"notification","mode":"graduated","tiers":[{"up_to":1000,"unit_price":"0.04"},{"up_to":null,"unit_price":"0.03"}]}]}`)
	var v pricing.Version
	if err := json.Unmarshal(f.version, &v); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := pricing.EncodeCSV(&b, &v); err != nil {
		t.Fatal(err)
	}
	f.csv = b.Bytes()
	return f
}

// do serves one request in process. role "" sends no key; a role not in
// Keys is sent as a raw token.
func (f *fixture) do(role auth.Role, method, target, ctype string, body []byte, header http.Header) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, "http://postage.test"+target, bytes.NewReader(body))
	for k, vs := range header {
		req.Header[k] = vs
	}
	if role != "" {
		tok, ok := f.Keys[role]
		if !ok {
			tok = string(role)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	w := httptest.NewRecorder()
	f.Handler.ServeHTTP(w, req)
	return w
}

func (f *fixture) mustDo(t testing.TB, role auth.Role, method, target, ctype string, body []byte, want int) []byte {
	t.Helper()
	w := f.do(role, method, target, ctype, body, nil)
	if w.Code != want {
		t.Fatalf("%s %s as %s: %d %s, want %d", method, target, role, w.Code, w.Body.Bytes(), want)
	}
	return w.Body.Bytes()
}

// paramValue is a valid value of path parameter name in route path.
func (f *fixture) paramValue(path, name string) string {
	switch name {
	case "id":
		switch {
		case strings.HasPrefix(path, "/api/v1/invoices/"):
			for _, finalized := range []string{"/void", "/balance", "/payments", "/refunds", "/credit-notes", "/uncollectible"} {
				if strings.HasSuffix(path, finalized) {
					return f.FinalID
				}
			}
			return f.InvoiceID
		case strings.HasPrefix(path, "/api/v1/tax-rates/"):
			return f.TaxRateID
		case strings.HasPrefix(path, "/api/v1/credit-notes/"):
			return f.CreditID
		}
		return "cust-a"
	case "key_id":
		return f.VictimKey
	case "phone_number_id":
		return fixPhone
	case "month":
		return "2026-10"
	case "card_id":
		return pricing.LaunchCardID
	case "number":
		return "1"
	case "endpoint_id":
		return f.EndpointID
	case "delivery_id":
		return f.DeliveryID
	case "alert_id":
		return f.AlertID
	}
	return "x"
}

// queryValue is a valid value of query parameter name of route path.
func (f *fixture) queryValue(path, name string) string {
	monthly := strings.HasPrefix(path, "/api/v1/reports/") && path != "/api/v1/reports/usage"
	switch name {
	case "period", "month":
		return "2026-10"
	case "from":
		if monthly {
			return "2026-08"
		}
		return "2026-10-01"
	case "to":
		if monthly {
			return "2026-10"
		}
		return "2026-11-01"
	case "window":
		return "day"
	case "group_by":
		if path == "/api/v1/reports/margin" {
			return "line"
		}
		return "country"
	case "source":
		return "meta-2026-10.csv"
	case "limit":
		return "10"
	case "status":
		if strings.HasSuffix(path, "/deliveries") {
			return "pending"
		}
		if path == "/api/v1/receivables" {
			return "open"
		}
		return "draft"
	case "jurisdiction":
		return "FR"
	case "invoice":
		return f.FinalID
	case "outstanding":
		return "true"
	case "q":
		return "cust"
	case "customer", "customer_id":
		return "cust-a"
	case "country":
		return "DE"
	case "category":
		return "notification"
	case "card_id":
		return pricing.LaunchCardID
	case "customer_country":
		return "GB"
	case "by":
		return "amount"
	case "format":
		return "json"
	case "hub.mode":
		return "subscribe"
	case "hub.verify_token":
		return fixVerifyToken
	case "hub.challenge":
		return "1158201444"
	}
	return ""
}

// fixUpstreamReport is the upstream's report of the fixture's October:
// cust-a's two messages to DE at Meta's price (its category a name the
// meta card knows as an alias, where the hostile walk puts its values).
var fixUpstreamReport = []byte("start,end,phone_number_id,country,pricing_category,pricing_type,volume,cost\n" +
	"2026-10-10,2026-10-11," + fixPhone + ",DE,notification,REGULAR,2,0.273\n")

// waBody is a signed-webhook body with one status of the fixture's phone.
func waBody(wamid string, at time.Time) []byte {
	return []byte(fmt.Sprintf(`{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"metadata":{"phone_number_id":%q},"statuses":[{"id":%q,"status":"delivered","timestamp":"%d","recipient_id":"4915123456789","pricing":{"billable":true,"category":"authentication"}}]}}]}]}`,
		fixPhone, wamid, at.Unix()))
}

// cloudEvents is a batch body of n events of cust-a at t, ids prefix-0...
func cloudEvents(prefix string, n int, at time.Time) []byte {
	evs := make([]string, n)
	for i := range evs {
		evs[i] = fmt.Sprintf(`{"specversion":"1.0","type":"message.sent","source":"walk","id":"%s-%d","subject":"cust-a","time":%q,"data":{"country":"DE","category":"marketing"}}`, prefix, i, at.UTC().Format(time.RFC3339))
	}
	return []byte("[" + strings.Join(evs, ",") + "]")
}

// eventSuffix is "" or, with FreshEvents, a suffix new to the meter.
func (f *fixture) eventSuffix() string {
	if !f.FreshEvents {
		return ""
	}
	return fmt.Sprintf("-%d", f.eventSeq.Add(1))
}

// sample is a valid request body for a route ("METHOD /path" in gin
// syntax), with its content type; ok is false for a route without a body.
func (f *fixture) sample(method, path string) (ctype string, body []byte, header http.Header, ok bool) {
	j := func(s string) (string, []byte, http.Header, bool) { return "application/json", []byte(s), nil, true }
	switch method + " " + path {
	case "POST /api/v1/customers":
		return j(`{"id":"walk-new","name":"Walk Ltd","currency":"USD","country":"GB","email":"ap@walk.example"}`)
	case "PATCH /api/v1/customers/:id":
		return j(`{"name":"Customer cust-a","currency":"USD","country":"GB","email":"billing@cust-a.example"}`)
	case "POST /api/v1/customers/:id/phone_numbers":
		return j(`{"phone_number_id":"` + fixPhone + `"}`)
	case "POST /api/v1/apikeys":
		return j(`{"name":"walk key","role":"customer","customer_id":"cust-a"}`)
	case "POST /api/v1/ratecards":
		return j(`{"id":"walk-card","name":"Walk card","currency":"USD","rounding":"half_even"}`)
	case "POST /api/v1/ratecards/:card_id/versions", "PUT /api/v1/ratecards/:card_id/versions/:number":
		return "application/json", f.version, nil, true
	case "POST /api/v1/ratecards/:card_id/versions/import":
		return "text/csv", f.csv, nil, true
	case "POST /api/v1/ratecards/:card_id/versions/:number/activate":
		return j(`{"effective_from":"2099-01"}`)
	case "POST /api/v1/quotes":
		return j(`{"items":[{"country":"DE","category":"notification","quantity":1000}],"customer_id":"cust-a","customer_country":"GB","month":"2026-11"}`)
	case "POST /api/v1/customers/:id/ratecards":
		return j(`{"card_id":"launch","effective_from":"2099-01"}`)
	case "POST /api/v1/cost-cards":
		return j(`{"card_id":"meta-2026-01","effective_from":"2099-01"}`)
	case "POST /api/v1/exchange-rates":
		return j(`{"from":"USD","to":"EUR","month":"2026-10","rate":"0.9231","source":"walk"}`)
	case "PUT /api/v1/customers/:id/portfolio":
		return j(`{"consolidated":true,"effective_from":"2099-01"}`)
	case "PUT /api/v1/customers/:id/overrides":
		return j(`{"card_discount":"5","discounts":[{"market":"DE","category":"notification","percent":"10"}],"unit_prices":[{"market":"DE","category":"notification","unit_price":"0.01"}]}`)
	case "POST /api/v1/invoices/:id/void":
		return j(`{"reason":"wrong billing address"}`)
	case "POST /api/v1/tax-rates":
		return j(`{"jurisdiction":"IT","name":"IVA","rate":"22","effective_from":"2013-10-01"}`)
	case "PATCH /api/v1/tax-rates/:id":
		return j(`{"effective_to":"2099-01-01"}`)
	case "POST /api/v1/invoices/:id/uncollectible":
		return j(`{"reason":"customer insolvent"}`)
	case "POST /api/v1/invoices/:id/payments":
		return j(`{"amount":"0.01","currency":"USD","date":"2026-11-02","method":"bank_transfer","reference":"SEPA 1","idempotency_key":"walk-1"}`)
	case "POST /api/v1/invoices/:id/refunds":
		return j(`{"amount":"0.01","currency":"USD","date":"2026-11-02","method":"bank_transfer","reference":"SEPA RF 1","idempotency_key":"walk-rf-1"}`)
	case "POST /api/v1/credit-notes/:id/void":
		return j(`{"reason":"issued in error"}`)
	case "POST /api/v1/invoices/:id/credit-notes":
		return j(`{"reason":"goodwill","lines":[{"amount":"0.01","description":"goodwill"}],"idempotency_key":"walk-1"}`)
	case "POST /api/v1/invoice-runs":
		return j(`{"period":"2026-10"}`)
	case "POST /api/v1/simulations":
		return j(`{"card_id":"meta-2026-01","from":"2026-08","to":"2026-10","customers":["cust-a"],"breakdown":true}`)
	case "POST /api/v1/simulations/margin":
		return j(`{"version":1,"from":"2026-10","to":"2026-10","customers":["cust-a"],"breakdown":true}`)
	case "POST /api/v1/reconciliations/:month/reports":
		return "text/csv", fixUpstreamReport, nil, true
	case "POST /api/v1/reconciliations/:month/accept":
		return j(`{"reason":"cust-b's message was a test send"}`)
	case "POST /api/v1/events":
		return "application/cloudevents-batch+json", cloudEvents("walk"+f.eventSuffix(), 2, f.Now.Add(-time.Hour)), nil, true
	case "POST /api/v1/webhook-endpoints":
		return j(`{"customer_id":"cust-a","url":"http://127.0.0.1:9/walk","event_types":["invoice.finalized"],"description":"walk"}`)
	case "PATCH /api/v1/webhook-endpoints/:endpoint_id":
		return j(`{"description":"walk","event_types":["*"]}`)
	case "POST /api/v1/webhook-endpoints/:endpoint_id/rotate-secret":
		return j(`{"previous_secret_valid_for":"1h"}`)
	case "POST /api/v1/customers/:id/alerts":
		return j(`{"metric":"amount","threshold":"2500.00"}`)
	case "POST /api/v1/webhooks/whatsapp":
		b := waBody("wamid.walk"+f.eventSuffix(), f.Now.Add(-time.Hour))
		return "application/json", b, http.Header{"X-Hub-Signature-256": {metering.SignBody(fixSecret, b)}}, true
	}
	return "", nil, nil, false
}

// target is the request target of route path with valid parameters and
// query (every parameter the route documents, with a valid value).
func (f *fixture) target(path string, query []string) string {
	parts := strings.Split(path, "/")
	for i, p := range parts {
		if strings.HasPrefix(p, ":") || strings.HasPrefix(p, "*") {
			parts[i] = f.paramValue(path, p[1:])
		}
	}
	t := strings.Join(parts, "/")
	var q []string
	for _, name := range query {
		if v := f.queryValue(path, name); v != "" {
			q = append(q, name+"="+v)
		}
	}
	if len(q) > 0 {
		t += "?" + strings.Join(q, "&")
	}
	return t
}
