package pricing

import (
	"bytes"
	"embed"
	"encoding/csv"
	"fmt"

	"github.com/shopspring/decimal"
)

// The reference data a new installation seeds its rate cards from (see
// pricing/seed/README.md).
//
//go:embed seed/*.csv
var seedFS embed.FS

// Seed card ids.
const (
	LaunchCardID = "launch"
	MetaCardID   = "meta-2026-01"
)

// SeedMonth is the month the seeded versions are effective from.
var SeedMonth = Month{Year: 2026, Month: 1}

// LaunchTiers are the launch card's graduated monthly volume discounts per
// customer and recipient country: units up to UpTo cost the base price
// minus Discount percent (see pricing/seed/README.md).
var LaunchTiers = []struct {
	UpTo     int64 // 0: unbounded
	Discount int64 // percent
}{
	{250_000, 0}, {1_000_000, 5}, {2_000_000, 10}, {5_000_000, 15}, {10_000_000, 20}, {0, 25},
}

// Seed is a card with its first version, as a new installation has it.
type Seed struct {
	Card    RateCard
	Version *Version
}

// Seeds returns the cards a new installation starts with: "launch" (the
// default card) and "meta-2026-01", each with version 1 active from
// SeedMonth.
func Seeds() ([]Seed, error) {
	l, err := LaunchSeed()
	if err != nil {
		return nil, err
	}
	m, err := MetaSeed()
	if err != nil {
		return nil, err
	}
	return []Seed{l, m}, nil
}

// LaunchSeed builds the launch card from seed/launch-prices.csv: USD, each
// listed country its own market (named by its code), "*" the default market
// "Other", category notification priced with the graduated LaunchTiers
// (tier price = base × (1 − discount), rounded half-even to six decimals)
// and session free. Other senders' category names are aliases, so usage
// recorded as marketing/utility/authentication rates as notification and
// service as session.
func LaunchSeed() (Seed, error) {
	rows, err := readSeed("seed/launch-prices.csv", 2)
	if err != nil {
		return Seed{}, err
	}
	v := &Version{
		CardID: LaunchCardID, Number: 1, Status: StatusActive, EffectiveFrom: SeedMonth,
		Note:     "seeded from launch-prices.csv",
		Currency: "USD", Rounding: RoundHalfEven, DefaultMarket: "Other",
		Countries: map[string]string{},
		Categories: []Category{
			{Name: "notification", Aliases: []string{"marketing", "utility", "authentication", "authentication_international"}},
			{Name: "session", Free: true, Aliases: []string{"service"}},
		},
	}
	for _, r := range rows {
		base, err := decimal.NewFromString(r[1])
		if err != nil {
			return Seed{}, fmt.Errorf("launch seed: price %q: %w", r[1], err)
		}
		market := r[0]
		if market == "*" {
			market = v.DefaultMarket
		} else {
			v.Countries[r[0]] = r[0]
		}
		p := Price{Market: market, Category: "notification", Mode: ModeGraduated}
		for _, t := range LaunchTiers {
			tier := Tier{UnitPrice: base.Mul(decimal.New(100-t.Discount, -2)).RoundBank(MaxPriceDecimals)}
			if t.UpTo > 0 {
				u := t.UpTo
				tier.UpTo = &u
			}
			p.Tiers = append(p.Tiers, tier)
		}
		v.Prices = append(v.Prices, p)
	}
	card := RateCard{ID: LaunchCardID, Name: "Launch", Currency: "USD", Rounding: RoundHalfEven, Kind: KindSelling, Default: true}
	if err := v.Validate(); err != nil {
		return Seed{}, fmt.Errorf("launch seed: %w", err)
	}
	return Seed{Card: card, Version: v}, nil
}

// MetaSeed builds the meta-2026-01 card from seed/meta-rates-2026-01.csv
// and seed/meta-markets.csv: USD, flat prices per market and category,
// countries not listed in market "Other"; categories marketing, utility,
// authentication (rated as authentication_international when the customer's
// country differs from the recipient's; markets without such a price use
// the authentication price), and service free (alias session).
func MetaSeed() (Seed, error) {
	markets, err := readSeed("seed/meta-markets.csv", 2)
	if err != nil {
		return Seed{}, err
	}
	rates, err := readSeed("seed/meta-rates-2026-01.csv", 3)
	if err != nil {
		return Seed{}, err
	}
	v := &Version{
		CardID: MetaCardID, Number: 1, Status: StatusActive, EffectiveFrom: SeedMonth,
		Note:     "seeded from meta-rates-2026-01.csv and meta-markets.csv",
		Currency: "USD", Rounding: RoundHalfEven, DefaultMarket: "Other",
		Countries: map[string]string{},
		Categories: []Category{
			// "notification" (the launch card's business-initiated category)
			// is rated as marketing, Meta's catch-all category for templates
			// that are not utility or authentication.
			{Name: "marketing", Aliases: []string{"notification"}},
			{Name: "utility"},
			{Name: "authentication", International: "authentication_international"},
			{Name: "authentication_international"},
			{Name: "service", Free: true, Aliases: []string{"session"}},
		},
	}
	for _, r := range markets {
		v.Countries[r[0]] = r[1]
	}
	for _, r := range rates {
		d, err := decimal.NewFromString(r[2])
		if err != nil {
			return Seed{}, fmt.Errorf("meta seed: price %q: %w", r[2], err)
		}
		v.Prices = append(v.Prices, Price{Market: r[0], Category: r[1], Mode: ModeFlat, UnitPrice: d})
	}
	card := RateCard{ID: MetaCardID, Name: "Meta WhatsApp Business rates 2026-01", Currency: "USD", Rounding: RoundHalfEven, Kind: KindCost}
	if err := v.Validate(); err != nil {
		return Seed{}, fmt.Errorf("meta seed: %w", err)
	}
	return Seed{Card: card, Version: v}, nil
}

func readSeed(name string, fields int) ([][]string, error) {
	b, err := seedFS.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("read seed %s: %w", name, err)
	}
	cr := csv.NewReader(bytes.NewReader(b))
	cr.FieldsPerRecord = fields
	rows, err := cr.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("read seed %s: %w", name, err)
	}
	return rows[1:], nil // header
}
