package pgstore

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"postage"
	"postage/internal/testenv"
	"postage/pricing"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func newStore(t *testing.T, now string) (*Store, context.Context) {
	t.Helper()
	env := testenv.New(t)
	s := New(env.PG)
	tm, err := time.Parse(time.RFC3339, now)
	if err != nil {
		t.Fatal(err)
	}
	s.Now = func() time.Time { return tm }
	ctx := context.Background()
	for _, id := range []string{"cust-a", "cust-b"} {
		if _, err := env.PG.Exec(ctx, `INSERT INTO customers (id, name, country) VALUES ($1, $1, 'DE')`, id); err != nil {
			t.Fatal(err)
		}
	}
	return s, ctx
}

func code(t *testing.T, err error, want string) {
	t.Helper()
	if got := postage.ErrorCode(err); got != want {
		t.Fatalf("got %v (%q), want code %q", err, got, want)
	}
}

func TestSeedIdempotent(t *testing.T) {
	s, ctx := newStore(t, "2026-11-15T10:00:00Z")
	for i := 0; i < 2; i++ {
		if err := s.Seed(ctx); err != nil {
			t.Fatal(err)
		}
	}
	cards, err := s.ListCards(ctx)
	if err != nil || len(cards) != 2 {
		t.Fatalf("%v %+v", err, cards)
	}
	if cards[0].ID != "launch" || !cards[0].Default || cards[1].ID != "meta-2026-01" || cards[1].Default {
		t.Fatalf("%+v", cards)
	}
	for _, c := range cards {
		vs, err := s.ListVersions(ctx, c.ID)
		if err != nil || len(vs) != 1 || vs[0].Status != pricing.StatusActive || vs[0].EffectiveFrom.String() != "2026-01" {
			t.Fatalf("%s: %v %+v", c.ID, err, vs)
		}
	}
	// The stored version rates exactly like the seed.
	seed, _ := pricing.LaunchSeed()
	v, err := s.VersionFor(ctx, "launch", pricing.MustParseMonth("2026-11"))
	if err != nil {
		t.Fatal(err)
	}
	usage := []pricing.Usage{{Country: "DE", Category: "notification", Quantity: 1_000_001}}
	a, _ := pricing.Rate(seed.Version, pricing.Overrides{}, usage, pricing.RateOptions{})
	b, err := pricing.Rate(v, pricing.Overrides{}, usage, pricing.RateOptions{})
	if err != nil || !a.Total.Equal(b.Total) {
		t.Fatalf("%v %s %s", err, a.Total, b.Total)
	}
	// Before the first version: not found.
	_, err = s.VersionFor(ctx, "launch", pricing.MustParseMonth("2025-12"))
	code(t, err, postage.ENOTFOUND)
	// A changed default survives re-seeding.
	if err := s.SetDefaultCard(ctx, "meta-2026-01"); err != nil {
		t.Fatal(err)
	}
	if err := s.Seed(ctx); err != nil {
		t.Fatal(err)
	}
	c, _ := s.CardFor(ctx, "nobody", pricing.MustParseMonth("2026-11"))
	if c.ID != "meta-2026-01" {
		t.Fatalf("default %s", c.ID)
	}
}

