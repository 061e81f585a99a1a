package billing

import (
	"context"
	"regexp"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"postage"
	"postage/pricing"
)

// TaxRate is a tax of one jurisdiction over a range of days: VAT 19% in
// DE from 2007-01-01, GST 5% in CA, QST 9.975% in CA-QC. Rates are kept
// in the ledger, effective-dated: two rates of one jurisdiction never
// overlap (ETAXOVERLAP); a new rate starts where the old one was ended.
type TaxRate struct {
	ID string `json:"id"`
	// Jurisdiction is an ISO 3166-1 country ("DE") or an ISO 3166-2
	// subdivision ("CA-QC").
	Jurisdiction string `json:"jurisdiction"`
	// Name is what invoices call the tax ("VAT", "GST").
	Name string `json:"name"`
	// Rate is a percentage ("19", "9.975"), at most 4 decimals.
	Rate decimal.Decimal `json:"rate"`
	// EffectiveFrom is the first day the rate applies.
	EffectiveFrom Date `json:"effective_from"`
	// EffectiveTo is the first day it no longer applies (open-ended when absent).
	EffectiveTo *Date     `json:"effective_to,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

var (
	jurisdictionPattern = regexp.MustCompile(`^[A-Z]{2}(-[A-Z0-9]{1,3})?$`)
	hundred             = decimal.NewFromInt(100)
)

// Validate checks the rate's fields.
func (r TaxRate) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, postage.Errorf(postage.EINVALID, format, args...))
	}
	if !jurisdictionPattern.MatchString(r.Jurisdiction) {
		bad("jurisdiction: an ISO 3166-1 alpha-2 country (DE) or ISO 3166-2 subdivision (CA-QC)")
	}
	if n := strings.TrimSpace(r.Name); n == "" || len(r.Name) > 50 {
		bad("name: required, at most 50 characters (VAT, GST, sales tax)")
	}
	if r.Rate.IsNegative() || r.Rate.GreaterThan(hundred) || r.Rate.Exponent() < -4 {
		bad("rate: a percentage from 0 to 100 with at most 4 decimals")
	}
	if r.EffectiveFrom.IsZero() {
		bad("effective_from: required, YYYY-MM-DD")
	}
	if r.EffectiveTo != nil && !r.EffectiveTo.After(r.EffectiveFrom) {
		bad("effective_to: must be after effective_from")
	}
	return postage.JoinInvalid(errs)
}

// InEffect reports whether the rate applies on day d.
func (r TaxRate) InEffect(d Date) bool {
	return !d.Before(r.EffectiveFrom) && (r.EffectiveTo == nil || d.Before(*r.EffectiveTo))
}

// NewTaxRate is the body that creates a tax rate; dates and the rate are
// strings so that a bad one is named in the answer.
type NewTaxRate struct {
	Jurisdiction  string `json:"jurisdiction"`
	Name          string `json:"name"`
	Rate          string `json:"rate"`
	EffectiveFrom string `json:"effective_from"`
	EffectiveTo   string `json:"effective_to,omitempty"`
}

// Parse checks the body and returns the rate it describes.
func (n NewTaxRate) Parse() (TaxRate, error) {
	var errs []error
	r := TaxRate{Jurisdiction: strings.TrimSpace(n.Jurisdiction), Name: strings.TrimSpace(n.Name)}
	var err error
	if r.Rate, err = decimal.NewFromString(strings.TrimSpace(n.Rate)); err != nil {
		errs = append(errs, postage.Errorf(postage.EINVALID, "rate: a percentage such as \"19\" or \"9.975\""))
	}
	if r.EffectiveFrom, err = ParseDate(n.EffectiveFrom); err != nil {
		errs = append(errs, postage.Errorf(postage.EINVALID, "effective_from: want YYYY-MM-DD"))
	}
	if n.EffectiveTo != "" {
		to, err := ParseDate(n.EffectiveTo)
		if err != nil {
			errs = append(errs, postage.Errorf(postage.EINVALID, "effective_to: want YYYY-MM-DD"))
		} else {
			r.EffectiveTo = &to
		}
	}
	if len(errs) > 0 {
		return TaxRate{}, postage.JoinInvalid(errs)
	}
	return r, r.Validate()
}

// TaxRateUpdate ends a rate, moves its end, or makes it open-ended again.
type TaxRateUpdate struct {
	// EffectiveTo is the first day the rate no longer applies, YYYY-MM-DD;
	// "" makes it open-ended.
	EffectiveTo string `json:"effective_to"`
}

// TaxRates keeps tax rates (billing/pgstore implements it). A rate that
// overlaps another of its jurisdiction is refused with ETAXOVERLAP and
// nothing is stored.
type TaxRates interface {
	// CreateTaxRate stores a new rate (its id is set).
	CreateTaxRate(ctx context.Context, r TaxRate) (TaxRate, error)
	// SetTaxRateEnd changes when a rate stops applying (nil: never).
	SetTaxRateEnd(ctx context.Context, id string, to *Date) (TaxRate, error)
	// TaxRate returns one rate.
	TaxRate(ctx context.Context, id string) (TaxRate, error)
	// TaxRates lists the rates of a jurisdiction ("" for all), by
	// jurisdiction and start.
	TaxRates(ctx context.Context, jurisdiction string) ([]TaxRate, error)
}

// TaxTable is every tax rate, by jurisdiction, for computing invoices'
// taxes without a query per invoice (a run reads it once).
type TaxTable map[string][]TaxRate

// NewTaxTable indexes rates by jurisdiction.
func NewTaxTable(rates []TaxRate) TaxTable {
	t := TaxTable{}
	for _, r := range rates {
		t[r.Jurisdiction] = append(t[r.Jurisdiction], r)
	}
	return t
}

// At returns the rate of a jurisdiction in effect on day d.
func (t TaxTable) At(jurisdiction string, d Date) (TaxRate, bool) {
	for _, r := range t[jurisdiction] {
		if r.InEffect(d) {
			return r, true
		}
	}
	return TaxRate{}, false
}

// TaxLine is one tax of an invoice or credit note: the rate, the amount it
// applies to and the tax, rounded once per line (docs/BILLING.md, "Taxes").
type TaxLine struct {
	// Name is the tax's name ("VAT"), or "Reverse charge" / "Exempt".
	Name string `json:"name"`
	// Jurisdiction is where the tax is due.
	Jurisdiction string `json:"jurisdiction"`
	// Rate is the percentage applied (0 for reverse charge and exemption).
	Rate decimal.Decimal `json:"rate"`
	// RateID is the ledger's tax rate ("" for reverse charge and exemption).
	RateID string `json:"rate_id,omitempty"`
	// TaxableAmount is the net amount the rate applies to.
	TaxableAmount Money `json:"taxable_amount"`
	// Tax is TaxableAmount × Rate / 100, rounded half away from zero to
	// the currency's minor unit.
	Tax Money `json:"tax"`
}

// TaxPoint is the day whose rates tax an invoice of period: the last day
// of the month billed, when the supply of that month is complete (a
// continuous supply is taxed at the end of each period it is billed for).
func TaxPoint(period pricing.Month) Date { return DateOf(period.End()).AddDays(-1) }

// TaxNotes are the legal notes invoices of untaxed customers carry
// (billing.reverse_charge_note, billing.exempt_note).
type TaxNotes struct {
	ReverseCharge string
	Exempt        string
}

// Default legal notes.
const (
	DefaultReverseChargeNote = "Reverse charge: VAT to be accounted for by the recipient (Article 196, Council Directive 2006/112/EC)."
	DefaultExemptNote        = "Exempt from tax."
)

// Taxes computes the tax lines of an invoice of period for customer c
// whose lines total net (before tax):
//
//   - taxable: one line per rate in effect on the tax point (TaxPoint) in
//     the customer's jurisdictions (its tax country, then its tax region);
//     no rate in effect means no tax is charged there (postage is not
//     registered there) and no line;
//   - reverse_charge and exempt: one line at 0% over the whole net amount,
//     and the legal note.
//
// Each line's tax is rounded once, on the line's taxable amount (the sum
// of the invoice's rounded lines): "per rate", not per invoice line.
func Taxes(c CustomerSnapshot, net decimal.Decimal, period pricing.Month, places int, table TaxTable, notes TaxNotes) (lines []TaxLine, tax Money, note string) {
	lines = []TaxLine{}
	tax = NewMoney(decimal.Zero, places)
	if len(table) == 0 && c.TaxStatus != TaxReverseCharge && c.TaxStatus != TaxExempt {
		return lines, tax, "" // the usual run without tax rates: no work per invoice
	}
	juris := c.taxJurisdictions()
	switch c.TaxStatus {
	case TaxReverseCharge, TaxExempt:
		name, n := "Reverse charge", notes.ReverseCharge
		if c.TaxStatus == TaxExempt {
			name, n = "Exempt", notes.Exempt
		}
		j := ""
		if len(juris) > 0 {
			j = juris[0]
		}
		lines = append(lines, TaxLine{Name: name, Jurisdiction: j, Rate: decimal.Zero, TaxableAmount: NewMoney(net, places), Tax: tax})
		return lines, tax, n
	}
	if len(table) == 0 {
		return lines, tax, "" // no rates at all: nothing to look up
	}
	day := TaxPoint(period)
	sum := decimal.Zero
	for _, j := range juris {
		r, ok := table.At(j, day)
		if !ok {
			continue
		}
		t := RoundTax(net, r.Rate, places)
		sum = sum.Add(t)
		lines = append(lines, TaxLine{Name: r.Name, Jurisdiction: j, Rate: r.Rate, RateID: r.ID,
			TaxableAmount: NewMoney(net, places), Tax: NewMoney(t, places)})
	}
	if len(lines) == 0 {
		return lines, tax, ""
	}
	return lines, NewMoney(sum, places), ""
}

// RoundTax is amount × rate% rounded half away from zero (commercial
// rounding, what most tax authorities prescribe) to places decimals.
func RoundTax(amount, rate decimal.Decimal, places int) decimal.Decimal {
	return amount.Mul(rate).Shift(-2).Round(int32(places))
}

// taxJurisdictions is CustomerSnapshot's version of Customer.TaxJurisdictions.
func (c CustomerSnapshot) taxJurisdictions() []string {
	return Customer{Country: c.Country, TaxCountry: c.TaxCountry, TaxRegion: c.TaxRegion}.TaxJurisdictions()
}
