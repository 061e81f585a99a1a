package reconcile_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"postage"
	"postage/billing"
	billingpg "postage/billing/pgstore"
	"postage/internal/testenv"
	"postage/metering"
	"postage/pricing"
	pricingpg "postage/pricing/pgstore"
	"postage/reconcile"
	"postage/reconcile/pgstore"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var (
	oct = pricing.MustParseMonth("2026-10")
	now = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
)

// Meta's prices (pricing/seed/meta-rates-2026-01.csv) of the markets
// the generated month uses.
var price = map[string]decimal.Decimal{
	"IN marketing": decimal.RequireFromString("0.0118"), "IN utility": decimal.RequireFromString("0.0014"),
	"DE marketing": decimal.RequireFromString("0.1365"), "DE utility": decimal.RequireFromString("0.055"),
	"BR marketing": decimal.RequireFromString("0.0625"),
}

// flow is some messages of one phone number on one day of October.
type flow struct {
	phone    string
	day      int
	country  string
	category string
	ptype    string // upstream pricing type ("" regular)
	status   string // postage's billable status ("" delivered)
	n        int64
}

// month is a generated month: what postage meters and what the upstream
// reports, and the differences between them, each known in advance.
type month struct {
	postage  []flow
	upstream []flow
	// upstreamCost overrides the upstream's cost of a flow (by index).
	upstreamCost map[int]decimal.Decimal
}

// owners maps phone number ids to customers (8888 and 9999 are nobody's).
var owners = map[string]string{"1001": "acme", "2001": "globex", "2002": "globex"}

func customerOf(phone string) string {
	if c, ok := owners[phone]; ok {
		return c
	}
	return "unknown:" + phone
}

// generate builds the month: ten days of the same traffic on both sides,
// then one known difference of each cause.
func generate() *month {
	m := &month{upstreamCost: map[int]decimal.Decimal{}}
	for d := 1; d <= 10; d++ {
		base := []flow{
			{"1001", d, "IN", "marketing", "", "", 20},
			{"1001", d, "IN", "utility", "", "", 10},
			{"2001", d, "DE", "marketing", "", "", 5},
			{"2002", d, "DE", "utility", "", "", 3},
		}
		for _, f := range base {
			m.postage = append(m.postage, f)
			up := f
			switch {
			case d == 3 && f.phone == "1001" && f.category == "marketing":
				up.n += 4 // P1: four messages postage never saw
			case d == 6 && f.phone == "1001" && f.category == "utility":
				up.n = 7 // P4: three of them free upstream
				m.upstream = append(m.upstream, flow{"1001", d, "IN", "utility", "FREE_CUSTOMER_SERVICE", "", 3})
			case d == 7 && f.phone == "2001":
				up.n = 3 // P5: two marketing messages counted as utility upstream
				m.upstream = append(m.upstream, flow{"2001", d, "DE", "utility", "", "", 2})
			case d == 8 && f.phone == "1001" && f.category == "marketing":
				up.n = 19 // P6: one message counted the next day upstream
			case d == 9 && f.phone == "1001" && f.category == "marketing":
				up.n = 21
			case d == 10 && f.phone == "2002":
				m.upstreamCost[len(m.upstream)] = decimal.RequireFromString("0.18") // P8: another price
			}
			m.upstream = append(m.upstream, up)
		}
	}
	// P2: three messages postage counted at status sent, never delivered.
	m.postage = append(m.postage, flow{"1001", 5, "IN", "marketing", "", metering.StatusSent, 3})
	// P3: two messages the upstream's report lacks.
	m.postage = append(m.postage, flow{"2001", 5, "DE", "marketing", "", "", 2})
	// P7: a number nobody has, billed upstream, never seen by postage.
	m.upstream = append(m.upstream, flow{"9999", 2, "BR", "marketing", "", "", 6})
	// A number nobody has that both sides counted alike.
	m.postage = append(m.postage, flow{"8888", 2, "BR", "marketing", "", "", 2})
	m.upstream = append(m.upstream, flow{"8888", 2, "BR", "marketing", "", "", 2})
	return m
}

