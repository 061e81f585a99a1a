package billing_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"

	"postage"
	"postage/billing"
	billingpg "postage/billing/pgstore"
	"postage/internal/pdfrender"
	"postage/internal/testenv"
	"postage/metering"
	"postage/metering/meteringtest"
	"postage/pricing"
	"postage/pricing/pgstore"
	"postage/reports"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var testIssuer = billing.Issuer{Name: "Postage Test Ltd.", Address: "1 Test Street, Testville", TaxID: "GB123456789",
	BankDetails: "Test Bank plc\nIBAN GB33 BUKB 2020 1555 5555 55\nSWIFT BUKBGB22"}

// testDocs draws the tests' documents: PDFs printed by one headless
// Chromium for the whole test binary (closed when idle; the kernel ends it
// with the binary).
var testDocs = reports.InvoiceDocuments{PDF: pdfrender.New(pdfrender.Options{})}

// clock is an injected, settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

func up(n int64) *int64 { return &n }

// testVersion: DE flat 0.0125, GB graduated 0.02 up to 10 then 0.015,
// Other flat 0.01; session free.
func testVersion(de string) *pricing.Version {
	return &pricing.Version{
		CardID: "test", Status: pricing.StatusDraft,
		Currency: "USD", Rounding: pricing.RoundHalfEven, DefaultMarket: "Other",
		Countries:  map[string]string{"DE": "DE", "GB": "GB"},
		Categories: []pricing.Category{{Name: "marketing"}, {Name: "session", Free: true}},
		Prices: []pricing.Price{
			{Market: "DE", Category: "marketing", Mode: pricing.ModeFlat, UnitPrice: decimal.RequireFromString(de)},
			{Market: "GB", Category: "marketing", Mode: pricing.ModeGraduated, Tiers: []pricing.Tier{
				{UpTo: up(10), UnitPrice: decimal.RequireFromString("0.02")}, {UnitPrice: decimal.RequireFromString("0.015")}}},
			{Market: "Other", Category: "marketing", Mode: pricing.ModeFlat, UnitPrice: decimal.RequireFromString("0.01")},
		},
	}
}

type fixture struct {
	t      *testing.T
	env    *testenv.Env
	meter  *meteringtest.Meter // the events: one server's store, or the cluster's shards
	clock  *clock
	prices *pgstore.Store
	runner *billing.Runner
	store  *billingpg.InvoiceStore
	seq    int
}

func newFixture(t *testing.T, customers ...string) *fixture {
	t.Helper()
	env := testenv.NewBackend(t)
	clk := &clock{t: time.Date(2026, 11, 1, 2, 0, 0, 0, time.UTC)}
	store, err := billingpg.NewInvoiceStore(env.PG, "")
	if err != nil {
		t.Fatal(err)
	}
	store.Now = clk.Now
	cs := billingpg.NewCustomerStore(env.PG)
	cs.Now = clk.Now
	for _, c := range customers {
		if _, err := cs.Create(context.Background(), billing.Customer{ID: c, Name: "Customer " + c, Currency: "USD", Country: "DE"}); err != nil {
			t.Fatal(err)
		}
	}
	// The rate card ledger itself: card "test", version 1 from 2026-01,
	// the default card.
	p := pgstore.New(env.PG)
	p.Now = func() time.Time { return time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC) }
	ctx := context.Background()
	if err := p.CreateCard(ctx, pricing.RateCard{ID: "test", Name: "Test", Currency: "USD", Rounding: pricing.RoundHalfEven}); err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, env: env, meter: meteringtest.Open(t, env), clock: clk, prices: p, store: store}
	f.activate(testVersion("0.0125"), "2026-01")
	if err := p.SetDefaultCard(ctx, "test"); err != nil {
		t.Fatal(err)
	}
	p.Now = clk.Now
	f.runner = &billing.Runner{Invoices: store, Customers: cs, Usage: billing.FromMeter(f.meter.Usage), Pricing: p,
		Locks: billingpg.Locker{DB: env.PG}, Render: testDocs, Issuer: testIssuer, Now: clk.Now, Grace: 72 * time.Hour}
	return f
}

// activate stores v as a new version of card "test" effective from month.
func (f *fixture) activate(v *pricing.Version, from string) {
	f.t.Helper()
	ctx := context.Background()
	now := f.prices.Now
	f.prices.Now = func() time.Time { return pricing.MustParseMonth(from).Prev().Start() }
	defer func() { f.prices.Now = now }()
	d, err := f.prices.CreateDraft(ctx, v)
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.prices.Activate(ctx, "test", d.Number, pricing.MustParseMonth(from)); err != nil {
		f.t.Fatal(err)
	}
}

type ev struct {
	customer, country, category string
	at, ingested                string // "2006-01-02 15:04:05"
	qty                         uint64
	pricingType                 string // "" (regular) or the upstream's pricing type
}

