package metering

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"postage"
)

type resolverMap map[string]string

func (m resolverMap) CustomerForPhoneNumber(_ context.Context, id string) (string, bool, error) {
	c, ok := m[id]
	return c, ok, nil
}

func waBody(pnid string, statuses ...string) []byte {
	return []byte(fmt.Sprintf(`{"object":"whatsapp_business_account","entry":[{"id":"WABA","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550001","phone_number_id":%q},"statuses":[%s]}}]}]}`,
		pnid, strings.Join(statuses, ",")))
}

func waStatusJSON(id, status string, ts int64, billable bool, cat string) string {
	return fmt.Sprintf(`{"id":%q,"status":%q,"timestamp":"%d","recipient_id":"4915123456789","conversation":{"id":"c"},"pricing":{"billable":%v,"pricing_model":"PMP","category":%q}}`,
		id, status, ts, billable, cat)
}

func TestSignature(t *testing.T) {
	body := []byte(`{"a":1}`)
	sig := SignBody("secret", body)
	if !VerifySignature("secret", sig, body) {
		t.Error("good signature refused")
	}
	for _, bad := range []string{"", "sha256=", "sha256=zz", sig[:len(sig)-2] + "00", strings.TrimPrefix(sig, "sha256=")} {
		if VerifySignature("secret", bad, body) {
			t.Errorf("bad signature %q accepted", bad)
		}
	}
	if VerifySignature("other", sig, body) || VerifySignature("", sig, body) {
		t.Error("wrong secret accepted")
	}
}

// waPricedStatus is a status with a pricing object of the given fields
// (raw JSON members, e.g. `"type":"regular","category":"marketing"`).
func waPricedStatus(id, status string, ts int64, pricing string) string {
	return fmt.Sprintf(`{"id":%q,"status":%q,"timestamp":"%d","recipient_id":"4915123456789","pricing":{%s}}`, id, status, ts, pricing)
}

