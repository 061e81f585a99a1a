// Package auth issues, stores and checks API keys: random secrets shown once,
// stored only as SHA-256 hashes in PostgreSQL, each with one role and, for the
// customer role, one customer it may see.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"postage"
	"postage/internal/db"
)

// Role is what a key may do.
type Role string

// The roles. Admin may do everything; finance works invoices; sales models
// prices; ingest only sends events; customer sees one customer's own data.
const (
	RoleAdmin    Role = "admin"
	RoleFinance  Role = "finance"
	RoleSales    Role = "sales"
	RoleIngest   Role = "ingest"
	RoleCustomer Role = "customer"
)

// Roles lists every role, in order of reach.
var Roles = []Role{RoleAdmin, RoleFinance, RoleSales, RoleIngest, RoleCustomer}

// ParseRole validates a role name.
func ParseRole(s string) (Role, error) {
	for _, r := range Roles {
		if string(r) == s {
			return r, nil
		}
	}
	return "", postage.Errorf(postage.EINVALID, "unknown role %q (use admin, finance, sales, ingest or customer)", s)
}

// Principal is who is calling: the key's id, role and (for customer keys)
// the customer it is bound to.
type Principal struct {
	KeyID      string
	Name       string
	Role       Role
	CustomerID string
}

// CanSeeCustomer reports whether p may see data of customer id. Customer keys
// see only their own; every other role sees all.
func (p Principal) CanSeeCustomer(id string) bool {
	return p.Role != RoleCustomer || p.CustomerID == id
}

