package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/shopspring/decimal"

	"postage/internal/auth"
)

// TestDashboard signs in with each role's key on one seeded stack and
// checks every view against the API.
func TestDashboard(t *testing.T) {
	s := newStack(t)
	bctx, downloads := browserCtx(t)

	t.Run("js helpers", func(t *testing.T) { testJSHelpers(t, newTab(t, bctx, s.URL)) })
	t.Run("sign in", func(t *testing.T) { testSignIn(t, s, newTab(t, bctx, s.URL)) })
	t.Run("customer", func(t *testing.T) { testCustomer(t, s, newTab(t, bctx, s.URL), downloads) })
	t.Run("customer is fenced", func(t *testing.T) { testCustomerFenced(t, s, newTab(t, bctx, s.URL)) })
	t.Run("finance", func(t *testing.T) { testFinance(t, s, newTab(t, bctx, s.URL), downloads) })
	t.Run("sales", func(t *testing.T) { testSales(t, s, newTab(t, bctx, s.URL), downloads) })
	t.Run("margin", func(t *testing.T) { testMargin(t, s, newTab(t, bctx, s.URL), downloads) })
	t.Run("admin", func(t *testing.T) { testAdmin(t, s, newTab(t, bctx, s.URL)) })
	t.Run("narrow screen", func(t *testing.T) { testNarrow(t, s, newTab(t, bctx, s.URL)) })
}

// testJSHelpers unit-tests the pure helpers of format.js in the browser.
func testJSHelpers(t *testing.T, tb *tab) {
	tb.open("")
	tb.do(chromedp.WaitVisible(chromedp.ID("key")))
	tests := []struct{ expr, want string }{
		{`f.money("1234.5", "USD")`, "1,234.50 USD"},
		{`f.money("1234567", "JPY")`, "1,234,567 JPY"},
		{`f.money("0.1", "KWD")`, "0.100 KWD"},
		{`f.money("-12.00", "USD")`, "−12.00 USD"},
		{`f.money("-0.00", "USD")`, "0.00 USD"},
		{`f.unitPrice("0.084265", "USD")`, "0.084265 USD"},
		{`f.unitPrice("0.05", "USD")`, "0.05 USD"},
		{`f.count(1234567)`, "1,234,567"},
		{`f.count("18446744073709551615")`, "18,446,744,073,709,551,615"},
		{`f.addDecimal("0.1", "0.2")`, "0.3"},
		{`f.addDecimal("9007199254740993.01", "1")`, "9007199254740994.01"},
		{`f.addDecimal("-5.50", "2.25")`, "-3.25"},
		{`f.subDecimal("1", "1.005")`, "-0.005"},
		{`String(f.compareDecimal("10.5", "9.99"))`, "1"},
		{`String(f.compareDecimal("-1", "-0.5"))`, "-1"},
		{`String(f.compareDecimal("2.50", "2.5"))`, "0"},
		{`f.roundDecimal("2.345", 2)`, "2.34"},
		{`f.roundDecimal("2.355", 2)`, "2.36"},
		{`f.roundDecimal("-2.3451", 2)`, "-2.35"},
		{`f.percent("2.83")`, "+2.8 %"},
		{`f.percent("-45.40")`, "−45.4 %"},
		{`f.percent(null)`, "—"},
		{`f.signedMoney("12", "USD")`, "+12.00 USD"},
		{`f.monthName("2026-03")`, "March 2026"},
		{`f.shortDate("2026-03-05T10:00:00Z")`, "5 Mar 2026"},
		{`f.period(new Date(Date.UTC(2026, 0, 15)), -1)`, "2025-12"},
		{`JSON.stringify(f.monthRange("2026-12"))`, `{"from":"2026-12-01T00:00:00Z","to":"2027-01-01T00:00:00Z"}`},
		{`f.humanize("authentication_international")`, "Authentication international"},
		{`f.problemText(401, {code: "unauthorized", detail: "unknown API key"})`, "Your API key was not accepted. Unknown API key."},
		{`f.problemText(400, {code: "invalid", detail: "limit: an integer from 1 to 1000"})`, "Limit: an integer from 1 to 1000."},
		{`f.problemText(500, {code: "internal", detail: "internal error", request_id: "abc"})`, "Something went wrong on the server. Reference: abc."},
		{`f.problemText(0, null)`, "Could not reach the server. Check your connection and try again."},
		{`f.problemText(429, null)`, "The service is busy right now. Try again in a moment."},
		{`(s.setCountryNames([{code: "DE", name: "Germany"}]), s.countryName("DE"))`, "Germany"},
		{`s.countryName("Rest of Africa")`, "Rest of Africa"},
		{`s.countryName("")`, "Unknown"},
		{`s.categoryLabel("notification", ["marketing", "utility", "authentication_international"])`, "Notification — marketing, utility, authentication international"},
		{`s.categoryLabel("session", [])`, "Session"},
		{`JSON.stringify(s.lineMoney({amount: "330.40", discount: "5", list_amount: "347.79", discount_amount: "17.39"}))`, `{"list":"347.79","discount":"17.39","net":"330.40","known":true,"discounted":true}`},
		{`JSON.stringify(s.lineMoney({amount: "12.00"}))`, `{"list":"12.00","discount":"0","net":"12.00","known":true,"discounted":false}`},
		{`JSON.stringify(s.lineMoney({amount: "9.50", discount: "5"}))`, `{"list":null,"discount":null,"net":"9.50","known":false,"discounted":true}`},
		{`JSON.stringify(s.billTotals([{amount: "330.40", discount: "5", list_amount: "347.79", discount_amount: "17.39"}, {amount: "0.10"}, {amount: "0.00", free: true}]))`, `{"list":"347.89","discount":"17.39","net":"330.50","discounted":true,"known":true}`},
		{`String(s.summarise([{start:"2026-01-01T00:00:00Z",country:"DE",category:"marketing",quantity:2},{start:"2026-01-02T00:00:00Z",country:"FR",category:"marketing",quantity:3}]).total)`, "5"},
		{`JSON.stringify(s.moneyTotals([{currency:"USD",total:"1.10"},{currency:"EUR",total:"2"},{currency:"USD",total:"0.90"}]))`, `[{"currency":"EUR","amount":"2","count":1},{"currency":"USD","amount":"2.00","count":2}]`},
	}
	for _, tt := range tests {
		expr := fmt.Sprintf(`Promise.all([import("/js/format.js"), import("/js/shapes.js")]).then(([f, s]) => %s)`, tt.expr)
		if got := eval[string](tb, expr); got != tt.want {
			t.Errorf("%s = %q, want %q", tt.expr, got, tt.want)
		}
	}
}

func testSignIn(t *testing.T, s *stack, tb *tab) {
	tb.open("")
	tb.do(chromedp.WaitVisible(chromedp.ID("key")))
	tb.shot("01-sign-in")
	tb.do(chromedp.SendKeys(chromedp.ID("key"), "pst_aaaaaaaaaaaa_"+strings.Repeat("x", 43)))
	tb.submit("form.signin-form")
	tb.do(chromedp.WaitVisible(chromedp.CSS("#signin-error:not(:empty)")))
	if got, want := tb.text("#signin-error"), "Your API key was not accepted."; !strings.HasPrefix(got, want) {
		t.Errorf("error = %q, want it to start with %q", got, want)
	}
	tb.shot("02-sign-in-rejected")
	if stored := eval[string](tb, `sessionStorage.getItem("postage.apiKey") || ""`); stored != "" {
		t.Errorf("a rejected key was stored: %q", stored)
	}
	// A good key is kept in sessionStorage only, never in the address.
	tb.do(chromedp.Clear(chromedp.ID("key")))
	tb.do(chromedp.SendKeys(chromedp.ID("key"), s.Keys[auth.RoleFinance]))
	tb.submit("form.signin-form")
	tb.do(chromedp.WaitVisible(chromedp.ID("signout")))
	if got := eval[string](tb, `sessionStorage.getItem("postage.apiKey")`); got != s.Keys[auth.RoleFinance] {
		t.Errorf("sessionStorage key = %q", got)
	}
	if href := eval[string](tb, `location.href`); strings.Contains(href, "pst_") {
		t.Errorf("the key is in the address: %s", href)
	}
	if ls := eval[float64](tb, `localStorage.length`); ls != 0 {
		t.Errorf("localStorage has %v items; the key must not persist", ls)
	}
	tb.do(chromedp.Click(chromedp.ID("signout")), chromedp.WaitVisible(chromedp.ID("key")))
	if got := eval[string](tb, `sessionStorage.getItem("postage.apiKey") || ""`); got != "" {
		t.Errorf("sign out kept the key")
	}
}

