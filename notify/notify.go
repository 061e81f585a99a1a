// Package notify tells the outside world what happened in the ledger:
// outbound webhooks, signed Stripe's way and delivered at least once from a
// durable outbox in PostgreSQL, and usage alerts (thresholds on a
// customer's month-to-date usage or bill) that fire once a month.
//
// A change that announces itself (an invoice finalized, a payment) calls
// Emit with its own transaction: the event and one delivery per subscribed
// endpoint are written with the change or not at all. A Dispatcher on every
// replica claims due deliveries with FOR UPDATE SKIP LOCKED and posts them,
// retrying with exponential back-off for three days; an Evaluator reads
// month-to-date usage through billing and fires alerts. See
// docs/NOTIFICATIONS.md.
package notify

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/shopspring/decimal"

	"postage"
	"postage/pricing"
)

// EventType names what happened.
type EventType string

// The event types. AllEvents subscribes an endpoint to every type, those
// added later included.
const (
	InvoiceFinalized      EventType = "invoice.finalized"
	InvoiceVoided         EventType = "invoice.voided"
	InvoicePaid           EventType = "invoice.paid"
	InvoiceOverdue        EventType = "invoice.overdue"
	InvoiceReminder       EventType = "invoice.payment_reminder"
	CreditNoteCreated     EventType = "credit_note.created"
	CreditNoteVoided      EventType = "credit_note.voided"
	UsageThresholdReached EventType = "usage.threshold_reached"
	AllEvents             EventType = "*"
)

// EventTypes lists every event type (AllEvents aside).
var EventTypes = []EventType{InvoiceFinalized, InvoiceVoided, InvoicePaid, InvoiceOverdue, InvoiceReminder, CreditNoteCreated, CreditNoteVoided, UsageThresholdReached}

// Valid reports whether t is an event type Emit accepts.
func (t EventType) Valid() bool { return slices.Contains(EventTypes, t) }

// Event is one change that endpoints are told about. Emit writes it.
type Event struct {
	// ID is the event's unique id ("evt_" and 26 characters, in creation
	// order); Emit makes one when it is empty.
	ID string
	// Type is what happened.
	Type EventType
	// CustomerID is whom it concerns: the customer's endpoints and the
	// endpoints of every customer receive it.
	CustomerID string
	// Object is what it is about as the API shows it (an invoice, a
	// credit note, an alert that fired): the body's data.object.
	Object any
	// Key, when set, makes Emit idempotent: a second event of the same
	// Type and Key is not recorded while the first is kept (the retention
	// period), e.g. one invoice.overdue per invoice.
	Key string
	// Created is when it happened (the Outbox's clock when zero).
	Created time.Time
}

// Validate checks what Emit needs.
func (e Event) Validate() error {
	var errs []error
	if !e.Type.Valid() {
		errs = append(errs, fmt.Errorf("event type %q: want one of %v", e.Type, EventTypes))
	}
	if e.CustomerID == "" {
		errs = append(errs, errors.New("event customer: required"))
	}
	if e.Object == nil {
		errs = append(errs, errors.New("event object: required"))
	}
	return errors.Join(errs...)
}

// Payload is the JSON body posted to endpoints: the event, its object
// under data.object (Stripe's shape).
type Payload struct {
	// ID is unique per event; a receiver that has seen it ignores the
	// repeat (deliveries are at least once).
	ID         string      `json:"id"`
	Type       EventType   `json:"type"`
	Created    time.Time   `json:"created"`
	CustomerID string      `json:"customer_id"`
	Data       PayloadData `json:"data"`
}

// PayloadData holds the event's object.
type PayloadData struct {
	Object any `json:"object"`
}

// Limits that keep an endpoint's and a customer's costs bounded.
const (
	// MaxEndpoints is how many endpoints one customer (or the set of
	// all-customer endpoints) may have, as Stripe allows 16.
	MaxEndpoints = 16
	// MaxAlerts is how many alerts one customer may have: the alert job
	// reads each customer's month-to-date usage once, whatever its count.
	MaxAlerts = 20
	maxURLLen = 2048
	maxDesc   = 500
)

