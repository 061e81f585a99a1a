package reports

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"postage/billing"
	"postage/pricing"
)

// InvoiceDocuments draws invoice and credit note documents for billing
// (it is the billing.Renderer and billing.CreditNoteRenderer): CSV with
// InvoiceCSV and CreditNoteCSV, PDF from the documents' HTML template
// printed by PDF (headless Chromium in the server).
type InvoiceDocuments struct {
	PDF PDFPrinter
}

var _ billing.Renderer = InvoiceDocuments{}

// RenderInvoice implements billing.Renderer.
func (d InvoiceDocuments) RenderInvoice(ctx context.Context, inv billing.Invoice, f billing.Format) ([]byte, error) {
	switch f {
	case billing.FormatCSV:
		var buf bytes.Buffer
		if err := InvoiceCSV(&buf, []billing.Invoice{inv}); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	case billing.FormatPDF:
		return printPDF(ctx, d.PDF, invoicePage(inv), invoiceStamp(inv))
	}
	return nil, fmt.Errorf("invoice document format %q", f)
}

// InvoiceHTML writes the HTML an invoice's PDF is printed from.
func InvoiceHTML(w io.Writer, inv billing.Invoice) error {
	return drawHTML(w, invoicePage(inv))
}

// invoiceStamp is the invoice's own date (finalized, else created), so
// drawing the same invoice twice gives the same bytes.
func invoiceStamp(inv billing.Invoice) time.Time {
	if inv.FinalizedAt != nil {
		return *inv.FinalizedAt
	}
	return inv.CreatedAt
}

