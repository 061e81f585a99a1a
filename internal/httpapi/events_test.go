package httpapi_test

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"postage/internal/app"
	"postage/internal/auth"
	"postage/internal/config"
	"postage/internal/httpapi"
	"postage/metering"
)

const waSecret = "test-app-secret"

// newMeteringStack is newStack with a WhatsApp app secret and verify token
// configured, a fixed clock, and phone number id 1001 owned by cust-a.
func newMeteringStack(t *testing.T, now time.Time) *stack {
	t.Helper()
	return newStackWith(t, func(cfg *config.Config) {
		cfg.HTTP.MaxBodyBytes = 64 << 10
		cfg.Ingest.MaxBatch = 100
		cfg.Ingest.FlushInterval = config.Duration{Duration: time.Millisecond}
		cfg.WhatsApp.AppSecret = waSecret
		cfg.WhatsApp.VerifyToken = "verify-me"
	}, func(a *app.App) {
		a.Now = func() time.Time { return now }
		if _, err := a.Customers.AddPhoneNumber(context.Background(), "cust-a", "1001"); err != nil {
			t.Fatal(err)
		}
	})
}

var meterNow = time.Date(2026, 10, 31, 23, 59, 59, 0, time.UTC)

func cloudEvent(id, subject, at, data string) string {
	return fmt.Sprintf(`{"specversion":"1.0","type":"message.sent","source":"test","id":%q,"subject":%q,"time":%q,"data":%s}`, id, subject, at, data)
}

func decodeEvents(t *testing.T, body []byte) httpapi.EventsResponse {
	t.Helper()
	var r httpapi.EventsResponse
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	return r
}

