package billing_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"postage"
	"postage/billing"
	billingpg "postage/billing/pgstore"
	"postage/notify"
	"postage/pricing"
	"postage/reports"
)

// finance is the fixture with taxes, receivables and an outbox wired in.
type finance struct {
	*fixture
	customers *billingpg.CustomerStore
	taxes     *billingpg.TaxStore
	recv      *billingpg.ReceivableStore
	accounts  *billing.Accounts
}

func newFinance(t *testing.T, customers ...billing.Customer) *finance {
	t.Helper()
	f := newFixture(t)
	ctx := context.Background()
	// An endpoint of every customer's events of every type: the outbox
	// keeps an event only when an endpoint subscribes to it.
	if _, err := f.env.PG.Exec(ctx, `INSERT INTO webhook_endpoints (id, url, event_types, secret_key_id, secret, created_at, updated_at)
		VALUES ('we_test', 'https://example.com/hook', '{*}', 'k', '\x00', now(), now())`); err != nil {
		t.Fatal(err)
	}
	cs := billingpg.NewCustomerStore(f.env.PG)
	cs.Now = f.clock.Now
	for _, c := range customers {
		if _, err := cs.Create(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	taxes := &billingpg.TaxStore{DB: f.env.PG, Now: f.clock.Now}
	recv, err := billingpg.NewReceivableStore(f.env.PG, "")
	if err != nil {
		t.Fatal(err)
	}
	outbox := &notify.Outbox{Now: f.clock.Now}
	recv.Now, recv.Notify = f.clock.Now, outbox
	f.store.Notify = outbox
	f.runner.Taxes = taxes
	return &finance{fixture: f, customers: cs, taxes: taxes, recv: recv,
		accounts: &billing.Accounts{Store: recv, Render: testDocs, Issuer: testIssuer, Now: f.clock.Now}}
}

func (f *finance) rate(jurisdiction, name, rate, from, to string) billing.TaxRate {
	f.t.Helper()
	r, err := billing.NewTaxRate{Jurisdiction: jurisdiction, Name: name, Rate: rate, EffectiveFrom: from, EffectiveTo: to}.Parse()
	if err != nil {
		f.t.Fatal(err)
	}
	out, err := f.taxes.CreateTaxRate(context.Background(), r)
	if err != nil {
		f.t.Fatal(err)
	}
	return out
}

func (f *finance) approve(id string) billing.Invoice {
	f.t.Helper()
	inv, err := f.runner.Approve(context.Background(), id)
	if err != nil {
		f.t.Fatalf("approve %s: %v", id, err)
	}
	return inv
}

// outbox returns the events written to the webhooks' outbox so far, in
// order, as "type object_id" (the event's key is its object's id).
func (f *finance) outbox() []string {
	f.t.Helper()
	rows, err := f.env.PG.Query(context.Background(), `SELECT e.type || ' ' || e.dedup_key FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id ORDER BY d.id`)
	if err != nil {
		f.t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		f.t.Fatal(err)
	}
	return out
}

func (f *finance) count(table string) int {
	f.t.Helper()
	var n int
	if err := f.env.PG.QueryRow(context.Background(), `SELECT count(*) FROM `+table).Scan(&n); err != nil {
		f.t.Fatal(err)
	}
	return n
}

func terms(n int) *int { return &n }

func TestTaxedInvoices(t *testing.T) {
	addr := &billing.Address{Line1: "Hauptstraße 1", City: "Berlin", PostalCode: "10115", Country: "DE"}
	f := newFinance(t,
		billing.Customer{ID: "de", Name: "Berlin GmbH", Currency: "USD", Country: "DE", TaxID: "DE123456789", Address: addr, PaymentTermsDays: terms(14)},
		billing.Customer{ID: "rc", Name: "Reverse BV", Currency: "USD", Country: "NL", TaxStatus: billing.TaxReverseCharge, TaxID: "NL999B01"},
		billing.Customer{ID: "ex", Name: "Charity", Currency: "USD", Country: "DE", TaxStatus: billing.TaxExempt},
		billing.Customer{ID: "qc", Name: "Montréal Inc", Currency: "USD", Country: "CA", TaxRegion: "CA-QC"},
		billing.Customer{ID: "us", Name: "Austin LLC", Currency: "USD", Country: "US"},
	)
	f.rate("DE", "VAT", "19", "2020-01-01", "2026-10-01")
	f.rate("DE", "VAT", "20", "2026-10-01", "")
	f.rate("CA", "GST", "5", "2008-01-01", "")
	f.rate("CA-QC", "QST", "9.975", "2013-01-01", "")
	at, in := "2026-10-05 10:00:00", "2026-10-05 10:00:01"
	f.events(
		// de: GB 1 × 0.02 and Other 2 × 0.01: two lines of 0.02.
		ev{customer: "de", country: "GB", category: "marketing", at: at, ingested: in},
		ev{customer: "de", country: "US", category: "marketing", at: at, ingested: in, qty: 2},
		ev{customer: "rc", country: "DE", category: "marketing", at: at, ingested: in, qty: 1000},
		ev{customer: "ex", country: "DE", category: "marketing", at: at, ingested: in, qty: 1000},
		ev{customer: "qc", country: "US", category: "marketing", at: at, ingested: in, qty: 1000},
		ev{customer: "us", country: "US", category: "marketing", at: at, ingested: in, qty: 1000},
	)
	f.run("2026-10")
	type want struct {
		taxes []string // "name rate jurisdiction taxable tax"
		tax   string
		total string
		note  string
	}
	wants := map[string]want{
		// The invoice's rate is the one in effect on 2026-10-31: 20%. Per
		// rate: 0.04 × 20% = 0.008 → 0.01 (per line it would be 0.00).
		"de": {[]string{"VAT 20 DE 0.04 0.01"}, "0.01", "0.05", ""},
		"rc": {[]string{"Reverse charge 0 NL 12.50 0.00"}, "0.00", "12.50", billing.DefaultReverseChargeNote},
		"ex": {[]string{"Exempt 0 DE 12.50 0.00"}, "0.00", "12.50", billing.DefaultExemptNote},
		// GST 0.50, QST 0.9975 → 1.00.
		"qc": {[]string{"GST 5 CA 10.00 0.50", "QST 9.975 CA-QC 10.00 1.00"}, "1.50", "11.50", ""},
		"us": {nil, "0.00", "10.00", ""},
	}
	check := func(inv billing.Invoice) {
		t.Helper()
		w := wants[inv.CustomerID]
		var got []string
		for _, tl := range inv.TaxLines {
			got = append(got, fmt.Sprintf("%s %s %s %s %s", tl.Name, tl.Rate, tl.Jurisdiction, tl.TaxableAmount, tl.Tax))
		}
		if strings.Join(got, "|") != strings.Join(w.taxes, "|") || inv.Tax.String() != w.tax || inv.Total.String() != w.total || inv.TaxNote != w.note {
			t.Errorf("%s (%s): taxes %q tax %s total %s note %q, want %+v", inv.CustomerID, inv.Status, got, inv.Tax, inv.Total, inv.TaxNote, w)
		}
		if !inv.Total.Equal(inv.Subtotal.Add(inv.Adjustments.Decimal).Add(inv.Tax.Decimal)) {
			t.Errorf("%s: total %s is not subtotal + adjustments + tax", inv.CustomerID, inv.Total)
		}
	}
	for c := range wants {
		check(f.live(c, "2026-10")) // the drafts, from their columns
	}
	// Finalize on 2 November: issued that day, due after the customer's terms.
	f.clock.Set(time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC))
	for c := range wants {
		inv := f.approve(billing.InvoiceID(c, pricing.MustParseMonth("2026-10"), 1))
		check(inv)
		if c == "de" {
			if inv.IssueDate.String() != "2026-11-02" || inv.DueDate.String() != "2026-11-16" || inv.PaymentTermsDays != 14 {
				t.Fatalf("de dates: %v %v %d", inv.IssueDate, inv.DueDate, inv.PaymentTermsDays)
			}
			doc := string(inv.Document())
			for _, s := range []string{`"tax_lines":[{"name":"VAT","jurisdiction":"DE","rate":"20"`, `"due_date":"2026-11-16"`, `"issue_date":"2026-11-02"`,
				`"tax_id":"DE123456789"`, `"address":{"line1":"Hauptstraße 1"`, `"payment_terms_days":14`} {
				if !strings.Contains(doc, s) {
					t.Errorf("frozen document lacks %s: %s", s, doc)
				}
			}
		}
		if c == "qc" && inv.DueDate.String() != "2026-12-02" {
			t.Errorf("qc due %v, want net 30", inv.DueDate)
		}
		r, err := f.accounts.Receivable(context.Background(), inv.ID)
		if err != nil || !r.Total.Equal(inv.Total.Decimal) || r.DueDate != *inv.DueDate || r.Number != inv.Number {
			t.Errorf("receivable of %s: %+v %v", c, r, err)
		}
	}
	// Taxes are frozen with the invoice: new rates and a new tax status
	// change nothing of what was finalized.
	de := f.live("de", "2026-10")
	before := de.Document()
	rc := billing.TaxExempt
	if _, err := f.customers.Update(context.Background(), "de", billing.CustomerUpdate{TaxStatus: &rc}); err != nil {
		t.Fatal(err)
	}
	f.rate("US", "Sales tax", "8.25", "2026-01-01", "")
	again, err := f.store.Get(context.Background(), de.ID)
	if err != nil || !bytes.Equal(again.Document(), before) {
		t.Fatalf("finalized invoice changed: %v", err)
	}
	pdf, err := f.runner.Document(context.Background(), f.live("rc", "2026-10"), billing.FormatPDF)
	if err != nil {
		t.Fatal(err)
	}
	text := pdfText(t, pdf)
	for _, s := range []string{"Reverse charge", "Article 196", "NL999B01", "Due", "2 December 2026", "net 30 days"} {
		if !strings.Contains(text, s) {
			t.Errorf("reverse-charge PDF lacks %q:\n%s", s, text)
		}
	}
	// The month-to-date bill is taxed the same way (US now has a rate).
	f.events(ev{customer: "us", country: "US", category: "marketing", at: "2026-11-02 08:00:00", ingested: "2026-11-02 08:00:01", qty: 100})
	up, err := f.runner.Upcoming(context.Background(), "us")
	if err != nil || up.Tax.String() != "0.08" || up.Total.String() != "1.08" {
		t.Fatalf("upcoming: %+v %v", up, err)
	}
	// Every finalization was written to the outbox with it.
	if got := f.outbox(); len(got) != 5 || !strings.HasPrefix(got[0], string(notify.InvoiceFinalized)+" in_") {
		t.Fatalf("outbox %v", got)
	}
}

func TestTaxRateOverlapIsRefused(t *testing.T) {
	f := newFinance(t)
	ctx := context.Background()
	first := f.rate("DE", "VAT", "19", "2020-01-01", "")
	parse := func(n billing.NewTaxRate) billing.TaxRate {
		r, err := n.Parse()
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	list := func() string {
		rs, err := f.taxes.TaxRates(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		var s []string
		for _, r := range rs {
			s = append(s, fmt.Sprintf("%s %s %s-%v", r.Jurisdiction, r.Rate, r.EffectiveFrom, r.EffectiveTo))
		}
		return strings.Join(s, "; ")
	}
	was := list()
	// A new rate while the first is open-ended overlaps it.
	if _, err := f.taxes.CreateTaxRate(ctx, parse(billing.NewTaxRate{Jurisdiction: "DE", Name: "VAT", Rate: "20", EffectiveFrom: "2026-10-01"})); postage.ErrorCode(err) != postage.ETAXOVERLAP {
		t.Fatalf("overlap: %v", err)
	}
	if list() != was {
		t.Fatalf("refused rate changed the rates: %s", list())
	}
	// Another jurisdiction is no overlap; ending the first makes room.
	f.rate("AT", "VAT", "20", "2020-01-01", "")
	end := billing.MustParseDate("2026-10-01")
	if _, err := f.taxes.SetTaxRateEnd(ctx, first.ID, &end); err != nil {
		t.Fatal(err)
	}
	f.rate("DE", "VAT", "20", "2026-10-01", "")
	was = list()
	// Moving the end back over the new rate, or reopening it, overlaps.
	later := billing.MustParseDate("2026-11-01")
	for _, to := range []*billing.Date{&later, nil} {
		if _, err := f.taxes.SetTaxRateEnd(ctx, first.ID, to); postage.ErrorCode(err) != postage.ETAXOVERLAP {
			t.Fatalf("end %v: %v", to, err)
		}
	}
	if list() != was {
		t.Fatalf("refused end changed the rates: %s", list())
	}
	// Two overlapping rates created at once: exactly one is stored.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = f.taxes.CreateTaxRate(ctx, parse(billing.NewTaxRate{Jurisdiction: "FR", Name: "TVA", Rate: fmt.Sprint(20 + i), EffectiveFrom: "2026-01-01"}))
		}()
	}
	wg.Wait()
	if (errs[0] == nil) == (errs[1] == nil) {
		t.Fatalf("concurrent overlapping rates: %v, %v", errs[0], errs[1])
	}
	if rs, _ := f.taxes.TaxRates(ctx, "FR"); len(rs) != 1 {
		t.Fatalf("FR rates %+v", rs)
	}
}

// finalized makes a finalized October invoice for each customer with
// usage worth amounts (USD, Other market at 0.01 a message), finalized
// on 2026-11-02, and returns their ids.
func (f *finance) finalized(amounts map[string]int64) map[string]string {
	f.t.Helper()
	var evs []ev
	for c, cents := range amounts {
		evs = append(evs, ev{customer: c, country: "US", category: "marketing", at: "2026-10-05 10:00:00", ingested: "2026-10-05 10:00:01", qty: uint64(cents)})
	}
	f.events(evs...)
	f.clock.Set(time.Date(2026, 11, 1, 2, 0, 0, 0, time.UTC))
	f.run("2026-10")
	f.clock.Set(time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC))
	ids := map[string]string{}
	for c := range amounts {
		ids[c] = f.approve(billing.InvoiceID(c, pricing.MustParseMonth("2026-10"), 1)).ID
	}
	return ids
}