// invoicePage lays out an A4 invoice: the issuer (legal name, address, tax
// id; bank details by the notes), the customer (name, address, tax id),
// number, period, dates and terms, the usage lines grouped by market and
// category with their tier breakdown (list price, discount and net in
// columns of their own when a line is discounted; free lines folded into
// one), adjustments for earlier months, usage not billed, subtotal, tax
// lines, total, and notes. Long invoices continue on further pages with
// the table header repeated.
//
// Everything printed comes from inv: the issuer is inv.Issuer (frozen at
// finalization; a draft's is the configured one), the decimals of amounts
// inv.MinorUnits.
func invoicePage(inv billing.Invoice) page {
	issuer := inv.Issuer
	title := "INVOICE"
	switch inv.Status {
	case billing.StatusDraft:
		title = "DRAFT INVOICE"
	case billing.StatusVoid:
		title = "VOID INVOICE"
	}
	footer := invoiceTitle(inv)
	if issuer.Name != "" {
		footer = issuer.Name + "  ·  " + footer
	}
	p := page{
		Title: invoiceTitle(inv), Footer: footer, Heading: title, Issuer: issuerOf(issuer),
		PartyLabel: "Bill to", Party: customerLines(inv.Customer),
		BankLabel: "Payment to", Bank: bankLines(issuer.BankDetails), LegalNote: inv.TaxNote,
	}
	p.Facts = []fact{
		{"Invoice number", numberOrDraft(inv)},
		{"Period", periodText(inv)},
		{"Currency", inv.Currency},
		{"Rate card", fmt.Sprintf("%s, version %d", inv.CardID, inv.CardVersion)},
		{"Usage counted up to", inv.UsageCutoff.UTC().Format("2006-01-02 15:04:05") + " UTC"},
	}
	switch {
	case inv.IssueDate != nil:
		p.Facts = append(p.Facts, fact{"Issued", inv.IssueDate.Time().Format("2 January 2006")})
	case inv.FinalizedAt != nil:
		p.Facts = append(p.Facts, fact{"Issued", inv.FinalizedAt.UTC().Format("2 January 2006")})
	}
	if inv.DueDate != nil {
		p.Facts = append(p.Facts, fact{"Due", inv.DueDate.Time().Format("2 January 2006")})
	}
	if inv.IssueDate != nil || inv.Status == billing.StatusDraft {
		p.Facts = append(p.Facts, fact{"Payment terms", termsText(inv.PaymentTermsDays)})
	}
	if inv.Replaces != "" {
		p.Facts = append(p.Facts, fact{"Replaces", inv.Replaces})
	}
	if cc := inv.CostCard; cc != nil {
		p.Facts = append(p.Facts, fact{"Cost card", fmt.Sprintf("%s, version %d (%s)", cc.CardID, cc.Version, cc.Currency)})
	}
	for _, x := range inv.ExchangeRates {
		p.Facts = append(p.Facts, fact{"Exchange rate " + x.Month.String(), fmt.Sprintf("1 %s = %s %s", x.From, x.Rate, x.To)})
	}
	if inv.Status == billing.StatusVoid {
		msg := "This invoice is VOID"
		if inv.VoidReason != "" {
			msg += ": " + inv.VoidReason
		}
		if inv.ReplacedBy != "" {
			msg += ". Replaced by invoice " + inv.ReplacedBy + "."
		}
		p.Banner = msg
	}

	minor := inv.MinorUnits
	if minor == 0 {
		minor = billing.MinorUnitsOf(inv.Currency) // an invoice frozen before it said
	}
	usage, adjustments := splitLines(inv.Lines)
	discounted := false
	var prices []decimal.Decimal
	for _, l := range usage {
		discounted = discounted || !l.Discount.IsZero()
		if !l.Free {
			prices = append(prices, l.UnitPrice.Decimal)
			for _, t := range l.Tiers {
				prices = append(prices, t.UnitPrice.Decimal)
			}
		}
	}
	unitDecimals := fixedDecimals(minor, prices...)
	unit := func(d decimal.Decimal) string { return d.StringFixed(unitDecimals) }
	cols := []column{{Label: "Country / market"}, {Label: "Category"}, {Label: "Quantity", Num: true}, {Label: "Unit price", Num: true}}
	if discounted {
		cols = append(cols, column{Label: "List", Num: true}, column{Label: "Discount", Num: true}, column{Label: "Net " + inv.Currency, Num: true})
	} else {
		cols = append(cols, column{Label: "Amount " + inv.Currency, Num: true})
	}
	// cells puts the amount columns' texts after the first four.
	cells := func(first [4]string, list, discount, amount string) []string {
		out := first[:]
		if discounted {
			return append(out, list, discount, amount)
		}
		return append(out, amount)
	}
	sub := func(text string) row { return newRow("sub", cols, text) }

	usageGroups := func(lines []billing.Line) [][]row {
		var groups [][]row
		var free []billing.Line
		for _, l := range lines {
			if l.Free {
				free = append(free, l)
				continue
			}
			price := unit(l.UnitPrice.Decimal)
			if l.Average {
				price += " avg"
			}
			list, disc := "", ""
			if !l.Discount.IsZero() {
				disc = l.Discount.String() + "%"
				if !l.ListAmount.IsZero() || !l.DiscountAmount.IsZero() {
					list, disc = money(l.ListAmount), "-"+money(l.DiscountAmount)+" ("+l.Discount.String()+"%)"
				}
			} else if discounted {
				list = money(l.Amount)
			}
			g := []row{newRow("", cols, cells([4]string{marketText(l), l.Category, groupThousands(l.Quantity), price}, list, disc, money(l.Amount))...)}
			if len(l.MessageCategories) > 0 {
				g = append(g, sub(l.Category+": sent as "+strings.Join(l.MessageCategories, ", ")))
			}
			if len(l.Unmapped) > 0 {
				g = append(g, sub(l.Description))
			}
			if len(l.Countries) > 1 {
				g = append(g, sub(countriesText(l.Countries)))
			}
			if l.PoolQuantity > 0 {
				g = append(g, sub("portfolio volume "+groupThousands(l.PoolQuantity)+": its tiers apply"))
			}
			if len(l.Tiers) > 1 || (l.PoolQuantity > 0 && len(l.Tiers) == 1) {
				for _, t := range l.Tiers {
					upTo := "and above"
					if t.UpTo != nil {
						upTo = "to " + groupThousands(*t.UpTo)
					}
					g = append(g, newRow("sub", cols, cells([4]string{fmt.Sprintf("tier %s %s", groupThousands(t.From), upTo), "", groupThousands(t.Quantity), unit(t.UnitPrice.Decimal)},
						"", "", groupAmount(t.Amount.StringFixed(int32(minor+2))))...))
				}
			}
			if cp := l.CostPlus; cp != nil {
				cur := ""
				if inv.CostCard != nil {
					cur = " " + inv.CostCard.Currency
				}
				text := fmt.Sprintf("cost %s%s (%s a message) + %s%% + %s a message", cp.Cost.String(), cur, cp.UnitCost.String(), cp.Markup.String(), cp.Fee.String())
				if cp.FloorApplied {
					text = fmt.Sprintf("cost %s%s: below the floor of %s a message", cp.Cost.String(), cur, cp.Floor.String())
				}
				g = append(g, sub(text))
			}
			groups = append(groups, g)
		}
		if len(free) > 0 {
			// Free lines fold into one: what was sent free, and why.
			var qty int64
			seen := map[string]bool{}
			var cats, parts []string
			for _, l := range free {
				qty += l.Quantity
				if !seen[l.Category] {
					seen[l.Category] = true
					cats = append(cats, l.Category)
				}
				why := "free category"
				if l.PricingType != "" {
					why = freeReason(l)
				}
				parts = append(parts, fmt.Sprintf("%s %s %s (%s)", marketText(l), l.Category, groupThousands(l.Quantity), why))
			}
			zero := money(billing.NewMoney(decimal.Zero, minor))
			groups = append(groups, []row{
				newRow("", cols, cells([4]string{"Free of charge", strings.Join(cats, ", "), groupThousands(qty), "free"}, "", "", zero)...),
				sub(strings.Join(parts, "; ")),
			})
		}
		if len(groups) == 0 {
			groups = append(groups, []row{newRow("muted", cols, "No usage")})
		}
		return groups
	}
	if len(inv.Sections) == 0 {
		p.Tables = append(p.Tables, table{Title: "Usage " + inv.Period.String(), Columns: cols, Groups: usageGroups(usage)})
	}
	for _, sec := range inv.Sections {
		var lines []billing.Line
		for _, l := range usage {
			if l.Member == sec.CustomerID || (l.Member == "" && sec.CustomerID == inv.CustomerID) {
				lines = append(lines, l)
			}
		}
		groups := usageGroups(lines)
		groups = append(groups, []row{newRow("total", cols, cells([4]string{"Section total " + sec.Name}, "", "", money(sec.Total))...)})
		p.Tables = append(p.Tables, table{Title: fmt.Sprintf("Usage %s: %s (%s)", inv.Period, sec.Name, sec.CustomerID), Columns: cols, Groups: groups})
	}
	if len(adjustments) > 0 {
		acols := []column{{Label: "Month / market"}, {Label: "Category"}, {Label: "Quantity", Num: true}, {Label: "Amount " + inv.Currency, Num: true}}
		t := table{Title: "Adjustments for earlier months", Columns: acols}
		for _, l := range adjustments {
			what := l.Period.String() + "  " + CountryName(l.Market)
			if l.Member != "" {
				what += "  (" + l.Member + ")"
			}
			t.Groups = append(t.Groups, []row{newRow("", acols, what, l.Category, groupThousands(l.Quantity), money(l.Amount))})
		}
		p.Tables = append(p.Tables, t)
	}
	if len(inv.Unbilled) > 0 {
		ucols := []column{{Label: "Month / country"}, {Label: "Category"}, {Label: "Quantity", Num: true}, {Label: "Not charged", Num: true}}
		t := table{Title: "Not billed (shown for information, not charged)", Columns: ucols}
		for _, u := range inv.Unbilled {
			what := u.Period.String() + "  " + CountryName(u.Country)
			if u.Member != "" {
				what += "  (" + u.Member + ")"
			}
			t.Groups = append(t.Groups, []row{newRow("", ucols, what, u.Category, groupThousands(u.Quantity), ""), newRow("sub", ucols, u.Reason+": "+u.Detail)})
		}
		p.Tables = append(p.Tables, t)
	}

	p.Totals = []total{{Label: "Subtotal", Amount: money(inv.Subtotal)}}
	if len(adjustments) > 0 {
		p.Totals = append(p.Totals, total{Label: "Adjustments", Amount: money(inv.Adjustments)})
	}
	for _, tl := range inv.TaxLines {
		p.Totals = append(p.Totals, total{Label: taxLineText(tl), Amount: money(tl.Tax)})
	}
	p.Totals = append(p.Totals, total{Label: "Total " + inv.Currency, Amount: money(inv.Total), Grand: true})
	p.Notes = invoiceNotes(inv, usage, adjustments)
	return p
}

