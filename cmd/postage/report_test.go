package main

import (
	"context"
	"fmt"
	billingpg "postage/billing/pgstore"
	"strings"
	"testing"
	"time"

	"postage/billing"
	"postage/internal/app"
	"postage/internal/testenv"
	"postage/metering"
	"postage/pricing"
	"postage/pricing/pgstore"
	"postage/reports"
)

// reportEnv is a fresh installation with two customers and three months of
// usage, and the reports service on it (the CLI's output is compared with
// the service's; the service's numbers are checked against an independent
// computation in package reports).
func reportEnv(t *testing.T) (*testenv.Env, *reports.Service) {
	t.Helper()
	ctx := context.Background()
	env := testenv.New(t)
	cards := pgstore.New(env.PG)
	if err := cards.Seed(ctx); err != nil {
		t.Fatal(err)
	}
	cs := billingpg.NewCustomerStore(env.PG)
	for _, c := range []billing.Customer{{ID: "acme", Name: "Acme, Ltd", Currency: "USD", Country: "IN"}, {ID: "globex", Name: "Globex", Currency: "USD", Country: "DE"}} {
		if _, err := cs.Create(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	store := metering.NewCHStore(env.CH)
	var evs []metering.Event
	for i, m := range []string{"2026-08", "2026-09", "2026-10"} {
		start := pricing.MustParseMonth(m).Start()
		for j, u := range []struct {
			c, country, cat string
			q               uint64
		}{{"acme", "IN", "marketing", 1000}, {"acme", "BR", "utility", 250}, {"globex", "DE", "authentication", 300}, {"globex", "FR", "authentication", 20}} {
			e := metering.Event{CustomerID: u.c, ID: fmt.Sprintf("e%d-%d", i, j), Time: start.Add(time.Hour), Country: u.country, Category: u.cat, Quantity: u.q * uint64(i+1), IngestedAt: time.Now().UTC().Truncate(time.Second)}
			e.PayloadHash = metering.HashPayload(e.Time, true, e.Country, e.Category, e.Quantity)
			evs = append(evs, e)
		}
	}
	if err := store.Insert(ctx, evs); err != nil {
		t.Fatal(err)
	}
	return env, &reports.Service{Usage: billing.FromMeter(store), Series: app.SeriesFromMeter(store), Cards: cards, Customers: cs}
}

func TestSimulateCommand(t *testing.T) {
	env, svc := reportEnv(t)
	from, to := pricing.MustParseMonth("2026-08"), pricing.MustParseMonth("2026-10")
	sim, err := svc.Simulate(context.Background(), reports.SimulationRequest{CardID: pricing.MetaCardID, From: from, To: to})
	if err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	if err := sim.Table().WriteCSV(&want); err != nil {
		t.Fatal(err)
	}
	got, err := runCLI(t, env, "simulate", "--card", "meta-2026-01", "--from", "2026-08", "--to", "2026-10", "--format", "csv")
	if err != nil {
		t.Fatal(err)
	}
	if got != want.String() || !strings.Contains(got, `"Acme, Ltd"`) {
		t.Errorf("csv:\n%s\nwant:\n%s", got, want.String())
	}
	text, err := runCLI(t, env, "simulate", "--card", "meta-2026-01", "--from", "2026-08", "--to", "2026-10", "--customers", "globex", "--breakdown")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"Proposed card meta-2026-01 (version 1), 2026-08 to 2026-10, 1 customers", "MARKET", "globex", "USD"} {
		if !strings.Contains(text, s) {
			t.Errorf("text output lacks %q:\n%s", s, text)
		}
	}
	if strings.Contains(text, "acme") {
		t.Errorf("--customers globex shows acme:\n%s", text)
	}
	for _, args := range [][]string{
		{"simulate", "--from", "2026-08", "--to", "2026-10"},
		{"simulate", "--card", "meta-2026-01", "--from", "2026-8", "--to", "2026-10"},
	} {
		if _, err := runCLI(t, env, args...); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
	if _, err := runCLI(t, env, "simulate", "--card", "nope", "--from", "2026-08", "--to", "2026-10"); err == nil || !strings.Contains(oneLine(err), `no rate card "nope"`) {
		t.Errorf("unknown card: %v", err)
	}
	// An unknown customer is an error naming it, not an empty book.
	out, err := runCLI(t, env, "simulate", "--card", "meta-2026-01", "--from", "2026-08", "--to", "2026-10", "--customers", "globex,nope")
	if err == nil || oneLine(err) != `customers: no such customer "nope"` || out != "" {
		t.Errorf("unknown customer: %q, output %q", err, out)
	}
}

func TestReportCommands(t *testing.T) {
	env, svc := reportEnv(t)
	ctx := context.Background()
	from, to := pricing.MustParseMonth("2026-08"), pricing.MustParseMonth("2026-10")
	rev, err := svc.Revenue(ctx, reports.RevenueQuery{From: from, To: to, GroupBy: reports.ByCustomer})
	if err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	_ = rev.Table().WriteCSV(&want)
	// --csv is the deprecated spelling of --format csv: both print the API's CSV.
	got, err := runCLI(t, env, "report", "revenue", "--from", "2026-08", "--to", "2026-10", "--group-by", "customer", "--csv")
	if err != nil {
		t.Fatal(err)
	}
	if got != want.String() || len(rev.Rows) != 2 {
		t.Errorf("revenue csv:\n%s\nwant:\n%s", got, want.String())
	}
	text, err := runCLI(t, env, "report", "revenue", "--from", "2026-08", "--to", "2026-10")
	if err != nil {
		t.Fatal(err)
	}
	got, err = runCLI(t, env, "report", "revenue", "--from", "2026-08", "--to", "2026-10", "--group-by", "customer", "--format", "csv")
	if err != nil || got != want.String() {
		t.Errorf("revenue --format csv: %v\n%s", err, got)
	}
	// By month: no NAME column (it would repeat the month), and a total
	// row per currency that adds up the months.
	lines := strings.Split(strings.TrimSpace(text), "\n")
	if f := strings.Fields(lines[0]); strings.Join(f, " ") != "KEY CURRENCY QUANTITY AMOUNT CUSTOMERS" {
		t.Errorf("revenue header %q", lines[0])
	}
	last := strings.Fields(lines[len(lines)-1])
	if !strings.Contains(text, "2026-09") || len(last) != 5 || last[0] != "TOTAL" || last[3] != rev.Totals[0].Amount || last[2] != fmt.Sprint(rev.Totals[0].Quantity) {
		t.Errorf("revenue text:\n%s", text)
	}
	for _, args := range [][]string{
		{"report", "usage", "--from", "2026-08-01", "--to", "2026-11-01", "--window", "month", "--group-by", "category", "--format", "csv"},
		{"report", "top-customers", "--from", "2026-08", "--to", "2026-10", "--by", "quantity"},
		{"report", "unbilled", "--from", "2026-08", "--to", "2026-10", "--format", "csv"},
		{"report", "forecast", "--month", "2026-10", "--format", "csv"},
	} {
		out, err := runCLI(t, env, args...)
		if err != nil {
			t.Errorf("%v: %v", args, err)
			continue
		}
		if out == "" {
			t.Errorf("%v: no output", args)
		}
	}
	out, _ := runCLI(t, env, "report", "usage", "--from", "2026-08-01", "--to", "2026-11-01", "--window", "month", "--group-by", "category", "--format", "csv")
	if !strings.Contains(out, "2026-10-01T00:00:00Z,marketing,3000\n") {
		t.Errorf("usage csv:\n%s", out)
	}
	out, _ = runCLI(t, env, "report", "forecast", "--month", "2026-10", "--format", "csv")
	if !strings.HasPrefix(out, "customer_id,name,currency,quantity_to_date,amount_to_date,projected_quantity,projected_amount\n") || !strings.Contains(out, "acme,") {
		t.Errorf("forecast csv:\n%s", out)
	}
	if _, err := runCLI(t, env, "report", "revenue", "--format", "xml"); err == nil {
		t.Error("bad --format: no error")
	}
	if _, err := runCLI(t, env, "report", "revenue", "--group-by", "planet"); err == nil {
		t.Error("bad --group-by: no error")
	}
	if _, err := runCLI(t, env, "report", "frob"); err == nil {
		t.Error("unknown report: no error")
	}
}
