package reports

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/go-pdf/fpdf"

	"postage/billing"
)

// InvoiceDocuments draws invoice documents for billing (it is the
// billing.Renderer): CSV with InvoiceCSV, PDF with InvoicePDF.
type InvoiceDocuments struct{}

var _ billing.Renderer = InvoiceDocuments{}

// RenderInvoice implements billing.Renderer.
func (InvoiceDocuments) RenderInvoice(inv billing.Invoice, f billing.Format) ([]byte, error) {
	var buf bytes.Buffer
	var err error
	switch f {
	case billing.FormatCSV:
		err = InvoiceCSV(&buf, []billing.Invoice{inv})
	case billing.FormatPDF:
		err = InvoicePDF(&buf, inv)
	default:
		err = fmt.Errorf("invoice document format %q", f)
	}
	if err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// InvoicePDF writes a readable A4 invoice: issuer, customer, number,
// period, the usage lines grouped by country (market) and category with
// their tier breakdown, adjustments for earlier months, subtotal, total and
// currency, and notes about free categories and adjustments. Long invoices
// continue on further pages with the table header repeated.
//
// Everything printed comes from inv: the issuer is inv.Issuer (frozen at
// finalization; a draft's is the configured one), the decimals of amounts
// inv.MinorUnits. The document's dates are the invoice's own (finalized,
// else created), so drawing the same invoice twice gives the same bytes.
//
// Text uses the PDF core font Helvetica (Windows-1252): characters outside
// it print as '?'; the invoice's JSON and CSV keep the exact text.
func InvoicePDF(w io.Writer, inv billing.Invoice) error {
	issuer := inv.Issuer
	pdf := fpdf.New("P", "mm", "A4", "")
	stamp := inv.CreatedAt
	if inv.FinalizedAt != nil {
		stamp = *inv.FinalizedAt
	}
	pdf.SetCreationDate(stamp)
	pdf.SetModificationDate(stamp)
	pdf.SetCatalogSort(true) // fonts in a fixed order, not the map's
	tr := pdf.UnicodeTranslatorFromDescriptor("")
	pdf.SetTitle(invoiceTitle(inv), true)
	pdf.SetAuthor(issuer.Name, true)
	pdf.SetCreator("postage", true)
	pdf.SetMargins(18, 18, 18)
	pdf.SetAutoPageBreak(true, 20)
	pdf.AliasNbPages("{nb}")
	pdf.SetFooterFunc(func() {
		pdf.SetY(-14)
		pdf.SetFont("Helvetica", "", 8)
		pdf.SetTextColor(110, 110, 110)
		pdf.CellFormat(0, 5, tr(fmt.Sprintf("%s  ·  %s  ·  page %d of {nb}", issuer.Name, invoiceTitle(inv), pdf.PageNo())), "", 0, "C", false, 0, "")
		pdf.SetTextColor(0, 0, 0)
	})
	pdf.AddPage()
	width, _ := pdf.GetPageSize()
	left, _, right, _ := pdf.GetMargins()
	content := width - left - right

	// Issuer and title.
	pdf.SetFont("Helvetica", "B", 16)
	pdf.CellFormat(content/2, 8, tr(issuer.Name), "", 0, "L", false, 0, "")
	pdf.SetFont("Helvetica", "B", 20)
	title := "INVOICE"
	switch inv.Status {
	case billing.StatusDraft:
		title = "DRAFT INVOICE"
	case billing.StatusVoid:
		title = "VOID INVOICE"
	}
	pdf.CellFormat(content/2, 8, title, "", 1, "R", false, 0, "")
	pdf.SetFont("Helvetica", "", 9)
	for _, l := range strings.Split(issuer.Address, ",") {
		pdf.CellFormat(content, 4.5, tr(strings.TrimSpace(l)), "", 1, "L", false, 0, "")
	}
	pdf.Ln(6)

	// Bill to, and the invoice's facts.
	y := pdf.GetY()
	pdf.SetFont("Helvetica", "B", 9)
	pdf.CellFormat(content/2, 5, "Bill to", "", 1, "L", false, 0, "")
	pdf.SetFont("Helvetica", "", 10)
	for _, l := range customerLines(inv.Customer) {
		pdf.CellFormat(content/2, 5, tr(l), "", 1, "L", false, 0, "")
	}
	yLeft := pdf.GetY()
	facts := [][2]string{
		{"Invoice number", numberOrDraft(inv)},
		{"Period", periodText(inv)},
		{"Currency", inv.Currency},
		{"Rate card", fmt.Sprintf("%s, version %d", inv.CardID, inv.CardVersion)},
		{"Usage counted up to", inv.UsageCutoff.UTC().Format("2006-01-02 15:04:05") + " UTC"},
	}
	switch {
	case inv.IssueDate != nil:
		facts = append(facts, [2]string{"Issued", inv.IssueDate.Time().Format("2 January 2006")})
	case inv.FinalizedAt != nil:
		facts = append(facts, [2]string{"Issued", inv.FinalizedAt.UTC().Format("2 January 2006")})
	}
	if inv.DueDate != nil {
		facts = append(facts, [2]string{"Due", inv.DueDate.Time().Format("2 January 2006")})
	}
	if inv.IssueDate != nil || inv.Status == billing.StatusDraft {
		facts = append(facts, [2]string{"Payment terms", termsText(inv.PaymentTermsDays)})
	}
	if inv.Replaces != "" {
		facts = append(facts, [2]string{"Replaces", inv.Replaces})
	}
	if cc := inv.CostCard; cc != nil {
		facts = append(facts, [2]string{"Cost card", fmt.Sprintf("%s, version %d (%s)", cc.CardID, cc.Version, cc.Currency)})
	}
	for _, x := range inv.ExchangeRates {
		facts = append(facts, [2]string{"Exchange rate " + x.Month.String(), fmt.Sprintf("1 %s = %s %s", x.From, x.Rate, x.To)})
	}
	pdf.SetY(y)
	for _, f := range facts {
		pdf.SetX(left + content/2)
		pdf.SetFont("Helvetica", "B", 9)
		pdf.CellFormat(content/5, 5, f[0], "", 0, "L", false, 0, "")
		pdf.SetFont("Helvetica", "", 9)
		pdf.CellFormat(content/2-content/5, 5, tr(f[1]), "", 1, "R", false, 0, "")
	}
	pdf.SetY(max(yLeft, pdf.GetY()) + 4)

	if inv.Status == billing.StatusVoid {
		pdf.SetFillColor(253, 226, 226)
		pdf.SetFont("Helvetica", "B", 10)
		msg := "This invoice is VOID"
		if inv.VoidReason != "" {
			msg += ": " + inv.VoidReason
		}
		if inv.ReplacedBy != "" {
			msg += ". Replaced by invoice " + inv.ReplacedBy + "."
		}
		pdf.MultiCell(content, 6, tr(msg), "", "L", true)
		pdf.Ln(3)
	}

	// Lines.
	cols := []float64{content * 0.30, content * 0.22, content * 0.14, content * 0.16, content * 0.18}
	header := func() {
		pdf.SetFont("Helvetica", "B", 9)
		pdf.SetFillColor(235, 238, 243)
		for i, h := range []string{"Country / market", "Category", "Quantity", "Unit price", "Amount " + inv.Currency} {
			align := "L"
			if i >= 2 {
				align = "R"
			}
			pdf.CellFormat(cols[i], 7, h, "B", 0, align, true, 0, "")
		}
		pdf.Ln(-1)
	}
	row := func(cells [5]string, style string, size float64) {
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
	usage, adjustments := splitLines(inv.Lines)
	usageRows := func(lines []billing.Line) {
		if len(lines) == 0 {
			row([5]string{"No usage", "", "", "", ""}, "I", 9)
		}
		for _, l := range lines {
			unit := l.UnitPrice.String()
			if l.Average {
				unit += " avg"
			}
			amount := l.Amount.String()
			if l.Free {
				unit = "free"
			}
			row([5]string{marketText(l), l.Category, groupThousands(l.Quantity), unit, amount}, "", 9.5)
			if len(l.MessageCategories) > 0 {
				row([5]string{"   " + l.Category + ": sent as " + strings.Join(l.MessageCategories, ", "), "", "", "", ""}, "I", 8)
			}
			if l.PricingType != "" || len(l.Unmapped) > 0 {
				row([5]string{"   " + l.Description, "", "", "", ""}, "I", 8)
			}
			if len(l.Countries) > 1 {
				var parts []string
				for _, cq := range l.Countries {
					parts = append(parts, cq.Country+" "+groupThousands(cq.Quantity))
				}
				row([5]string{"   " + strings.Join(parts, ", "), "", "", "", ""}, "I", 8)
			}
			if l.PoolQuantity > 0 {
				row([5]string{"   portfolio volume " + groupThousands(l.PoolQuantity) + ": its tiers apply", "", "", "", ""}, "I", 8)
			}
			if len(l.Tiers) > 1 || (l.PoolQuantity > 0 && len(l.Tiers) == 1) {
				for _, t := range l.Tiers {
					upTo := "and above"
					if t.UpTo != nil {
						upTo = "to " + groupThousands(*t.UpTo)
					}
					row([5]string{fmt.Sprintf("   tier %s %s", groupThousands(t.From), upTo), "", groupThousands(t.Quantity), t.UnitPrice.String(), t.Amount.StringFixed(int32(inv.MinorUnits + 2))}, "I", 8)
				}
			}
			if cp := l.CostPlus; cp != nil {
				cur := ""
				if inv.CostCard != nil {
					cur = " " + inv.CostCard.Currency
				}
				text := fmt.Sprintf("   cost %s%s (%s a message) + %s%% + %s a message", cp.Cost.String(), cur, cp.UnitCost.String(), cp.Markup.String(), cp.Fee.String())
				if cp.FloorApplied {
					text = fmt.Sprintf("   cost %s%s: below the floor of %s a message", cp.Cost.String(), cur, cp.Floor.String())
				}
				row([5]string{text, "", "", "", ""}, "I", 8)
			}
			if !l.Discount.IsZero() {
				if l.ListAmount.IsZero() && l.DiscountAmount.IsZero() {
					// Invoices finalized before lines carried their list amount.
					row([5]string{"   discount " + l.Discount.String() + "%", "", "", "", ""}, "I", 8)
				} else {
					row([5]string{"   list price", "", "", "", l.ListAmount.String()}, "I", 8)
					row([5]string{"   discount " + l.Discount.String() + "%", "", "", "", "-" + l.DiscountAmount.String()}, "I", 8)
				}
			}
		}
	}
	if len(inv.Sections) == 0 {
		sectionTitle(pdf, "Usage "+inv.Period.String())
		header()
		usageRows(usage)
	}
	for _, sec := range inv.Sections {
		sectionTitle(pdf, tr(fmt.Sprintf("Usage %s: %s (%s)", inv.Period, sec.Name, sec.CustomerID)))
		header()
		var lines []billing.Line
		for _, l := range usage {
			if l.Member == sec.CustomerID || (l.Member == "" && sec.CustomerID == inv.CustomerID) {
				lines = append(lines, l)
			}
		}
		usageRows(lines)
		row([5]string{"Section total " + sec.Name, "", "", "", sec.Total.String()}, "B", 9)
		pdf.Ln(2)
	}
	if len(adjustments) > 0 {
		pdf.Ln(3)
		sectionTitle(pdf, "Adjustments for earlier months")
		header()
		for _, l := range adjustments {
			what := l.Period.String() + "  " + l.Market
			if l.Member != "" {
				what += "  (" + l.Member + ")"
			}
			row([5]string{what, l.Category, groupThousands(l.Quantity), "", l.Amount.String()}, "", 9.5)
		}
	}
	if len(inv.Unbilled) > 0 {
		pdf.Ln(3)
		sectionTitle(pdf, "Not billed (shown for information, not charged)")
		header()
		for _, u := range inv.Unbilled {
			what := u.Period.String() + "  " + u.Country
			if u.Member != "" {
				what += "  (" + u.Member + ")"
			}
			row([5]string{what, u.Category, groupThousands(u.Quantity), "", ""}, "", 9.5)
			row([5]string{"   " + u.Reason + ": " + u.Detail, "", "", "", ""}, "I", 7.5)
		}
	}

	// Totals.
	pdf.Ln(4)
	totals := [][2]string{{"Subtotal", inv.Subtotal.String()}}
	if len(adjustments) > 0 {
		totals = append(totals, [2]string{"Adjustments", inv.Adjustments.String()})
	}
	for _, tl := range inv.TaxLines {
		totals = append(totals, [2]string{taxLineText(tl), tl.Tax.String()})
	}
	totals = append(totals, [2]string{"Total " + inv.Currency, inv.Total.String()})
	for i, t := range totals {
		last := i == len(totals)-1
		style, border := "", ""
		if last {
			style, border = "B", "T"
		}
		pdf.SetX(left + content*0.40)
		pdf.SetFont("Helvetica", style, 10.5)
		pdf.CellFormat(content*0.42, 7, tr(t[0]), border, 0, "L", false, 0, "")
		pdf.CellFormat(content*0.18, 7, t[1], border, 1, "R", false, 0, "")
	}

	// Notes.
	pdf.Ln(6)
	pdf.SetFont("Helvetica", "B", 9)
	pdf.CellFormat(content, 5, "Notes", "", 1, "L", false, 0, "")
	pdf.SetFont("Helvetica", "", 8.5)
	if inv.TaxNote != "" {
		pdf.SetFont("Helvetica", "B", 8.5)
		pdf.MultiCell(content, 4.5, tr(inv.TaxNote), "", "L", false)
		pdf.SetFont("Helvetica", "", 8.5)
	}
	for _, n := range invoiceNotes(inv, usage, adjustments) {
		pdf.MultiCell(content, 4.5, tr("- "+n), "", "L", false)
	}
	if err := pdf.Error(); err != nil {
		return fmt.Errorf("invoice pdf: %w", err)
	}
	if err := pdf.Output(w); err != nil {
		return fmt.Errorf("invoice pdf: %w", err)
	}
	return nil
}

func sectionTitle(pdf *fpdf.Fpdf, s string) {
	pdf.SetFont("Helvetica", "B", 11)
	pdf.CellFormat(0, 7, s, "", 1, "L", false, 0, "")
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

func marketText(l billing.Line) string {
	if len(l.Countries) == 1 && l.Countries[0].Country == l.Market {
		return l.Market
	}
	if len(l.Countries) == 1 {
		return l.Countries[0].Country + " (" + l.Market + ")"
	}
	return l.Market
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
	if c.Address != nil {
		out = append(out, c.Address.Lines()...)
	} else if c.Country != "" {
		out = append(out, c.Country)
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
	return s + " on " + tl.TaxableAmount.String()
}

// termsText says when an invoice is due: "due on issue", "net 30 days".
func termsText(days int) string {
	if days == 0 {
		return "due on issue"
	}
	return fmt.Sprintf("net %d days", days)
}
