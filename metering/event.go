// Package metering takes the stream of sent-message events into ClickHouse
// exactly once and answers usage questions from it exactly.
//
// Events arrive as CloudEvents 1.0 (single or batch) or as WhatsApp Cloud
// API status webhooks. They are validated and normalised (the recipient's
// number becomes a country and is then forgotten), handed to an Ingester
// that group-commits concurrent requests into one ClickHouse insert after a
// look-up of the ids already stored, and read back by Usage queries that
// deduplicate exactly. docs/METERING.md explains the guarantees.
package metering

import (
	"encoding/binary"
	"hash/fnv"
	"sync"
	"time"
	"unicode/utf8"
)

// Event is one metered, billable unit of usage: a message sent by a customer
// to a recipient in Country, in a pricing Category. It is identified by
// (CustomerID, ID); PayloadHash fingerprints the fields that decide what it
// costs, so a re-sent event can be told apart from a conflicting one.
type Event struct {
	CustomerID string    // the business (CloudEvents subject)
	ID         string    // the event id, unique per customer
	Time       time.Time // when the message was sent, UTC, second precision
	Country    string    // recipient's ISO 3166-1 alpha-2 region
	Category   string    // pricing category, one of the known set
	Quantity   uint64    // number of billable units, > 0
	// PricingType is the upstream's pricing type of a WhatsApp status
	// (PricingRegular or one of the free types); "" for CloudEvents, which
	// are regular.
	PricingType string
	// PricingModel is the upstream's pricing model of a WhatsApp status
	// ("CBP", "PMP"); "" when not sent.
	PricingModel string
	// Source says how the event arrived: SourceCloudEvents or SourceWhatsApp.
	Source string
	// Status is the WhatsApp status that made the message billable ("sent",
	// "delivered", "read"); "" for CloudEvents.
	Status      string
	IngestedAt  time.Time // when the event was stored (set by the Ingester)
	PayloadHash uint64    // fingerprint of what the event is worth (see HashPayload)
}

// Event sources.
const (
	SourceCloudEvents = "cloudevents"
	SourceWhatsApp    = "whatsapp"
)

// WhatsApp message statuses that can make a message billable (the Status
// of a webhook's event).
const (
	StatusSent      = "sent"
	StatusDelivered = "delivered"
	StatusRead      = "read"
)

// WhatsApp pricing types (pricing.type of a status webhook). The free types
// are metered and priced at zero whatever their category.
const (
	PricingRegular             = "regular"
	PricingFreeCustomerService = "free_customer_service"
	PricingFreeEntryPoint      = "free_entry_point"
)

// Key identifies an event.
type Key struct {
	CustomerID string
	ID         string
}

// Key returns the event's identity.
func (e *Event) Key() Key { return Key{e.CustomerID, e.ID} }

// HashPayload returns the fingerprint of the fields that define what an
// event is worth. Equal fingerprints for the same Key mean a re-send (a
// duplicate); different ones mean a conflict. withTime is false for sources
// whose several notifications of one message carry different timestamps
// (WhatsApp sent/delivered/read statuses) but describe the same message.
func HashPayload(t time.Time, withTime bool, country, category string, quantity uint64) uint64 {
	return hashPayload(t, withTime, country, category, quantity, "", "")
}

// HashStatusPayload returns the fingerprint of a WhatsApp status's event:
// country, category, quantity, pricing type and pricing model, without the
// time and the status, so that the statuses of one message are duplicates
// of each other while a status that prices the message differently is a
// conflict.
func HashStatusPayload(country, category string, quantity uint64, pricingType, pricingModel string) uint64 {
	return hashPayload(time.Time{}, false, country, category, quantity, pricingType, pricingModel)
}

// hashPayload is FNV-1a 64 of the fields, each string followed by a NUL.
// The pricing type and model are written only when one is set, so events
// without them (CloudEvents) keep the fingerprint they always had.
func hashPayload(t time.Time, withTime bool, country, category string, quantity uint64, pricingType, pricingModel string) uint64 {
	h := fnv.New64a()
	var b [8]byte
	if withTime {
		binary.LittleEndian.PutUint64(b[:], uint64(t.Unix()))
		h.Write(b[:])
	}
	h.Write([]byte(country))
	h.Write([]byte{0})
	h.Write([]byte(category))
	h.Write([]byte{0})
	binary.LittleEndian.PutUint64(b[:], quantity)
	h.Write(b[:])
	if pricingType != "" || pricingModel != "" {
		h.Write([]byte(pricingType))
		h.Write([]byte{0})
		h.Write([]byte(pricingModel))
		h.Write([]byte{0})
	}
	return h.Sum64()
}

// Status is the outcome of one event of a request.
type Status string

// Event outcomes, part of the API contract.
const (
	Accepted  Status = "accepted"  // stored now
	Duplicate Status = "duplicate" // already stored with the same payload; counted once
	Conflict  Status = "conflict"  // already stored with a different payload; not stored again
	Rejected  Status = "rejected"  // invalid; Field and Reason say why
	Ignored   Status = "ignored"   // valid input that is not billable usage (webhook statuses that do not make a message billable)
)