// usageTotals asks the API what the business view's default range (the
// last 30 days) holds.
func usageTotals(t *testing.T, s *stack, key, customer string) (total int, byCountry map[string]int) {
	t.Helper()
	now := time.Now().UTC()
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	return usageBetween(t, s, key, customer, today.AddDate(0, 0, -29), today.AddDate(0, 0, 1))
}

// usageBetween asks the API for a customer's usage in [from, to).
func usageBetween(t *testing.T, s *stack, key, customer string, from, to time.Time) (total int, byCountry map[string]int) {
	t.Helper()
	q := url.Values{
		"from": {from.Format(time.RFC3339)}, "to": {to.Format(time.RFC3339)},
		"window": {"day"}, "group_by": {"country,category"},
	}
	var resp struct {
		Data []struct {
			Country  string `json:"country"`
			Quantity int    `json:"quantity"`
		} `json:"data"`
	}
	s.mustKey(t, key, "GET", "/api/v1/customers/"+customer+"/usage?"+q.Encode(), nil, http.StatusOK, &resp)
	byCountry = map[string]int{}
	for _, r := range resp.Data {
		total += r.Quantity
		byCountry[r.Country] += r.Quantity
	}
	return total, byCountry
}

func testCustomer(t *testing.T, s *stack, tb *tab, downloads string) {
	tb.signIn(s.Keys[auth.RoleCustomer])
	tb.do(chromedp.WaitVisible(chromedp.ID("kpi-messages")))
	if h := eval[string](tb, `location.hash`); h != "#/business" {
		t.Errorf("customer landed on %q, want #/business", h)
	}
	if got, want := tb.texts("nav.tabs a"), navFor(t, s, s.Keys[auth.RoleCustomer], "acme"); !slices.Equal(got, want) || !slices.Equal(got, []string{"Usage & bill"}) {
		t.Errorf("customer navigation = %q, the API allows %q: want only the business view", got, want)
	}
	if got := tb.text(".page-head h1"); got != "Acme Retail GmbH" {
		t.Errorf("heading = %q", got)
	}
	total, byCountry := usageTotals(t, s, s.Keys[auth.RoleCustomer], "acme")
	if total == 0 {
		t.Fatal("the API reports no usage for acme: seeding failed")
	}
	if got, want := tb.text("#kpi-messages"), group(total); got != want {
		t.Errorf("messages shown %q, API says %q", got, want)
	}
	tb.do(chromedp.WaitVisible(chromedp.CSS("#by-country tbody tr")))
	rows := eval[[][]string](tb, `[...document.querySelectorAll("#by-country tbody tr")].map(tr => [...tr.cells].map(td => td.textContent.trim()))`)
	if len(rows) != len(byCountry) {
		t.Errorf("country rows = %d, API has %d countries", len(rows), len(byCountry))
	}
	for _, r := range rows {
		code := r[0][len(r[0])-2:]
		if got, want := r[1], group(byCountry[code]); got != want {
			t.Errorf("country %s: shown %s, API %s", code, got, want)
		}
	}
	// Month-to-date bill equals the API's upcoming invoice.
	var upcoming struct {
		Total    string `json:"total"`
		Currency string `json:"currency"`
	}
	s.mustJSON(t, auth.RoleCustomer, "GET", "/api/v1/customers/acme/invoices/upcoming", nil, http.StatusOK, &upcoming)
	if got, want := tb.text("#mtd-total"), money(upcoming.Total, upcoming.Currency); got != want {
		t.Errorf("month-to-date bill shown %q, API %q", got, want)
	}
	checkBill(t, s, tb, s.Keys[auth.RoleCustomer], "acme")
	// Country names are the API's, one source for every page.
	if got := eval[string](tb, `import("/js/shapes.js").then((s) => s.countryName("TR"))`); got != countryNames(t, s)["TR"] || got != "Turkey" {
		t.Errorf("the page names TR %q, the API %q", got, countryNames(t, s)["TR"])
	}
	// Categories keep their colours: marketing is the same blue for every
	// customer and range.
	checkCategoryColors(t, tb)
	// Invoices: the rows the API lists, with working downloads.
	var invoices struct {
		Data []struct {
			ID, Number, Status, Total, Currency string
		} `json:"data"`
	}
	s.mustJSON(t, auth.RoleCustomer, "GET", "/api/v1/customers/acme/invoices", nil, http.StatusOK, &invoices)
	if len(invoices.Data) == 0 {
		tb.do(chromedp.WaitVisible(chromedp.CSS("#invoices .state.empty")))
	} else {
		tb.do(chromedp.WaitVisible(chromedp.CSS("#invoices tbody tr")))
		if got := tb.texts("#invoices tbody tr"); len(got) != len(invoices.Data) {
			t.Errorf("invoice rows = %d, API %d", len(got), len(invoices.Data))
		}
		inv := invoices.Data[0]
		if got, want := tb.text(fmt.Sprintf(`#invoices tr[data-invoice=%q] td[data-col="total"]`, inv.ID)), money(inv.Total, inv.Currency); got != want {
			t.Errorf("invoice total shown %q, API %q", got, want)
		}
		tb.do(chromedp.Click(chromedp.CSS(fmt.Sprintf(`#invoices tr[data-invoice=%q] button[data-download="csv"]`, inv.ID))))
		name := inv.Number
		if name == "" {
			name = inv.ID
		}
		_, body, hdr := s.call(t, s.Keys[auth.RoleCustomer], "GET", "/api/v1/invoices/"+inv.ID+".csv", nil, "")
		if cd := hdr.Get("Content-Disposition"); strings.Contains(cd, "filename=") {
			name = strings.Trim(strings.SplitN(cd, "filename=", 2)[1], `"`)
		} else {
			name += ".csv"
		}
		if got := waitFile(t, downloads, name); string(got) != string(body) {
			t.Errorf("downloaded CSV differs from the API's (%d vs %d bytes)", len(got), len(body))
		}
		tb.do(chromedp.Click(chromedp.CSS(fmt.Sprintf(`#invoices tr[data-invoice=%q] button[data-download="pdf"]`, inv.ID))))
		if got := waitFile(t, downloads, strings.TrimSuffix(name, ".csv")+".pdf"); !strings.HasPrefix(string(got), "%PDF-") {
			t.Errorf("the PDF download is not a PDF: %.20q", got)
		}
	}
	// The usage CSV download is the API's CSV of the same range.
	tb.do(chromedp.Click(chromedp.ID("usage-csv")))
	if got := waitFile(t, downloads, "usage-acme.csv"); !strings.Contains(string(got), "DE") {
		t.Errorf("usage CSV has no German rows: %.200s", got)
	}
	tb.shot("10-business-customer")
	// This month: the figures follow the range; the bill stays.
	now := time.Now().UTC()
	monthTotal, _ := usageBetween(t, s, s.Keys[auth.RoleCustomer], "acme",
		time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC), time.Date(now.Year(), now.Month(), now.Day()+1, 0, 0, 0, 0, time.UTC))
	tb.do(chromedp.Click(chromedp.CSS(`.seg[data-range="mtd"]`)))
	tb.waitText("#kpi-messages", group(monthTotal))
	tb.waitText("#kpi-bill .kpi-value", money(upcoming.Total, upcoming.Currency))
	tb.do(chromedp.Click(chromedp.CSS(`.seg[data-range="30d"]`)))
	tb.waitText("#kpi-messages", group(total))
	// Sorting the country table by name puts it in alphabetical order.
	tb.do(chromedp.Click(chromedp.CSS(`#by-country th button[data-key="key"]`)))
	names := eval[[]string](tb, `[...document.querySelectorAll("#by-country tbody tr td:first-child")].map(td => td.firstChild.textContent)`)
	if !slices.IsSorted(names) {
		t.Errorf("sorted by country: %q", names)
	}
	// Last 90 days: other rankings, the same colours.
	tb.do(chromedp.Click(chromedp.CSS(`.seg[data-range="90d"]`)))
	tb.waitText("#kpi-messages", group(usage90(t, s, s.Keys[auth.RoleCustomer], "acme")))
	checkCategoryColors(t, tb)
	// A failed load says so in the figures it feeds, not "…" for ever.
	eval[bool](tb, `(window.realFetch = window.fetch, window.fetch = (u, o) => String(u).includes("/usage") ? Promise.reject(new TypeError("offline")) : window.realFetch(u, o), true)`)
	tb.do(chromedp.Click(chromedp.CSS(`.seg[data-range="30d"]`)),
		chromedp.WaitVisible(chromedp.ID("kpi-messages-failed")), chromedp.WaitVisible(chromedp.CSS(".usage-area .state.error")))
	if n := eval[float64](tb, `[...document.querySelectorAll("#business-kpis .kpi-value")].filter(e => e.textContent.trim() === "…").length`); n != 0 {
		t.Errorf("%v figures still show … after the load failed", n)
	}
	tb.shot("12-business-load-failed")
	eval[bool](tb, `(window.fetch = window.realFetch, true)`)
	tb.do(chromedp.Click(chromedp.CSS(".usage-area .state.error button")), chromedp.WaitVisible(chromedp.ID("kpi-messages")))
	tb.waitText("#kpi-messages", group(total))
	// An invoice's own page: its lines add up to the API's totals.
	if len(invoices.Data) > 0 {
		inv := invoices.Data[0]
		tb.follow(fmt.Sprintf(`#invoices tr[data-invoice=%q] a.invoice-link`, inv.ID))
		tb.do(chromedp.WaitVisible(chromedp.ID("invoice-total")))
		checkInvoicePage(t, s, tb, s.Keys[auth.RoleCustomer], inv.ID)
		tb.shot("13-invoice-customer")
	}
}

