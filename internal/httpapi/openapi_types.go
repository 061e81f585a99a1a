package httpapi

// The request bodies of the ingest routes are read by metering's own
// decoders (a one-pass scanner for CloudEvents, the WhatsApp adapter), not
// decoded into Go types. These types describe them for the OpenAPI
// document only; docs/METERING.md has the rules in full.

// CloudEvent is one message.sent event (CloudEvents 1.0, structured mode).
// In binary mode the attributes are ce-* headers and the body is the data
// alone (CloudEventData).
type CloudEvent struct {
	SpecVersion string `json:"specversion" jsonschema:"enum=1.0"`
	Type        string `json:"type" jsonschema:"enum=message.sent"`
	// ID identifies the event with Subject: re-sending it never counts twice.
	ID string `json:"id" jsonschema:"minLength=1"`
	// Source is the producer (CloudEvents requires it; postage does not read it).
	Source string `json:"source,omitempty"`
	// Subject is the customer id.
	Subject string `json:"subject" jsonschema:"minLength=1"`
	// Time is when the message was sent, RFC 3339.
	Time            string         `json:"time" jsonschema:"format=date-time"`
	DataContentType string         `json:"datacontenttype,omitempty"`
	Data            CloudEventData `json:"data"`
}

// CloudEventData is a message.sent event's data: the recipient (number or
// country), the category and the quantity.
type CloudEventData struct {
	// To is the recipient's number in E.164 (+4915123456789); used only to
	// find the country, never stored.
	To string `json:"to,omitempty"`
	// Country is the recipient's ISO 3166-1 alpha-2 country (when To is absent).
	Country string `json:"country,omitempty"`
	// Category is a configured message category, e.g. marketing.
	Category string `json:"category"`
	// Quantity is the number of billable units (default 1): an integer
	// from 1 to 1,000,000, as a number or as a string that holds one ("5").
	Quantity EventQuantity `json:"quantity,omitempty"`
}

// EventQuantity is an event's quantity: an integer from 1 to 1,000,000,
// as a JSON number or as a string that holds one ("5").
type EventQuantity any

// StructuredOrBinary is the body of an application/json events request:
// one structured event (CloudEvent), or, with ce-* headers, a binary-mode
// event's data (CloudEventData).
type StructuredOrBinary any

// WhatsAppWebhook is a WhatsApp Cloud API webhook with message statuses.
type WhatsAppWebhook struct {
	Object string          `json:"object"`
	Entry  []WhatsAppEntry `json:"entry"`
}

// WhatsAppEntry is one entry of a webhook.
type WhatsAppEntry struct {
	ID      string           `json:"id"`
	Changes []WhatsAppChange `json:"changes"`
}

// WhatsAppChange is one change of an entry.
type WhatsAppChange struct {
	Field string        `json:"field"`
	Value WhatsAppValue `json:"value"`
}

// WhatsAppValue holds the statuses of one business phone number.
type WhatsAppValue struct {
	Metadata WhatsAppMetadata `json:"metadata"`
	Statuses []WhatsAppStatus `json:"statuses,omitempty"`
}

// WhatsAppMetadata names the business phone number, which maps to a
// customer (POST /api/v1/customers/{id}/phone_numbers).
type WhatsAppMetadata struct {
	PhoneNumberID string `json:"phone_number_id"`
}

// WhatsAppStatus is one message status: its first billable status is usage.
type WhatsAppStatus struct {
	// ID is the message id (wamid...).
	ID     string `json:"id"`
	Status string `json:"status"`
	// Timestamp is Unix seconds as a string.
	Timestamp   string           `json:"timestamp"`
	RecipientID string           `json:"recipient_id"`
	Pricing     *WhatsAppPricing `json:"pricing,omitempty"`
}

// WhatsAppPricing is a status's pricing.
type WhatsAppPricing struct {
	Billable     *bool  `json:"billable,omitempty"`
	Category     string `json:"category"`
	PricingModel string `json:"pricing_model,omitempty"`
	Type         string `json:"type,omitempty"`
}
