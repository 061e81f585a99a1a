package reports

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"postage/billing"
	"postage/pricing"
)

// QuoteDocument is a priced volume mix (POST /api/v1/quotes) and what its
// CSV and PDF say about it.
type QuoteDocument struct {
	Result pricing.Result
	// CardName is the rate card's name (its id is in Result).
	CardName string
	// Customer names the customer whose card and overrides priced the
	// quote ("Acme Ltd (acme-1)"), "" when none did.
	Customer string
	// CustomerCountry is the business's country the quote assumed
	// (international authentication), "" for none.
	CustomerCountry string
	// Created is when the quote was made (its date in the PDF).
	Created time.Time
}

// QuoteListTotals returns what a quote's lines cost before discounts (each
// line's list amount, or its amount when it has no discount) and what the
// discounts take off, so that list − discounts = res.Total.
func QuoteListTotals(res pricing.Result) (list, discounts decimal.Decimal) {
	for _, l := range res.Lines {
		if l.ListAmount.IsZero() && l.DiscountAmount.IsZero() {
			list = list.Add(l.Amount)
			continue
		}
		list = list.Add(l.ListAmount)
		discounts = discounts.Add(l.DiscountAmount)
	}
	return list, discounts
}

// QuoteCSVHeader are the columns of a quote's CSV: one row per line, then
// a row "total" with the quantities and amounts added up.
var QuoteCSVHeader = []string{
	"line", "card_id", "card_version", "month", "currency", "market", "market_name", "countries", "category", "message_categories", "free",
	"quantity", "unit_price", "average_price", "list_amount", "discount_percent", "discount_amount", "amount",
}

// QuoteCSV writes a quote as CSV (QuoteCSVHeader). Money has at least the
// currency's minor-unit decimals.
func QuoteCSV(w io.Writer, q QuoteDocument) error {
	r := q.Result
	money := func(d decimal.Decimal) string { return fixedMoney(d, r.MinorUnits) }
	t := Table{Header: QuoteCSVHeader}
	var qty int64
	for i, l := range r.Lines {
		var cs []string
		for _, c := range l.Countries {
			cs = append(cs, c.Country+":"+strconv.FormatInt(c.Quantity, 10))
		}
		list, disc, pct := money(l.Amount), "", ""
		if !l.Discount.IsZero() {
			list, disc, pct = money(l.ListAmount), money(l.DiscountAmount), l.Discount.String()
		}
		unit := l.UnitPrice.String()
		if l.Free {
			unit = fixedMoney(decimal.Zero, r.MinorUnits)
		}
		t.Rows = append(t.Rows, []string{strconv.Itoa(i + 1), r.CardID, strconv.Itoa(r.Version), r.Month.String(), r.Currency,
			l.Market, countryLabel(l.Market), strings.Join(cs, ";"), l.Category, strings.Join(l.MessageCategories, ";"), strconv.FormatBool(l.Free),
			strconv.FormatInt(l.Quantity, 10), unit, strconv.FormatBool(l.Average), list, pct, disc, money(l.Amount)})
		qty += l.Quantity
	}
	list, disc := QuoteListTotals(r)
	t.Rows = append(t.Rows, []string{"total", r.CardID, strconv.Itoa(r.Version), r.Month.String(), r.Currency,
		"", "", "", "", "", "", strconv.FormatInt(qty, 10), "", "", money(list), "", money(disc), money(r.Total)})
	return t.WriteCSV(w)
}

// fixedMoney writes an amount with at least minor decimals (and any
// further ones an exact amount has).
func fixedMoney(d decimal.Decimal, minor int) string {
	return billing.NewMoney(d, minor).String()
}

// QuotePDF prints a quote (quotePage) with the printer. Its date is
// q.Created, so the same quote prints the same bytes.
func QuotePDF(ctx context.Context, pr PDFPrinter, q QuoteDocument) ([]byte, error) {
	return printPDF(ctx, pr, quotePage(q), q.Created)
}

// QuoteHTML writes the HTML a quote's PDF is printed from.
func QuoteHTML(w io.Writer, q QuoteDocument) error {
	return drawHTML(w, quotePage(q))
}

