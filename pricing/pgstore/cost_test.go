package pgstore

import (
	"testing"

	"github.com/shopspring/decimal"

	"postage"
	"postage/pricing"
)

func TestCostCardSchedule(t *testing.T) {
	s, ctx := newStore(t, "2026-11-15T10:00:00Z")
	if err := s.Seed(ctx); err != nil {
		t.Fatal(err)
	}
	// The seeded meta card is the cost card from 2026-01; launch is a selling card.
	meta, err := s.GetCard(ctx, pricing.MetaCardID)
	if err != nil || meta.Kind != pricing.KindCost {
		t.Fatalf("%v %+v", err, meta)
	}
	launch, _ := s.GetCard(ctx, pricing.LaunchCardID)
	if launch.Kind != pricing.KindSelling {
		t.Fatalf("%+v", launch)
	}
	_, err = s.CostCardFor(ctx, pricing.MustParseMonth("2025-12"))
	code(t, err, postage.ENOTFOUND)
	c, err := s.CostCardFor(ctx, pricing.MustParseMonth("2026-11"))
	if err != nil || c.ID != pricing.MetaCardID {
		t.Fatalf("%v %+v", err, c)
	}
	// Seeding again schedules nothing twice.
	if err := s.Seed(ctx); err != nil {
		t.Fatal(err)
	}
	sched, err := s.CostCards(ctx)
	if err != nil || len(sched) != 1 || sched[0].EffectiveFrom.String() != "2026-01" {
		t.Fatalf("%v %+v", err, sched)
	}

	// Only a cost card, only from a future month.
	code(t, s.SetCostCard(ctx, pricing.LaunchCardID, pricing.MustParseMonth("2027-01")), postage.ECONFLICT)
	if err := s.CreateCard(ctx, pricing.RateCard{ID: "meta-2027", Name: "Meta 2027", Currency: "USD", Kind: pricing.KindCost}); err != nil {
		t.Fatal(err)
	}
	code(t, s.SetCostCard(ctx, "meta-2027", pricing.MustParseMonth("2026-11")), postage.EINVALID)
	code(t, s.SetCostCard(ctx, "nope", pricing.MustParseMonth("2027-01")), postage.ENOTFOUND)
	if err := s.SetCostCard(ctx, "meta-2027", pricing.MustParseMonth("2027-01")); err != nil {
		t.Fatal(err)
	}
	for m, want := range map[string]string{"2026-12": pricing.MetaCardID, "2027-01": "meta-2027", "2028-05": "meta-2027"} {
		if c, err := s.CostCardFor(ctx, pricing.MustParseMonth(m)); err != nil || c.ID != want {
			t.Errorf("%s: %v %s, want %s", m, err, c.ID, want)
		}
	}
	// The database refuses a selling card in the schedule, and a scheduled card turning selling.
	if _, err := s.PG.Exec(ctx, `INSERT INTO cost_card_schedule (effective_from, card_id) VALUES ('2027-03', 'launch')`); err == nil {
		t.Fatal("scheduled a selling card")
	}
	if _, err := s.PG.Exec(ctx, `UPDATE rate_cards SET kind = 'selling' WHERE id = 'meta-2027'`); err == nil {
		t.Fatal("a scheduled cost card became a selling card")
	}
	// A cost card's versions are price lists, not cost-plus rules.
	_, err = s.CreateDraft(ctx, &pricing.Version{CardID: "meta-2027", CostPlus: &pricing.CostPlus{Markup: decimal.New(10, 0)}})
	code(t, err, postage.EINVALID)
}

func TestExchangeRates(t *testing.T) {
	s, ctx := newStore(t, "2026-11-15T10:00:00Z")
	x := pricing.ExchangeRate{From: "USD", To: "EUR", Month: pricing.MustParseMonth("2026-10"), Rate: decimal.RequireFromString("0.9231"), Source: "ECB monthly average"}
	got, err := s.SetExchangeRate(ctx, x)
	if err != nil || !got.Rate.Equal(x.Rate) || got.Source != x.Source {
		t.Fatalf("%v %+v", err, got)
	}
	// The same again: fine. Another rate for the month: a conflict, the recorded one stays.
	if _, err := s.SetExchangeRate(ctx, x); err != nil {
		t.Fatal(err)
	}
	y := x
	y.Rate = decimal.RequireFromString("0.95")
	_, err = s.SetExchangeRate(ctx, y)
	code(t, err, postage.ECONFLICT)
	if got, _ := s.ExchangeRateFor(ctx, "USD", "EUR", x.Month); !got.Rate.Equal(x.Rate) {
		t.Fatalf("%+v", got)
	}
	if _, err := s.PG.Exec(ctx, `UPDATE exchange_rates SET rate = 2`); err == nil {
		t.Fatal("a recorded rate changed")
	}
	// A month without its own rate has none (no carrying over), nor the inverse pair.
	_, err = s.ExchangeRateFor(ctx, "USD", "EUR", pricing.MustParseMonth("2026-11"))
	code(t, err, postage.ENOTFOUND)
	_, err = s.ExchangeRateFor(ctx, "EUR", "USD", x.Month)
	code(t, err, postage.ENOTFOUND)
	// Bad input.
	for _, bad := range []pricing.ExchangeRate{
		{From: "USD", To: "USD", Month: x.Month, Rate: x.Rate},
		{From: "USD", To: "XXY", Month: x.Month, Rate: x.Rate},
		{From: "USD", To: "EUR", Rate: x.Rate},
		{From: "USD", To: "EUR", Month: x.Month, Rate: decimal.Zero},
		{From: "USD", To: "EUR", Month: x.Month, Rate: decimal.RequireFromString("0.12345678901")},
	} {
		_, err := s.SetExchangeRate(ctx, bad)
		code(t, err, postage.EINVALID)
	}
	if _, err := s.SetExchangeRate(ctx, pricing.ExchangeRate{From: "USD", To: "JPY", Month: x.Month, Rate: decimal.New(150, 0)}); err != nil {
		t.Fatal(err)
	}
	all, err := s.ExchangeRates(ctx, "USD", "")
	if err != nil || len(all) != 2 || all[0].To != "EUR" || all[1].To != "JPY" {
		t.Fatalf("%v %+v", err, all)
	}
}
