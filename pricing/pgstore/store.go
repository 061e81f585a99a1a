// Package pgstore keeps the rate card ledger in PostgreSQL: cards, their
// versions (draft or active, immutable once active), customer card
// assignments from a month on and customer overrides. It implements
// pricing.Store; the tables are in migration 0010_pricing.sql.
package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"

	"postage"
	"postage/pricing"
)

// Store is the PostgreSQL rate card ledger.
type Store struct {
	PG *pgxpool.Pool
	// Now is the clock the activation rule reads (the current month).
	Now func() time.Time

	raters sync.Map // "card/number" → *pricing.Rater of an active (immutable) version
}

var _ pricing.Store = (*Store)(nil)

// New returns a store on pg using the wall clock.
func New(pg *pgxpool.Pool) *Store { return &Store{PG: pg, Now: time.Now} }

func (s *Store) now() time.Time {
	if s.Now == nil {
		return time.Now()
	}
	return s.Now()
}

type queryer interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

func scanCard(row pgx.Row) (pricing.RateCard, error) {
	var c pricing.RateCard
	var rounding, kind string
	err := row.Scan(&c.ID, &c.Name, &c.Currency, &rounding, &kind, &c.Default)
	c.Rounding, c.Kind = pricing.Rounding(rounding), pricing.Kind(kind)
	return c, err
}

func scanVersion(row pgx.Row) (*pricing.Version, error) {
	var cardID, status, from, note string
	var number int
	var content []byte
	if err := row.Scan(&cardID, &number, &status, &from, &note, &content); err != nil {
		return nil, err
	}
	v := &pricing.Version{}
	if err := json.Unmarshal(content, v); err != nil {
		return nil, fmt.Errorf("decode rate card version %s/%d: %w", cardID, number, err)
	}
	v.Normalize()
	v.CardID, v.Number, v.Status, v.Note = cardID, number, pricing.Status(status), note
	v.EffectiveFrom = pricing.Month{}
	if from != "" {
		m, err := pricing.ParseMonth(from)
		if err != nil {
			return nil, fmt.Errorf("rate card version %s/%d: %w", cardID, number, err)
		}
		v.EffectiveFrom = m
	}
	return v, nil
}

// content is the JSON stored for a version: its whole pricing.Version (the
// identity columns win over the JSON's copies when read back).
func content(v *pricing.Version) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode rate card version: %w", err)
	}
	return b, nil
}

func notFound(err error, format string, args ...any) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return postage.Errorf(postage.ENOTFOUND, format, args...)
	}
	return err
}

