package pricing

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/shopspring/decimal"

	"postage"
)

// The CSV format of one rate card version (docs/PRICING.md has the full
// description). Every row starts with its kind; the other columns depend on
// the kind; lines starting with '#' are comments:
//
//	# postage rate card version (format 1)
//	setting,currency,USD
//	setting,rounding,half_even
//	setting,default_market,Other
//	category,notification,priced,,marketing utility
//	category,session,free,,service
//	country,DE,Germany
//	price,Germany,notification,flat,,0.0887
//	price,DE,notification,graduated,250000,0.0887
//	price,DE,notification,graduated,,0.084265
//
// Columns by kind:
//
//	setting:   kind, name, value        (card_id, version, status, effective_from, note, currency, rounding, default_market, unmapped)
//	category:  kind, category, pricing (priced|free), international, aliases (space separated)
//	country:   kind, country, market
//	price:     kind, market, category, mode (flat|graduated|volume), tier_up_to, unit_price
//	cost_plus: kind, market, category, markup_percent, fee, floor (market and category empty: the default rule)
//
// A tiered price is one row per tier, consecutive, in ascending order of
// tier_up_to; the last tier has an empty tier_up_to (unbounded). A
// cost-plus version has cost_plus rows and no category, country or price
// rows.
var csvColumns = map[string][]string{
	"setting":   {"kind", "name", "value"},
	"category":  {"kind", "category", "pricing", "international", "aliases"},
	"country":   {"kind", "country", "market"},
	"price":     {"kind", "market", "category", "mode", "tier_up_to", "unit_price"},
	"cost_plus": {"kind", "market", "category", "markup_percent", "fee", "floor"},
}

// CSVHeader is the first line of an exported version.
const CSVHeader = "# postage rate card version (format 1): kind,... see docs/PRICING.md"

// RowError is one problem of an imported CSV file. Row is the 1-based line
// number (0: the file as a whole), Column the column's name.
type RowError struct {
	Row     int    `json:"row"`
	Column  string `json:"column"`
	Message string `json:"message"`
}

func (e RowError) String() string {
	if e.Row == 0 {
		return e.Message
	}
	return fmt.Sprintf("row %d, %s: %s", e.Row, e.Column, e.Message)
}

