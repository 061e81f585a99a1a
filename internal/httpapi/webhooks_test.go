package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"postage/billing"
	"postage/internal/auth"
	"postage/internal/config"
	"postage/notify"
	"postage/notify/signature"
	"postage/pricing"
)

func newWebhookStack(t *testing.T) *stack {
	t.Helper()
	return newStackWith(t, func(c *config.Config) {
		c.Notify.SecretKey = notify.NewKey()
		c.Notify.AllowNetworks = []string{"127.0.0.0/8"}
	}, nil)
}

// Endpoints: admin registers any customer's or every customer's, a
// customer key only its own; another customer's endpoint answers 404 as
// a missing one does; the secret is shown on creation and rotation only.
func TestWebhookEndpointsAPI(t *testing.T) {
	s := newWebhookStack(t)
	admin, cust := auth.RoleAdmin, auth.RoleCustomer
	create := func(role auth.Role, body string) (*http.Response, []byte) {
		t.Helper()
		return s.do(t, role, "POST", "/api/v1/webhook-endpoints", "application/json", []byte(body))
	}
	resp, body := create(admin, `{"url":"http://127.0.0.1:9/all","event_types":["*"],"description":"finance system"}`)
	if resp.StatusCode != 201 {
		t.Fatalf("admin, every customer: %d %s", resp.StatusCode, body)
	}
	all := decode[notify.CreatedEndpoint](t, body)
	if all.CustomerID != "" || !strings.HasPrefix(all.Secret, "whsec_") || resp.Header.Get("Location") != "/api/v1/webhook-endpoints/"+all.ID {
		t.Errorf("created %+v, Location %q", all, resp.Header.Get("Location"))
	}
	resp, body = create(admin, `{"customer_id":"cust-b","url":"http://127.0.0.1:9/b","event_types":["invoice.finalized"]}`)
	if resp.StatusCode != 201 {
		t.Fatalf("admin, cust-b: %d %s", resp.StatusCode, body)
	}
	b := decode[notify.CreatedEndpoint](t, body)
	resp, body = create(cust, `{"url":"http://127.0.0.1:9/a","event_types":["invoice.paid","invoice.finalized","invoice.paid"]}`)
	if resp.StatusCode != 201 {
		t.Fatalf("customer, own: %d %s", resp.StatusCode, body)
	}
	a := decode[notify.CreatedEndpoint](t, body)
	if a.CustomerID != "cust-a" || len(a.EventTypes) != 2 {
		t.Errorf("customer's endpoint %+v", a)
	}

	// Refused, each with a clear code.
	tests := []struct {
		role auth.Role
		body string
		code int
		want string
	}{
		{cust, `{"customer_id":"cust-b","url":"http://127.0.0.1:9/x","event_types":["*"]}`, 404, "not_found"},
		{admin, `{"customer_id":"nobody","url":"http://127.0.0.1:9/x","event_types":["*"]}`, 404, "not_found"},
		{admin, `{"url":"https://10.0.0.1/x","event_types":["*"]}`, 400, "not public"},
		{admin, `{"url":"https://169.254.169.254/latest","event_types":["*"]}`, 400, "not public"},
		{admin, `{"url":"http://localhost.invalid/x","event_types":["*"]}`, 400, "does not resolve"},
		{admin, `{"url":"ftp://127.0.0.1/x","event_types":["*"]}`, 400, "want https://"},
		{admin, `{"url":"http://127.0.0.1:9/x","event_types":["invoice.exploded"]}`, 400, "invoice.exploded"},
		{admin, `{"event_types":[]}`, 400, "url: required; event_types: at least one"},
		{admin, `{"url":"http://127.0.0.1:9/x","event_types":["*"],"secret":"mine"}`, 400, "unknown field"},
	}
	for _, tt := range tests {
		resp, body := create(tt.role, tt.body)
		if resp.StatusCode != tt.code || !strings.Contains(string(body), tt.want) {
			t.Errorf("%s %s: %d %s, want %d %q", tt.role, tt.body, resp.StatusCode, body, tt.code, tt.want)
		}
	}

	// The customer sees its own endpoint only.
	for _, id := range []string{all.ID, b.ID, "we_nothing"} {
		for _, m := range []string{"GET", "DELETE"} {
			resp, body := s.do(t, cust, m, "/api/v1/webhook-endpoints/"+id, "", nil)
			if resp.StatusCode != 404 || problemCode(t, resp, body) != "not_found" {
				t.Errorf("customer %s %s: %d %s", m, id, resp.StatusCode, body)
			}
		}
		resp, body := s.do(t, cust, "PATCH", "/api/v1/webhook-endpoints/"+id, "application/json", []byte(`{"enabled":false}`))
		if resp.StatusCode != 404 {
			t.Errorf("customer PATCH %s: %d %s", id, resp.StatusCode, body)
		}
		resp, body = s.do(t, cust, "POST", "/api/v1/webhook-endpoints/"+id+"/rotate-secret", "application/json", []byte(`{}`))
		if resp.StatusCode != 404 {
			t.Errorf("customer rotates %s: %d %s", id, resp.StatusCode, body)
		}
		resp, body = s.do(t, cust, "GET", "/api/v1/webhook-endpoints/"+id+"/deliveries", "", nil)
		if resp.StatusCode != 404 {
			t.Errorf("customer reads %s's deliveries: %d %s", id, resp.StatusCode, body)
		}
	}
	resp, body = s.do(t, cust, "GET", "/api/v1/webhook-endpoints", "", nil)
	list := decode[httpList[notify.Endpoint]](t, body)
	if resp.StatusCode != 200 || len(list.Data) != 1 || list.Data[0].ID != a.ID || strings.Contains(string(body), "whsec_") {
		t.Errorf("customer's list: %d %s", resp.StatusCode, body)
	}
	if resp, _ := s.do(t, cust, "GET", "/api/v1/webhook-endpoints?customer=cust-b", "", nil); resp.StatusCode != 404 {
		t.Errorf("customer lists cust-b's: %d", resp.StatusCode)
	}
	resp, body = s.do(t, admin, "GET", "/api/v1/webhook-endpoints?limit=2", "", nil)
	list = decode[httpList[notify.Endpoint]](t, body)
	if len(list.Data) != 2 || list.NextCursor == "" {
		t.Errorf("admin's first page: %s", body)
	}
	resp, body = s.do(t, admin, "GET", "/api/v1/webhook-endpoints?limit=2&cursor="+list.NextCursor, "", nil)
	if list := decode[httpList[notify.Endpoint]](t, body); len(list.Data) != 1 || list.NextCursor != "" {
		t.Errorf("admin's second page: %s", body)
	}
	if resp, body := s.do(t, admin, "GET", "/api/v1/webhook-endpoints?customer=cust-b", "", nil); !strings.Contains(string(body), b.ID) || strings.Contains(string(body), all.ID) {
		t.Errorf("admin's cust-b filter: %d %s", resp.StatusCode, body)
	}

	// Change, rotate, delete.
	resp, body = s.do(t, cust, "PATCH", "/api/v1/webhook-endpoints/"+a.ID, "application/json", []byte(`{"enabled":false,"url":"http://127.0.0.1:10/a"}`))
	if got := decode[notify.Endpoint](t, body); resp.StatusCode != 200 || got.Enabled || got.URL != "http://127.0.0.1:10/a" {
		t.Errorf("patch: %d %s", resp.StatusCode, body)
	}
	if resp, body := s.do(t, cust, "PATCH", "/api/v1/webhook-endpoints/"+a.ID, "application/json", []byte(`{"url":"https://10.9.9.9/"}`)); resp.StatusCode != 400 {
		t.Errorf("patch to a private address: %d %s", resp.StatusCode, body)
	}
	if resp, body := s.do(t, cust, "PATCH", "/api/v1/webhook-endpoints/"+a.ID, "application/json", []byte(`{}`)); resp.StatusCode != 400 {
		t.Errorf("empty patch: %d %s", resp.StatusCode, body)
	}
	resp, body = s.do(t, cust, "POST", "/api/v1/webhook-endpoints/"+a.ID+"/rotate-secret", "application/json", []byte(`{"previous_secret_valid_for":"2h"}`))
	rot := decode[notify.CreatedEndpoint](t, body)
	if resp.StatusCode != 200 || rot.Secret == a.Secret || !strings.HasPrefix(rot.Secret, "whsec_") || rot.PreviousSecretExpiresAt == nil {
		t.Errorf("rotate: %d %s", resp.StatusCode, body)
	}
	if resp, body := s.do(t, cust, "GET", "/api/v1/webhook-endpoints/"+a.ID, "", nil); resp.StatusCode != 200 || strings.Contains(string(body), "whsec_") {
		t.Errorf("get shows the secret: %s", body)
	}
	if resp, _ := s.do(t, cust, "DELETE", "/api/v1/webhook-endpoints/"+a.ID, "", nil); resp.StatusCode != 204 {
		t.Errorf("delete: %d", resp.StatusCode)
	}
	if resp, _ := s.do(t, cust, "GET", "/api/v1/webhook-endpoints/"+a.ID, "", nil); resp.StatusCode != 404 {
		t.Errorf("deleted endpoint: %d", resp.StatusCode)
	}
	if resp, _ := s.do(t, auth.RoleFinance, "GET", "/api/v1/webhook-endpoints", "", nil); resp.StatusCode != 403 {
		t.Errorf("finance: %d", resp.StatusCode)
	}
}