// TestWebhookPricing checks how each status becomes an event (or not) with
// the default billable status, delivered.
func TestWebhookPricing(t *testing.T) {
	ts := testNow.Add(-time.Minute).Unix()
	at := time.Unix(ts, 0).UTC()
	regular := `"billable":true,"pricing_model":"PMP","type":"regular","category":"marketing"`
	tests := []struct {
		name   string
		status string
		want   Event  // CustomerID, ID and Time are filled in
		result Result // for a status that is not an event
	}{
		{"delivered", waPricedStatus("w", "delivered", ts, regular),
			Event{Country: "DE", Category: "marketing", Quantity: 1, PricingType: PricingRegular, PricingModel: "PMP", Source: SourceWhatsApp, Status: StatusDelivered}, Result{}},
		{"read implies delivered", waPricedStatus("w", "read", ts, regular),
			Event{Country: "DE", Category: "marketing", Quantity: 1, PricingType: PricingRegular, PricingModel: "PMP", Source: SourceWhatsApp, Status: StatusRead}, Result{}},
		{"sent is not billable yet", waPricedStatus("w", "sent", ts, regular), Event{}, Result{Status: Ignored}},
		{"failed", waPricedStatus("w", "failed", ts, regular), Event{}, Result{Status: Ignored}},
		{"no pricing", `{"id":"w","status":"delivered","timestamp":"1","recipient_id":"4915123456789"}`, Event{}, Result{Status: Ignored}},
		{"null pricing", `{"id":"w","status":"read","timestamp":"1","recipient_id":"4915123456789","pricing":null}`, Event{}, Result{Status: Ignored}},
		{"a category no card knows is stored as sent", waPricedStatus("w", "delivered", ts, `"billable":true,"pricing_model":"PMP","type":"regular","category":"marketing_lite"`),
			Event{Country: "DE", Category: "marketing_lite", Quantity: 1, PricingType: PricingRegular, PricingModel: "PMP", Source: SourceWhatsApp, Status: StatusDelivered}, Result{}},
		{"free customer service", waPricedStatus("w", "delivered", ts, `"billable":false,"pricing_model":"PMP","type":"free_customer_service","category":"service"`),
			Event{Country: "DE", Category: "service", Quantity: 1, PricingType: PricingFreeCustomerService, PricingModel: "PMP", Source: SourceWhatsApp, Status: StatusDelivered}, Result{}},
		{"free entry point of any category", waPricedStatus("w", "delivered", ts, `"pricing_model":"PMP","type":"free_entry_point","category":"utility"`),
			Event{Country: "DE", Category: "utility", Quantity: 1, PricingType: PricingFreeEntryPoint, PricingModel: "PMP", Source: SourceWhatsApp, Status: StatusDelivered}, Result{}},
		{"billable false without a type", waPricedStatus("w", "delivered", ts, `"billable":false,"pricing_model":"CBP","category":"marketing"`),
			Event{Country: "DE", Category: "marketing", Quantity: 1, PricingType: PricingFreeCustomerService, PricingModel: "CBP", Source: SourceWhatsApp, Status: StatusDelivered}, Result{}},
		{"billable false, referral conversion", waPricedStatus("w", "delivered", ts, `"billable":false,"pricing_model":"CBP","category":"referral_conversion"`),
			Event{Country: "DE", Category: "referral_conversion", Quantity: 1, PricingType: PricingFreeEntryPoint, PricingModel: "CBP", Source: SourceWhatsApp, Status: StatusDelivered}, Result{}},
		{"the type wins over billable", waPricedStatus("w", "delivered", ts, `"billable":false,"type":"regular","category":"utility"`),
			Event{Country: "DE", Category: "utility", Quantity: 1, PricingType: PricingRegular, Source: SourceWhatsApp, Status: StatusDelivered}, Result{}},
		{"no billable, no type, no model", waPricedStatus("w", "delivered", ts, `"category":"utility"`),
			Event{Country: "DE", Category: "utility", Quantity: 1, PricingType: PricingRegular, Source: SourceWhatsApp, Status: StatusDelivered}, Result{}},
		{"an unknown pricing type is stored as sent", waPricedStatus("w", "delivered", ts, `"type":"free_something","category":"utility"`),
			Event{Country: "DE", Category: "utility", Quantity: 1, PricingType: "free_something", Source: SourceWhatsApp, Status: StatusDelivered}, Result{}},
		{"timestamp as a number", strings.Replace(waPricedStatus("w", "delivered", ts, regular), fmt.Sprintf(`"%d"`, ts), fmt.Sprint(ts), 1),
			Event{Country: "DE", Category: "marketing", Quantity: 1, PricingType: PricingRegular, PricingModel: "PMP", Source: SourceWhatsApp, Status: StatusDelivered}, Result{}},
		// Every bad field rejects its status, never the delivery.
		{"no category", waPricedStatus("w", "delivered", ts, `"type":"regular"`), Event{}, Result{Status: Rejected, Field: "statuses.pricing.category", Reason: ReasonMissing}},
		{"NUL in the category", waPricedStatus("w", "delivered", ts, `"category":"mark\u0000eting"`), Event{}, Result{Status: Rejected, Field: "statuses.pricing.category", Reason: ReasonInvalid}},
		{"invalid UTF-8 in the category", waPricedStatus("w", "delivered", ts, "\"category\":\"mark\xffeting\""), Event{}, Result{Status: Rejected, Field: "statuses.pricing.category", Reason: ReasonInvalid}},
		{"a long category", waPricedStatus("w", "delivered", ts, `"category":"`+strings.Repeat("m", 65)+`"`), Event{}, Result{Status: Rejected, Field: "statuses.pricing.category", Reason: ReasonTooLong}},
		{"category of another type", waPricedStatus("w", "delivered", ts, `"category":7`), Event{}, Result{Status: Rejected, Field: "statuses.pricing.category", Reason: ReasonBadType}},
		{"billable of another type", waPricedStatus("w", "delivered", ts, `"billable":"yes","category":"utility"`), Event{}, Result{Status: Rejected, Field: "statuses.pricing.billable", Reason: ReasonBadType}},
		{"control character in the type", waPricedStatus("w", "delivered", ts, `"type":"regular\n","category":"utility"`), Event{}, Result{Status: Rejected, Field: "statuses.pricing.type", Reason: ReasonInvalid}},
		{"model of another type", waPricedStatus("w", "delivered", ts, `"pricing_model":["PMP"],"category":"utility"`), Event{}, Result{Status: Rejected, Field: "statuses.pricing.pricing_model", Reason: ReasonBadType}},
		{"pricing of another type", `{"id":"w","status":"delivered","timestamp":"1","recipient_id":"4915123456789","pricing":"PMP"}`, Event{}, Result{Status: Rejected, Field: "statuses.pricing", Reason: ReasonBadType}},
		{"invalid UTF-8 in the wamid", "{\"id\":\"w\xff\",\"status\":\"delivered\",\"timestamp\":\"1\",\"pricing\":{\"category\":\"utility\"}}", Event{}, Result{Status: Rejected, Field: "statuses.id", Reason: ReasonInvalid}},
		{"wamid of another type", `{"id":12,"status":"delivered","timestamp":"1","pricing":{"category":"utility"}}`, Event{}, Result{Status: Rejected, Field: "statuses.id", Reason: ReasonBadType}},
		{"status of another type", `{"id":"w","status":{},"timestamp":"1","pricing":{"category":"utility"}}`, Event{}, Result{Status: Rejected, Field: "statuses.status", Reason: ReasonBadType}},
		{"timestamp not a number", `{"id":"w","status":"delivered","timestamp":"soon","recipient_id":"4915123456789","pricing":{"category":"utility"}}`, Event{}, Result{Status: Rejected, Field: "statuses.timestamp", Reason: ReasonInvalid}},
		{"timestamp of another type", `{"id":"w","status":"delivered","timestamp":true,"pricing":{"category":"utility"}}`, Event{}, Result{Status: Rejected, Field: "statuses.timestamp", Reason: ReasonBadType}},
		{"recipient not a number", `{"id":"w","status":"delivered","timestamp":"` + fmt.Sprint(ts) + `","recipient_id":"abc","pricing":{"category":"utility"}}`, Event{}, Result{Status: Rejected, Field: "statuses.recipient_id", Reason: ReasonBadNumber}},
		{"NUL in the recipient", `{"id":"w","status":"delivered","timestamp":"` + fmt.Sprint(ts) + `","recipient_id":"49151\u0000","pricing":{"category":"utility"}}`, Event{}, Result{Status: Rejected, Field: "statuses.recipient_id", Reason: ReasonInvalid}},
		{"not an object", `"delivered"`, Event{}, Result{Status: Rejected, Reason: ReasonNotAnObject}},
	}
	good := waPricedStatus("wamid.good", "delivered", ts, regular)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The status sits between two good ones, which must survive.
			d, err := testRules().DecodeWebhook(context.Background(), waBody("PN1", good, tt.status, good), resolverMap{"PN1": "cust-1"})
			if err != nil {
				t.Fatal(err)
			}
			if len(d.Results) != 3 || d.Results[0].Status != "" || d.Results[2].Status != "" {
				t.Fatalf("neighbours: %+v", d.Results)
			}
			got := d.Results[1]
			if tt.result.Status != "" {
				want := tt.result
				want.Index = 1
				if tt.result.Reason != ReasonNotAnObject && got.Field != "statuses.id" {
					want.ID = "w"
				}
				if got != want || len(d.Events) != 2 {
					t.Errorf("got %+v (%d events), want %+v", got, len(d.Events), want)
				}
				return
			}
			if got.Status != "" || len(d.Events) != 3 {
				t.Fatalf("got %+v, want an event", got)
			}
			want := tt.want
			want.CustomerID, want.ID, want.Time = "cust-1", "w", at
			want.PayloadHash = HashStatusPayload(want.Country, want.Category, 1, want.PricingType, want.PricingModel)
			if ev := d.Events[1]; ev != want {
				t.Errorf("got  %+v\nwant %+v", ev, want)
			}
		})
	}
}

