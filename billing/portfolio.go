package billing

import (
	"context"
	"errors"
	"slices"

	"postage"
	"postage/pricing"
)

// PortfolioSetting is a customer's place in a portfolio from a month on:
// its parent account (members of one parent share tier counts per market
// and category per month, as the upstream counts volume per business
// portfolio) and, for a parent, whether it receives one consolidated
// invoice with a section per member instead of each member its own.
//
// Settings take effect on the first of a month, like card assignments: a
// month's portfolio never changes once the month has begun (a change made
// mid-month applies from the next month; one made when the customer is
// created applies from that month). A portfolio is one level deep: a
// parent has no parent, a member has no members.
type PortfolioSetting struct {
	CustomerID    string        `json:"customer_id"`
	EffectiveFrom pricing.Month `json:"effective_from"`
	// ParentID is the parent account ("" for none).
	ParentID string `json:"parent_id,omitempty"`
	// Consolidated, on a parent, bills its members' usage on the parent's
	// invoice, one section per member.
	Consolidated bool `json:"consolidated,omitempty"`
}

// Validate checks the setting on its own (the store checks it against
// the ledger).
func (s PortfolioSetting) Validate() error {
	var errs []error
	if !s.EffectiveFrom.Valid() {
		errs = append(errs, postage.Errorf(postage.EINVALID, "effective_from: want YYYY-MM"))
	}
	if s.ParentID != "" && !customerIDPattern.MatchString(s.ParentID) {
		errs = append(errs, postage.Errorf(postage.EINVALID, "parent_id: not a customer id"))
	}
	if s.ParentID != "" && s.ParentID == s.CustomerID {
		errs = append(errs, postage.Errorf(postage.EINVALID, "parent_id: a customer cannot be its own parent"))
	}
	if s.ParentID != "" && s.Consolidated {
		errs = append(errs, postage.Errorf(postage.EINVALID, "consolidated: only a parent account (without a parent) receives a consolidated invoice"))
	}
	return errors.Join(errs...)
}

// PortfolioSource reads portfolios (billing/pgstore's CustomerStore).
type PortfolioSource interface {
	// PortfoliosIn returns every customer's portfolio setting in effect in
	// month m (customers without one are absent).
	PortfoliosIn(ctx context.Context, m pricing.Month) (Portfolios, error)
}

// Portfolios are the portfolio settings in effect in one month.
type Portfolios struct {
	parent       map[string]string   // member → parent
	members      map[string][]string // parent → members, sorted
	consolidated map[string]bool     // parents that consolidate
}

// NewPortfolios indexes the settings in effect in a month.
func NewPortfolios(settings []PortfolioSetting) Portfolios {
	p := Portfolios{parent: map[string]string{}, members: map[string][]string{}, consolidated: map[string]bool{}}
	for _, s := range settings {
		if s.ParentID != "" {
			p.parent[s.CustomerID] = s.ParentID
			p.members[s.ParentID] = append(p.members[s.ParentID], s.CustomerID)
		}
		if s.Consolidated {
			p.consolidated[s.CustomerID] = true
		}
	}
	for _, ms := range p.members {
		slices.Sort(ms)
	}
	return p
}

// Alone reports whether the customer neither has a parent nor members:
// it is rated and invoiced on its own.
func (p Portfolios) Alone(customerID string) bool {
	return p.parent[customerID] == "" && len(p.members[customerID]) == 0
}

// Parent returns the customer's parent ("" when none).
func (p Portfolios) Parent(customerID string) string { return p.parent[customerID] }

// Group returns the customers who share tier counts with customerID: the
// portfolio (its parent first, then the members by id) when it belongs to
// one or is a parent with members, else the customer alone.
func (p Portfolios) Group(customerID string) []string {
	root := customerID
	if pa := p.parent[customerID]; pa != "" {
		root = pa
	}
	ms := p.members[root]
	if len(ms) == 0 {
		return []string{customerID}
	}
	return append([]string{root}, ms...)
}

// Account returns who is invoiced for the customer's usage: its parent
// when the parent consolidates, else the customer itself.
func (p Portfolios) Account(customerID string) string {
	if pa := p.parent[customerID]; pa != "" && p.consolidated[pa] {
		return pa
	}
	return customerID
}

// Billed returns the customers whose usage an account's invoice bills: a
// consolidating parent and its members, an account billed for itself
// alone, or nobody for a member billed on its parent's invoice.
func (p Portfolios) Billed(accountID string) []string {
	if p.Account(accountID) != accountID {
		return nil
	}
	if p.consolidated[accountID] {
		return append([]string{accountID}, p.members[accountID]...)
	}
	return []string{accountID}
}

// Consolidated reports whether the account bills its members (it is a
// parent with members that consolidates).
func (p Portfolios) Consolidated(accountID string) bool {
	return p.consolidated[accountID] && len(p.members[accountID]) > 0
}
