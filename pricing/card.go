// Package pricing turns usage into money: rate cards and their monthly
// versions, markets, categories, flat and tiered (graduated or volume)
// prices, customer overrides, and the rating of usage aggregates into
// invoice lines with exact decimal arithmetic.
//
// The package is pure: no I/O, no clock, no context in its computations and
// no float64 anywhere. Money and unit prices are shopspring/decimal values,
// quantities are int64 message counts. Storage lives behind the Store
// interface (implemented by pricing/pgstore).
package pricing

import (
	"fmt"
	"regexp"
	"sort"

	"github.com/bojanz/currency"
	"github.com/shopspring/decimal"
	"golang.org/x/text/language"

	"postage"
)

// Rounding is how an invoice line's exact amount is rounded to the
// currency's minor unit. Amounts are never negative, so half-up is the same
// as half away from zero.
type Rounding string

// Rounding modes. Half-even (banker's rounding) is the default.
const (
	RoundHalfEven Rounding = "half_even"
	RoundHalfUp   Rounding = "half_up"
)

// Valid reports whether r is a known rounding mode.
func (r Rounding) Valid() bool { return r == RoundHalfEven || r == RoundHalfUp }

// Status is the lifecycle state of a rate card version.
type Status string

// Version states: a draft can be edited; an active version is immutable and
// takes effect from its EffectiveFrom month until a later active version.
const (
	StatusDraft  Status = "draft"
	StatusActive Status = "active"
)

// Mode says how a (market, category) price applies to a month's quantity.
type Mode string

// Price modes.
const (
	// ModeFlat charges every unit at UnitPrice.
	ModeFlat Mode = "flat"
	// ModeGraduated charges each unit at the price of the tier it falls in.
	ModeGraduated Mode = "graduated"
	// ModeVolume charges all units at the price of the tier the month's
	// total quantity reaches.
	ModeVolume Mode = "volume"
)

// Limits on what a card may hold. Unit prices keep up to MaxPriceDecimals
// decimals and stay below 1,000,000, which lets rating use exact integer
// arithmetic internally.
const (
	MaxNameLen       = 200 // a card's name, in bytes
	MaxNoteLen       = 500 // a version's note, in bytes
	MaxMarketLen     = 64  // a market's name, in bytes
	MaxPriceDecimals = 6
	MaxQuantity      = int64(1) << 62 // per usage row and per monthly (market, category) sum
)

// maxUnitPrice is the exclusive upper bound of a unit price (one million
// currency units per message).
var maxUnitPrice = decimal.New(1, 6)

// Kind says whose prices a rate card holds.
type Kind string

// Card kinds. A selling card is postage's price list to its customers; a
// cost card is the upstream's price list to postage (what Meta charges per
// delivered message). The cost card in effect in a month (one at a time,
// chosen per month in the ledger) rates usage at cost: for margins,
// reconciliation and cost-plus prices. A cost card may also be assigned to
// customers, who then pay the upstream's list price.
const (
	KindSelling Kind = "selling"
	KindCost    Kind = "cost"
)

// Valid reports whether k is a known kind.
func (k Kind) Valid() bool { return k == KindSelling || k == KindCost }

// RateCard is a named price list in one currency. Its prices live in
// versions, each effective from the first of a month.
type RateCard struct {
	ID       string   `json:"id"`
	Name     string   `json:"name"`
	Currency string   `json:"currency"`           // ISO 4217 code, e.g. "USD"
	Rounding Rounding `json:"rounding,omitempty"` // default RoundHalfEven
	// Kind is selling (the default) or cost.
	Kind    Kind `json:"kind,omitempty"`
	Default bool `json:"default,omitempty"` // the card customers get without an assignment (set by the store)
}

