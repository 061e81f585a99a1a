package pgstore

import "postage/pricing"

// The SQL of the store, one small pure function per statement, so the text
// is unit tested and the store methods only run it.

const cardColumns = `id, name, currency, rounding, kind, is_default`

const versionColumns = `card_id, number, status, coalesce(effective_from, ''), note, content`

func listCardsSQL() (string, []any) {
	return `SELECT ` + cardColumns + ` FROM rate_cards ORDER BY id`, nil
}

func getCardSQL(id string) (string, []any) {
	return `SELECT ` + cardColumns + ` FROM rate_cards WHERE id = $1`, []any{id}
}

func lockCardSQL(id string) (string, []any) {
	return `SELECT ` + cardColumns + ` FROM rate_cards WHERE id = $1 FOR UPDATE`, []any{id}
}

func insertCardSQL(c pricing.RateCard) (string, []any) {
	return `INSERT INTO rate_cards (id, name, currency, rounding, kind, is_default) VALUES ($1, $2, $3, $4, $5, $6)`,
		[]any{c.ID, c.Name, c.Currency, string(c.Rounding), string(c.Kind), c.Default}
}

func clearDefaultSQL() (string, []any) {
	return `UPDATE rate_cards SET is_default = false WHERE is_default`, nil
}

func setDefaultSQL(id string) (string, []any) {
	return `UPDATE rate_cards SET is_default = true WHERE id = $1`, []any{id}
}

func defaultCardSQL() (string, []any) {
	return `SELECT ` + cardColumns + ` FROM rate_cards WHERE is_default`, nil
}

func listVersionsSQL(cardID string) (string, []any) {
	return `SELECT ` + versionColumns + ` FROM rate_card_versions WHERE card_id = $1 ORDER BY number`, []any{cardID}
}

func getVersionSQL(cardID string, number int) (string, []any) {
	return `SELECT ` + versionColumns + ` FROM rate_card_versions WHERE card_id = $1 AND number = $2`, []any{cardID, number}
}

func nextVersionNumberSQL(cardID string) (string, []any) {
	return `SELECT coalesce(max(number), 0) + 1 FROM rate_card_versions WHERE card_id = $1`, []any{cardID}
}

func insertVersionSQL(v *pricing.Version, content []byte) (string, []any) {
	var from any
	if !v.EffectiveFrom.IsZero() {
		from = v.EffectiveFrom.String()
	}
	return `INSERT INTO rate_card_versions (card_id, number, status, effective_from, note, content, activated_at)
VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $3 = 'active' THEN now() END)`,
		[]any{v.CardID, v.Number, string(v.Status), from, v.Note, content}
}

func updateDraftSQL(v *pricing.Version, content []byte) (string, []any) {
	return `UPDATE rate_card_versions SET note = $3, content = $4, updated_at = now()
WHERE card_id = $1 AND number = $2 AND status = 'draft'`, []any{v.CardID, v.Number, v.Note, content}
}

func latestActivationSQL(cardID string) (string, []any) {
	return `SELECT coalesce(max(effective_from), '') FROM rate_card_versions WHERE card_id = $1 AND status = 'active'`, []any{cardID}
}

func activateSQL(cardID string, number int, from pricing.Month) (string, []any) {
	return `UPDATE rate_card_versions SET status = 'active', effective_from = $3, activated_at = now(), updated_at = now()
WHERE card_id = $1 AND number = $2 AND status = 'draft'`, []any{cardID, number, from.String()}
}

func versionForSQL(cardID string, month pricing.Month) (string, []any) {
	return `SELECT ` + versionColumns + ` FROM rate_card_versions
WHERE card_id = $1 AND status = 'active' AND effective_from <= $2
ORDER BY effective_from DESC LIMIT 1`, []any{cardID, month.String()}
}

func assignedCardSQL(customerID string, month pricing.Month) (string, []any) {
	return `SELECT c.id, c.name, c.currency, c.rounding, c.kind, c.is_default FROM customer_rate_cards a JOIN rate_cards c ON c.id = a.card_id
WHERE a.customer_id = $1 AND a.effective_from <= $2
ORDER BY a.effective_from DESC LIMIT 1`, []any{customerID, month.String()}
}

func assignCardSQL(customerID, cardID string, from pricing.Month) (string, []any) {
	return `INSERT INTO customer_rate_cards (customer_id, effective_from, card_id) VALUES ($1, $2, $3)
ON CONFLICT (customer_id, effective_from) DO UPDATE SET card_id = EXCLUDED.card_id, created_at = now()`,
		[]any{customerID, from.String(), cardID}
}

func getOverridesSQL(customerID string) (string, []any) {
	return `SELECT overrides FROM customer_pricing_overrides WHERE customer_id = $1`, []any{customerID}
}

