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

// The webhook is decoded one level at a time (json.RawMessage below each),
// and every value the meter reads is a wireValue, so a bad field rejects
// the statuses it belongs to and never the delivery: the platform would
// re-send a delivery that failed, and its good statuses with it, for days.
type waWebhook struct {
	Object wireValue       `json:"object"`
	Entry  json.RawMessage `json:"entry"`
}

type waEntry struct {
	Changes json.RawMessage `json:"changes"`
}

type waChange struct {
	Value json.RawMessage `json:"value"`
}

type waValue struct {
	Metadata json.RawMessage `json:"metadata"`
	Statuses json.RawMessage `json:"statuses"`
}

type waMetadata struct {
	PhoneNumberID wireValue `json:"phone_number_id"`
}

type waStatus struct {
	ID          wireValue       `json:"id"`
	Status      wireValue       `json:"status"`
	Timestamp   wireValue       `json:"timestamp"`
	RecipientID wireValue       `json:"recipient_id"`
	Pricing     json.RawMessage `json:"pricing"`
}

type waPricing struct {
	Billable     wireValue `json:"billable"`
	PricingModel wireValue `json:"pricing_model"`
	Type         wireValue `json:"type"`
	Category     wireValue `json:"category"`
}

// maxPricingLen bounds the upstream's category, pricing type and model,
// which are stored as sent.
const maxPricingLen = 64

// DecodeWebhook turns a WhatsApp Cloud API status webhook into events
// (docs/METERING.md has the table of fields and rules).
//
// A status makes its message billable when its status is Rules.BillableStatus
// or a later one (delivered and read imply sent; read implies delivered)
// and it carries a pricing object; other statuses are Ignored. The event is
// (owner of metadata.phone_number_id, wamid), at the time of that status,
// with the country of recipient_id, the upstream's pricing category as sent
// (a category no rate card knows is stored, never rejected), pricing type
// and model, quantity 1, and a payload hash without time and status, so the
// later statuses of a message are duplicates of the first stored.
//
// Only a body that is not a JSON object of object whatsapp_business_account
// is an error (EINVALID); anything wrong below that rejects the statuses it
// concerns, in their Results, in the order statuses appear in the body. A
// failed phone number look-up is returned as it is (the caller answers
// 503, and the platform re-sends).
func (r *Rules) DecodeWebhook(ctx context.Context, body []byte, resolve PhoneNumberResolver) (*Decoded, error) {
	r.init()
	var w waWebhook
	if err := json.Unmarshal(body, &w); err != nil {
		if isTypeError(err) {
			return nil, postage.Errorf(postage.EINVALID, "a webhook must be a JSON object")
		}
		return nil, malformed(err)
	}
	if o, _ := w.Object.text(); o != "whatsapp_business_account" {
		return nil, postage.Errorf(postage.EINVALID, "object %q is not whatsapp_business_account", w.Object.s)
	}
	d := &Decoded{}
	now := r.Now()
	reject := func(field, reason string) {
		d.Results = append(d.Results, Result{Index: len(d.Results), Status: Rejected, Field: field, Reason: reason})
	}
	// The events of each phone number id, to give them their customer
	// once every status is read.
	var pending []pendingCustomer
	entries, ok := elements(w.Entry)
	if !ok {
		reject("entry", ReasonBadType)
	}
	for i, rawEntry := range entries {
		var e waEntry
		if !decodeObject(rawEntry, &e) {
			reject(fmt.Sprintf("entry[%d]", i), ReasonNotAnObject)
			continue
		}
		changes, ok := elements(e.Changes)
		if !ok {
			reject(fmt.Sprintf("entry[%d].changes", i), ReasonBadType)
			continue
		}
		for j, rawChange := range changes {
			var c waChange
			var v waValue
			switch {
			case !decodeObject(rawChange, &c):
				reject(fmt.Sprintf("entry[%d].changes[%d]", i, j), ReasonNotAnObject)
				continue
			case !decodeObject(c.Value, &v):
				reject(fmt.Sprintf("entry[%d].changes[%d].value", i, j), ReasonNotAnObject)
				continue
			}
			statuses, ok := elements(v.Statuses)
			if !ok {
				reject(fmt.Sprintf("entry[%d].changes[%d].value.statuses", i, j), ReasonBadType)
				continue
			}
			if len(statuses) == 0 {
				continue
			}
			pnid, pnidField, pnidReason := phoneNumberID(v.Metadata, r.MaxIDLen-len(UnknownCustomerPrefix))
			first := len(d.Events)
			for _, raw := range statuses {
				k := len(d.Results)
				d.Results = append(d.Results, Result{Index: k})
				res := &d.Results[k]
				var st waStatus
				if !decodeObject(raw, &st) {
					res.Status, res.Reason = Rejected, ReasonNotAnObject
					continue
				}
				if id, ok := st.ID.text(); ok && !st.ID.bad && len(id) <= r.MaxIDLen {
					res.ID = id
				}
				ev, field, reason := r.webhookEvent(&st, pnidField, pnidReason, now)
				switch {
				case reason == string(Ignored):
					res.Status = Ignored
				case reason != "":
					res.Status, res.Field, res.Reason = Rejected, field, reason
				default:
					d.Events = append(d.Events, ev)
					d.Index = append(d.Index, k)
				}
			}
			if len(d.Events) > first {
				pending = append(pending, pendingCustomer{pnid, first, len(d.Events)})
			}
		}
	}
	customers := map[string]string{}
	for _, p := range pending {
		cust, ok := customers[p.pnid]
		if !ok {
			var err error
			if cust, err = customerOf(ctx, resolve, p.pnid); err != nil {
				return nil, err
			}
			customers[p.pnid] = cust
		}
		for k := p.from; k < p.to; k++ {
			d.Events[k].CustomerID = cust
		}
	}
	return d, nil
}