// TestWebhookStatusesCountOnce checks that the statuses of one message are
// one event, with the time of the billable status, and that what the
// upstream says it costs is part of the payload.
func TestWebhookStatusesCountOnce(t *testing.T) {
	ts := testNow.Add(-time.Minute).Unix()
	regular := `"billable":true,"pricing_model":"PMP","type":"regular","category":"marketing"`
	body := waBody("PN1",
		waPricedStatus("wamid.A", "sent", ts, regular),
		waPricedStatus("wamid.A", "delivered", ts+5, regular),
		waPricedStatus("wamid.A", "read", ts+60, regular),
		waPricedStatus("wamid.A", "read", ts+60, `"billable":true,"pricing_model":"PMP","type":"free_entry_point","category":"marketing"`),
		waPricedStatus("wamid.A", "read", ts+60, `"billable":true,"pricing_model":"CBP","type":"regular","category":"marketing"`),
		waPricedStatus("wamid.A", "read", ts+60, `"billable":true,"pricing_model":"PMP","type":"regular","category":"marketing_lite"`),
	)
	for _, tt := range []struct {
		billable string
		status   []string // of each event
		time     time.Time
	}{
		{StatusDelivered, []string{StatusDelivered, StatusRead, StatusRead, StatusRead, StatusRead}, time.Unix(ts+5, 0).UTC()},
		{StatusSent, []string{StatusSent, StatusDelivered, StatusRead, StatusRead, StatusRead, StatusRead}, time.Unix(ts, 0).UTC()},
	} {
		r := testRules()
		r.BillableStatus = tt.billable
		d, err := r.DecodeWebhook(context.Background(), body, resolverMap{"PN1": "cust-1"})
		if err != nil {
			t.Fatal(err)
		}
		if len(d.Events) != len(tt.status) {
			t.Fatalf("%s: %d events: %+v", tt.billable, len(d.Events), d.Results)
		}
		for i, ev := range d.Events {
			if ev.Status != tt.status[i] {
				t.Errorf("%s: event %d status %q, want %q", tt.billable, i, ev.Status, tt.status[i])
			}
		}
		if d.Events[0].Time != tt.time {
			t.Errorf("%s: the message's time is %v, want %v", tt.billable, d.Events[0].Time, tt.time)
		}
		n := len(d.Events)
		first := d.Events[0].PayloadHash
		for i := 1; i < n-3; i++ {
			if d.Events[i].PayloadHash != first {
				t.Errorf("%s: the statuses of one message hash differently", tt.billable)
			}
		}
		for i := n - 3; i < n; i++ { // another pricing type, model, category: a conflict
			if d.Events[i].PayloadHash == first {
				t.Errorf("%s: status %d priced differently has the same payload hash", tt.billable, i)
			}
		}
	}
}

