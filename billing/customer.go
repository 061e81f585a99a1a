// Package billing turns metered usage into invoices: customers, monthly
// invoice runs on a schedule, the invoice lifecycle and gapless numbering,
// all kept in PostgreSQL.
package billing

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"postage"
)

// Customer is a paying business. ID is the business's own external id (for
// example its WhatsApp Business Account id), so events can name it directly.
type Customer struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Currency  string    `json:"currency"`
	Country   string    `json:"country,omitempty"`
	Email     string    `json:"email,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
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

// CustomerStore keeps customers and their phone-number ids in PostgreSQL.
type CustomerStore struct {
	DB  *pgxpool.Pool
	Now func() time.Time
}

// NewCustomerStore returns a store on db using the wall clock.
func NewCustomerStore(db *pgxpool.Pool) *CustomerStore {
	return &CustomerStore{DB: db, Now: time.Now}
}

const customerColumns = `id, name, currency, coalesce(country,''), email, created_at, updated_at`

func scanCustomer(r pgx.Row) (Customer, error) {
	var c Customer
	err := r.Scan(&c.ID, &c.Name, &c.Currency, &c.Country, &c.Email, &c.CreatedAt, &c.UpdatedAt)
	return c, err
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// Create stores a new customer. An existing id is a conflict.
func (s *CustomerStore) Create(ctx context.Context, c Customer) (Customer, error) {
	if c.Currency == "" {
		c.Currency = "USD"
	}
	if err := c.Validate(); err != nil {
		return Customer{}, err
	}
	now := s.Now().UTC()
	out, err := scanCustomer(s.DB.QueryRow(ctx,
		`INSERT INTO customers (id, name, currency, country, email, created_at, updated_at) VALUES ($1,$2,$3,$4,$5,$6,$6) RETURNING `+customerColumns,
		c.ID, c.Name, c.Currency, nullable(c.Country), c.Email, now))
	if err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "23505" {
			return Customer{}, postage.Errorf(postage.ECONFLICT, "customer %q already exists", c.ID)
		}
		return Customer{}, fmt.Errorf("create customer: %w", err)
	}
	return out, nil
}

// Get returns one customer.
func (s *CustomerStore) Get(ctx context.Context, id string) (Customer, error) {
	c, err := scanCustomer(s.DB.QueryRow(ctx, `SELECT `+customerColumns+` FROM customers WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Customer{}, postage.Errorf(postage.ENOTFOUND, "customer %q not found", id)
	} else if err != nil {
		return Customer{}, fmt.Errorf("get customer: %w", err)
	}
	return c, nil
}