// pendingCustomer is a run of events, d.Events[from:to], of one phone
// number id.
type pendingCustomer struct {
	pnid     string
	from, to int
}

// elements splits a JSON array; ok is false for any other value but null
// (no elements).
func elements(raw json.RawMessage) ([]json.RawMessage, bool) {
	var els []json.RawMessage
	if len(raw) == 0 {
		return nil, true
	}
	if err := json.Unmarshal(raw, &els); err != nil {
		return nil, false
	}
	return els, true
}

// decodeObject decodes raw, a JSON object, into v; ok is false for any
// other value but null (nothing decoded). The types of v hold only
// wireValues and json.RawMessages, which take any value.
func decodeObject(raw json.RawMessage, v any) bool {
	if len(raw) == 0 {
		return true
	}
	return json.Unmarshal(raw, v) == nil
}

// phoneNumberID reads metadata.phone_number_id; field and reason say why
// it is unusable (the statuses of the change are then rejected with it).
// A usable id is text, so the look-up never sends PostgreSQL a NUL or
// bytes that are not UTF-8 (which it refuses with an error that used to
// answer 503, and the platform re-sent the delivery for ever).
// max keeps "unknown:<phone_number_id>" within the longest customer id.
func phoneNumberID(raw json.RawMessage, max int) (pnid, field, reason string) {
	var m waMetadata
	if !decodeObject(raw, &m) {
		return "", "metadata", ReasonNotAnObject
	}
	if reason := checkText(&m.PhoneNumberID, max); reason != "" {
		return "", "metadata.phone_number_id", reason
	}
	return m.PhoneNumberID.s, "", ""
}

