package metering

import (
	"context"
	"time"

	"postage/metering/keyindex"
)

// EventStore is where the Ingester writes new events, and what its key
// index is rebuilt from. The ClickHouse implementation is *CHStore.
type EventStore interface {
	// InsertList stores events in one insert. It returns only after the
	// database acknowledged the write. An insert id that ctx carries
	// (WithInsertID) names the insert while the database runs it.
	InsertList(ctx context.Context, events EventList) error
	// StoredKeys hands fn, in batches, the key fingerprint, payload hash
	// and time of every stored event ingested in [from, to) (a zero to: no
	// end) whose time is at or after since (zero: any), and returns the
	// latest ingestion time it saw (zero if none). fn may keep nothing of
	// the batch.
	StoredKeys(ctx context.Context, from, to, since time.Time, fn func([]keyindex.Entry) error) (time.Time, error)
	// FirstIngested returns the earliest ingestion time at or after from of
	// a stored event (zero if there is none).
	FirstIngested(ctx context.Context, from time.Time) (time.Time, error)
	// RunningInserts returns the insert ids starting with prefix of the
	// inserts the database is still running (and that may still land).
	RunningInserts(ctx context.Context, prefix string) ([]string, error)
}

// EventList is a sequence of events to insert. The Ingester's are spread
// over the requests of a flush, read where they are.
type EventList interface {
	Len() int
	At(i int) *Event
}

// Events is an EventList of a slice.
type Events []Event

// Len implements EventList.
func (e Events) Len() int { return len(e) }

// At implements EventList.
func (e Events) At(i int) *Event { return &e[i] }

// Window is the width of a usage time bucket, in UTC.
type Window string

// Windows.
const (
	Hour  Window = "hour"
	Day   Window = "day"
	Month Window = "month"
)

// Dimension is a usage grouping key.
type Dimension string

// Dimensions.
const (
	ByCustomer Dimension = "customer"
	ByCountry  Dimension = "country"
	ByCategory Dimension = "category"
)

// UsageQuery asks for one customer's usage in [From, To), bucketed by Window
// and grouped by GroupBy (country and/or category). From and To are whole
// hours (UTC): usage is counted per hour, and an unaligned range is an
// EINVALID error, not rounded (as OpenMeter answers a range not aligned to
// its window size). A day or month window that the range cuts counts only
// the range's part of it.
type UsageQuery struct {
	CustomerID string
	From, To   time.Time
	Window     Window
	GroupBy    []Dimension
	AsOf       time.Time // if set, count only events ingested at or before AsOf
}

// UsageRow is one bucket of usage. Dimensions not grouped by are empty.
type UsageRow struct {
	Start      time.Time `json:"start"`
	CustomerID string    `json:"customer_id,omitempty"`
	Country    string    `json:"country,omitempty"`
	Category   string    `json:"category,omitempty"`
	Quantity   uint64    `json:"quantity"` // billable units (sum of event quantities)
	Events     uint64    `json:"events"`   // distinct events
}

// Aggregate is the usage of one customer in one country and category over a
// calendar month: what rating and invoice runs work on.
type Aggregate struct {
	CustomerID   string `json:"customer_id"`
	Country      string `json:"country"`
	Category     string `json:"category"`
	PricingType  string `json:"pricing_type,omitempty"`  // "" (regular) or an upstream pricing type (see Event)
	PricingModel string `json:"pricing_model,omitempty"` // "" or the upstream pricing model (see Event)
	Quantity     uint64 `json:"quantity"`
	Events       uint64 `json:"events"`
}

// SummaryQuery asks for everyone's usage in one calendar month, grouped.
type SummaryQuery struct {
	Month   time.Time // any instant of the month (UTC)
	GroupBy []Dimension
	AsOf    time.Time
}

// SeriesQuery asks for the usage of every customer (or of one) in [From,
// To), whole hours (UTC), bucketed by Window and split by at most one of
// country or category: the book-wide trend reports draw.
type SeriesQuery struct {
	From, To   time.Time
	Window     Window
	GroupBy    Dimension // "", ByCountry or ByCategory
	CustomerID string    // "" for every customer
}

// Usage answers usage questions exactly: every event counts once, before
// and after background merges, whatever the rollups have sealed so far.
// All months are calendar months in UTC and all ranges are half-open
// [from, to). It is the one way usage is read: the usage API, the
// month-to-date bill, invoice runs, late usage, reports and simulations.
type Usage interface {
	// Usage returns one customer's usage, bucketed and grouped; empty
	// buckets are omitted. Rows are ordered by Start, then dimensions.
	Usage(ctx context.Context, q UsageQuery) ([]UsageRow, error)
	// Summary returns the month's usage of all customers grouped by the
	// query's dimensions (Start is the first of the month).
	Summary(ctx context.Context, q SummaryQuery) ([]UsageRow, error)
	// MonthlyAggregates returns, in one pass over the month, the quantity
	// per (customer, country, category), in no particular order, for every
	// customer or only the given ones. A non-zero asOf counts only events
	// ingested at or before it (an invoice's cut-off).
	MonthlyAggregates(ctx context.Context, month, asOf time.Time, customers ...string) ([]Aggregate, error)
	// EachMonthlyAggregate is MonthlyAggregates handing fn each row as it
	// is read, one at a time (the *Aggregate is reused between calls), for
	// callers that group a whole month themselves. An error from fn stops
	// the read and is returned.
	EachMonthlyAggregate(ctx context.Context, month, asOf time.Time, customers []string, fn func(*Aggregate) error) error
	// EachDailyAggregate is EachMonthlyAggregate per UTC day and billable
	// status (DayAggregate): the quantity per (customer, day, country,
	// category, pricing type and model, status) of the month, handed to fn
	// one row at a time (the *DayAggregate is reused between calls), in no
	// particular order. Reconciliation with the upstream's report reads it.
	EachDailyAggregate(ctx context.Context, month, asOf time.Time, customers []string, fn func(*DayAggregate) error) error
	// CustomerMonth is MonthlyAggregates for one customer.
	CustomerMonth(ctx context.Context, customerID string, month, asOf time.Time) ([]Aggregate, error)
	// LateIngested returns the customers with events of month ingested in
	// (after, upTo], each with the latest such ingestion time: the months
	// an invoice run must re-rate for adjustment lines.
	LateIngested(ctx context.Context, month, after, upTo time.Time) (map[string]time.Time, error)
	// CustomersWithUsage lists the customer ids with at least one event in
	// the month, sorted. Ids that are not customers in PostgreSQL are
	// unbilled usage (for example "unknown:<phone_number_id>" from webhooks).
	CustomersWithUsage(ctx context.Context, month time.Time) ([]string, error)
	// Series returns the usage of every customer (or of q.CustomerID) per
	// window and, if asked, per country or category, ordered by Start
	// then the dimension; empty windows are omitted.
	Series(ctx context.Context, q SeriesQuery) ([]UsageRow, error)
}

// MonthStart returns the first instant of t's calendar month in UTC.
func MonthStart(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}