// apiLine is an invoice or quote line as the API answers it.
type apiLine struct {
	Kind              string   `json:"kind"`
	Market            string   `json:"market"`
	Category          string   `json:"category"`
	MessageCategories []string `json:"message_categories"`
	Quantity          int64    `json:"quantity"`
	Discount          string   `json:"discount"`
	ListAmount        string   `json:"list_amount"`
	DiscountAmount    string   `json:"discount_amount"`
	Amount            string   `json:"amount"`
}

// lineSums adds up lines' list prices, discounts and amounts as the API
// states them (an undiscounted line's list price is its amount).
func lineSums(lines []apiLine) (list, disc, net decimal.Decimal, discounted bool) {
	for _, l := range lines {
		a := decimal.RequireFromString(l.Amount)
		net = net.Add(a)
		if l.ListAmount == "" {
			list = list.Add(a)
			continue
		}
		discounted = true
		list = list.Add(decimal.RequireFromString(l.ListAmount))
		if l.DiscountAmount != "" {
			disc = disc.Add(decimal.RequireFromString(l.DiscountAmount))
		}
	}
	return list, disc, net, discounted
}

// shownMoney reads "−1,234.50 USD" as a decimal.
func shownMoney(t *testing.T, s string) decimal.Decimal {
	t.Helper()
	f := strings.Fields(strings.ReplaceAll(strings.ReplaceAll(s, "−", "-"), ",", ""))
	if len(f) == 0 {
		t.Fatalf("no amount in %q", s)
	}
	d, err := decimal.NewFromString(f[0])
	if err != nil {
		t.Fatalf("amount %q: %v", s, err)
	}
	return d
}

// checkBill compares the month-to-date bill on the page with the API's:
// every line shown reads list − discount = net, the totals are the API's,
// and categories say what the messages were sent as.
func checkBill(t *testing.T, s *stack, tb *tab, key, customer string) {
	t.Helper()
	var up struct {
		Total    string    `json:"total"`
		Currency string    `json:"currency"`
		Lines    []apiLine `json:"lines"`
	}
	s.mustKey(t, key, "GET", "/api/v1/customers/"+customer+"/invoices/upcoming", nil, http.StatusOK, &up)
	list, disc, net, discounted := lineSums(up.Lines)
	if !discounted {
		t.Fatalf("%s's month-to-date bill has no discounted line: the test needs one", customer)
	}
	foot := func(col string) decimal.Decimal {
		return shownMoney(t, tb.text(fmt.Sprintf(`#mtd-bill tfoot td[data-col=%q]`, col)))
	}
	if !foot("list").Equal(list) || !foot("discount_amount").Equal(disc.Neg()) || !foot("amount").Equal(net) || net.StringFixed(2) != up.Total {
		t.Errorf("bill totals shown %s − %s = %s, API %s − %s = %s (total %s)", foot("list"), foot("discount_amount"), foot("amount"), list, disc, net, up.Total)
	}
	if got := shownMoney(t, tb.text("#mtd-bill .sum-list")); !got.Equal(list) {
		t.Errorf("list price shown %s, API %s", got, list)
	}
	rows := eval[[][]string](tb, `[...document.querySelectorAll("#mtd-bill tbody tr")].map(tr => ["list", "discount_amount", "amount", "category"].map(c => tr.querySelector('[data-col="' + c + '"]').textContent.replace(/\s+/g, " ").trim()))`)
	if len(rows) == 0 {
		t.Fatal("no bill rows")
	}
	for _, r := range rows {
		if r[1] == "—" {
			if r[0] != r[2] {
				t.Errorf("undiscounted row: list %s, amount %s", r[0], r[2])
			}
			continue
		}
		if l, d, n := shownMoney(t, r[0]), shownMoney(t, r[1]), shownMoney(t, r[2]); !l.Add(d).Equal(n) {
			t.Errorf("row %q: %s − %s ≠ %s", r, l, d.Neg(), n)
		}
	}
	want := map[string]bool{}
	for _, l := range up.Lines {
		label := strings.ToUpper(l.Category[:1]) + strings.ReplaceAll(l.Category[1:], "_", " ")
		if len(l.MessageCategories) > 0 {
			label += " — " + strings.ReplaceAll(strings.Join(l.MessageCategories, ", "), "_", " ")
		}
		want[label] = true
	}
	for _, r := range rows {
		if !want[r[3]] {
			t.Errorf("category %q is none of the API's %v", r[3], want)
		}
	}
	if !want["Notification — marketing, utility"] {
		t.Errorf("the API's categories %v lack the line billing marketing and utility as notification", want)
	}
}

// checkInvoicePage compares the invoice page on screen with the API's
// invoice: total, lines, list price and discounts.
func checkInvoicePage(t *testing.T, s *stack, tb *tab, key, id string) {
	t.Helper()
	var inv struct {
		Total, Currency string
		Number          string    `json:"number"`
		Lines           []apiLine `json:"lines"`
	}
	s.mustKey(t, key, "GET", "/api/v1/invoices/"+id, nil, http.StatusOK, &inv)
	if got, want := tb.text("#invoice-total"), money(inv.Total, inv.Currency); got != want {
		t.Errorf("invoice total shown %q, API %q", got, want)
	}
	var usage []apiLine
	for _, l := range inv.Lines {
		if l.Kind != "adjustment" {
			usage = append(usage, l)
		}
	}
	if n := len(tb.texts("#invoice-lines tbody tr")); n != len(usage) {
		t.Errorf("invoice page shows %d lines, API %d", n, len(usage))
	}
	list, disc, net, discounted := lineSums(usage)
	if discounted {
		if got := shownMoney(t, tb.text("#invoice-totals .sum-list")); !got.Equal(list) {
			t.Errorf("invoice list price %s, API %s", got, list)
		}
		if got := shownMoney(t, tb.text("#invoice-totals .sum-discount")); !got.Equal(disc.Neg()) {
			t.Errorf("invoice discounts %s, API %s", got, disc)
		}
	}
	if got := shownMoney(t, tb.text("#invoice-totals .sum-subtotal")); !got.Equal(net) {
		t.Errorf("invoice subtotal %s, API lines %s", got, net)
	}
}

