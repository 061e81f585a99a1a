package httpapi_test

import (
	"context"
	"encoding/csv"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/shopspring/decimal"

	"postage/internal/app"
	"postage/internal/auth"
	"postage/internal/config"
)

// fullQuote is the part of a quote answer these tests read.
type fullQuote struct {
	Total     string `json:"total"`
	ListTotal string `json:"list_total"`
	Discounts string `json:"discounts"`
	Lines     []struct {
		Market            string   `json:"market"`
		Category          string   `json:"category"`
		MessageCategories []string `json:"message_categories"`
		UnitPrice         string   `json:"unit_price"`
		Subtotal          string   `json:"subtotal"`
		Exact             string   `json:"exact"`
		Discount          string   `json:"discount"`
		ListAmount        string   `json:"list_amount"`
		DiscountAmount    string   `json:"discount_amount"`
		Amount            string   `json:"amount"`
		Tiers             []struct {
			Amount string `json:"amount"`
		} `json:"tiers"`
	} `json:"lines"`
}

// TestQuoteMoneyAndDiscounts: a quote's money has the currency's decimals
// ("22175.00", not "22175"), its lines name the categories the items were
// sent as, and a discounted quote adds up: list − discount = amount per
// line, and list_total − discounts = total.
func TestQuoteMoneyAndDiscounts(t *testing.T) {
	s := newStack(t)
	resp, body := s.do(t, auth.RoleSales, "POST", "/api/v1/quotes", "application/json",
		[]byte(`{"items":[{"country":"DE","category":"marketing","quantity":250000},{"country":"DE","category":"utility","quantity":0}]}`))
	q := decode[fullQuote](t, body)
	if resp.StatusCode != 200 || len(q.Lines) != 1 {
		t.Fatalf("quote: %d %s", resp.StatusCode, body)
	}
	de := q.Lines[0]
	if de.Subtotal != "22175.00" || de.Exact != "22175.00" || de.Amount != "22175.00" || len(de.Tiers) != 1 || de.Tiers[0].Amount != "22175.00" {
		t.Errorf("money without the minor unit: %s", body)
	}
	if de.Category != "notification" || !slices.Equal(de.MessageCategories, []string{"marketing", "utility"}) {
		t.Errorf("categories: %s as %q", de.Category, de.MessageCategories)
	}
	if q.ListTotal != q.Total || q.Discounts != "0.00" || de.ListAmount != "" || de.DiscountAmount != "" {
		t.Errorf("undiscounted totals: %s", body)
	}

	resp, body = s.do(t, auth.RoleSales, "PUT", "/api/v1/customers/cust-a/overrides", "application/json",
		[]byte(`{"card_discount":"5","discounts":[{"market":"FR","percent":"10"}]}`))
	if resp.StatusCode != 200 {
		t.Fatalf("overrides: %d %s", resp.StatusCode, body)
	}
	resp, body = s.do(t, auth.RoleSales, "POST", "/api/v1/quotes", "application/json",
		[]byte(`{"customer_id":"cust-a","items":[{"country":"DE","category":"marketing","quantity":3921},{"country":"FR","category":"utility","quantity":1234},{"country":"FR","category":"service","quantity":50}]}`))
	q = decode[fullQuote](t, body)
	if resp.StatusCode != 200 || len(q.Lines) != 3 {
		t.Fatalf("discounted quote: %d %s", resp.StatusCode, body)
	}
	d := decimal.RequireFromString
	var list, disc, total decimal.Decimal
	for _, l := range q.Lines {
		if l.Category == "session" {
			if l.ListAmount != "" || l.Amount != "0.00" || l.UnitPrice != "0.00" {
				t.Errorf("free line %+v", l)
			}
			list = list.Add(d(l.Amount))
			continue
		}
		if l.Discount == "" || l.ListAmount == "" || l.DiscountAmount == "" {
			t.Fatalf("discounted line without list and discount amounts: %+v", l)
		}
		if !d(l.ListAmount).Sub(d(l.DiscountAmount)).Equal(d(l.Amount)) || d(l.ListAmount).String() != d(l.Subtotal).RoundBank(2).String() {
			t.Errorf("line %s/%s: list %s − discount %s ≠ amount %s (subtotal %s)", l.Market, l.Category, l.ListAmount, l.DiscountAmount, l.Amount, l.Subtotal)
		}
		list, disc, total = list.Add(d(l.ListAmount)), disc.Add(d(l.DiscountAmount)), total.Add(d(l.Amount))
	}
	// Germany 3,921 × 0.0887 = 347.79, 5% off: 330.40.
	if de := q.Lines[0]; de.ListAmount != "347.79" || de.DiscountAmount != "17.39" || de.Amount != "330.40" {
		t.Errorf("Germany: list %s discount %s amount %s, want 347.79 − 17.39 = 330.40", de.ListAmount, de.DiscountAmount, de.Amount)
	}
	if q.ListTotal != list.StringFixed(2) || q.Discounts != disc.StringFixed(2) || !d(q.ListTotal).Sub(d(q.Discounts)).Equal(d(q.Total)) {
		t.Errorf("totals: list %s − discounts %s vs total %s (lines: %s, %s)", q.ListTotal, q.Discounts, q.Total, list, disc)
	}
}

