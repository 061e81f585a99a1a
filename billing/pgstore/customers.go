package pgstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"postage"
	"postage/billing"
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

func (s *CustomerStore) now() time.Time {
	if s.Now == nil {
		return time.Now().UTC()
	}
	return s.Now().UTC()
}

func scanCustomer(r pgx.Row) (billing.Customer, error) {
	var c billing.Customer
	err := r.Scan(&c.ID, &c.Name, &c.Currency, &c.Country, &c.Email, &c.CreatedAt, &c.UpdatedAt)
	return c, err
}

// Create stores a new customer. An existing id is a conflict.
func (s *CustomerStore) Create(ctx context.Context, c billing.Customer) (billing.Customer, error) {
	if c.Currency == "" {
		c.Currency = "USD"
	}
	if err := c.Validate(); err != nil {
		return billing.Customer{}, err
	}
	q, args := insertCustomerSQL(c, s.now())
	out, err := scanCustomer(s.DB.QueryRow(ctx, q, args...))
	if err != nil {
		if pgCode(err) == uniqueViolation {
			return billing.Customer{}, postage.Errorf(postage.ECONFLICT, "customer %q already exists", c.ID)
		}
		return billing.Customer{}, fmt.Errorf("create customer: %w", err)
	}
	return out, nil
}

// Get returns one customer.
func (s *CustomerStore) Get(ctx context.Context, id string) (billing.Customer, error) {
	q, args := getCustomerSQL(id)
	c, err := scanCustomer(s.DB.QueryRow(ctx, q, args...))
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
	q, args := listCustomersSQL(p.Cursor, p.Limit+1)
	rows, err := s.DB.Query(ctx, q, args...)
	if err != nil {
		return nil, "", fmt.Errorf("list customers: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (billing.Customer, error) { return scanCustomer(r) })
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

// All returns every customer keyed by id.
func (s *CustomerStore) All(ctx context.Context) (map[string]billing.Customer, error) {
	q, args := allCustomersSQL()
	rows, err := s.DB.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("load customers: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (billing.Customer, error) { return scanCustomer(r) })
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
	if u.Name != nil {
		c.Name = *u.Name
	}
	if u.Currency != nil {
		c.Currency = *u.Currency
	}
	if u.Country != nil {
		c.Country = *u.Country
	}
	if u.Email != nil {
		c.Email = *u.Email
	}
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
	return out, nil
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