// wantColors are the categories' colours: fixed, whatever the ranking.
var wantColors = map[string]string{"Marketing": "#3056d3", "Utility": "#13a89e", "Authentication": "#f59f00", "Service": "#7048e8"}

// checkCategoryColors checks the usage chart's and the category
// doughnut's colours against wantColors.
func checkCategoryColors(t *testing.T, tb *tab) {
	t.Helper()
	tb.do(chromedp.WaitVisible(chromedp.CSS("#usage-chart canvas")), chromedp.WaitVisible(chromedp.CSS("#by-category canvas")))
	bars := eval[[][]string](tb, `Chart.getChart(document.querySelector("#usage-chart canvas")).data.datasets.map(d => [d.label, d.backgroundColor])`)
	pie := eval[[][]string](tb, `(() => { const d = Chart.getChart(document.querySelector("#by-category canvas")).data; return d.labels.map((l, i) => [l, d.datasets[0].backgroundColor[i]]); })()`)
	if len(bars) == 0 || len(pie) == 0 {
		t.Fatalf("no category series: %v %v", bars, pie)
	}
	for _, lc := range append(bars, pie...) {
		if want, ok := wantColors[lc[0]]; ok && lc[1] != want {
			t.Errorf("category %s drawn in %s, want %s", lc[0], lc[1], want)
		}
	}
}

// usage90 is a customer's usage over the business view's last 90 days.
func usage90(t *testing.T, s *stack, key, customer string) int {
	t.Helper()
	now := time.Now().UTC()
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	n, _ := usageBetween(t, s, key, customer, today.AddDate(0, 0, -89), today.AddDate(0, 0, 1))
	return n
}

// countryNames are the API's country names.
func countryNames(t *testing.T, s *stack) map[string]string {
	t.Helper()
	var resp struct {
		Data []struct{ Code, Name string } `json:"data"`
	}
	s.mustJSON(t, auth.RoleCustomer, "GET", "/api/v1/countries", nil, http.StatusOK, &resp)
	m := map[string]string{}
	for _, c := range resp.Data {
		m[c.Code] = c.Name
	}
	return m
}

// navFor asks the API what a key may do and returns the tabs the page
// must show for it: the business view when it may read a customer's usage
// ("Usage & bill" when also its month-to-date bill), finance when it may
// list invoices, sales when it may quote or simulate.
func navFor(t *testing.T, s *stack, key, customer string) []string {
	t.Helper()
	ok := func(method, path string, body any) bool {
		status, _, _ := s.call(t, key, method, path, body, "")
		return status == http.StatusOK
	}
	var tabs []string
	if ok("GET", "/api/v1/customers/"+customer+"/usage?window=month", nil) {
		if ok("GET", "/api/v1/customers/"+customer+"/invoices/upcoming", nil) {
			tabs = append(tabs, "Usage & bill")
		} else {
			tabs = append(tabs, "Usage")
		}
	}
	if ok("GET", "/api/v1/invoices?limit=1", nil) {
		tabs = append(tabs, "Finance")
	}
	if ok("GET", "/api/v1/receivables?limit=1", nil) {
		tabs = append(tabs, "Receivables")
	}
	last := time.Now().UTC().AddDate(0, -1, 0).Format("2006-01")
	if ok("POST", "/api/v1/quotes", map[string]any{"items": []map[string]any{{"country": "DE", "category": "marketing", "quantity": 1}}}) ||
		ok("POST", "/api/v1/simulations", map[string]any{"card_id": "launch", "from": last, "to": last, "customers": []string{customer}}) {
		tabs = append(tabs, "Sales")
	}
	if ok("GET", "/api/v1/reports/margin?month="+last+"&customer="+customer, nil) {
		tabs = append(tabs, "Margin")
	}
	return tabs
}

func testCustomerFenced(t *testing.T, s *stack, tb *tab) {
	tb.signIn(s.Keys[auth.RoleCustomer])
	for _, view := range []string{"finance", "sales", "margin"} {
		tb.open("#/" + view)
		tb.do(chromedp.WaitVisible(chromedp.ID("forbidden")))
		if n := eval[float64](tb, `document.querySelectorAll("#invoice-list, #sim-form, #quote-form, #margin-filters, #msim-form").length`); n != 0 {
			t.Errorf("the %s view drew its content for a customer key", view)
		}
		if got := tb.text("#forbidden strong"); !strings.Contains(got, "not available to customer keys") {
			t.Errorf("%s: message %q", view, got)
		}
	}
	tb.shot("11-customer-forbidden")
	// Another customer's page: the API answers not found and the page says so.
	tb.open("#/business/globex")
	tb.do(chromedp.WaitVisible(chromedp.ID("kpi-messages")))
	if got := tb.text(".page-head h1"); got != "Acme Retail GmbH" {
		t.Errorf("a customer key opened %q", got)
	}
	// The API refuses too, whatever the page does.
	key := s.Keys[auth.RoleCustomer]
	for _, c := range []struct {
		method, path string
		body         any
		want         int
	}{
		{"GET", "/api/v1/invoices", nil, http.StatusForbidden},
		{"POST", "/api/v1/simulations", map[string]any{"card_id": "launch", "from": "2026-01", "to": "2026-01"}, http.StatusForbidden},
		{"POST", "/api/v1/quotes", map[string]any{"items": []map[string]any{{"country": "DE", "category": "marketing", "quantity": 1}}}, http.StatusForbidden},
		{"GET", "/api/v1/reports/unbilled", nil, http.StatusForbidden},
		{"GET", "/api/v1/customers", nil, http.StatusForbidden},
		{"GET", "/api/v1/customers/globex", nil, http.StatusNotFound},
		{"GET", "/api/v1/customers/globex/usage?window=day", nil, http.StatusNotFound},
		{"GET", "/api/v1/customers/globex/invoices", nil, http.StatusNotFound},
	} {
		if got, b, _ := s.call(t, key, c.method, c.path, c.body, ""); got != c.want {
			t.Errorf("customer key %s %s: %d, want %d: %.200s", c.method, c.path, got, c.want, b)
		}
	}
}

