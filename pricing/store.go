package pricing

import "context"

// Store is the rate card ledger (implemented by pricing/pgstore). Errors
// carry postage codes: ENOTFOUND for a missing card, version or customer
// assignment target, ECONFLICT for edits of an active version or an
// activation that would change an earlier month, EINVALID for content that
// fails Validate.
type Store interface {
	// ListCards returns every card, sorted by id; Default marks the default card.
	ListCards(ctx context.Context) ([]RateCard, error)
	// GetCard returns one card.
	GetCard(ctx context.Context, cardID string) (RateCard, error)
	// CreateCard adds a card without versions.
	CreateCard(ctx context.Context, c RateCard) error
	// SetDefaultCard makes cardID the card of customers without an assignment.
	SetDefaultCard(ctx context.Context, cardID string) error

	// ListVersions returns a card's versions, oldest first.
	ListVersions(ctx context.Context, cardID string) ([]Version, error)
	// GetVersion returns one version of a card.
	GetVersion(ctx context.Context, cardID string, number int) (*Version, error)
	// CreateDraft stores v as a new draft of v.CardID and returns it with
	// its assigned number. Currency and rounding must match the card's.
	CreateDraft(ctx context.Context, v *Version) (*Version, error)
	// UpdateDraft replaces the content of draft (v.CardID, v.Number).
	UpdateDraft(ctx context.Context, v *Version) error
	// Activate makes a draft active from month `from`, which must be after
	// the current month and after every earlier activation of the card, so
	// no month that may already be billed changes.
	Activate(ctx context.Context, cardID string, number int, from Month) (*Version, error)
	// VersionFor returns the active version of a card in effect in month.
	VersionFor(ctx context.Context, cardID string, month Month) (*Version, error)

	// CardFor returns the card of a customer in month: the latest
	// assignment effective on or before month, else the default card.
	CardFor(ctx context.Context, customerID string, month Month) (RateCard, error)
	// AssignCard gives a customer a card from month `from` on.
	AssignCard(ctx context.Context, customerID, cardID string, from Month) error
	// Overrides returns a customer's overrides (zero when none).
	Overrides(ctx context.Context, customerID string) (Overrides, error)
	// SetOverrides replaces a customer's overrides.
	SetOverrides(ctx context.Context, customerID string, ov Overrides) error

	// CostCardFor returns the cost card in effect in month: the upstream's
	// price list that rates usage at cost (ENOTFOUND when none is).
	CostCardFor(ctx context.Context, month Month) (RateCard, error)
	// CostCards returns which cost card is in effect from which month,
	// oldest first.
	CostCards(ctx context.Context) ([]CostCardPeriod, error)
	// SetCostCard makes a card of kind cost the cost card in effect from
	// month `from` (after the current month, so no month that may be billed
	// changes) until the next scheduled one; the same month again replaces
	// it.
	SetCostCard(ctx context.Context, cardID string, from Month) error

	// SetExchangeRate records the rate of a currency pair for a month.
	// Recording the same rate again is a no-op; a different one for a
	// month that has one is ECONFLICT (rates of billed months never change).
	SetExchangeRate(ctx context.Context, x ExchangeRate) (ExchangeRate, error)
	// ExchangeRateFor returns the rate of (from, to) for month
	// (ENOTFOUND when none is recorded).
	ExchangeRateFor(ctx context.Context, from, to string, month Month) (ExchangeRate, error)
	// ExchangeRates lists recorded rates, by pair then month; empty from
	// or to match any currency.
	ExchangeRates(ctx context.Context, from, to string) ([]ExchangeRate, error)

	// Seed creates the Seeds cards when absent (idempotent) and makes
	// launch the default card if no default is set.
	Seed(ctx context.Context) error
}