func ts(s string) time.Time {
	t, err := time.Parse("2006-01-02 15:04:05", s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

func (f *fixture) events(evs ...ev) {
	f.t.Helper()
	var stored []metering.Event
	for _, e := range evs {
		f.seq++
		q := e.qty
		if q == 0 {
			q = 1
		}
		stored = append(stored, metering.Event{CustomerID: e.customer, ID: fmt.Sprintf("ev-%d", f.seq), Time: ts(e.at), Country: e.country,
			Category: e.category, PricingType: e.pricingType, Quantity: q, PayloadHash: 1, IngestedAt: ts(e.ingested)})
	}
	if err := f.meter.Insert(context.Background(), stored); err != nil {
		f.t.Fatal(err)
	}
}

// many returns n identical events.
func many(n int, e ev) []ev {
	out := make([]ev, n)
	for i := range out {
		out[i] = e
	}
	return out
}

func (f *fixture) run(period string) billing.Run {
	f.t.Helper()
	run, err := f.runner.Run(context.Background(), billing.RunRequest{Period: pricing.MustParseMonth(period), Trigger: billing.TriggerManual, Wait: true})
	if err != nil {
		f.t.Fatalf("run %s: %v", period, err)
	}
	return run
}

func (f *fixture) invoices(filter billing.InvoiceFilter) []billing.Invoice {
	f.t.Helper()
	list, _, err := f.store.List(context.Background(), filter, billing.Page{Limit: 1000})
	if err != nil {
		f.t.Fatal(err)
	}
	return list
}

func (f *fixture) live(customer, period string) billing.Invoice {
	f.t.Helper()
	for _, inv := range f.invoices(billing.InvoiceFilter{CustomerID: customer, Period: pricing.MustParseMonth(period)}) {
		if inv.Status != billing.StatusVoid {
			return inv
		}
	}
	f.t.Fatalf("no live invoice for %s %s", customer, period)
	return billing.Invoice{}
}

func TestRunIsIdempotent(t *testing.T) {
	f := newFixture(t, "a", "b")
	f.events(
		ev{customer: "a", country: "DE", category: "marketing", at: "2026-10-05 10:00:00", ingested: "2026-10-05 10:00:01", qty: 3},
		ev{customer: "a", country: "FR", category: "marketing", at: "2026-10-06 10:00:00", ingested: "2026-10-06 10:00:01"},
		ev{customer: "a", country: "DE", category: "session", at: "2026-10-06 10:00:00", ingested: "2026-10-06 10:00:01", qty: 7},
		ev{customer: "b", country: "GB", category: "marketing", at: "2026-10-07 10:00:00", ingested: "2026-10-07 10:00:01", qty: 12},
	)
	run1 := f.run("2026-10")
	if run1.Created != 2 || run1.Refreshed != 0 || run1.Customers != 2 || run1.Status != billing.RunSucceeded {
		t.Fatalf("first run = %+v", run1)
	}
	a1 := f.live("a", "2026-10")
	run2 := f.run("2026-10")
	if run2.Created != 0 || run2.Refreshed != 0 || run2.Unchanged != 2 {
		t.Fatalf("second run = %+v", run2)
	}
	a2 := f.live("a", "2026-10")
	if a1.ID != a2.ID || a1.ID != billing.InvoiceID("a", pricing.MustParseMonth("2026-10"), 1) {
		t.Fatalf("ids %s %s, want the deterministic id", a1.ID, a2.ID)
	}
	// DE 3 × 0.0125 = 0.0375 → 0.04; FR (Other) 1 × 0.01 = 0.01; session free.
	if got, want := a2.Total.String(), "0.05"; got != want {
		t.Fatalf("total of a = %s, want %s (lines %+v)", got, want, a2.Lines)
	}
	if got := len(a2.Lines); got != 3 {
		t.Fatalf("a has %d lines, want 3", got)
	}
	// GB graduated: 10 × 0.02 + 2 × 0.015 = 0.23.
	if got, want := f.live("b", "2026-10").Total.String(), "0.23"; got != want {
		t.Fatalf("total of b = %s, want %s", got, want)
	}
	if got := len(f.invoices(billing.InvoiceFilter{})); got != 2 {
		t.Fatalf("%d invoices after two runs, want 2", got)
	}
	if a2.UsageCutoff != f.clock.Now() || a2.Status != billing.StatusDraft || a2.Number != "" {
		t.Fatalf("draft = %+v", a2)
	}
	// A late event changes a's draft only.
	f.events(ev{customer: "a", country: "US", category: "marketing", at: "2026-10-31 10:00:00", ingested: "2026-11-01 01:00:00"})
	f.clock.Set(time.Date(2026, 11, 1, 3, 0, 0, 0, time.UTC))
	if run3 := f.run("2026-10"); run3.Refreshed != 1 || run3.Unchanged != 1 {
		t.Fatalf("third run = %+v", run3)
	}
	if a3 := f.live("a", "2026-10"); a3.Total.String() != "0.06" || !a3.UsageCutoff.Equal(f.clock.Now()) {
		t.Fatalf("refreshed draft = %+v", a3)
	}
	if b3 := f.live("b", "2026-10"); !b3.UsageCutoff.Equal(time.Date(2026, 11, 1, 2, 0, 0, 0, time.UTC)) {
		t.Fatalf("unchanged draft rewritten: %+v", b3)
	}
	// Finalizing brings an unchanged draft's cut-off to the last run's.
	b4, err := f.runner.Approve(context.Background(), billing.InvoiceID("b", pricing.MustParseMonth("2026-10"), 1))
	if err != nil || !b4.UsageCutoff.Equal(f.clock.Now()) {
		t.Fatalf("approved = %+v, %v", b4, err)
	}
}

func TestTotalsAreTheSumOfRoundedLines(t *testing.T) {
	f := newFixture(t, "a")
	// Each line's exact amount needs rounding: DE 1 × 0.0125 = 0.0125 → 0.01
	// (half-even), GB 13 → 0.245 → 0.24, Other 0.01 × 5.
	var evs []ev
	evs = append(evs, ev{customer: "a", country: "DE", category: "marketing", at: "2026-10-05 10:00:00", ingested: "2026-10-05 10:00:01"})
	evs = append(evs, many(13, ev{customer: "a", country: "GB", category: "marketing", at: "2026-10-05 10:00:00", ingested: "2026-10-05 10:00:01"})...)
	evs = append(evs, many(5, ev{customer: "a", country: "US", category: "marketing", at: "2026-10-05 10:00:00", ingested: "2026-10-05 10:00:01"})...)
	f.events(evs...)
	f.run("2026-10")
	inv := f.live("a", "2026-10")
	sum := decimal.Zero
	got := map[string]string{}
	for _, l := range inv.Lines {
		sum = sum.Add(l.Amount.Decimal)
		got[l.Market] = l.Amount.String()
	}
	want := map[string]string{"DE": "0.01", "GB": "0.24", "Other": "0.05"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("line %s = %s, want %s", k, got[k], v)
		}
	}
	if !sum.Equal(inv.Total.Decimal) || inv.Total.String() != "0.30" {
		t.Fatalf("total %s, sum of lines %s, want 0.30", inv.Total, sum)
	}
}

func TestMonthBoundary(t *testing.T) {
	f := newFixture(t, "a")
	f.clock.Set(time.Date(2026, 12, 1, 2, 0, 0, 0, time.UTC))
	f.events(
		ev{customer: "a", country: "US", category: "marketing", at: "2026-10-31 23:59:59", ingested: "2026-11-01 00:00:01"},
		ev{customer: "a", country: "US", category: "marketing", at: "2026-11-01 00:00:00", ingested: "2026-11-01 00:00:01", qty: 2},
	)
	f.run("2026-10")
	f.run("2026-11")
	if got := f.live("a", "2026-10").Lines[0].Quantity; got != 1 {
		t.Errorf("October quantity %d, want 1 (23:59:59 belongs to October)", got)
	}
	if got := f.live("a", "2026-11").Lines[0].Quantity; got != 2 {
		t.Errorf("November quantity %d, want 2 (00:00:00 belongs to November)", got)
	}
}

func TestCardVersionChangeOnTheFirst(t *testing.T) {
	f := newFixture(t, "a")
	f.activate(testVersion("0.02"), "2026-11")
	f.clock.Set(time.Date(2026, 12, 1, 2, 0, 0, 0, time.UTC))
	f.events(
		ev{customer: "a", country: "DE", category: "marketing", at: "2026-10-31 23:59:59", ingested: "2026-10-31 23:59:59", qty: 100},
		ev{customer: "a", country: "DE", category: "marketing", at: "2026-11-01 00:00:00", ingested: "2026-11-01 00:00:00", qty: 100},
	)
	f.run("2026-10")
	f.run("2026-11")
	oct, nov := f.live("a", "2026-10"), f.live("a", "2026-11")
	if oct.CardVersion != 1 || oct.Total.String() != "1.25" {
		t.Errorf("October: version %d total %s, want 1 and 1.25", oct.CardVersion, oct.Total)
	}
	if nov.CardVersion != 2 || nov.Total.String() != "2.00" {
		t.Errorf("November: version %d total %s, want 2 and 2.00", nov.CardVersion, nov.Total)
	}
}

func TestGraceAutoFinalizeAndApprove(t *testing.T) {
	f := newFixture(t, "a", "b")
	f.events(
		ev{customer: "a", country: "US", category: "marketing", at: "2026-10-05 10:00:00", ingested: "2026-10-05 10:00:01"},
		ev{customer: "b", country: "US", category: "marketing", at: "2026-10-05 10:00:00", ingested: "2026-10-05 10:00:01"},
	)
	f.run("2026-10")
	a := f.live("a", "2026-10")
	if want := time.Date(2026, 11, 4, 2, 0, 0, 0, time.UTC); !a.FinalizeAfter.Equal(want) {
		t.Fatalf("finalize_after %s, want %s", a.FinalizeAfter, want)
	}
	// Finance approves b early.
	f.clock.Set(time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC))
	b, err := f.runner.Approve(context.Background(), f.live("b", "2026-10").ID)
	if err != nil || b.Status != billing.StatusFinalized || b.Number != "PST-2026-000001" {
		t.Fatalf("approve = %+v, %v", b, err)
	}
	if _, err := f.runner.Approve(context.Background(), b.ID); postage.ErrorCode(err) != postage.ECONFLICT {
		t.Fatalf("approving twice: %v, want conflict", err)
	}
	// Usage arriving during the grace period lands on the draft itself.
	f.events(ev{customer: "a", country: "US", category: "marketing", at: "2026-10-31 10:00:00", ingested: "2026-11-02 10:00:00", qty: 4})
	f.clock.Set(time.Date(2026, 11, 3, 0, 0, 0, 0, time.UTC))
	if runs, err := f.runner.Sweep(context.Background()); err != nil || len(runs) != 0 {
		t.Fatalf("sweep before grace ended: %v, %v", runs, err)
	}
	f.clock.Set(time.Date(2026, 11, 4, 2, 17, 0, 0, time.UTC))
	runs, err := f.runner.Sweep(context.Background())
	if err != nil || len(runs) != 1 || runs[0].Finalized != 1 {
		t.Fatalf("sweep = %+v, %v", runs, err)
	}
	a = f.live("a", "2026-10")
	if a.Status != billing.StatusFinalized || a.Number != "PST-2026-000002" || a.Lines[0].Quantity != 5 || a.Total.String() != "0.05" {
		t.Fatalf("auto-finalized = %+v", a)
	}
	// Finalized invoices never change: later runs leave them alone.
	f.events(ev{customer: "a", country: "US", category: "marketing", at: "2026-10-31 10:00:00", ingested: "2026-11-05 10:00:00"})
	f.clock.Set(time.Date(2026, 11, 6, 0, 0, 0, 0, time.UTC))
	f.run("2026-10")
	if again := f.live("a", "2026-10"); again.Total.String() != a.Total.String() || !again.UpdatedAt.Equal(a.UpdatedAt) {
		t.Fatalf("a finalized invoice changed: %+v", again)
	}
}