func testFinance(t *testing.T, s *stack, tb *tab, downloads string) {
	// The projection moves with the clock (the elapsed share of the month),
	// so the page's figure is compared with the API's answers from just
	// before and just after the page asked.
	before := forecastTotals(t, s)
	tb.signIn(s.Keys[auth.RoleFinance])
	if h := eval[string](tb, `location.hash`); h != "#/finance" {
		t.Errorf("finance landed on %q", h)
	}
	if got, want := tb.texts("nav.tabs a"), navFor(t, s, s.Keys[auth.RoleFinance], "acme"); !slices.Equal(got, want) {
		t.Errorf("finance navigation = %q, the API allows %q", got, want)
	}
	period := time.Now().UTC().AddDate(0, -1, 0).Format("2006-01")
	var list struct {
		Data []struct {
			ID, Number, Status, Total, Currency string
			CustomerID                          string `json:"customer_id"`
		} `json:"data"`
	}
	s.mustJSON(t, auth.RoleFinance, "GET", "/api/v1/invoices?period="+period+"&limit=200", nil, http.StatusOK, &list)
	tb.do(chromedp.WaitVisible(chromedp.CSS("#invoice-list table, #invoice-list .state")))
	if len(list.Data) == 0 {
		t.Errorf("no invoices for %s: the seeded stack should have some", period)
	} else {
		if got, want := tb.text("#kpi-invoices"), group(len(list.Data)); got != want {
			t.Errorf("invoices shown %s, API %s", got, want)
		}
		for _, inv := range list.Data {
			sel := fmt.Sprintf(`#invoice-list tr[data-invoice=%q] td[data-col="total"]`, inv.ID)
			if got, want := tb.text(sel), money(inv.Total, inv.Currency); got != want {
				t.Errorf("invoice %s total shown %q, API %q", inv.ID, got, want)
			}
		}
	}
	tb.do(chromedp.WaitVisible(chromedp.CSS("#unbilled table, #unbilled .state")))
	// The revenue overview shows the forecast's figures.
	after := forecastTotals(t, s)
	if got, want := tb.text("#kpi-mtd"), money(after.AmountToDate, after.Currency); got != want {
		t.Errorf("month to date shown %q, API %q", got, want)
	}
	// The projection falls as the month's elapsed share grows, second by
	// second: the page's figure lies between the API's before and after.
	got := tb.text("#kpi-projected")
	shown, err := decimal.NewFromString(strings.ReplaceAll(strings.TrimSuffix(got, " "+after.Currency), ",", ""))
	lo, hi := decimal.RequireFromString(after.ProjectedAmount), decimal.RequireFromString(before.ProjectedAmount)
	if lo.GreaterThan(hi) {
		lo, hi = hi, lo
	}
	if err != nil || shown.LessThan(lo) || shown.GreaterThan(hi) {
		t.Errorf("projection shown %q, API %s before and %s after", got, before.ProjectedAmount, after.ProjectedAmount)
	}
	tb.shot("20-finance")
	// Approve a draft, through the confirmation dialog.
	var draft string
	for _, inv := range list.Data {
		if inv.Status == "draft" {
			draft = inv.ID
			break
		}
	}
	if draft != "" {
		tb.do(chromedp.Click(chromedp.CSS(fmt.Sprintf(`tr[data-invoice=%q] button[data-action="approve"]`, draft))),
			chromedp.WaitVisible(chromedp.CSS("dialog.modal[open]")))
		tb.shotViewport("21-finance-approve-dialog")
		tb.do(chromedp.Click(chromedp.CSS(`dialog.modal button[data-confirm]`)),
			chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`tr[data-invoice=%q][data-status="finalized"]`, draft))))
		var got struct{ Status, Number string }
		s.mustJSON(t, auth.RoleFinance, "GET", "/api/v1/invoices/"+draft, nil, http.StatusOK, &got)
		if got.Status != "finalized" || got.Number == "" {
			t.Errorf("after approval the API says status %q number %q", got.Status, got.Number)
		}
		// Cancelling a void (with the required reason empty) closes the
		// dialog and changes nothing.
		tb.do(chromedp.Click(chromedp.CSS(fmt.Sprintf(`tr[data-invoice=%q] button[data-action="void"]`, draft))),
			chromedp.WaitVisible(chromedp.CSS("dialog.modal[open]")),
			chromedp.Click(chromedp.CSS(`dialog.modal button[value="cancel"]`)),
			chromedp.WaitNotPresent(chromedp.CSS("dialog.modal")))
		s.mustJSON(t, auth.RoleFinance, "GET", "/api/v1/invoices/"+draft, nil, http.StatusOK, &got)
		if got.Status != "finalized" {
			t.Errorf("after a cancelled void the API says %q", got.Status)
		}
		// Void it, after confirming.
		tb.do(chromedp.Click(chromedp.CSS(fmt.Sprintf(`tr[data-invoice=%q] button[data-action="void"]`, draft))),
			chromedp.WaitVisible(chromedp.CSS("dialog.modal[open]")),
			chromedp.SendKeys(chromedp.ID("void-reason"), "wrong customer address"))
		tb.shotViewport("22-finance-void-dialog")
		tb.do(chromedp.Click(chromedp.CSS(`dialog.modal button[data-confirm]`)),
			chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`tr[data-invoice=%q][data-status="void"]`, draft))))
		s.mustJSON(t, auth.RoleFinance, "GET", "/api/v1/invoices/"+draft, nil, http.StatusOK, &got)
		if got.Status != "void" {
			t.Errorf("after voiding the API says status %q", got.Status)
		}
	} else {
		t.Errorf("no draft invoice to approve")
	}
	// Approve every remaining draft at once.
	var drafts struct {
		Data []struct{ ID string } `json:"data"`
	}
	s.mustJSON(t, auth.RoleFinance, "GET", "/api/v1/invoices?status=draft&period="+period, nil, http.StatusOK, &drafts)
	if len(drafts.Data) < 2 {
		t.Fatalf("want several drafts left, have %d", len(drafts.Data))
	}
	tb.do(chromedp.Click(chromedp.ID("approve-all")), chromedp.WaitVisible(chromedp.CSS("dialog.modal[open]")))
	tb.shotViewport("25-finance-approve-all")
	tb.do(chromedp.Click(chromedp.CSS(`dialog.modal button[data-confirm]`)),
		chromedp.WaitNotPresent(chromedp.CSS(`#invoice-list tr[data-status="draft"]`)))
	s.mustJSON(t, auth.RoleFinance, "GET", "/api/v1/invoices?status=draft&period="+period, nil, http.StatusOK, &drafts)
	if len(drafts.Data) != 0 {
		t.Errorf("%d drafts left after approving all", len(drafts.Data))
	}
	// The period export downloads the API's CSV.
	tb.do(chromedp.Click(chromedp.ID("export")))
	_, body, _ := s.call(t, s.Keys[auth.RoleFinance], "GET", "/api/v1/invoices.csv?period="+period, nil, "text/csv")
	if got := waitFile(t, downloads, "invoices-"+period+".csv"); len(got) == 0 || string(got) != string(body) {
		t.Errorf("export differs from the API's (%d vs %d bytes)", len(got), len(body))
	}
	// Finance may open any customer's business view.
	tb.open("#/business/initech")
	tb.do(chromedp.WaitVisible(chromedp.ID("kpi-messages")))
	total, _ := usageTotals(t, s, s.Keys[auth.RoleFinance], "initech")
	if got, want := tb.text("#kpi-messages"), group(total); got != want {
		t.Errorf("initech messages shown %q, API %q", got, want)
	}
	tb.shot("23-finance-business-initech")
	// A failed month-to-date bill marks its figure.
	eval[bool](tb, `(window.realFetch = window.fetch, window.fetch = (u, o) => String(u).includes("/invoices/upcoming") ? Promise.reject(new TypeError("offline")) : window.realFetch(u, o), true)`)
	tb.open("#/business/umbrella")
	tb.do(chromedp.WaitVisible(chromedp.CSS("#kpi-bill.failed")), chromedp.WaitVisible(chromedp.CSS("#mtd-bill .state.error")), chromedp.WaitVisible(chromedp.ID("kpi-messages")))
	if got := tb.text("#kpi-bill .kpi-value"); got != "unavailable" {
		t.Errorf("failed bill figure shows %q", got)
	}
	eval[bool](tb, `(window.fetch = window.realFetch, true)`)
	// A customer of a few messages a day: whole numbers on every count axis.
	tb.open("#/business/tiny")
	tb.do(chromedp.WaitVisible(chromedp.CSS("#usage-chart canvas")), chromedp.WaitVisible(chromedp.CSS("#by-country canvas")))
	for _, c := range []struct{ chart, axis string }{{"#usage-chart", "y"}, {"#by-country", "x"}} {
		ticks := eval[[]float64](tb, fmt.Sprintf(`Chart.getChart(document.querySelector("%s canvas")).scales.%s.ticks.map(t => t.value)`, c.chart, c.axis))
		if len(ticks) < 2 {
			t.Errorf("%s: ticks %v", c.chart, ticks)
		}
		for _, v := range ticks {
			if v != float64(int64(v)) {
				t.Errorf("%s shows a fractional message count %v (ticks %v)", c.chart, v, ticks)
				break
			}
		}
	}
	tb.shot("27-business-small-counts")
	// An invoice's page from the finance list: acme's, with its discounts.
	var acmeInv struct {
		Data []struct{ ID string } `json:"data"`
	}
	s.mustJSON(t, auth.RoleFinance, "GET", "/api/v1/invoices?customer=acme&status=finalized", nil, http.StatusOK, &acmeInv)
	if len(acmeInv.Data) == 0 {
		t.Fatal("acme has no finalized invoice")
	}
	tb.open("#/finance")
	tb.do(chromedp.SetValue(chromedp.ID("f-customer"), "acme"), chromedp.SetValue(chromedp.ID("f-period"), ""))
	tb.submit("form.filters")
	tb.follow(fmt.Sprintf(`#invoice-list tr[data-invoice=%q] a.invoice-link`, acmeInv.Data[0].ID))
	tb.do(chromedp.WaitVisible(chromedp.ID("invoice-total")))
	checkInvoicePage(t, s, tb, s.Keys[auth.RoleFinance], acmeInv.Data[0].ID)
	if n := len(tb.texts(`#invoice-lines th button[data-key="discount_amount"]`)); n != 1 {
		t.Errorf("acme's invoice shows no discount column")
	}
	tb.shot("28-invoice-finance")
	// A customer without traffic: every section says so.
	tb.open("#/business/hooli")
	tb.do(chromedp.WaitVisible(chromedp.CSS(".usage-area .state.empty")),
		chromedp.WaitVisible(chromedp.CSS("#invoices .state.empty")),
		chromedp.WaitVisible(chromedp.CSS("#mtd-bill .state.empty")))
	if got := tb.text("#kpi-messages"); got != "0" {
		t.Errorf("hooli messages = %q", got)
	}
	tb.shot("24-business-no-traffic")
}