func setOverridesSQL(customerID string, ov []byte) (string, []any) {
	return `INSERT INTO customer_pricing_overrides (customer_id, overrides) VALUES ($1, $2)
ON CONFLICT (customer_id) DO UPDATE SET overrides = EXCLUDED.overrides, updated_at = now()`, []any{customerID, ov}
}

func deleteOverridesSQL(customerID string) (string, []any) {
	return `DELETE FROM customer_pricing_overrides WHERE customer_id = $1`, []any{customerID}
}

// seedLockSQL serialises concurrent seeding (replicas starting together).
func seedLockSQL() (string, []any) {
	return `SELECT pg_advisory_xact_lock(hashtext('postage.pricing.seed'))`, nil
}

func insertSeedCardSQL(c pricing.RateCard) (string, []any) {
	return `INSERT INTO rate_cards (id, name, currency, rounding, kind) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING`,
		[]any{c.ID, c.Name, c.Currency, string(c.Rounding), string(c.Kind)}
}

func countVersionsSQL(cardID string) (string, []any) {
	return `SELECT count(*) FROM rate_card_versions WHERE card_id = $1`, []any{cardID}
}

// cardsForSQL resolves, in one statement, the card in month of each of the
// customers: the latest assignment effective on or before the month, else
// the default card (the rule of CardFor). Customers with neither are left out.
func cardsForSQL(customers []string, month pricing.Month) (string, []any) {
	// The assignments in effect (few customers have one), then the
	// default card once, which the caller gives everyone else: a
	// correlated look-up per customer cost an index probe for each of a
	// run's 50,000 customers.
	return `SELECT false, a.customer_id, c.id, c.name, c.currency, c.rounding, c.kind, c.is_default
FROM (SELECT DISTINCT ON (customer_id) customer_id, card_id FROM customer_rate_cards
      WHERE customer_id = ANY($1) AND effective_from <= $2 ORDER BY customer_id, effective_from DESC) a
JOIN rate_cards c ON c.id = a.card_id
UNION ALL
SELECT true, '', d.id, d.name, d.currency, d.rounding, d.kind, d.is_default FROM rate_cards d WHERE d.is_default`, []any{customers, month.String()}
}

// overridesForSQL reads the overrides of the given customers, or of every
// customer that has any when customers is nil.
func overridesForSQL(customers []string) (string, []any) {
	if customers == nil {
		return `SELECT customer_id, overrides FROM customer_pricing_overrides`, nil
	}
	return `SELECT customer_id, overrides FROM customer_pricing_overrides WHERE customer_id = ANY($1)`, []any{customers}
}

// Cost cards and exchange rates.

func costCardForSQL(month pricing.Month) (string, []any) {
	return `SELECT c.id, c.name, c.currency, c.rounding, c.kind, c.is_default FROM cost_card_schedule s JOIN rate_cards c ON c.id = s.card_id
WHERE s.effective_from <= $1 ORDER BY s.effective_from DESC LIMIT 1`, []any{month.String()}
}

func costCardsSQL() (string, []any) {
	return `SELECT card_id, effective_from FROM cost_card_schedule ORDER BY effective_from`, nil
}

func setCostCardSQL(cardID string, from pricing.Month) (string, []any) {
	return `INSERT INTO cost_card_schedule (effective_from, card_id) VALUES ($1, $2)
ON CONFLICT (effective_from) DO UPDATE SET card_id = EXCLUDED.card_id, created_at = now()`, []any{from.String(), cardID}
}

// seedCostCardSQL schedules a seeded cost card from a month when no cost
// card is scheduled at all.
func seedCostCardSQL(cardID string, from pricing.Month) (string, []any) {
	return `INSERT INTO cost_card_schedule (effective_from, card_id)
SELECT $1, $2 WHERE NOT EXISTS (SELECT 1 FROM cost_card_schedule)`, []any{from.String(), cardID}
}

func insertExchangeRateSQL(x pricing.ExchangeRate) (string, []any) {
	return `INSERT INTO exchange_rates (from_currency, to_currency, month, rate, source) VALUES ($1, $2, $3, $4::numeric, $5)
ON CONFLICT (from_currency, to_currency, month) DO NOTHING`, []any{x.From, x.To, x.Month.String(), x.Rate.String(), x.Source}
}

const exchangeRateColumns = `from_currency, to_currency, month, rate::text, source`

func exchangeRateSQL(from, to string, month pricing.Month) (string, []any) {
	return `SELECT ` + exchangeRateColumns + ` FROM exchange_rates WHERE from_currency = $1 AND to_currency = $2 AND month = $3`,
		[]any{from, to, month.String()}
}

func exchangeRatesSQL(from, to string) (string, []any) {
	return `SELECT ` + exchangeRateColumns + ` FROM exchange_rates WHERE ($1 = '' OR from_currency = $1) AND ($2 = '' OR to_currency = $2)
ORDER BY from_currency, to_currency, month`, []any{from, to}
}
