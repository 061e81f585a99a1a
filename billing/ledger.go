package billing

import (
	"context"
	"time"

	"postage"
	"postage/pricing"
)

// CustomerStore keeps customers and the WhatsApp phone-number ids that
// attribute webhooks to them (billing/pgstore implements it). Errors carry
// postage codes: ENOTFOUND for a missing customer, ECONFLICT for an id
// taken or a change that contradicts the ledger (a currency other than
// the customer's cards'), EINVALID for a customer that fails Validate.
type CustomerStore interface {
	// Create stores a new customer (currency USD when empty).
	Create(ctx context.Context, c Customer) (Customer, error)
	// Get returns one customer.
	Get(ctx context.Context, id string) (Customer, error)
	// List returns customers ordered by id, one page at a time; the
	// returned cursor is empty on the last page.
	List(ctx context.Context, p Page) ([]Customer, string, error)
	// Search returns up to limit customers whose id or name contains q
	// (case-insensitive), by name then id: finding a customer by name.
	Search(ctx context.Context, q string, limit int) ([]Customer, error)
	// All returns every customer keyed by id (invoice runs and reports).
	All(ctx context.Context) (map[string]Customer, error)
	// Update changes the given fields of a customer. A currency change is
	// refused (ECONFLICT) while the customer has a rate card assignment
	// or an invoice in another currency.
	Update(ctx context.Context, id string, u CustomerUpdate) (Customer, error)
	// AddPhoneNumber maps a phone-number id to a customer; an id of
	// another customer is a conflict, re-adding one a no-op.
	AddPhoneNumber(ctx context.Context, customerID, phoneNumberID string) (PhoneNumber, error)
	// RemovePhoneNumber deletes a mapping of the customer.
	RemovePhoneNumber(ctx context.Context, customerID, phoneNumberID string) error
	// PhoneNumbers lists a customer's phone-number ids.
	PhoneNumbers(ctx context.Context, customerID string) ([]PhoneNumber, error)
	// CustomerForPhoneNumber resolves a phone-number id to its customer
	// id; ok is false when the id is not mapped.
	CustomerForPhoneNumber(ctx context.Context, phoneNumberID string) (customerID string, ok bool, err error)

	// SetPortfolio gives a customer its portfolio setting from
	// s.EffectiveFrom on, which must be after the current month (UTC),
	// replacing a setting from the same month. The parent must exist
	// (ENOTFOUND), bill in the customer's currency, and the portfolio stay
	// one level deep in every month from then on (ECONFLICT otherwise).
	SetPortfolio(ctx context.Context, s PortfolioSetting) (PortfolioSetting, error)
	// PortfolioHistory returns a customer's portfolio settings, oldest first.
	PortfolioHistory(ctx context.Context, customerID string) ([]PortfolioSetting, error)
	// PortfoliosIn returns the portfolio settings in effect in a month.
	PortfoliosIn(ctx context.Context, m pricing.Month) (Portfolios, error)
}

// Invoices are the reads of the invoice ledger that finance and customers
// make (billing/pgstore implements them, as part of Ledger). A finalized
// or void invoice is read from its frozen document.
type Invoices interface {
	// Get returns one invoice.
	Get(ctx context.Context, id string) (Invoice, error)
	// List returns invoices matching f, newest period first, then
	// customer and seq, a page at a time; the returned cursor is empty on
	// the last page.
	List(ctx context.Context, f InvoiceFilter, p Page) ([]Invoice, string, error)
	// PeriodInvoices returns every invoice of a period (all statuses), by
	// customer then seq, for the period export.
	PeriodInvoices(ctx context.Context, period pricing.Month) ([]Invoice, error)
	// Runs returns the latest invoice runs, newest first (all periods when
	// period is zero; limit 1-1000, else 50).
	Runs(ctx context.Context, period pricing.Month, limit int) ([]Run, error)
	// Unbilled returns the unbilled-usage report of a period as of its
	// last run.
	Unbilled(ctx context.Context, period pricing.Month) ([]UnbilledUsage, error)
}