// TestQuoteItemProblems: every bad item is reported at once, each naming
// its field by JSON path, so a form can point at the row.
func TestQuoteItemProblems(t *testing.T) {
	s := newStack(t)
	resp, body := s.do(t, auth.RoleSales, "POST", "/api/v1/quotes", "application/json",
		[]byte(`{"items":[{"country":"DE","category":"marketing","quantity":1},{"country":"XX","category":"marketing","quantity":1},{"country":"FR","category":"utility","quantity":1},{"country":"FR","category":"bogus","quantity":-2}]}`))
	p := decode[struct {
		Code   string `json:"code"`
		Detail string `json:"detail"`
		Errors []struct {
			In, Field, Reason string
		} `json:"errors"`
	}](t, body)
	if resp.StatusCode != 400 || p.Code != "invalid" || len(p.Errors) != 3 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	var fields []string
	for _, e := range p.Errors {
		fields = append(fields, e.Field)
		if e.In != "body" || e.Reason == "" {
			t.Errorf("problem %+v", e)
		}
	}
	if want := []string{"items[1].country", "items[3].category", "items[3].quantity"}; !slices.Equal(fields, want) {
		t.Errorf("fields %q, want %q", fields, want)
	}
	if strings.Contains(p.Detail, "usage row") {
		t.Errorf("a quote's problems speak of usage rows: %s", p.Detail)
	}
}

// TestQuoteDocuments: the same quote as CSV and as PDF, whose figures are
// the JSON answer's.
func TestQuoteDocuments(t *testing.T) {
	s := newStack(t)
	body := []byte(`{"card_id":"launch","month":"2026-11","items":[{"country":"DE","category":"marketing","quantity":250001},{"country":"TR","category":"authentication","quantity":1000}]}`)
	_, js := s.do(t, auth.RoleSales, "POST", "/api/v1/quotes", "application/json", body)
	q := decode[fullQuote](t, js)

	resp, doc := s.do(t, auth.RoleSales, "POST", "/api/v1/quotes?format=csv", "application/json", body)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") ||
		resp.Header.Get("Content-Disposition") != `attachment; filename=quote-launch-v1-2026-11.csv` {
		t.Fatalf("csv: %d %v %s", resp.StatusCode, resp.Header, doc)
	}
	rows, err := csv.NewReader(strings.NewReader(string(doc))).ReadAll()
	if err != nil || len(rows) != 1+len(q.Lines)+1 {
		t.Fatalf("csv rows %v: %s", err, doc)
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	last := rows[len(rows)-1]
	if last[col["line"]] != "total" || last[col["amount"]] != q.Total || last[col["quantity"]] != "251001" {
		t.Errorf("total row %q, JSON total %s", last, q.Total)
	}
	if r := rows[1]; r[col["market_name"]] != "Germany" || r[col["message_categories"]] != "marketing" || r[col["amount"]] != q.Lines[0].Amount {
		t.Errorf("first row %q", r)
	}

	resp, doc = s.do(t, auth.RoleSales, "POST", "/api/v1/quotes?format=pdf", "application/json", body)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/pdf" || !strings.HasPrefix(string(doc), "%PDF-") {
		t.Fatalf("pdf: %d %v", resp.StatusCode, resp.Header)
	}
	path := filepath.Join(t.TempDir(), "q.pdf")
	if err := os.WriteFile(path, doc, 0o644); err != nil {
		t.Fatal(err)
	}
	text, err := exec.Command("pdftotext", "-layout", path, "-").Output()
	if err != nil {
		t.Fatalf("pdftotext: %v", err)
	}
	// Amounts print with thousands separators (22,182.18).
	total := q.Total
	if i := strings.IndexByte(total, '.'); i > 3 {
		total = total[:i-3] + "," + total[i-3:]
	}
	for _, want := range []string{"QUOTE", "Launch", "2026-11", "Germany", "Turkey", "notification: sent as marketing", "Monthly total USD", total} {
		if !strings.Contains(string(text), want) {
			t.Errorf("pdf text lacks %q:\n%s", want, text)
		}
	}
	// The same bytes twice (the document's date is the quote's).
	if _, again := s.do(t, auth.RoleSales, "POST", "/api/v1/quotes?format=pdf", "application/json", body); len(again) == 0 {
		t.Error("second pdf empty")
	}
	if resp, b := s.do(t, auth.RoleSales, "POST", "/api/v1/quotes?format=xml", "application/json", body); resp.StatusCode != 400 {
		t.Errorf("format=xml: %d %s", resp.StatusCode, b)
	}
}

