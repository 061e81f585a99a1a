package app

import (
	"context"
	"fmt"
	"sync"
	"time"

	"postage"
	"postage/billing"
	"postage/notify"
	"postage/pricing"
)

// openNotify builds outbound webhooks and usage alerts from the
// configuration: the outbox the invoice ledger emits into, the service
// the API and CLI call, the dispatcher and the alert evaluator that
// StartJobs runs.
func (a *App) openNotify() error {
	cfg := a.Config.Notify
	now := func() time.Time { return a.Now() }
	allow, err := notify.ParseNetworks(cfg.AllowNetworks)
	if err != nil {
		return err
	}
	var keys *notify.Keyring
	if cfg.SecretKey != "" {
		if keys, err = notify.NewKeyring(cfg.SecretKey, cfg.PreviousSecretKeys); err != nil {
			return err
		}
	}
	policy := &notify.TargetPolicy{Allow: allow}
	retry := notify.Retry{For: cfg.RetryFor.Duration}
	a.Outbox = &notify.Outbox{Now: now}
	// The ledger announces finalized, voided, paid and overdue invoices
	// and credit notes in the transactions that make them true.
	a.Invoices.Notify, a.Receivables.Notify = a.Outbox, a.Outbox
	a.NotifyStore = notify.NewPGStore(a.PG)
	a.Webhooks = &notify.Service{Store: a.NotifyStore, Policy: policy, Keys: keys, Retry: retry, Now: now}
	a.Dispatcher = &notify.Dispatcher{
		Store: a.NotifyStore, Keys: keys, Client: policy.Client(cfg.Timeout.Duration), Retry: retry,
		Timeout: cfg.Timeout.Duration, Workers: cfg.Workers, Poll: cfg.PollInterval.Duration, Retention: cfg.Retention.Duration,
		UserAgent: "postage-webhooks/" + Version, Now: now, Log: a.Log, Metrics: notify.NewMetrics(a.Registry),
	}
	a.Alerts = &notify.Evaluator{Store: a.NotifyStore, Usage: MonthToDate{Runner: a.Billing, Now: now}, Outbox: a.Outbox,
		Interval: cfg.AlertInterval.Duration, Now: now, Log: a.Log}
	return nil
}

// startNotify runs the dispatcher (notify.deliver) and the alert
// evaluator (notify.alert_interval > 0) until stop is called.
func (a *App) startNotify(ctx context.Context) (stop func()) {
	if a.Webhooks.Keys == nil {
		a.Log.Info("webhook endpoints cannot be created: notify.secret_key is not set (docs/NOTIFICATIONS.md)")
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	if a.Config.Notify.Deliver {
		wg.Go(func() { a.Dispatcher.Run(ctx) })
	} else {
		a.Log.Info("webhook delivery disabled in this process (notify.deliver = false)")
	}
	if a.Config.Notify.AlertInterval.Duration > 0 {
		wg.Go(func() { a.Alerts.Run(ctx) })
	}
	return func() { cancel(); wg.Wait() }
}

// MonthToDate reads a customer's month so far for the alert evaluator
// (notify.MonthToDate) through billing: the month-to-date bill is
// Runner.Upcoming (metering's usage read and the rating pipeline, exactly
// as the invoice will be), and its usage lines count the messages; when
// no bill is wanted or the customer cannot be billed (no card, another
// currency), the messages come from the same usage read alone
// (Runner.Usage.MonthlyUsage). Either costs one read of one
// customer-month, which does not grow with history.
type MonthToDate struct {
	Runner *billing.Runner
	Now    func() time.Time
}

var _ notify.MonthToDate = MonthToDate{}

// MonthToDate implements notify.MonthToDate.
func (m MonthToDate) MonthToDate(ctx context.Context, customerID string, withAmount bool) (notify.Spend, error) {
	var amountErr error
	if withAmount {
		inv, err := m.Runner.Upcoming(ctx, customerID)
		if err == nil {
			var n int64
			for _, l := range inv.Lines {
				if l.Kind == billing.KindUsage {
					n += l.Quantity
				}
			}
			return notify.Spend{Period: inv.Period, Messages: n, Amount: inv.Total.Decimal, Currency: inv.Currency}, nil
		}
		if postage.ErrorCode(err) != postage.ECONFLICT {
			return notify.Spend{}, err
		}
		amountErr = err
	}
	now := m.Now().UTC()
	period := pricing.MonthOf(now)
	rows, err := m.Runner.Usage.MonthlyUsage(ctx, period, now.Truncate(time.Second), []string{customerID})
	if err != nil {
		return notify.Spend{}, fmt.Errorf("read usage of %s: %w", customerID, err)
	}
	var n int64
	for _, r := range rows {
		n += r.Quantity
	}
	return notify.Spend{Period: period, Messages: n, AmountErr: amountErr}, nil
}
