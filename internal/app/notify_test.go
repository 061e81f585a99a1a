package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"postage/billing"
	"postage/internal/config"
	"postage/internal/testenv"
	"postage/notify"
	"postage/pricing"
)

// openNotifyApp is a wired app on fresh databases with webhooks
// configured and the clock at now.
func openNotifyApp(t testing.TB, env *testenv.Env, now *time.Time, mu *sync.Mutex) *App {
	t.Helper()
	cfg := config.Default()
	cfg.Postgres.DSN = env.PGDSN
	cfg.ClickHouse.Addr = env.CHAddr
	cfg.ClickHouse.Database = env.CHDatabase
	cfg.Notify.SecretKey = testKey
	cfg.Notify.AllowNetworks = []string{"127.0.0.0/8"}
	a, err := Open(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	a.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return *now }
	return a
}

var testKey = notify.NewKey()

// sent inserts n events of customer sent and ingested at at.
func sent(t testing.TB, a *App, customer string, at time.Time, n int) {
	t.Helper()
	b, err := a.CH.PrepareBatch(context.Background(), "INSERT INTO events (customer_id, id, time, country, category, quantity, payload_hash, ingested_at)")
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := b.Append(customer, fmt.Sprintf("%s-%d-%d", customer, at.UnixNano(), i), at, "GB", "marketing", uint64(1), uint64(1), at); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Send(); err != nil {
		t.Fatal(err)
	}
}

