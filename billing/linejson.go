package billing

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

	"github.com/shopspring/decimal"

	"postage/internal/jsonx"
	"postage/pricing"
)

// appendStoredLinesJSON appends lines as the invoices table keeps them,
// byte for byte what encoding/json writes for the stored form (a test
// checks it on random lines): without descriptions their fields determine
// and without a country list that is just the market itself (expandLines
// restores both; a typical invoice's lines shrink by a third). Invoice runs
// encode every customer's lines to store them and to compare them with
// what is stored; reflection made that a fifth of a run's CPU time.
func appendStoredLinesJSON(b []byte, lines []Line) []byte {
	b = append(b, '[')
	for i := range lines {
		if i > 0 {
			b = append(b, ',')
		}
		l := &lines[i]
		desc, countries := storedDescription(l), storedCountries(l)
		if desc == l.Description && len(countries) == len(l.Countries) {
			b = appendLineJSON(b, l)
			continue
		}
		c := *l
		c.Description, c.Countries = desc, countries
		b = appendLineJSON(b, &c)
	}
	return append(b, ']')
}

// Draft is a draft invoice encoded for the ledger: its JSON columns and
// its content hash, made by the rating workers of a run so the writers
// only write.
type Draft struct {
	Invoice  *Invoice
	Customer []byte   // the customer snapshot as JSON
	Lines    []byte   // the lines as stored (appendStoredLinesJSON)
	Details  []byte   // the invoice's Details as JSON; empty when it has none
	TaxLines []byte   // the tax lines as JSON
	Hash     []byte   // of what a refresh can change: an unchanged draft is not rewritten
	Adjusts  []string // the months its adjustment lines bill
	Fresh    bool     // no invoice of its customer and period existed when the run began
}

// EncodeDraft encodes d for the ledger.
func EncodeDraft(d *Invoice) *Draft {
	cb := appendCustomerJSON(make([]byte, 0, 128), &d.Customer)
	lb := appendStoredLinesJSON(make([]byte, 0, 160*len(d.Lines)+2), d.Lines)
	db := EncodeDetails(d)
	tb := encodeTaxLines(d.TaxLines)
	var num [48]byte
	h := sha256.New()
	for _, part := range [][]byte{cb, lb, tb, []byte(d.TaxNote), []byte(d.Currency), []byte(d.CardID),
		strconv.AppendInt(num[:0], int64(d.CardVersion), 10), strconv.AppendInt(num[24:24], int64(d.PaymentTermsDays), 10), db} {
		h.Write(part)
		h.Write([]byte{0})
	}
	h.Write(appendDecimalFixed(num[:0], d.Total.Decimal, d.Total.Places))
	h.Write([]byte{0})
	return &Draft{Invoice: d, Customer: cb, Lines: lb, Details: db, TaxLines: tb, Adjusts: adjustedPeriods(d.Lines), Hash: h.Sum(nil)}
}

// Details are what an invoice holds beyond its lines and totals, stored
// as one JSON document (invoices.details).
type Details struct {
	Sections      []Section              `json:"sections,omitempty"`
	Unbilled      []UnbilledLine         `json:"unbilled,omitempty"`
	CostCard      *pricing.CostRef       `json:"cost_card,omitempty"`
	ExchangeRates []pricing.ExchangeRate `json:"exchange_rates,omitempty"`
}

// EncodeDetails returns inv's details as stored: nil when it has none (most
// invoices; nothing is encoded for them).
func EncodeDetails(inv *Invoice) []byte {
	if len(inv.Sections) == 0 && len(inv.Unbilled) == 0 && inv.CostCard == nil && len(inv.ExchangeRates) == 0 {
		return nil
	}
	b, err := json.Marshal(Details{Sections: inv.Sections, Unbilled: inv.Unbilled, CostCard: inv.CostCard, ExchangeRates: inv.ExchangeRates})
	if err != nil {
		panic(fmt.Sprintf("billing: encode invoice details: %v", err)) // plain values: cannot fail
	}
	return b
}

// DecodeDetails restores stored details into inv.
func DecodeDetails(inv *Invoice, b []byte) error {
	if len(b) == 0 {
		return nil
	}
	var d Details
	if err := json.Unmarshal(b, &d); err != nil {
		return fmt.Errorf("invoice %s details: %w", inv.ID, err)
	}
	inv.Sections, inv.Unbilled, inv.CostCard, inv.ExchangeRates = d.Sections, d.Unbilled, d.CostCard, d.ExchangeRates
	return nil
}

