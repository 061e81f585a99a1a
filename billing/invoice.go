package billing

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"postage"
	"postage/pricing"
)

// Status is where an invoice is in its lifecycle: draft → finalized → void.
type Status string

// Invoice states. A draft is recomputed by every run until it finalizes;
// a finalized invoice has a number and never changes again; a void
// invoice keeps its number and is replaced by a reissue.
const (
	StatusDraft     Status = "draft"
	StatusFinalized Status = "finalized"
	StatusVoid      Status = "void"
)

// Valid reports whether s is a known status.
func (s Status) Valid() bool { return s == StatusDraft || s == StatusFinalized || s == StatusVoid }

// Line kinds.
const (
	// KindUsage is a line of the invoice's own period.
	KindUsage = "usage"
	// KindAdjustment bills the difference between a re-rating of an
	// earlier, already invoiced month and what was billed for it.
	KindAdjustment = "adjustment"
)

// Money is an amount in an invoice's currency. JSON writes it as a decimal
// string with the currency's minor-unit decimals ("12.30", never "12.3"),
// or with more when the amount is exact and has more (a tier's exact
// amount "0.2661"): at least Places decimals, and no trailing zeros beyond.
type Money struct {
	decimal.Decimal
	Places int32
}

// NewMoney returns d with the given number of decimals for display.
func NewMoney(d decimal.Decimal, places int) Money { return Money{Decimal: d, Places: int32(places)} }

// String formats the amount with at least its Places decimals.
func (m Money) String() string { return string(appendMoney(nil, m)) }

// Format prints the amount as String does (for %s and %v: the embedded
// decimal's own Format would drop the minor unit's zeros, "0" for "0.00").
func (m Money) Format(f fmt.State, _ rune) { _, _ = f.Write(appendMoney(nil, m)) }

// MarshalJSON writes the amount as a quoted decimal string.
func (m Money) MarshalJSON() ([]byte, error) { return []byte(`"` + m.String() + `"`), nil }

// UnmarshalJSON reads a quoted decimal string; its decimals become Places.
func (m *Money) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	d, err := decimal.NewFromString(s)
	if err != nil {
		return fmt.Errorf("money %q: %w", s, err)
	}
	m.Decimal = d
	m.Places = 0
	if i := strings.IndexByte(s, '.'); i >= 0 {
		m.Places = int32(len(s) - i - 1)
	}
	return nil
}

// Line is one line of an invoice. Usage lines are the rating of the
// invoice's period per (market, category), with their tier breakdown.
// Adjustment lines name an earlier Period and carry what a re-rating of
// that whole month adds to (or takes from) what was already billed.
type Line struct {
	Kind   string        `json:"kind"`
	Period pricing.Month `json:"period"`
	// Member is, on a consolidated invoice, the portfolio member whose
	// usage the line bills ("" on any other invoice).
	Member      string                    `json:"member,omitempty"`
	Market      string                    `json:"market"`
	Countries   []pricing.CountryQuantity `json:"countries,omitempty"`
	Category    string                    `json:"category"`
	Free        bool                      `json:"free,omitempty"`
	PricingType string                    `json:"pricing_type,omitempty"` // the upstream's free pricing type that made the line free, whatever its category
	Mode        pricing.Mode              `json:"mode,omitempty"`
	Custom      bool                      `json:"custom,omitempty"`
	Quantity    int64                     `json:"quantity"`
	// Unmapped lists the categories as sent that the card's unmapped rule
	// priced as this line's category.
	Unmapped []string `json:"unmapped,omitempty"`
	// PoolQuantity is the portfolio's quantity of the market and category,
	// whose tiers priced the line (0: the customer's own).
	PoolQuantity int64           `json:"pool_quantity,omitempty"`
	Tiers        []Tier          `json:"tiers,omitempty"`
	UnitPrice    Money           `json:"unit_price"` // with at least the currency's decimals ("0.00" on a free line), up to six
	Average      bool            `json:"average,omitempty"`
	Discount     decimal.Decimal `json:"discount,omitzero"`
	// ListAmount (the line before discounts, rounded once like Amount) and
	// DiscountAmount (ListAmount − Amount) are set on discounted usage
	// lines, so a line reads list − discount = amount; on other lines the
	// list amount is Amount. Invoices finalized before these fields existed
	// do not have them (their documents never change).
	ListAmount     Money `json:"list_amount,omitzero"`
	DiscountAmount Money `json:"discount_amount,omitzero"`
	// MessageCategories are the categories the line's messages were sent
	// with when the card bills them as Category (marketing and utility on a
	// line of notification), in the card's order (pricing.Line).
	MessageCategories []string `json:"message_categories,omitempty"`
	// CostPlus shows how a cost-plus line was priced (the cost, in the
	// cost card's currency, and the markup, fee and floor).
	CostPlus    *pricing.CostPlusLine `json:"cost_plus,omitempty"`
	Amount      Money                 `json:"amount"`
	Description string                `json:"description,omitempty"`
}