func (m *month) events() []metering.Event {
	var out []metering.Event
	for i, f := range m.postage {
		status := f.status
		if status == "" {
			status = metering.StatusDelivered
		}
		t := oct.Start().AddDate(0, 0, f.day-1).Add(time.Duration(i%20) * time.Hour)
		e := metering.Event{CustomerID: customerOf(f.phone), ID: fmt.Sprintf("wamid.%d", i), Time: t, Country: f.country, Category: f.category,
			PricingType: metering.PricingRegular, PricingModel: "PMP", Source: "whatsapp", Status: status, Quantity: uint64(f.n), IngestedAt: t.Add(time.Minute)}
		e.PayloadHash = metering.HashStatusPayload(e.Country, e.Category, e.Quantity, e.PricingType, e.PricingModel)
		out = append(out, e)
	}
	return out
}

func (m *month) cost(i int) decimal.Decimal {
	f := m.upstream[i]
	if c, ok := m.upstreamCost[i]; ok {
		return c
	}
	if f.ptype != "" {
		return decimal.Zero
	}
	return price[f.country+" "+f.category].Mul(decimal.NewFromInt(f.n))
}

// csv is the upstream's report as a CSV file, in half hours: every flow
// split into two data points.
func (m *month) csv() string {
	var b strings.Builder
	b.WriteString("start,end,phone_number,country,pricing_category,pricing_type,volume,cost\n")
	for i, f := range m.upstream {
		t := oct.Start().AddDate(0, 0, f.day-1).Unix() + 1800*int64(i%40)
		ptype := f.ptype
		if ptype == "" {
			ptype = "REGULAR"
		}
		c := m.cost(i)
		half := c.Div(decimal.NewFromInt(2)).RoundBank(6)
		fmt.Fprintf(&b, "%d,%d,%s,%s,%s,%s,%d,%s\n", t, t+1800, f.phone, f.country, strings.ToUpper(f.category), ptype, f.n/2, half)
		fmt.Fprintf(&b, "%d,%d,%s,%s,%s,%s,%d,%s\n", t+1800, t+3600, f.phone, f.country, strings.ToUpper(f.category), ptype, f.n-f.n/2, c.Sub(half))
	}
	return b.String()
}

type world struct {
	svc       *reconcile.Service
	cards     *pricingpg.Store
	customers *billingpg.CustomerStore
	events    *metering.CHStore
	m         *month
}