// List returns customers ordered by id, one page at a time; the returned
// cursor is empty on the last page.
func (s *CustomerStore) List(ctx context.Context, p Page) ([]Customer, string, error) {
	p = p.Norm()
	rows, err := s.DB.Query(ctx, `SELECT `+customerColumns+` FROM customers WHERE id > $1 ORDER BY id LIMIT $2`, p.Cursor, p.Limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("list customers: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Customer, error) { return scanCustomer(r) })
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

// All returns every customer keyed by id (invoice runs and reports use it).
func (s *CustomerStore) All(ctx context.Context) (map[string]Customer, error) {
	rows, err := s.DB.Query(ctx, `SELECT `+customerColumns+` FROM customers`)
	if err != nil {
		return nil, fmt.Errorf("load customers: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Customer, error) { return scanCustomer(r) })
	if err != nil {
		return nil, fmt.Errorf("load customers: %w", err)
	}
	m := make(map[string]Customer, len(list))
	for _, c := range list {
		m[c.ID] = c
	}
	return m, nil
}

// Update changes the given fields of a customer.
func (s *CustomerStore) Update(ctx context.Context, id string, u CustomerUpdate) (Customer, error) {
	c, err := s.Get(ctx, id)
	if err != nil {
		return Customer{}, err
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
		return Customer{}, err
	}
	out, err := scanCustomer(s.DB.QueryRow(ctx,
		`UPDATE customers SET name=$2, currency=$3, country=$4, email=$5, updated_at=$6 WHERE id=$1 RETURNING `+customerColumns,
		id, c.Name, c.Currency, nullable(c.Country), c.Email, s.Now().UTC()))
	if err != nil {
		return Customer{}, fmt.Errorf("update customer: %w", err)
	}
	return out, nil
}

// PhoneNumber maps a WhatsApp phone-number id to the customer that owns it,
// so the webhook adapter can attribute status webhooks.
type PhoneNumber struct {
	PhoneNumberID string    `json:"phone_number_id"`
	CustomerID    string    `json:"customer_id"`
	CreatedAt     time.Time `json:"created_at"`
}

var phoneNumberIDPattern = regexp.MustCompile(`^[0-9]{1,32}$`)

// AddPhoneNumber maps a phone-number id to a customer. Mapping an id that
// already belongs to another customer is a conflict; re-adding it to the same
// customer is a no-op.
func (s *CustomerStore) AddPhoneNumber(ctx context.Context, customerID, phoneNumberID string) (PhoneNumber, error) {
	if !phoneNumberIDPattern.MatchString(phoneNumberID) {
		return PhoneNumber{}, postage.Errorf(postage.EINVALID, "phone_number_id: digits only, at most 32")
	}
	if _, err := s.Get(ctx, customerID); err != nil {
		return PhoneNumber{}, err
	}
	pn := PhoneNumber{PhoneNumberID: phoneNumberID}
	err := s.DB.QueryRow(ctx,
		`INSERT INTO phone_numbers (phone_number_id, customer_id, created_at) VALUES ($1,$2,$3)
		 ON CONFLICT (phone_number_id) DO UPDATE SET phone_number_id = EXCLUDED.phone_number_id
		 RETURNING customer_id, created_at`,
		phoneNumberID, customerID, s.Now().UTC()).Scan(&pn.CustomerID, &pn.CreatedAt)
	if err != nil {
		return PhoneNumber{}, fmt.Errorf("add phone number: %w", err)
	}
	if pn.CustomerID != customerID {
		return PhoneNumber{}, postage.Errorf(postage.ECONFLICT, "phone number id %s belongs to another customer", phoneNumberID)
	}
	return pn, nil
}

// RemovePhoneNumber deletes a mapping of the customer.
func (s *CustomerStore) RemovePhoneNumber(ctx context.Context, customerID, phoneNumberID string) error {
	tag, err := s.DB.Exec(ctx, `DELETE FROM phone_numbers WHERE phone_number_id=$1 AND customer_id=$2`, phoneNumberID, customerID)
	if err != nil {
		return fmt.Errorf("remove phone number: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return postage.Errorf(postage.ENOTFOUND, "phone number id %s not found for customer %q", phoneNumberID, customerID)
	}
	return nil
}

// PhoneNumbers lists a customer's phone-number ids.
func (s *CustomerStore) PhoneNumbers(ctx context.Context, customerID string) ([]PhoneNumber, error) {
	rows, err := s.DB.Query(ctx, `SELECT phone_number_id, customer_id, created_at FROM phone_numbers WHERE customer_id=$1 ORDER BY phone_number_id`, customerID)
	if err != nil {
		return nil, fmt.Errorf("list phone numbers: %w", err)
	}
	list, err := pgx.CollectRows(rows, pgx.RowToStructByPos[PhoneNumber])
	if err != nil {
		return nil, fmt.Errorf("list phone numbers: %w", err)
	}
	return list, nil
}

// CustomerForPhoneNumber resolves a phone-number id to its customer id, for
// the webhook adapter; ok is false when the id is not mapped.
func (s *CustomerStore) CustomerForPhoneNumber(ctx context.Context, phoneNumberID string) (string, bool, error) {
	var id string
	err := s.DB.QueryRow(ctx, `SELECT customer_id FROM phone_numbers WHERE phone_number_id=$1`, phoneNumberID).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, nil
	} else if err != nil {
		return "", false, fmt.Errorf("resolve phone number: %w", err)
	}
	return id, true, nil
}
