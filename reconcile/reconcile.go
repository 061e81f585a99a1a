package reconcile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/shopspring/decimal"

	"postage"
	"postage/billing"
	"postage/metering"
	"postage/pricing"
	"postage/reports"
)

// Report is an imported upstream report of a month: what the file held
// (its data points added per phone number, day, country, category and
// pricing type) and who imported it when. The latest report of a month
// is the one its reconciliation compares.
type Report struct {
	ID          int64           `json:"id"`
	Month       pricing.Month   `json:"month"`
	Source      string          `json:"source"` // the file's name, as given
	Format      string          `json:"format"` // csv or json
	Granularity string          `json:"granularity"`
	Currency    string          `json:"currency"`
	DataPoints  int             `json:"data_points"`
	Rows        int             `json:"rows"`
	Volume      int64           `json:"volume"`
	Cost        decimal.Decimal `json:"cost"`
	ImportedAt  time.Time       `json:"imported_at"`
	ImportedBy  string          `json:"imported_by"`
}

// Status is where a month's reconciliation stands.
type Status string

// Statuses.
const (
	// StatusWithinTolerance: the difference is within the tolerance.
	StatusWithinTolerance Status = "within_tolerance"
	// StatusHeld: the difference exceeds the tolerance and nobody accepted
	// it: the month's invoices are not finalized.
	StatusHeld Status = "held"
	// StatusAccepted: finance accepted a difference at least this large.
	StatusAccepted Status = "accepted"
	// StatusExceedsTolerance: the difference exceeds the tolerance, and
	// holding finalization is turned off (reconcile.hold_finalization).
	StatusExceedsTolerance Status = "exceeds_tolerance"
)

// CauseTotal sums the differences of one cause.
type CauseTotal struct {
	Cause    Cause           `json:"cause"`
	Lines    int             `json:"lines"`
	Messages int64           `json:"messages"` // postage − upstream
	Amount   decimal.Decimal `json:"amount"`   // postage − upstream
}

// UnmappedPhoneNumber is a phone number id of the upstream's report that
// no customer has: its messages cannot be billed.
type UnmappedPhoneNumber struct {
	PhoneNumberID    string          `json:"phone_number_id"`
	UpstreamMessages int64           `json:"upstream_messages"`
	UpstreamCost     decimal.Decimal `json:"upstream_cost"`
	// PostageMessages is what postage metered for it, as customer
	// "unknown:<phone number id>".
	PostageMessages int64 `json:"postage_messages"`
}

// CostCard names the card version postage's own cost was rated with.
type CostCard struct {
	CardID  string `json:"card_id"`
	Version int    `json:"version"`
}

// Result is a comparison of a report with postage's own count and cost.
// Messages and Amount are postage's minus the upstream's; the gross
// figures add the absolute difference of every customer (so differences
// of two customers do not cancel out), and are what the tolerance is
// checked against.
type Result struct {
	Month            pricing.Month         `json:"month"`
	ReportID         int64                 `json:"report_id"`
	Currency         string                `json:"currency"`
	CostCard         CostCard              `json:"cost_card"`
	ComparedAt       time.Time             `json:"compared_at"`
	PostageMessages  int64                 `json:"postage_messages"`
	UpstreamMessages int64                 `json:"upstream_messages"`
	PostageCost      decimal.Decimal       `json:"postage_cost"`
	UpstreamCost     decimal.Decimal       `json:"upstream_cost"`
	Messages         int64                 `json:"messages"`
	Amount           decimal.Decimal       `json:"amount"`
	GrossMessages    int64                 `json:"gross_messages"`
	GrossAmount      decimal.Decimal       `json:"gross_amount"`
	Customers        int                   `json:"customers"` // customers with a difference
	Lines            int                   `json:"lines"`
	Causes           []CauseTotal          `json:"causes"`
	Unmapped         []UnmappedPhoneNumber `json:"unmapped_phone_numbers"`
}