func pay(amount, date string) billing.NewPayment {
	return billing.NewPayment{Amount: amount, Currency: "USD", Date: date, Method: billing.MethodBankTransfer, Reference: "TX-" + amount}
}

func TestPayments(t *testing.T) {
	f := newFinance(t,
		billing.Customer{ID: "a", Name: "A", Currency: "USD", Country: "US"},
		billing.Customer{ID: "b", Name: "B", Currency: "USD", Country: "US"},
		billing.Customer{ID: "d", Name: "Draft", Currency: "USD", Country: "US"},
	)
	ctx := context.Background()
	ids := f.finalized(map[string]int64{"a": 1000, "b": 500}) // 10.00 and 5.00, due 2026-12-02
	a := ids["a"]
	f.events(ev{customer: "d", country: "US", category: "marketing", at: "2026-10-05 10:00:00", ingested: "2026-11-02 08:00:00", qty: 100})
	f.run("2026-10")
	draft := f.live("d", "2026-10").ID

	r, err := f.accounts.Receivable(ctx, a)
	if err != nil || r.Status != billing.PaymentOpen || r.Balance.String() != "10.00" || r.DueDate.String() != "2026-12-02" {
		t.Fatalf("new receivable %+v %v", r, err)
	}
	p, r, existing, err := f.accounts.RecordPayment(ctx, a, pay("4.00", "2026-11-02"))
	if err != nil || existing || r.Status != billing.PaymentPartiallyPaid || r.Balance.String() != "6.00" || p.Amount.String() != "4.00" || p.InvoiceNumber != r.Number {
		t.Fatalf("partial payment %+v %+v %v", p, r, err)
	}
	// Refused, and nothing recorded: another currency, more than the
	// balance, a draft, a void invoice, an unknown invoice, a bad date.
	eur := pay("1.00", "2026-11-02")
	eur.Currency = "EUR"
	void := ids["b"]
	if _, _, err := f.runner.Void(ctx, void, "wrong customer"); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name    string
		invoice string
		p       billing.NewPayment
		code    string
	}{
		{"another currency", a, eur, postage.ECURRENCYMISMATCH},
		{"more than the balance", a, pay("6.01", "2026-11-02"), postage.EOVERPAYMENT},
		{"a draft", draft, pay("1.00", "2026-11-02"), postage.ENOTFINALIZED},
		{"a void invoice", void, pay("1.00", "2026-11-02"), postage.ENOTFINALIZED},
		{"no such invoice", "in_nope", pay("1.00", "2026-11-02"), postage.ENOTFOUND},
		{"dated tomorrow", a, pay("1.00", "2026-11-03"), postage.EINVALID},
		{"nothing", a, pay("0.00", "2026-11-02"), postage.EINVALID},
		{"a tenth of a cent", a, pay("0.001", "2026-11-02"), postage.EINVALID},
	} {
		if _, _, _, err := f.accounts.RecordPayment(ctx, tt.invoice, tt.p); postage.ErrorCode(err) != tt.code {
			t.Errorf("%s: %v, want %s", tt.name, err, tt.code)
		}
	}
	if n := f.count("payments"); n != 1 {
		t.Fatalf("%d payments after refusals, want 1", n)
	}
	// A retry with the same idempotency key is the same payment; the key
	// with another payment is a conflict.
	k := pay("1.00", "2026-11-02")
	k.IdempotencyKey = "bank-feed-77"
	p1, _, existing1, err := f.accounts.RecordPayment(ctx, a, k)
	p2, r2, existing2, err2 := f.accounts.RecordPayment(ctx, a, k)
	if err != nil || err2 != nil || existing1 || !existing2 || p1.ID != p2.ID || r2.Balance.String() != "5.00" {
		t.Fatalf("retry: %+v %v / %+v %v %v", p1, err, p2, err2, existing2)
	}
	k.Amount = "2.00"
	if _, _, _, err := f.accounts.RecordPayment(ctx, a, k); postage.ErrorCode(err) != postage.ECONFLICT {
		t.Fatalf("key reused: %v", err)
	}
	// Overdue after the due date (the injected clock), reported once.
	f.clock.Set(time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC))
	if r, _ = f.accounts.Receivable(ctx, a); r.Status != billing.PaymentOverdue || r.DaysPastDue != 1 {
		t.Fatalf("after the due date: %+v", r)
	}
	for i, want := range []int{1, 0} {
		if n, err := f.accounts.MarkOverdue(ctx); err != nil || n != want {
			t.Fatalf("overdue sweep %d: %d %v", i, n, err)
		}
	}
	if list, _, _ := f.accounts.Receivables(ctx, billing.ReceivableFilter{Status: billing.PaymentOverdue}, billing.Page{}); len(list) != 1 || list[0].InvoiceID != a {
		t.Fatalf("overdue list %+v", list)
	}
	// Paying the rest settles it: paid, dated, invoice.paid emitted.
	if _, r, _, err = f.accounts.RecordPayment(ctx, a, pay("5.00", "2026-12-03")); err != nil || r.Status != billing.PaymentPaid || r.SettledOn.String() != "2026-12-03" {
		t.Fatalf("paid: %+v %v", r, err)
	}
	if _, _, _, err := f.accounts.RecordPayment(ctx, a, pay("0.01", "2026-12-03")); postage.ErrorCode(err) != postage.EOVERPAYMENT {
		t.Fatalf("payment on a paid invoice: %v", err)
	}
	// A paid invoice cannot be voided (its money would be lost): a credit note corrects it.
	if _, _, err := f.runner.Void(ctx, a, "oops"); postage.ErrorCode(err) != postage.ECONFLICT {
		t.Fatalf("void of a paid invoice: %v", err)
	}
	list, _, err := f.accounts.Payments(ctx, billing.PaymentFilter{InvoiceID: a}, billing.Page{Limit: 2})
	if err != nil || len(list) != 2 {
		t.Fatalf("payments page %+v %v", list, err)
	}
	ev := f.outbox()
	want := []string{string(notify.InvoiceOverdue) + " " + a, string(notify.InvoicePaid) + " " + a}
	if got := ev[len(ev)-2:]; got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("outbox ends %v, want %v", got, want)
	}
	if n := strings.Count(strings.Join(ev, "\n"), string(notify.InvoiceVoided)); n != 1 {
		t.Fatalf("outbox %v", ev)
	}
}