// quotePage lays out a quote as an A4 page: the card and version, the
// month whose tiers it assumes, the customer (if any), one row per line
// with list price, discount and amount, the totals, and notes on tiers,
// discounts and rounding.
func quotePage(q QuoteDocument) page {
	r := q.Result
	fixed := func(d decimal.Decimal) string { return groupAmount(d.StringFixed(int32(r.MinorUnits))) }
	title := fmt.Sprintf("Quote on %s v%d", r.CardID, r.Version)
	card := r.CardID
	if q.CardName != "" && q.CardName != r.CardID {
		card = q.CardName + " (" + r.CardID + ")"
	}
	p := page{Title: title, Footer: title, Heading: "QUOTE", Lead: "Monthly price of a volume mix, rated exactly as an invoice would be."}
	p.Facts = []fact{
		{"Rate card", fmt.Sprintf("%s, version %d", card, r.Version)},
		{"Month", r.Month.String()},
		{"Currency", r.Currency},
	}
	if q.Customer != "" {
		p.Facts = append(p.Facts, fact{"Customer", q.Customer + " (its card and negotiated prices)"})
	}
	if q.CustomerCountry != "" {
		p.Facts = append(p.Facts, fact{"Customer's country", CountryName(q.CustomerCountry)})
	}
	p.Facts = append(p.Facts, fact{"Date", q.Created.UTC().Format("2 January 2006")})

	discounted := false
	var prices []decimal.Decimal
	for _, l := range r.Lines {
		discounted = discounted || !l.Discount.IsZero()
		if !l.Free {
			prices = append(prices, l.UnitPrice)
			for _, t := range l.Tiers {
				prices = append(prices, t.UnitPrice)
			}
		}
	}
	dec := fixedDecimals(r.MinorUnits, prices...)
	cols := []column{{Label: "Market"}, {Label: "Category"}, {Label: "Messages", Num: true}, {Label: "Unit price", Num: true}, {Label: "List " + r.Currency, Num: true}}
	if discounted {
		cols = append(cols, column{Label: "Discount", Num: true})
	}
	cols = append(cols, column{Label: "Amount " + r.Currency, Num: true})
	cells := func(first [5]string, discount, amount string) []string {
		out := first[:]
		if discounted {
			out = append(out, discount)
		}
		return append(out, amount)
	}
	t := table{Columns: cols}
	var qty int64
	for _, l := range r.Lines {
		unit := l.UnitPrice.StringFixed(dec)
		switch {
		case l.Free:
			unit = "free"
		case l.Average:
			unit += " avg"
		}
		list, disc := fixed(l.Amount), ""
		if !l.Discount.IsZero() {
			list, disc = fixed(l.ListAmount), "-"+fixed(l.DiscountAmount)+" ("+l.Discount.String()+"%)"
		}
		market := l.Market
		if n := countryLabel(l.Market); n != "" {
			market = n
		}
		g := []row{newRow("", cols, cells([5]string{market, l.Category, groupThousands(l.Quantity), unit, list}, disc, fixed(l.Amount))...)}
		if len(l.MessageCategories) > 0 {
			g = append(g, newRow("sub", cols, l.Category+": sent as "+strings.Join(l.MessageCategories, ", ")))
		}
		if len(l.Countries) > 1 {
			g = append(g, newRow("sub", cols, countriesText(l.Countries)))
		}
		if len(l.Tiers) > 1 {
			for _, tier := range l.Tiers {
				upTo := "and above"
				if tier.UpTo != nil {
					upTo = "to " + groupThousands(*tier.UpTo)
				}
				g = append(g, newRow("sub", cols, cells([5]string{fmt.Sprintf("tier %s %s", groupThousands(tier.From), upTo), "", groupThousands(tier.Quantity),
					tier.UnitPrice.StringFixed(dec), groupAmount(fixedMoney(tier.Amount, r.MinorUnits))}, "", "")...))
			}
		}
		t.Groups = append(t.Groups, g)
		qty += l.Quantity
	}
	p.Tables = []table{t}
	list, disc := QuoteListTotals(r)
	p.Totals = []total{{Label: "Messages", Amount: groupThousands(qty)}}
	if !disc.IsZero() {
		p.Totals = append(p.Totals, total{Label: "List price", Amount: fixed(list)}, total{Label: "Discounts", Amount: "-" + fixed(disc)})
	}
	p.Totals = append(p.Totals, total{Label: "Monthly total " + r.Currency, Amount: fixed(r.Total), Grand: true})
	p.Notes = []string{
		"Tier volume is counted per calendar month (UTC), per market and category: the quantities are one month's.",
		fmt.Sprintf("Amounts are in %s. Each line is rounded once to the currency's minor unit; the total is the sum of the rounded lines.", r.Currency),
	}
	if !disc.IsZero() {
		p.Notes = append(p.Notes, "Discounts are the customer's negotiated percentages, taken off each line's exact amount before its one rounding; a line's list price less its discount is its amount.")
	}
	p.Notes = append(p.Notes, "A quote is an estimate at today's prices: the invoice rates the usage actually sent with the card version in effect in its month.")
	return p
}