// ListCards returns every card, sorted by id.
func (s *Store) ListCards(ctx context.Context) ([]pricing.RateCard, error) {
	q, args := listCardsSQL()
	rows, err := s.PG.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list rate cards: %w", err)
	}
	defer rows.Close()
	var out []pricing.RateCard
	for rows.Next() {
		c, err := scanCard(rows)
		if err != nil {
			return nil, fmt.Errorf("list rate cards: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// GetCard returns one card.
func (s *Store) GetCard(ctx context.Context, cardID string) (pricing.RateCard, error) {
	return s.getCard(ctx, s.PG, cardID)
}

func (s *Store) getCard(ctx context.Context, db queryer, cardID string) (pricing.RateCard, error) {
	q, args := getCardSQL(cardID)
	c, err := scanCard(db.QueryRow(ctx, q, args...))
	if err != nil {
		return c, notFound(err, "rate card %q not found", cardID)
	}
	return c, nil
}

// CreateCard adds a card without versions (ECONFLICT if the id exists).
func (s *Store) CreateCard(ctx context.Context, c pricing.RateCard) error {
	if c.Rounding == "" {
		c.Rounding = pricing.RoundHalfEven
	}
	if c.Kind == "" {
		c.Kind = pricing.KindSelling
	}
	if err := c.Validate(); err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, s.PG, func(tx pgx.Tx) error {
		if c.Default {
			q, args := clearDefaultSQL()
			if _, err := tx.Exec(ctx, q, args...); err != nil {
				return fmt.Errorf("create rate card: %w", err)
			}
		}
		q, args := insertCardSQL(c)
		if _, err := tx.Exec(ctx, q, args...); err != nil {
			var pe *pgconn.PgError
			if errors.As(err, &pe) && pe.Code == "23505" {
				return postage.Errorf(postage.ECONFLICT, "rate card %q already exists", c.ID)
			}
			return fmt.Errorf("create rate card: %w", err)
		}
		return nil
	})
}

// SetDefaultCard makes cardID the default card.
func (s *Store) SetDefaultCard(ctx context.Context, cardID string) error {
	return pgx.BeginFunc(ctx, s.PG, func(tx pgx.Tx) error {
		q, args := clearDefaultSQL()
		if _, err := tx.Exec(ctx, q, args...); err != nil {
			return fmt.Errorf("set default rate card: %w", err)
		}
		q, args = setDefaultSQL(cardID)
		tag, err := tx.Exec(ctx, q, args...)
		if err != nil {
			return fmt.Errorf("set default rate card: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return postage.Errorf(postage.ENOTFOUND, "rate card %q not found", cardID)
		}
		return nil
	})
}

// ListVersions returns a card's versions, oldest first.
func (s *Store) ListVersions(ctx context.Context, cardID string) ([]pricing.Version, error) {
	if _, err := s.GetCard(ctx, cardID); err != nil {
		return nil, err
	}
	q, args := listVersionsSQL(cardID)
	rows, err := s.PG.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list rate card versions: %w", err)
	}
	defer rows.Close()
	var out []pricing.Version
	for rows.Next() {
		v, err := scanVersion(rows)
		if err != nil {
			return nil, fmt.Errorf("list rate card versions: %w", err)
		}
		out = append(out, *v)
	}
	return out, rows.Err()
}

// GetVersion returns one version of a card.
func (s *Store) GetVersion(ctx context.Context, cardID string, number int) (*pricing.Version, error) {
	return s.getVersion(ctx, s.PG, cardID, number)
}

func (s *Store) getVersion(ctx context.Context, db queryer, cardID string, number int) (*pricing.Version, error) {
	q, args := getVersionSQL(cardID, number)
	v, err := scanVersion(db.QueryRow(ctx, q, args...))
	if err != nil {
		return nil, notFound(err, "rate card %q has no version %d", cardID, number)
	}
	return v, nil
}

// prepareDraft checks a draft's content against its card: the currency
// must be the card's (empty takes it), rounding empty takes the card's.
func prepareDraft(card pricing.RateCard, v *pricing.Version) error {
	if v.Currency == "" {
		v.Currency = card.Currency
	}
	if v.Rounding == "" {
		v.Rounding = card.Rounding
	}
	if v.Currency != card.Currency {
		return postage.Errorf(postage.EINVALID, "version currency %s differs from rate card %s's currency %s", v.Currency, card.ID, card.Currency)
	}
	if v.CostPlus != nil && card.Kind == pricing.KindCost {
		return postage.Errorf(postage.EINVALID, "rate card %s is a cost card: its versions list the upstream's prices, not cost-plus rules", card.ID)
	}
	v.Status, v.EffectiveFrom = pricing.StatusDraft, pricing.Month{}
	return v.Validate()
}

// CreateDraft stores v as a new draft of v.CardID, numbered after the
// card's last version, and returns it.
func (s *Store) CreateDraft(ctx context.Context, v *pricing.Version) (*pricing.Version, error) {
	v = v.Clone()
	err := pgx.BeginFunc(ctx, s.PG, func(tx pgx.Tx) error {
		q, args := lockCardSQL(v.CardID)
		card, err := scanCard(tx.QueryRow(ctx, q, args...))
		if err != nil {
			return notFound(err, "rate card %q not found", v.CardID)
		}
		if err := prepareDraft(card, v); err != nil {
			return err
		}
		q, args = nextVersionNumberSQL(v.CardID)
		if err := tx.QueryRow(ctx, q, args...).Scan(&v.Number); err != nil {
			return fmt.Errorf("create draft: %w", err)
		}
		b, err := content(v)
		if err != nil {
			return err
		}
		q, args = insertVersionSQL(v, b)
		if _, err := tx.Exec(ctx, q, args...); err != nil {
			return fmt.Errorf("create draft: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return v, nil
}

// UpdateDraft replaces the content and note of draft (v.CardID, v.Number);
// an active version answers ECONFLICT.
func (s *Store) UpdateDraft(ctx context.Context, v *pricing.Version) error {
	v = v.Clone()
	return pgx.BeginFunc(ctx, s.PG, func(tx pgx.Tx) error {
		q, args := lockCardSQL(v.CardID)
		card, err := scanCard(tx.QueryRow(ctx, q, args...))
		if err != nil {
			return notFound(err, "rate card %q not found", v.CardID)
		}
		old, err := s.getVersion(ctx, tx, v.CardID, v.Number)
		if err != nil {
			return err
		}
		if old.Status != pricing.StatusDraft {
			return postage.Errorf(postage.ECONFLICT, "rate card %s version %d is active and cannot be edited: create a new draft", v.CardID, v.Number)
		}
		if err := prepareDraft(card, v); err != nil {
			return err
		}
		b, err := content(v)
		if err != nil {
			return err
		}
		q, args = updateDraftSQL(v, b)
		if _, err := tx.Exec(ctx, q, args...); err != nil {
			return fmt.Errorf("update draft: %w", err)
		}
		return nil
	})
}

// Activate makes draft (cardID, number) active from month `from`. The rule
// that keeps every earlier month's prices: `from` must be after the
// current month (by s.Now, UTC) and after the effective month of every
// active version of the card.
func (s *Store) Activate(ctx context.Context, cardID string, number int, from pricing.Month) (*pricing.Version, error) {
	if !from.Valid() {
		return nil, postage.Errorf(postage.EINVALID, "activation month %q is not a month", from)
	}
	if cur := pricing.MonthOf(s.now()); !from.After(cur) {
		return nil, postage.Errorf(postage.EINVALID, "activation month %s must be after the current month %s: earlier months may already be billed", from, cur)
	}
	var out *pricing.Version
	err := pgx.BeginFunc(ctx, s.PG, func(tx pgx.Tx) error {
		q, args := lockCardSQL(cardID)
		if _, err := scanCard(tx.QueryRow(ctx, q, args...)); err != nil {
			return notFound(err, "rate card %q not found", cardID)
		}
		v, err := s.getVersion(ctx, tx, cardID, number)
		if err != nil {
			return err
		}
		if v.Status != pricing.StatusDraft {
			return postage.Errorf(postage.ECONFLICT, "rate card %s version %d is already active from %s", cardID, number, v.EffectiveFrom)
		}
		if _, err := pricing.Compile(v); err != nil {
			return err
		}
		var latest string
		q, args = latestActivationSQL(cardID)
		if err := tx.QueryRow(ctx, q, args...).Scan(&latest); err != nil {
			return fmt.Errorf("activate: %w", err)
		}
		if latest != "" && from.String() <= latest {
			return postage.Errorf(postage.ECONFLICT, "activation month %s must be after %s, when the card's latest active version takes effect", from, latest)
		}
		q, args = activateSQL(cardID, number, from)
		if _, err := tx.Exec(ctx, q, args...); err != nil {
			return fmt.Errorf("activate: %w", err)
		}
		v.Status, v.EffectiveFrom = pricing.StatusActive, from
		out = v
		return nil
	})
	return out, err
}

// VersionFor returns the active version of a card in effect in month.
func (s *Store) VersionFor(ctx context.Context, cardID string, month pricing.Month) (*pricing.Version, error) {
	q, args := versionForSQL(cardID, month)
	v, err := scanVersion(s.PG.QueryRow(ctx, q, args...))
	if err != nil {
		return nil, notFound(err, "rate card %q has no version in effect in %s", cardID, month)
	}
	return v, nil
}

// Rater returns the compiled version of a card in effect in month. Active
// versions never change, so compiled versions are cached.
func (s *Store) Rater(ctx context.Context, cardID string, month pricing.Month) (*pricing.Rater, error) {
	v, err := s.VersionFor(ctx, cardID, month)
	if err != nil {
		return nil, err
	}
	key := fmt.Sprintf("%s/%d", v.CardID, v.Number)
	if r, ok := s.raters.Load(key); ok {
		return r.(*pricing.Rater), nil
	}
	r, err := pricing.Compile(v)
	if err != nil {
		return nil, fmt.Errorf("rate card %s: %w", key, err)
	}
	s.raters.Store(key, r)
	return r, nil
}

// CardFor returns a customer's card in month: its latest assignment
// effective on or before month, else the default card.
func (s *Store) CardFor(ctx context.Context, customerID string, month pricing.Month) (pricing.RateCard, error) {
	q, args := assignedCardSQL(customerID, month)
	c, err := scanCard(s.PG.QueryRow(ctx, q, args...))
	if err == nil {
		return c, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return c, fmt.Errorf("card for %s: %w", customerID, err)
	}
	q, args = defaultCardSQL()
	c, err = scanCard(s.PG.QueryRow(ctx, q, args...))
	if err != nil {
		return c, notFound(err, "no default rate card (run the seed)")
	}
	return c, nil
}

// CardsFor is CardFor for many customers of one month in one query (an
// invoice run or a simulation of 50,000 customers makes one look-up, not
// 50,000). Customers without an assignment get the default card; with no
// default card either, they are absent from the map.
func (s *Store) CardsFor(ctx context.Context, customers []string, month pricing.Month) (map[string]pricing.RateCard, error) {
	out := make(map[string]pricing.RateCard, len(customers))
	if len(customers) == 0 {
		return out, nil
	}
	q, args := cardsForSQL(customers, month)
	rows, err := s.PG.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("cards for %s: %w", month, err)
	}
	defer rows.Close()
	var def *pricing.RateCard
	for rows.Next() {
		var isDefault bool
		var id, rounding, kind string
		var c pricing.RateCard
		if err := rows.Scan(&isDefault, &id, &c.ID, &c.Name, &c.Currency, &rounding, &kind, &c.Default); err != nil {
			return nil, fmt.Errorf("cards for %s: %w", month, err)
		}
		c.Rounding, c.Kind = pricing.Rounding(rounding), pricing.Kind(kind)
		if isDefault {
			def = &c
		} else {
			out[id] = c
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cards for %s: %w", month, err)
	}
	if def != nil {
		for _, c := range customers {
			if _, ok := out[c]; !ok {
				out[c] = *def
			}
		}
	}
	return out, nil
}

// OverridesFor is Overrides for many customers in one query: the given
// customers, or every customer when customers is nil. Customers without
// overrides are absent from the map.
func (s *Store) OverridesFor(ctx context.Context, customers []string) (map[string]pricing.Overrides, error) {
	q, args := overridesForSQL(customers)
	rows, err := s.PG.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("load overrides: %w", err)
	}
	defer rows.Close()
	out := map[string]pricing.Overrides{}
	for rows.Next() {
		var id string
		var raw []byte
		if err := rows.Scan(&id, &raw); err != nil {
			return nil, fmt.Errorf("load overrides: %w", err)
		}
		var ov pricing.Overrides
		if err := json.Unmarshal(raw, &ov); err != nil {
			return nil, fmt.Errorf("decode overrides of %s: %w", id, err)
		}
		if !ov.IsZero() {
			out[id] = ov
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load overrides: %w", err)
	}
	return out, nil
}

// currencyMismatch is the SQLSTATE of migration 0035's trigger refusing a
// card whose currency is not the customer's.
const currencyMismatch = "PC409"

// AssignCard gives a customer a card from month `from` on (replacing an
// assignment from the same month). A card in another currency than the
// customer's is a conflict: a customer is billed in its own currency.
func (s *Store) AssignCard(ctx context.Context, customerID, cardID string, from pricing.Month) error {
	if !from.Valid() {
		return postage.Errorf(postage.EINVALID, "assignment month %q is not a month", from)
	}
	q, args := assignCardSQL(customerID, cardID, from)
	if _, err := s.PG.Exec(ctx, q, args...); err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "23503" {
			return postage.Errorf(postage.ENOTFOUND, "customer %q or rate card %q not found", customerID, cardID)
		}
		if errors.As(err, &pe) && pe.Code == currencyMismatch {
			return postage.Errorf(postage.ECONFLICT, "%s", pe.Message) // a card of another currency than the customer's
		}
		return fmt.Errorf("assign rate card: %w", err)
	}
	return nil
}

// Overrides returns a customer's overrides (zero when none).
func (s *Store) Overrides(ctx context.Context, customerID string) (pricing.Overrides, error) {
	var ov pricing.Overrides
	var b []byte
	q, args := getOverridesSQL(customerID)
	if err := s.PG.QueryRow(ctx, q, args...).Scan(&b); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return ov, nil
		}
		return ov, fmt.Errorf("overrides of %s: %w", customerID, err)
	}
	if err := json.Unmarshal(b, &ov); err != nil {
		return ov, fmt.Errorf("decode overrides of %s: %w", customerID, err)
	}
	return ov, nil
}

// SetOverrides replaces a customer's overrides; zero overrides delete them.
func (s *Store) SetOverrides(ctx context.Context, customerID string, ov pricing.Overrides) error {
	if err := ov.Validate(); err != nil {
		return err
	}
	var q string
	var args []any
	if ov.IsZero() {
		q, args = deleteOverridesSQL(customerID)
	} else {
		b, err := json.Marshal(ov)
		if err != nil {
			return fmt.Errorf("encode overrides: %w", err)
		}
		q, args = setOverridesSQL(customerID, b)
	}
	if _, err := s.PG.Exec(ctx, q, args...); err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "23503" {
			return postage.Errorf(postage.ENOTFOUND, "customer %q not found", customerID)
		}
		return fmt.Errorf("set overrides of %s: %w", customerID, err)
	}
	return nil
}

// Seed creates the pricing.Seeds cards that are absent, each with its
// version 1 active from pricing.SeedMonth, and makes launch the default
// card when no card is. Running it again, or on two replicas at once,
// changes nothing.
func (s *Store) Seed(ctx context.Context) error {
	seeds, err := pricing.Seeds()
	if err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, s.PG, func(tx pgx.Tx) error {
		q, args := seedLockSQL()
		if _, err := tx.Exec(ctx, q, args...); err != nil {
			return fmt.Errorf("seed rate cards: %w", err)
		}
		for _, sd := range seeds {
			q, args := insertSeedCardSQL(sd.Card)
			if _, err := tx.Exec(ctx, q, args...); err != nil {
				return fmt.Errorf("seed rate card %s: %w", sd.Card.ID, err)
			}
			var n int
			q, args = countVersionsSQL(sd.Card.ID)
			if err := tx.QueryRow(ctx, q, args...).Scan(&n); err != nil {
				return fmt.Errorf("seed rate card %s: %w", sd.Card.ID, err)
			}
			if n > 0 {
				continue
			}
			b, err := content(sd.Version)
			if err != nil {
				return err
			}
			q, args = insertVersionSQL(sd.Version, b)
			if _, err := tx.Exec(ctx, q, args...); err != nil {
				return fmt.Errorf("seed rate card %s: %w", sd.Card.ID, err)
			}
			if sd.Card.Kind == pricing.KindCost {
				q, args = seedCostCardSQL(sd.Card.ID, sd.Version.EffectiveFrom)
				if _, err := tx.Exec(ctx, q, args...); err != nil {
					return fmt.Errorf("seed cost card %s: %w", sd.Card.ID, err)
				}
			}
		}
		var dflt string
		q, args = defaultCardSQL()
		err := tx.QueryRow(ctx, `SELECT id FROM (`+q+`) d`, args...).Scan(&dflt)
		if errors.Is(err, pgx.ErrNoRows) {
			q, args = setDefaultSQL(pricing.LaunchCardID)
			_, err = tx.Exec(ctx, q, args...)
		}
		if err != nil {
			return fmt.Errorf("seed default rate card: %w", err)
		}
		return nil
	})
}

// CostCardFor returns the cost card in effect in month.
func (s *Store) CostCardFor(ctx context.Context, month pricing.Month) (pricing.RateCard, error) {
	q, args := costCardForSQL(month)
	c, err := scanCard(s.PG.QueryRow(ctx, q, args...))
	if err != nil {
		return c, notFound(err, "no cost card is in effect in %s (schedule one: postage costcards set)", month)
	}
	return c, nil
}

// CostCards returns the cost card schedule, oldest first.
func (s *Store) CostCards(ctx context.Context) ([]pricing.CostCardPeriod, error) {
	q, args := costCardsSQL()
	rows, err := s.PG.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("cost cards: %w", err)
	}
	defer rows.Close()
	out := []pricing.CostCardPeriod{}
	for rows.Next() {
		var p pricing.CostCardPeriod
		var from string
		if err := rows.Scan(&p.CardID, &from); err != nil {
			return nil, fmt.Errorf("cost cards: %w", err)
		}
		if p.EffectiveFrom, err = pricing.ParseMonth(from); err != nil {
			return nil, fmt.Errorf("cost cards: %w", err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// SetCostCard schedules a cost card from month `from`, which must be after
// the current month (by s.Now): the cost of a month that may be billed
// never changes.
func (s *Store) SetCostCard(ctx context.Context, cardID string, from pricing.Month) error {
	if !from.Valid() {
		return postage.Errorf(postage.EINVALID, "effective_from %q is not a month", from)
	}
	if cur := pricing.MonthOf(s.now()); !from.After(cur) {
		return postage.Errorf(postage.EINVALID, "effective_from %s must be after the current month %s: earlier months may already be billed", from, cur)
	}
	card, err := s.GetCard(ctx, cardID)
	if err != nil {
		return err
	}
	if card.Kind != pricing.KindCost {
		return postage.Errorf(postage.ECONFLICT, "rate card %s is a %s card: only a cost card can be the cost card in effect", cardID, card.Kind)
	}
	q, args := setCostCardSQL(cardID, from)
	if _, err := s.PG.Exec(ctx, q, args...); err != nil {
		return fmt.Errorf("set cost card: %w", err)
	}
	return nil
}

// SetExchangeRate records a month's rate of a currency pair. The same rate
// again is a no-op; another one is a conflict: a recorded rate never
// changes (a database trigger refuses updates and deletes).
func (s *Store) SetExchangeRate(ctx context.Context, x pricing.ExchangeRate) (pricing.ExchangeRate, error) {
	if err := x.Validate(); err != nil {
		return x, err
	}
	q, args := insertExchangeRateSQL(x)
	if _, err := s.PG.Exec(ctx, q, args...); err != nil {
		return x, fmt.Errorf("record exchange rate: %w", err)
	}
	got, err := s.ExchangeRateFor(ctx, x.From, x.To, x.Month)
	if err != nil {
		return x, err
	}
	if !got.Rate.Equal(x.Rate) {
		return got, postage.Errorf(postage.ECONFLICT, "the %s to %s rate of %s is recorded as %s and never changes", x.From, x.To, x.Month, got.Rate)
	}
	return got, nil
}

func scanExchangeRate(row pgx.Row) (pricing.ExchangeRate, error) {
	var x pricing.ExchangeRate
	var month, rate string
	if err := row.Scan(&x.From, &x.To, &month, &rate, &x.Source); err != nil {
		return x, err
	}
	var err error
	if x.Month, err = pricing.ParseMonth(month); err != nil {
		return x, err
	}
	if x.Rate, err = decimal.NewFromString(rate); err != nil {
		return x, fmt.Errorf("exchange rate %q: %w", rate, err)
	}
	return x, nil
}

// ExchangeRateFor returns the rate of (from, to) for month.
func (s *Store) ExchangeRateFor(ctx context.Context, from, to string, month pricing.Month) (pricing.ExchangeRate, error) {
	q, args := exchangeRateSQL(from, to, month)
	x, err := scanExchangeRate(s.PG.QueryRow(ctx, q, args...))
	if err != nil {
		return x, notFound(err, "no %s to %s exchange rate is recorded for %s", from, to, month)
	}
	return x, nil
}

// ExchangeRates lists recorded rates (empty from or to: any).
func (s *Store) ExchangeRates(ctx context.Context, from, to string) ([]pricing.ExchangeRate, error) {
	q, args := exchangeRatesSQL(from, to)
	rows, err := s.PG.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("exchange rates: %w", err)
	}
	defer rows.Close()
	out := []pricing.ExchangeRate{}
	for rows.Next() {
		x, err := scanExchangeRate(rows)
		if err != nil {
			return nil, fmt.Errorf("exchange rates: %w", err)
		}
		out = append(out, x)
	}
	return out, rows.Err()
}