func TestGaplessNumberingUnderConcurrency(t *testing.T) {
	const n = 40
	var ids []string
	for i := 0; i < n; i++ {
		ids = append(ids, fmt.Sprintf("c%02d", i))
	}
	f := newFixture(t, ids...)
	var evs []ev
	for _, c := range ids {
		evs = append(evs, ev{customer: c, country: "US", category: "marketing", at: "2026-10-05 10:00:00", ingested: "2026-10-05 10:00:01"})
	}
	f.events(evs...)
	f.run("2026-10")
	f.clock.Set(time.Date(2026, 11, 5, 0, 0, 0, 0, time.UTC))
	var wg sync.WaitGroup
	// Finance approves every invoice from 8 clients while two replicas sweep.
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				_, err := f.runner.Approve(context.Background(), billing.InvoiceID(ids[i], pricing.MustParseMonth("2026-10"), 1))
				if err != nil && postage.ErrorCode(err) != postage.ECONFLICT {
					t.Error(err)
				}
			}
		}(w)
	}
	for s := 0; s < 2; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := f.runner.Sweep(context.Background()); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	for _, inv := range f.invoices(billing.InvoiceFilter{}) {
		if inv.Status != billing.StatusFinalized {
			t.Fatalf("%s is %s", inv.ID, inv.Status)
		}
		seen[inv.Number] = true
	}
	for i := 1; i <= n; i++ {
		if num := fmt.Sprintf("PST-2026-%06d", i); !seen[num] {
			t.Errorf("number %s missing: numbering has a gap", num)
		}
	}
	if len(seen) != n {
		t.Fatalf("%d distinct numbers for %d invoices", len(seen), n)
	}
}

