package main

import (
	"context"
	"errors"
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

// setClock injects the commands' clock until the test ends.
func setClock(t *testing.T, at time.Time) {
	t.Helper()
	prev := clock
	clock = func() time.Time { return at }
	t.Cleanup(func() { clock = prev })
}

func TestFinanceCLI(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	setClock(t, time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC))
	if err := pgstore.New(env.PG).Seed(ctx); err != nil {
		t.Fatal(err)
	}
	must := func(args ...string) string {
		t.Helper()
		out, err := runCLI(t, env, args...)
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		return out
	}
	// refused runs a command that must fail with a one-line message
	// containing want (exit 1, or 2 for a wrong command line).
	refused := func(want string, usage bool, args ...string) {
		t.Helper()
		_, err := runCLI(t, env, args...)
		var ue usageError
		if err == nil || !strings.Contains(oneLine(err), want) || strings.Contains(oneLine(err), "\n") || errors.As(err, &ue) != usage {
			t.Fatalf("%v: %v, want %q (usage error %v)", args, err, want, usage)
		}
	}
	must("customers", "create", "acme-1", "--name", "Acme Ltd", "--country", "GB")
	must("customers", "update", "acme-1", "--tax-id", "GB123456789", "--payment-terms-days", "14", "--address-line1", "1 High St", "--city", "London", "--postal-code", "SW1A 1AA")
	if out := must("customers", "get", "acme-1"); !strings.Contains(out, "taxable, id GB123456789, jurisdictions GB") || !strings.Contains(out, "14 days") || !strings.Contains(out, "1 High St, SW1A 1AA London") {
		t.Fatalf("customer: %s", out)
	}
	refused("tax_id: required for reverse_charge", false, "customers", "update", "acme-1", "--tax-status", "reverse_charge", "--tax-id", "")

	// Tax rates.
	if out := must("taxes", "add", "--jurisdiction", "gb", "--name", "VAT", "--rate", "20", "--from", "2017-01-01"); !strings.Contains(out, "VAT 20% in GB from 2017-01-01") {
		t.Fatalf("add: %s", out)
	}
	refused("overlaps another rate of GB", false, "taxes", "add", "--jurisdiction", "GB", "--name", "VAT", "--rate", "21", "--from", "2026-01-01")
	refused("rate: a percentage", true, "taxes", "add", "--jurisdiction", "GB", "--name", "VAT", "--rate", "lots", "--from", "2026-01-01")
	refused("give --to YYYY-MM-DD or --open", true, "taxes", "end", "txr_x")
	if out := must("taxes", "list"); strings.Count(out, "GB") != 1 {
		t.Fatalf("rates after refusals: %s", out)
	}

	// An October invoice: 1000 GB marketing messages, VAT 20%.
	oct := pricing.MustParseMonth("2026-10")
	b, err := env.CH.PrepareBatch(ctx, "INSERT INTO events (customer_id, id, time, country, category, quantity, payload_hash, ingested_at)")
	if err != nil {
		t.Fatal(err)
	}
	at := oct.Start().Add(36 * time.Hour)
	_ = b.Append("acme-1", "e1", at, "GB", "marketing", uint64(1000), uint64(1), at)
	if err := b.Send(); err != nil {
		t.Fatal(err)
	}
	must("invoices", "run", "--period", "2026-10")
	id := billing.InvoiceID("acme-1", oct, 1)
	must("invoices", "finalize", id)
	show := must("invoices", "show", id)
	for _, s := range []string{"VAT 20% GB", "issued 2026-11-02, due 2026-11-16 (14 days)", "LINE"} {
		if !strings.Contains(show, s) {
			t.Fatalf("show lacks %q:\n%s", s, show)
		}
	}
	bal := must("invoices", "balance", id, "--format", "json")
	var total string
	for _, l := range strings.Split(bal, "\n") {
		if strings.Contains(l, `"total"`) {
			total = strings.Trim(strings.TrimSpace(strings.SplitN(l, ":", 2)[1]), `",`)
		}
	}
	if total == "" {
		t.Fatalf("balance: %s", bal)
	}

	// Payments.
	out := must("payments", "record", id, "--amount", "1.00", "--currency", "USD", "--date", "2026-11-02", "--method", "bank_transfer", "--reference", "SEPA 1", "--idempotency-key", "feed-1")
	if !strings.Contains(out, "recorded payment pay_") || !strings.Contains(out, "partially_paid") {
		t.Fatalf("record: %s", out)
	}
	if out := must("payments", "record", id, "--amount", "1.00", "--currency", "USD", "--date", "2026-11-02", "--reference", "SEPA 1", "--idempotency-key", "feed-1"); !strings.Contains(out, "already recorded") {
		t.Fatalf("retry: %s", out)
	}
	refused("is more than the balance", false, "payments", "record", id, "--amount", total, "--currency", "USD", "--date", "2026-11-02")
	refused("invoice "+"PST-2026-000001 is in USD, the payment in EUR", false, "payments", "record", id, "--amount", "1", "--currency", "EUR", "--date", "2026-11-02")
	refused("is in the future", false, "payments", "record", id, "--amount", "1", "--currency", "USD", "--date", "2026-11-03")
	// An invoice is named by its number as well as its id.
	if out := must("invoices", "balance", "PST-2026-000001"); !strings.Contains(out, "partially_paid") {
		t.Fatalf("balance by number: %s", out)
	}
	refused("no invoice has the id or number \"PST-2026-999999\"", false, "payments", "record", "PST-2026-999999", "--amount", "1", "--currency", "USD", "--date", "2026-11-02")
	if out := must("payments", "list", "--invoice", id); strings.Count(out, "pay_") != 1 {
		t.Fatalf("payments: %s", out)
	}

	// Credit notes.
	out = must("creditnotes", "create", "PST-2026-000001", "--reason", "duplicate sends", "--line", "1:100")
	if !strings.Contains(out, "issued credit note CN-2026-000001") {
		t.Fatalf("credit note: %s", out)
	}
	refused("more than the 900 units of line 1 left to credit", false, "creditnotes", "create", id, "--reason", "x", "--line", "1:901")
	refused("say what to credit", true, "creditnotes", "create", id, "--reason", "x")
	refused("--line \"0\"", true, "creditnotes", "create", id, "--reason", "x", "--line", "0")
	pdf := filepath.Join(t.TempDir(), "cn.pdf")
	must("creditnotes", "show", "CN-2026-000001", "--format", "pdf", "-o", pdf)
	if b, err := os.ReadFile(pdf); err != nil || !strings.HasPrefix(string(b), "%PDF-") {
		t.Fatalf("pdf: %v", err)
	}
	if out := must("creditnotes", "show", "CN-2026-000001"); !strings.Contains(out, "duplicate sends") || !strings.Contains(out, "VAT 20%") {
		t.Fatalf("show: %s", out)
	}
	if out := must("creditnotes", "list", "--customer", "acme-1"); !strings.Contains(out, "CN-2026-000001") {
		t.Fatalf("list: %s", out)
	}
	// Nothing is owed to the customer: a refund is refused.
	refused("owes the customer nothing", false, "refunds", "record", id, "--amount", "1", "--currency", "USD", "--date", "2026-11-02")
	refused("reason", true, "creditnotes", "void", "CN-2026-000001")
	// Voiding the credit note: its number stays, it says VOID, the invoice owes its total again.
	if out := must("creditnotes", "void", "CN-2026-000001", "--reason", "credited by mistake"); !strings.Contains(out, "voided credit note CN-2026-000001") {
		t.Fatalf("void: %s", out)
	}
	refused("was voided on", false, "creditnotes", "void", "CN-2026-000001", "--reason", "again")
	if out := must("creditnotes", "show", "CN-2026-000001"); !strings.Contains(out, "VOID") || !strings.Contains(out, "credited by mistake") {
		t.Fatalf("show void: %s", out)
	}
	if out := must("creditnotes", "list"); !strings.Contains(out, "void") {
		t.Fatalf("list void: %s", out)
	}
	// The lists as CSV: every page, whatever --limit says.
	for _, tt := range []struct {
		args []string
		head string
		rows int
		has  string
	}{
		{[]string{"creditnotes", "list", "--format", "csv"}, "number,id,invoice_id,invoice_number,customer_id,issue_date,subtotal,tax,total,currency,reason,voided_at,void_reason", 1, ",credited by mistake"},
		{[]string{"refunds", "list", "--format", "csv"}, "id,invoice_id,invoice_number,customer_id,amount,currency,date,method,reference,created_at", 0, ""},
		{[]string{"payments", "list", "--format", "csv", "--limit", "1"}, "id,invoice_id,invoice_number,customer_id,amount,currency,date,method,reference,created_at", 1, ",PST-2026-000001,acme-1,1.00,USD,2026-11-02,bank_transfer,SEPA 1,"},
		{[]string{"invoices", "receivables", "--format", "csv"}, "invoice_id,number,customer_id,customer_name,currency,total,paid,credited,refunded,balance,issue_date,due_date,status,days_past_due,settled_on,uncollectible_reason", 1, id + ",PST-2026-000001,acme-1,Acme Ltd,USD,"},
	} {
		out := must(tt.args...)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if lines[0] != tt.head || len(lines) != 1+tt.rows || !strings.Contains(out, tt.has) {
			t.Errorf("%v:\n%s", tt.args, out)
		}
	}
	refused("--format \"xml\"", true, "payments", "list", "--format", "xml")

	// Overdue after the due date, in the aging report.
	setClock(t, time.Date(2026, 12, 20, 9, 0, 0, 0, time.UTC))
	if out := must("invoices", "receivables", "--status", "overdue"); !strings.Contains(out, id) || !strings.Contains(out, "overdue") {
		t.Fatalf("overdue: %s", out)
	}
	csv := must("invoices", "aging", "--format", "csv")
	if !strings.HasPrefix(csv, "as_of,customer_id,") || !strings.Contains(csv, "2026-12-20,acme-1,Acme Ltd,USD,0.00,") {
		t.Fatalf("aging: %s", csv)
	}
	refused("--format \"xml\"", true, "invoices", "aging", "--format", "xml")
	if out := must("invoices", "uncollectible", id, "--reason", "insolvent"); !strings.Contains(out, "written off") {
		t.Fatalf("uncollectible: %s", out)
	}

	// Paid in full, then credited: the customer is owed, and a refund pays it back.
	field := func(js, name string) string {
		for _, l := range strings.Split(js, "\n") {
			if strings.Contains(l, `"`+name+`"`) {
				return strings.Trim(strings.TrimSpace(strings.SplitN(l, ":", 2)[1]), `",`)
			}
		}
		t.Fatalf("%s lacks %s", js, name)
		return ""
	}
	must("payments", "record", id, "--amount", field(must("invoices", "balance", id, "--format", "json"), "balance"), "--currency", "USD", "--date", "2026-12-20")
	must("creditnotes", "create", id, "--reason", "SLA", "--amount", "1.00")
	owed := strings.TrimPrefix(field(must("invoices", "balance", id, "--format", "json"), "balance"), "-")
	refused("is more than the", false, "refunds", "record", id, "--amount", "1"+owed, "--currency", "USD", "--date", "2026-12-20")
	if out := must("refunds", "record", id, "--amount", owed, "--currency", "USD", "--date", "2026-12-20", "--reference", "SEPA RF", "--idempotency-key", "rf-1"); !strings.Contains(out, "recorded refund ref_") || !strings.Contains(out, "balance 0.00 USD") {
		t.Fatalf("refund: %s", out)
	}
	if out := must("refunds", "list", "--format", "csv"); !strings.Contains(out, ","+owed+",USD,2026-12-20,bank_transfer,SEPA RF,") {
		t.Fatalf("refunds CSV: %s", out)
	}
	if out := must("invoices", "balance", id); !strings.Contains(out, "REFUNDED") || !strings.Contains(out, owed) {
		t.Fatalf("balance after the refund: %s", out)
	}

	// Every new command's help shows real examples.
	for _, args := range [][]string{{"payments", "record"}, {"refunds", "record"}, {"creditnotes", "void"}, {"creditnotes", "create"}, {"taxes", "add"}, {"invoices", "aging"}, {"invoices", "balance"}} {
		out := must(append(args, "--help")...)
		if !strings.Contains(out, "Examples:") || !strings.Contains(out, "postage "+args[0]+" "+args[1]) {
			t.Errorf("%v --help:\n%s", args, out)
		}
	}
}
