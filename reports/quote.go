package reports

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/go-pdf/fpdf"
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

// QuotePDF writes a quote as an A4 page: the card and version, the month
// whose tiers it assumes, the customer (if any), one row per line with
// list price, discount and amount, the totals, and notes on tiers,
// discounts and rounding. Its date is q.Created, so the same quote draws
// the same bytes. Text uses the core font Helvetica (Windows-1252).
func QuotePDF(w io.Writer, q QuoteDocument) error {
	r := q.Result
	money := func(d decimal.Decimal) string { return d.StringFixed(int32(r.MinorUnits)) }
	pdf := fpdf.New("P", "mm", "A4", "")
	pdf.SetCreationDate(q.Created)
	pdf.SetModificationDate(q.Created)
	pdf.SetCatalogSort(true)
	tr := pdf.UnicodeTranslatorFromDescriptor("")
	title := fmt.Sprintf("Quote on %s v%d", r.CardID, r.Version)
	pdf.SetTitle(title, true)
	pdf.SetCreator("postage", true)
	pdf.SetMargins(18, 18, 18)
	pdf.SetAutoPageBreak(true, 20)
	pdf.AliasNbPages("{nb}")
	pdf.SetFooterFunc(func() {
		pdf.SetY(-14)
		pdf.SetFont("Helvetica", "", 8)
		pdf.SetTextColor(110, 110, 110)
		pdf.CellFormat(0, 5, tr(fmt.Sprintf("%s  ·  page %d of {nb}", title, pdf.PageNo())), "", 0, "C", false, 0, "")
		pdf.SetTextColor(0, 0, 0)
	})
	pdf.AddPage()
	width, _ := pdf.GetPageSize()
	left, _, right, _ := pdf.GetMargins()
	content := width - left - right

	pdf.SetFont("Helvetica", "B", 20)
	pdf.CellFormat(content, 9, "QUOTE", "", 1, "L", false, 0, "")
	pdf.SetFont("Helvetica", "", 10)
	pdf.CellFormat(content, 5, tr("Monthly price of a volume mix, rated exactly as an invoice would be."), "", 1, "L", false, 0, "")
	pdf.Ln(4)
	card := r.CardID
	if q.CardName != "" && q.CardName != r.CardID {
		card = q.CardName + " (" + r.CardID + ")"
	}
	facts := [][2]string{
		{"Rate card", fmt.Sprintf("%s, version %d", card, r.Version)},
		{"Month", r.Month.String()},
		{"Currency", r.Currency},
	}
	if q.Customer != "" {
		facts = append(facts, [2]string{"Customer", q.Customer + " (its card and negotiated prices)"})
	}
	if q.CustomerCountry != "" {
		facts = append(facts, [2]string{"Customer's country", CountryName(q.CustomerCountry)})
	}
	facts = append(facts, [2]string{"Date", q.Created.UTC().Format("2 January 2006")})
	for _, f := range facts {
		pdf.SetFont("Helvetica", "B", 9)
		pdf.CellFormat(content*0.25, 5, f[0], "", 0, "L", false, 0, "")
		pdf.SetFont("Helvetica", "", 9)
		pdf.CellFormat(content*0.75, 5, tr(f[1]), "", 1, "L", false, 0, "")
	}
	pdf.Ln(4)

	cols := []float64{content * 0.24, content * 0.17, content * 0.13, content * 0.14, content * 0.16, content * 0.16}
	heads := []string{"Market", "Category", "Messages", "Unit price", "List " + r.Currency, "Amount " + r.Currency}
	header := func() {
		pdf.SetFont("Helvetica", "B", 9)
		pdf.SetFillColor(235, 238, 243)
		for i, h := range heads {
			align := "L"
			if i >= 2 {
				align = "R"
			}
			pdf.CellFormat(cols[i], 7, h, "B", 0, align, true, 0, "")
		}
		pdf.Ln(-1)
	}
	row := func(cells [6]string, style string, size float64) {
		if pdf.GetY() > 270 {
			pdf.AddPage()
			header()
		}
		pdf.SetFont("Helvetica", style, size)
		for i, s := range cells {
			align := "L"
			if i >= 2 {
				align = "R"
			}
			pdf.CellFormat(cols[i], 5.5, tr(s), "", 0, align, false, 0, "")
		}
		pdf.Ln(-1)
	}
	header()
	var qty int64
	for _, l := range r.Lines {
		unit := l.UnitPrice.String()
		switch {
		case l.Free:
			unit = "free"
		case l.Average:
			unit += " avg"
		}
		list := money(l.Amount)
		if !l.Discount.IsZero() {
			list = money(l.ListAmount)
		}
		market := l.Market
		if n := countryLabel(l.Market); n != "" {
			market = n
		}
		row([6]string{market, l.Category, groupThousands(l.Quantity), unit, list, money(l.Amount)}, "", 9.5)
		if len(l.MessageCategories) > 0 {
			row([6]string{"   " + l.Category + ": sent as " + strings.Join(l.MessageCategories, ", "), "", "", "", "", ""}, "I", 8)
		}
		if len(l.Countries) > 1 {
			var parts []string
			for _, cq := range l.Countries {
				parts = append(parts, cq.Country+" "+groupThousands(cq.Quantity))
			}
			row([6]string{"   " + strings.Join(parts, ", "), "", "", "", "", ""}, "I", 8)
		}
		if len(l.Tiers) > 1 {
			for _, t := range l.Tiers {
				upTo := "and above"
				if t.UpTo != nil {
					upTo = "to " + groupThousands(*t.UpTo)
				}
				row([6]string{fmt.Sprintf("   tier %s %s", groupThousands(t.From), upTo), "", groupThousands(t.Quantity), t.UnitPrice.String(), fixedMoney(t.Amount, r.MinorUnits), ""}, "I", 8)
			}
		}
		if !l.Discount.IsZero() {
			row([6]string{"   discount " + l.Discount.String() + "%", "", "", "", "-" + money(l.DiscountAmount), ""}, "I", 8)
		}
		qty += l.Quantity
	}
	list, disc := QuoteListTotals(r)
	pdf.Ln(4)
	totals := [][2]string{{"Messages", groupThousands(qty)}}
	if !disc.IsZero() {
		totals = append(totals, [2]string{"List price", money(list)}, [2]string{"Discounts", "-" + money(disc)})
	}
	totals = append(totals, [2]string{"Monthly total " + r.Currency, money(r.Total)})
	for i, t := range totals {
		style, border := "", ""
		if i == len(totals)-1 {
			style, border = "B", "T"
		}
		pdf.SetX(left + content*0.52)
		pdf.SetFont("Helvetica", style, 10.5)
		pdf.CellFormat(content*0.30, 7, t[0], border, 0, "L", false, 0, "")
		pdf.CellFormat(content*0.18, 7, t[1], border, 1, "R", false, 0, "")
	}
	pdf.Ln(6)
	pdf.SetFont("Helvetica", "B", 9)
	pdf.CellFormat(content, 5, "Notes", "", 1, "L", false, 0, "")
	pdf.SetFont("Helvetica", "", 8.5)
	notes := []string{
		"Tier volume is counted per calendar month (UTC), per market and category: the quantities are one month's.",
		fmt.Sprintf("Amounts are in %s. Each line is rounded once to the currency's minor unit; the total is the sum of the rounded lines.", r.Currency),
	}
	if !disc.IsZero() {
		notes = append(notes, "Discounts are the customer's negotiated percentages, taken off each line's exact amount before its one rounding; a line's list price less its discount is its amount.")
	}
	notes = append(notes, "A quote is an estimate at today's prices: the invoice rates the usage actually sent with the card version in effect in its month.")
	for _, n := range notes {
		pdf.MultiCell(content, 4.5, tr("- "+n), "", "L", false)
	}
	if err := pdf.Error(); err != nil {
		return fmt.Errorf("quote pdf: %w", err)
	}
	if err := pdf.Output(w); err != nil {
		return fmt.Errorf("quote pdf: %w", err)
	}
	return nil
}