// fired returns the usage.threshold_reached events in the outbox.
func fired(t *testing.T, a *App) []notify.ThresholdReached {
	t.Helper()
	rows, err := a.PG.Query(context.Background(), `SELECT payload FROM webhook_events WHERE type = 'usage.threshold_reached' ORDER BY created_at, id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []notify.ThresholdReached
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		var p struct {
			Data struct {
				Object notify.ThresholdReached `json:"object"`
			} `json:"data"`
		}
		if err := json.Unmarshal([]byte(s), &p); err != nil {
			t.Fatal(err)
		}
		out = append(out, p.Data.Object)
	}
	return out
}

// Alerts fire once per month when the month-to-date usage or bill, read
// through billing (metering's usage read, the rating pipeline), reaches
// them; again the next month; never twice in a month, even with two
// replicas evaluating at once; an amount alert of a customer who cannot be
// billed waits while its messages alert fires.
func TestAlertsFireOncePerMonth(t *testing.T) {
	env := testenv.New(t)
	var mu sync.Mutex
	now := time.Date(2026, 11, 10, 12, 0, 0, 0, time.UTC)
	a := openNotifyApp(t, env, &now, &mu)
	replica := openNotifyApp(t, env, &now, &mu)
	ctx := context.Background()
	if err := a.Seed(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range []billing.Customer{{ID: "acme", Name: "Acme", Currency: "USD", Country: "GB"}, {ID: "yen", Name: "Yen KK", Currency: "JPY", Country: "JP"}} {
		if _, err := a.Customers.Create(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Webhooks.CreateEndpoint(ctx, notify.NewEndpoint{URL: "http://127.0.0.1:9/hook", EventTypes: []notify.EventType{notify.UsageThresholdReached}}, ""); err != nil {
		t.Fatal(err)
	}
	advance := func(to time.Time) { mu.Lock(); now = to; mu.Unlock() }
	evaluate := func(want int) {
		t.Helper()
		n, ran, err := a.Alerts.Evaluate(ctx)
		if err != nil || !ran || n != want {
			t.Fatalf("evaluate at %v: %d fired (ran %v, %v), want %d", now, n, ran, err, want)
		}
	}

	sent(t, a, "acme", now.Add(-time.Hour), 5)
	bill5, err := a.Billing.Upcoming(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if !bill5.Total.IsPositive() {
		t.Fatalf("five messages cost %s", bill5.Total)
	}
	amount := bill5.Total.Add(decimal.RequireFromString("0.01"))
	alert := func(customer string, m notify.Metric, v string) notify.Alert {
		t.Helper()
		al, err := a.Webhooks.CreateAlert(ctx, customer, notify.NewAlert{Metric: m, Threshold: decimal.RequireFromString(v)})
		if err != nil {
			t.Fatal(err)
		}
		return al
	}
	msgs := alert("acme", notify.MetricMessages, "8")
	money := alert("acme", notify.MetricAmount, amount.StringFixed(2))
	alert("acme", notify.MetricMessages, "1000")
	yenMsgs := alert("yen", notify.MetricMessages, "3")
	alert("yen", notify.MetricAmount, "1")

	evaluate(0) // acme: 5 messages, under both; yen: none
	sent(t, a, "acme", now.Add(-time.Minute), 5)
	sent(t, a, "yen", now.Add(-time.Minute), 4)
	advance(now.Add(time.Minute))
	// Two replicas at once: each alert fires once.
	var wg sync.WaitGroup
	counts := make([]int, 2)
	for i, app := range []*App{a, replica} {
		wg.Go(func() {
			n, _, err := app.Alerts.Evaluate(ctx)
			if err != nil {
				t.Error(err)
			}
			counts[i] = n
		})
	}
	wg.Wait()
	if counts[0]+counts[1] != 3 {
		t.Fatalf("replicas fired %v, want 3 in all", counts)
	}
	got := fired(t, a)
	if len(got) != 3 {
		t.Fatalf("%d events, want 3", len(got))
	}
	bill10, err := a.Billing.Upcoming(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	byAlert := map[string]notify.ThresholdReached{}
	for _, e := range got {
		byAlert[e.Alert.ID] = e
	}
	nov := pricing.MustParseMonth("2026-11")
	if e := byAlert[msgs.ID]; e.Messages != 10 || e.Period != nov || e.Amount != bill10.Total.String() || e.Currency != "USD" {
		t.Errorf("messages alert: %+v", e)
	}
	if e := byAlert[money.ID]; e.Amount != bill10.Total.String() || !bill10.Total.GreaterThanOrEqual(amount) || e.Alert.FiredPeriod == nil || *e.Alert.FiredPeriod != nov {
		t.Errorf("amount alert: %+v (bill %s)", e, bill10.Total)
	}
	if e := byAlert[yenMsgs.ID]; e.Messages != 4 || e.Amount != "" {
		t.Errorf("yen's messages alert (no JPY card: no bill): %+v", e)
	}

	// Crossed already: not again this month, however much more is sent.
	sent(t, a, "acme", now.Add(-time.Second), 50)
	evaluate(0)
	list, err := a.Webhooks.Alerts(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	for _, al := range list {
		if want := al.Threshold.LessThan(decimal.NewFromInt(1000)); (al.FiredPeriod != nil) != want { // the 1000-message alert has not fired
			t.Errorf("alert %s (%s %s) fired period %v", al.ID, al.Metric, al.Threshold, al.FiredPeriod)
		}
	}

	// December: each fires again once crossed.
	dec := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	advance(dec)
	sent(t, a, "acme", dec.Add(-time.Hour), 3)
	evaluate(0)
	sent(t, a, "acme", dec.Add(-time.Minute), 7)
	evaluate(2) // 10 messages ≥ 8, and the bill of 10 ≥ the bill of 5 + 0.01
	evaluate(0)
	if got := fired(t, a); len(got) != 5 || got[3].Period != pricing.MustParseMonth("2026-12") || got[4].Period != pricing.MustParseMonth("2026-12") {
		t.Errorf("events %+v", got)
	}
	// A replica that finds the lock taken does nothing.
	unlock, ok, err := a.NotifyStore.LockAlerts(ctx)
	if err != nil || !ok {
		t.Fatal(err)
	}
	if _, ran, err := replica.Alerts.Evaluate(ctx); ran || err != nil {
		t.Errorf("evaluated while another replica held the lock (%v)", err)
	}
	unlock()
}

// The month-to-date messages are the same whether they are counted from
// the upcoming invoice's usage lines or from the usage read alone.
func TestMonthToDateMessagesAgree(t *testing.T) {
	env := testenv.New(t)
	var mu sync.Mutex
	now := time.Date(2026, 11, 10, 12, 0, 0, 0, time.UTC)
	a := openNotifyApp(t, env, &now, &mu)
	ctx := context.Background()
	if err := a.Seed(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Customers.Create(ctx, billing.Customer{ID: "acme", Name: "Acme", Currency: "USD", Country: "GB"}); err != nil {
		t.Fatal(err)
	}
	sent(t, a, "acme", now.Add(-time.Hour), 7)
	b, err := a.CH.PrepareBatch(ctx, "INSERT INTO events (customer_id, id, time, country, category, pricing_type, quantity, payload_hash, ingested_at)")
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range []string{"DE", "IN", "US"} {
		_ = b.Append("acme", fmt.Sprint("x", i), now.Add(-time.Hour), c, "utility", "free_customer_service", uint64(3), uint64(1), now.Add(-time.Hour))
	}
	if err := b.Send(); err != nil {
		t.Fatal(err)
	}
	mtd := MonthToDate{Runner: a.Billing, Now: a.Now}
	withBill, err := mtd.MonthToDate(ctx, "acme", true)
	if err != nil || withBill.AmountErr != nil {
		t.Fatal(err, withBill.AmountErr)
	}
	alone, err := mtd.MonthToDate(ctx, "acme", false)
	if err != nil {
		t.Fatal(err)
	}
	if withBill.Messages != 16 || alone.Messages != 16 || !alone.Amount.IsZero() {
		t.Errorf("with the bill %d, alone %d, want 16 both", withBill.Messages, alone.Messages)
	}
}
