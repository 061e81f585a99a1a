package app

import (
	"time"

	"github.com/shopspring/decimal"

	"postage/reconcile"
	reconcilepg "postage/reconcile/pgstore"
)

// Reconcile builds reconciliation with the upstream's reports on the
// app's stores: postage's usage from metering's usage read API, the cost
// card from the rate-card ledger, its tolerance and hold from [reconcile].
// The invoice runner asks it before finalizing a month (billing.Runner.Holds).
func (a *App) Reconcile() *reconcile.Service {
	pct, err := decimal.NewFromString(a.Config.Reconcile.TolerancePercent)
	if err != nil {
		pct = reconcile.DefaultTolerancePercent // config.Validate refused a bad value already
	}
	return &reconcile.Service{
		Store: reconcilepg.New(a.PG), Usage: a.Usage, Customers: a.Customers, Cards: a.Pricing,
		TolerancePercent: pct, Hold: a.Config.Reconcile.HoldFinalization,
		Now: func() time.Time { return a.Now() },
	}
}
