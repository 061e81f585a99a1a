// Package billing turns metered usage into invoices: customers, monthly
// invoice runs on a schedule, the invoice lifecycle (drafts, gapless
// numbering, finalized invoices frozen forever, void and reissue), and the
// one rating pipeline that invoices, month-to-date bills, reports and
// simulations share. It declares the stores it needs (CustomerStore,
// Ledger, Locker, UsageSource, Pricing); billing/pgstore keeps the ledger
// in PostgreSQL. docs/BILLING.md explains the decisions.
package billing

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"postage"
)

// Customer is a paying business. ID is the business's own external id (for
// example its WhatsApp Business Account id), so events can name it directly.
type Customer struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Currency string `json:"currency"`
	Country  string `json:"country,omitempty"`
	Email    string `json:"email,omitempty"`
	// ParentID and Consolidated are the customer's portfolio setting in
	// effect in the current month (UTC; see PortfolioSetting): its parent
	// account, and, for a parent, whether it gets one consolidated invoice
	// for its members. Given when a customer is created, they apply from
	// that month; later changes (PUT /api/v1/customers/{id}/portfolio)
	// apply from a later month.
	ParentID     string `json:"parent_id,omitempty"`
	Consolidated bool   `json:"consolidated,omitempty"`
	// TaxID is the customer's VAT or tax registration number, printed on
	// its invoices (required for reverse charge).
	TaxID string `json:"tax_id,omitempty"`
	// TaxStatus is how its invoices are taxed: taxable (the default),
	// exempt or reverse_charge.
	TaxStatus TaxStatus `json:"tax_status,omitempty"`
	// TaxCountry is the ISO 3166-1 country whose tax rates apply (Country
	// when empty).
	TaxCountry string `json:"tax_country,omitempty"`
	// TaxRegion is an ISO 3166-2 subdivision of TaxCountry ("CA-QC") whose
	// own rates apply in addition to the country's.
	TaxRegion string `json:"tax_region,omitempty"`
	// Address is the postal (billing) address printed on its invoices.
	Address *Address `json:"address,omitempty"`
	// PaymentTermsDays is how many days after an invoice is issued it is
	// due (billing.payment_terms_days, 30, when not set).
	PaymentTermsDays *int      `json:"payment_terms_days,omitempty"`
	CreatedAt        time.Time `json:"created_at"`
	UpdatedAt        time.Time `json:"updated_at"`
}

// TaxStatus is how a customer's invoices are taxed.
type TaxStatus string

// Tax statuses.
const (
	// TaxTaxable customers pay the tax rates of their jurisdiction.
	TaxTaxable TaxStatus = "taxable"
	// TaxExempt customers pay no tax; their invoices say why (billing.exempt_note).
	TaxExempt TaxStatus = "exempt"
	// TaxReverseCharge customers account for the tax themselves (EU B2B
	// services); their invoices carry the legal note
	// (billing.reverse_charge_note) and need the customer's tax id.
	TaxReverseCharge TaxStatus = "reverse_charge"
)

// Valid reports whether s is a known tax status.
func (s TaxStatus) Valid() bool { return s == TaxTaxable || s == TaxExempt || s == TaxReverseCharge }

// Address is a postal address.
type Address struct {
	Line1      string `json:"line1,omitempty"`
	Line2      string `json:"line2,omitempty"`
	City       string `json:"city,omitempty"`
	PostalCode string `json:"postal_code,omitempty"`
	Region     string `json:"region,omitempty"`
	// Country is an ISO 3166-1 alpha-2 code.
	Country string `json:"country,omitempty"`
}

// IsZero reports whether no part of the address is set.
func (a Address) IsZero() bool { return a == Address{} }