func TestUncollectible(t *testing.T) {
	f := newFinance(t, billing.Customer{ID: "a", Name: "A", Currency: "USD", Country: "US"})
	ctx := context.Background()
	a := f.finalized(map[string]int64{"a": 1000})["a"]
	if _, err := f.accounts.MarkUncollectible(ctx, a, ""); postage.ErrorCode(err) != postage.EINVALID {
		t.Fatalf("no reason: %v", err)
	}
	r, err := f.accounts.MarkUncollectible(ctx, a, "customer went bankrupt")
	if err != nil || r.Status != billing.PaymentUncollectible || r.UncollectibleReason != "customer went bankrupt" {
		t.Fatalf("uncollectible %+v %v", r, err)
	}
	if _, err := f.accounts.MarkUncollectible(ctx, a, "again"); postage.ErrorCode(err) != postage.ECONFLICT {
		t.Fatalf("twice: %v", err)
	}
	// Written off invoices leave the aging report; money that arrives
	// later is still recorded and settles it.
	if rep, err := f.accounts.Aging(ctx, ""); err != nil || len(rep.Customers) != 0 {
		t.Fatalf("aging %+v %v", rep, err)
	}
	if _, r, _, err = f.accounts.RecordPayment(ctx, a, pay("10.00", "2026-11-02")); err != nil || r.Status != billing.PaymentPaid {
		t.Fatalf("late payment %+v %v", r, err)
	}
	if _, err := f.accounts.MarkUncollectible(ctx, a, "paid now"); postage.ErrorCode(err) != postage.ECONFLICT {
		t.Fatalf("paid: %v", err)
	}
}