func testSales(t *testing.T, s *stack, tb *tab, downloads string) {
	tb.signIn(s.Keys[auth.RoleSales])
	if h := eval[string](tb, `location.hash`); h != "#/sales" {
		t.Errorf("sales landed on %q", h)
	}
	want := navFor(t, s, s.Keys[auth.RoleSales], "acme")
	if got := tb.texts("nav.tabs a"); !slices.Equal(got, want) || !slices.Contains(got, "Sales") {
		t.Errorf("sales navigation = %q, the API allows %q", got, want)
	}
	tb.do(chromedp.WaitVisible(chromedp.ID("sim-form")))
	tb.shot("30-sales-empty")
	from := time.Now().UTC().AddDate(0, -3, 0).Format("2006-01")
	to := time.Now().UTC().AddDate(0, -1, 0).Format("2006-01")
	card := eval[string](tb, `document.getElementById("sim-card").value`)
	tb.do(chromedp.Click(chromedp.ID("sim-run")), chromedp.WaitVisible(chromedp.ID("sim-kpis")))
	var sim struct {
		Totals []struct {
			Currency, Current, Proposed, Difference string
		} `json:"totals"`
		Customers []struct {
			CustomerID string `json:"customer_id"`
			Difference string `json:"difference"`
		} `json:"customers"`
	}
	s.mustJSON(t, auth.RoleSales, "POST", "/api/v1/simulations", map[string]any{"card_id": card, "from": from, "to": to, "keep_overrides": true}, http.StatusOK, &sim)
	if len(sim.Totals) == 0 {
		t.Fatal("simulation has no totals")
	}
	tot := sim.Totals[0]
	for kpi, want := range map[string]string{"current": money(tot.Current, tot.Currency), "proposed": money(tot.Proposed, tot.Currency)} {
		if got := tb.text(fmt.Sprintf(`#sim-kpis [data-kpi=%q] .kpi-value`, kpi)); got != want {
			t.Errorf("%s shown %q, API %q", kpi, got, want)
		}
	}
	if got := len(tb.texts("#sim-customers-card tbody tr")); got != len(sim.Customers) {
		t.Errorf("simulation rows = %d, API %d", got, len(sim.Customers))
	}
	tb.shot("31-sales-simulation")
	// A form that is refused keeps no results that look current.
	tb.do(chromedp.SetValue(chromedp.ID("sim-from"), to), chromedp.SetValue(chromedp.ID("sim-to"), from))
	tb.submit("#sim-form")
	tb.do(chromedp.WaitVisible(chromedp.CSS("#sim-result.stale .stale-note")))
	if got := tb.text("#sim-result .stale-note"); !strings.HasPrefix(got, "Not run: the first month is after the last") {
		t.Errorf("stale note %q", got)
	}
	tb.shot("35-sales-simulation-stale")
	tb.do(chromedp.SetValue(chromedp.ID("sim-from"), from), chromedp.SetValue(chromedp.ID("sim-to"), to))
	// The CSV download is the API's CSV of the same simulation.
	tb.do(chromedp.Click(chromedp.ID("sim-csv")))
	req := map[string]any{"card_id": card, "from": from, "to": to, "customers": []string{}, "keep_overrides": true, "breakdown": false}
	_, csvBody, hdr := s.call(t, s.Keys[auth.RoleSales], "POST", "/api/v1/simulations?format=csv", req, "text/csv")
	name := strings.Trim(strings.SplitN(hdr.Get("Content-Disposition"), "filename=", 2)[1], `"`)
	if got := waitFile(t, downloads, name); string(got) != string(csvBody) {
		t.Errorf("simulation CSV differs from the API's (%d vs %d bytes)", len(got), len(csvBody))
	}
	// Sorting by current revenue, ascending then descending.
	tb.do(chromedp.Click(chromedp.CSS(`#sim-customers-card th button[data-key="current"]`)))
	desc := eval[[]string](tb, `[...document.querySelectorAll('#sim-customers-card tbody td[data-col="current"]')].map(td => td.textContent.replace(/[^0-9.\-]/g, ''))`)
	if !slices.IsSortedFunc(desc, func(a, b string) int { return cmpDec(b, a) }) {
		t.Errorf("current, descending: %q", desc)
	}
	tb.do(chromedp.Click(chromedp.CSS(`#sim-customers-card th button[data-key="current"]`)))
	asc := eval[[]string](tb, `[...document.querySelectorAll('#sim-customers-card tbody td[data-col="current"]')].map(td => td.textContent.replace(/[^0-9.\-]/g, ''))`)
	if !slices.IsSortedFunc(asc, cmpDec) {
		t.Errorf("current, ascending: %q", asc)
	}
	// Quote builder: the total equals the API's quote of the same mix.
	tb.open("#/sales/quote")
	tb.do(chromedp.WaitVisible(chromedp.ID("quote-form")))
	qcard := eval[string](tb, `document.getElementById("q-card").value`)
	tb.do(chromedp.Click(chromedp.ID("q-run")), chromedp.WaitVisible(chromedp.ID("quote-total")))
	var q struct{ Total, Currency string }
	s.mustJSON(t, auth.RoleSales, "POST", "/api/v1/quotes", map[string]any{"card_id": qcard, "items": []map[string]any{
		{"country": "DE", "category": "marketing", "quantity": 250000},
		{"country": "IN", "category": "utility", "quantity": 1000000},
		{"country": "BR", "category": "authentication", "quantity": 400000},
	}}, http.StatusOK, &q)
	if got, want := tb.text("#quote-total"), money(q.Total, q.Currency); got != want {
		t.Errorf("quote total shown %q, API %q", got, want)
	}
	tb.shot("32-sales-quote")
	// Quoting for a customer prices with that customer's card.
	var cq struct{ Total, Currency string }
	s.mustJSON(t, auth.RoleSales, "POST", "/api/v1/quotes", map[string]any{"customer_id": "globex", "items": []map[string]any{
		{"country": "DE", "category": "marketing", "quantity": 250000},
		{"country": "IN", "category": "utility", "quantity": 1000000},
		{"country": "BR", "category": "authentication", "quantity": 400000},
	}}, http.StatusOK, &cq)
	tb.do(chromedp.SendKeys(chromedp.ID("q-customer"), "globex"), chromedp.Click(chromedp.ID("q-run")))
	tb.waitText("#quote-total", money(cq.Total, cq.Currency))
	tb.do(chromedp.Clear(chromedp.ID("q-customer")))
	// An error from the API is shown in plain words.
	eval[bool](tb, `document.getElementById("quote-form").noValidate = true`)
	tb.do(chromedp.SetValue(chromedp.CSS(".q-line .q-quantity"), "-5"),
		chromedp.Click(chromedp.ID("q-run")), chromedp.WaitVisible(chromedp.CSS("#quote-result .state.error")))
	if got := tb.text("#quote-result .error-text"); got == "" || strings.Contains(got, "{") {
		t.Errorf("error shown %q", got)
	}
	tb.shot("33-sales-quote-error")
	testQuoteForCustomer(t, s, tb, downloads)
	testSalesBusiness(t, s, tb)
}

