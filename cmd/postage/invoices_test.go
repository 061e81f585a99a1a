package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"postage/billing"
	"postage/internal/testenv"
	"postage/pricing"
	"postage/pricing/pgstore"
)

func TestInvoicesCLI(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	if _, err := runCLI(t, env, "customers", "create", "acme-1", "--name", "Acme Ltd", "--country", "GB"); err != nil {
		t.Fatal(err)
	}
	if err := pgstore.New(env.PG).Seed(ctx); err != nil { // the default rate card, as `postage migrate` seeds it
		t.Fatal(err)
	}
	period := pricing.MonthOf(time.Now()).Prev()
	at := period.Start().Add(36 * time.Hour)
	b, err := env.CH.PrepareBatch(ctx, "INSERT INTO events (customer_id, id, time, country, category, quantity, payload_hash, ingested_at)")
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range []string{"e1", "e2", "e3"} {
		_ = b.Append("acme-1", id, at.Add(time.Duration(i)*time.Second), "GB", "marketing", uint64(1), uint64(1), at)
	}
	_ = b.Append("acme-1", "e4", at, "GB", "service", uint64(2), uint64(1), at) // free on the launch card
	_ = b.Append("ghost", "g1", at, "DE", "marketing", uint64(2), uint64(1), at)
	if err := b.Send(); err != nil {
		t.Fatal(err)
	}

	if _, err := runCLI(t, env, "invoices", "run", "--period", "2026-13"); err == nil || !strings.Contains(oneLine(err), "want YYYY-MM") {
		t.Fatalf("bad period: %v", err)
	}
	if _, err := runCLI(t, env, "invoices", "run", "--period", pricing.MonthOf(time.Now()).String()); err == nil || !strings.Contains(oneLine(err), "has not ended yet") {
		t.Fatalf("current period: %v", err)
	}
	out, err := runCLI(t, env, "invoices", "run", "--period", period.String())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"1 customer to draft: 1 drafts created", "the period now has 0 finalized invoices and 1 draft", "1 usage row unbilled"} {
		if !strings.Contains(out, want) {
			t.Fatalf("run says %q, want %q", out, want)
		}
	}
	out, err = runCLI(t, env, "invoices", "unbilled", "--period", period.String())
	if err != nil || !strings.Contains(out, "ghost") || !strings.Contains(out, "unknown_customer") {
		t.Fatalf("unbilled: %s %v", out, err)
	}
	id := billing.InvoiceID("acme-1", period, 1)
	out, err = runCLI(t, env, "invoices", "list", "--period", period.String())
	if err != nil || !strings.Contains(out, id) || !strings.Contains(out, "draft") {
		t.Fatalf("list: %s %v", out, err)
	}
	// A draft finalizes after its grace period and has not been finalized.
	if f := strings.Fields(strings.Split(out, "\n")[1]); len(f) != 10 || f[7] != "-" || f[8] != time.Now().UTC().AddDate(0, 0, 3).Format("2006-01-02") && f[8] != time.Now().UTC().AddDate(0, 0, 2).Format("2006-01-02") {
		t.Fatalf("draft row %q", f)
	}
	// The invoice's text: the category the card bills, with what the
	// messages were sent as, and free lines at 0.00.
	out, err = runCLI(t, env, "invoices", "show", id)
	if err != nil || !strings.Contains(out, "notification (marketing)") || !strings.Contains(out, " 0.00\n") || strings.Contains(out, " 0\n") {
		t.Fatalf("show draft: %s %v", out, err)
	}
	if _, err := runCLI(t, env, "invoices", "void", id, "--reason", "x"); err == nil || !strings.Contains(oneLine(err), "only a finalized invoice") {
		t.Fatalf("void a draft: %v", err)
	}
	out, err = runCLI(t, env, "invoices", "approve", id) // approve is finalize
	if err != nil || !strings.Contains(out, "PST-") {
		t.Fatalf("finalize: %s %v", out, err)
	}
	number := strings.Fields(out)[3]
	// By number as by id.
	out, err = runCLI(t, env, "invoices", "show", number)
	if err != nil || !strings.Contains(out, "finalized") || !strings.Contains(out, "Acme Ltd") || !strings.Contains(out, id) {
		t.Fatalf("show %s: %s %v", number, out, err)
	}
	if _, err := runCLI(t, env, "invoices", "show", "PST-1999-000001"); err == nil || !strings.Contains(oneLine(err), `no invoice has the id or number "PST-1999-000001"`) {
		t.Fatalf("unknown number: %v", err)
	}
	// A finalized invoice shows when it was finalized, and no grace period.
	out, _ = runCLI(t, env, "invoices", "list", "--period", period.String())
	if f := strings.Fields(strings.Split(out, "\n")[1]); len(f) != 10 || f[2] != period.String() || f[7] != time.Now().UTC().Format("2006-01-02") || f[9] != "-" {
		t.Fatalf("finalized row %q", f)
	}
	out, err = runCLI(t, env, "invoices", "run", "--period", period.String())
	if err != nil || !strings.Contains(out, "no draft to create or refresh") || !strings.Contains(out, "the period now has 1 finalized invoice and 0 drafts") {
		t.Fatalf("second run: %s %v", out, err)
	}
	pdf := filepath.Join(t.TempDir(), "inv.pdf")
	if _, err := runCLI(t, env, "invoices", "show", id, "--format", "pdf", "-o", pdf); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(pdf); err != nil || !strings.HasPrefix(string(b), "%PDF") {
		t.Fatalf("pdf: %v", err)
	}
	out, err = runCLI(t, env, "invoices", "void", number, "--reason", "wrong address")
	if err != nil || !strings.Contains(out, "reissued as draft "+billing.InvoiceID("acme-1", period, 2)) {
		t.Fatalf("void: %s %v", out, err)
	}
	out, err = runCLI(t, env, "invoices", "list", "--period", period.String(), "--format", "csv")
	if err != nil || strings.Count(out, "\n") != 5 { // two lines each (notification, free session)
		t.Fatalf("csv: %s %v", out, err)
	}
	out, err = runCLI(t, env, "invoices", "runs")
	if err != nil || !strings.Contains(out, "manual") {
		t.Fatalf("runs: %s %v", out, err)
	}
}