func TestConcurrentRuns(t *testing.T) {
	f := newFixture(t, "a", "b", "c")
	f.events(
		ev{customer: "a", country: "US", category: "marketing", at: "2026-10-05 10:00:00", ingested: "2026-10-05 10:00:01"},
		ev{customer: "b", country: "US", category: "marketing", at: "2026-10-05 10:00:00", ingested: "2026-10-05 10:00:01"},
		ev{customer: "c", country: "US", category: "marketing", at: "2026-10-05 10:00:00", ingested: "2026-10-05 10:00:01"},
	)
	// Two replicas with their own billing.Runner on the same databases.
	other := &billing.Runner{Invoices: f.store, Customers: f.runner.Customers, Usage: f.runner.Usage, Pricing: f.prices, Locks: billingpg.Locker{DB: f.env.PG}, Now: f.clock.Now, Grace: 72 * time.Hour}
	var wg sync.WaitGroup
	runs := make([]billing.Run, 4)
	for i := range runs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r := f.runner
			if i%2 == 1 {
				r = other
			}
			var err error
			runs[i], err = r.Run(context.Background(), billing.RunRequest{Period: pricing.MustParseMonth("2026-10"), Trigger: billing.TriggerSchedule, Wait: i < 2})
			if err != nil {
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	created := 0
	for _, r := range runs {
		created += r.Created
		if r.Status != billing.RunSucceeded && r.Status != billing.RunSkipped {
			t.Errorf("run %+v", r)
		}
	}
	if created != 3 {
		t.Errorf("runs created %d invoices in all, want 3: %+v", created, runs)
	}
	if got := len(f.invoices(billing.InvoiceFilter{})); got != 3 {
		t.Fatalf("%d invoices, want 3", got)
	}
	recorded, err := f.store.Runs(context.Background(), pricing.Month{}, 10)
	if err != nil || len(recorded) != 4 {
		t.Fatalf("recorded runs %d, %v", len(recorded), err)
	}
}

func TestVoidAndReissue(t *testing.T) {
	f := newFixture(t, "a")
	f.events(many(3, ev{customer: "a", country: "US", category: "marketing", at: "2026-10-05 10:00:00", ingested: "2026-10-05 10:00:01"})...)
	f.run("2026-10")
	ctx := context.Background()
	draft := f.live("a", "2026-10")
	if _, _, err := f.runner.Void(ctx, draft.ID, "wrong"); postage.ErrorCode(err) != postage.ECONFLICT {
		t.Fatalf("void of a draft: %v, want conflict", err)
	}
	fin, err := f.runner.Approve(ctx, draft.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.runner.Void(ctx, fin.ID, ""); postage.ErrorCode(err) != postage.EINVALID {
		t.Fatalf("void without reason: %v, want invalid", err)
	}
	// Two late events; the customer's name was wrong on the invoice.
	f.events(many(2, ev{customer: "a", country: "US", category: "marketing", at: "2026-10-30 10:00:00", ingested: "2026-11-02 10:00:00"})...)
	f.clock.Set(time.Date(2026, 11, 2, 12, 0, 0, 0, time.UTC))
	newName := "Acme Ltd"
	if _, err := f.runner.Customers.Update(ctx, "a", billing.CustomerUpdate{Name: &newName}); err != nil {
		t.Fatal(err)
	}
	voided, re, err := f.runner.Void(ctx, fin.ID, "customer name was wrong")
	if err != nil {
		t.Fatal(err)
	}
	if voided.Status != billing.StatusVoid || voided.Number != fin.Number || voided.VoidReason != "customer name was wrong" || voided.ReplacedBy != re.ID {
		t.Fatalf("voided = %+v", voided)
	}
	if re.Status != billing.StatusDraft || re.Seq != 2 || re.Replaces != fin.ID || re.ID != billing.InvoiceID("a", pricing.MustParseMonth("2026-10"), 2) ||
		re.Customer.Name != newName || re.Lines[0].Quantity != 5 || re.Total.String() != "0.05" {
		t.Fatalf("reissue = %+v", re)
	}
	if _, _, err := f.runner.Void(ctx, fin.ID, "again"); postage.ErrorCode(err) != postage.ECONFLICT {
		t.Fatalf("voiding a void invoice: %v, want conflict", err)
	}
	// A run refreshes the reissue and creates nothing else.
	run := f.run("2026-10")
	if run.Created != 0 || run.Refreshed+run.Unchanged != 1 {
		t.Fatalf("run after reissue = %+v", run)
	}
	re2, err := f.runner.Approve(ctx, re.ID)
	if err != nil || re2.Number != "PST-2026-000002" {
		t.Fatalf("approve reissue = %+v, %v", re2, err)
	}
	// The late events are on the reissue: November holds no adjustment.
	f.events(ev{customer: "a", country: "US", category: "marketing", at: "2026-11-05 10:00:00", ingested: "2026-11-05 10:00:01"})
	f.clock.Set(time.Date(2026, 12, 1, 2, 0, 0, 0, time.UTC))
	f.run("2026-11")
	if nov := f.live("a", "2026-11"); len(nov.Lines) != 1 || nov.Adjustments.String() != "0.00" {
		t.Fatalf("November = %+v", nov.Lines)
	}
}

func TestLateEventsBecomeAdjustments(t *testing.T) {
	f := newFixture(t, "a", "z")
	f.events(many(8, ev{customer: "a", country: "GB", category: "marketing", at: "2026-10-05 10:00:00", ingested: "2026-10-05 10:00:01"})...)
	f.run("2026-10")
	f.clock.Set(time.Date(2026, 11, 4, 3, 0, 0, 0, time.UTC))
	if _, err := f.runner.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	oct := f.live("a", "2026-10")
	if oct.Status != billing.StatusFinalized || oct.Total.String() != "0.16" {
		t.Fatalf("October = %+v", oct)
	}
	// After October is closed: 5 more October events for a (crossing the
	// GB tier at 10), October usage of z who had no invoice, and November usage.
	f.events(many(5, ev{customer: "a", country: "GB", category: "marketing", at: "2026-10-31 22:00:00", ingested: "2026-11-10 10:00:00"})...)
	f.events(ev{customer: "z", country: "US", category: "marketing", at: "2026-10-20 10:00:00", ingested: "2026-11-10 10:00:00", qty: 3})
	f.events(ev{customer: "a", country: "US", category: "marketing", at: "2026-11-20 10:00:00", ingested: "2026-11-20 10:00:00"})
	// The month-to-date bill already shows what November's invoice will hold.
	f.clock.Set(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	up, err := f.runner.Upcoming(context.Background(), "a")
	if err != nil || up.Period.String() != "2026-11" || up.Subtotal.String() != "0.01" || up.Adjustments.String() != "0.08" || up.Total.String() != "0.09" {
		t.Fatalf("upcoming = %+v, %v", up, err)
	}
	f.clock.Set(time.Date(2026, 12, 1, 2, 0, 0, 0, time.UTC))
	for i := 0; i < 2; i++ { // twice: refreshing changes nothing
		f.run("2026-11")
		nov := f.live("a", "2026-11")
		var adj []billing.Line
		for _, l := range nov.Lines {
			if l.Kind == billing.KindAdjustment {
				adj = append(adj, l)
			}
		}
		// Re-rated October: 13 in GB = 10 × 0.02 + 3 × 0.015 = 0.245 → 0.24; billed 0.16.
		if len(adj) != 1 || adj[0].Period.String() != "2026-10" || adj[0].Quantity != 5 || adj[0].Amount.String() != "0.08" || adj[0].Market != "GB" {
			t.Fatalf("adjustments = %+v", adj)
		}
		if nov.Subtotal.String() != "0.01" || nov.Adjustments.String() != "0.08" || nov.Total.String() != "0.09" {
			t.Fatalf("November totals %s + %s = %s", nov.Subtotal, nov.Adjustments, nov.Total)
		}
		z := f.live("z", "2026-11")
		if len(z.Lines) != 1 || z.Lines[0].Kind != billing.KindAdjustment || z.Lines[0].Quantity != 3 || z.Total.String() != "0.03" {
			t.Fatalf("z = %+v", z.Lines)
		}
	}
	// A run of October now must not bill z's October a second time.
	if run := f.run("2026-10"); run.Created != 0 {
		t.Fatalf("October re-run created %d invoices", run.Created)
	}
	// Once November is final, December carries nothing more for October.
	f.clock.Set(time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC))
	if _, err := f.runner.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.events(ev{customer: "a", country: "US", category: "marketing", at: "2026-12-02 10:00:00", ingested: "2026-12-02 10:00:00"})
	f.clock.Set(time.Date(2027, 1, 1, 2, 0, 0, 0, time.UTC))
	f.run("2026-12")
	if dec := f.live("a", "2026-12"); dec.Adjustments.String() != "0.00" || len(dec.Lines) != 1 {
		t.Fatalf("December = %+v", dec.Lines)
	}
	// One more late October event after November was finalized: December gets it.
	f.events(ev{customer: "a", country: "GB", category: "marketing", at: "2026-10-31 23:00:00", ingested: "2027-01-01 01:00:00", qty: 2})
	f.clock.Set(time.Date(2027, 1, 1, 3, 0, 0, 0, time.UTC))
	f.run("2026-12")
	dec := f.live("a", "2026-12")
	// 15 in GB = 0.20 + 5 × 0.015 = 0.275 → 0.28; billed 0.16 + 0.08.
	if dec.Adjustments.String() != "0.04" {
		t.Fatalf("December adjustments %s, want 0.04: %+v", dec.Adjustments, dec.Lines)
	}
}

func TestUnbilledUsage(t *testing.T) {
	f := newFixture(t, "a", "nocard", "odd")
	// No default card: only a has one.
	if _, err := f.env.PG.Exec(context.Background(), `UPDATE rate_cards SET is_default = false`); err != nil {
		t.Fatal(err)
	}
	if err := f.prices.AssignCard(context.Background(), "a", "test", pricing.MustParseMonth("2026-01")); err != nil {
		t.Fatal(err)
	}
	f.events(
		ev{customer: "a", country: "US", category: "marketing", at: "2026-10-05 10:00:00", ingested: "2026-10-05 10:00:01"},
		ev{customer: "ghost", country: "US", category: "marketing", at: "2026-10-05 10:00:00", ingested: "2026-10-05 10:00:01", qty: 4},
		ev{customer: "nocard", country: "DE", category: "marketing", at: "2026-10-05 10:00:00", ingested: "2026-10-05 10:00:01", qty: 2},
		ev{customer: "odd", country: "DE", category: "utility", at: "2026-10-05 10:00:00", ingested: "2026-10-05 10:00:01"}, // not on the card
		ev{customer: "odd", country: "GB", category: "marketing", at: "2026-10-06 10:00:00", ingested: "2026-10-06 10:00:01", qty: 3},
	)
	if err := f.prices.AssignCard(context.Background(), "odd", "test", pricing.MustParseMonth("2026-01")); err != nil {
		t.Fatal(err)
	}
	run := f.run("2026-10")
	if run.Created != 2 || run.Unbilled != 3 || run.Errors != 0 {
		t.Fatalf("run = %+v", run)
	}
	rows, err := f.store.Unbilled(context.Background(), pricing.MustParseMonth("2026-10"))
	if err != nil || len(rows) != 3 || rows[2].CustomerID != "odd" || rows[2].Reason != billing.UnbilledUnmappedCategory || !strings.Contains(rows[2].Detail, "utility") ||
		rows[2].Quantity != 1 || rows[2].Country != "DE" {
		t.Fatalf("unbilled = %+v, %v", rows, err)
	}
	// Only the row the card cannot price is unbilled: the rest of the
	// month is on the invoice, which lists the unbilled row with its reason.
	odd := f.live("odd", "2026-10")
	if len(odd.Lines) != 1 || odd.Lines[0].Category != "marketing" || odd.Lines[0].Quantity != 3 || odd.Total.String() != "0.06" {
		t.Fatalf("odd's invoice: %+v %s", odd.Lines, odd.Total)
	}
	if len(odd.Unbilled) != 1 || odd.Unbilled[0].Category != "utility" || odd.Unbilled[0].Quantity != 1 || odd.Unbilled[0].Reason != billing.UnbilledUnmappedCategory || odd.Unbilled[0].Period.String() != "2026-10" {
		t.Fatalf("odd's unbilled usage: %+v", odd.Unbilled)
	}
	if rows[0].CustomerID != "ghost" || rows[0].Reason != billing.UnbilledUnknownCustomer || rows[0].Quantity != 4 ||
		rows[1].CustomerID != "nocard" || rows[1].Reason != billing.UnbilledNoCard || rows[1].Quantity != 2 {
		t.Fatalf("unbilled = %+v", rows)
	}
}

func TestBadPeriods(t *testing.T) {
	f := newFixture(t)
	for _, p := range []pricing.Month{{Year: 2026, Month: 11}, {Year: 2027, Month: 1}, {Year: 2026, Month: 13}} {
		if _, err := f.runner.Run(context.Background(), billing.RunRequest{Period: p}); postage.ErrorCode(err) != postage.EINVALID {
			t.Errorf("period %v: %v, want invalid", p, err)
		}
	}
}

func TestDatabaseDownDuringRun(t *testing.T) {
	f := newFixture(t, "a")
	f.events(ev{customer: "a", country: "US", category: "marketing", at: "2026-10-05 10:00:00", ingested: "2026-10-05 10:00:01"})
	ctx := context.Background()
	// A run that died half-way (process killed) left its record running.
	if _, err := f.env.PG.Exec(ctx, `INSERT INTO invoice_runs (period, trigger, status, started_at) VALUES ('2026-10','schedule','running',$1)`, f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	// ClickHouse is down (nothing listens there).
	dead, err := clickhouse.Open(&clickhouse.Options{Addr: []string{"127.0.0.1:1"}, DialTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	good := f.runner.Usage
	f.runner.Usage = billing.FromMeter(metering.NewCHStore(dead))
	run, err := f.runner.Run(ctx, billing.RunRequest{Period: pricing.MustParseMonth("2026-10"), Wait: true})
	if err == nil || run.Status != billing.RunFailed || run.Error == "" {
		t.Fatalf("run with ClickHouse down = %+v, %v", run, err)
	}
	if got := len(f.invoices(billing.InvoiceFilter{})); got != 0 {
		t.Fatalf("%d invoices after a failed run", got)
	}
	f.runner.Usage = good
	run = f.run("2026-10")
	if run.Status != billing.RunSucceeded || run.Created != 1 {
		t.Fatalf("next run = %+v", run)
	}
	runs, err := f.store.Runs(ctx, pricing.MustParseMonth("2026-10"), 10)
	if err != nil || len(runs) != 3 {
		t.Fatalf("runs = %+v, %v", runs, err)
	}
	if runs[0].Status != billing.RunSucceeded || runs[1].Status != billing.RunFailed || runs[2].Status != billing.RunFailed {
		t.Fatalf("recorded runs = %+v", runs)
	}
}

func TestPostgresDownDuringRun(t *testing.T) {
	f := newFixture(t, "a")
	f.events(ev{customer: "a", country: "US", category: "marketing", at: "2026-10-05 10:00:00", ingested: "2026-10-05 10:00:01"})
	ctx := context.Background()
	// PostgreSQL is unreachable: the run fails cleanly with "unavailable".
	down, err := pgxpool.New(ctx, "postgres://postgres@127.0.0.1:1/x?connect_timeout=1")
	if err != nil {
		t.Fatal(err)
	}
	defer down.Close()
	store := *f.store
	store.DB = down
	broken := &billing.Runner{Invoices: &store, Customers: f.runner.Customers, Usage: f.runner.Usage, Pricing: f.prices, Locks: billingpg.Locker{DB: down}, Now: f.clock.Now, Grace: 72 * time.Hour}
	if _, err := broken.Run(ctx, billing.RunRequest{Period: pricing.MustParseMonth("2026-10"), Wait: true}); postage.ErrorCode(err) != postage.EUNAVAILABLE {
		t.Fatalf("run with PostgreSQL down: %v, want unavailable", err)
	}
	// PostgreSQL goes away in the middle of a run: the customer store's
	// connection is closed while the runner holds its lock.
	mid, err := pgxpool.New(ctx, f.env.PGDSN)
	if err != nil {
		t.Fatal(err)
	}
	midCustomers := billingpg.NewCustomerStore(mid)
	mid.Close()
	half := &billing.Runner{Invoices: f.store, Customers: midCustomers, Usage: f.runner.Usage, Pricing: f.prices, Locks: f.runner.Locks, Now: f.clock.Now, Grace: 72 * time.Hour}
	run, err := half.Run(ctx, billing.RunRequest{Period: pricing.MustParseMonth("2026-10"), Wait: true})
	if err == nil || run.Status != billing.RunFailed {
		t.Fatalf("run losing PostgreSQL half-way = %+v, %v", run, err)
	}
	// The next run completes.
	if run := f.run("2026-10"); run.Status != billing.RunSucceeded || run.Created != 1 {
		t.Fatalf("next run = %+v", run)
	}
	runs, _ := f.store.Runs(ctx, pricing.Month{}, 10)
	if len(runs) != 2 || runs[1].Status != billing.RunFailed || runs[1].Error == "" {
		t.Fatalf("recorded runs = %+v", runs)
	}
}

func TestSchedulerRunsThePreviousMonth(t *testing.T) {
	f := newFixture(t, "a")
	f.events(ev{customer: "a", country: "US", category: "marketing", at: "2026-10-31 23:59:59", ingested: "2026-10-31 23:59:59"})
	s := &billing.Scheduler{Runner: f.runner, Schedule: billing.DefaultSchedule}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.Stop()
	run, err := s.MonthlyRun(context.Background())
	if err != nil || run.Period != "2026-10" || run.Trigger != billing.TriggerSchedule || run.Created != 1 {
		t.Fatalf("scheduled run = %+v, %v", run, err)
	}
	if err := (&billing.Scheduler{Runner: f.runner, Schedule: "61 * * * *"}).Start(context.Background()); err == nil {
		t.Fatal("a bad schedule started")
	}
}

func TestFreshDraftThatExistsFallsBackToUpsert(t *testing.T) {
	f := newFixture(t, "a", "b")
	f.events(ev{customer: "a", country: "US", category: "marketing", at: "2026-10-05 10:00:00", ingested: "2026-10-05 10:00:01"})
	f.run("2026-10")
	inv := f.live("a", "2026-10")
	inv.Lines[0].Quantity = 99
	e1 := billing.EncodeDraft(&inv)
	e1.Fresh = true // as if the plan had not seen it
	b := inv
	b.ID, b.CustomerID, b.Customer.ID = billing.InvoiceID("b", inv.Period, 1), "b", "b"
	e2 := billing.EncodeDraft(&b)
	e2.Fresh = true
	created, refreshed, err := f.store.WriteDrafts(context.Background(), []*billing.Draft{e1, e2}, f.clock.Now())
	if err != nil || created != 1 || refreshed != 1 {
		t.Fatalf("created %d refreshed %d, %v", created, refreshed, err)
	}
	if got := f.live("a", "2026-10").Lines[0].Quantity; got != 99 {
		t.Fatalf("quantity %d", got)
	}
}

// A customer with invoices can be neither deleted nor renamed (the guard
// that replaced the invoices -> customers foreign key), one without can,
// and a delete waits for a run in progress, which may be writing the
// customer's first invoice.
func TestCustomerWithInvoicesIsKept(t *testing.T) {
	f := newFixture(t, "c1", "c2", "c3")
	ctx := context.Background()
	f.events(ev{customer: "c1", at: "2026-10-10 10:00:00", ingested: "2026-10-10 10:00:00", country: "DE", category: "marketing"})
	f.run("2026-10")

	for _, sql := range []string{`DELETE FROM customers WHERE id = 'c1'`, `UPDATE customers SET id = 'c1-renamed' WHERE id = 'c1'`} {
		_, err := f.env.PG.Exec(ctx, sql)
		if err == nil || !strings.Contains(err.Error(), "customer c1 has invoices") {
			t.Errorf("%s: err = %v, want the customer kept", sql, err)
		}
	}
	if _, err := f.env.PG.Exec(ctx, `UPDATE customers SET name = 'Renamed' WHERE id = 'c1'`); err != nil {
		t.Errorf("update of another column: %v", err)
	}
	if _, err := f.env.PG.Exec(ctx, `UPDATE customers SET id = 'c2-renamed' WHERE id = 'c2'`); err != nil {
		t.Errorf("rename of a customer without invoices: %v", err)
	}

	// Only READ COMMITTED sees invoices committed while the delete waited.
	tx, err := f.env.PG.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM customers WHERE id = 'c3'`); err == nil || !strings.Contains(err.Error(), "needs a READ COMMITTED transaction") {
		t.Errorf("delete in REPEATABLE READ: err = %v, want it refused", err)
	}
	tx.Rollback(ctx)

	// A run in progress holds the customers lock shared: a delete waits for
	// it, then sees the first invoice the run wrote meanwhile.
	unlock, locked, err := f.runner.Locks.LockRuns(ctx, true)
	if err != nil || !locked {
		t.Fatalf("run lock: %v %v", locked, err)
	}
	deleted := make(chan error, 1)
	go func() {
		_, err := f.env.PG.Exec(ctx, `DELETE FROM customers WHERE id = 'c3'`)
		deleted <- err
	}()
	select {
	case err := <-deleted:
		t.Fatalf("delete did not wait for the run: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	if _, err := f.env.PG.Exec(ctx, `INSERT INTO invoices (id, customer_id, period, seq, status, customer, currency, lines, subtotal, adjustments, total,
		usage_cutoff, finalize_after, created_at, updated_at) VALUES ('in_c3', 'c3', '2026-10', 1, 'draft', '{}', 'USD', '[]', 0, 0, 0, now(), now(), now(), now())`); err != nil {
		t.Fatal(err)
	}
	unlock()
	if err := <-deleted; err == nil || !strings.Contains(err.Error(), "customer c3 has invoices") {
		t.Errorf("delete that waited for a run writing the customer's first invoice: err = %v, want it refused", err)
	}
	// And a real run takes the lock: a delete in progress holds up the run,
	// which then no longer bills the customer.
	if _, err := f.env.PG.Exec(ctx, `DELETE FROM invoices WHERE id = 'in_c3'`); err != nil {
		t.Fatal(err)
	}
	f.events(ev{customer: "c3", at: "2026-10-11 10:00:00", ingested: "2026-10-11 10:00:00", country: "DE", category: "marketing"})
	tx, err = f.env.PG.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) // after a failure below; a no-op once committed
	if _, err := tx.Exec(ctx, `DELETE FROM customers WHERE id = 'c3'`); err != nil {
		t.Fatal(err)
	}
	ran := make(chan billing.Run, 1)
	go func() {
		r, _ := f.runner.Run(ctx, billing.RunRequest{Period: pricing.MustParseMonth("2026-10"), Trigger: billing.TriggerSchedule})
		ran <- r
	}()
	select {
	case r := <-ran:
		t.Fatalf("run did not wait for the delete: %+v", r)
	case <-time.After(300 * time.Millisecond):
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if r := <-ran; r.Status != billing.RunSucceeded || r.Unbilled != 1 {
		t.Errorf("scheduled run after the delete: %+v, want it to succeed, not be skipped, with c3's usage unbilled", r)
	}
	var n int
	if err := f.env.PG.QueryRow(ctx, `SELECT count(*) FROM invoices WHERE customer_id = 'c3'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("invoices of the deleted customer: %d (%v), want none", n, err)
	}
}

// The database itself keeps at most one live invoice per customer and
// period, and lets voided ones accumulate.
func TestOneLiveInvoicePerCustomerAndPeriod(t *testing.T) {
	f := newFixture(t, "c1")
	ctx := context.Background()
	f.events(ev{customer: "c1", at: "2026-10-10 10:00:00", ingested: "2026-10-10 10:00:00", country: "DE", category: "marketing"})
	f.run("2026-10")
	insert := func(seq int, status string) error {
		voided, number := "NULL", "NULL"
		if status == "void" {
			voided, number = "now()", "'T-'||$2::int"
		}
		_, err := f.env.PG.Exec(ctx, `INSERT INTO invoices (id, customer_id, period, seq, status, customer, currency, lines, subtotal, adjustments, total,
			usage_cutoff, finalize_after, created_at, updated_at, voided_at, number, number_year, number_seq)
			VALUES ($1, 'c1', '2026-10', $2::int, $3, '{}', 'USD', '[]', 0, 0, 0, now(), now(), now(), now(), `+voided+`, `+number+`, 1900, $2::int)`,
			billing.InvoiceID("c1", pricing.MustParseMonth("2026-10"), seq), seq, status)
		return err
	}
	if err := insert(2, "draft"); err == nil || !strings.Contains(err.Error(), "invoices_customer") {
		t.Errorf("a second draft: err = %v, want the unique violation of invoices_customer", err)
	}
	for _, seq := range []int{2, 3} {
		if err := insert(seq, "void"); err != nil {
			t.Errorf("voided invoice seq %d: %v", seq, err)
		}
	}
}