// TestWebhookFailedAfterSent checks the billable status setting over a
// message's life: with the default (delivered) a message that fails after
// sent is never an event, and a message sent on the last second of
// September and delivered in October is October's; with sent, both are
// September's (wamid.D's delivered status is then a duplicate of its sent
// one: same payload hash, dropped at ingest).
func TestWebhookFailedAfterSent(t *testing.T) {
	sent := time.Date(2026, 9, 30, 23, 59, 58, 0, time.UTC).Unix()
	regular := `"billable":true,"pricing_model":"PMP","type":"regular","category":"marketing"`
	body := waBody("PN1",
		waPricedStatus("wamid.F", "sent", sent, regular),
		waPricedStatus("wamid.F", "failed", sent+3, regular),
		waPricedStatus("wamid.D", "sent", sent, regular),
		waPricedStatus("wamid.D", "delivered", sent+5, regular),
	)
	for _, tt := range []struct {
		billable string // "": the default
		want     []string
	}{
		{"", []string{"wamid.D 2026-10-01T00:00:03Z delivered"}},
		{StatusSent, []string{"wamid.F 2026-09-30T23:59:58Z sent", "wamid.D 2026-09-30T23:59:58Z sent", "wamid.D 2026-10-01T00:00:03Z delivered"}},
	} {
		r := testRules()
		r.BillableStatus = tt.billable
		d, err := r.DecodeWebhook(context.Background(), body, resolverMap{"PN1": "cust-1"})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, ev := range d.Events {
			got = append(got, ev.ID+" "+ev.Time.Format(time.RFC3339)+" "+ev.Status)
		}
		if strings.Join(got, "; ") != strings.Join(tt.want, "; ") {
			t.Errorf("billable status %q: events %q, want %q", tt.billable, got, tt.want)
		}
	}
}