func invoiceTitle(inv billing.Invoice) string {
	if inv.Number != "" {
		return "Invoice " + inv.Number
	}
	return "Draft invoice " + inv.ID
}

func numberOrDraft(inv billing.Invoice) string {
	if inv.Number != "" {
		return inv.Number
	}
	return "draft, numbered when finalized"
}

func periodText(inv billing.Invoice) string {
	p := inv.Period
	if !p.Valid() {
		return ""
	}
	return fmt.Sprintf("%s %d (%s to %s UTC)", p.Month, p.Year, p.Start().Format("2 Jan"), p.End().AddDate(0, 0, -1).Format("2 Jan 2006"))
}

// marketText names a line's market: the country's name ("Germany"), or
// the country within its market ("Ghana (Rest of Africa)").
func marketText(l billing.Line) string {
	if len(l.Countries) == 1 && l.Countries[0].Country == l.Market {
		return CountryName(l.Market)
	}
	if len(l.Countries) == 1 {
		return CountryName(l.Countries[0].Country) + " (" + CountryName(l.Market) + ")"
	}
	return CountryName(l.Market)
}

// freeReason says why a line of a free pricing type is free, as its
// (frozen) description words it: "free — customer service window".
func freeReason(l billing.Line) string {
	if i := strings.Index(l.Description, "(free — "); i >= 0 {
		if j := strings.IndexByte(l.Description[i:], ')'); j > 0 {
			return l.Description[i+1 : i+j]
		}
	}
	return "free — " + strings.ReplaceAll(l.PricingType, "_", " ")
}