func setup(t *testing.T) *world {
	t.Helper()
	ctx := context.Background()
	env := testenv.New(t)
	cards := pricingpg.New(env.PG)
	if err := cards.Seed(ctx); err != nil {
		t.Fatal(err)
	}
	cs := billingpg.NewCustomerStore(env.PG)
	for _, c := range []billing.Customer{{ID: "acme", Name: "Acme", Currency: "USD", Country: "IN"}, {ID: "globex", Name: "Globex", Currency: "USD", Country: "DE"}} {
		if _, err := cs.Create(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	for p, c := range owners {
		if _, err := cs.AddPhoneNumber(ctx, c, p); err != nil {
			t.Fatal(err)
		}
	}
	m := generate()
	events := metering.NewCHStore(env.CH)
	if err := events.Insert(ctx, m.events()); err != nil {
		t.Fatal(err)
	}
	svc := &reconcile.Service{Store: pgstore.New(env.PG), Usage: events, Customers: cs, Cards: cards,
		TolerancePercent: reconcile.DefaultTolerancePercent, Hold: true, Now: func() time.Time { return now }}
	return &world{svc: svc, cards: cards, customers: cs, events: events, m: m}
}

func d(s string) decimal.Decimal { return decimal.RequireFromString(s) }

func mul(p string, n int64) decimal.Decimal { return price[p].Mul(decimal.NewFromInt(n)) }

// The report finds exactly the known differences, in messages and money,
// each with its cause.
func TestReconcileGeneratedMonth(t *testing.T) {
	w := setup(t)
	ctx := context.Background()
	rec, err := w.svc.Import(ctx, reconcile.ImportRequest{Month: oct, Format: reconcile.FormatCSV, Source: "meta-2026-10.csv", By: "finance@example", Body: strings.NewReader(w.m.csv())})
	if err != nil {
		t.Fatalf("%v %v", err, postage.ErrorDetail(err))
	}
	type line struct {
		customer, day, key string
		cause              reconcile.Cause
		messages           int64
		amount             decimal.Decimal
	}
	want := []line{
		{"acme", "2026-10-03", "India/marketing", reconcile.CauseNotMetered, -4, mul("IN marketing", 4).Neg()},
		{"acme", "2026-10-05", "India/marketing", reconcile.CauseNotDelivered, 3, mul("IN marketing", 3)},
		{"acme", "2026-10-06", "India/utility", reconcile.CauseFreeType, 0, mul("IN utility", 3)},
		{"acme", "2026-10-08", "India/marketing", reconcile.CauseDayBoundary, 1, mul("IN marketing", 1)},
		{"acme", "2026-10-09", "India/marketing", reconcile.CauseDayBoundary, -1, mul("IN marketing", 1).Neg()},
		{"globex", "2026-10-05", "Germany/marketing", reconcile.CauseNotInUpstream, 2, mul("DE marketing", 2)},
		{"globex", "2026-10-07", "Germany/marketing", reconcile.CauseCategoryMapping, 2, mul("DE marketing", 2)},
		{"globex", "2026-10-07", "Germany/utility", reconcile.CauseCategoryMapping, -2, mul("DE utility", 2).Neg()},
		{"globex", "2026-10-10", "Germany/utility", reconcile.CausePrice, 0, d("-0.015")},
		{"unknown:9999", "2026-10-02", "Brazil/marketing", reconcile.CauseUnknownPhoneNumber, -6, mul("BR marketing", 6).Neg()},
	}
	ds, next, err := w.svc.Differences(ctx, oct, reconcile.DiffFilter{})
	if err != nil || next != 0 {
		t.Fatal(err, next)
	}
	if len(ds) != len(want) {
		t.Fatalf("%d differences, want %d: %+v", len(ds), len(want), ds)
	}
	var net, gross decimal.Decimal
	var netMessages int64
	for i, g := range ds {
		wl := want[i]
		if g.CustomerID != wl.customer || g.Day != wl.day || g.Market+"/"+g.Category != wl.key || g.Cause != wl.cause || g.Messages != wl.messages || !g.Amount.Equal(wl.amount) {
			t.Errorf("difference %d = %+v\nwant %+v", i, g, wl)
		}
		net = net.Add(wl.amount)
		netMessages += wl.messages
	}
	if rec.Lines != len(want) || rec.Messages != netMessages || !rec.Amount.Equal(net) {
		t.Errorf("totals: %d lines, %d messages, %s; want %d, %d, %s", rec.Lines, rec.Messages, rec.Amount, len(want), netMessages, net)
	}
	// Gross: per customer, so a customer's differences net out first.
	acme := mul("IN marketing", 4).Neg().Add(mul("IN marketing", 3)).Add(mul("IN utility", 3)).Abs()
	globex := mul("DE marketing", 2).Add(mul("DE marketing", 2)).Sub(mul("DE utility", 2)).Add(d("-0.015")).Abs()
	gross = acme.Add(globex).Add(mul("BR marketing", 6))
	if rec.GrossMessages != 1+2+6 || !rec.GrossAmount.Equal(gross) || rec.Customers != 3 {
		t.Errorf("gross %d messages, %s, %d customers; want 9, %s, 3", rec.GrossMessages, rec.GrossAmount, rec.Customers, gross)
	}
	var upMessages int64
	var upCost decimal.Decimal
	for i, f := range w.m.upstream {
		upMessages += f.n
		upCost = upCost.Add(w.m.cost(i))
	}
	if rec.UpstreamMessages != upMessages || !rec.UpstreamCost.Equal(upCost) || rec.PostageMessages != upMessages+netMessages || !rec.PostageCost.Sub(rec.UpstreamCost).Equal(net) {
		t.Errorf("sides: postage %d %s, upstream %d %s; want upstream %d %s", rec.PostageMessages, rec.PostageCost, rec.UpstreamMessages, rec.UpstreamCost, upMessages, upCost)
	}
	if rec.Report.DataPoints != 2*len(w.m.upstream) || rec.Report.Granularity != reconcile.HalfHour || rec.Report.ImportedBy != "finance@example" || rec.Report.Source != "meta-2026-10.csv" {
		t.Errorf("report = %+v", rec.Report)
	}
	// Per cause.
	causes := map[reconcile.Cause]reconcile.CauseTotal{}
	for _, c := range rec.Causes {
		causes[c.Cause] = c
	}
	for _, c := range []struct {
		cause    reconcile.Cause
		lines    int
		messages int64
	}{
		{reconcile.CauseNotMetered, 1, -4}, {reconcile.CauseNotDelivered, 1, 3}, {reconcile.CauseNotInUpstream, 1, 2},
		{reconcile.CauseFreeType, 1, 0}, {reconcile.CauseCategoryMapping, 2, 0}, {reconcile.CauseDayBoundary, 2, 0},
		{reconcile.CauseUnknownPhoneNumber, 1, -6}, {reconcile.CausePrice, 1, 0},
	} {
		if g := causes[c.cause]; g.Lines != c.lines || g.Messages != c.messages {
			t.Errorf("%s: %+v, want %d lines, %d messages", c.cause, g, c.lines, c.messages)
		}
	}
	// The numbers nobody has, with what each side counted.
	if len(rec.Unmapped) != 2 || rec.Unmapped[0].PhoneNumberID != "9999" || rec.Unmapped[0].UpstreamMessages != 6 || rec.Unmapped[0].PostageMessages != 0 ||
		rec.Unmapped[1].PhoneNumberID != "8888" || rec.Unmapped[1].UpstreamMessages != 2 || rec.Unmapped[1].PostageMessages != 2 {
		t.Errorf("unmapped = %+v", rec.Unmapped)
	}
	// Way over 0.5%: held.
	if !rec.Exceeds || rec.Status != reconcile.StatusHeld {
		t.Errorf("status %s exceeds %v, want held", rec.Status, rec.Exceeds)
	}

	// Pages and filters.
	page, next, err := w.svc.Differences(ctx, oct, reconcile.DiffFilter{Limit: 4})
	if err != nil || len(page) != 4 || next == 0 {
		t.Fatalf("page 1: %d, next %d, %v", len(page), next, err)
	}
	rest, next2, err := w.svc.Differences(ctx, oct, reconcile.DiffFilter{Limit: 1000, After: next})
	if err != nil || len(rest) != 6 || next2 != 0 || fmt.Sprint(rest[0]) != fmt.Sprint(ds[4]) {
		t.Errorf("page 2: %d, next %d, %v", len(rest), next2, err)
	}
	only, _, err := w.svc.Differences(ctx, oct, reconcile.DiffFilter{Cause: reconcile.CauseDayBoundary, Customer: "acme"})
	if err != nil || len(only) != 2 {
		t.Errorf("filtered: %+v %v", only, err)
	}
	if _, _, err := w.svc.Differences(ctx, oct, reconcile.DiffFilter{Cause: "weather"}); postage.ErrorCode(err) != postage.EINVALID {
		t.Errorf("bad cause: %v", err)
	}
}

// A held month blocks finalization until finance accepts the difference;
// the acceptance is recorded, covers smaller differences of the same
// report, and a new report needs its own.
func TestHoldAndAccept(t *testing.T) {
	w := setup(t)
	ctx := context.Background()
	imp := func(body string) *reconcile.Reconciliation {
		t.Helper()
		rec, err := w.svc.Import(ctx, reconcile.ImportRequest{Month: oct, Format: reconcile.FormatCSV, By: "finance", Body: strings.NewReader(body)})
		if err != nil {
			t.Fatal(err, postage.ErrorDetail(err))
		}
		return rec
	}
	hold := func() string {
		t.Helper()
		why, err := w.svc.FinalizationHold(ctx, oct)
		if err != nil {
			t.Fatal(err)
		}
		return why
	}
	if why := hold(); why != "" {
		t.Errorf("no report yet: held %q", why)
	}
	rec := imp(w.m.csv())
	if rec.Status != reconcile.StatusHeld || !strings.Contains(hold(), "finance must accept the difference") {
		t.Fatalf("status %s, hold %q", rec.Status, hold())
	}
	if why, _ := w.svc.FinalizationHold(ctx, oct.Next()); why != "" {
		t.Errorf("another month held: %q", why)
	}
	if _, err := w.svc.Accept(ctx, oct, "", "why not"); postage.ErrorCode(err) != postage.EINVALID {
		t.Errorf("accept without who: %v", err)
	}
	if _, err := w.svc.Accept(ctx, oct, "ana", " "); postage.ErrorCode(err) != postage.EINVALID {
		t.Errorf("accept without why: %v", err)
	}
	if _, err := w.svc.Accept(ctx, oct.Next(), "ana", "ok"); postage.ErrorCode(err) != postage.ENOTFOUND {
		t.Errorf("accept a month without report: %v", err)
	}
	acc, err := w.svc.Accept(ctx, oct, "ana (finance)", "Meta's report is missing the 4th; their support confirmed")
	if err != nil {
		t.Fatal(err)
	}
	if acc.Status != reconcile.StatusAccepted || len(acc.Acceptances) != 1 || acc.Acceptances[0].By != "ana (finance)" || !acc.Acceptances[0].At.Equal(now) ||
		acc.Acceptances[0].GrossMessages != rec.GrossMessages || !acc.Acceptances[0].GrossAmount.Equal(rec.GrossAmount) || hold() != "" {
		t.Errorf("accepted = %+v, hold %q", acc, hold())
	}
	// One of the four messages postage missed arrives late: the difference
	// shrinks and stays accepted.
	late := metering.Event{CustomerID: "acme", ID: "late-1", Time: oct.Start().AddDate(0, 0, 2).Add(5 * time.Hour), Country: "IN", Category: "marketing",
		PricingType: metering.PricingRegular, Source: "whatsapp", Status: metering.StatusDelivered, Quantity: 1, IngestedAt: now}
	if err := w.events.Insert(ctx, []metering.Event{late}); err != nil {
		t.Fatal(err)
	}
	again, err := w.svc.Compare(ctx, oct)
	if err != nil {
		t.Fatal(err)
	}
	if again.Status != reconcile.StatusAccepted || again.GrossMessages != rec.GrossMessages-1 || !again.GrossAmount.LessThan(rec.GrossAmount) || again.Lines != rec.Lines {
		t.Errorf("after the late events: %s, %d gross messages (was %d), %d lines", again.Status, again.GrossMessages, rec.GrossMessages, again.Lines)
	}
	// A new report of the month is a new reconciliation: held again.
	re := imp(w.m.csv())
	if re.Status != reconcile.StatusHeld || re.ReportID == rec.ReportID || len(re.Acceptances) != 0 || hold() == "" {
		t.Errorf("re-import: %s report %d acceptances %v", re.Status, re.ReportID, re.Acceptances)
	}
	// Mapping the unknown number and comparing again changes who it is.
	if _, err := w.customers.AddPhoneNumber(ctx, "globex", "9999"); err != nil {
		t.Fatal(err)
	}
	mapped, err := w.svc.Compare(ctx, oct)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range mapped.Causes {
		if c.Cause == reconcile.CauseUnknownPhoneNumber {
			t.Errorf("still unknown after mapping: %+v", c)
		}
	}
	if len(mapped.Unmapped) != 1 || mapped.Unmapped[0].PhoneNumberID != "8888" {
		t.Errorf("unmapped after mapping 9999: %+v", mapped.Unmapped)
	}
	// Within the tolerance, nothing is held.
	w.svc.TolerancePercent = d("50")
	if g, err := w.svc.Get(ctx, oct); err != nil || g.Status != reconcile.StatusWithinTolerance || hold() != "" {
		t.Errorf("50%% tolerance: %v %v", g.Status, err)
	}
	// With holding turned off, an exceeding month says so and holds nothing.
	w.svc.TolerancePercent, w.svc.Hold = reconcile.DefaultTolerancePercent, false
	if g, err := w.svc.Get(ctx, oct); err != nil || g.Status != reconcile.StatusExceedsTolerance || hold() != "" {
		t.Errorf("hold off: %v %v", g.Status, err)
	}
}

func TestImportRefusals(t *testing.T) {
	w := setup(t)
	ctx := context.Background()
	for _, r := range []reconcile.ImportRequest{
		{Month: oct, Format: "xml", By: "f", Body: strings.NewReader("")},
		{Month: oct, Format: reconcile.FormatCSV, By: "", Body: strings.NewReader("")},
		{Month: oct, Format: reconcile.FormatCSV, By: "f", Currency: "EUR", Body: strings.NewReader(w.m.csv())},
		{Month: oct, Format: reconcile.FormatCSV, By: "f", Currency: "XYZ", Body: strings.NewReader(w.m.csv())},
		{Month: oct.Next().Next(), Format: reconcile.FormatCSV, By: "f", Body: strings.NewReader("start,phone_number,country,pricing_category,volume,cost\n")},
		{Month: pricing.MustParseMonth("2025-12"), Format: reconcile.FormatCSV, By: "f", Body: strings.NewReader("start,phone_number,country,pricing_category,volume,cost\n")},
		{Month: oct, Format: reconcile.FormatCSV, By: "f", Body: strings.NewReader("start,phone_number,country,pricing_category,volume,cost\n2026-10-01,1001,IN,MARKETING,1,x\n")},
	} {
		if _, err := w.svc.Import(ctx, r); postage.ErrorCode(err) != postage.EINVALID {
			t.Errorf("%+v: %v, want invalid", r, err)
		}
	}
	if _, err := w.svc.Get(ctx, oct); postage.ErrorCode(err) != postage.ENOTFOUND {
		t.Errorf("nothing imported, yet: %v", err)
	}
	// The Graph API's JSON answer imports as the CSV does.
	var b strings.Builder
	b.WriteString(`{"pricing_analytics":{"data":[{"data_points":[`)
	for i, f := range w.m.upstream {
		if i > 0 {
			b.WriteString(",")
		}
		t0 := oct.Start().AddDate(0, 0, f.day-1).Unix()
		ptype := f.ptype
		if ptype == "" {
			ptype = "REGULAR"
		}
		fmt.Fprintf(&b, `{"start":%d,"end":%d,"phone_number":%q,"country":%q,"pricing_category":%q,"pricing_type":%q,"volume":%d,"cost":%s}`,
			t0, t0+86400, f.phone, f.country, strings.ToUpper(f.category), ptype, f.n, w.m.cost(i))
	}
	b.WriteString(`]}]},"id":"123"}`)
	rec, err := w.svc.Import(ctx, reconcile.ImportRequest{Month: oct, Format: reconcile.FormatJSON, By: "f", Body: strings.NewReader(b.String())})
	if err != nil {
		t.Fatal(err, postage.ErrorDetail(err))
	}
	if rec.Lines != 10 || rec.Report.Granularity != reconcile.Daily || rec.Report.Format != "json" {
		t.Errorf("json import: %d lines, %+v", rec.Lines, rec.Report)
	}
	var causes []string
	for _, c := range rec.Causes {
		causes = append(causes, string(c.Cause))
	}
	sort.Strings(causes)
	if len(causes) != 8 {
		t.Errorf("causes %v, want all eight", causes)
	}
}

// The upstream counts volume tiers per business portfolio, and so does
// postage's own cost: a portfolio's members are rated at cost together
// (billing's RateAtCost). Two members crossing a tier together and not
// alone agree with the upstream's pooled cost, with no price difference.
func TestPortfolioRatedAtCostTogether(t *testing.T) {
	w := setup(t)
	ctx := context.Background()
	sep := oct.Prev()
	upTo := int64(100)
	w.cards.Now = func() time.Time { return sep.Start() }
	if err := w.cards.CreateCard(ctx, pricing.RateCard{ID: "tiered", Name: "Tiered upstream", Currency: "USD", Kind: pricing.KindCost}); err != nil {
		t.Fatal(err)
	}
	v, err := w.cards.CreateDraft(ctx, &pricing.Version{
		CardID: "tiered", Status: pricing.StatusDraft, Currency: "USD", Rounding: pricing.RoundHalfEven, DefaultMarket: "Other",
		Countries:  map[string]string{"DE": "Germany"},
		Categories: []pricing.Category{{Name: "marketing"}},
		Prices: []pricing.Price{
			{Market: "Germany", Category: "marketing", Mode: pricing.ModeGraduated, Tiers: []pricing.Tier{
				{UpTo: &upTo, UnitPrice: d("0.10")}, {UnitPrice: d("0.05")}}},
			{Market: "Other", Category: "marketing", Mode: pricing.ModeFlat, UnitPrice: d("0.05")},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.cards.Activate(ctx, "tiered", v.Number, oct); err != nil {
		t.Fatal(err)
	}
	if err := w.cards.SetCostCard(ctx, "tiered", oct); err != nil {
		t.Fatal(err)
	}
	w.customers.Now = func() time.Time { return sep.Start() }
	for _, c := range []string{"p", "m1", "m2"} {
		if _, err := w.customers.Create(ctx, billing.Customer{ID: c, Name: c, Currency: "USD", Country: "DE"}); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []billing.PortfolioSetting{{CustomerID: "p", EffectiveFrom: oct}, {CustomerID: "m1", ParentID: "p", EffectiveFrom: oct}, {CustomerID: "m2", ParentID: "p", EffectiveFrom: oct}} {
		if _, err := w.customers.SetPortfolio(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	for c, p := range map[string]string{"m1": "3001", "m2": "3002"} {
		if _, err := w.customers.AddPhoneNumber(ctx, c, p); err != nil {
			t.Fatal(err)
		}
	}
	// 80 German marketing messages each on 1 October (160 together: 100
	// at 0.10 and 60 at 0.05 = 13.00, 6.50 each; alone each would cost 8.00).
	var evs []metering.Event
	for _, c := range []string{"m1", "m2"} {
		tm := oct.Start().Add(time.Hour)
		e := metering.Event{CustomerID: c, ID: "pf-" + c, Time: tm, Country: "DE", Category: "marketing",
			PricingType: metering.PricingRegular, PricingModel: "PMP", Source: "whatsapp", Status: metering.StatusDelivered, Quantity: 80, IngestedAt: tm.Add(time.Minute)}
		e.PayloadHash = metering.HashStatusPayload(e.Country, e.Category, e.Quantity, e.PricingType, e.PricingModel)
		evs = append(evs, e)
	}
	if err := w.events.Insert(ctx, evs); err != nil {
		t.Fatal(err)
	}
	csv := "start,phone_number,country,pricing_category,volume,cost\n2026-10-01,3001,DE,MARKETING,80,6.50\n2026-10-01,3002,DE,MARKETING,80,6.50\n"
	if _, err := w.svc.Import(ctx, reconcile.ImportRequest{Month: oct, Format: reconcile.FormatCSV, By: "f", Body: strings.NewReader(csv)}); err != nil {
		t.Fatal(err, postage.ErrorDetail(err))
	}
	for _, c := range []string{"m1", "m2"} {
		ds, _, err := w.svc.Differences(ctx, oct, reconcile.DiffFilter{Customer: c})
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) != 0 {
			t.Errorf("%s: %+v, want none (its cost rated with its portfolio's)", c, ds)
		}
	}
}