// TestWebhookBadChangesRejectTheirStatuses checks that a phone number id or
// a change that cannot be read rejects its own statuses, in a delivery
// whose other statuses are kept; and that the look-up is never asked for
// an id that is not text (PostgreSQL refuses a NUL with an error, which
// answered 503, and the platform re-sent the delivery for ever).
func TestWebhookBadChangesRejectTheirStatuses(t *testing.T) {
	ts := testNow.Add(-time.Minute).Unix()
	st := func(id string) string {
		return waPricedStatus(id, "delivered", ts, `"pricing_model":"PMP","type":"regular","category":"utility"`)
	}
	change := func(metadata string, statuses ...string) string {
		return `{"field":"messages","value":{"messaging_product":"whatsapp","metadata":` + metadata + `,"statuses":[` + strings.Join(statuses, ",") + `]}}`
	}
	body := `{"object":"whatsapp_business_account","entry":[{"id":"W","changes":[` + strings.Join([]string{
		change(`{"phone_number_id":"PN1"}`, st("a1")),
		change(`{"phone_number_id":"PN\u0000"}`, st("b1"), waPricedStatus("b2", "sent", ts, `"category":"utility"`)),
		change(`{"phone_number_id":"PN`+"\xff"+`"}`, st("c1")),
		change(`{"phone_number_id":1001}`, st("d1")),
		change(`{"phone_number_id":""}`, st("e1")),
		change(`{"phone_number_id":"`+strings.Repeat("9", 200)+`"}`, st("f1")),
		change(`"PN1"`, st("g1")),
		`{"field":"messages","value":"oops"}`,
		`{"field":"messages","value":{"statuses":{"id":"x"}}}`,
		`7`,
		change(`{"phone_number_id":"PN2"}`, st("h1")),
		`{"field":"messages","value":{"messages":[{"id":"in"}]}}`,
	}, ",") + `]},{"id":"X","changes":{}},"entry"]}`
	calls := map[string]int{}
	resolve := resolverFunc(func(id string) (string, bool) {
		calls[id]++
		if !isText(id) {
			t.Errorf("look-up asked for %q", id)
		}
		return map[string]string{"PN1": "cust-1", "PN2": "cust-2"}[id], id != "PN9"
	})
	d, err := testRules().DecodeWebhook(context.Background(), []byte(body), resolve)
	if err != nil {
		t.Fatal(err)
	}
	want := []Result{
		{Index: 0, ID: "a1"},
		{Index: 1, ID: "b1", Status: Rejected, Field: "metadata.phone_number_id", Reason: ReasonInvalid},
		{Index: 2, ID: "b2", Status: Ignored},
		{Index: 3, ID: "c1", Status: Rejected, Field: "metadata.phone_number_id", Reason: ReasonInvalid},
		{Index: 4, ID: "d1", Status: Rejected, Field: "metadata.phone_number_id", Reason: ReasonBadType},
		{Index: 5, ID: "e1", Status: Rejected, Field: "metadata.phone_number_id", Reason: ReasonMissing},
		{Index: 6, ID: "f1", Status: Rejected, Field: "metadata.phone_number_id", Reason: ReasonTooLong},
		{Index: 7, ID: "g1", Status: Rejected, Field: "metadata", Reason: ReasonNotAnObject},
		{Index: 8, Status: Rejected, Field: "entry[0].changes[7].value", Reason: ReasonNotAnObject},
		{Index: 9, Status: Rejected, Field: "entry[0].changes[8].value.statuses", Reason: ReasonBadType},
		{Index: 10, Status: Rejected, Field: "entry[0].changes[9]", Reason: ReasonNotAnObject},
		{Index: 11, ID: "h1"},
		{Index: 12, Status: Rejected, Field: "entry[1].changes", Reason: ReasonBadType},
		{Index: 13, Status: Rejected, Field: "entry[2]", Reason: ReasonNotAnObject},
	}
	if !slices.Equal(d.Results, want) {
		t.Errorf("results\n got %+v\nwant %+v", d.Results, want)
	}
	if len(d.Events) != 2 || d.Events[0].CustomerID != "cust-1" || d.Events[1].CustomerID != "cust-2" || !slices.Equal(d.Index, []int{0, 11}) {
		t.Errorf("events %+v index %v", d.Events, d.Index)
	}
	if len(calls) != 2 || calls["PN1"] != 1 || calls["PN2"] != 1 {
		t.Errorf("look-ups %v, want PN1 and PN2 once each", calls)
	}
	// Whole-delivery errors: only a body that is not a webhook at all.
	for _, bad := range []string{`[]`, `{"object":"page","entry":[]}`, `{"object":5}`, `{"object":"whatsapp_business_account"`, ``} {
		if _, err := testRules().DecodeWebhook(context.Background(), []byte(bad), resolve); postage.ErrorCode(err) != postage.EINVALID {
			t.Errorf("%q: %v, want %s", bad, err, postage.EINVALID)
		}
	}
	// A phone number id that is not known keeps the usage under a
	// placeholder customer; a failed look-up fails the delivery (503: the
	// platform re-sends it).
	d, err = testRules().DecodeWebhook(context.Background(), waBody("PN9", st("z1")), resolve)
	if err != nil || len(d.Events) != 1 || d.Events[0].CustomerID != "unknown:PN9" {
		t.Fatalf("unknown phone number: %v %+v", err, d)
	}
	failing := resolverFunc(func(string) (string, bool) { panic("unused") })
	if _, err := testRules().DecodeWebhook(context.Background(), waBody("PN1", waPricedStatus("s", "sent", ts, `"category":"utility"`)), failing); err != nil {
		t.Errorf("a delivery without billable statuses looked its phone number up: %v", err)
	}
}

