package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	billingpg "postage/billing/pgstore"
	"postage/metering"
	"postage/pricing"
	"postage/pricing/pgstore"
	"postage/reconcile"
	reconcilepg "postage/reconcile/pgstore"
	"postage/reports"
)

func TestReconcileCommands(t *testing.T) {
	env, _ := reportEnv(t)
	ctx := context.Background()
	cs := billingpg.NewCustomerStore(env.PG)
	if _, err := cs.AddPhoneNumber(ctx, "acme", "106540352242922"); err != nil {
		t.Fatal(err)
	}
	// October as the upstream reports it: acme's IN marketing 2,900 of
	// postage's 3,000, its BR utility as counted.
	file := filepath.Join(t.TempDir(), "meta-2026-10.csv")
	csv := "start,end,phone_number_id,country,pricing_category,pricing_type,volume,cost\n" +
		"2026-10-01,2026-10-02,106540352242922,IN,MARKETING,REGULAR,2900,34.22\n" +
		"2026-10-01,2026-10-02,106540352242922,BR,UTILITY,REGULAR,750,5.1\n"
	if err := os.WriteFile(file, []byte(csv), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runCLI(t, env, "reconcile", "import", "2026-10", file, "--by", "ana")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"2026-10: held", "report 1: meta-2026-10.csv, 2 data points (DAILY)", "by ana", "not_in_upstream  3      1060", "3 differences of 2 customers", "postage reconcile accept 2026-10"} {
		if !strings.Contains(out, s) {
			t.Errorf("import output lacks %q:\n%s", s, out)
		}
	}
	// The differences as CSV are the service's.
	svc := &reconcile.Service{Store: reconcilepg.New(env.PG), Usage: metering.NewCHStore(env.CH), Customers: cs, Cards: pgstore.New(env.PG)}
	ds, _, err := svc.Differences(ctx, pricing.MustParseMonth("2026-10"), reconcile.DiffFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	_ = reconcile.DifferencesTable(ds).WriteCSV(&want)
	out, err = runCLI(t, env, "reconcile", "show", "2026-10", "--differences", "--format", "csv")
	if err != nil || out != want.String() || !strings.Contains(out, "acme,2026-10-01,India,marketing,not_in_upstream,100,0,100,1.18,0,1.18,") {
		t.Errorf("differences csv: %v\n%s\nwant\n%s", err, out, want.String())
	}
	// Wrong command lines: exit status 2.
	for _, args := range [][]string{
		{"reconcile", "accept", "2026-10"},
		{"reconcile", "show", "Oct"},
		{"reconcile", "import", "2026-10"},
		{"reconcile", "show", "2026-10", "--format", "csv"},
	} {
		var ue usageError
		if _, err := runCLI(t, env, args...); !errors.As(err, &ue) {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
	// A bad file: every problem, then the one-line error.
	bad := filepath.Join(t.TempDir(), "bad.csv")
	_ = os.WriteFile(bad, []byte("start,phone_number_id,country,pricing_category,volume,cost\n2026-11-01,1,IN,MARKETING,1,1\n"), 0o600)
	if _, err := runCLI(t, env, "reconcile", "import", "2026-10", bad); err == nil || !strings.Contains(oneLine(err), "nothing imported") {
		t.Errorf("bad file: %v", err)
	}
	out, err = runCLI(t, env, "reconcile", "accept", "2026-10", "--reason", "Meta's count lags by a day", "--by", "ana (finance)")
	if err != nil || !strings.Contains(out, "2026-10: accepted") || !strings.Contains(out, "by ana (finance)") || !strings.Contains(out, "Meta's count lags by a day") {
		t.Errorf("accept: %v\n%s", err, out)
	}
	out, err = runCLI(t, env, "reconcile", "show", "2026-10")
	if err != nil || !strings.Contains(out, "2026-10: accepted") {
		t.Errorf("show: %v\n%s", err, out)
	}
	if out, err = runCLI(t, env, "reconcile", "compare", "2026-10"); err != nil || !strings.Contains(out, "2026-10: accepted") {
		t.Errorf("compare: %v\n%s", err, out)
	}
	if _, err := runCLI(t, env, "reconcile", "show", "2026-09"); err == nil || !strings.Contains(oneLine(err), "no upstream report imported for 2026-09") {
		t.Errorf("no report: %v", err)
	}
}

func TestMarginCommands(t *testing.T) {
	env, svc := reportEnv(t)
	rep, err := svc.Margin(context.Background(), reports.MarginQuery{Month: pricing.MustParseMonth("2026-10"), GroupBy: reports.ByLine})
	if err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	_ = rep.Table().WriteCSV(&want)
	out, err := runCLI(t, env, "report", "margin", "--month", "2026-10", "--group-by", "line", "--format", "csv")
	if err != nil || out != want.String() {
		t.Errorf("csv: %v\n%s\nwant\n%s", err, out, want.String())
	}
	out, err = runCLI(t, env, "report", "margin", "--month", "2026-10")
	if err != nil || !strings.Contains(out, "cost card meta-2026-01 version 1") || !strings.Contains(out, "negative rows") {
		t.Errorf("text: %v\n%s", err, out)
	}
	out, err = runCLI(t, env, "report", "margin-simulation", "--version", "1", "--from", "2026-10", "--to", "2026-10")
	if err != nil || !strings.Contains(out, "Cost card meta-2026-01 version 1 against meta-2026-01 version 1, 2026-10 to 2026-10") || !strings.Contains(out, "0 turning negative") {
		t.Errorf("simulation: %v\n%s", err, out)
	}
	var ue usageError
	if _, err := runCLI(t, env, "report", "margin-simulation", "--version", "1", "--from", "2026-10"); !errors.As(err, &ue) {
		t.Errorf("--from alone: %v", err)
	}
}
