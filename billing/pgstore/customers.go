package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"postage"
	"postage/billing"
	"postage/pricing"
)

// CustomerStore keeps customers and their phone-number ids in PostgreSQL
// (tables of migration 0001; the currency rule of migration 0035).
type CustomerStore struct {
	DB  *pgxpool.Pool
	Now func() time.Time
}

var _ billing.CustomerStore = (*CustomerStore)(nil)

// NewCustomerStore returns a store on db using the wall clock.
func NewCustomerStore(db *pgxpool.Pool) *CustomerStore {
	return &CustomerStore{DB: db, Now: time.Now}
}

func (s *CustomerStore) now() time.Time { return utcNow(s.Now) }

func scanCustomer(r pgx.Row) (billing.Customer, error) { return scanCustomerAnd(r) }

// scanCustomerAnd scans customerColumns, then into extra.
func scanCustomerAnd(r pgx.Row, extra ...any) (billing.Customer, error) {
	var c billing.Customer
	var status string
	var addr []byte
	dest := []any{&c.ID, &c.Name, &c.Currency, &c.Country, &c.Email, &c.TaxID, &status, &c.TaxCountry, &c.TaxRegion,
		&addr, &c.PaymentTermsDays, &c.CreatedAt, &c.UpdatedAt}
	err := r.Scan(append(dest, extra...)...)
	if err != nil {
		return c, err
	}
	c.TaxStatus = billing.TaxStatus(status)
	if len(addr) > 0 {
		var a billing.Address
		if err := json.Unmarshal(addr, &a); err != nil {
			return c, fmt.Errorf("customer %s address: %w", c.ID, err)
		}
		c.Address = &a
	}
	return c, nil
}

// scanCustomerPortfolio scans customerSelect's columns: the customer and
// its portfolio setting in effect.
func scanCustomerPortfolio(r pgx.Row) (billing.Customer, error) {
	var parent string
	var consolidated bool
	c, err := scanCustomerAnd(r, &parent, &consolidated)
	c.ParentID, c.Consolidated = parent, consolidated
	return c, err
}

func (s *CustomerStore) month() pricing.Month { return pricing.MonthOf(s.now()) }

// Create stores a new customer. An existing id is a conflict. A parent or
// the consolidated setting given with it applies from the current month.
func (s *CustomerStore) Create(ctx context.Context, c billing.Customer) (billing.Customer, error) {
	if c.Currency == "" {
		c.Currency = "USD"
	}
	if c.TaxStatus == "" {
		c.TaxStatus = billing.TaxTaxable
	}
	if c.Address != nil && c.Address.IsZero() {
		c.Address = nil
	}
	if err := c.Validate(); err != nil {
		return billing.Customer{}, err
	}
	now := s.now()
	err := pgx.BeginFunc(ctx, s.DB, func(tx pgx.Tx) error {
		q, args := insertCustomerSQL(c, now)
		if _, err := scanCustomer(tx.QueryRow(ctx, q, args...)); err != nil {
			if pgCode(err) == uniqueViolation {
				return postage.Errorf(postage.ECONFLICT, "customer %q already exists", c.ID)
			}
			return fmt.Errorf("create customer: %w", err)
		}
		if c.ParentID == "" && !c.Consolidated {
			return nil
		}
		return s.setPortfolio(ctx, tx, billing.PortfolioSetting{CustomerID: c.ID, EffectiveFrom: pricing.MonthOf(now), ParentID: c.ParentID, Consolidated: c.Consolidated})
	})
	if err != nil {
		return billing.Customer{}, err
	}
	return s.Get(ctx, c.ID)
}

// Get returns one customer.
func (s *CustomerStore) Get(ctx context.Context, id string) (billing.Customer, error) {
	q, args := getCustomerSQL(id, s.month())
	c, err := scanCustomerPortfolio(s.DB.QueryRow(ctx, q, args...))
	if errors.Is(err, pgx.ErrNoRows) {
		return billing.Customer{}, postage.Errorf(postage.ENOTFOUND, "customer %q not found", id)
	} else if err != nil {
		return billing.Customer{}, fmt.Errorf("get customer: %w", err)
	}
	return c, nil
}