// resolverFunc resolves phone number ids with a function.
type resolverFunc func(id string) (string, bool)

func (f resolverFunc) CustomerForPhoneNumber(_ context.Context, id string) (string, bool, error) {
	c, ok := f(id)
	return c, ok, nil
}

func TestWebhookIngestOnce(t *testing.T) {
	in := NewIngester(newStore(t), IngesterConfig{})
	defer in.Close()
	r := DefaultRules()
	ts := r.Now().Add(-time.Minute).Unix()
	for i, tt := range []struct {
		status string
		want   []Status
	}{
		{"sent", nil}, // ignored: not billable until delivered
		{"delivered", []Status{Accepted}},
		{"read", []Status{Duplicate}},
	} {
		d, err := r.DecodeWebhook(context.Background(), waBody("PN1", waStatusJSON("wamid.A", tt.status, ts+int64(i), true, "utility")), resolverMap{"PN1": "c"})
		if err != nil {
			t.Fatal(err)
		}
		var got []Status
		if len(d.Events) > 0 {
			if got, err = in.Submit(context.Background(), d.Events); err != nil {
				t.Fatal(err)
			}
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: %v, want %v", tt.status, got, tt.want)
		}
	}
}

// FuzzDecodeWebhook checks that no delivery panics the decoder or fails it
// for anything but a body that is not a webhook, that the phone number
// look-up only ever sees text, and that every event is well formed.
func FuzzDecodeWebhook(f *testing.F) {
	ts := testNow.Add(-time.Minute).Unix()
	f.Add(waBody("PN1", waStatusJSON("wamid.A", "delivered", ts, true, "marketing"), waStatusJSON("wamid.B", "read", ts, false, "marketing_lite")))
	f.Add(waBody("PN\x00", waStatusJSON("wamid.A", "delivered", ts, true, "marketing")))
	f.Add(waBody("PN1", waPricedStatus("w\xff", "delivered", ts, `"billable":"x","type":7,"category":"utility"`), `"x"`, `{"pricing":[]}`))
	f.Add([]byte(`{"object":"whatsapp_business_account","entry":[{"changes":[{"value":{"metadata":5,"statuses":{}}},7]},null,"x"]}`))
	r := testRules()
	f.Fuzz(func(t *testing.T, body []byte) {
		resolve := resolverFunc(func(id string) (string, bool) {
			if !isText(id) || id == "" {
				t.Fatalf("look-up asked for %q", id)
			}
			return "cust-" + id, len(id)%2 == 0
		})
		d, err := r.DecodeWebhook(context.Background(), body, resolve)
		if err != nil {
			if c := postage.ErrorCode(err); c != postage.EINVALID {
				t.Fatalf("error %q: %v", c, err)
			}
			return
		}
		if len(d.Events) != len(d.Index) || len(d.Events) > len(d.Results) {
			t.Fatalf("%d events, %d indexes, %d results", len(d.Events), len(d.Index), len(d.Results))
		}
		for i, ev := range d.Events {
			if !isText(ev.ID) || ev.ID == "" || !isText(ev.CustomerID) || ev.CustomerID == "" || !isText(ev.Category) || ev.Category == "" ||
				!isText(ev.PricingType) || ev.PricingType == "" || !isText(ev.PricingModel) || len(ev.Country) != 2 || ev.Quantity != 1 ||
				ev.Source != SourceWhatsApp || (ev.Status != StatusDelivered && ev.Status != StatusRead) {
				t.Fatalf("bad event %+v", ev)
			}
			if res := d.Results[d.Index[i]]; res.Status != "" || res.ID != ev.ID {
				t.Fatalf("event %+v has result %+v", ev, res)
			}
		}
		for i, res := range d.Results {
			if res.Index != i {
				t.Fatalf("result %d has index %d", i, res.Index)
			}
		}
	})
}