var emptyJSONArray = []byte("[]")

// encodeTaxLines is the tax lines as stored, byte for byte what
// encoding/json writes (a test compares them): "[]" for the usual untaxed
// draft, without reflection for the others (a run encodes every draft's).
func encodeTaxLines(tl []TaxLine) []byte {
	if len(tl) == 0 {
		return emptyJSONArray
	}
	b := make([]byte, 0, 128*len(tl))
	b = append(b, '[')
	for i := range tl {
		if i > 0 {
			b = append(b, ',')
		}
		t := &tl[i]
		b = append(b, `{"name":`...)
		b = jsonx.AppendString(b, t.Name)
		b = append(b, `,"jurisdiction":`...)
		b = jsonx.AppendString(b, t.Jurisdiction)
		b = append(b, `,"rate":`...)
		b = appendDecimalJSON(b, t.Rate)
		if t.RateID != "" {
			b = append(b, `,"rate_id":`...)
			b = jsonx.AppendString(b, t.RateID)
		}
		b = append(b, `,"taxable_amount":"`...)
		b = appendMoney(b, t.TaxableAmount)
		b = append(b, `","tax":"`...)
		b = appendMoney(b, t.Tax)
		b = append(b, `"}`...)
	}
	return append(b, ']')
}

// DecodeTaxLines reads tax lines as stored; amounts get places decimals.
func DecodeTaxLines(b []byte, places int) ([]TaxLine, error) {
	var tl []TaxLine
	if len(b) == 0 {
		return []TaxLine{}, nil
	}
	if err := json.Unmarshal(b, &tl); err != nil {
		return nil, err
	}
	for i := range tl {
		tl[i].TaxableAmount.Places = int32(places)
		tl[i].Tax.Places = int32(places)
	}
	if tl == nil {
		tl = []TaxLine{}
	}
	return tl, nil
}

// DecodeLines reads lines as stored, restoring what storage leaves out
// (descriptions from the describer, country lists that are the market).
func DecodeLines(b []byte) ([]Line, error) {
	var lines []Line
	if err := json.Unmarshal(b, &lines); err != nil {
		return nil, err
	}
	expandLines(lines)
	return lines, nil
}