// countriesText lists a line's countries with their quantities: "Ghana
// 1,200, Kenya 30".
func countriesText(cs []pricing.CountryQuantity) string {
	parts := make([]string, len(cs))
	for i, cq := range cs {
		parts[i] = CountryName(cq.Country) + " " + groupThousands(cq.Quantity)
	}
	return strings.Join(parts, ", ")
}

// splitLines returns the usage lines sorted by market then category, and
// the adjustment lines sorted by month, market and category.
func splitLines(lines []billing.Line) (usage, adjustments []billing.Line) {
	for _, l := range lines {
		if l.Kind == billing.KindAdjustment {
			adjustments = append(adjustments, l)
		} else {
			usage = append(usage, l)
		}
	}
	sort.SliceStable(usage, func(i, j int) bool {
		if usage[i].Member != usage[j].Member {
			return usage[i].Member < usage[j].Member
		}
		if usage[i].Market != usage[j].Market {
			return usage[i].Market < usage[j].Market
		}
		return usage[i].Category < usage[j].Category
	})
	sort.SliceStable(adjustments, func(i, j int) bool {
		a, b := adjustments[i], adjustments[j]
		if a.Period != b.Period {
			return a.Period.Before(b.Period)
		}
		if a.Market != b.Market {
			return a.Market < b.Market
		}
		return a.Category < b.Category
	})
	return usage, adjustments
}