// Category is a message category of a card.
type Category struct {
	// Name is the category as it appears on usage and invoice lines,
	// lower-case letters, digits and underscores (e.g. "notification").
	Name string `json:"name"`
	// Free categories are metered and shown at 0.00 and have no prices.
	Free bool `json:"free,omitempty"`
	// International names the category that usage of this category is rated
	// as when the customer's country differs from the recipient's country
	// (authentication → authentication_international). Markets without a
	// price for that category fall back to this category's price.
	International string `json:"international,omitempty"`
	// Aliases are other usage category names rated as this category, so
	// usage recorded under another card's vocabulary can be (re-)rated:
	// e.g. the launch card rates "marketing" and "utility" as "notification".
	Aliases []string `json:"aliases,omitempty"`
}

// Tier is one step of a tiered price: units up to and including UpTo (a
// monthly quantity; nil means no upper bound) cost UnitPrice.
type Tier struct {
	UpTo      *int64          `json:"up_to"`
	UnitPrice decimal.Decimal `json:"unit_price"`
}

// Price is the price of one category in one market.
type Price struct {
	Market    string          `json:"market"`
	Category  string          `json:"category"`
	Mode      Mode            `json:"mode"`
	UnitPrice decimal.Decimal `json:"unit_price,omitzero"` // ModeFlat
	Tiers     []Tier          `json:"tiers,omitempty"`     // ModeGraduated, ModeVolume: ascending, the last unbounded
}

// Version is the content of a rate card from a month on: the country →
// market map, the categories and the prices. Currency and Rounding are
// copied from the card so a version rates on its own.
type Version struct {
	CardID        string `json:"card_id"`
	Number        int    `json:"number"`
	Status        Status `json:"status"`
	EffectiveFrom Month  `json:"effective_from,omitzero"` // first month it applies to; zero for a draft never activated
	Note          string `json:"note,omitempty"`

	Currency      string            `json:"currency"`
	Rounding      Rounding          `json:"rounding"`
	DefaultMarket string            `json:"default_market"` // market of every country not in Countries
	Countries     map[string]string `json:"countries"`      // ISO 3166-1 alpha-2 country → market
	Categories    []Category        `json:"categories"`
	Prices        []Price           `json:"prices"`
	// Unmapped, when set, names the category that usage of any category
	// the version does not list (by name or alias) is rated as: the
	// upstream adds categories (marketing_lite) faster than cards change.
	// Without it such usage is not rated: it is listed as unrated
	// (UnratedUnmapped) and billed by no line.
	Unmapped string `json:"unmapped,omitempty"`
	// CostPlus, when set, makes the version a cost-plus price list: it has
	// no countries, categories or prices of its own, and prices each line
	// at the cost card's price of the same usage, plus a markup and a fee
	// per message, with a floor (see CostPlus). It rates only in a pool
	// over a cost card's Rater (Rater.RatePool).
	CostPlus *CostPlus `json:"cost_plus,omitempty"`
}

// Validate checks the card's own fields.
func (c RateCard) Validate() error {
	var errs []error
	if !idRE.MatchString(c.ID) {
		errs = append(errs, postage.Errorf(postage.EINVALID, "card id %q: want 1-64 of a-z, 0-9, '-', '_', '.'", c.ID))
	}
	if c.Name == "" {
		errs = append(errs, postage.Errorf(postage.EINVALID, "card %s: name is empty", c.ID))
	} else if len(c.Name) > MaxNameLen {
		errs = append(errs, postage.Errorf(postage.EINVALID, "card %s: name longer than %d bytes", c.ID, MaxNameLen))
	}
	if !validCurrency(c.Currency) {
		errs = append(errs, postage.Errorf(postage.EINVALID, "card %s: currency %q is not an ISO 4217 code", c.ID, c.Currency))
	}
	if c.Rounding != "" && !c.Rounding.Valid() {
		errs = append(errs, postage.Errorf(postage.EINVALID, "card %s: rounding %q: want half_even or half_up", c.ID, c.Rounding))
	}
	if c.Kind != "" && !c.Kind.Valid() {
		errs = append(errs, postage.Errorf(postage.EINVALID, "card %s: kind %q: want selling or cost", c.ID, c.Kind))
	}
	return postage.JoinInvalid(errs)
}

var (
	idRE       = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
	categoryRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)
)

