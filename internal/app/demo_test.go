package app

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"postage/billing"
	"postage/internal/config"
	"postage/internal/testenv"
	"postage/pricing"
	"postage/reports"
)

func TestMain(m *testing.M) {
	if os.Getenv(serveChildEnv) != "" {
		serveChild()
		return
	}
	testenv.Main(m)
}

func openTestApp(t *testing.T) *App {
	t.Helper()
	env := testenv.New(t)
	cfg := config.Default()
	cfg.Postgres.DSN = env.PGDSN
	cfg.ClickHouse.Addr = env.CHAddr
	cfg.ClickHouse.Database = env.CHDatabase
	cfg.Ingest.IndexDir = t.TempDir()
	a, err := Open(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	if err := a.Seed(context.Background()); err != nil {
		t.Fatal(err)
	}
	return a
}

func TestLoadDemo(t *testing.T) {
	a := openTestApp(t)
	ctx := context.Background()
	now := time.Date(2026, 11, 25, 15, 0, 0, 0, time.UTC)
	a.Now = func() time.Time { return now }
	opts := DemoOptions{Customers: 40, Messages: 40_000}
	if os.Getenv("DEMO_FULL") != "" { // the size `make run` loads, timed
		opts = DemoOptions{}
	}
	var out strings.Builder
	start := time.Now()
	if err := a.LoadDemoWith(ctx, &out, opts); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	t.Logf("loaded in %s:\n%s", time.Since(start), out.String())

	opts.defaults()
	all, err := a.Customers.All(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != opts.Customers {
		t.Fatalf("%d customers, want %d", len(all), opts.Customers)
	}
	// Usage of every month, about the asked volume, through the ingester.
	svc := a.Reports()
	trend, err := svc.UsageTrend(ctx, reports.SeriesQuery{From: pricing.MustParseMonth("2026-08").Start(), To: now.Add(time.Hour), Window: reports.Month, GroupBy: "category"})
	if err != nil {
		t.Fatal(err)
	}
	months := map[string]bool{}
	var total int64
	for _, p := range trend.Points {
		months[p.Start.Format("2006-01")] = true
		total += p.Quantity
	}
	if len(months) != 4 || total < int64(opts.Messages)*8/10 || total > int64(opts.Messages)*12/10 {
		t.Errorf("months %v, %d messages, want 4 months and about %d", months, total, opts.Messages)
	}
	// Invoices for the three past months: the older two approved, the last drafts.
	for i, m := range []string{"2026-08", "2026-09", "2026-10"} {
		invs, err := a.Invoices.PeriodInvoices(ctx, pricing.MustParseMonth(m))
		if err != nil {
			t.Fatal(err)
		}
		if len(invs) < opts.Customers/2 {
			t.Errorf("%s: %d invoices", m, len(invs))
		}
		for _, inv := range invs {
			want := billing.StatusFinalized
			if i == 2 {
				want = billing.StatusDraft
			}
			if inv.Status != want {
				t.Errorf("%s: invoice %s is %s, want %s", m, inv.ID, inv.Status, want)
				break
			}
		}
	}
	// Unknown ids are unbilled, not lost; revenue equals the invoices.
	ub, err := svc.Unbilled(ctx, pricing.MustParseMonth("2026-08"), pricing.MustParseMonth("2026-11"))
	if err != nil {
		t.Fatal(err)
	}
	if ub.Totals.Customers != 3 || ub.Rows[0].Reason != billing.UnbilledUnknownCustomer {
		t.Errorf("unbilled = %+v", ub.Totals)
	}
	rev, err := svc.Revenue(ctx, reports.RevenueQuery{From: pricing.MustParseMonth("2026-10"), To: pricing.MustParseMonth("2026-10"), GroupBy: reports.ByCustomer})
	if err != nil {
		t.Fatal(err)
	}
	invs, _ := a.Invoices.PeriodInvoices(ctx, pricing.MustParseMonth("2026-10"))
	byID := map[string]string{}
	for _, inv := range invs {
		byID[inv.CustomerID] = inv.Total.String()
	}
	for _, r := range rev.Rows {
		if byID[r.Key] != r.Amount {
			t.Errorf("%s: revenue %s, invoice %s", r.Key, r.Amount, byID[r.Key])
		}
	}

	// A second load changes nothing.
	out.Reset()
	if err := a.LoadDemoWith(ctx, &out, opts); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "skipped") {
		t.Errorf("second load: %s", out.String())
	}
	again, _ := a.Customers.All(ctx)
	if len(again) != len(all) {
		t.Errorf("second load made customers: %d → %d", len(all), len(again))
	}
}