// TestCountriesAndRoutes: one source of country names for every page, and
// the operations each key may call, from the route table that serves.
func TestCountriesAndRoutes(t *testing.T) {
	s := newStack(t)
	resp, body := s.do(t, auth.RoleCustomer, "GET", "/api/v1/countries", "", nil)
	countries := decode[struct {
		Data []struct{ Code, Name string } `json:"data"`
	}](t, body)
	names := map[string]string{}
	for _, c := range countries.Data {
		names[c.Code] = c.Name
	}
	if resp.StatusCode != 200 || names["TR"] != "Turkey" || names["DE"] != "Germany" || len(names) < 240 {
		t.Fatalf("countries: %d %.300s", resp.StatusCode, body)
	}
	if resp, _ := s.do(t, auth.RoleIngest, "GET", "/api/v1/countries", "", nil); resp.StatusCode != 403 {
		t.Errorf("ingest key reads countries: %d", resp.StatusCode)
	}

	type me struct{ Routes []string }
	for _, tt := range []struct {
		role     auth.Role
		has, not []string
	}{
		{auth.RoleSales, []string{"POST /api/v1/quotes", "POST /api/v1/simulations", "GET /api/v1/customers/{id}/usage"}, []string{"GET /api/v1/invoices", "POST /api/v1/apikeys"}},
		{auth.RoleCustomer, []string{"GET /api/v1/customers/{id}/usage", "GET /api/v1/customers/{id}/invoices/upcoming", "GET /api/v1/countries"}, []string{"POST /api/v1/quotes", "GET /api/v1/invoices"}},
		{auth.RoleFinance, []string{"GET /api/v1/invoices", "POST /api/v1/invoices/{id}/approve"}, []string{"POST /api/v1/apikeys"}},
		{auth.RoleIngest, []string{"POST /api/v1/events"}, []string{"GET /api/v1/customers/{id}/usage"}},
	} {
		_, body := s.do(t, tt.role, "GET", "/api/v1/me", "", nil)
		got := decode[me](t, body).Routes
		for _, r := range tt.has {
			if !slices.Contains(got, r) {
				t.Errorf("%s may %s, /me does not say so", tt.role, r)
			}
		}
		for _, r := range tt.not {
			if slices.Contains(got, r) {
				t.Errorf("%s may not %s, /me says it may", tt.role, r)
			}
		}
	}
}

// levelLog records the level of every "http" log line.
type levelLog struct {
	mu     sync.Mutex
	levels []slog.Level
}

func (l *levelLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *levelLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "http" {
		l.mu.Lock()
		l.levels = append(l.levels, r.Level)
		l.mu.Unlock()
	}
	return nil
}
func (l *levelLog) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *levelLog) WithGroup(string) slog.Handler      { return l }

// TestRequestLogLevel: with log.requests = "debug" (what `postage dev`
// sets) answered requests log at debug, so an info log (make run's
// terminal) keeps the address and key in view; refusals stay warnings.
func TestRequestLogLevel(t *testing.T) {
	for _, tt := range []struct {
		requests string
		want     slog.Level
	}{{"", slog.LevelInfo}, {"info", slog.LevelInfo}, {"debug", slog.LevelDebug}} {
		h := &levelLog{}
		s := newStackWith(t, func(c *config.Config) { c.Log.Requests = tt.requests }, func(a *app.App) { a.Log = slog.New(h) })
		s.do(t, auth.RoleSales, "GET", "/api/v1/me", "", nil)
		s.do(t, auth.RoleSales, "GET", "/api/v1/invoices", "", nil) // 403
		h.mu.Lock()
		got := slices.Clone(h.levels)
		h.mu.Unlock()
		if len(got) != 2 || got[0] != tt.want || got[1] != slog.LevelWarn {
			t.Errorf("requests %q: levels %v, want [%v WARN]", tt.requests, got, tt.want)
		}
	}
}