// Ledger is the invoice ledger as invoice runs and the invoice lifecycle
// use it: run records, what a run plans from, draft writes, numbering,
// void and reissue, and the rendered documents of finalized invoices.
type Ledger interface {
	Invoices

	// StartRun records a run (its ID is set).
	StartRun(ctx context.Context, run *Run) error
	// FailInterrupted marks every run still recorded as running, except
	// the given one, as failed: only the holder of the run lock records a
	// run as running, so any other died half-way.
	FailInterrupted(ctx context.Context, except int64, at time.Time) error
	// FinishRun records a run's outcome.
	FinishRun(ctx context.Context, run Run) error

	// LiveInvoices returns the draft or finalized invoice of each customer
	// of a period.
	LiveInvoices(ctx context.Context, period pricing.Month) (map[string]LiveInvoice, error)
	// AdjustedLater returns the customers whose invoices of the months
	// after period, up to through, carry adjustment lines for period.
	AdjustedLater(ctx context.Context, period, through pricing.Month) (map[string]bool, error)
	// Closings returns what decides, for the months from..to-1, which
	// customers' months are closed and up to when they were billed.
	Closings(ctx context.Context, from, to pricing.Month) (Closings, error)
	// ClosedMonths returns the months from..to-1 that are closed for one
	// customer: a run of the month completed or a finalized invoice bills
	// it, and no draft of it exists.
	ClosedMonths(ctx context.Context, customerID string, from, to pricing.Month) ([]pricing.Month, error)
	// BilledLines returns the lines for month m on the customer's invoices
	// that are not void, except the excluded ones.
	BilledLines(ctx context.Context, customerID string, m pricing.Month, exclude []string) ([]Line, error)

	// WriteDrafts inserts new drafts and refreshes changed ones (all of one
	// period); finalized and void invoices are never touched.
	WriteDrafts(ctx context.Context, drafts []*Draft, now time.Time) (created, refreshed int, err error)
	// ClosePeriod records a period's run cut-off and replaces its
	// unbilled-usage report, at once.
	ClosePeriod(ctx context.Context, period pricing.Month, cutoff, now time.Time, unbilled []UnbilledUsage) error

	// DueDrafts returns the ids of the period's drafts whose grace ended by now.
	DueDrafts(ctx context.Context, period pricing.Month, now time.Time) ([]string, error)
	// DuePeriods returns the periods having drafts whose grace ended by now.
	DuePeriods(ctx context.Context, now time.Time) ([]pricing.Month, error)
	// Finalize numbers a draft and freezes it (Freeze, with issuer) in one
	// transaction; another status is ECONFLICT.
	Finalize(ctx context.Context, id string, issuer Issuer) (Invoice, error)
	// NextSeq returns the seq the next invoice of a customer-period takes.
	NextSeq(ctx context.Context, customerID string, period pricing.Month) (int, error)
	// VoidAndReissue voids a finalized invoice with a reason, freezing it
	// as voided (with its own issuer, or issuer for one finalized without
	// a frozen document), and inserts its reissue, a draft, linking both,
	// in one transaction. Another status is ECONFLICT.
	VoidAndReissue(ctx context.Context, id, reason string, now time.Time, reissue *Invoice, issuer Issuer) error

	// FreezeUnfrozen freezes (Freeze, with issuer) every finalized or void
	// invoice that has no frozen document (finalized before invoices were
	// frozen) and returns how many.
	FreezeUnfrozen(ctx context.Context, issuer Issuer) (int, error)

	// Document returns the stored rendering of an invoice in a status.
	Document(ctx context.Context, id string, status Status, f Format) (body []byte, ok bool, err error)
	// PutDocument stores a rendering unless one is stored already, and
	// returns the stored one: the first rendering is kept forever.
	PutDocument(ctx context.Context, id string, status Status, f Format, body []byte) ([]byte, error)
}

// Locker serializes invoice runs across replicas (billing/pgstore: a
// PostgreSQL session advisory lock, released if the process dies).
type Locker interface {
	// LockRuns takes the run lock, waiting for a run in progress when
	// wait is set and giving up at once (locked false) otherwise. While
	// it is held, customers cannot be deleted or renamed (a delete in
	// progress is waited for). unlock releases it.
	LockRuns(ctx context.Context, wait bool) (unlock func(), locked bool, err error)
}