func TestPostEvents(t *testing.T) {
	s := newMeteringStack(t, meterNow)
	good := cloudEvent("e1", "cust-a", "2026-10-31T23:59:59Z", `{"to":"+4915123456789","category":"marketing"}`)
	next := cloudEvent("e2", "cust-a", "2026-10-31T12:00:00Z", `{"country":"BR","category":"utility","quantity":2}`)
	bad := cloudEvent("e3", "cust-a", "2026-10-31T12:00:00Z", `{"to":"+999","category":"utility"}`)
	unknownCat := cloudEvent("e4", "cust-a", "2026-10-31T12:00:00Z", `{"country":"DE","category":"promo"}`)
	stranger := cloudEvent("e5", "no-such-customer", "2026-10-31T12:00:00Z", `{"country":"DE","category":"utility"}`)
	conflicting := cloudEvent("e1", "cust-a", "2026-10-31T23:59:59Z", `{"to":"+4915123456789","category":"utility"}`)

	resp, body := s.do(t, auth.RoleIngest, "POST", "/api/v1/events", "application/cloudevents-batch+json",
		[]byte("["+good+","+next+","+bad+","+good+","+unknownCat+","+stranger+"]"))
	if resp.StatusCode != 200 {
		t.Fatalf("batch: %d %s", resp.StatusCode, body)
	}
	r := decodeEvents(t, body)
	if r.Accepted != 3 || r.Duplicate != 1 || r.Rejected != 2 {
		t.Errorf("counts %+v", r)
	}
	want := []metering.Result{
		{Index: 0, ID: "e1", Status: metering.Accepted},
		{Index: 1, ID: "e2", Status: metering.Accepted},
		{Index: 2, ID: "e3", Status: metering.Rejected, Field: "data.to", Reason: metering.ReasonBadNumber},
		{Index: 3, ID: "e1", Status: metering.Duplicate},
		{Index: 4, ID: "e4", Status: metering.Rejected, Field: "data.category", Reason: metering.ReasonUnknownCat},
		{Index: 5, ID: "e5", Status: metering.Accepted},
	}
	for i := range want {
		if r.Results[i] != want[i] {
			t.Errorf("result %d: got %+v, want %+v", i, r.Results[i], want[i])
		}
	}

	// A single event: re-sent is 200 duplicate, changed is 409 conflict.
	resp, body = s.do(t, auth.RoleIngest, "POST", "/api/v1/events", "application/cloudevents+json", []byte(good))
	if resp.StatusCode != 200 || decodeEvents(t, body).Duplicate != 1 {
		t.Errorf("single duplicate: %d %s", resp.StatusCode, body)
	}
	resp, body = s.do(t, auth.RoleIngest, "POST", "/api/v1/events", "application/json", []byte(conflicting))
	if resp.StatusCode != 409 || problemCode(t, resp, body) != "conflict" {
		t.Errorf("single conflict: %d %s", resp.StatusCode, body)
	}
	resp, body = s.do(t, auth.RoleAdmin, "POST", "/api/v1/events", "application/cloudevents+json; charset=utf-8", []byte(bad))
	if resp.StatusCode != 400 || problemCode(t, resp, body) != "invalid" || !strings.Contains(string(body), `"reason":"bad_number"`) {
		t.Errorf("single rejected: %d %s", resp.StatusCode, body)
	}

	// Whole-request errors.
	tests := []struct {
		name, ct, body string
		status         int
		code           string
	}{
		{"malformed batch", "application/cloudevents-batch+json", `[` + good, 400, "invalid"},
		{"object as batch", "application/cloudevents-batch+json", good, 400, "invalid"},
		{"malformed single", "application/cloudevents+json", `{"id":`, 400, "invalid"},
		{"wrong content type", "text/plain", good, 415, "unsupported_media_type"},
		{"no content type", "", good, 415, "unsupported_media_type"},
		{"oversize body", "application/cloudevents-batch+json", "[" + strings.Repeat(good+",", 400) + good + "]", 413, "too_large"},
		{"batch too long", "application/cloudevents-batch+json", "[" + strings.Repeat("{},", 100) + "{}]", 413, "too_large"},
	}
	for _, tt := range tests {
		resp, body := s.do(t, auth.RoleIngest, "POST", "/api/v1/events", tt.ct, []byte(tt.body))
		if resp.StatusCode != tt.status || problemCode(t, resp, body) != tt.code {
			t.Errorf("%s: %d %s, want %d %s", tt.name, resp.StatusCode, body, tt.status, tt.code)
		}
	}
	resp, _ = s.do(t, auth.RoleCustomer, "POST", "/api/v1/events", "application/cloudevents+json", []byte(good))
	if resp.StatusCode != 403 {
		t.Errorf("customer key may ingest: %d", resp.StatusCode)
	}

	// Usage reflects exactly the accepted events, unknown customers included.
	aggs, err := s.App.Events.MonthlyAggregates(context.Background(), meterNow, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	got := aggregatesString(aggs)
	if got != "cust-a BR utility 2/1, cust-a DE marketing 1/1, no-such-customer DE utility 1/1" {
		t.Errorf("aggregates %s", got)
	}
	if got := storedEvents(t, s, "e2"); got != fmt.Sprintf("cust-a e2 %d cloudevents ", time.Date(2026, 10, 31, 12, 0, 0, 0, time.UTC).Unix()) {
		t.Errorf("stored %s", got)
	}
}

// TestPostEventsBadValues checks that one bad value rejects its own event
// and never its neighbours (values of another JSON type, which the
// OpenAPI document does not describe, are checked in metering's tests), and that strings which are not text are
// rejected, never rewritten (two ids that differ only in bytes that are
// not UTF-8 were both stored as the same id with U+FFFD, and the second
// answered duplicate and never counted).
func TestPostEventsBadValues(t *testing.T) {
	s := newMeteringStack(t, meterNow)
	at := "2026-10-31T12:00:00Z"
	events := []string{
		cloudEvent("q1", "cust-a", at, `{"country":"DE","category":"utility","quantity":"abc"}`),
		cloudEvent("q2", "cust-a", at, `{"country":"DE","category":"utility","quantity":""}`),
		cloudEvent("q3", "cust-a", at, `{"country":"DE","category":"utility","quantity":"5"}`),
		`{"specversion":"1.0","type":"message.sent","id":"evt-` + "\xff" + `","subject":"cust-a","time":"` + at + `","data":{"country":"DE","category":"utility"}}`,
		`{"specversion":"1.0","type":"message.sent","id":"evt-` + "\xfe" + `","subject":"cust-a","time":"` + at + `","data":{"country":"DE","category":"utility"}}`,
		`{"specversion":"1.0","type":"message.sent","id":"evt-\ud800","subject":"cust-a","time":"` + at + `","data":{"country":"DE","category":"utility"}}`,
		`{"specversion":"1.0","type":"message.sent","id":"n1","subject":"cust-a\u0000","time":"` + at + `","data":{"country":"DE","category":"utility"}}`,
		cloudEvent("q5", "cust-a", at, `{"country":"DE","category":"utility"}`),
	}
	resp, body := s.do(t, auth.RoleIngest, "POST", "/api/v1/events", "application/cloudevents-batch+json", []byte("["+strings.Join(events, ",")+"]"))
	if resp.StatusCode != 200 {
		t.Fatalf("batch: %d %s", resp.StatusCode, body)
	}
	r := decodeEvents(t, body)
	want := []metering.Result{
		{Index: 0, ID: "q1", Status: metering.Rejected, Field: "data.quantity", Reason: metering.ReasonBadQuantity},
		{Index: 1, ID: "q2", Status: metering.Rejected, Field: "data.quantity", Reason: metering.ReasonBadQuantity},
		{Index: 2, ID: "q3", Status: metering.Accepted},
		{Index: 3, Status: metering.Rejected, Field: "id", Reason: metering.ReasonInvalid},
		{Index: 4, Status: metering.Rejected, Field: "id", Reason: metering.ReasonInvalid},
		{Index: 5, Status: metering.Rejected, Field: "id", Reason: metering.ReasonInvalid},
		{Index: 6, ID: "n1", Status: metering.Rejected, Field: "subject", Reason: metering.ReasonInvalid},
		{Index: 7, ID: "q5", Status: metering.Accepted},
	}
	if !slices.Equal(r.Results, want) {
		t.Errorf("results\n got %+v\nwant %+v", r.Results, want)
	}
	// A single event with a bad quantity is a rejected event (400 naming
	// the field), not a malformed body.
	resp, body = s.do(t, auth.RoleIngest, "POST", "/api/v1/events", "application/cloudevents+json", []byte(events[0]))
	if resp.StatusCode != 400 || problemCode(t, resp, body) != "invalid" || !strings.Contains(string(body), `"field":"data.quantity"`) {
		t.Errorf("single bad quantity: %d %s", resp.StatusCode, body)
	}
	aggs, err := s.App.Events.MonthlyAggregates(context.Background(), meterNow, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if got := aggregatesString(aggs); got != "cust-a DE utility 6/2" {
		t.Errorf("aggregates %s", got)
	}
}

func waPayload(pnid, wamid, status string, ts int64) []byte {
	return []byte(fmt.Sprintf(`{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"metadata":{"phone_number_id":%q},"statuses":[{"id":%q,"status":%q,"timestamp":"%d","recipient_id":"919876543210","pricing":{"billable":true,"category":"authentication"}}]}}]}]}`,
		pnid, wamid, status, ts))
}

func TestWhatsAppWebhook(t *testing.T) {
	s := newMeteringStack(t, meterNow)
	post := func(body []byte, sig string) (*http.Response, []byte) {
		req, _ := http.NewRequest("POST", s.URL+"/api/v1/webhooks/whatsapp", strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/json")
		if sig != "" {
			req.Header.Set("X-Hub-Signature-256", sig)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	ts := meterNow.Add(-time.Hour).Unix()
	body := waPayload("1001", "wamid.1", "sent", ts)
	for _, sig := range []string{"", "sha256=00", metering.SignBody("wrong-secret", body)} {
		resp, b := post(body, sig)
		if resp.StatusCode != 401 || problemCode(t, resp, b) != "unauthorized" {
			t.Errorf("signature %q: %d %s", sig, resp.StatusCode, b)
		}
	}
	if aggs, _ := s.App.Events.MonthlyAggregates(context.Background(), meterNow, time.Time{}); len(aggs) != 0 {
		t.Fatalf("stored despite bad signature: %v", aggs)
	}
	for i, st := range []string{"sent", "delivered", "read"} {
		b := waPayload("1001", "wamid.1", st, ts+int64(i))
		resp, rb := post(b, metering.SignBody(waSecret, b))
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", st, resp.StatusCode, rb)
		}
	}
	b := waPayload("9999", "wamid.2", "delivered", ts)
	if resp, rb := post(b, metering.SignBody(waSecret, b)); resp.StatusCode != 200 {
		t.Fatalf("unknown phone number: %d %s", resp.StatusCode, rb)
	}
	aggs, err := s.App.Events.MonthlyAggregates(context.Background(), meterNow, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if got := aggregatesString(aggs); got != "cust-a IN authentication regular 1/1, unknown:9999 IN authentication regular 1/1" {
		t.Errorf("aggregates %s", got)
	}
	// The message is stored once, from its delivered status (the default
	// billable status: sent was ignored), at that status's time.
	if got := storedEvents(t, s, "wamid.1"); got != fmt.Sprintf("cust-a wamid.1 %d whatsapp delivered", ts+1) {
		t.Errorf("stored %s", got)
	}

	// One delivery with a phone number id that is not text (a NUL used to
	// reach PostgreSQL, fail, and answer 503, so the platform re-sent the
	// whole delivery for ever) and good statuses next to it: 200, the bad
	// change's statuses rejected, the good ones stored, a category no card
	// knows (marketing_lite) stored as sent, a sent status ignored.
	change := func(pnid string, statuses ...string) string {
		return `{"field":"messages","value":{"metadata":{"phone_number_id":"` + pnid + `"},"statuses":[` + strings.Join(statuses, ",") + `]}}`
	}
	st := func(id, status, category string) string {
		return fmt.Sprintf(`{"id":%q,"status":%q,"timestamp":"%d","recipient_id":"919876543210","pricing":{"billable":true,"pricing_model":"PMP","type":"regular","category":%q}}`, id, status, ts, category)
	}
	b = []byte(`{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[` + strings.Join([]string{
		change("1001", st("wamid.3", "delivered", "utility")),
		change(`10\u000001`, st("wamid.4", "delivered", "utility"), st("wamid.5", "read", "utility")),
		change("1001", st("wamid.6", "read", "marketing_lite"), st("wamid.7", "sent", "utility"), `{"id":"wamid.8","status":"delivered","timestamp":"soon","recipient_id":"919876543210","pricing":{"category":"utility"}}`,
			fmt.Sprintf(`{"id":"wamid.9","status":"delivered","timestamp":"%d","recipient_id":"919876543210","pricing":{"billable":false,"pricing_model":"CBP","category":"service"}}`, ts)),
	}, ",") + `]}]}`)
	resp, rb := post(b, metering.SignBody(waSecret, b))
	if resp.StatusCode != 200 {
		t.Fatalf("delivery with a bad phone number id: %d %s", resp.StatusCode, rb)
	}
	r := decodeEvents(t, rb)
	want := []metering.Result{
		{Index: 0, ID: "wamid.3", Status: metering.Accepted},
		{Index: 1, ID: "wamid.4", Status: metering.Rejected, Field: "metadata.phone_number_id", Reason: metering.ReasonInvalid},
		{Index: 2, ID: "wamid.5", Status: metering.Rejected, Field: "metadata.phone_number_id", Reason: metering.ReasonInvalid},
		{Index: 3, ID: "wamid.6", Status: metering.Accepted},
		{Index: 4, ID: "wamid.7", Status: metering.Ignored},
		{Index: 5, ID: "wamid.8", Status: metering.Rejected, Field: "statuses.timestamp", Reason: metering.ReasonInvalid},
		{Index: 6, ID: "wamid.9", Status: metering.Accepted},
	}
	if !slices.Equal(r.Results, want) {
		t.Errorf("results\n got %+v\nwant %+v", r.Results, want)
	}
	aggs, err = s.App.Events.MonthlyAggregates(context.Background(), meterNow, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if got := aggregatesString(aggs); got != "cust-a IN authentication regular 1/1, cust-a IN marketing_lite regular PMP 1/1, "+
		"cust-a IN service free_customer_service CBP 1/1, cust-a IN utility regular PMP 1/1, unknown:9999 IN authentication regular 1/1" {
		t.Errorf("aggregates %s", got)
	}

	// The verification handshake.
	resp, rb = s.do(t, "", "GET", "/api/v1/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=12345", "", nil)
	if resp.StatusCode != 200 || string(rb) != "12345" {
		t.Errorf("handshake: %d %s", resp.StatusCode, rb)
	}
	resp, _ = s.do(t, "", "GET", "/api/v1/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=nope&hub.challenge=12345", "", nil)
	if resp.StatusCode != 403 {
		t.Errorf("bad verify token: %d", resp.StatusCode)
	}
}

func TestUsageRoutes(t *testing.T) {
	s := newMeteringStack(t, meterNow)
	batch := "[" + strings.Join([]string{
		cloudEvent("a1", "cust-a", "2026-10-31T23:59:59Z", `{"country":"DE","category":"marketing"}`),
		cloudEvent("a2", "cust-a", "2026-10-30T10:00:00Z", `{"country":"DE","category":"marketing","quantity":3}`),
		cloudEvent("a3", "cust-a", "2026-10-30T11:00:00Z", `{"country":"=HYPERLINK","category":"marketing"}`),
		cloudEvent("a4", "cust-a", "2026-10-30T11:00:00Z", `{"country":"FR","category":"utility"}`),
		cloudEvent("b1", "cust-b", "2026-10-01T00:00:00Z", `{"country":"FR","category":"utility"}`),
	}, ",") + "]"
	if resp, body := s.do(t, auth.RoleIngest, "POST", "/api/v1/events", "application/cloudevents-batch+json", []byte(batch)); resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	resp, body := s.do(t, auth.RoleCustomer, "GET", "/api/v1/customers/cust-a/usage?from=2026-10-01&to=2026-11-01&window=day&group_by=country", "", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	var u httpapi.UsageResponse
	if err := json.Unmarshal(body, &u); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(u.Data); got != "[{2026-10-30 00:00:00 +0000 UTC cust-a DE  3 1} {2026-10-30 00:00:00 +0000 UTC cust-a FR  1 1} {2026-10-31 00:00:00 +0000 UTC cust-a DE  1 1}]" {
		t.Errorf("usage %s", got)
	}
	if resp, body := s.do(t, auth.RoleCustomer, "GET", "/api/v1/customers/cust-b/usage", "", nil); resp.StatusCode != 404 {
		t.Errorf("other customer's usage: %d %s", resp.StatusCode, body)
	}
	if resp, _ := s.do(t, auth.RoleFinance, "GET", "/api/v1/customers/cust-b/usage?from=2026-10-01T00:00:00Z", "", nil); resp.StatusCode != 200 {
		t.Errorf("finance reading usage: %d", resp.StatusCode)
	}
	for _, q := range []string{"from=yesterday", "window=week", "group_by=customer", "from=2026-11-01&to=2026-10-01", "from=2020-01-01&to=2026-01-01"} {
		resp, body := s.do(t, auth.RoleFinance, "GET", "/api/v1/customers/cust-a/usage?"+q, "", nil)
		if resp.StatusCode != 400 || problemCode(t, resp, body) != "invalid" {
			t.Errorf("%s: %d %s", q, resp.StatusCode, body)
		}
	}
	req, _ := http.NewRequest("GET", s.URL+"/api/v1/customers/cust-a/usage?window=month&group_by=country,category", nil)
	req.Header.Set("Authorization", "Bearer "+s.Keys[auth.RoleFinance])
	req.Header.Set("Accept", "text/csv")
	cresp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	csvBody, _ := io.ReadAll(cresp.Body)
	cresp.Body.Close()
	wantCSV := "start,country,category,quantity,events\n2026-10-01T00:00:00Z,DE,marketing,4,2\n2026-10-01T00:00:00Z,FR,utility,1,1\n"
	if !strings.HasPrefix(cresp.Header.Get("Content-Type"), "text/csv") || string(csvBody) != wantCSV {
		t.Errorf("csv %q %q", cresp.Header.Get("Content-Type"), csvBody)
	}

	resp, body = s.do(t, auth.RoleFinance, "GET", "/api/v1/usage/summary?period=2026-10&group_by=customer,category", "", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	var sum httpapi.SummaryResponse
	if err := json.Unmarshal(body, &sum); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(sum.Data); got != "[{2026-10-01 00:00:00 +0000 UTC cust-a  marketing 4 2} {2026-10-01 00:00:00 +0000 UTC cust-a  utility 1 1} {2026-10-01 00:00:00 +0000 UTC cust-b  utility 1 1}]" {
		t.Errorf("summary %s", got)
	}
	if resp, _ := s.do(t, auth.RoleCustomer, "GET", "/api/v1/usage/summary", "", nil); resp.StatusCode != 403 {
		t.Errorf("customer reading summary: %d", resp.StatusCode)
	}
	if resp, body := s.do(t, auth.RoleFinance, "GET", "/api/v1/usage/summary?period=2026-13", "", nil); resp.StatusCode != 400 {
		t.Errorf("bad period: %d %s", resp.StatusCode, body)
	}
}

// storedEvents reads the stored rows of event id: customer, id, Unix time,
// source and status, one line each.
func storedEvents(t *testing.T, s *stack, id string) string {
	t.Helper()
	rows, err := s.App.CH.Query(context.Background(), "SELECT customer_id, id, toUInt32(time), source, status FROM events WHERE id = '"+id+"' ORDER BY customer_id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var cust, eid, source, status string
		var sec uint32
		if err := rows.Scan(&cust, &eid, &sec, &source, &status); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s %s %d %s %s", cust, eid, sec, source, status))
	}
	return strings.Join(out, "\n")
}

// aggregatesString is the aggregates, sorted, as "customer country
// category [pricing type] [pricing model] quantity/events" joined by
// commas.
func aggregatesString(a []metering.Aggregate) string {
	var out []string
	for _, x := range sortedAggregates(a) {
		dims := []string{x.CustomerID, x.Country, x.Category}
		for _, d := range []string{x.PricingType, x.PricingModel} {
			if d != "" {
				dims = append(dims, d)
			}
		}
		out = append(out, fmt.Sprintf("%s %d/%d", strings.Join(dims, " "), x.Quantity, x.Events))
	}
	return strings.Join(out, ", ")
}

// sortedAggregates orders aggregates by customer, country and category:
// MonthlyAggregates answers in no particular order.
func sortedAggregates(a []metering.Aggregate) []metering.Aggregate {
	slices.SortFunc(a, func(x, y metering.Aggregate) int {
		return cmp.Or(cmp.Compare(x.CustomerID, y.CustomerID), cmp.Compare(x.Country, y.Country), cmp.Compare(x.Category, y.Category),
			cmp.Compare(x.PricingType, y.PricingType), cmp.Compare(x.PricingModel, y.PricingModel))
	})
	return a
}
