package httpapi_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"postage/internal/auth"
	"postage/metering"
)

// TestCloudEventsSDKClient sends events with the official Go SDK, in the
// binary content mode it uses by default, in structured mode and in a
// batch, and checks what is stored: an accepted event, a duplicate, a
// conflict and a rejected event in each mode.
func TestCloudEventsSDKClient(t *testing.T) {
	s := newMeteringStack(t, meterNow)
	url := s.URL + "/api/v1/events"
	bearer := "Bearer " + s.Keys[auth.RoleIngest]
	client, err := cloudevents.NewClientHTTP(cehttp.WithTarget(url), cehttp.WithHeader("Authorization", bearer))
	if err != nil {
		t.Fatal(err)
	}
	event := func(id, subject string, data map[string]any) cloudevents.Event {
		e := cloudevents.NewEvent()
		e.SetID(id)
		e.SetSource("/sdk-test")
		e.SetType(metering.EventType)
		e.SetSubject(subject)
		e.SetTime(time.Date(2026, 10, 31, 12, 0, 0, 0, time.UTC))
		if err := e.SetData(cloudevents.ApplicationJSON, data); err != nil {
			t.Fatal(err)
		}
		return e
	}
	// send sends e with the SDK's client and returns the HTTP status.
	send := func(ctx context.Context, e cloudevents.Event) int {
		t.Helper()
		res := client.Send(ctx, e)
		if cloudevents.IsACK(res) {
			return 200
		}
		var hr *cehttp.Result
		if !cloudevents.ResultAs(res, &hr) {
			t.Fatalf("send %s: %v", e.ID(), res)
		}
		return hr.StatusCode
	}
	// request encodes with the SDK and sends with net/http, to read the
	// answer's body (the SDK's client does not return it).
	request := func(req *http.Request, err error) (string, int, string) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", bearer)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return req.Header.Get("Content-Type"), resp.StatusCode, string(b)
	}
	ctx := context.Background()
	structured := cloudevents.WithEncodingStructured(ctx)
	de := map[string]any{"to": "+4915123456789", "category": "marketing"}
	fr := map[string]any{"country": "FR", "category": "utility", "quantity": 3}

	// Binary mode, the SDK's default.
	if got := send(ctx, event("b1", "cust-a", de)); got != 200 {
		t.Errorf("binary: %d", got)
	}
	ct, status, body := request(cehttp.NewHTTPRequestFromEvent(ctx, url, event("b1", "cust-a", de)))
	if ct != "application/json" || status != 200 || !strings.Contains(body, `"duplicate":1`) {
		t.Errorf("binary duplicate: %s %d %s", ct, status, body)
	}
	if got := send(ctx, event("b1", "cust-a", fr)); got != 409 {
		t.Errorf("binary conflict: %d, want 409", got)
	}
	_, status, body = request(cehttp.NewHTTPRequestFromEvent(ctx, url, event("b2", "cust-a", map[string]any{"country": "DE", "category": "promo"})))
	if status != 400 || !strings.Contains(body, `"field":"data.category","reason":"unknown_category"`) {
		t.Errorf("binary rejected: %d %s", status, body)
	}
	// Non-ASCII attributes as this SDK sends them (raw UTF-8, not
	// percent-encoded).
	if got := send(ctx, event("b3-é", "cust-a", fr)); got != 200 {
		t.Errorf("binary, non-ASCII id: %d", got)
	}

	// Structured mode.
	if got := send(structured, event("s1", "cust-b", fr)); got != 200 {
		t.Errorf("structured: %d", got)
	}
	ct, status, body = request(cehttp.NewHTTPRequestFromEvent(structured, url, event("s1", "cust-b", fr)))
	if !strings.HasPrefix(ct, "application/cloudevents+json") || status != 200 || !strings.Contains(body, `"duplicate":1`) {
		t.Errorf("structured duplicate: %s %d %s", ct, status, body)
	}
	if got := send(structured, event("s1", "cust-b", de)); got != 409 {
		t.Errorf("structured conflict: %d, want 409", got)
	}
	if got := send(structured, event("s2", "cust-b", map[string]any{"country": "DE", "category": "marketing", "quantity": "abc"})); got != 400 {
		t.Errorf("structured rejected: %d, want 400", got)
	}
	// The same event in the other mode is the same event.
	_, status, body = request(cehttp.NewHTTPRequestFromEvent(ctx, url, event("s1", "cust-b", fr)))
	if status != 200 || !strings.Contains(body, `"duplicate":1`) {
		t.Errorf("structured event re-sent in binary mode: %d %s", status, body)
	}

	// A batch.
	ct, status, body = request(cehttp.NewHTTPRequestFromEvents(ctx, url, []cloudevents.Event{
		event("c1", "cust-a", de), event("b1", "cust-a", de), event("c2", "cust-a", map[string]any{"to": "+999", "category": "utility"}), event("s1", "cust-b", de),
	}))
	want := `"results":[{"index":0,"id":"c1","status":"accepted"},{"index":1,"id":"b1","status":"duplicate"},` +
		`{"index":2,"id":"c2","status":"rejected","field":"data.to","reason":"bad_number"},{"index":3,"id":"s1","status":"conflict"}]`
	if ct != "application/cloudevents-batch+json" || status != 200 || !strings.Contains(body, want) {
		t.Errorf("batch: %s %d %s", ct, status, body)
	}

	aggs, err := s.App.Events.MonthlyAggregates(ctx, meterNow, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if got := aggregatesString(aggs); got != "cust-a DE marketing 2/2, cust-a FR utility 3/1, cust-b FR utility 3/1" {
		t.Errorf("aggregates %s", got)
	}
}

