package metering

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
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

func TestWebhookStatusesCountOnce(t *testing.T) {
	r := testRules()
	ts := testNow.Add(-time.Minute).Unix()
	body := waBody("PN1",
		waStatusJSON("wamid.A", "sent", ts, true, "marketing"),
		waStatusJSON("wamid.A", "delivered", ts+5, true, "marketing"),
		waStatusJSON("wamid.A", "read", ts+60, true, "marketing"),
		waStatusJSON("wamid.B", "sent", ts, false, "service"),
		waStatusJSON("wamid.C", "sent", ts, false, "marketing"),
		`{"id":"wamid.D","status":"failed","timestamp":"1","recipient_id":"1"}`,
		waStatusJSON("wamid.E", "sent", ts, true, "bogus"),
	)
	d, err := r.DecodeWebhook(context.Background(), body, resolverMap{"PN1": "cust-1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Events) != 5 {
		t.Fatalf("%d events: %+v", len(d.Events), d.Results)
	}
	a := d.Events[0]
	if a.CustomerID != "cust-1" || a.Country != "DE" || a.Category != "marketing" || a.Quantity != 1 {
		t.Errorf("event %+v", a)
	}
	if d.Events[1].PayloadHash != a.PayloadHash || d.Events[2].PayloadHash != a.PayloadHash {
		t.Error("statuses of one message hash differently")
	}
	if d.Events[3].Category != FreeCategory || d.Events[4].Category != FreeCategory {
		t.Error("non-billable not metered as free category")
	}
	if d.Results[5].Status != Ignored || d.Results[6].Status != Rejected || d.Results[6].Reason != ReasonUnknownCat {
		t.Errorf("results %+v", d.Results[5:])
	}
	// An unknown phone number id keeps the usage under a placeholder customer.
	d, err = r.DecodeWebhook(context.Background(), waBody("PN9", waStatusJSON("wamid.Z", "sent", ts, true, "utility")), resolverMap{})
	if err != nil || len(d.Events) != 1 || d.Events[0].CustomerID != "unknown:PN9" {
		t.Fatalf("unknown phone number: %v %+v", err, d)
	}
}

func TestWebhookIngestOnce(t *testing.T) {
	conn := newCH(t)
	in := NewIngester(NewCHStore(conn), IngesterConfig{})
	defer in.Close()
	r := DefaultRules()
	ts := r.Now().Add(-time.Minute).Unix()
	for i, st := range []string{"sent", "delivered", "read"} {
		d, err := r.DecodeWebhook(context.Background(), waBody("PN1", waStatusJSON("wamid.A", st, ts+int64(i), true, "utility")), resolverMap{"PN1": "c"})
		if err != nil {
			t.Fatal(err)
		}
		got, err := in.Submit(context.Background(), d.Events)
		if err != nil {
			t.Fatal(err)
		}
		want := []Status{Duplicate}
		if i == 0 {
			want = []Status{Accepted}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: %v, want %v", st, got, want)
		}
	}
}