// ValidCountry reports whether code is an ISO 3166-1 alpha-2 country code
// (upper case).
func ValidCountry(code string) bool {
	if len(code) != 2 || code[0] < 'A' || code[0] > 'Z' || code[1] < 'A' || code[1] > 'Z' {
		return false
	}
	r, err := language.ParseRegion(code)
	return err == nil && r.IsCountry() && r.String() == code
}

// MinorUnits returns the number of decimals of the currency's minor unit
// (USD 2, JPY 0, KWD 3) from the ISO 4217 data of bojanz/currency.
func MinorUnits(currencyCode string) (int, bool) {
	d, ok := currency.GetDigits(currencyCode)
	return int(d), ok
}

// ref locates a problem inside a version, so the CSV codec can turn it into
// a row number.
type ref struct {
	kind string // "setting", "country", "category", "price", "cost_plus"
	a, b string // setting name; country; category; market and category
	tier int    // price: tier index, -1 for the price as a whole
}

type problem struct {
	at     ref
	column string
	msg    string
}

func (p problem) String() string {
	var where string
	switch p.at.kind {
	case "setting":
		where = p.at.a
	case "country":
		where = "country " + p.at.a
	case "category":
		where = "category " + p.at.a
	case "price":
		where = "price " + p.at.a + "/" + p.at.b
		if p.at.tier >= 0 {
			where += fmt.Sprintf(" tier %d", p.at.tier+1)
		}
	case "cost_plus":
		where = "cost_plus"
		if p.at.a != "" || p.at.b != "" {
			where += " " + p.at.a + "/" + p.at.b
		}
	}
	if where == "" {
		return p.msg
	}
	return where + ": " + p.msg
}

// Validate checks that the version is complete and consistent: a known
// currency and rounding, valid country codes, unique well-formed categories,
// one price per (market, category) for every priced category and market,
// ordered tiers, and unit prices in [0, 1,000,000) with at most six
// decimals. All problems are reported together.
func (v *Version) Validate() error {
	ps := v.problems()
	if len(ps) == 0 {
		return nil
	}
	errs := make([]error, len(ps))
	for i, p := range ps {
		errs[i] = postage.Errorf(postage.EINVALID, "%s", p.String())
	}
	return postage.JoinInvalid(errs)
}

