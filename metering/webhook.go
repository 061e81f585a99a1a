package metering

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"postage"
)

// PhoneNumberResolver maps a WhatsApp Cloud API phone_number_id (the
// business's sending number) to the customer that owns it. The app wires
// billing's customer store; ok is false for unknown ids.
type PhoneNumberResolver interface {
	CustomerForPhoneNumber(ctx context.Context, phoneNumberID string) (customerID string, ok bool, err error)
}

// UnknownCustomerPrefix prefixes the customer id under which events of an
// unmapped phone_number_id are stored ("unknown:<phone_number_id>"), so the
// usage is kept and shows up as unbilled in reports instead of being lost.
const UnknownCustomerPrefix = "unknown:"

// FreeCategory is where non-billable messages (pricing.billable false) are
// metered: a category rate cards price at zero.
const FreeCategory = "service"

// VerifySignature checks a webhook's X-Hub-Signature-256 header
// ("sha256=<hex HMAC-SHA256 of the raw body with the app secret>") in
// constant time.
func VerifySignature(appSecret, header string, body []byte) bool {
	hexSig, ok := strings.CutPrefix(header, "sha256=")
	if !ok || appSecret == "" {
		return false
	}
	sig, err := hex.DecodeString(hexSig)
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, []byte(appSecret))
	mac.Write(body)
	return hmac.Equal(sig, mac.Sum(nil))
}

// SignBody returns the X-Hub-Signature-256 header value for body, as the
// platform computes it (used by tests and the benchmark).
func SignBody(appSecret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(appSecret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

type waWebhook struct {
	Object string `json:"object"`
	Entry  []struct {
		ID      string `json:"id"`
		Changes []struct {
			Field string `json:"field"`
			Value struct {
				Metadata struct {
					PhoneNumberID string `json:"phone_number_id"`
				} `json:"metadata"`
				Statuses []waStatus `json:"statuses"`
			} `json:"value"`
		} `json:"changes"`
	} `json:"entry"`
}

type waStatus struct {
	ID          string `json:"id"`
	Status      string `json:"status"`
	Timestamp   string `json:"timestamp"`
	RecipientID string `json:"recipient_id"`
	Pricing     *struct {
		Billable *bool  `json:"billable"`
		Category string `json:"category"`
	} `json:"pricing"`
}

// DecodeWebhook turns a WhatsApp Cloud API status webhook into events.
//
// Each status of a message (sent, delivered, read) becomes the same event:
// id = the wamid, customer = the owner of metadata.phone_number_id, country
// from recipient_id, category from pricing.category (FreeCategory when
// pricing.billable is false), quantity 1, and a payload hash that leaves the
// status timestamp out, so the later statuses are duplicates of the first
// and the message counts once. The stored time is that of the first status
// stored. Statuses without pricing (failed, deleted, most read receipts) are
// Ignored. Results are indexed in the order statuses appear in the body.
func (r *Rules) DecodeWebhook(ctx context.Context, body []byte, resolve PhoneNumberResolver) (*Decoded, error) {
	r.init()
	var w waWebhook
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, malformed(err)
	}
	if w.Object != "whatsapp_business_account" {
		return nil, postage.Errorf(postage.EINVALID, "object %q is not whatsapp_business_account", w.Object)
	}
	d := &Decoded{}
	customers := map[string]string{}
	for _, e := range w.Entry {
		for _, c := range e.Changes {
			pnid := c.Value.Metadata.PhoneNumberID
			for _, st := range c.Value.Statuses {
				i := len(d.Results)
				d.Results = append(d.Results, Result{Index: i, ID: st.ID})
				cust, ok := customers[pnid]
				if !ok {
					var err error
					cust, err = customerOf(ctx, resolve, pnid)
					if err != nil {
						return nil, err
					}
					customers[pnid] = cust
				}
				ev, field, reason := r.webhookEvent(cust, pnid, &st)
				res := &d.Results[i]
				switch {
				case reason == string(Ignored):
					res.Status = Ignored
				case reason != "":
					res.Status, res.Field, res.Reason = Rejected, field, reason
				default:
					d.Events = append(d.Events, ev)
					d.Index = append(d.Index, i)
				}
			}
		}
	}
	return d, nil
}

func customerOf(ctx context.Context, resolve PhoneNumberResolver, pnid string) (string, error) {
	if pnid == "" || resolve == nil {
		return UnknownCustomerPrefix + pnid, nil
	}
	cust, ok, err := resolve.CustomerForPhoneNumber(ctx, pnid)
	if err != nil {
		return "", fmt.Errorf("resolve phone number id %s: %w", pnid, err)
	}
	if !ok {
		return UnknownCustomerPrefix + pnid, nil
	}
	return cust, nil
}

func (r *Rules) webhookEvent(cust, pnid string, st *waStatus) (ev Event, field, reason string) {
	switch st.Status {
	case "sent", "delivered", "read":
	default:
		return ev, "", string(Ignored)
	}
	if st.Pricing == nil || st.Pricing.Category == "" {
		return ev, "", string(Ignored)
	}
	if reason := r.checkID(st.ID); reason != "" {
		return ev, "statuses.id", reason
	}
	if pnid == "" {
		return ev, "metadata.phone_number_id", ReasonMissing
	}
	if len(cust) > r.MaxIDLen {
		return ev, "metadata.phone_number_id", ReasonTooLong
	}
	sec, err := strconv.ParseInt(st.Timestamp, 10, 64)
	if err != nil {
		return ev, "statuses.timestamp", ReasonInvalid
	}
	t := time.Unix(sec, 0).UTC()
	if reason := r.checkTime(t, r.Now()); reason != "" {
		return ev, "statuses.timestamp", reason
	}
	country, ok := CountryOfNumber("+" + st.RecipientID)
	if !ok {
		return ev, "statuses.recipient_id", ReasonBadNumber
	}
	cat := FreeCategory
	if st.Pricing.Billable == nil || *st.Pricing.Billable {
		cat = r.category(st.Pricing.Category)
		if cat == "" {
			return ev, "statuses.pricing.category", ReasonUnknownCat
		}
	}
	ev = Event{CustomerID: cust, ID: st.ID, Time: t, Country: country, Category: cat, Quantity: 1}
	ev.PayloadHash = HashPayload(t, false, country, cat, 1)
	return ev, "", ""
}