// TestEventsContentModes checks how POST /api/v1/events chooses the
// content mode, with requests written by hand: binary-mode header values
// are percent-decoded as the CloudEvents HTTP binding says.
func TestEventsContentModes(t *testing.T) {
	s := newMeteringStack(t, meterNow)
	post := func(h map[string]string, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("POST", s.URL+"/api/v1/events", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+s.Keys[auth.RoleIngest])
		for k, v := range h {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	attrs := func(kv ...string) map[string]string {
		h := map[string]string{"ce-specversion": "1.0", "ce-type": "message.sent", "ce-id": "m1", "ce-subject": "cust-a", "ce-time": "2026-10-31T12:00:00Z", "ce-source": "/x"}
		for i := 0; i < len(kv); i += 2 {
			h[kv[i]] = kv[i+1]
		}
		return h
	}
	data := `{"country":"DE","category":"utility"}`
	tests := []struct {
		name   string
		h      map[string]string
		body   string
		status int
		want   string
	}{
		{"binary", attrs("Content-Type", "application/json; charset=utf-8"), data, 200, `"id":"m1","status":"accepted"`},
		{"binary without a content type", attrs("ce-id", "m2"), data, 415, `unsupported_media_type`},
		{"binary with another JSON type", attrs("ce-id", "m3", "Content-Type", "application/vnd.example+json"), data, 415, `unsupported_media_type`},
		{"binary, percent-encoded id", attrs("ce-id", "m%204%E2%82%AC", "Content-Type", "application/json"), data, 200, `"id":"m 4€","status":"accepted"`},
		{"binary, bad percent-encoding", attrs("ce-id", "m%zz", "Content-Type", "application/json"), data, 400, `"field":"id","reason":"invalid"`},
		{"binary, percent-encoded NUL", attrs("ce-subject", "cust%00", "Content-Type", "application/json"), data, 400, `"field":"subject","reason":"invalid"`},
		{"binary, data not JSON", attrs("Content-Type", "text/plain"), "DE utility", 415, `unsupported_media_type`},
		{"binary, body not JSON", attrs("Content-Type", "application/json"), `{"country":`, 400, `malformed JSON`},
		{"binary, no data", attrs("ce-id", "m5", "Content-Type", "application/json"), ``, 400, `"field":"data","reason":"missing"`},
		{"structured wins over ce- headers", attrs("ce-id", "ignored", "Content-Type", "application/cloudevents+json"), cloudEvent("m6", "cust-a", "2026-10-31T12:00:00Z", data), 200, `"id":"m6","status":"accepted"`},
		{"application/json without ce- headers is structured", map[string]string{"Content-Type": "application/json"}, cloudEvent("m7", "cust-a", "2026-10-31T12:00:00Z", data), 200, `"id":"m7","status":"accepted"`},
		{"another event format", map[string]string{"Content-Type": "application/cloudevents+avro"}, "x", 415, `unsupported_media_type`},
		{"no content type, no ce- headers", map[string]string{}, data, 415, `unsupported_media_type`},
	}
	for _, tt := range tests {
		status, body := post(tt.h, tt.body)
		if status != tt.status || !strings.Contains(body, tt.want) {
			t.Errorf("%s: %d %s, want %d with %s", tt.name, status, body, tt.status, tt.want)
		}
	}
}