// Tier is the part of a usage line's quantity charged at one tier's price
// (pricing.TierLine), its exact amount written with at least the
// currency's minor-unit decimals.
type Tier struct {
	From      int64  `json:"from"`  // first unit of the tier (1-based monthly count)
	UpTo      *int64 `json:"up_to"` // last unit of the tier; nil = unbounded
	Quantity  int64  `json:"quantity"`
	UnitPrice Money  `json:"unit_price"`
	Amount    Money  `json:"amount"` // exact
}

// lineKey identifies what a line bills, for subtracting what was billed.
type lineKey struct {
	period      pricing.Month
	member      string
	market      string
	category    string
	pricingType string
}

// Section is one member's part of a consolidated invoice: its lines are
// those whose Member is its id.
type Section struct {
	CustomerID  string `json:"customer_id"`
	Name        string `json:"name"`
	CardID      string `json:"card_id,omitempty"`
	CardVersion int    `json:"card_version,omitempty"`
	// Total is the sum of the member's lines (usage and adjustments).
	Total Money `json:"total"`
}

// UnbilledLine is usage of a month the invoice covers that it does not
// bill, and why: shown on the invoice, never charged.
type UnbilledLine struct {
	Period   pricing.Month `json:"period"`
	Member   string        `json:"member,omitempty"` // on a consolidated invoice: whose usage
	Country  string        `json:"country"`
	Category string        `json:"category"`
	Quantity int64         `json:"quantity"`
	Reason   string        `json:"reason"`
	Detail   string        `json:"detail,omitempty"`
}

// CustomerSnapshot is the customer as it was when the invoice was last
// computed; a finalized invoice keeps it forever.
type CustomerSnapshot struct {
	ID         string    `json:"id"`
	Name       string    `json:"name"`
	Country    string    `json:"country,omitempty"`
	Email      string    `json:"email,omitempty"`
	Currency   string    `json:"currency"`
	TaxID      string    `json:"tax_id,omitempty"`
	TaxStatus  TaxStatus `json:"tax_status,omitempty"`
	TaxCountry string    `json:"tax_country,omitempty"`
	TaxRegion  string    `json:"tax_region,omitempty"`
	Address    *Address  `json:"address,omitempty"`
}

// Snapshot is the customer as an invoice shows it.
func (c Customer) Snapshot() CustomerSnapshot {
	s := CustomerSnapshot{ID: c.ID, Name: c.Name, Country: c.Country, Email: c.Email, Currency: c.Currency,
		TaxID: c.TaxID, TaxStatus: c.TaxStatus, TaxCountry: c.TaxCountry, TaxRegion: c.TaxRegion, Address: c.Address}
	if s.TaxStatus == "" {
		s.TaxStatus = TaxTaxable
	}
	if s.Address != nil && s.Address.IsZero() {
		s.Address = nil
	}
	return s
}