// Endpoint is a URL that receives events. An endpoint of a customer
// receives that customer's events; one without (admin only) receives
// every customer's.
type Endpoint struct {
	ID string `json:"id"`
	// CustomerID is the customer whose events it receives ("" or absent:
	// every customer's; admin keys only).
	CustomerID  string      `json:"customer_id,omitempty"`
	URL         string      `json:"url"`
	Description string      `json:"description,omitempty"`
	EventTypes  []EventType `json:"event_types"`
	// Enabled endpoints receive events; a disabled one receives no new
	// event and its pending deliveries wait (paused) until it is enabled.
	Enabled bool `json:"enabled"`
	// PreviousSecretExpiresAt is set after a rotation: until then
	// requests carry a second signature made with the previous secret.
	PreviousSecretExpiresAt *time.Time `json:"previous_secret_expires_at,omitempty"`
	CreatedAt               time.Time  `json:"created_at"`
	UpdatedAt               time.Time  `json:"updated_at"`
}

// NewEndpoint is the request that registers an endpoint.
type NewEndpoint struct {
	// CustomerID is the customer whose events it receives; empty for
	// every customer's (admin keys only). A customer key may only name
	// its own customer (it is the default for it).
	CustomerID string `json:"customer_id,omitempty"`
	// URL is where events are posted: https, or http to a loopback
	// address allowed by notify.allow_networks (docs/NOTIFICATIONS.md).
	URL         string `json:"url"`
	Description string `json:"description,omitempty"`
	// EventTypes are the types it receives; "*" is every type.
	EventTypes []EventType `json:"event_types"`
}

// Validate checks the request's fields (the URL's target is checked by
// the TargetPolicy).
func (n NewEndpoint) Validate() error {
	errs := nonNil(validURL(n.URL), validTypes(n.EventTypes))
	if len(n.Description) > maxDesc {
		errs = append(errs, postage.Errorf(postage.EINVALID, "description: at most %d bytes", maxDesc))
	}
	return postage.JoinInvalid(errs)
}

// EndpointUpdate changes the given fields of an endpoint.
type EndpointUpdate struct {
	URL         *string     `json:"url,omitempty"`
	Description *string     `json:"description,omitempty"`
	EventTypes  []EventType `json:"event_types,omitempty"`
	// Enabled disables (false) or enables (true) the endpoint.
	Enabled *bool `json:"enabled,omitempty"`
}

// Validate checks the given fields.
func (u EndpointUpdate) Validate() error {
	var errs []error
	if u.URL != nil {
		errs = nonNil(append(errs, validURL(*u.URL))...)
	}
	if u.EventTypes != nil {
		errs = nonNil(append(errs, validTypes(u.EventTypes))...)
	}
	if u.Description != nil && len(*u.Description) > maxDesc {
		errs = append(errs, postage.Errorf(postage.EINVALID, "description: at most %d bytes", maxDesc))
	}
	if u.URL == nil && u.Description == nil && u.EventTypes == nil && u.Enabled == nil {
		errs = append(errs, postage.Errorf(postage.EINVALID, "nothing to change: give url, description, event_types or enabled"))
	}
	return postage.JoinInvalid(errs)
}

// nonNil returns the errors that are not nil.
func nonNil(errs ...error) []error {
	var out []error
	for _, e := range errs {
		if e != nil {
			out = append(out, e)
		}
	}
	return out
}

func validURL(s string) error {
	if s == "" {
		return postage.Errorf(postage.EINVALID, "url: required")
	}
	if len(s) > maxURLLen {
		return postage.Errorf(postage.EINVALID, "url: at most %d bytes", maxURLLen)
	}
	u, err := url.Parse(s)
	if err != nil {
		return postage.Errorf(postage.EINVALID, "url: %s", strings.TrimPrefix(err.Error(), "parse "))
	}
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return postage.Errorf(postage.EINVALID, "url %q: want https:// (or http:// to an allowed loopback address)", s)
	case u.Host == "" || u.Hostname() == "":
		return postage.Errorf(postage.EINVALID, "url %q: no host", s)
	case u.User != nil:
		return postage.Errorf(postage.EINVALID, "url: must not hold credentials (user:password@); the signature authenticates postage")
	case u.Fragment != "" || strings.Contains(s, "#"):
		return postage.Errorf(postage.EINVALID, "url: must not have a #fragment")
	}
	return nil
}

func validTypes(ts []EventType) error {
	if len(ts) == 0 {
		return postage.Errorf(postage.EINVALID, `event_types: at least one, or "*" for every type`)
	}
	if len(ts) > len(EventTypes)+1 {
		return postage.Errorf(postage.EINVALID, "event_types: at most %d", len(EventTypes)+1)
	}
	for _, t := range ts {
		if !t.Valid() && t != AllEvents {
			return postage.Errorf(postage.EINVALID, "event type %q: want one of %s or \"*\"", t, typeList())
		}
	}
	return nil
}