// Without notify.secret_key no endpoint can be created: 503, said so.
func TestWebhooksNeedASecretKey(t *testing.T) {
	s := newStack(t)
	resp, body := s.do(t, auth.RoleAdmin, "POST", "/api/v1/webhook-endpoints", "application/json", []byte(`{"url":"https://93.184.216.34/x","event_types":["*"]}`))
	if resp.StatusCode != 503 || !strings.Contains(string(body), "notify.secret_key") {
		t.Errorf("%d %s", resp.StatusCode, body)
	}
}

type httpList[T any] struct {
	Data       []T    `json:"data"`
	NextCursor string `json:"next_cursor"`
}

// An invoice approved and then voided through the API reaches the
// customer's endpoint as invoice.finalized and invoice.voided, signed;
// the deliveries and their attempt logs are readable, and a delivery can
// be sent again.
func TestInvoiceEventsReachTheEndpoint(t *testing.T) {
	s := newWebhookStack(t)
	now := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	s.App.Now = func() time.Time { return now }
	oct := time.Date(2026, 10, 10, 12, 0, 0, 0, time.UTC)
	insertEvents(t, s, "cust-a", "GB", "marketing", oct, oct, 3)

	var mu sync.Mutex
	var got []notify.Payload
	var secret string
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if err := signature.Verify(body, r.Header.Get(signature.Header), secret, 0, now); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var p notify.Payload
		_ = json.Unmarshal(body, &p)
		got = append(got, p)
	}))
	defer rcv.Close()
	resp, body := s.do(t, auth.RoleCustomer, "POST", "/api/v1/webhook-endpoints", "application/json",
		[]byte(`{"url":"`+rcv.URL+`/hook","event_types":["invoice.finalized","invoice.voided"]}`))
	if resp.StatusCode != 201 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	ep := decode[notify.CreatedEndpoint](t, body)
	mu.Lock()
	secret = ep.Secret
	mu.Unlock()

	if resp, body := s.do(t, auth.RoleFinance, "POST", "/api/v1/invoice-runs", "application/json", []byte(`{"period":"2026-10"}`)); resp.StatusCode != 200 {
		t.Fatalf("run: %d %s", resp.StatusCode, body)
	}
	id := billing.InvoiceID("cust-a", pricing.MonthOf(oct), 1)
	deliver := func() {
		t.Helper()
		for {
			n, err := s.App.Dispatcher.DeliverDue(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				return
			}
		}
	}
	deliver()
	if len(got) != 0 {
		t.Fatalf("a draft was announced: %+v", got)
	}
	if resp, body := s.do(t, auth.RoleFinance, "POST", "/api/v1/invoices/"+id+"/approve", "", nil); resp.StatusCode != 200 {
		t.Fatalf("approve: %d %s", resp.StatusCode, body)
	}
	deliver()
	if resp, body := s.do(t, auth.RoleFinance, "POST", "/api/v1/invoices/"+id+"/void", "application/json", []byte(`{"reason":"wrong address"}`)); resp.StatusCode != 200 {
		t.Fatalf("void: %d %s", resp.StatusCode, body)
	}
	deliver()
	mu.Lock()
	events := append([]notify.Payload(nil), got...)
	mu.Unlock()
	if len(events) != 2 || events[0].Type != notify.InvoiceFinalized || events[1].Type != notify.InvoiceVoided || events[0].ID == events[1].ID {
		t.Fatalf("received %+v", events)
	}
	// The object is the invoice as the API shows it: its frozen document.
	_, inv := s.do(t, auth.RoleFinance, "GET", "/api/v1/invoices/"+id, "", nil)
	obj, _ := json.Marshal(events[1].Data.Object)
	var want, have any
	_ = json.Unmarshal(inv, &want)
	_ = json.Unmarshal(obj, &have)
	if !reflect.DeepEqual(want, have) {
		t.Errorf("invoice.voided object\n got %s\nwant %s", obj, inv)
	}
	if o := events[0].Data.Object.(map[string]any); o["status"] != "finalized" || !strings.HasPrefix(o["number"].(string), "PST-") || events[0].CustomerID != "cust-a" {
		t.Errorf("invoice.finalized object %v", o)
	}

	// The delivery log, through the customer's key.
	resp, body = s.do(t, auth.RoleCustomer, "GET", "/api/v1/webhook-endpoints/"+ep.ID+"/deliveries?status=succeeded", "", nil)
	dl := decode[httpList[notify.Delivery]](t, body)
	if resp.StatusCode != 200 || len(dl.Data) != 2 || dl.Data[0].EventType != notify.InvoiceVoided {
		t.Fatalf("deliveries: %d %s", resp.StatusCode, body)
	}
	path := "/api/v1/webhook-deliveries/" + strconv.FormatInt(dl.Data[1].ID, 10)
	resp, body = s.do(t, auth.RoleCustomer, "GET", path, "", nil)
	detail := decode[notify.DeliveryDetail](t, body)
	if resp.StatusCode != 200 || len(detail.AttemptLog) != 1 || detail.AttemptLog[0].StatusCode != 200 || detail.EventID != events[0].ID {
		t.Fatalf("delivery: %d %s", resp.StatusCode, body)
	}
	if resp, _ := s.do(t, auth.RoleCustomer, "GET", "/api/v1/webhook-deliveries/99999", "", nil); resp.StatusCode != 404 {
		t.Errorf("missing delivery: %d", resp.StatusCode)
	}
	if resp, _ := s.do(t, auth.RoleCustomer, "GET", "/api/v1/webhook-endpoints/"+ep.ID+"/deliveries?status=lost", "", nil); resp.StatusCode != 400 {
		t.Errorf("bad status filter: %d", resp.StatusCode)
	}
	resp, body = s.do(t, auth.RoleCustomer, "POST", path+"/resend", "", nil)
	if d := decode[notify.Delivery](t, body); resp.StatusCode != 202 || d.Status != notify.DeliveryPending {
		t.Fatalf("resend: %d %s", resp.StatusCode, body)
	}
	deliver()
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 3 || got[2].ID != events[0].ID {
		t.Errorf("after resend received %d events", len(got))
	}
}