// TestAging puts invoices on each side of every bucket's edge.
func TestAging(t *testing.T) {
	// Finalized on 2026-11-02; report on 2027-05-21 (200 days later): an
	// invoice of terms T is 200 - T days past due.
	pastDue := map[string]int{"c0": 0, "c1": 1, "c30": 30, "c31": 31, "c60": 60, "c61": 61, "c90": 90, "c91": 91}
	var customers []billing.Customer
	amounts := map[string]int64{}
	for c, d := range pastDue {
		customers = append(customers, billing.Customer{ID: c, Name: "Customer " + c, Currency: "USD", Country: "US", PaymentTermsDays: terms(200 - d)})
		amounts[c] = 100 // 1.00 each
	}
	customers = append(customers, billing.Customer{ID: "jp", Name: "Tokyo KK", Currency: "JPY", Country: "JP"})
	f := newFinance(t, customers...)
	ctx := context.Background()
	ids := f.finalized(amounts)
	// Half of c91's is paid: only the balance ages.
	if _, _, _, err := f.accounts.RecordPayment(ctx, ids["c91"], pay("0.40", "2026-11-02")); err != nil {
		t.Fatal(err)
	}
	f.clock.Set(time.Date(2027, 5, 21, 12, 0, 0, 0, time.UTC))
	rep, err := f.accounts.Aging(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range rep.Customers {
		got[r.CustomerID] = strings.Join([]string{r.Current.String(), r.Days1To30.String(), r.Days31To60.String(), r.Days61To90.String(), r.Over90.String(), r.Total.String()}, " ")
	}
	want := map[string]string{
		"c0":  "1.00 0.00 0.00 0.00 0.00 1.00",
		"c1":  "0.00 1.00 0.00 0.00 0.00 1.00",
		"c30": "0.00 1.00 0.00 0.00 0.00 1.00",
		"c31": "0.00 0.00 1.00 0.00 0.00 1.00",
		"c60": "0.00 0.00 1.00 0.00 0.00 1.00",
		"c61": "0.00 0.00 0.00 1.00 0.00 1.00",
		"c90": "0.00 0.00 0.00 1.00 0.00 1.00",
		"c91": "0.00 0.00 0.00 0.00 0.60 0.60",
	}
	for c, w := range want {
		if got[c] != w {
			t.Errorf("%s (%d days past due): %q, want %q", c, pastDue[c], got[c], w)
		}
	}
	if rep.AsOf.String() != "2027-05-21" || len(rep.Totals) != 1 || rep.Totals[0].Total.String() != "7.60" || rep.Totals[0].Invoices != 8 ||
		rep.Totals[0].Current.String() != "1.00" || rep.Totals[0].Over90.String() != "0.60" {
		t.Fatalf("totals %+v", rep.Totals)
	}
	one, err := f.accounts.Aging(ctx, "c31")
	if err != nil || len(one.Customers) != 1 || one.Customers[0].CustomerName != "Customer c31" || one.Totals[0].Total.String() != "1.00" {
		t.Fatalf("one customer %+v %v", one, err)
	}
	var csv bytes.Buffer
	if err := reports.AgingCSV(&csv, one); err != nil || !strings.Contains(csv.String(), "2027-05-21,c31,Customer c31,USD,0.00,0.00,1.00,0.00,0.00,1.00,1\n") ||
		!strings.Contains(csv.String(), ",,Total,USD,") {
		t.Fatalf("aging CSV %v:\n%s", err, csv.String())
	}
}

func TestCreditNotes(t *testing.T) {
	f := newFinance(t,
		billing.Customer{ID: "a", Name: "Berlin GmbH", Currency: "USD", Country: "DE", TaxID: "DE1"},
		billing.Customer{ID: "d", Name: "Draft", Currency: "USD", Country: "US"},
	)
	ctx := context.Background()
	f.rate("DE", "VAT", "19", "2020-01-01", "")
	// a: DE 1000 × 0.0125 = 12.50 and GB 12 = 0.23; VAT 19% of 12.73 = 2.42; total 15.15.
	f.events(
		ev{customer: "a", country: "DE", category: "marketing", at: "2026-10-05 10:00:00", ingested: "2026-10-05 10:00:01", qty: 1000},
		ev{customer: "a", country: "GB", category: "marketing", at: "2026-10-05 10:00:00", ingested: "2026-10-05 10:00:01", qty: 12},
		ev{customer: "d", country: "US", category: "marketing", at: "2026-10-05 10:00:00", ingested: "2026-10-05 10:00:01", qty: 10},
	)
	f.run("2026-10")
	f.clock.Set(time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC))
	inv := f.approve(billing.InvoiceID("a", pricing.MustParseMonth("2026-10"), 1))
	if inv.Total.String() != "15.15" || inv.Tax.String() != "2.42" {
		t.Fatalf("invoice %s tax %s", inv.Total, inv.Tax)
	}
	de := 0
	for i, l := range inv.Lines {
		if l.Market == "DE" {
			de = i + 1
		}
	}
	// 200 of the 1000 DE messages: 2.50 + 19% = 2.98.
	cn1, existing, err := f.accounts.IssueCreditNote(ctx, inv.ID, billing.CreditNoteRequest{Reason: "messages sent twice by our fault",
		Lines: []billing.CreditItem{{Line: de, Quantity: 200}}, IdempotencyKey: "ticket-4711"})
	if err != nil || existing || cn1.Number != "CN-2026-000001" || cn1.Total.String() != "2.98" || cn1.Tax.String() != "0.48" || cn1.Issuer != testIssuer {
		t.Fatalf("credit note %+v %v", cn1, err)
	}
	// The retry is the same credit note, numbered once.
	again, existing, err := f.accounts.IssueCreditNote(ctx, inv.ID, billing.CreditNoteRequest{Reason: "messages sent twice by our fault",
		Lines: []billing.CreditItem{{Line: de, Quantity: 200}}, IdempotencyKey: "ticket-4711"})
	if err != nil || !existing || again.ID != cn1.ID {
		t.Fatalf("retry %+v %v %v", again, existing, err)
	}
	r, _ := f.accounts.Receivable(ctx, inv.ID)
	if r.Credited.String() != "2.98" || r.Balance.String() != "12.17" || r.Status != billing.PaymentPartiallyPaid {
		t.Fatalf("receivable after credit %+v", r)
	}
	// More than is left is refused and changes nothing: no credit note,
	// no number taken, no event.
	events, notes := f.outbox(), f.count("credit_notes")
	for _, tt := range []struct {
		name    string
		invoice string
		req     billing.CreditNoteRequest
		code    string
	}{
		{"more units than left", inv.ID, billing.CreditNoteRequest{Reason: "x", Lines: []billing.CreditItem{{Line: de, Quantity: 801}}}, postage.EOVERCREDIT},
		{"more than the invoice", inv.ID, billing.CreditNoteRequest{Reason: "x", Lines: []billing.CreditItem{{Amount: "10.24"}}}, postage.EOVERCREDIT},
		{"a draft", f.live("d", "2026-10").ID, billing.CreditNoteRequest{Reason: "x", Lines: []billing.CreditItem{{Line: 1}}}, postage.ENOTFINALIZED},
		{"no such invoice", "in_nope", billing.CreditNoteRequest{Reason: "x", Lines: []billing.CreditItem{{Line: 1}}}, postage.ENOTFOUND},
		{"the key of another", inv.ID, billing.CreditNoteRequest{Reason: "x", Lines: []billing.CreditItem{{Line: de}}, IdempotencyKey: "ticket-4711"}, postage.ECONFLICT},
	} {
		if _, _, err := f.accounts.IssueCreditNote(ctx, tt.invoice, tt.req); postage.ErrorCode(err) != tt.code {
			t.Errorf("%s: %v, want %s", tt.name, err, tt.code)
		}
	}
	if got := f.outbox(); len(got) != len(events) || f.count("credit_notes") != notes {
		t.Fatalf("refused credit notes left %d events, %d credit notes", len(got)-len(events), f.count("credit_notes")-notes)
	}
	// The rest of the invoice: exactly what is left, so the two add up to
	// the total and the invoice is paid by credit.
	cn2, _, err := f.accounts.IssueCreditNote(ctx, inv.ID, billing.CreditNoteRequest{Reason: "contract cancelled", Lines: []billing.CreditItem{{Amount: "10.23"}}})
	if err != nil || cn2.Number != "CN-2026-000002" || !cn1.Total.Add(cn2.Total.Decimal).Equal(inv.Total.Decimal) {
		t.Fatalf("rest %+v %v", cn2, err)
	}
	if r, _ = f.accounts.Receivable(ctx, inv.ID); r.Status != billing.PaymentPaid || !r.Balance.IsZero() {
		t.Fatalf("fully credited %+v", r)
	}
	// Frozen: the JSON read back is the document issued, byte for byte;
	// the CSV and PDF are drawn once and kept.
	got, err := f.accounts.CreditNote(ctx, cn1.Number)
	if err != nil || !bytes.Equal(got.Document(), cn1.Document()) {
		t.Fatalf("read back %v", err)
	}
	b, _ := json.Marshal(got)
	if !bytes.Equal(b, cn1.Document()) || !strings.Contains(string(b), `"invoice_number":"`+inv.Number+`"`) {
		t.Fatalf("JSON %s", b)
	}
	pdf1, err := f.accounts.CreditNoteDocument(ctx, got, billing.FormatPDF)
	if err != nil {
		t.Fatal(err)
	}
	f.accounts.Render = restyledCredit{}
	pdf2, err := f.accounts.CreditNoteDocument(ctx, got, billing.FormatPDF)
	if err != nil || !bytes.Equal(pdf1, pdf2) {
		t.Fatalf("stored PDF redrawn: %v", err)
	}
	f.accounts.Render = testDocs
	text := pdfText(t, pdf1)
	for _, s := range []string{"CREDIT NOTE", "CN-2026-000001", inv.Number, "messages sent twice by our fault", "200", "2.50", "VAT 19% (DE) on 2.50", "2.98", "DE1",
		"Postage Test Ltd.", "Tax id GB123456789", "Bank details", "SWIFT BUKBGB22"} {
		if !strings.Contains(text, s) {
			t.Errorf("PDF lacks %q:\n%s", s, text)
		}
	}
	csv, err := f.accounts.CreditNoteDocument(ctx, got, billing.FormatCSV)
	if err != nil || !strings.Contains(string(csv), "CN-2026-000001,"+inv.ID) || !strings.Contains(string(csv), ",tax,,VAT,DE,,,19,2.50,0.48,") {
		t.Fatalf("CSV %v:\n%s", err, csv)
	}
	// The database refuses to change an issued credit note.
	if _, err := f.env.PG.Exec(ctx, `UPDATE credit_notes SET total = 0 WHERE id = $1`, cn1.ID); err == nil || !strings.Contains(err.Error(), "never changes") {
		t.Fatalf("update of a credit note: %v", err)
	}
	if _, err := f.env.PG.Exec(ctx, `DELETE FROM payments`); err != nil {
		t.Fatal(err) // none: deleting nothing is fine
	}
	// Voiding a credited invoice is refused: the credit notes stay with it.
	if _, _, err := f.runner.Void(ctx, inv.ID, "wrong customer"); postage.ErrorCode(err) != postage.ECONFLICT {
		t.Fatalf("void of a credited invoice: %v", err)
	}
	list, next, err := f.accounts.CreditNotes(ctx, billing.CreditNoteFilter{CustomerID: "a"}, billing.Page{Limit: 1})
	if err != nil || len(list) != 1 || list[0].ID != cn2.ID || next == "" {
		t.Fatalf("page 1 %+v %q %v", list, next, err)
	}
	list, next, err = f.accounts.CreditNotes(ctx, billing.CreditNoteFilter{CustomerID: "a"}, billing.Page{Limit: 1, Cursor: next})
	if err != nil || len(list) != 1 || list[0].ID != cn1.ID || next != "" {
		t.Fatalf("page 2 %+v %q %v", list, next, err)
	}
	want := []string{string(notify.CreditNoteCreated) + " " + cn1.ID, string(notify.CreditNoteCreated) + " " + cn2.ID, string(notify.InvoicePaid) + " " + inv.ID}
	if got := f.outbox(); strings.Join(got[len(got)-3:], ",") != strings.Join(want, ",") {
		t.Fatalf("outbox %v", got)
	}
}