// Lines returns the address as printed, one non-empty line each: street
// lines, "postal code city", region, country.
func (a Address) Lines() []string {
	var out []string
	add := func(s string) {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	add(a.Line1)
	add(a.Line2)
	add(a.PostalCode + " " + a.City)
	add(a.Region)
	add(a.Country)
	return out
}

// validate lists the address's problems.
func (a Address) validate() []error {
	var errs []error
	for _, f := range []struct {
		name, v string
		max     int
	}{{"line1", a.Line1, 200}, {"line2", a.Line2, 200}, {"city", a.City, 100}, {"postal_code", a.PostalCode, 20}, {"region", a.Region, 100}} {
		if len(f.v) > f.max {
			errs = append(errs, postage.Errorf(postage.EINVALID, "address.%s: at most %d characters", f.name, f.max))
		}
	}
	if a.Country != "" && !countryPattern.MatchString(a.Country) {
		errs = append(errs, postage.Errorf(postage.EINVALID, "address.country: an ISO 3166-1 alpha-2 code such as DE"))
	}
	return errs
}

// MaxPaymentTermsDays bounds payment terms.
const MaxPaymentTermsDays = 365

// TaxJurisdictions returns the jurisdictions whose tax rates apply to the
// customer: its tax country (or country) and its tax region, if any.
func (c Customer) TaxJurisdictions() []string {
	country := c.TaxCountry
	if country == "" {
		country = c.Country
	}
	if country == "" {
		return nil
	}
	if c.TaxRegion != "" {
		return []string{country, c.TaxRegion}
	}
	return []string{country}
}

var (
	customerIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$`)
	currencyPattern   = regexp.MustCompile(`^[A-Z]{3}$`)
	countryPattern    = regexp.MustCompile(`^[A-Z]{2}$`)
	regionPattern     = regexp.MustCompile(`^[A-Z]{2}-[A-Z0-9]{1,3}$`)
)

// Validate checks every field and lists every problem.
func (c Customer) Validate() error {
	var errs []error
	bad := func(msg string) { errs = append(errs, postage.Errorf(postage.EINVALID, "%s", msg)) }
	if !customerIDPattern.MatchString(c.ID) {
		bad("id: 1-64 characters of letters, digits, '.', '_', ':' or '-', starting with a letter or digit")
	}
	if strings.TrimSpace(c.Name) == "" || len(c.Name) > 200 {
		bad("name: required, at most 200 characters")
	}
	if !currencyPattern.MatchString(c.Currency) {
		bad("currency: an ISO 4217 code such as USD")
	}
	if c.Country != "" && !countryPattern.MatchString(c.Country) {
		bad("country: an ISO 3166-1 alpha-2 code such as DE")
	}
	if len(c.Email) > 320 || (c.Email != "" && !strings.Contains(c.Email, "@")) {
		bad("email: not an email address")
	}
	if c.ParentID != "" && (!customerIDPattern.MatchString(c.ParentID) || c.ParentID == c.ID) {
		bad("parent_id: the id of another customer")
	}
	if c.ParentID != "" && c.Consolidated {
		bad("consolidated: only a parent account (without a parent) receives a consolidated invoice")
	}
	if len(c.TaxID) > 64 {
		bad("tax_id: at most 64 characters")
	}
	if c.TaxStatus != "" && !c.TaxStatus.Valid() {
		bad("tax_status: taxable, exempt or reverse_charge")
	}
	if c.TaxStatus == TaxReverseCharge && strings.TrimSpace(c.TaxID) == "" {
		bad("tax_id: required for reverse_charge (the invoice must show the customer's tax id)")
	}
	if c.TaxCountry != "" && !countryPattern.MatchString(c.TaxCountry) {
		bad("tax_country: an ISO 3166-1 alpha-2 code such as DE")
	}
	if c.TaxRegion != "" {
		country := c.TaxCountry
		if country == "" {
			country = c.Country
		}
		if !regionPattern.MatchString(c.TaxRegion) || country == "" || !strings.HasPrefix(c.TaxRegion, country+"-") {
			bad("tax_region: an ISO 3166-2 code of the tax country, such as CA-QC")
		}
	}
	if c.Address != nil {
		errs = append(errs, c.Address.validate()...)
	}
	if c.PaymentTermsDays != nil && (*c.PaymentTermsDays < 0 || *c.PaymentTermsDays > MaxPaymentTermsDays) {
		bad(fmt.Sprintf("payment_terms_days: 0 to %d", MaxPaymentTermsDays))
	}
	return postage.JoinInvalid(errs)
}

// CustomerUpdate changes some fields of a customer; nil fields stay as they are.
type CustomerUpdate struct {
	Name       *string    `json:"name"`
	Currency   *string    `json:"currency"`
	Country    *string    `json:"country"`
	Email      *string    `json:"email"`
	TaxID      *string    `json:"tax_id"`
	TaxStatus  *TaxStatus `json:"tax_status"`
	TaxCountry *string    `json:"tax_country"`
	TaxRegion  *string    `json:"tax_region"`
	// Address replaces the whole address ({} removes it).
	Address *Address `json:"address"`
	// PaymentTermsDays sets the customer's own terms.
	PaymentTermsDays *int `json:"payment_terms_days"`
}

// Apply changes c by u.
func (u CustomerUpdate) Apply(c *Customer) {
	set := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	set(&c.Name, u.Name)
	set(&c.Currency, u.Currency)
	set(&c.Country, u.Country)
	set(&c.Email, u.Email)
	set(&c.TaxID, u.TaxID)
	set(&c.TaxCountry, u.TaxCountry)
	set(&c.TaxRegion, u.TaxRegion)
	if u.TaxStatus != nil {
		c.TaxStatus = *u.TaxStatus
	}
	if u.Address != nil {
		c.Address = nil
		if !u.Address.IsZero() {
			a := *u.Address
			c.Address = &a
		}
	}
	if u.PaymentTermsDays != nil {
		n := *u.PaymentTermsDays
		c.PaymentTermsDays = &n
	}
}

// Page asks for one page of a list: at most Limit items after Cursor.
type Page struct {
	Limit  int
	Cursor string
}

// Norm returns the page with its limit clamped to 1..1000 (default 100).
func (p Page) Norm() Page {
	switch {
	case p.Limit <= 0:
		p.Limit = 100
	case p.Limit > 1000:
		p.Limit = 1000
	}
	return p
}

// PhoneNumber maps a WhatsApp phone-number id to the customer that owns it,
// so the webhook adapter can attribute status webhooks.
type PhoneNumber struct {
	PhoneNumberID string    `json:"phone_number_id"`
	CustomerID    string    `json:"customer_id"`
	CreatedAt     time.Time `json:"created_at"`
}

var phoneNumberIDPattern = regexp.MustCompile(`^[0-9]{1,32}$`)

// ValidatePhoneNumberID checks a WhatsApp phone-number id: digits only, at most 32.
func ValidatePhoneNumberID(id string) error {
	if !phoneNumberIDPattern.MatchString(id) {
		return postage.Errorf(postage.EINVALID, "phone_number_id: digits only, at most 32")
	}
	return nil
}
