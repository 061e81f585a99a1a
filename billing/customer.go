// Package billing turns metered usage into invoices: customers, monthly
// invoice runs on a schedule, the invoice lifecycle (drafts, gapless
// numbering, finalized invoices frozen forever, void and reissue), and the
// one rating pipeline that invoices, month-to-date bills, reports and
// simulations share. It declares the stores it needs (CustomerStore,
// Ledger, Locker, UsageSource, Pricing); billing/pgstore keeps the ledger
// in PostgreSQL. docs/BILLING.md explains the decisions.
package billing

import (
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
	ParentID     string    `json:"parent_id,omitempty"`
	Consolidated bool      `json:"consolidated,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
}

var (
	customerIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$`)
	currencyPattern   = regexp.MustCompile(`^[A-Z]{3}$`)
	countryPattern    = regexp.MustCompile(`^[A-Z]{2}$`)
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
	return postage.JoinInvalid(errs)
}

// CustomerUpdate changes some fields of a customer; nil fields stay as they are.
type CustomerUpdate struct {
	Name     *string `json:"name"`
	Currency *string `json:"currency"`
	Country  *string `json:"country"`
	Email    *string `json:"email"`
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
