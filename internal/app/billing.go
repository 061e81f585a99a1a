package app

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"postage/billing"
	"postage/pricing"
	"postage/pricing/pgstore"
	"postage/reports"
)

// openBilling builds the invoice store and runner from the configuration.
func (a *App) openBilling() error {
	inv, err := billing.NewInvoiceStore(a.PG, a.Config.Billing.NumberFormat)
	if err != nil {
		return fmt.Errorf("config billing.number_format: %w", err)
	}
	now := func() time.Time { return a.Now() }
	inv.Now = now
	a.Invoices = inv
	a.Billing = &billing.Runner{
		Invoices: inv, Customers: a.Customers, Usage: &billing.CHUsage{Conn: a.CH}, Pricing: bulkPricing{a.Pricing, a.PG},
		Log: a.Log, Now: now, Grace: a.Config.Billing.Grace.Duration, CutoffLag: billing.DefaultCutoffLag,
	}
	return nil
}

// startScheduler starts the invoice scheduler unless billing.scheduler is off.
func (a *App) startScheduler(ctx context.Context) (stop func(), err error) {
	if !a.Config.Billing.Scheduler {
		a.Log.Info("invoice scheduler disabled (billing.scheduler = false)")
		return func() {}, nil
	}
	s := &billing.Scheduler{Runner: a.Billing, Schedule: a.Config.Billing.Schedule}
	if err := s.Start(ctx); err != nil {
		return nil, err
	}
	return s.Stop, nil
}

// Issuer is who invoices are from (billing.issuer_name and issuer_address).
func (a *App) Issuer() reports.Issuer {
	return reports.Issuer{Name: a.Config.Billing.IssuerName, Address: a.Config.Billing.IssuerAddress}
}

// bulkPricing adds billing.BulkPricing to the rate card store: one query
// for every run customer's card and one for their overrides, with the same
// rules as pgstore.Store.CardFor (latest assignment effective on or before
// the month, else the default card) and Overrides.
// TODO(pricing): move these two queries into pricing/pgstore.
type bulkPricing struct {
	*pgstore.Store
	pg *pgxpool.Pool
}

var _ billing.BulkPricing = bulkPricing{}

func (b bulkPricing) CardsFor(ctx context.Context, customers []string, month pricing.Month) (map[string]pricing.RateCard, error) {
	out := make(map[string]pricing.RateCard, len(customers))
	scan := func(r pgx.Rows) (string, pricing.RateCard, error) {
		var id, rounding string
		var c pricing.RateCard
		err := r.Scan(&id, &c.ID, &c.Name, &c.Currency, &rounding, &c.Default)
		c.Rounding = pricing.Rounding(rounding)
		return id, c, err
	}
	rows, err := b.pg.Query(ctx, `SELECT DISTINCT ON (a.customer_id) a.customer_id, c.id, c.name, c.currency, c.rounding, c.is_default
		FROM customer_rate_cards a JOIN rate_cards c ON c.id = a.card_id
		WHERE a.customer_id = ANY($1) AND a.effective_from <= $2 ORDER BY a.customer_id, a.effective_from DESC`, customers, month.String())
	if err != nil {
		return nil, fmt.Errorf("customer rate cards: %w", err)
	}
	for rows.Next() {
		id, c, err := scan(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("customer rate cards: %w", err)
		}
		out[id] = c
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("customer rate cards: %w", err)
	}
	rows, err = b.pg.Query(ctx, `SELECT '', id, name, currency, rounding, is_default FROM rate_cards WHERE is_default`)
	if err != nil {
		return nil, fmt.Errorf("default rate card: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		_, def, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("default rate card: %w", err)
		}
		for _, c := range customers {
			if _, ok := out[c]; !ok {
				out[c] = def
			}
		}
	}
	return out, rows.Err()
}

func (b bulkPricing) OverridesFor(ctx context.Context, customers []string) (map[string]pricing.Overrides, error) {
	rows, err := b.pg.Query(ctx, `SELECT customer_id, overrides FROM customer_pricing_overrides WHERE customer_id = ANY($1)`, customers)
	if err != nil {
		return nil, fmt.Errorf("customer overrides: %w", err)
	}
	defer rows.Close()
	out := map[string]pricing.Overrides{}
	for rows.Next() {
		var id string
		var raw []byte
		if err := rows.Scan(&id, &raw); err != nil {
			return nil, fmt.Errorf("customer overrides: %w", err)
		}
		var ov pricing.Overrides
		if err := json.Unmarshal(raw, &ov); err != nil {
			return nil, fmt.Errorf("decode overrides of %s: %w", id, err)
		}
		out[id] = ov
	}
	return out, rows.Err()
}