func (v *Version) problems() []problem {
	var ps []problem
	add := func(at ref, column, format string, args ...any) {
		ps = append(ps, problem{at: at, column: column, msg: fmt.Sprintf(format, args...)})
	}
	setting := func(name string) ref { return ref{kind: "setting", a: name} }
	if v.Status != "" && v.Status != StatusDraft && v.Status != StatusActive {
		add(setting("status"), "value", "status %q: want draft or active", v.Status)
	}
	if v.Status == StatusActive && !v.EffectiveFrom.Valid() {
		add(setting("effective_from"), "value", "an active version needs an effective month")
	}
	if !validCurrency(v.Currency) {
		add(setting("currency"), "value", "currency %q is not an ISO 4217 code", v.Currency)
	}
	if !v.Rounding.Valid() {
		add(setting("rounding"), "value", "rounding %q: want half_even or half_up", v.Rounding)
	}
	if v.CostPlus != nil {
		// A cost-plus version takes its markets and categories from the
		// cost card it rates over.
		if v.DefaultMarket != "" || len(v.Countries) > 0 || len(v.Categories) > 0 || len(v.Prices) > 0 || v.Unmapped != "" {
			add(setting("cost_plus"), "value", "a cost-plus version has no markets, countries, categories, prices or unmapped rule of its own: the cost card's apply")
		}
		for _, p := range v.CostPlus.problems() {
			add(ref{kind: "cost_plus", a: p.market, b: p.category}, p.column, "%s", p.msg)
		}
		return ps
	}
	if v.DefaultMarket == "" {
		add(setting("default_market"), "value", "default market is empty")
	} else if len(v.DefaultMarket) > MaxMarketLen {
		add(setting("default_market"), "value", "default market longer than %d bytes", MaxMarketLen)
	}
	if len(v.Note) > MaxNoteLen {
		add(setting("note"), "value", "note longer than %d bytes", MaxNoteLen)
	}

	markets := map[string]bool{v.DefaultMarket: true}
	for _, c := range sortedKeys(v.Countries) {
		m := v.Countries[c]
		if !ValidCountry(c) {
			add(ref{kind: "country", a: c}, "country", "%q is not an ISO 3166-1 alpha-2 country code", c)
		}
		if m == "" {
			add(ref{kind: "country", a: c}, "market", "market is empty")
			continue
		}
		if len(m) > MaxMarketLen {
			add(ref{kind: "country", a: c}, "market", "market longer than %d bytes", MaxMarketLen)
			continue
		}
		markets[m] = true
	}

	cats := map[string]*Category{}
	names := map[string]string{} // usage name (name or alias) → category
	for i := range v.Categories {
		c := &v.Categories[i]
		at := ref{kind: "category", a: c.Name}
		if !categoryRE.MatchString(c.Name) {
			add(at, "category", "category name %q: want lower-case letters, digits and '_'", c.Name)
		}
		if _, dup := cats[c.Name]; dup {
			add(at, "category", "duplicate category %q", c.Name)
			continue
		}
		cats[c.Name] = c
		if other, dup := names[c.Name]; dup {
			add(at, "category", "category %q is already an alias of %q", c.Name, other)
		}
		names[c.Name] = c.Name
	}
	if len(v.Categories) == 0 {
		add(setting("categories"), "category", "the version has no categories")
	}
	if v.Unmapped != "" {
		if _, ok := cats[v.Unmapped]; !ok {
			add(setting("unmapped"), "value", "unmapped: %q is not a category of the card", v.Unmapped)
		}
	}
	derived := map[string]string{} // international category → its base
	for i := range v.Categories {
		c := &v.Categories[i]
		at := ref{kind: "category", a: c.Name}
		for _, a := range c.Aliases {
			if !categoryRE.MatchString(a) {
				add(at, "aliases", "alias %q: want lower-case letters, digits and '_'", a)
			} else if other, dup := names[a]; dup && other != c.Name {
				add(at, "aliases", "alias %q is already used by %q", a, other)
			} else if !dup {
				names[a] = c.Name
			}
		}
		if c.International == "" {
			continue
		}
		ic, ok := cats[c.International]
		switch {
		case !ok:
			add(at, "international", "international category %q is not a category of the card", c.International)
		case c.International == c.Name:
			add(at, "international", "a category cannot be its own international category")
		case ic.International != "":
			add(at, "international", "international category %q has an international category itself", c.International)
		case ic.Free != c.Free:
			add(at, "international", "international category %q must be free exactly when %q is", c.International, c.Name)
		default:
			if _, dup := derived[c.International]; dup {
				add(at, "international", "international category %q is used by two categories", c.International)
			}
			derived[c.International] = c.Name
		}
	}

	seen := map[[2]string]bool{}
	for _, p := range v.Prices {
		at := ref{kind: "price", a: p.Market, b: p.Category, tier: -1}
		if !markets[p.Market] {
			add(at, "market", "unknown market %q (not the default market and no country maps to it)", p.Market)
		}
		c, ok := cats[p.Category]
		switch {
		case !ok:
			add(at, "category", "unknown category %q", p.Category)
		case c.Free:
			add(at, "category", "category %q is free and has no prices", p.Category)
		}
		k := [2]string{p.Market, p.Category}
		if seen[k] {
			add(at, "category", "duplicate price for market %q category %q", p.Market, p.Category)
		}
		seen[k] = true
		switch p.Mode {
		case ModeFlat:
			if len(p.Tiers) > 0 {
				add(at, "tier_up_to", "a flat price has no tiers")
			}
			checkUnitPrice(p.UnitPrice, func(msg string) { add(at, "unit_price", "%s", msg) })
		case ModeGraduated, ModeVolume:
			if len(p.Tiers) == 0 {
				add(at, "tier_up_to", "a %s price needs at least one tier", p.Mode)
			}
			var prev int64
			for i, t := range p.Tiers {
				tat := ref{kind: "price", a: p.Market, b: p.Category, tier: i}
				last := i == len(p.Tiers)-1
				switch {
				case t.UpTo == nil && !last:
					add(tat, "tier_up_to", "only the last tier may be unbounded")
				case t.UpTo != nil && last:
					add(tat, "tier_up_to", "the last tier must be unbounded (empty tier_up_to)")
				case t.UpTo != nil && *t.UpTo <= prev:
					add(tat, "tier_up_to", "tiers overlap or are out of order: %d is not above the previous tier's %d", *t.UpTo, prev)
				case t.UpTo != nil && *t.UpTo > MaxQuantity:
					add(tat, "tier_up_to", "tier bound %d is too large", *t.UpTo)
				}
				if t.UpTo != nil && *t.UpTo > prev {
					prev = *t.UpTo
				}
				checkUnitPrice(t.UnitPrice, func(msg string) { add(tat, "unit_price", "%s", msg) })
			}
		default:
			add(at, "mode", "price mode %q: want flat, graduated or volume", p.Mode)
		}
	}
	// Every priced, non-derived category needs a price in every market;
	// derived (international) categories fall back to their base category.
	for _, m := range sortedKeys(markets) {
		if m == "" {
			continue
		}
		for _, c := range v.Categories {
			if c.Free || derived[c.Name] != "" {
				continue
			}
			if !seen[[2]string{m, c.Name}] {
				add(ref{kind: "price", a: m, b: c.Name, tier: -1}, "unit_price", "missing price for market %q category %q", m, c.Name)
			}
		}
	}
	return ps
}