// adjustedPeriods returns the months that lines' adjustment lines bill,
// sorted and each once: the invoices table's adjusts column.
func adjustedPeriods(lines []Line) []string {
	out := []string{}
	for _, l := range lines {
		if l.Kind == KindAdjustment {
			out = append(out, l.Period.String())
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// appendCustomerJSON appends c as encoding/json writes it (a test compares
// them): every draft of a run stores and hashes its customer snapshot.
func appendCustomerJSON(b []byte, c *CustomerSnapshot) []byte {
	b = append(b, `{"id":`...)
	b = jsonx.AppendString(b, c.ID)
	b = append(b, `,"name":`...)
	b = jsonx.AppendString(b, c.Name)
	if c.Country != "" {
		b = append(b, `,"country":`...)
		b = jsonx.AppendString(b, c.Country)
	}
	if c.Email != "" {
		b = append(b, `,"email":`...)
		b = jsonx.AppendString(b, c.Email)
	}
	b = append(b, `,"currency":`...)
	b = jsonx.AppendString(b, c.Currency)
	for _, f := range [...]struct{ name, v string }{
		{`,"tax_id":`, c.TaxID}, {`,"tax_status":`, string(c.TaxStatus)}, {`,"tax_country":`, c.TaxCountry}, {`,"tax_region":`, c.TaxRegion},
	} {
		if f.v != "" {
			b = append(b, f.name...)
			b = jsonx.AppendString(b, f.v)
		}
	}
	if a := c.Address; a != nil {
		b = append(b, `,"address":{`...)
		first := true
		for _, f := range [...]struct{ name, v string }{
			{`"line1":`, a.Line1}, {`"line2":`, a.Line2}, {`"city":`, a.City}, {`"postal_code":`, a.PostalCode}, {`"region":`, a.Region}, {`"country":`, a.Country},
		} {
			if f.v == "" {
				continue
			}
			if !first {
				b = append(b, ',')
			}
			first = false
			b = append(b, f.name...)
			b = jsonx.AppendString(b, f.v)
		}
		b = append(b, '}')
	}
	return append(b, '}')
}

func appendLineJSON(b []byte, l *Line) []byte {
	b = append(b, `{"kind":`...)
	b = jsonx.AppendString(b, l.Kind)
	b = append(b, `,"period":"`...)
	b, _ = l.Period.AppendText(b) // digits and '-': nothing to escape
	b = append(b, '"')
	if l.Member != "" {
		b = append(b, `,"member":`...)
		b = jsonx.AppendString(b, l.Member)
	}
	b = append(b, `,"market":`...)
	b = jsonx.AppendString(b, l.Market)
	if len(l.Countries) > 0 {
		b = append(b, `,"countries":[`...)
		for i, c := range l.Countries {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"country":`...)
			b = jsonx.AppendString(b, c.Country)
			b = append(b, `,"quantity":`...)
			b = strconv.AppendInt(b, c.Quantity, 10)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = append(b, `,"category":`...)
	b = jsonx.AppendString(b, l.Category)
	if l.Free {
		b = append(b, `,"free":true`...)
	}
	if l.PricingType != "" {
		b = append(b, `,"pricing_type":`...)
		b = jsonx.AppendString(b, l.PricingType)
	}
	if l.Mode != "" {
		b = append(b, `,"mode":`...)
		b = jsonx.AppendString(b, string(l.Mode))
	}
	if l.Custom {
		b = append(b, `,"custom":true`...)
	}
	b = append(b, `,"quantity":`...)
	b = strconv.AppendInt(b, l.Quantity, 10)
	if len(l.Unmapped) > 0 {
		b = append(b, `,"unmapped":[`...)
		for i, u := range l.Unmapped {
			if i > 0 {
				b = append(b, ',')
			}
			b = jsonx.AppendString(b, u)
		}
		b = append(b, ']')
	}
	if l.PoolQuantity != 0 {
		b = append(b, `,"pool_quantity":`...)
		b = strconv.AppendInt(b, l.PoolQuantity, 10)
	}
	if len(l.Tiers) > 0 {
		b = append(b, `,"tiers":[`...)
		for i := range l.Tiers {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendTierJSON(b, &l.Tiers[i])
		}
		b = append(b, ']')
	}
	b = append(b, `,"unit_price":"`...)
	b = appendMoney(b, l.UnitPrice)
	b = append(b, '"')
	if l.Average {
		b = append(b, `,"average":true`...)
	}
	if !l.Discount.IsZero() {
		b = append(b, `,"discount":`...)
		b = appendDecimalJSON(b, l.Discount)
	}
	if !l.ListAmount.IsZero() {
		b = append(b, `,"list_amount":"`...)
		b = appendMoney(b, l.ListAmount)
		b = append(b, '"')
	}
	if !l.DiscountAmount.IsZero() {
		b = append(b, `,"discount_amount":"`...)
		b = appendMoney(b, l.DiscountAmount)
		b = append(b, '"')
	}
	if len(l.MessageCategories) > 0 {
		b = append(b, `,"message_categories":[`...)
		for i, c := range l.MessageCategories {
			if i > 0 {
				b = append(b, ',')
			}
			b = jsonx.AppendString(b, c)
		}
		b = append(b, ']')
	}
	if cp := l.CostPlus; cp != nil {
		b = append(b, `,"cost_plus":{"cost":`...)
		b = appendDecimalJSON(b, cp.Cost)
		b = append(b, `,"unit_cost":`...)
		b = appendDecimalJSON(b, cp.UnitCost)
		b = append(b, `,"markup_percent":`...)
		b = appendDecimalJSON(b, cp.Markup)
		b = append(b, `,"fee":`...)
		b = appendDecimalJSON(b, cp.Fee)
		b = append(b, `,"floor":`...)
		b = appendDecimalJSON(b, cp.Floor)
		if cp.FloorApplied {
			b = append(b, `,"floor_applied":true`...)
		}
		b = append(b, '}')
	}
	b = append(b, `,"amount":"`...)
	b = appendMoney(b, l.Amount)
	b = append(b, '"')
	if l.Description != "" {
		b = append(b, `,"description":`...)
		b = jsonx.AppendString(b, l.Description)
	}
	return append(b, '}')
}

func appendTierJSON(b []byte, t *Tier) []byte {
	b = append(b, `{"from":`...)
	b = strconv.AppendInt(b, t.From, 10)
	b = append(b, `,"up_to":`...)
	if t.UpTo == nil {
		b = append(b, "null"...)
	} else {
		b = strconv.AppendInt(b, *t.UpTo, 10)
	}
	b = append(b, `,"quantity":`...)
	b = strconv.AppendInt(b, t.Quantity, 10)
	b = append(b, `,"unit_price":"`...)
	b = appendMoney(b, t.UnitPrice)
	b = append(b, '"')
	b = append(b, `,"amount":"`...)
	b = appendMoney(b, t.Amount)
	return append(b, '"', '}')
}

// appendDecimalJSON writes d as decimal.Decimal.MarshalJSON does.
func appendDecimalJSON(b []byte, d decimal.Decimal) []byte {
	if decimal.MarshalJSONWithoutQuotes {
		return appendDecimal(b, d)
	}
	b = append(b, '"')
	b = appendDecimal(b, d)
	return append(b, '"')
}

// The decimal writers below produce what decimal.Decimal's String and
// StringFixed do, without their allocations (a run formats every line's
// prices and amounts, 600,000 of each); values whose digits do not fit an
// int64 take the library's own path. A test compares them on random values.

// pow10 holds 10^0 … 10^18.
var pow10 = func() (p [19]int64) {
	p[0] = 1
	for i := 1; i < len(p); i++ {
		p[i] = p[i-1] * 10
	}
	return p
}()

// appendDecimal appends d.String().
func appendDecimal(b []byte, d decimal.Decimal) []byte {
	if !decimal.TrimTrailingZeros || decimal.UseScientificNotation {
		return append(b, d.String()...) // the library's global options, not the defaults written below
	}
	if n, e := d.NumDigits(), int(d.Exponent()); n <= 18 {
		if e <= 0 {
			return appendScaled(b, d.CoefficientInt64(), -e, true)
		}
		if n+e <= 18 {
			return appendScaled(b, d.CoefficientInt64()*pow10[e], 0, true)
		}
	}
	return append(b, d.String()...)
}

// appendDecimalFixed appends d.StringFixed(places).
func appendDecimalFixed(b []byte, d decimal.Decimal, places int32) []byte {
	// Fast when d has no more than places decimals (amounts are rounded to
	// their currency's), so the fixed form only adds zeros.
	if e := int(d.Exponent()); places >= 0 && e >= -int(places) && d.NumDigits()+e+int(places) <= 18 {
		return appendScaled(b, d.CoefficientInt64()*pow10[e+int(places)], int(places), false)
	}
	return append(b, d.StringFixed(places)...)
}

// appendMoney appends m.String(): the amount with at least m.Places
// decimals, and those beyond only as far as they are not trailing zeros.
func appendMoney(b []byte, m Money) []byte {
	places := m.Places
	e := -m.Decimal.Exponent()
	if places < 0 || e <= places {
		return appendDecimalFixed(b, m.Decimal, places)
	}
	b = appendDecimalFixed(b, m.Decimal, e)
	for ; e > places && b[len(b)-1] == '0'; e-- {
		b = b[:len(b)-1]
	}
	if b[len(b)-1] == '.' {
		b = b[:len(b)-1]
	}
	return b
}

// appendScaled appends c·10^-frac with frac digits after the point, or
// with its trailing zeros (and then the point) dropped when trim is set.
func appendScaled(b []byte, c int64, frac int, trim bool) []byte {
	u := uint64(c)
	if c < 0 {
		b = append(b, '-')
		u = -u
	}
	var buf [20]byte
	digits := strconv.AppendUint(buf[:0], u, 10)
	if frac == 0 {
		return append(b, digits...)
	}
	intPart, fracPart, leading := []byte{'0'}, digits, frac-len(digits)
	if len(digits) > frac {
		intPart, fracPart, leading = digits[:len(digits)-frac], digits[len(digits)-frac:], 0
	}
	if trim {
		for len(fracPart) > 0 && fracPart[len(fracPart)-1] == '0' {
			fracPart = fracPart[:len(fracPart)-1]
		}
		if len(fracPart) == 0 {
			leading = 0
		}
	}
	b = append(b, intPart...)
	if leading+len(fracPart) == 0 {
		return b
	}
	b = append(b, '.')
	for range leading {
		b = append(b, '0')
	}
	return append(b, fracPart...)
}