func TestDraftsActivationAndHistory(t *testing.T) {
	s, ctx := newStore(t, "2026-11-15T10:00:00Z")
	if err := s.Seed(ctx); err != nil {
		t.Fatal(err)
	}
	v1, _ := s.GetVersion(ctx, "launch", 1)
	// Active versions cannot be edited, in code and in the database.
	code(t, s.UpdateDraft(ctx, v1), postage.ECONFLICT)
	if _, err := s.PG.Exec(ctx, `UPDATE rate_card_versions SET note = 'x' WHERE card_id = 'launch' AND number = 1`); err == nil || !strings.Contains(err.Error(), "active and cannot change") {
		t.Fatalf("trigger: %v", err)
	}
	if _, err := s.PG.Exec(ctx, `DELETE FROM rate_card_versions WHERE card_id = 'launch' AND number = 1`); err == nil {
		t.Fatal("deleted an active version")
	}

	// A draft: create, edit, activate.
	d := v1.Clone()
	d.Note = "2027 prices"
	d2, err := s.CreateDraft(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	if d2.Number != 2 || d2.Status != pricing.StatusDraft || !d2.EffectiveFrom.IsZero() {
		t.Fatalf("%+v", d2)
	}
	for i := range d2.Prices {
		if d2.Prices[i].Market == "DE" {
			d2.Prices[i].Tiers[0].UnitPrice = decimal.RequireFromString("0.08")
		}
	}
	if err := s.UpdateDraft(ctx, d2); err != nil {
		t.Fatal(err)
	}
	bad := d2.Clone()
	bad.Prices[0].Tiers[0].UnitPrice = decimal.RequireFromString("-1")
	code(t, s.UpdateDraft(ctx, bad), postage.EINVALID)
	bad = d2.Clone()
	bad.Currency = "EUR"
	code(t, s.UpdateDraft(ctx, bad), postage.EINVALID)

	// Activation rule: not this month or earlier.
	_, err = s.Activate(ctx, "launch", 2, pricing.MustParseMonth("2026-11"))
	code(t, err, postage.EINVALID)
	_, err = s.Activate(ctx, "launch", 2, pricing.MustParseMonth("2026-03"))
	code(t, err, postage.EINVALID)
	got, err := s.Activate(ctx, "launch", 2, pricing.MustParseMonth("2027-01"))
	if err != nil || got.Status != pricing.StatusActive || got.EffectiveFrom.String() != "2027-01" {
		t.Fatalf("%v %+v", err, got)
	}
	_, err = s.Activate(ctx, "launch", 2, pricing.MustParseMonth("2027-02"))
	code(t, err, postage.ECONFLICT)
	// A later draft must start after 2027-01.
	d3, _ := s.CreateDraft(ctx, v1)
	_, err = s.Activate(ctx, "launch", d3.Number, pricing.MustParseMonth("2026-12"))
	code(t, err, postage.ECONFLICT)
	_, err = s.Activate(ctx, "launch", 99, pricing.MustParseMonth("2027-05"))
	code(t, err, postage.ENOTFOUND)

	// History: each month sees its version.
	for _, tt := range []struct {
		month string
		want  int
	}{{"2026-01", 1}, {"2026-12", 1}, {"2027-01", 2}, {"2030-06", 2}} {
		v, err := s.VersionFor(ctx, "launch", pricing.MustParseMonth(tt.month))
		if err != nil || v.Number != tt.want {
			t.Errorf("%s: %v %v", tt.month, err, v)
		}
	}
	r, err := s.Rater(ctx, "launch", pricing.MustParseMonth("2027-03"))
	if err != nil {
		t.Fatal(err)
	}
	if pi, _ := r.Lookup("DE", "notification", ""); !pi.UnitPrice.Equal(decimal.RequireFromString("0.08")) {
		t.Fatalf("2027 DE price %s", pi.UnitPrice)
	}
	vs, _ := s.ListVersions(ctx, "launch")
	if len(vs) != 3 || vs[2].Status != pricing.StatusDraft {
		t.Fatalf("%+v", vs)
	}
}

func TestCardsAssignmentsOverrides(t *testing.T) {
	s, ctx := newStore(t, "2026-11-15T10:00:00Z")
	// No default card yet.
	_, err := s.CardFor(ctx, "cust-a", pricing.MustParseMonth("2026-11"))
	code(t, err, postage.ENOTFOUND)
	if err := s.Seed(ctx); err != nil {
		t.Fatal(err)
	}
	code(t, s.CreateCard(ctx, pricing.RateCard{ID: "launch", Name: "again", Currency: "USD"}), postage.ECONFLICT)
	code(t, s.CreateCard(ctx, pricing.RateCard{ID: "Bad", Currency: "USD"}), postage.EINVALID)
	if err := s.CreateCard(ctx, pricing.RateCard{ID: "acme", Name: "Acme", Currency: "USD"}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateCard(ctx, pricing.RateCard{ID: "acme-eur", Name: "Acme in euros", Currency: "EUR"}); err != nil {
		t.Fatal(err)
	}
	c, err := s.GetCard(ctx, "acme")
	if err != nil || c.Rounding != pricing.RoundHalfEven || c.Default {
		t.Fatalf("%v %+v", err, c)
	}
	_, err = s.GetCard(ctx, "nope")
	code(t, err, postage.ENOTFOUND)

	if err := s.AssignCard(ctx, "cust-a", "meta-2026-01", pricing.MustParseMonth("2026-06")); err != nil {
		t.Fatal(err)
	}
	if err := s.AssignCard(ctx, "cust-a", "acme", pricing.MustParseMonth("2026-09")); err != nil {
		t.Fatal(err)
	}
	code(t, s.AssignCard(ctx, "cust-a", "nope", pricing.MustParseMonth("2026-09")), postage.ENOTFOUND)
	// A customer is billed in its own currency (USD here): a card in
	// another is refused, and nothing changes.
	code(t, s.AssignCard(ctx, "cust-a", "acme-eur", pricing.MustParseMonth("2026-10")), postage.ECONFLICT)
	code(t, s.AssignCard(ctx, "nobody", "acme", pricing.MustParseMonth("2026-09")), postage.ENOTFOUND)
	for _, tt := range []struct{ customer, month, want string }{
		{"cust-a", "2026-05", "launch"}, {"cust-a", "2026-06", "meta-2026-01"}, {"cust-a", "2026-08", "meta-2026-01"},
		{"cust-a", "2026-09", "acme"}, {"cust-a", "2027-01", "acme"}, {"cust-b", "2026-09", "launch"},
	} {
		c, err := s.CardFor(ctx, tt.customer, pricing.MustParseMonth(tt.month))
		if err != nil || c.ID != tt.want {
			t.Errorf("%s %s: %v %s, want %s", tt.customer, tt.month, err, c.ID, tt.want)
		}
	}

	ov, err := s.Overrides(ctx, "cust-a")
	if err != nil || !ov.IsZero() {
		t.Fatalf("%v %+v", err, ov)
	}
	want := pricing.Overrides{
		CardDiscount: decimal.RequireFromString("2.5"),
		Discounts:    []pricing.Discount{{Market: "Germany", Percent: decimal.RequireFromString("10")}},
		UnitPrices:   []pricing.UnitPrice{{Market: "DE", Category: "notification", UnitPrice: decimal.RequireFromString("0.05")}},
	}
	if err := s.SetOverrides(ctx, "cust-a", want); err != nil {
		t.Fatal(err)
	}
	got, _ := s.Overrides(ctx, "cust-a")
	if !got.CardDiscount.Equal(want.CardDiscount) || len(got.Discounts) != 1 || !got.UnitPrices[0].UnitPrice.Equal(want.UnitPrices[0].UnitPrice) {
		t.Fatalf("%+v", got)
	}
	code(t, s.SetOverrides(ctx, "cust-a", pricing.Overrides{CardDiscount: decimal.RequireFromString("120")}), postage.EINVALID)
	code(t, s.SetOverrides(ctx, "nobody", want), postage.ENOTFOUND)
	if err := s.SetOverrides(ctx, "cust-a", pricing.Overrides{}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Overrides(ctx, "cust-a"); !got.IsZero() {
		t.Fatalf("cleared: %+v", got)
	}
}

// The bulk look-ups answer exactly what the one-customer look-ups answer.
func TestBulkLookupsAgreeWithSingle(t *testing.T) {
	s, ctx := newStore(t, "2026-11-15T10:00:00Z")
	if got, err := s.CardsFor(ctx, []string{"cust-a"}, pricing.MustParseMonth("2026-11")); err != nil || len(got) != 0 {
		t.Fatalf("no default card yet: %v %v", got, err)
	}
	if err := s.Seed(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.AssignCard(ctx, "cust-a", "meta-2026-01", pricing.MustParseMonth("2026-06")); err != nil {
		t.Fatal(err)
	}
	// A later assignment takes over from its month on.
	if err := s.AssignCard(ctx, "cust-a", "launch", pricing.MustParseMonth("2026-09")); err != nil {
		t.Fatal(err)
	}
	if err := s.SetOverrides(ctx, "cust-b", pricing.Overrides{CardDiscount: decimal.RequireFromString("5")}); err != nil {
		t.Fatal(err)
	}
	customers := []string{"cust-a", "cust-b", "unknown"}
	for _, m := range []string{"2026-05", "2026-06", "2026-08", "2026-09", "2026-12"} {
		month := pricing.MustParseMonth(m)
		got, err := s.CardsFor(ctx, customers, month)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range customers {
			want, err := s.CardFor(ctx, c, month)
			if err != nil {
				t.Fatal(err)
			}
			if got[c] != want {
				t.Errorf("%s %s: bulk %+v, single %+v", c, m, got[c], want)
			}
		}
	}
	for _, ask := range [][]string{nil, customers, {"cust-a"}} {
		got, err := s.OverridesFor(ctx, ask)
		if err != nil {
			t.Fatal(err)
		}
		wantN := 1
		if len(ask) == 1 {
			wantN = 0
		}
		if len(got) != wantN {
			t.Errorf("OverridesFor(%v): %d customers, want %d", ask, len(got), wantN)
		}
		if ov, ok := got["cust-b"]; ok && !ov.CardDiscount.Equal(decimal.RequireFromString("5")) {
			t.Errorf("cust-b overrides: %+v", ov)
		}
	}
}