// restyledCredit draws credit notes differently: a stored document must
// not change with it.
type restyledCredit struct{}

func (restyledCredit) RenderCreditNote(_ context.Context, cn billing.CreditNote, f billing.Format) ([]byte, error) {
	return []byte("RESTYLED " + cn.Number), nil
}

// TestConcurrentPaymentsAndCreditNotes: many payments and credit notes at
// once, in real concurrent transactions, never pay more than the balance,
// never credit more than is left, and never skip or repeat a number.
func TestConcurrentPaymentsAndCreditNotes(t *testing.T) {
	f := newFinance(t,
		billing.Customer{ID: "a", Name: "A", Currency: "USD", Country: "US"},
		billing.Customer{ID: "b", Name: "B", Currency: "USD", Country: "US"},
		billing.Customer{ID: "c", Name: "C", Currency: "USD", Country: "US"})
	ctx := context.Background()
	ids := f.finalized(map[string]int64{"a": 1000, "b": 1000, "c": 1000}) // 10.00 each
	const n = 16
	type attempt struct {
		what string
		do   func() error
	}
	var attempts []attempt
	for range n {
		attempts = append(attempts,
			attempt{"payment a", func() error { // 1.00 each: exactly ten fit
				_, _, _, err := f.accounts.RecordPayment(ctx, ids["a"], pay("1.00", "2026-11-02"))
				return err
			}},
			attempt{"credit b", func() error { // 1.00 each: exactly ten fit
				_, _, err := f.accounts.IssueCreditNote(ctx, ids["b"], billing.CreditNoteRequest{Reason: "r", Lines: []billing.CreditItem{{Amount: "1.00"}}})
				return err
			}})
	}
	for range n / 2 { // on c, 8 credit notes of 1.00 (all fit) and 8 payments of 1.00 (as many as the balance allows)
		attempts = append(attempts,
			attempt{"payment c", func() error {
				_, _, _, err := f.accounts.RecordPayment(ctx, ids["c"], pay("1.00", "2026-11-02"))
				return err
			}},
			attempt{"credit c", func() error {
				_, _, err := f.accounts.IssueCreditNote(ctx, ids["c"], billing.CreditNoteRequest{Reason: "r", Lines: []billing.CreditItem{{Amount: "1.00"}}})
				return err
			}})
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := map[string]int{}
	start := make(chan struct{})
	for _, a := range attempts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			err := a.do()
			mu.Lock()
			defer mu.Unlock()
			switch code := postage.ErrorCode(err); {
			case err == nil:
				ok[a.what]++
			case code != postage.EOVERPAYMENT && code != postage.EOVERCREDIT:
				t.Errorf("%s: %v", a.what, err)
			}
		}()
	}
	close(start)
	wg.Wait()
	recv := func(c string) billing.Receivable {
		r, err := f.accounts.Receivable(ctx, ids[c])
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if a := recv("a"); ok["payment a"] != 10 || a.Paid.String() != "10.00" || !a.Balance.IsZero() || f.count("payments WHERE invoice_id = '"+ids["a"]+"'") != 10 {
		t.Fatalf("a: %d payments, %+v", ok["payment a"], a)
	}
	if b := recv("b"); ok["credit b"] != 10 || b.Credited.String() != "10.00" || !b.Balance.IsZero() {
		t.Fatalf("b: %d credit notes, %+v", ok["credit b"], b)
	}
	// On c every credit note fits; each payment only while a balance was
	// left, so at least the two the credit notes leave room for.
	c := recv("c")
	if ok["credit c"] != 8 || c.Credited.String() != "8.00" || ok["payment c"] < 2 || c.Paid.String() != fmt.Sprintf("%d.00", ok["payment c"]) {
		t.Fatalf("c: %d credit notes, %d payments, %+v", ok["credit c"], ok["payment c"], c)
	}
	// Credit note numbers: exactly 1..k, no gap, no repeat.
	rows, err := f.env.PG.Query(ctx, `SELECT number_seq FROM credit_notes ORDER BY number_seq`)
	if err != nil {
		t.Fatal(err)
	}
	seqs, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range seqs {
		if s != int64(i+1) {
			t.Fatalf("credit note numbers %v", seqs)
		}
	}
	if len(seqs) != 18 {
		t.Fatalf("%d numbers for 18 credit notes", len(seqs))
	}
	// Each settled invoice announced once, by whichever payment or credit
	// note settled it; every credit note announced.
	settled := 2 // a and b; c too when nothing is left to pay
	if !c.Balance.IsPositive() {
		settled++
	}
	if n := f.count("webhook_events WHERE type = 'invoice.paid'"); n != settled {
		t.Fatalf("%d invoice.paid events (c's balance %s)", n, c.Balance)
	}
	if n := f.count("webhook_events WHERE type = 'credit_note.created'"); n != 18 {
		t.Fatalf("%d credit_note.created events for 18 credit notes", n)
	}
}