// testQuoteForCustomer prices a mix for acme, whose discounts make the
// quote show list price, discount and net, downloads it, points at bad
// rows by their 1-based number, and marks a quote stale when the mix
// changes.
func testQuoteForCustomer(t *testing.T, s *stack, tb *tab, downloads string) {
	tb.open("#/sales") // a fresh quote form: leave it, then open it again
	tb.do(chromedp.WaitVisible(chromedp.ID("sim-form")))
	tb.open("#/sales/quote")
	tb.do(chromedp.WaitVisible(chromedp.ID("quote-form")))
	// A marketing row says the card bills it as notification (once the
	// card's categories have loaded).
	tb.waitText("tr.q-line .q-as", "billed as Notification")
	tb.do(chromedp.SetValue(chromedp.ID("q-customer"), "acme"), chromedp.Click(chromedp.ID("q-run")), chromedp.WaitVisible(chromedp.ID("quote-total")))
	req := map[string]any{"customer_id": "acme", "items": []map[string]any{
		{"country": "DE", "category": "marketing", "quantity": 250000},
		{"country": "IN", "category": "utility", "quantity": 1000000},
		{"country": "BR", "category": "authentication", "quantity": 400000},
	}}
	var q struct {
		CardID, Currency, Total string
		Version                 int
		Month                   string
		ListTotal               string    `json:"list_total"`
		Discounts               string    `json:"discounts"`
		Lines                   []apiLine `json:"lines"`
	}
	s.mustJSON(t, auth.RoleSales, "POST", "/api/v1/quotes", req, http.StatusOK, &q)
	foot := func(col string) string { return tb.text(fmt.Sprintf(`#quote-result tfoot td[data-col=%q]`, col)) }
	if foot("list") != money(q.ListTotal, q.Currency) || foot("discount_amount") != money("-"+q.Discounts, q.Currency) || foot("amount") != money(q.Total, q.Currency) || tb.text("#quote-total") != money(q.Total, q.Currency) {
		t.Errorf("quote shown %s − %s = %s (%s), API %s − %s = %s", foot("list"), foot("discount_amount"), foot("amount"), tb.text("#quote-total"), q.ListTotal, q.Discounts, q.Total)
	}
	if got := tb.texts(`#quote-result tbody td[data-col="category"]`); !slices.Contains(got, "Notification — marketing") {
		t.Errorf("quote categories %q", got)
	}
	tb.shot("36-sales-quote-discounts")
	// The quote as CSV is the API's CSV of the same request; the PDF is one.
	tb.do(chromedp.Click(chromedp.CSS(`#quote-docs button[data-download="csv"]`)))
	_, body, hdr := s.call(t, s.Keys[auth.RoleSales], "POST", "/api/v1/quotes?format=csv", req, "")
	name := strings.Trim(strings.SplitN(hdr.Get("Content-Disposition"), "filename=", 2)[1], `"`)
	rows := strings.Split(strings.TrimSpace(string(body)), "\n")
	if got := waitFile(t, downloads, name); string(got) != string(body) || !strings.HasPrefix(rows[len(rows)-1], "total,") {
		t.Errorf("quote CSV differs from the API's (%d vs %d bytes): %s", len(got), len(body), got)
	}
	tb.do(chromedp.Click(chromedp.CSS(`#quote-docs button[data-download="pdf"]`)))
	if got := waitFile(t, downloads, strings.TrimSuffix(name, ".csv")+".pdf"); !strings.HasPrefix(string(got), "%PDF-") {
		t.Errorf("the quote PDF is not a PDF: %.20q", got)
	}
	// Changing the mix marks the quote as no longer answering it.
	tb.do(chromedp.SetValue(chromedp.CSS("tr.q-line:nth-child(1) .q-quantity"), "1000"))
	eval[bool](tb, `(document.querySelector("tr.q-line .q-quantity").dispatchEvent(new Event("input", {bubbles: true})), true)`)
	tb.do(chromedp.WaitVisible(chromedp.CSS("#quote-result.stale .stale-note")))
	if n := len(tb.texts("#quote-docs button")); n != 0 {
		t.Errorf("a stale quote still offers its downloads")
	}
	// Problems name rows as people count them, and the rows are marked.
	eval[bool](tb, `(document.getElementById("q-add").click(), true)`)
	tb.do(chromedp.SetValue(chromedp.CSS("tr.q-line:nth-child(4) .q-country"), "QQ"), chromedp.SetValue(chromedp.CSS("tr.q-line:nth-child(4) .q-quantity"), "5"))
	tb.submit("#quote-form") // as pressing "Price this mix" (the download notices may cover it)
	tb.do(chromedp.WaitVisible(chromedp.CSS("#quote-result .error-list")))
	if got := tb.texts("#quote-result .error-list li"); !slices.Equal(got, []string{`Row 4: country "QQ" is not an ISO 3166-1 alpha-2 country code`}) {
		t.Errorf("quote problems %q", got)
	}
	if bad := eval[[]float64](tb, `[...document.querySelectorAll("tr.q-line")].map((tr, i) => tr.classList.contains("bad") ? i + 1 : 0).filter(Boolean)`); !slices.Equal(bad, []float64{4}) {
		t.Errorf("rows marked bad: %v, want row 4", bad)
	}
	if got := eval[string](tb, `document.querySelector("tr.q-line:nth-child(4) .q-country").getAttribute("aria-invalid") || ""`); got != "true" {
		t.Errorf("row 4's country is not marked invalid")
	}
	tb.shot("37-sales-quote-row-error")
}

// testSalesBusiness opens a customer's usage as a sales key: the page shows
// what the API lets sales read of a customer, and nothing more.
func testSalesBusiness(t *testing.T, s *stack, tb *tab) {
	key := s.Keys[auth.RoleSales]
	status := func(path string) int { st, _, _ := s.call(t, key, "GET", path, nil, ""); return st }
	if status("/api/v1/customers/acme/usage?window=month") != http.StatusOK {
		return // sales may not read usage: the navigation check covers it
	}
	tb.open("#/business/acme")
	tb.do(chromedp.WaitVisible(chromedp.ID("kpi-messages")), chromedp.WaitVisible(chromedp.CSS("#by-country tbody tr")))
	total, _ := usageTotals(t, s, key, "acme")
	if got := tb.text("#kpi-messages"); got != group(total) {
		t.Errorf("sales sees %s messages, API %d", got, total)
	}
	bill := status("/api/v1/customers/acme/invoices/upcoming") == http.StatusOK
	invoices := status("/api/v1/customers/acme/invoices") == http.StatusOK
	if got := len(tb.texts("#bill-card")) == 1; got != bill {
		t.Errorf("sales: bill card shown %v, the API lets sales read the bill: %v", got, bill)
	}
	if got := len(tb.texts("#invoices-card")) == 1; got != invoices {
		t.Errorf("sales: invoices card shown %v, the API lets sales read invoices: %v", got, invoices)
	}
	tb.shot("34-sales-business")
}

