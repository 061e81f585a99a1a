package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/shopspring/decimal"

	"postage"
	"postage/pricing"
)

// MonthToDate reads a customer's usage and bill of the current month so
// far, through the one usage read (metering.Usage) and the one rating
// pipeline (billing): internal/app adapts billing.Runner to it.
type MonthToDate interface {
	// MonthToDate returns the customer's month so far; the bill only
	// when withAmount is set (it costs a rating).
	MonthToDate(ctx context.Context, customerID string, withAmount bool) (Spend, error)
}

// Spend is a customer's current month so far.
type Spend struct {
	// Period is the month it covers.
	Period pricing.Month
	// Messages counts every message metered in the month so far (free
	// ones and ones no card prices included).
	Messages int64
	// Amount is the month-to-date bill (billing's upcoming invoice total:
	// the month's usage rated as its invoice will be, with the adjustment
	// lines it would carry) in Currency, when asked for and AmountErr is
	// nil.
	Amount   decimal.Decimal
	Currency string
	// AmountErr says why the bill could not be computed (no rate card,
	// another currency); amount alerts then wait.
	AmountErr error
}

// Evaluator fires alerts: every Interval it reads the month so far of
// each customer having an alert that has not fired this month (one read
// per customer, whatever its number of alerts) and fires those whose
// threshold is reached, each once per month, emitting
// usage.threshold_reached in the transaction that marks it fired. One
// replica evaluates at a time (Store.LockAlerts).
type Evaluator struct {
	Store  Store
	Usage  MonthToDate
	Outbox *Outbox
	// Interval is the time between passes (5 minutes when zero).
	Interval time.Duration
	Now      func() time.Time
	Log      *slog.Logger
}

func (e *Evaluator) now() time.Time {
	if e.Now != nil {
		return e.Now().UTC()
	}
	return time.Now().UTC()
}

func (e *Evaluator) log() *slog.Logger {
	if e.Log != nil {
		return e.Log
	}
	return slog.Default()
}

// Evaluate makes one pass and returns how many alerts fired; ran is false
// when another replica holds the lock.
func (e *Evaluator) Evaluate(ctx context.Context) (fired int, ran bool, err error) {
	unlock, ok, err := e.Store.LockAlerts(ctx)
	if err != nil || !ok {
		return 0, false, err
	}
	defer unlock()
	period := pricing.MonthOf(e.now())
	var errs []error
	failing := 0 // customers in a row whose read failed
	after := ""
	for {
		page, err := e.Store.UnfiredAlerts(ctx, period, after, 500)
		if err != nil {
			return fired, true, err
		}
		if len(page) == 0 {
			break
		}
		for i := 0; i < len(page); {
			j := i
			for j < len(page) && page[j].CustomerID == page[i].CustomerID {
				j++
			}
			n, err := e.customer(ctx, period, page[i:j])
			fired += n
			switch {
			case err == nil:
				failing = 0
			case ctx.Err() != nil:
				return fired, true, err
			default:
				errs = append(errs, fmt.Errorf("alerts of %s: %w", page[i].CustomerID, err))
				if failing++; failing == maxFailing {
					// A database is likely down: the next pass tries again.
					return fired, true, fmt.Errorf("%d customers in a row failed, pass abandoned: %w", failing, errors.Join(errs...))
				}
			}
			i = j
		}
		after = page[len(page)-1].CustomerID
	}
	return fired, true, errors.Join(errs...)
}

// maxFailing is how many customers in a row may fail before a pass stops.
const maxFailing = 5

// customer evaluates one customer's unfired alerts.
func (e *Evaluator) customer(ctx context.Context, period pricing.Month, alerts []Alert) (int, error) {
	withAmount := false
	for _, a := range alerts {
		withAmount = withAmount || a.Metric == MetricAmount
	}
	spend, err := e.Usage.MonthToDate(ctx, alerts[0].CustomerID, withAmount)
	if err != nil {
		return 0, err
	}
	if spend.Period != period {
		return 0, nil // the month turned during the pass: the next pass sees the new one
	}
	fired := 0
	for _, a := range alerts {
		reached := false
		switch a.Metric {
		case MetricMessages:
			reached = decimal.NewFromInt(spend.Messages).GreaterThanOrEqual(a.Threshold)
		case MetricAmount:
			if spend.AmountErr != nil {
				e.log().Debug("amount alert waits: no bill", "alert", a.ID, "customer", a.CustomerID, "err", spend.AmountErr)
				continue
			}
			if spend.Currency != a.Currency {
				e.log().Warn("amount alert in another currency than the customer's bill: not evaluated", "alert", a.ID, "customer", a.CustomerID,
					"alert_currency", a.Currency, "bill_currency", spend.Currency)
				continue
			}
			reached = spend.Amount.GreaterThanOrEqual(a.Threshold)
		}
		if !reached {
			continue
		}
		now := e.now()
		obj := ThresholdReached{Alert: a, Period: period, Messages: spend.Messages, At: now}
		obj.Alert.FiredPeriod, obj.Alert.FiredAt = &period, &now
		if withAmount && spend.AmountErr == nil {
			obj.Amount, obj.Currency = spend.Amount.StringFixed(int32(minorUnits(spend.Currency))), spend.Currency
		}
		ev := Event{Type: UsageThresholdReached, CustomerID: a.CustomerID, Object: obj, Created: now,
			Key: a.ID + "/" + period.String()}
		ok, err := e.Store.FireAlert(ctx, a, period, now, func(ctx context.Context, q Querier) error {
			return e.Outbox.Emit(ctx, q, ev)
		})
		if err != nil {
			return fired, err
		}
		if ok {
			fired++
		}
	}
	return fired, nil
}

func minorUnits(currency string) int {
	if n, ok := pricing.MinorUnits(currency); ok {
		return n
	}
	return 2
}

// Run evaluates every Interval until ctx ends.
func (e *Evaluator) Run(ctx context.Context) {
	interval := e.Interval
	if interval <= 0 {
		interval = 5 * time.Minute
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if n, _, err := e.Evaluate(ctx); err != nil && ctx.Err() == nil {
			if postage.ErrorCode(err) == postage.EUNAVAILABLE {
				e.log().Warn("usage alerts: a database is unavailable; next pass in "+interval.String(), "err", err)
			} else {
				e.log().Error("usage alerts", "err", err)
			}
		} else if n > 0 {
			e.log().Info("usage alerts fired", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
