package reports

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/go-pdf/fpdf"

	"postage/billing"
)

var _ billing.CreditNoteRenderer = InvoiceDocuments{}

// RenderCreditNote implements billing.CreditNoteRenderer: CSV with
// CreditNoteCSV, PDF with CreditNotePDF.
func (InvoiceDocuments) RenderCreditNote(cn billing.CreditNote, f billing.Format) ([]byte, error) {
	var buf bytes.Buffer
	var err error
	switch f {
	case billing.FormatCSV:
		err = CreditNoteCSV(&buf, []billing.CreditNote{cn})
	case billing.FormatPDF:
		err = CreditNotePDF(&buf, cn)
	default:
		err = fmt.Errorf("credit note document format %q", f)
	}
	if err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// CreditNoteCSVHeader are the columns of credit note CSV files: one row per
// credit note line, then one per tax line (line_kind "tax"), the credit
// note's own columns repeated on each.
var CreditNoteCSVHeader = []string{
	"credit_note_id", "number", "invoice_id", "invoice_number", "customer_id", "customer_name", "period", "currency", "issue_date", "reason",
	"line_kind", "invoice_line", "description", "market", "category", "quantity", "tax_rate", "taxable_amount", "amount",
	"credit_note_subtotal", "credit_note_tax", "credit_note_total", "voided_at", "void_reason",
}

// CreditNoteCSV writes credit notes as CSV (CreditNoteCSVHeader).
func CreditNoteCSV(w io.Writer, cns []billing.CreditNote) error {
	t := Table{Header: CreditNoteCSVHeader}
	for _, cn := range cns {
		base := []string{cn.ID, cn.Number, cn.InvoiceID, cn.InvoiceNumber, cn.CustomerID, cn.Customer.Name, cn.Period.String(), cn.Currency,
			cn.IssueDate.String(), cn.Reason}
		voided := ""
		if cn.Void() {
			voided = cn.VoidedAt.UTC().Format(time.RFC3339)
		}
		tail := []string{cn.Subtotal.String(), cn.Tax.String(), cn.Total.String(), voided, cn.VoidReason}
		for _, l := range cn.Lines {
			kind, line, qty := "amount", "", ""
			if l.InvoiceLine > 0 {
				kind, line = "line", strconv.Itoa(l.InvoiceLine)
			}
			if l.Quantity > 0 {
				qty = strconv.FormatInt(l.Quantity, 10)
			}
			t.Rows = append(t.Rows, concat(base, []string{kind, line, l.Description, l.Market, l.Category, qty, "", "", l.Amount.String()}, tail))
		}
		for _, tl := range cn.TaxLines {
			t.Rows = append(t.Rows, concat(base, []string{"tax", "", tl.Name, tl.Jurisdiction, "", "", tl.Rate.String(), tl.TaxableAmount.String(), tl.Tax.String()}, tail))
		}
	}
	return t.WriteCSV(w)
}

// CreditNotePDF writes a credit note as an A4 page like an invoice's:
// issuer, the customer, the credit note's number and date, the invoice it
// credits, the reason, the credited lines, the credited taxes and the
// total. Everything comes from the frozen credit note; its dates are its
// own, so the same credit note draws the same bytes. Text uses Helvetica
// (Windows-1252), as invoices do.
func CreditNotePDF(w io.Writer, cn billing.CreditNote) error {
	pdf := fpdf.New("P", "mm", "A4", "")
	pdf.SetCreationDate(cn.IssuedAt)
	pdf.SetModificationDate(cn.IssuedAt)
	pdf.SetCatalogSort(true)
	tr := pdf.UnicodeTranslatorFromDescriptor("")
	title := creditNoteTitle(cn)
	pdf.SetTitle(title, true)
	pdf.SetAuthor(cn.Issuer.Name, true)
	pdf.SetCreator("postage", true)
	pdf.SetMargins(18, 18, 18)
	pdf.SetAutoPageBreak(true, 20)
	pdf.AliasNbPages("{nb}")
	pdf.SetFooterFunc(func() {
		pdf.SetY(-14)
		pdf.SetFont("Helvetica", "", 8)
		pdf.SetTextColor(110, 110, 110)
		pdf.CellFormat(0, 5, tr(fmt.Sprintf("%s  ·  %s  ·  page %d of {nb}", cn.Issuer.Name, title, pdf.PageNo())), "", 0, "C", false, 0, "")
		pdf.SetTextColor(0, 0, 0)
	})
	pdf.AddPage()
	width, _ := pdf.GetPageSize()
	left, _, right, _ := pdf.GetMargins()
	content := width - left - right

	pdf.SetFont("Helvetica", "B", 16)
	pdf.CellFormat(content/2, 8, tr(cn.Issuer.Name), "", 0, "L", false, 0, "")
	pdf.SetFont("Helvetica", "B", 20)
	heading := "CREDIT NOTE"
	if cn.Void() {
		heading = "VOID CREDIT NOTE"
	}
	pdf.CellFormat(content/2, 8, heading, "", 1, "R", false, 0, "")
	pdf.SetFont("Helvetica", "", 9)
	for _, l := range strings.Split(cn.Issuer.Address, ",") {
		pdf.CellFormat(content, 4.5, tr(strings.TrimSpace(l)), "", 1, "L", false, 0, "")
	}
	pdf.Ln(6)

	y := pdf.GetY()
	pdf.SetFont("Helvetica", "B", 9)
	pdf.CellFormat(content/2, 5, "Credit to", "", 1, "L", false, 0, "")
	pdf.SetFont("Helvetica", "", 10)
	for _, l := range customerLines(cn.Customer) {
		pdf.CellFormat(content/2, 5, tr(l), "", 1, "L", false, 0, "")
	}
	yLeft := pdf.GetY()
	facts := [][2]string{
		{"Credit note number", cn.Number},
		{"Issued", cn.IssueDate.Time().Format("2 January 2006")},
		{"Credits invoice", cn.InvoiceNumber},
		{"Invoice period", cn.Period.String()},
		{"Currency", cn.Currency},
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

	pdf.SetFont("Helvetica", "B", 9)
	pdf.CellFormat(content, 5, "Reason", "", 1, "L", false, 0, "")
	pdf.SetFont("Helvetica", "", 9.5)
	pdf.MultiCell(content, 5, tr(cn.Reason), "", "L", false)
	pdf.Ln(3)

	cols := []float64{content * 0.10, content * 0.56, content * 0.16, content * 0.18}
	header := func() {
		pdf.SetFont("Helvetica", "B", 9)
		pdf.SetFillColor(235, 238, 243)
		for i, h := range []string{"Line", "Description", "Quantity", "Amount " + cn.Currency} {
			align := "L"
			if i >= 2 {
				align = "R"
			}
			pdf.CellFormat(cols[i], 7, h, "B", 0, align, true, 0, "")
		}
		pdf.Ln(-1)
	}
	sectionTitle(pdf, "Credited")
	header()
	for _, l := range cn.Lines {
		if pdf.GetY() > 270 {
			pdf.AddPage()
			header()
		}
		line, qty := "", ""
		if l.InvoiceLine > 0 {
			line = strconv.Itoa(l.InvoiceLine)
		}
		if l.Quantity > 0 {
			qty = groupThousands(l.Quantity)
		}
		pdf.SetFont("Helvetica", "", 9.5)
		for i, c := range []string{line, l.Description, qty, l.Amount.String()} {
			align := "L"
			if i >= 2 {
				align = "R"
			}
			pdf.CellFormat(cols[i], 5.5, tr(c), "", 0, align, false, 0, "")
		}
		pdf.Ln(-1)
	}

	pdf.Ln(4)
	totals := [][2]string{{"Subtotal", cn.Subtotal.String()}}
	for _, tl := range cn.TaxLines {
		totals = append(totals, [2]string{taxLineText(tl), tl.Tax.String()})
	}
	totals = append(totals, [2]string{"Total credited " + cn.Currency, cn.Total.String()})
	for i, t := range totals {
		style, border := "", ""
		if i == len(totals)-1 {
			style, border = "B", "T"
		}
		pdf.SetX(left + content*0.40)
		pdf.SetFont("Helvetica", style, 10.5)
		pdf.CellFormat(content*0.42, 7, tr(t[0]), border, 0, "L", false, 0, "")
		pdf.CellFormat(content*0.18, 7, t[1], border, 1, "R", false, 0, "")
	}
	pdf.Ln(6)
	pdf.SetFont("Helvetica", "", 8.5)
	if cn.TaxNote != "" {
		pdf.MultiCell(content, 4.5, tr(cn.TaxNote), "", "L", false)
	}
	pdf.MultiCell(content, 4.5, tr(creditNoteEffect(cn)), "", "L", false)
	if err := pdf.Error(); err != nil {
		return fmt.Errorf("credit note pdf: %w", err)
	}
	if err := pdf.Output(w); err != nil {
		return fmt.Errorf("credit note pdf: %w", err)
	}
	return nil
}

// creditNoteTitle is a credit note's title: "Credit note CN-…", or
// "VOID credit note CN-…" once voided.
func creditNoteTitle(cn billing.CreditNote) string {
	if cn.Void() {
		return "VOID credit note " + cn.Number
	}
	return "Credit note " + cn.Number
}

// creditNoteEffect says what the credit note does to its invoice: reduces
// it, or (void) no longer does, with the void's day and reason.
func creditNoteEffect(cn billing.CreditNote) string {
	if cn.Void() {
		return fmt.Sprintf("This credit note is VOID since %s: %s. It no longer reduces what invoice %s asks for.",
			cn.VoidedAt.UTC().Format("2 January 2006"), cn.VoidReason, cn.InvoiceNumber)
	}
	return fmt.Sprintf("This credit note reduces what invoice %s asks for by %s %s.", cn.InvoiceNumber, cn.Total, cn.Currency)
}

// AgingCSVHeader are the columns of the aging report's CSV: one row per
// customer and currency, then one total row per currency (customer_id
// empty, customer_name "Total").
var AgingCSVHeader = []string{"as_of", "customer_id", "customer_name", "currency", "current", "days_1_30", "days_31_60", "days_61_90", "days_over_90", "total", "invoices"}

// AgingCSV writes the accounts-receivable aging report as CSV.
func AgingCSV(w io.Writer, rep billing.AgingReport) error {
	t := Table{Header: AgingCSVHeader}
	row := func(r billing.AgingRow, name string) []string {
		return []string{rep.AsOf.String(), r.CustomerID, name, r.Currency, r.Current.String(), r.Days1To30.String(), r.Days31To60.String(),
			r.Days61To90.String(), r.Over90.String(), r.Total.String(), strconv.Itoa(r.Invoices)}
	}
	for _, r := range rep.Customers {
		t.Rows = append(t.Rows, row(r, r.CustomerName))
	}
	for _, r := range rep.Totals {
		t.Rows = append(t.Rows, row(r, "Total"))
	}
	return t.WriteCSV(w)
}