// List returns customers ordered by id, one page at a time; the returned
// cursor is empty on the last page.
func (s *CustomerStore) List(ctx context.Context, p billing.Page) ([]billing.Customer, string, error) {
	p = p.Norm()
	q, args := listCustomersSQL(p.Cursor, p.Limit+1, s.month())
	rows, err := s.DB.Query(ctx, q, args...)
	if err != nil {
		return nil, "", fmt.Errorf("list customers: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (billing.Customer, error) { return scanCustomerPortfolio(r) })
	if err != nil {
		return nil, "", fmt.Errorf("list customers: %w", err)
	}
	next := ""
	if len(list) > p.Limit {
		list = list[:p.Limit]
		next = list[len(list)-1].ID
	}
	return list, next, nil
}

// Search returns up to limit customers whose id or name contains q.
func (s *CustomerStore) Search(ctx context.Context, q string, limit int) ([]billing.Customer, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	sql, args := searchCustomersSQL(q, limit, s.month())
	rows, err := s.DB.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("search customers: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (billing.Customer, error) { return scanCustomerPortfolio(r) })
	if err != nil {
		return nil, fmt.Errorf("search customers: %w", err)
	}
	return list, nil
}

// All returns every customer keyed by id.
func (s *CustomerStore) All(ctx context.Context) (map[string]billing.Customer, error) {
	q, args := allCustomersSQL(s.month())
	rows, err := s.DB.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("load customers: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (billing.Customer, error) { return scanCustomerPortfolio(r) })
	if err != nil {
		return nil, fmt.Errorf("load customers: %w", err)
	}
	m := make(map[string]billing.Customer, len(list))
	for _, c := range list {
		m[c.ID] = c
	}
	return m, nil
}

// Update changes the given fields of a customer. The database refuses a
// currency other than the customer's cards' and invoices' (migration
// 0035): that is a conflict.
func (s *CustomerStore) Update(ctx context.Context, id string, u billing.CustomerUpdate) (billing.Customer, error) {
	c, err := s.Get(ctx, id)
	if err != nil {
		return billing.Customer{}, err
	}
	u.Apply(&c)
	if err := c.Validate(); err != nil {
		return billing.Customer{}, err
	}
	q, args := updateCustomerSQL(c, s.now())
	out, err := scanCustomer(s.DB.QueryRow(ctx, q, args...))
	if errors.Is(err, pgx.ErrNoRows) {
		return billing.Customer{}, postage.Errorf(postage.ENOTFOUND, "customer %q not found", id)
	} else if msg, ok := currencyConflict(err); ok {
		return billing.Customer{}, postage.Errorf(postage.ECONFLICT, "%s", msg)
	} else if err != nil {
		return billing.Customer{}, fmt.Errorf("update customer: %w", err)
	}
	out.ParentID, out.Consolidated = c.ParentID, c.Consolidated
	return out, nil
}

// SetPortfolio gives a customer a portfolio setting from a month after the
// current one (see billing.CustomerStore).
func (s *CustomerStore) SetPortfolio(ctx context.Context, ps billing.PortfolioSetting) (billing.PortfolioSetting, error) {
	if err := ps.Validate(); err != nil {
		return ps, err
	}
	if cur := s.month(); !ps.EffectiveFrom.After(cur) {
		return ps, postage.Errorf(postage.EINVALID, "effective_from %s must be after the current month %s: a month's portfolio never changes once it has begun", ps.EffectiveFrom, cur)
	}
	err := pgx.BeginFunc(ctx, s.DB, func(tx pgx.Tx) error { return s.setPortfolio(ctx, tx, ps) })
	return ps, err
}

// setPortfolio checks a setting against the ledger and stores it, in tx.
func (s *CustomerStore) setPortfolio(ctx context.Context, tx pgx.Tx, ps billing.PortfolioSetting) error {
	if err := ps.Validate(); err != nil {
		return err
	}
	ids := []string{ps.CustomerID}
	if ps.ParentID != "" {
		ids = append(ids, ps.ParentID)
	}
	q, args := lockCustomersSQL(ids)
	rows, err := tx.Query(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("set portfolio: %w", err)
	}
	currency := map[string]string{}
	for rows.Next() {
		var id, cur string
		if err := rows.Scan(&id, &cur); err != nil {
			rows.Close()
			return fmt.Errorf("set portfolio: %w", err)
		}
		currency[id] = cur
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("set portfolio: %w", err)
	}
	if _, ok := currency[ps.CustomerID]; !ok {
		return postage.Errorf(postage.ENOTFOUND, "customer %q not found", ps.CustomerID)
	}
	if ps.ParentID != "" {
		pc, ok := currency[ps.ParentID]
		if !ok {
			return postage.Errorf(postage.ENOTFOUND, "parent %q not found", ps.ParentID)
		}
		if pc != currency[ps.CustomerID] {
			return postage.Errorf(postage.ECONFLICT, "parent %s bills in %s, customer %s in %s: a portfolio bills in one currency", ps.ParentID, pc, ps.CustomerID, currency[ps.CustomerID])
		}
		var member, parent bool
		q, args = memberFromSQL(ps.ParentID, ps.EffectiveFrom)
		if err := tx.QueryRow(ctx, q, args...).Scan(&member); err != nil {
			return fmt.Errorf("set portfolio: %w", err)
		}
		if member {
			return postage.Errorf(postage.ECONFLICT, "%s is a member of another portfolio in %s or later: a parent has no parent", ps.ParentID, ps.EffectiveFrom)
		}
		q, args = parentFromSQL(ps.CustomerID, ps.EffectiveFrom)
		if err := tx.QueryRow(ctx, q, args...).Scan(&parent); err != nil {
			return fmt.Errorf("set portfolio: %w", err)
		}
		if parent {
			return postage.Errorf(postage.ECONFLICT, "%s has members in %s or later: a parent cannot become a member", ps.CustomerID, ps.EffectiveFrom)
		}
	}
	q, args = setPortfolioSQL(ps)
	if _, err := tx.Exec(ctx, q, args...); err != nil {
		return fmt.Errorf("set portfolio: %w", err)
	}
	return nil
}

// PortfolioHistory returns a customer's portfolio settings, oldest first.
func (s *CustomerStore) PortfolioHistory(ctx context.Context, customerID string) ([]billing.PortfolioSetting, error) {
	if _, err := s.Get(ctx, customerID); err != nil {
		return nil, err
	}
	q, args := portfolioHistorySQL(customerID)
	return s.portfolioRows(ctx, q, args)
}

// PortfoliosIn returns the portfolio settings in effect in month m.
func (s *CustomerStore) PortfoliosIn(ctx context.Context, m pricing.Month) (billing.Portfolios, error) {
	q, args := portfoliosInSQL(m)
	list, err := s.portfolioRows(ctx, q, args)
	if err != nil {
		return billing.Portfolios{}, err
	}
	return billing.NewPortfolios(list), nil
}

func (s *CustomerStore) portfolioRows(ctx context.Context, q string, args []any) ([]billing.PortfolioSetting, error) {
	rows, err := s.DB.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("portfolios: %w", err)
	}
	defer rows.Close()
	out := []billing.PortfolioSetting{}
	for rows.Next() {
		var ps billing.PortfolioSetting
		var from string
		if err := rows.Scan(&ps.CustomerID, &from, &ps.ParentID, &ps.Consolidated); err != nil {
			return nil, fmt.Errorf("portfolios: %w", err)
		}
		if ps.EffectiveFrom, err = pricing.ParseMonth(from); err != nil {
			return nil, fmt.Errorf("portfolios: %w", err)
		}
		out = append(out, ps)
	}
	return out, rows.Err()
}

// currencyConflict reports whether err is the refusal of migration 0035's
// triggers (a customer and its rate cards or invoices in different
// currencies), with its message.
func currencyConflict(err error) (string, bool) {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == CurrencyMismatchCode {
		return pe.Message, true
	}
	return "", false
}

// CurrencyMismatchCode is the SQLSTATE of migration 0035's triggers, which
// refuse a customer whose rate cards or invoices are in another currency.
const CurrencyMismatchCode = "PC409"

// AddPhoneNumber maps a phone-number id to a customer. Mapping an id that
// already belongs to another customer is a conflict; re-adding it to the same
// customer is a no-op.
func (s *CustomerStore) AddPhoneNumber(ctx context.Context, customerID, phoneNumberID string) (billing.PhoneNumber, error) {
	if err := billing.ValidatePhoneNumberID(phoneNumberID); err != nil {
		return billing.PhoneNumber{}, err
	}
	if _, err := s.Get(ctx, customerID); err != nil {
		return billing.PhoneNumber{}, err
	}
	pn := billing.PhoneNumber{PhoneNumberID: phoneNumberID}
	q, args := addPhoneNumberSQL(customerID, phoneNumberID, s.now())
	if err := s.DB.QueryRow(ctx, q, args...).Scan(&pn.CustomerID, &pn.CreatedAt); err != nil {
		return billing.PhoneNumber{}, fmt.Errorf("add phone number: %w", err)
	}
	if pn.CustomerID != customerID {
		return billing.PhoneNumber{}, postage.Errorf(postage.ECONFLICT, "phone number id %s belongs to another customer", phoneNumberID)
	}
	return pn, nil
}

// RemovePhoneNumber deletes a mapping of the customer.
func (s *CustomerStore) RemovePhoneNumber(ctx context.Context, customerID, phoneNumberID string) error {
	q, args := removePhoneNumberSQL(customerID, phoneNumberID)
	tag, err := s.DB.Exec(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("remove phone number: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return postage.Errorf(postage.ENOTFOUND, "phone number id %s not found for customer %q", phoneNumberID, customerID)
	}
	return nil
}

// PhoneNumbers lists a customer's phone-number ids.
func (s *CustomerStore) PhoneNumbers(ctx context.Context, customerID string) ([]billing.PhoneNumber, error) {
	q, args := phoneNumbersSQL(customerID)
	rows, err := s.DB.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list phone numbers: %w", err)
	}
	list, err := pgx.CollectRows(rows, pgx.RowToStructByPos[billing.PhoneNumber])
	if err != nil {
		return nil, fmt.Errorf("list phone numbers: %w", err)
	}
	return list, nil
}

// CustomerForPhoneNumber resolves a phone-number id to its customer id, for
// the webhook adapter; ok is false when the id is not mapped.
func (s *CustomerStore) CustomerForPhoneNumber(ctx context.Context, phoneNumberID string) (string, bool, error) {
	var id string
	q, args := customerForPhoneNumberSQL(phoneNumberID)
	err := s.DB.QueryRow(ctx, q, args...).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, nil
	} else if err != nil {
		return "", false, fmt.Errorf("resolve phone number: %w", err)
	}
	return id, true, nil
}

// CustomersForPhoneNumbers resolves many phone-number ids in one query (the
// webhook's phone-number cache re-reads its answers with it); unmapped ids
// are absent from the result.
func (s *CustomerStore) CustomersForPhoneNumbers(ctx context.Context, ids []string) (map[string]string, error) {
	q, args := customersForPhoneNumbersSQL(ids)
	rows, err := s.DB.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("resolve phone numbers: %w", err)
	}
	out := make(map[string]string, len(ids))
	var id, cust string
	if _, err := pgx.ForEachRow(rows, []any{&id, &cust}, func() error { out[id] = cust; return nil }); err != nil {
		return nil, fmt.Errorf("resolve phone numbers: %w", err)
	}
	return out, nil
}