// Alerts: a customer sets its own, never another's; bad thresholds are
// 400 with the reason.
func TestAlertsAPI(t *testing.T) {
	s := newWebhookStack(t)
	cust := auth.RoleCustomer
	tests := []struct {
		role auth.Role
		path string
		body string
		code int
		want string
	}{
		{cust, "/api/v1/customers/cust-a/alerts", `{"metric":"messages","threshold":"1000"}`, 201, `"metric":"messages"`},
		{cust, "/api/v1/customers/cust-a/alerts", `{"metric":"amount","threshold":"25.50"}`, 201, `"currency":"USD"`},
		{cust, "/api/v1/customers/cust-b/alerts", `{"metric":"messages","threshold":"1"}`, 404, "not_found"},
		{auth.RoleAdmin, "/api/v1/customers/nobody/alerts", `{"metric":"messages","threshold":"1"}`, 404, "not_found"},
		{auth.RoleAdmin, "/api/v1/customers/cust-b/alerts", `{"metric":"messages","threshold":"10"}`, 201, `"customer_id":"cust-b"`},
		{cust, "/api/v1/customers/cust-a/alerts", `{"metric":"messages","threshold":"10.5"}`, 400, "whole number"},
		{cust, "/api/v1/customers/cust-a/alerts", `{"metric":"amount","threshold":"1.001"}`, 400, "at most 2 decimals for USD"},
		{cust, "/api/v1/customers/cust-a/alerts", `{"metric":"amount","threshold":"-5"}`, 400, "positive"},
		{cust, "/api/v1/customers/cust-a/alerts", `{"metric":"invoices","threshold":"5"}`, 400, "want messages or amount"},
		{auth.RoleFinance, "/api/v1/customers/cust-a/alerts", `{"metric":"messages","threshold":"5"}`, 403, "forbidden"},
	}
	for _, tt := range tests {
		resp, body := s.do(t, tt.role, "POST", tt.path, "application/json", []byte(tt.body))
		if resp.StatusCode != tt.code || !strings.Contains(string(body), tt.want) {
			t.Errorf("%s %s %s: %d %s, want %d %q", tt.role, tt.path, tt.body, resp.StatusCode, body, tt.code, tt.want)
		}
	}
	resp, body := s.do(t, cust, "GET", "/api/v1/customers/cust-a/alerts", "", nil)
	list := decode[httpList[notify.Alert]](t, body)
	if resp.StatusCode != 200 || len(list.Data) != 2 {
		t.Fatalf("list: %d %s", resp.StatusCode, body)
	}
	if resp, _ := s.do(t, cust, "DELETE", "/api/v1/customers/cust-b/alerts/"+list.Data[0].ID, "", nil); resp.StatusCode != 404 {
		t.Errorf("delete through another customer: %d", resp.StatusCode)
	}
	if resp, _ := s.do(t, cust, "DELETE", "/api/v1/customers/cust-a/alerts/"+list.Data[0].ID, "", nil); resp.StatusCode != 204 {
		t.Errorf("delete: %d", resp.StatusCode)
	}
	if resp, _ := s.do(t, cust, "DELETE", "/api/v1/customers/cust-a/alerts/"+list.Data[0].ID, "", nil); resp.StatusCode != 404 {
		t.Errorf("delete again: %d", resp.StatusCode)
	}
	if resp, _ := s.do(t, auth.RoleAdmin, "GET", "/api/v1/customers/nobody/alerts", "", nil); resp.StatusCode != 404 {
		t.Errorf("alerts of a missing customer: %d", resp.StatusCode)
	}
	// At most MaxAlerts per customer.
	for i := range notify.MaxAlerts {
		resp, body := s.do(t, auth.RoleAdmin, "POST", "/api/v1/customers/cust-b/alerts", "application/json", []byte(`{"metric":"messages","threshold":"`+strconv.Itoa(100+i)+`"}`))
		if want := map[bool]int{true: 201, false: 409}[i < notify.MaxAlerts-1]; resp.StatusCode != want {
			t.Errorf("alert %d: %d %s", i+2, resp.StatusCode, body)
		}
	}
}