// Key is an API key as listed: never with its secret.
type Key struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Role       Role       `json:"role"`
	CustomerID string     `json:"customer_id,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
}

// NewKey is a request to create a key.
type NewKey struct {
	Name       string `json:"name"`
	Role       Role   `json:"role"`
	CustomerID string `json:"customer_id"`
}

// Validate checks the request, listing every problem.
func (n NewKey) Validate() error {
	var errs []error
	if strings.TrimSpace(n.Name) == "" || len(n.Name) > 200 {
		errs = append(errs, postage.Errorf(postage.EINVALID, "name: required, at most 200 characters"))
	}
	if _, err := ParseRole(string(n.Role)); err != nil {
		errs = append(errs, err)
	}
	if n.Role == RoleCustomer && n.CustomerID == "" {
		errs = append(errs, postage.Errorf(postage.EINVALID, "customer_id: required for role customer"))
	}
	if n.Role != RoleCustomer && n.CustomerID != "" {
		errs = append(errs, postage.Errorf(postage.EINVALID, "customer_id: only customer keys are bound to a customer"))
	}
	return postage.JoinInvalid(errs)
}

// Key format: pst_<id>_<secret>. The id is public (lists, logs); the secret is
// 32 random bytes, base64url, and only its SHA-256 is stored. A hash without
// a salt is right here: the secret has 256 bits of entropy, so no dictionary
// or rainbow table applies, and look-ups stay one index probe.
const keyPrefix = "pst_"

var keyPattern = regexp.MustCompile(`^pst_([a-z0-9]{12})_([A-Za-z0-9_-]{43})$`)

func newID() (string, error) {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b), nil
}

func hashSecret(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// Store keeps API keys in PostgreSQL.
type Store struct {
	DB  *pgxpool.Pool
	Now func() time.Time
}

// NewStore returns a Store on db using the wall clock.
func NewStore(db *pgxpool.Pool) *Store { return &Store{DB: db, Now: time.Now} }

// Create makes a key and returns it with its full secret token, which is
// shown this once and never again.
func (s *Store) Create(ctx context.Context, n NewKey) (Key, string, error) {
	if err := n.Validate(); err != nil {
		return Key{}, "", err
	}
	id, err := newID()
	if err != nil {
		return Key{}, "", fmt.Errorf("create key: %w", err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return Key{}, "", fmt.Errorf("create key: %w", err)
	}
	secret := base64.RawURLEncoding.EncodeToString(raw)
	var cust *string
	if n.CustomerID != "" {
		cust = &n.CustomerID
	}
	k := Key{ID: id, Name: n.Name, Role: n.Role, CustomerID: n.CustomerID}
	err = s.DB.QueryRow(ctx,
		`INSERT INTO api_keys (id, name, role, customer_id, secret_sha256, created_at) VALUES ($1,$2,$3,$4,$5,$6) RETURNING created_at`,
		id, n.Name, string(n.Role), cust, hashSecret(secret), s.Now().UTC()).Scan(&k.CreatedAt)
	if err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "23503" {
			return Key{}, "", postage.Errorf(postage.ENOTFOUND, "customer %q not found", n.CustomerID)
		}
		return Key{}, "", fmt.Errorf("create key: %w", err)
	}
	return k, keyPrefix + id + "_" + secret, nil
}

// Authenticate checks a bearer token and returns who holds it.
func (s *Store) Authenticate(ctx context.Context, token string) (Principal, error) {
	m := keyPattern.FindStringSubmatch(token)
	if m == nil {
		return Principal{}, postage.Errorf(postage.EUNAUTHORIZED, "malformed API key")
	}
	var (
		p       Principal
		hash    []byte
		cust    *string
		revoked *time.Time
		used    *time.Time
	)
	err := s.DB.QueryRow(ctx, `SELECT id, name, role, customer_id, secret_sha256, revoked_at, last_used_at FROM api_keys WHERE id = $1`, m[1]).
		Scan(&p.KeyID, &p.Name, &p.Role, &cust, &hash, &revoked, &used)
	if errors.Is(err, pgx.ErrNoRows) {
		return Principal{}, postage.Errorf(postage.EUNAUTHORIZED, "unknown API key")
	} else if err != nil {
		// The database is down or slow: the client should retry (503 with
		// Retry-After), not see a 500; a bug stays internal. The cause
		// stays in the error chain.
		return Principal{}, db.MarkOutage(fmt.Errorf("authenticate: %w", err), "cannot check the API key now")
	}
	if subtle.ConstantTimeCompare(hash, hashSecret(m[2])) != 1 {
		return Principal{}, postage.Errorf(postage.EUNAUTHORIZED, "unknown API key")
	}
	if revoked != nil {
		return Principal{}, postage.Errorf(postage.EUNAUTHORIZED, "API key revoked")
	}
	if cust != nil {
		p.CustomerID = *cust
	}
	now := s.Now().UTC()
	if used == nil || now.Sub(*used) > time.Minute {
		// Best effort, at most once a minute per key: a failed update must not fail the request.
		_, _ = s.DB.Exec(ctx, `UPDATE api_keys SET last_used_at = $2 WHERE id = $1`, p.KeyID, now)
	}
	return p, nil
}

// List returns every key, newest first, without secrets.
func (s *Store) List(ctx context.Context) ([]Key, error) {
	rows, err := s.DB.Query(ctx, `SELECT id, name, role, coalesce(customer_id,''), created_at, last_used_at, revoked_at FROM api_keys ORDER BY created_at DESC, id`)
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	keys, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Key, error) {
		var k Key
		err := r.Scan(&k.ID, &k.Name, &k.Role, &k.CustomerID, &k.CreatedAt, &k.LastUsedAt, &k.RevokedAt)
		return k, err
	})
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	return keys, nil
}

// Revoke disables a key at once. Revoking an already revoked key is a no-op.
func (s *Store) Revoke(ctx context.Context, id string) error {
	tag, err := s.DB.Exec(ctx, `UPDATE api_keys SET revoked_at = coalesce(revoked_at, $2) WHERE id = $1`, id, s.Now().UTC())
	if err != nil {
		return fmt.Errorf("revoke key: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return postage.Errorf(postage.ENOTFOUND, "API key %q not found", id)
	}
	return nil
}

// CountByRole returns how many unrevoked keys have the role (used by `dev`
// to create the demo admin key only once).
func (s *Store) CountByRole(ctx context.Context, r Role) (int, error) {
	var n int
	err := s.DB.QueryRow(ctx, `SELECT count(*) FROM api_keys WHERE role = $1 AND revoked_at IS NULL`, string(r)).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count keys: %w", err)
	}
	return n, nil
}