// EncodeCSV writes v in the CSV format. DecodeCSV of the output returns a
// version equal to v, and encoding that again gives the same bytes.
func EncodeCSV(w io.Writer, v *Version) error {
	var buf bytes.Buffer
	buf.WriteString(CSVHeader + "\n")
	cw := csv.NewWriter(&buf)
	rec := func(fields ...string) { _ = cw.Write(fields) }
	setting := func(name, value string) {
		if value != "" {
			rec("setting", name, value)
		}
	}
	setting("card_id", v.CardID)
	if v.Number != 0 {
		setting("version", strconv.Itoa(v.Number))
	}
	setting("status", string(v.Status))
	setting("effective_from", v.EffectiveFrom.String())
	setting("note", v.Note)
	setting("currency", v.Currency)
	setting("rounding", string(v.Rounding))
	setting("default_market", v.DefaultMarket)
	setting("unmapped", v.Unmapped)
	if cp := v.CostPlus; cp != nil {
		rec("cost_plus", "", "", cp.Markup.String(), cp.Fee.String(), cp.Floor.String())
		for _, e := range cp.Exceptions {
			rec("cost_plus", e.Market, e.Category, e.Markup.String(), e.Fee.String(), e.Floor.String())
		}
	}
	for _, c := range v.Categories {
		pricing := "priced"
		if c.Free {
			pricing = "free"
		}
		rec("category", c.Name, pricing, c.International, strings.Join(c.Aliases, " "))
	}
	for _, c := range sortedKeys(v.Countries) {
		rec("country", c, v.Countries[c])
	}
	for _, p := range v.Prices {
		if p.Mode == ModeFlat {
			rec("price", p.Market, p.Category, string(p.Mode), "", p.UnitPrice.String())
			continue
		}
		for _, t := range p.Tiers {
			upTo := ""
			if t.UpTo != nil {
				upTo = strconv.FormatInt(*t.UpTo, 10)
			}
			rec("price", p.Market, p.Category, string(p.Mode), upTo, t.UnitPrice.String())
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("encode rate card csv: %w", err)
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// DecodeCSV reads a version in the CSV format and validates it. An invalid
// file is rejected whole: the error is EINVALID and its Detail is a
// []RowError listing every problem by row and column (malformed rows,
// unknown kinds, non-numeric or negative prices, bad country codes, unknown
// categories, overlapping or unordered tiers, duplicate rows, missing
// prices).
func DecodeCSV(r io.Reader) (*Version, error) {
	cr := csv.NewReader(r)
	cr.Comment = '#'
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true

	v := &Version{Countries: map[string]string{}}
	var errs []RowError
	bad := func(row int, column, format string, args ...any) {
		errs = append(errs, RowError{Row: row, Column: column, Message: fmt.Sprintf(format, args...)})
	}
	badRows := map[int]bool{}
	settingRow := map[string]int{}
	countryRow := map[string]int{}
	categoryRow := map[string]int{}
	type tierKey struct {
		market, category string
		tier             int
	}
	priceRow := map[tierKey]int{}
	costPlusRow := map[[2]string]int{}
	priceIndex := map[[2]string]int{} // (market, category) → index in v.Prices
	var last [2]string                // (market, category) of the previous price row

	for {
		fields, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				bad(pe.Line, "", "malformed CSV: %v", pe.Err)
				if pe.Line == 0 || errors.Is(pe.Err, csv.ErrQuote) {
					break // the rest of the file cannot be read reliably
				}
				continue
			}
			return nil, fmt.Errorf("read rate card csv: %w", err)
		}
		line, _ := cr.FieldPos(0)
		for i := range fields {
			fields[i] = strings.TrimSpace(fields[i])
		}
		kind := fields[0]
		cols, ok := csvColumns[kind]
		if !ok {
			bad(line, "kind", "unknown row kind %q: want setting, category, country, price or cost_plus", kind)
			badRows[line] = true
			continue
		}
		if len(fields) != len(cols) {
			// Trailing empty optional columns may be left out.
			if len(fields) < len(cols) && (kind == "category" || kind == "price" || kind == "cost_plus") && len(fields) >= 3 {
				fields = append(fields, make([]string, len(cols)-len(fields))...)
			} else {
				bad(line, "kind", "a %s row has %d columns (%s), this one has %d", kind, len(cols), strings.Join(cols, ", "), len(fields))
				badRows[line] = true
				continue
			}
		}
		switch kind {
		case "setting":
			name, value := fields[1], fields[2]
			if _, dup := settingRow[name]; dup {
				bad(line, "name", "duplicate setting %q (first on row %d)", name, settingRow[name])
				badRows[line] = true
				continue
			}
			settingRow[name] = line
			switch name {
			case "card_id":
				v.CardID = value
			case "version":
				n, err := strconv.Atoi(value)
				if err != nil || n < 0 {
					bad(line, "value", "version %q is not a number", value)
				}
				v.Number = n
			case "status":
				v.Status = Status(value)
			case "effective_from":
				m, err := ParseMonth(value)
				if err != nil {
					bad(line, "value", "effective_from %q: want YYYY-MM", value)
				}
				v.EffectiveFrom = m
			case "note":
				v.Note = value
			case "currency":
				v.Currency = value
			case "rounding":
				v.Rounding = Rounding(value)
			case "default_market":
				v.DefaultMarket = value
			case "unmapped":
				v.Unmapped = value
			default:
				bad(line, "name", "unknown setting %q", name)
				badRows[line] = true
			}
		case "category":
			c := Category{Name: fields[1], International: fields[3], Aliases: strings.Fields(fields[4])}
			switch fields[2] {
			case "priced":
			case "free":
				c.Free = true
			default:
				bad(line, "pricing", "pricing %q: want priced or free", fields[2])
			}
			if first, dup := categoryRow[c.Name]; dup {
				bad(line, "category", "duplicate category %q (first on row %d)", c.Name, first)
				badRows[line] = true
				continue
			}
			categoryRow[c.Name] = line
			v.Categories = append(v.Categories, c)
		case "cost_plus":
			key := [2]string{fields[1], fields[2]}
			if first, dup := costPlusRow[key]; dup {
				bad(line, "market", "duplicate cost_plus rule for market %q category %q (first on row %d)", key[0], key[1], first)
				badRows[line] = true
				continue
			}
			costPlusRow[key] = line
			num := func(col int, name string) decimal.Decimal {
				if fields[col] == "" {
					return decimal.Decimal{}
				}
				d, err := decimal.NewFromString(fields[col])
				if err != nil {
					bad(line, name, "%s %q is not a decimal number", name, fields[col])
					badRows[line] = true
				}
				return d
			}
			rule := CostPlusRule{Market: key[0], Category: key[1], Markup: num(3, "markup_percent"), Fee: num(4, "fee"), Floor: num(5, "floor")}
			if v.CostPlus == nil {
				v.CostPlus = &CostPlus{}
			}
			if key == [2]string{} {
				v.CostPlus.Markup, v.CostPlus.Fee, v.CostPlus.Floor = rule.Markup, rule.Fee, rule.Floor
			} else {
				v.CostPlus.Exceptions = append(v.CostPlus.Exceptions, rule)
			}
		case "country":
			c, m := fields[1], fields[2]
			if first, dup := countryRow[c]; dup {
				bad(line, "country", "duplicate country %q (first on row %d)", c, first)
				badRows[line] = true
				continue
			}
			countryRow[c] = line
			v.Countries[c] = m
		case "price":
			key := [2]string{fields[1], fields[2]}
			mode := Mode(fields[3])
			price, err := decimal.NewFromString(fields[5])
			if err != nil {
				bad(line, "unit_price", "unit price %q is not a decimal number", fields[5])
				badRows[line] = true
			}
			var upTo *int64
			if fields[4] != "" {
				n, err := strconv.ParseInt(fields[4], 10, 64)
				if err != nil || n <= 0 {
					bad(line, "tier_up_to", "tier_up_to %q is not a positive whole number", fields[4])
					badRows[line] = true
					n = -1 // a bounded tier that matches no other
					upTo = &n
				} else {
					upTo = &n
				}
			}
			i, seen := priceIndex[key]
			if seen && key != last {
				bad(line, "category", "duplicate price for market %q category %q (first on row %d): tiers of one price must be consecutive rows", key[0], key[1], priceRow[tierKey{key[0], key[1], -1}])
				badRows[line] = true
				continue
			}
			last = key
			if !seen {
				v.Prices = append(v.Prices, Price{Market: key[0], Category: key[1], Mode: mode})
				i = len(v.Prices) - 1
				priceIndex[key] = i
				priceRow[tierKey{key[0], key[1], -1}] = line
			}
			p := &v.Prices[i]
			if p.Mode != mode {
				bad(line, "mode", "mode %q differs from the mode %q of the price's first row %d", mode, p.Mode, priceRow[tierKey{key[0], key[1], -1}])
				badRows[line] = true
				continue
			}
			if mode == ModeFlat {
				if seen {
					bad(line, "category", "duplicate flat price for market %q category %q (first on row %d)", key[0], key[1], priceRow[tierKey{key[0], key[1], -1}])
					badRows[line] = true
					continue
				}
				if fields[4] != "" {
					bad(line, "tier_up_to", "a flat price has no tier_up_to")
					badRows[line] = true
				}
				p.UnitPrice = price
				continue
			}
			for k, t := range p.Tiers {
				if (t.UpTo == nil && upTo == nil) || (t.UpTo != nil && upTo != nil && *t.UpTo == *upTo) {
					bad(line, "tier_up_to", "duplicate tier %s for market %q category %q (first on row %d)", fields[4], key[0], key[1], priceRow[tierKey{key[0], key[1], k}])
					badRows[line] = true
				}
			}
			priceRow[tierKey{key[0], key[1], len(p.Tiers)}] = line
			p.Tiers = append(p.Tiers, Tier{UpTo: upTo, UnitPrice: price})
		}
	}
	v.Normalize()
	if v.Rounding == "" {
		v.Rounding = RoundHalfEven
	}
	if v.Status == "" {
		v.Status = StatusDraft
	}

	// Content problems, located at the row they come from. Rows that
	// already failed to parse are not reported twice.
	for _, p := range v.problems() {
		row := 0
		switch p.at.kind {
		case "setting":
			row = settingRow[p.at.a]
		case "country":
			row = countryRow[p.at.a]
		case "category":
			row = categoryRow[p.at.a]
		case "price":
			row = priceRow[tierKey{p.at.a, p.at.b, p.at.tier}]
		case "cost_plus":
			row = costPlusRow[[2]string{p.at.a, p.at.b}]
		}
		if row != 0 && badRows[row] {
			continue
		}
		msg := p.msg
		if row == 0 {
			msg = p.String()
		}
		bad(row, p.column, "%s", msg)
	}
	if len(errs) > 0 {
		sort.SliceStable(errs, func(i, j int) bool { return errs[i].Row < errs[j].Row })
		e := postage.Errorf(postage.EINVALID, "rate card CSV rejected: %d problem(s); first: %s", len(errs), errs[0])
		e.Detail = errs
		return nil, e
	}
	return v, nil
}