// Result is the answer for one event of a request, at its position Index in
// the batch (0 for a single event).
type Result struct {
	Index  int    `json:"index"`
	ID     string `json:"id,omitempty"`
	Status Status `json:"status"`
	Field  string `json:"field,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// Rejection reasons, stable strings clients and the rejected-events metric
// can rely on.
const (
	ReasonMissing       = "missing"
	ReasonTooLong       = "too_long"
	ReasonInvalid       = "invalid"
	ReasonBadType       = "wrong_type"
	ReasonBadSpec       = "unsupported_specversion"
	ReasonBadEventType  = "unsupported_type"
	ReasonFuture        = "time_in_future"
	ReasonTooOld        = "time_too_old"
	ReasonBadNumber     = "bad_number"
	ReasonBadCountry    = "bad_country"
	ReasonUnknownCat    = "unknown_category"
	ReasonBadQuantity   = "bad_quantity"
	ReasonNotAnObject   = "not_an_object"
	ReasonBatchTooLarge = "batch_too_large"
)

// DefaultCategories are the pricing categories known to rate cards.
var DefaultCategories = []string{
	"notification", "session", "marketing", "utility",
	"authentication", "authentication_international", "service",
}

// MaxFutureSkew is the furthest ahead of its ingestion an event's time may
// be (Rules.FutureSkew at most): reads of a month's raw events start that
// long before the month, and the key index's rebuild likewise.
const MaxFutureSkew = time.Hour

// Rules are the validation limits for incoming events.
type Rules struct {
	Now         func() time.Time // clock; time.Now if nil
	Horizon     time.Duration    // oldest accepted event time relative to Now (default 35 days)
	FutureSkew  time.Duration    // newest accepted event time relative to Now (default 5 minutes, at most MaxFutureSkew)
	Categories  []string         // known categories (default DefaultCategories)
	MaxIDLen    int              // longest id and subject, bytes (default 200)
	MaxBatchLen int              // most events in one batch (default 10,000)
	// BillableStatus is the WhatsApp status that makes a message billable:
	// StatusSent or StatusDelivered (the default, as the upstream bills).
	// With StatusDelivered a sent status is ignored; read implies delivered.
	BillableStatus string

	once sync.Once
	cats map[string]string
}

// DefaultRules returns the documented defaults.
func DefaultRules() *Rules {
	r := &Rules{}
	r.init()
	return r
}

// init fills in the defaults once: a Rules value is shared by every
// request, and decoding calls init concurrently.
func (r *Rules) init() { r.once.Do(r.setDefaults) }

func (r *Rules) setDefaults() {
	if r.Now == nil {
		r.Now = time.Now
	}
	if r.Horizon == 0 {
		r.Horizon = 35 * 24 * time.Hour
	}
	if r.FutureSkew == 0 {
		r.FutureSkew = 5 * time.Minute
	}
	if r.FutureSkew > MaxFutureSkew {
		r.FutureSkew = MaxFutureSkew
	}
	if len(r.Categories) == 0 {
		r.Categories = DefaultCategories
	}
	if r.MaxIDLen == 0 {
		r.MaxIDLen = 200
	}
	if r.MaxBatchLen == 0 {
		r.MaxBatchLen = 10000
	}
	if r.BillableStatus == "" {
		r.BillableStatus = StatusDelivered
	}
	if r.cats == nil {
		r.cats = make(map[string]string, len(r.Categories))
		for _, c := range r.Categories {
			r.cats[c] = c // interned: events share the category strings
		}
	}
}

// checkTime validates an event time; field names the input field.
// now is the time of the request (Rules.Now, read once per request).
func (r *Rules) checkTime(t, now time.Time) (reason string) {
	switch {
	case t.After(now.Add(r.FutureSkew)):
		return ReasonFuture
	case t.Before(now.Add(-r.Horizon)):
		return ReasonTooOld
	}
	return ""
}

// category returns the interned known category or "".
func (r *Rules) category(c string) string { return r.cats[c] }

// validCountry reports whether c looks like an ISO 3166-1 alpha-2 code
// (two upper-case ASCII letters) that phone metadata knows as a region.
func validCountry(c string) bool {
	_, ok := knownCountry(c)
	return ok
}

// knownCountry returns the region table's own copy of c, if c is a known
// region: events keep it instead of the string decoded from the request
// body, which would keep the whole body alive.
func knownCountry(c string) (string, bool) {
	if len(c) != 2 || c[0] < 'A' || c[0] > 'Z' || c[1] < 'A' || c[1] > 'Z' {
		return "", false
	}
	k, ok := knownRegions[c]
	return k, ok
}

var knownRegions = func() map[string]string {
	m := map[string]string{}
	for _, cc := range generatedCallingCodes {
		if cc.region != "" && cc.region != "001" {
			m[cc.region] = cc.region
		}
		for _, r := range cc.shared {
			if r != "" {
				m[r] = r
			}
		}
	}
	return m
}()

// isText reports whether s may be kept as it is: valid UTF-8 without
// control characters (C0, DEL and C1). Strings that fail are rejected,
// never rewritten: encoding/json would turn each invalid byte into U+FFFD,
// and two different ids would become one.
func isText(s string) bool {
	for i := 0; i < len(s); i++ {
		// One compare for the common case, printable ASCII (0x20-0x7e):
		// below 0x20 the byte wraps around to 0xe0 and above.
		if s[i]-0x20 > 0x7e-0x20 {
			return isTextSlow(s[i:])
		}
	}
	return true
}

// isTextSlow is isText for a string that holds a control character or a
// byte outside ASCII.
func isTextSlow(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r >= 0x7f && r <= 0x9f {
			return false
		}
	}
	return true
}