func invoiceNotes(inv billing.Invoice, usage, adjustments []billing.Line) []string {
	var notes []string
	free := map[string]bool{}
	windows := false
	for _, l := range usage {
		if l.PricingType != "" {
			windows = true
		} else if l.Free {
			free[l.Category] = true
		}
	}
	if len(free) > 0 {
		var cs []string
		for c := range free {
			cs = append(cs, c)
		}
		sort.Strings(cs)
		notes = append(notes, "Free categories ("+strings.Join(cs, ", ")+") are metered and shown at 0.00.")
	}
	if windows {
		notes = append(notes, "Messages the platform does not charge for (a customer service window, an entry point window) are metered and shown at 0.00, whatever their category.")
	}
	if len(adjustments) > 0 {
		notes = append(notes, "Adjustment lines bill usage of earlier months that reached us after those months were invoiced: the whole month is rated again with all its usage and what was already billed is subtracted, line by line.")
	}
	pooled, costPlus := false, false
	for _, l := range usage {
		pooled = pooled || l.PoolQuantity > 0
		costPlus = costPlus || l.CostPlus != nil
	}
	if pooled {
		notes = append(notes, "Tier volume is counted over the whole portfolio: each line is priced at the tiers the portfolio reached in its market and category, the portfolio's lines rounded once and shared out.")
	}
	if costPlus {
		notes = append(notes, "Cost-plus lines cost the upstream's price of the same messages (the cost card), converted at the month's exchange rate where the currencies differ, plus the markup and fee shown, and at least the floor.")
	}
	if len(inv.Unbilled) > 0 {
		notes = append(notes, "Usage listed as not billed is not charged on this invoice; it is billed once it can be priced.")
	}
	if len(inv.TaxLines) > 0 && inv.Tax.IsPositive() {
		notes = append(notes, "Each tax is computed once on the sum of the rounded lines it applies to, rounded half up to the currency's minor unit.")
	}
	notes = append(notes,
		fmt.Sprintf("Amounts are in %s. Each line is rounded once to the currency's minor unit; the total is the sum of the rounded lines and taxes.", inv.Currency),
		"Tier volume is counted per calendar month (UTC), per market and category.")
	if inv.Status == billing.StatusDraft {
		notes = append(notes, "This is a draft: it may still change until it is finalized on or after "+inv.FinalizeAfter.UTC().Format("2006-01-02 15:04")+" UTC.")
	}
	return notes
}

// groupThousands writes n with thousands separators (1,234,567).
func groupThousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, ch := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(ch)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// customerLines is who an invoice or credit note is addressed to: name,
// postal address (or country), tax id, customer id and email.
func customerLines(c billing.CustomerSnapshot) []string {
	out := []string{c.Name}
	if a := c.Address; a != nil {
		out = append(out, a.Line1, a.Line2, strings.TrimSpace(a.PostalCode+" "+a.City), a.Region)
		if a.Country != "" {
			out = append(out, CountryName(a.Country))
		}
	} else if c.Country != "" {
		out = append(out, CountryName(c.Country))
	}
	if c.TaxID != "" {
		out = append(out, "Tax id "+c.TaxID)
	}
	out = append(out, "Customer id "+c.ID, c.Email)
	return slices.DeleteFunc(out, func(s string) bool { return strings.TrimSpace(s) == "" })
}

// taxLineText names a tax line: "VAT 19% (DE) on 100.00", "Reverse
// charge (DE) on 100.00".
func taxLineText(tl billing.TaxLine) string {
	s := tl.Name
	if tl.RateID != "" || !tl.Rate.IsZero() {
		s += " " + tl.Rate.String() + "%"
	}
	if tl.Jurisdiction != "" {
		s += " (" + tl.Jurisdiction + ")"
	}
	return s + " on " + money(tl.TaxableAmount)
}

// termsText says when an invoice is due: "due on issue", "net 30 days".
func termsText(days int) string {
	if days == 0 {
		return "due on issue"
	}
	return fmt.Sprintf("net %d days", days)
}
