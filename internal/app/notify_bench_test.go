package app

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"postage/billing"
	"postage/internal/testenv"
	"postage/notify"
)

// BenchmarkAlertPass measures one pass of the alert evaluator over
// customers whose alerts are not reached (every pass reads each of them)
// against its baseline: the month-to-date bill of each customer
// (billing.Runner.Upcoming), the read a pass cannot avoid. Run both in one
// command and compare (docs/NOTIFICATIONS.md):
//
//	go test ./internal/app -run '^$' -bench BenchmarkAlertPass -count 5
func BenchmarkAlertPass(b *testing.B) {
	const customers, perCustomer = 50, 200
	env := testenv.New(b)
	var mu sync.Mutex
	now := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	a := openNotifyApp(b, env, &now, &mu)
	ctx := context.Background()
	if err := a.Seed(ctx); err != nil {
		b.Fatal(err)
	}
	var ids []string
	for i := range customers {
		id := fmt.Sprintf("c%03d", i)
		ids = append(ids, id)
		if _, err := a.Customers.Create(ctx, billing.Customer{ID: id, Name: id, Currency: "USD", Country: "GB"}); err != nil {
			b.Fatal(err)
		}
		sent(b, a, id, now.Add(-time.Hour), perCustomer)
		for _, al := range []notify.NewAlert{{Metric: notify.MetricMessages, Threshold: decimal.NewFromInt(1_000_000)}, {Metric: notify.MetricAmount, Threshold: decimal.NewFromInt(1_000_000)}} {
			if _, err := a.Webhooks.CreateAlert(ctx, id, al); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("baseline=upcoming", func(b *testing.B) {
		for b.Loop() {
			for _, id := range ids {
				if _, err := a.Billing.Upcoming(ctx, id); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*customers)/1e6, "ms/customer")
	})
	b.Run("evaluate", func(b *testing.B) {
		for b.Loop() {
			if n, ran, err := a.Alerts.Evaluate(ctx); err != nil || !ran || n != 0 {
				b.Fatal(n, ran, err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*customers)/1e6, "ms/customer")
	})
}