func customerOf(ctx context.Context, resolve PhoneNumberResolver, pnid string) (string, error) {
	if resolve == nil {
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

// webhookEvent turns one status into an event (its CustomerID is set by
// the caller) or says why not: reason is "ignored" for a status that does
// not make its message billable. pnidField and pnidReason reject the
// status for its change's phone number id.
func (r *Rules) webhookEvent(st *waStatus, pnidField, pnidReason string, now time.Time) (ev Event, field, reason string) {
	if reason := kindReason(&st.Status); reason != "" {
		return ev, "statuses.status", reason
	}
	status, billable := r.billable(st.Status.s)
	if !billable {
		if !isText(st.Status.s) {
			return ev, "statuses.status", ReasonInvalid
		}
		return ev, "", string(Ignored)
	}
	if len(st.Pricing) == 0 || string(st.Pricing) == "null" {
		return ev, "", string(Ignored) // the upstream did not price it
	}
	var p waPricing
	if !decodeObject(st.Pricing, &p) {
		return ev, "statuses.pricing", ReasonBadType
	}
	if reason := checkText(&st.ID, r.MaxIDLen); reason != "" {
		return ev, "statuses.id", reason
	}
	if pnidReason != "" {
		return ev, pnidField, pnidReason
	}
	sec, reason := unixSeconds(&st.Timestamp)
	if reason != "" {
		return ev, "statuses.timestamp", reason
	}
	t := time.Unix(sec, 0).UTC()
	if reason := r.checkTime(t, now); reason != "" {
		return ev, "statuses.timestamp", reason
	}
	if reason := kindReason(&st.RecipientID); reason != "" {
		return ev, "statuses.recipient_id", reason
	}
	country, ok := CountryOfNumber("+" + st.RecipientID.s)
	if !ok {
		return ev, "statuses.recipient_id", notText(&st.RecipientID, ReasonBadNumber)
	}
	if reason := checkText(&p.Category, maxPricingLen); reason != "" {
		return ev, "statuses.pricing.category", reason
	}
	cat := r.category(p.Category.s)
	if cat == "" {
		cat = p.Category.s // stored as sent: unbilled usage until a rate card prices it
	}
	model := ""
	if !p.PricingModel.empty() {
		if reason := checkText(&p.PricingModel, maxPricingLen); reason != "" {
			return ev, "statuses.pricing.pricing_model", reason
		}
		model = internPricing(p.PricingModel.s)
	}
	var free bool
	switch p.Billable.kind {
	case absent:
	case isBool:
		free = p.Billable.s == "false"
	default:
		return ev, "statuses.pricing.billable", ReasonBadType
	}
	var ptype string
	switch {
	case !p.Type.empty():
		if reason := checkText(&p.Type, maxPricingLen); reason != "" {
			return ev, "statuses.pricing.type", reason
		}
		ptype = internPricing(p.Type.s)
	case free && p.Category.s == CategoryReferralConversion:
		ptype = PricingFreeEntryPoint
	case free:
		ptype = PricingFreeCustomerService
	default:
		ptype = PricingRegular
	}
	ev = Event{ID: st.ID.s, Time: t, Country: country, Category: cat, Quantity: 1,
		PricingType: ptype, PricingModel: model, Source: SourceWhatsApp, Status: status}
	ev.PayloadHash = HashStatusPayload(country, cat, 1, ptype, model)
	return ev, "", ""
}

// CategoryReferralConversion is the upstream's category of a free entry
// point conversation (conversation-based pricing): with billable false and
// no pricing type, it is metered as PricingFreeEntryPoint.
const CategoryReferralConversion = "referral_conversion"

// billable returns the interned status and whether it makes a message
// billable under r.BillableStatus.
func (r *Rules) billable(s string) (string, bool) {
	switch s {
	case StatusSent:
		return StatusSent, r.BillableStatus == StatusSent
	case StatusDelivered:
		return StatusDelivered, true
	case StatusRead:
		return StatusRead, true
	}
	return "", false
}

// internPricing returns the package's copy of a known pricing type or
// model, else s.
func internPricing(s string) string {
	switch s {
	case PricingRegular:
		return PricingRegular
	case PricingFreeCustomerService:
		return PricingFreeCustomerService
	case PricingFreeEntryPoint:
		return PricingFreeEntryPoint
	case "CBP":
		return "CBP"
	case "PMP":
		return "PMP"
	}
	return s
}

// unixSeconds reads a status timestamp: Unix seconds as a string of
// digits (as the upstream sends it) or as a JSON integer.
func unixSeconds(v *wireValue) (int64, string) {
	switch {
	case v.empty():
		return 0, ReasonMissing
	case v.kind != isString && v.kind != isNumber:
		return 0, ReasonBadType
	}
	for i := 0; i < len(v.s); i++ {
		if v.s[i] < '0' || v.s[i] > '9' {
			return 0, ReasonInvalid
		}
	}
	sec, err := strconv.ParseInt(v.s, 10, 64)
	if err != nil {
		return 0, ReasonInvalid
	}
	return sec, ""
}