func typeList() string {
	s := make([]string, len(EventTypes))
	for i, t := range EventTypes {
		s[i] = string(t)
	}
	return strings.Join(s, ", ")
}

// normTypes sorts and deduplicates event types; "*" stands alone.
func normTypes(ts []EventType) []EventType {
	if slices.Contains(ts, AllEvents) {
		return []EventType{AllEvents}
	}
	out := slices.Clone(ts)
	slices.Sort(out)
	return slices.Compact(out)
}

// CreatedEndpoint is an endpoint with its signing secret, which is shown
// in this answer only (creation and rotation).
type CreatedEndpoint struct {
	Endpoint
	// Secret signs every request to the endpoint (the Postage-Signature
	// header): keep it with the receiver; it is not shown again.
	Secret string `json:"secret"`
}

// RotateRequest is the request that rotates an endpoint's secret.
type RotateRequest struct {
	// PreviousSecretValidFor is how long requests keep a second signature
	// made with the previous secret, as a duration ("24h", the default;
	// "0s": the old secret stops at once; at most 168h).
	PreviousSecretValidFor string `json:"previous_secret_valid_for,omitempty"`
}

// Duration returns the requested overlap.
func (r RotateRequest) Duration() (time.Duration, error) {
	if r.PreviousSecretValidFor == "" {
		return 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(r.PreviousSecretValidFor)
	if err != nil || d < 0 || d > 7*24*time.Hour {
		return 0, postage.Errorf(postage.EINVALID, "previous_secret_valid_for %q: a duration from 0s to 168h", r.PreviousSecretValidFor)
	}
	return d, nil
}

// DeliveryStatus is where a delivery is.
type DeliveryStatus string

// Delivery states: pending until an attempt gets a 2xx answer
// (succeeded) or the retry window ends (failed); paused while its
// endpoint is disabled.
const (
	DeliveryPending   DeliveryStatus = "pending"
	DeliverySucceeded DeliveryStatus = "succeeded"
	DeliveryFailed    DeliveryStatus = "failed"
	DeliveryPaused    DeliveryStatus = "paused"
)

// Valid reports whether s is a known status.
func (s DeliveryStatus) Valid() bool {
	return s == DeliveryPending || s == DeliverySucceeded || s == DeliveryFailed || s == DeliveryPaused
}

// Delivery is one event on its way to one endpoint.
type Delivery struct {
	ID         int64          `json:"id"`
	EventID    string         `json:"event_id"`
	EventType  EventType      `json:"event_type"`
	CustomerID string         `json:"customer_id"`
	EndpointID string         `json:"endpoint_id"`
	Status     DeliveryStatus `json:"status"`
	// Attempts counts the attempts made (a process that died during an
	// attempt counts it too).
	Attempts int `json:"attempts"`
	// NextAttemptAt is when it is tried next (pending only).
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty"`
	// RetryUntil is when a pending delivery stops being retried and fails.
	RetryUntil     time.Time  `json:"retry_until"`
	LastAttemptAt  *time.Time `json:"last_attempt_at,omitempty"`
	LastStatusCode int        `json:"last_status_code,omitempty"`
	LastError      string     `json:"last_error,omitempty"`
	CreatedAt      time.Time  `json:"created_at"`
}

// Attempt is one try of a delivery, as the delivery log shows it.
type Attempt struct {
	Attempt int       `json:"attempt"`
	At      time.Time `json:"at"`
	// StatusCode is the receiver's HTTP status (0: no answer).
	StatusCode int   `json:"status_code,omitempty"`
	DurationMS int64 `json:"duration_ms"`
	// Error says why the attempt failed (empty when it succeeded).
	Error string `json:"error,omitempty"`
	// Response is the start of the receiver's answer (at most 2 KiB).
	Response string `json:"response,omitempty"`
}

// DeliveryDetail is a delivery with its attempts, oldest first.
type DeliveryDetail struct {
	Delivery
	AttemptLog []Attempt `json:"attempt_log"`
}

// Metric is what an alert watches.
type Metric string

// Alert metrics: the month's messages so far (every metered message,
// free ones included), or its bill so far in the customer's currency.
const (
	MetricMessages Metric = "messages"
	MetricAmount   Metric = "amount"
)

// Alert fires usage.threshold_reached once per calendar month (UTC), the
// first time the customer's month-to-date usage or bill reaches its
// threshold.
type Alert struct {
	ID         string `json:"id"`
	CustomerID string `json:"customer_id"`
	Metric     Metric `json:"metric"`
	// Threshold is a number of messages (a whole number) or an amount in
	// Currency.
	Threshold decimal.Decimal `json:"threshold"`
	// Currency is the customer's, for amount alerts.
	Currency string `json:"currency,omitempty"`
	// FiredPeriod is the last month it fired, FiredAt when.
	FiredPeriod *pricing.Month `json:"fired_period,omitempty"`
	FiredAt     *time.Time     `json:"fired_at,omitempty"`
	CreatedAt   time.Time      `json:"created_at"`
}

// NewAlert is the request that sets an alert.
type NewAlert struct {
	Metric Metric `json:"metric"`
	// Threshold is a positive whole number of messages, or an amount in
	// the customer's currency with at most its minor-unit decimals.
	Threshold decimal.Decimal `json:"threshold"`
}

// Validate checks the request; currency is the customer's.
func (n NewAlert) Validate(currency string) error {
	var errs []error
	if !n.Threshold.IsPositive() {
		errs = append(errs, postage.Errorf(postage.EINVALID, "threshold: must be positive"))
	}
	switch n.Metric {
	case MetricMessages:
		if !n.Threshold.Equal(n.Threshold.Truncate(0)) || n.Threshold.GreaterThan(decimal.NewFromInt(pricing.MaxQuantity)) {
			errs = append(errs, postage.Errorf(postage.EINVALID, "threshold: a whole number of messages up to %d", pricing.MaxQuantity))
		}
	case MetricAmount:
		places, ok := pricing.MinorUnits(currency)
		if !ok {
			places = 2
		}
		if !n.Threshold.Equal(n.Threshold.Truncate(int32(places))) {
			errs = append(errs, postage.Errorf(postage.EINVALID, "threshold: at most %d decimals for %s", places, currency))
		}
		if n.Threshold.GreaterThan(decimal.New(1, 15)) {
			errs = append(errs, postage.Errorf(postage.EINVALID, "threshold: too large"))
		}
	default:
		errs = append(errs, postage.Errorf(postage.EINVALID, "metric %q: want messages or amount", n.Metric))
	}
	return postage.JoinInvalid(errs)
}

// ThresholdReached is the object of a usage.threshold_reached event.
type ThresholdReached struct {
	Alert  Alert         `json:"alert"`
	Period pricing.Month `json:"period"`
	// Messages is the month's messages so far when the alert fired.
	Messages int64 `json:"messages"`
	// Amount is the month's bill so far (amount alerts, or when known),
	// in Currency.
	Amount   string    `json:"amount,omitempty"`
	Currency string    `json:"currency,omitempty"`
	At       time.Time `json:"at"`
}

// Page asks for one page of a list: at most Limit items after Cursor.
type Page struct {
	Limit  int
	Cursor string
}

func (p Page) limit() int {
	switch {
	case p.Limit <= 0:
		return 100
	case p.Limit > 1000:
		return 1000
	}
	return p.Limit
}

// Store keeps endpoints, the outbox's deliveries and their attempts, and
// alerts (PGStore). Scope is the customer a caller is limited to (a
// customer key's); "" is every customer. Something outside the scope is
// ENOTFOUND, exactly as if it did not exist.
type Store interface {
	// InsertEndpoint stores a new endpoint with its sealed secret; more
	// than MaxEndpoints for its customer is ECONFLICT, an unknown customer
	// ENOTFOUND.
	InsertEndpoint(ctx context.Context, e Endpoint, secret Sealed) (Endpoint, error)
	// Endpoint returns one endpoint.
	Endpoint(ctx context.Context, id, scope string) (Endpoint, error)
	// Endpoints lists endpoints by id: of customer when it is not "", of
	// the scope, else all.
	Endpoints(ctx context.Context, customer, scope string, p Page) ([]Endpoint, string, error)
	// UpdateEndpoint changes an endpoint. Disabling it pauses its pending
	// deliveries; enabling it makes its paused deliveries due at now.
	UpdateEndpoint(ctx context.Context, id, scope string, u EndpointUpdate, now time.Time) (Endpoint, error)
	// RotateSecret replaces an endpoint's secret, keeping the current one
	// as the previous secret until previousUntil (nil: dropped).
	RotateSecret(ctx context.Context, id, scope string, secret Sealed, previousUntil *time.Time, now time.Time) (Endpoint, error)
	// DeleteEndpoint deletes an endpoint and its deliveries.
	DeleteEndpoint(ctx context.Context, id, scope string) error

	// Deliveries lists an endpoint's deliveries, newest first, of one
	// status when status is not "".
	Deliveries(ctx context.Context, endpointID, scope string, status DeliveryStatus, p Page) ([]Delivery, string, error)
	// Delivery returns a delivery with its attempts.
	Delivery(ctx context.Context, id int64, scope string) (DeliveryDetail, error)
	// Resend makes a delivery pending and due at now, with a new retry
	// window from now (any status; a paused one stays paused).
	Resend(ctx context.Context, id int64, scope string, now time.Time) (Delivery, error)

	// Claim takes up to limit due deliveries of enabled endpoints for one
	// attempt each (FOR UPDATE SKIP LOCKED: replicas never take the same
	// one), counting the attempt and leasing them until leaseUntil under
	// token; a lease that runs out (the process died) makes it due again.
	Claim(ctx context.Context, now, leaseUntil time.Time, limit int, token string) ([]Claimed, error)
	// Record writes an attempt's outcome and the delivery's next state
	// if it is still leased under the token.
	Record(ctx context.Context, r Result) error
	// Release gives back claimed deliveries whose attempt did not happen
	// (shutdown): due at now, the attempt uncounted.
	Release(ctx context.Context, ids []int64, token string, now time.Time) error
	// Prune deletes up to limit events created before cutoff whose
	// deliveries are all succeeded or failed, with their deliveries and
	// attempts; it returns how many.
	Prune(ctx context.Context, cutoff time.Time, limit int) (int, error)

	// CreateAlert stores an alert of a customer (its currency set from
	// the customer's); more than MaxAlerts is ECONFLICT.
	CreateAlert(ctx context.Context, customerID string, n NewAlert, id string, now time.Time) (Alert, error)
	// Alerts lists a customer's alerts (ENOTFOUND for an unknown customer).
	Alerts(ctx context.Context, customerID string) ([]Alert, error)
	// DeleteAlert deletes one alert of a customer.
	DeleteAlert(ctx context.Context, customerID, id string) error
	// UnfiredAlerts returns alerts that have not fired in period, by
	// customer then id, of customers after afterCustomer, ending with a
	// whole customer: at least limit alerts unless there are fewer.
	UnfiredAlerts(ctx context.Context, period pricing.Month, afterCustomer string, limit int) ([]Alert, error)
	// FireAlert marks an alert fired in period and, in the same
	// transaction, calls emit (which writes the event to the outbox);
	// fired is false, and emit is not called, when the alert already
	// fired in period or no longer exists.
	FireAlert(ctx context.Context, a Alert, period pricing.Month, now time.Time, emit func(ctx context.Context, q Querier) error) (fired bool, err error)
	// LockAlerts takes the alert job's lock (one replica evaluates at a
	// time) without waiting; ok is false when another holds it.
	LockAlerts(ctx context.Context) (unlock func(), ok bool, err error)
}

// Claimed is a delivery taken for one attempt: what the attempt needs.
type Claimed struct {
	ID         int64
	Attempt    int // this attempt's number, from 1
	RetryFrom  time.Time
	EventID    string
	EventType  EventType
	Payload    []byte
	EndpointID string
	URL        string
	Secret     Sealed
	// Previous is the previous secret while it is valid (PreviousUntil).
	Previous      *Sealed
	PreviousUntil *time.Time
}

// Result is the outcome of one attempt and the delivery's next state.
type Result struct {
	ID         int64
	Token      string
	Attempt    int
	At         time.Time
	StatusCode int
	Duration   time.Duration
	Error      string
	Response   string
	// Status is the delivery's next status: succeeded, failed or pending
	// (a paused delivery stays paused unless it succeeded or failed).
	Status DeliveryStatus
	// Next is when a pending delivery is tried again.
	Next time.Time
}

// sanitize makes s storable as PostgreSQL text and readable: valid
// UTF-8, no NUL, at most n bytes (cut at a character boundary).
func sanitize(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.ReplaceAll(s, "\x00", "")
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}