func checkUnitPrice(d decimal.Decimal, bad func(string)) {
	switch {
	case d.IsNegative():
		bad(fmt.Sprintf("unit price %s is negative", d))
	case d.GreaterThanOrEqual(maxUnitPrice):
		bad(fmt.Sprintf("unit price %s is too large", d))
	case !d.Equal(d.Truncate(MaxPriceDecimals)):
		bad(fmt.Sprintf("unit price %s has more than %d decimals", d, MaxPriceDecimals))
	}
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// Market returns the market of a recipient country under this version.
func (v *Version) Market(country string) string {
	if m, ok := v.Countries[country]; ok {
		return m
	}
	return v.DefaultMarket
}

// Normalize makes the version's nil maps and slices empty, so its JSON has
// {} and [] where a cost-plus version has no countries, categories or prices.
func (v *Version) Normalize() {
	if v.Countries == nil {
		v.Countries = map[string]string{}
	}
	if v.Categories == nil {
		v.Categories = []Category{}
	}
	if v.Prices == nil {
		v.Prices = []Price{}
	}
}

// Clone returns a deep copy of the version (maps and slices are not shared).
func (v *Version) Clone() *Version {
	c := *v
	c.Countries = make(map[string]string, len(v.Countries))
	for k, m := range v.Countries {
		c.Countries[k] = m
	}
	c.Categories = make([]Category, len(v.Categories))
	for i, cat := range v.Categories {
		cat.Aliases = append([]string(nil), cat.Aliases...)
		c.Categories[i] = cat
	}
	c.Prices = make([]Price, len(v.Prices))
	for i, p := range v.Prices {
		p.Tiers = append([]Tier(nil), p.Tiers...)
		for j := range p.Tiers {
			if p.Tiers[j].UpTo != nil {
				u := *p.Tiers[j].UpTo
				p.Tiers[j].UpTo = &u
			}
		}
		c.Prices[i] = p
	}
	if v.CostPlus != nil {
		cp := *v.CostPlus
		cp.Exceptions = append([]CostPlusRule(nil), cp.Exceptions...)
		c.CostPlus = &cp
	}
	return &c
}

// validCurrency reports whether code is a known ISO 4217 code
// (bojanz/currency treats "" as valid; a card needs a currency).
func validCurrency(code string) bool { return code != "" && currency.IsValid(code) }