// Acceptance is finance accepting a month's difference: who, when, why,
// and the gross difference accepted. It covers any later comparison of
// the same report whose gross difference is not larger.
type Acceptance struct {
	By            string          `json:"by"`
	At            time.Time       `json:"at"`
	Reason        string          `json:"reason"`
	GrossMessages int64           `json:"gross_messages"`
	GrossAmount   decimal.Decimal `json:"gross_amount"`
}

// Reconciliation is a month's latest comparison with where it stands.
type Reconciliation struct {
	Result
	Report Report `json:"report"`
	// TolerancePercent is the tolerance the status was decided with: the
	// gross difference may be this percentage of the upstream's messages
	// and of its cost.
	TolerancePercent decimal.Decimal `json:"tolerance_percent"`
	Exceeds          bool            `json:"exceeds"`
	Status           Status          `json:"status"`
	// Acceptances lists every acceptance of the report, oldest first.
	Acceptances []Acceptance `json:"acceptances"`
}

// DiffFilter selects and pages a reconciliation's differences.
type DiffFilter struct {
	Cause    Cause
	Customer string
	After    int // the cursor: differences after this position
	Limit    int // 1-1000; 0: all
}

// Store keeps imported reports, their comparisons and acceptances
// (reconcile/pgstore, in PostgreSQL).
type Store interface {
	// CreateReport stores a report and its rows, assigning its id.
	CreateReport(ctx context.Context, r Report, rows []UpstreamRow) (Report, error)
	// LatestReport returns the month's latest report (ENOTFOUND: none).
	LatestReport(ctx context.Context, m pricing.Month) (Report, error)
	// EachUpstreamRow hands fn the report's rows grouped by customer (in
	// customer order), each with its phone number id resolved through
	// the phone-number map ("unknown:<id>" for a number no customer has,
	// mapped says which). The *UpstreamRow is reused between calls.
	EachUpstreamRow(ctx context.Context, reportID int64, fn func(customer string, mapped bool, r *UpstreamRow) error) error
	// SaveResult stores a comparison of a report and its differences,
	// replacing the report's earlier one.
	SaveResult(ctx context.Context, r *Result, diffs []Difference) error
	// Result returns a report's comparison (ENOTFOUND: none yet).
	Result(ctx context.Context, reportID int64) (*Result, error)
	// Differences returns a report's differences in their order, with
	// each one's position (the cursor of the next page).
	Differences(ctx context.Context, reportID int64, f DiffFilter) ([]Difference, []int, error)
	// Accept records an acceptance of a report's difference.
	Accept(ctx context.Context, reportID int64, a Acceptance) error
	// Acceptances lists a report's acceptances, oldest first.
	Acceptances(ctx context.Context, reportID int64) ([]Acceptance, error)
}

// DailyUsage is the read reconciliation makes of metering's usage API
// (metering.Usage has it): a month per customer, UTC day and billable
// status.
type DailyUsage interface {
	EachDailyAggregate(ctx context.Context, month, asOf time.Time, customers []string, fn func(*metering.DayAggregate) error) error
}

var _ DailyUsage = metering.Usage(nil)

// Customers lists the known customers (their country decides the
// international variant of a category) and the portfolios of a month
// (the upstream counts tiers per portfolio, so cost is rated per
// portfolio); billing.CustomerStore has both.
type Customers interface {
	All(ctx context.Context) (map[string]billing.Customer, error)
	billing.PortfolioSource
}

// DefaultTolerancePercent is the default tolerance: 0.5% of the
// upstream's messages and cost.
var DefaultTolerancePercent = decimal.New(5, -1)

// Service imports upstream reports, compares them with postage's usage,
// records finance's acceptances and says whether a month's finalization
// is held.
type Service struct {
	Store     Store
	Usage     DailyUsage
	Customers Customers
	// Cards is the rate-card ledger (pricing/pgstore): postage's own cost
	// is rated at the cost card in effect in the month (Rating.RateAtCost).
	Cards billing.Pricing
	// TolerancePercent is the gross difference a month may have, as a
	// percentage of the upstream's messages and of its cost, before it is
	// held (DefaultTolerancePercent when nil... zero means none).
	TolerancePercent decimal.Decimal
	// Hold makes a month whose difference exceeds the tolerance hold the
	// finalization of its invoices until finance accepts it.
	Hold bool
	// Now is the clock.
	Now func() time.Time
}