// Invoice is one customer's bill for one calendar month (UTC).
//
// A finalized (or void) invoice is frozen: its JSON is the document
// written when it was finalized (or voided) with everything it shows, its
// issuer and its line descriptions included, and it marshals to exactly
// those bytes forever (see Freeze and docs/BILLING.md, "A finalized
// invoice never changes").
type Invoice struct {
	ID          string           `json:"id,omitempty"` // absent only from the month-to-date bill (Runner.Upcoming), which is no invoice yet
	Number      string           `json:"number,omitempty"`
	CustomerID  string           `json:"customer_id"`
	Period      pricing.Month    `json:"period"`
	Seq         int              `json:"seq"`
	Status      Status           `json:"status"`
	Issuer      Issuer           `json:"issuer,omitzero"` // who the invoice is from; frozen at finalization, the configured one on drafts' documents
	Customer    CustomerSnapshot `json:"customer"`
	Currency    string           `json:"currency"`
	MinorUnits  int              `json:"minor_units"` // the currency's decimals, which every amount is written with
	CardID      string           `json:"card_id"`
	CardVersion int              `json:"card_version"`
	Lines       []Line           `json:"lines"`
	// Sections are the members' parts of a consolidated invoice (a
	// portfolio's parent billed for its members), the parent's own first.
	Sections []Section `json:"sections,omitempty"`
	// Unbilled lists the usage of the invoice's months it does not bill,
	// and why (a category the card does not list; a member that cannot be
	// billed), row by row.
	Unbilled []UnbilledLine `json:"unbilled,omitempty"`
	// CostCard is the cost card version cost-plus lines of the period are
	// priced over, and ExchangeRates the rates they used (one per month
	// and currency pair): frozen with the invoice.
	CostCard      *pricing.CostRef       `json:"cost_card,omitempty"`
	ExchangeRates []pricing.ExchangeRate `json:"exchange_rates,omitempty"`
	Subtotal      Money                  `json:"subtotal"`
	Adjustments   Money                  `json:"adjustments"`
	// TaxLines are the taxes (one per rate, or one at 0% for reverse
	// charge and exemption): docs/BILLING.md, "Taxes".
	TaxLines []TaxLine `json:"tax_lines"`
	// Tax is the sum of the tax lines' taxes.
	Tax Money `json:"tax"`
	// Total is subtotal + adjustments + tax.
	Total Money `json:"total"`
	// TaxNote is the legal note of a reverse-charge or exempt invoice.
	TaxNote string `json:"tax_note,omitempty"`
	// PaymentTermsDays is how many days after its issue the invoice is due.
	PaymentTermsDays int `json:"payment_terms_days"`
	// IssueDate and DueDate are set when the invoice is finalized (the
	// day of finalization, and that day plus the payment terms).
	IssueDate *Date `json:"issue_date,omitempty"`
	DueDate   *Date `json:"due_date,omitempty"`
	// UsageCutoff is the ingestion time up to which events were counted.
	UsageCutoff   time.Time  `json:"usage_cutoff"`
	FinalizeAfter time.Time  `json:"finalize_after"`
	CreatedAt     time.Time  `json:"created_at"`
	UpdatedAt     time.Time  `json:"updated_at"`
	FinalizedAt   *time.Time `json:"finalized_at,omitempty"`
	VoidedAt      *time.Time `json:"voided_at,omitempty"`
	VoidReason    string     `json:"void_reason,omitempty"`
	Replaces      string     `json:"replaces,omitempty"`
	ReplacedBy    string     `json:"replaced_by,omitempty"`

	frozen []byte // the frozen document this invoice was read from, if any
}

// MinorUnitsOf returns the decimals of a currency (2 when unknown).
func MinorUnitsOf(currency string) int {
	n, ok := pricing.MinorUnits(currency)
	if !ok {
		return 2
	}
	return n
}

// InvoiceID returns the deterministic id of the seq-th invoice of a
// customer for a period: "in_" and 26 base32 characters of
// SHA-256(customer, period, seq). Every replica and every re-run computes
// the same id, so inserting it twice is a conflict, never a duplicate.
func InvoiceID(customerID string, period pricing.Month, seq int) string {
	// One allocation (the id): a run computes 50,000 of them.
	var buf [128]byte
	b := append(buf[:0], customerID...)
	b = append(b, 0)
	b, _ = period.AppendText(b)
	b = append(b, 0)
	b = strconv.AppendInt(b, int64(seq), 10)
	h := sha256.Sum256(b)
	var id [3 + 52]byte
	copy(id[:], "in_")
	idEncoding.Encode(id[3:], h[:])
	return string(id[:3+26])
}

// idEncoding is base32 with lower-case letters, unpadded.
var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NumberFormat renders invoice numbers from a pattern such as
// "PST-{year}-{seq:6}": {year} is the four-digit year of finalization and
// {seq:N} the year's sequence zero-padded to N digits ({seq} unpadded).
type NumberFormat struct {
	pattern string
}

var seqRE = regexp.MustCompile(`\{seq(?::([1-9][0-9]?))?\}`)

// ParseNumberFormat checks a pattern: it must hold {year} and one {seq} or
// {seq:N}, because numbering restarts every year.
func ParseNumberFormat(p string) (NumberFormat, error) {
	var errs []error
	if strings.Count(p, "{year}") != 1 {
		errs = append(errs, postage.Errorf(postage.EINVALID, "number format %q: needs {year} exactly once (numbering restarts each year)", p))
	}
	if len(seqRE.FindAllString(p, -1)) != 1 {
		errs = append(errs, postage.Errorf(postage.EINVALID, "number format %q: needs {seq} or {seq:N} exactly once", p))
	}
	rest := seqRE.ReplaceAllString(strings.ReplaceAll(p, "{year}", ""), "")
	if strings.ContainsAny(rest, "{}") {
		errs = append(errs, postage.Errorf(postage.EINVALID, "number format %q: unknown placeholder (use {year} and {seq:N})", p))
	}
	if len(p) > 64 {
		errs = append(errs, postage.Errorf(postage.EINVALID, "number format %q: longer than 64 characters", p))
	}
	if err := errors.Join(errs...); err != nil {
		return NumberFormat{}, err
	}
	return NumberFormat{pattern: p}, nil
}