func testAdmin(t *testing.T, s *stack, tb *tab) {
	tb.signIn(s.Keys[auth.RoleAdmin])
	if got := tb.texts("nav.tabs a"); !slices.Equal(got, []string{"Usage & bill", "Finance", "Receivables", "Sales", "Margin"}) {
		t.Errorf("admin navigation = %q", got)
	}
	// Staff land on the top customers, as the reports API ranks them.
	tb.open("#/business")
	tb.do(chromedp.WaitVisible(chromedp.CSS("#top-customers tbody tr")))
	var top struct {
		Rows []struct {
			CustomerID string `json:"customer_id"`
			Amount     string `json:"amount"`
			Currency   string `json:"currency"`
		} `json:"rows"`
	}
	s.mustJSON(t, auth.RoleAdmin, "GET", "/api/v1/reports/top-customers?limit=25", nil, http.StatusOK, &top)
	shown := eval[[][]string](tb, `[...document.querySelectorAll("#top-customers tbody tr")].map(tr => [tr.querySelector(".code").textContent, tr.querySelector('[data-col="amount"]').textContent.replace(/\s+/g, " ").trim()])`)
	if len(shown) != len(top.Rows) {
		t.Errorf("top customers: %d rows shown, API %d", len(shown), len(top.Rows))
	}
	for i := range min(len(shown), len(top.Rows)) {
		if want := []string{top.Rows[i].CustomerID, money(top.Rows[i].Amount, top.Rows[i].Currency)}; !slices.Equal(shown[i], want) {
			t.Errorf("top customer %d: shown %q, API %q", i+1, shown[i], want)
		}
	}
	tb.shot("26-admin-top-customers")
	tb.do(chromedp.SendKeys(chromedp.ID("customer-pick"), "umbrella"))
	tb.submit("form.picker")
	tb.do(chromedp.WaitVisible(chromedp.ID("kpi-messages")))
	total, _ := usageTotals(t, s, s.Keys[auth.RoleAdmin], "umbrella")
	if got, want := tb.text("#kpi-messages"), group(total); got != want {
		t.Errorf("umbrella messages shown %q, API %q", got, want)
	}
	// A key revoked while in use sends the page back to sign-in.
	var created struct {
		Key   struct{ ID string } `json:"key"`
		Token string              `json:"token"`
	}
	s.mustJSON(t, auth.RoleAdmin, "POST", "/api/v1/apikeys", map[string]string{"name": "short-lived", "role": "finance"}, http.StatusCreated, &created)
	tb.do(chromedp.Click(chromedp.ID("signout")))
	tb.signIn(created.Token)
	s.mustJSON(t, auth.RoleAdmin, "DELETE", "/api/v1/apikeys/"+created.Key.ID, nil, http.StatusNoContent, nil)
	tb.open("#/business/acme")
	tb.do(chromedp.WaitVisible(chromedp.CSS("#signin-error:not(:empty)")))
	if got := tb.text("#signin-error"); !strings.Contains(got, "not accepted") {
		t.Errorf("after revocation: %q", got)
	}
	if k := eval[string](tb, `sessionStorage.getItem("postage.apiKey") || ""`); k != "" {
		t.Errorf("a revoked key stayed in sessionStorage")
	}
	tb.shot("50-key-revoked")
	// An ingest key signs in but has nothing to see.
	tb.signIn(s.Keys[auth.RoleIngest])
	tb.do(chromedp.WaitVisible(chromedp.ID("no-views")))
}

func testNarrow(t *testing.T, s *stack, tb *tab) {
	// A tablet: one column, nothing wider than the screen.
	tb.do(chromedp.EmulateViewport(820, 1180))
	tb.signIn(s.Keys[auth.RoleFinance])
	tb.do(chromedp.WaitVisible(chromedp.CSS("#invoice-list table")), chromedp.WaitVisible(chromedp.CSS("#revenue canvas")))
	if w := eval[float64](tb, `document.documentElement.scrollWidth`); w > 820 {
		t.Errorf("finance is %v px wide on an 820 px screen", w)
	}
	tb.shot("39-finance-tablet")
	tb.do(chromedp.Click(chromedp.ID("signout")))
	tb.do(chromedp.EmulateViewport(390, 844))
	tb.signIn(s.Keys[auth.RoleCustomer])
	tb.do(chromedp.WaitVisible(chromedp.CSS("#by-country tbody tr")))
	if w := eval[float64](tb, `document.documentElement.scrollWidth`); w > 390 {
		t.Errorf("page is %v px wide on a 390 px screen", w)
	}
	tb.shot("40-business-phone")
	tb.do(chromedp.Click(chromedp.ID("signout")))
	tb.signIn(s.Keys[auth.RoleFinance])
	tb.do(chromedp.WaitVisible(chromedp.CSS("#invoice-list table, #invoice-list .state")))
	tb.shot("41-finance-phone")
	tb.do(chromedp.Click(chromedp.ID("signout")))
	tb.signIn(s.Keys[auth.RoleSales])
	tb.do(chromedp.WaitVisible(chromedp.ID("sim-run")), chromedp.Click(chromedp.ID("sim-run")), chromedp.WaitVisible(chromedp.ID("sim-kpis")))
	if w := eval[float64](tb, `document.documentElement.scrollWidth`); w > 390 {
		t.Errorf("simulation is %v px wide on a 390 px screen", w)
	}
	tb.shot("42-sales-phone")
	tb.open("#/sales/quote")
	tb.do(chromedp.WaitVisible(chromedp.ID("q-run")), chromedp.Click(chromedp.ID("q-run")), chromedp.WaitVisible(chromedp.ID("quote-total")))
	if w := eval[float64](tb, `document.documentElement.scrollWidth`); w > 390 {
		t.Errorf("quote builder is %v px wide on a 390 px screen", w)
	}
	tb.shot("43-quote-phone")
}

// group formats an integer as the dashboard does: 1,234,567.
func group(n int) string {
	s := strconv.Itoa(n)
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// money formats a decimal amount as the dashboard does: "1,234.50 USD".
func money(amount, currency string) string {
	neg := strings.HasPrefix(amount, "-")
	amount = strings.TrimPrefix(amount, "-")
	intPart, frac, _ := strings.Cut(amount, ".")
	frac = strings.TrimRight(frac, "0")
	digits := 2
	switch currency {
	case "JPY", "KRW", "VND", "CLP", "ISK":
		digits = 0
	case "KWD", "BHD", "OMR", "JOD", "TND", "IQD", "LYD":
		digits = 3
	}
	for len(frac) < digits {
		frac += "0"
	}
	n, _ := strconv.Atoi(intPart)
	s := group(n)
	if frac != "" {
		s += "." + frac
	}
	if neg && strings.Trim(intPart+frac, "0") != "" {
		s = "−" + s
	}
	return s + " " + currency
}

// cmpDec compares two plain decimal strings.
func cmpDec(a, b string) int {
	x, _ := strconv.ParseFloat(a, 64)
	y, _ := strconv.ParseFloat(b, 64)
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// forecastTotal is the one currency's total of the month-to-date forecast.
type forecastTotal struct {
	Currency        string `json:"currency"`
	AmountToDate    string `json:"amount_to_date"`
	ProjectedAmount string `json:"projected_amount"`
}

func forecastTotals(t *testing.T, s *stack) forecastTotal {
	t.Helper()
	var fc struct {
		Totals []forecastTotal `json:"totals"`
	}
	s.mustJSON(t, auth.RoleFinance, "GET", "/api/v1/reports/forecast", nil, http.StatusOK, &fc)
	if len(fc.Totals) != 1 {
		t.Fatalf("forecast totals: %+v", fc.Totals)
	}
	return fc.Totals[0]
}