var _ billing.FinalizationHold = (*Service)(nil)

func (s *Service) now() time.Time {
	if s.Now == nil {
		return time.Now().UTC()
	}
	return s.Now().UTC()
}

// ImportRequest is an upstream report to import.
type ImportRequest struct {
	Month    pricing.Month
	Format   string // FormatCSV or FormatJSON
	Currency string // the currency of the file's costs ("": the cost card's)
	Source   string // the file's name
	By       string // who imports it
	Body     io.Reader
}

// Validate checks the request's fields (the body is checked as it is read).
func (r ImportRequest) Validate() error {
	var errs []error
	if !r.Month.Valid() {
		errs = append(errs, postage.Errorf(postage.EINVALID, "month: want YYYY-MM"))
	}
	if r.Format != FormatCSV && r.Format != FormatJSON {
		errs = append(errs, postage.Errorf(postage.EINVALID, "format %q: want csv or json", r.Format))
	}
	if r.Currency != "" {
		if _, ok := pricing.MinorUnits(r.Currency); !ok {
			errs = append(errs, postage.Errorf(postage.EINVALID, "currency %q: want an ISO 4217 code", r.Currency))
		}
	}
	if err := checkText("source", r.Source, 200, false); err != nil {
		errs = append(errs, err)
	}
	if err := checkText("by", r.By, 200, true); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// checkText checks a free text field: UTF-8 without control characters,
// at most max bytes.
func checkText(name, v string, max int, required bool) error {
	switch {
	case required && strings.TrimSpace(v) == "":
		return postage.Errorf(postage.EINVALID, "%s is required", name)
	case len(v) > max:
		return postage.Errorf(postage.EINVALID, "%s: at most %d bytes", name, max)
	case !utf8.ValidString(v) || !textOK([]string{v}):
		return postage.Errorf(postage.EINVALID, "%s: UTF-8 text without control characters, please", name)
	}
	return nil
}

// Import reads an upstream report, stores it as the month's latest and
// compares it with postage's usage.
func (s *Service) Import(ctx context.Context, req ImportRequest) (*Reconciliation, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	if req.Month.After(pricing.MonthOf(s.now())) {
		return nil, postage.Errorf(postage.EINVALID, "month %s has not started", req.Month)
	}
	rating := s.newRating()
	cr, err := costCardIn(ctx, rating, req.Month)
	if err != nil {
		return nil, err
	}
	cardCur := cr.Version().Currency
	if req.Currency == "" {
		req.Currency = cardCur
	}
	if req.Currency != cardCur {
		return nil, postage.Errorf(postage.EINVALID, "currency: the report is in %s, the cost card %s in %s, and there is no exchange rate to compare them", req.Currency, cr.Version().CardID, cardCur)
	}
	p, err := Decode(req.Body, req.Format, req.Month)
	if err != nil {
		return nil, err
	}
	r, err := s.Store.CreateReport(ctx, Report{Month: req.Month, Source: req.Source, Format: req.Format, Granularity: p.Granularity,
		Currency: req.Currency, DataPoints: p.DataPoints, Rows: len(p.Rows), Volume: p.Volume, Cost: p.Cost,
		ImportedAt: s.now(), ImportedBy: req.By}, p.Rows)
	if err != nil {
		return nil, fmt.Errorf("store the upstream report: %w", err)
	}
	if _, err := s.compare(ctx, rating, cr, r); err != nil {
		return nil, err
	}
	return s.Get(ctx, req.Month)
}

// Compare compares the month's latest report again with postage's usage
// as it is now (late events, phone numbers mapped since), replacing the
// stored comparison.
func (s *Service) Compare(ctx context.Context, m pricing.Month) (*Reconciliation, error) {
	r, err := s.latest(ctx, m)
	if err != nil {
		return nil, err
	}
	rating := s.newRating()
	cr, err := costCardIn(ctx, rating, m)
	if err != nil {
		return nil, err
	}
	if _, err := s.compare(ctx, rating, cr, r); err != nil {
		return nil, err
	}
	return s.Get(ctx, m)
}

func (s *Service) latest(ctx context.Context, m pricing.Month) (Report, error) {
	if !m.Valid() {
		return Report{}, postage.Errorf(postage.EINVALID, "month: want YYYY-MM")
	}
	r, err := s.Store.LatestReport(ctx, m)
	if postage.ErrorCode(err) == postage.ENOTFOUND {
		return Report{}, postage.Errorf(postage.ENOTFOUND, "no upstream report imported for %s", m)
	}
	return r, err
}

// newRating is a rating pipeline for one request, with portfolios.
func (s *Service) newRating() *billing.Rating {
	r := billing.NewRating(s.Cards)
	r.Portfolios = s.Customers
	return r
}

// costCardIn returns the Rater of the cost card in effect in month m
// (pricing's schedule, read through the rating pipeline). None in effect
// is EINVALID, naming the month.
func costCardIn(ctx context.Context, rating *billing.Rating, m pricing.Month) (*pricing.Rater, error) {
	_, rt, err := rating.CostCard(ctx, m)
	if postage.ErrorCode(err) == postage.ENOTFOUND {
		return nil, postage.Errorf(postage.EINVALID, "no cost card in effect in %s (%s): schedule one with POST /api/v1/cost-cards or `postage costcards set`", m, postage.ErrorMessage(err))
	}
	return rt, err
}

// Get returns the month's latest reconciliation and where it stands.
func (s *Service) Get(ctx context.Context, m pricing.Month) (*Reconciliation, error) {
	r, err := s.latest(ctx, m)
	if err != nil {
		return nil, err
	}
	res, err := s.Store.Result(ctx, r.ID)
	if postage.ErrorCode(err) == postage.ENOTFOUND {
		return nil, postage.Errorf(postage.ENOTFOUND, "the report %d of %s has not been compared yet", r.ID, m)
	} else if err != nil {
		return nil, err
	}
	acc, err := s.Store.Acceptances(ctx, r.ID)
	if err != nil {
		return nil, err
	}
	return s.view(r, res, acc), nil
}

// tolerance returns the configured tolerance percentage.
func (s *Service) tolerance() decimal.Decimal { return s.TolerancePercent }

// view decides where a result stands.
func (s *Service) view(r Report, res *Result, acc []Acceptance) *Reconciliation {
	pct := s.tolerance()
	limit := func(of decimal.Decimal) decimal.Decimal { return of.Mul(pct).Div(decimal.New(100, 0)) }
	exceeds := res.GrossAmount.GreaterThan(limit(res.UpstreamCost)) ||
		decimal.NewFromInt(res.GrossMessages).GreaterThan(limit(decimal.NewFromInt(res.UpstreamMessages)))
	v := &Reconciliation{Result: *res, Report: r, TolerancePercent: pct, Exceeds: exceeds, Acceptances: acc}
	if v.Acceptances == nil {
		v.Acceptances = []Acceptance{}
	}
	switch {
	case !exceeds:
		v.Status = StatusWithinTolerance
	case covered(acc, res):
		v.Status = StatusAccepted
	case s.Hold:
		v.Status = StatusHeld
	default:
		v.Status = StatusExceedsTolerance
	}
	return v
}

// covered reports whether an acceptance covers the result's difference.
func covered(acc []Acceptance, res *Result) bool {
	for _, a := range acc {
		if a.GrossMessages >= res.GrossMessages && a.GrossAmount.GreaterThanOrEqual(res.GrossAmount) {
			return true
		}
	}
	return false
}

// AcceptRequest is finance accepting a month's difference.
type AcceptRequest struct {
	Reason string `json:"reason"`
}

// Accept records that finance (by) accepts the month's current
// difference, with why: a held month's invoices may then be finalized.
func (s *Service) Accept(ctx context.Context, m pricing.Month, by, reason string) (*Reconciliation, error) {
	var errs []error
	if err := checkText("reason", reason, 1000, true); err != nil {
		errs = append(errs, err)
	}
	if err := checkText("by", by, 200, true); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	rec, err := s.Get(ctx, m)
	if err != nil {
		return nil, err
	}
	a := Acceptance{By: by, At: s.now(), Reason: strings.TrimSpace(reason), GrossMessages: rec.GrossMessages, GrossAmount: rec.GrossAmount}
	if err := s.Store.Accept(ctx, rec.ReportID, a); err != nil {
		return nil, err
	}
	return s.Get(ctx, m)
}

// Differences returns a page of the month's differences and the cursor of
// the next page (0: none).
func (s *Service) Differences(ctx context.Context, m pricing.Month, f DiffFilter) ([]Difference, int, error) {
	if f.Cause != "" && !f.Cause.Valid() {
		return nil, 0, postage.Errorf(postage.EINVALID, "cause %q: want one of %s", f.Cause, causeList())
	}
	if f.Limit < 0 || f.Limit > 1000 {
		return nil, 0, postage.Errorf(postage.EINVALID, "limit: 1 to 1000")
	}
	rec, err := s.Get(ctx, m)
	if err != nil {
		return nil, 0, err
	}
	ds, pos, err := s.Store.Differences(ctx, rec.ReportID, f)
	if err != nil {
		return nil, 0, err
	}
	next := 0
	if f.Limit > 0 && len(ds) == f.Limit {
		next = pos[len(pos)-1]
	}
	return ds, next, nil
}

func causeList() string {
	var s []string
	for _, c := range Causes {
		s = append(s, string(c))
	}
	return strings.Join(s, ", ")
}

// FinalizationHold implements billing.FinalizationHold: the reason the
// invoices of period must not be finalized yet ("" when they may): its
// latest reconciliation is held.
func (s *Service) FinalizationHold(ctx context.Context, period pricing.Month) (string, error) {
	if !s.Hold {
		return "", nil
	}
	r, err := s.Store.LatestReport(ctx, period)
	if postage.ErrorCode(err) == postage.ENOTFOUND {
		return "", nil
	} else if err != nil {
		return "", err
	}
	res, err := s.Store.Result(ctx, r.ID)
	if postage.ErrorCode(err) == postage.ENOTFOUND {
		return "", nil
	} else if err != nil {
		return "", err
	}
	acc, err := s.Store.Acceptances(ctx, r.ID)
	if err != nil {
		return "", err
	}
	v := s.view(r, res, acc)
	if v.Status != StatusHeld {
		return "", nil
	}
	return fmt.Sprintf("the reconciliation of %s with the upstream's report differs by %d messages and %s %s (gross), over the tolerance of %s%%: finance must accept the difference (postage reconcile accept %s)",
		period, v.GrossMessages, v.GrossAmount.String(), v.Currency, v.TolerancePercent.String(), period), nil
}

// DifferencesTable returns differences as a table (the CSV of the API
// and the CLI).
func DifferencesTable(ds []Difference) reports.Table {
	t := reports.Table{Header: []string{"customer_id", "day", "market", "category", "cause", "postage_messages", "upstream_messages", "messages",
		"postage_cost", "upstream_cost", "amount", "detail"}}
	for _, d := range ds {
		t.Rows = append(t.Rows, []string{d.CustomerID, d.Day, d.Market, d.Category, string(d.Cause),
			strconv.FormatInt(d.PostageMessages, 10), strconv.FormatInt(d.UpstreamMessages, 10), strconv.FormatInt(d.Messages, 10),
			d.PostageCost.String(), d.UpstreamCost.String(), d.Amount.String(), d.Detail})
	}
	return t
}

// sortDiffs orders differences by customer, day, market, category, cause.
func sortDiffs(ds []Difference) {
	order := map[Cause]int{}
	for i, c := range Causes {
		order[c] = i
	}
	sort.SliceStable(ds, func(i, j int) bool {
		a, b := &ds[i], &ds[j]
		if a.CustomerID != b.CustomerID {
			return a.CustomerID < b.CustomerID
		}
		if a.Day != b.Day {
			return a.Day < b.Day
		}
		if a.Market != b.Market {
			return a.Market < b.Market
		}
		if a.Category != b.Category {
			return a.Category < b.Category
		}
		return order[a.Cause] < order[b.Cause]
	})
}