// InvoiceFilter narrows a list of invoices; zero fields do not filter.
type InvoiceFilter struct {
	Period     pricing.Month
	Status     Status
	CustomerID string
	// Number is an invoice number (PST-2026-000099): the finalized or
	// void invoice that carries it.
	Number string
	// NotDraft leaves drafts out (customers never see drafts).
	NotDraft bool
}

// Validate checks the filter's values.
func (f InvoiceFilter) Validate() error {
	var errs []error
	if f.Status != "" && !f.Status.Valid() {
		errs = append(errs, postage.Errorf(postage.EINVALID, "status %q: want draft, finalized or void", f.Status))
	}
	if !f.Period.IsZero() && !f.Period.Valid() {
		errs = append(errs, postage.Errorf(postage.EINVALID, "period %q: want YYYY-MM", f.Period))
	}
	return postage.JoinInvalid(errs)
}

// LiveInvoice is what a run needs of the draft or finalized invoice of a
// customer-period.
type LiveInvoice struct {
	ID     string
	Seq    int
	Status Status
	Hash   []byte // content hash of a draft (Draft.Hash)
}

// CustomerMonth is one customer's calendar month.
type CustomerMonth struct {
	CustomerID string
	Month      pricing.Month
}

// Closings is what decides which earlier months need adjustment lines.
type Closings struct {
	// BilledTo is, per customer-month billed by a finalized invoice (its
	// own or an adjustment), the latest usage cut-off those invoices counted.
	BilledTo map[CustomerMonth]time.Time
	// Open holds the customer-months that have a draft.
	Open map[CustomerMonth]bool
	// RunCutoffs is each month's last completed run cut-off.
	RunCutoffs map[pricing.Month]time.Time
}

// Run is the record of one invoice run.
type Run struct {
	ID          int64      `json:"id"`
	Period      string     `json:"period"`
	Trigger     string     `json:"trigger"`
	Status      string     `json:"status"`
	StartedAt   time.Time  `json:"started_at"`
	EndedAt     *time.Time `json:"ended_at,omitempty"`
	UsageCutoff *time.Time `json:"usage_cutoff,omitempty"`
	Customers   int        `json:"customers"`
	Created     int        `json:"created"`
	Refreshed   int        `json:"refreshed"`
	Finalized   int        `json:"finalized"`
	Unchanged   int        `json:"unchanged"`
	Unbilled    int        `json:"unbilled"`
	Errors      int        `json:"errors"`
	Error       string     `json:"error,omitempty"`
}

// UnbilledUsage is usage of one (customer, recipient country, category)
// that a run could not bill, and why.
type UnbilledUsage struct {
	Period      string    `json:"period"`
	CustomerID  string    `json:"customer_id"`
	Reason      string    `json:"reason"`
	Detail      string    `json:"detail,omitempty"`
	Country     string    `json:"country"`
	Category    string    `json:"category"`
	Quantity    int64     `json:"quantity"`
	UsageCutoff time.Time `json:"usage_cutoff"`
}

// Reasons usage is not billed (invoice runs' unbilled report, reports'
// unbilled usage and simulations use the same codes).
const (
	UnbilledUnknownCustomer  = "unknown_customer"
	UnbilledNoCard           = "no_rate_card"
	UnbilledCurrencyMismatch = "currency_mismatch"
	UnbilledRatingError      = "rating_error"
	// UnbilledUnmappedCategory: rows of a category the card does not list
	// (and no unmapped rule prices); only those rows are unbilled.
	UnbilledUnmappedCategory = pricing.UnratedUnmapped
	// UnbilledNoCostCard: no cost card is in effect in the month (or it has
	// no version in effect), so neither cost nor cost-plus prices exist.
	UnbilledNoCostCard = "no_cost_card"
	// UnbilledNoExchangeRate: a cost-plus customer billed in another
	// currency than the cost card's, and no rate is recorded for the month.
	UnbilledNoExchangeRate = "no_exchange_rate"
)