// Format renders the number of the seq-th invoice finalized in year.
func (f NumberFormat) Format(year int, seq int64) string {
	s := strings.ReplaceAll(f.pattern, "{year}", fmt.Sprintf("%04d", year))
	return seqRE.ReplaceAllStringFunc(s, func(m string) string {
		w := seqRE.FindStringSubmatch(m)[1]
		if w == "" {
			return strconv.FormatInt(seq, 10)
		}
		n, _ := strconv.Atoi(w)
		return fmt.Sprintf("%0*d", n, seq)
	})
}

// DefaultNumberFormat is the pattern used when none is configured.
const DefaultNumberFormat = "PST-{year}-{seq:6}"

// sumLines returns the subtotal (usage lines), adjustments and total.
// Amounts are rounded to the currency's decimals, so they are added as
// integers of minor units (no allocation per line) while they fit.
func sumLines(lines []Line, places int) (sub, adj, total Money) {
	var s, a int64
	exact := true
	for _, l := range lines {
		d := l.Amount.Decimal
		e := int(d.Exponent())
		if e > 0 || -e > places || d.NumDigits() > 15 {
			exact = false
			break
		}
		v := d.CoefficientInt64() * int64(pow10[places+e])
		if l.Kind == KindAdjustment {
			a += v
		} else {
			s += v
		}
	}
	if !exact {
		var sd, ad decimal.Decimal
		for _, l := range lines {
			if l.Kind == KindAdjustment {
				ad = ad.Add(l.Amount.Decimal)
			} else {
				sd = sd.Add(l.Amount.Decimal)
			}
		}
		return NewMoney(sd, places), NewMoney(ad, places), NewMoney(sd.Add(ad), places)
	}
	exp := int32(-places)
	return NewMoney(decimal.New(s, exp), places), NewMoney(decimal.New(a, exp), places), NewMoney(decimal.New(s+a, exp), places)
}

// usageLines turns a rating result into invoice lines (of member, on a
// consolidated invoice).
func usageLines(res pricing.Result, period pricing.Month, member string) []Line {
	lines := make([]Line, 0, len(res.Lines))
	for _, l := range res.Lines {
		var tiers []Tier // one tier says nothing the line does not (in a portfolio it says which tier the portfolio reached)
		if len(l.Tiers) > 1 || (len(l.Tiers) == 1 && l.PoolQuantity != 0) {
			tiers = make([]Tier, len(l.Tiers))
			for i, t := range l.Tiers {
				tiers[i] = Tier{From: t.From, UpTo: t.UpTo, Quantity: t.Quantity, UnitPrice: NewMoney(t.UnitPrice, res.MinorUnits), Amount: NewMoney(t.Amount, res.MinorUnits)}
			}
		}
		lines = append(lines, Line{
			Kind: KindUsage, Period: period, Member: member, Market: l.Market, Countries: l.Countries,
			Category: l.Category, Free: l.Free, PricingType: l.FreeType, Mode: l.Mode, Custom: l.Custom,
			Quantity: l.Quantity, Unmapped: l.Unmapped, PoolQuantity: l.PoolQuantity, Tiers: tiers, UnitPrice: NewMoney(l.UnitPrice, res.MinorUnits), Average: l.Average,
			Discount: l.Discount, ListAmount: NewMoney(l.ListAmount, res.MinorUnits), DiscountAmount: NewMoney(l.DiscountAmount, res.MinorUnits),
			MessageCategories: l.MessageCategories, CostPlus: l.CostPlus, Amount: NewMoney(l.Amount, res.MinorUnits),
			// No Description: the describer's text is what storage leaves
			// out anyway; readers get it back (expandLines, Freeze).
		})
	}
	return lines
}

// DescribeLine is the text a line shows when nothing more specific was
// written for it: "marketing messages, DE", "notification messages (sent
// as marketing, utility), DE" (a card category billing messages sent under
// other names), "service messages, DE (free category)", "marketing
// messages, DE (free — customer service window)", "Adjustment for 2026-09:
// …".
func DescribeLine(l Line) string {
	if l.Kind == KindAdjustment {
		return fmt.Sprintf("Adjustment for %s: %s messages, %s, usage received after that month was invoiced", l.Period, l.Category, l.Market)
	}
	s := l.Category + " messages, " + l.Market
	if len(l.MessageCategories) > 0 {
		s = l.Category + " messages (sent as " + strings.Join(l.MessageCategories, ", ") + "), " + l.Market
	}
	switch {
	case l.PricingType != "":
		s += " (free — " + freeTypeText(l.PricingType) + ")"
	case l.Free:
		s += freeCategorySuffix
	}
	if len(l.Unmapped) > 0 {
		s += " (including " + strings.Join(l.Unmapped, ", ") + ", priced as " + l.Category + ")"
	}
	return s
}

const freeCategorySuffix = " (free category)"

// describe is the describer of lines: DescribeLine, replaced only by tests
// (export_test.go) to show that finalized invoices keep their text when
// the code that writes it changes; describeIsDefault says it was not.
var (
	describe          = DescribeLine
	describeIsDefault = true
)

// storedDescription is l's description as stored: empty when the
// describer gives it.
func storedDescription(l *Line) string {
	if l.Description == "" {
		return "" // the describer's: a run leaves it to readers
	}
	if l.Kind != KindAdjustment && l.PricingType == "" && len(l.MessageCategories) == 0 && len(l.Unmapped) == 0 && describeIsDefault && isDescription(l.Description, l.Market, l.Category, l.Free) {
		return "" // the common case, checked without building the string
	}
	if l.Description == describe(*l) {
		return ""
	}
	return l.Description
}

// isDescription reports whether s is DescribeLine's text of a usage line
// of market and category without a pricing type.
func isDescription(s, market, category string, free bool) bool {
	const mid = " messages, "
	n := len(category) + len(mid) + len(market)
	if free {
		n += len(freeCategorySuffix)
	}
	if len(s) != n || s[:len(category)] != category || s[len(category):len(category)+len(mid)] != mid {
		return false
	}
	rest := s[len(category)+len(mid):]
	return rest[:len(market)] == market && (!free || rest[len(market):] == freeCategorySuffix)
}

// storedCountries is l's country list as stored: none when it is just the
// market itself.
func storedCountries(l *Line) []pricing.CountryQuantity {
	if len(l.Countries) == 1 && l.Countries[0].Country == l.Market && l.Countries[0].Quantity == l.Quantity {
		return nil
	}
	return l.Countries
}

// expandLines restores in place what appendStoredLinesJSON leaves out.
func expandLines(lines []Line) {
	for i := range lines {
		l := &lines[i]
		if l.Kind == KindUsage && len(l.Countries) == 0 {
			l.Countries = []pricing.CountryQuantity{{Country: l.Market, Quantity: l.Quantity}}
		}
		if l.Description == "" {
			l.Description = describe(*l)
		}
	}
}

// adjustmentLines returns, per (market, category) of an earlier month, the
// difference between its full re-rating and what was already billed.
// Lines whose quantity and amount both match produce nothing.
func adjustmentLines(rerated []Line, billed []Line, period pricing.Month, places int) []Line {
	type acc struct {
		q     int64
		a     decimal.Decimal
		free  bool
		order int
	}
	m := map[lineKey]*acc{}
	var keys []lineKey
	get := func(k lineKey) *acc {
		if x, ok := m[k]; ok {
			return x
		}
		x := &acc{order: len(keys)}
		m[k] = x
		keys = append(keys, k)
		return x
	}
	for _, l := range rerated {
		x := get(lineKey{period, l.Member, l.Market, l.Category, l.PricingType})
		x.q += l.Quantity
		x.a = x.a.Add(l.Amount.Decimal)
		x.free = l.Free
	}
	for _, l := range billed {
		if l.Period != period {
			continue
		}
		x := get(lineKey{period, l.Member, l.Market, l.Category, l.PricingType})
		x.q -= l.Quantity
		x.a = x.a.Sub(l.Amount.Decimal)
		x.free = x.free || l.Free
	}
	var out []Line
	for _, k := range keys {
		x := m[k]
		if x.q == 0 && x.a.IsZero() {
			continue
		}
		l := Line{
			Kind: KindAdjustment, Period: period, Member: k.member, Market: k.market, Category: k.category,
			Free: x.free, PricingType: k.pricingType, Quantity: x.q, UnitPrice: NewMoney(decimal.Zero, places), Amount: NewMoney(x.a, places),
		}
		l.Description = describe(l)
		out = append(out, l)
	}
	return out
}

// NewID returns a random id with a prefix ("pay_", "cn_", "txr_") and 26
// base32 characters (130 random bits).
func NewID(prefix string) string {
	var b [17]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported systems
	}
	return prefix + idEncoding.EncodeToString(b[:])[:26]
}
