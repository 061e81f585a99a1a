package reports

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strconv"
	"time"

	"postage/billing"
)

var _ billing.CreditNoteRenderer = InvoiceDocuments{}

// RenderCreditNote implements billing.CreditNoteRenderer: CSV with
// CreditNoteCSV, PDF from the documents' template.
func (d InvoiceDocuments) RenderCreditNote(ctx context.Context, cn billing.CreditNote, f billing.Format) ([]byte, error) {
	switch f {
	case billing.FormatCSV:
		var buf bytes.Buffer
		if err := CreditNoteCSV(&buf, []billing.CreditNote{cn}); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	case billing.FormatPDF:
		return printPDF(ctx, d.PDF, creditNotePage(cn), cn.IssuedAt)
	}
	return nil, fmt.Errorf("credit note document format %q", f)
}

// CreditNoteHTML writes the HTML a credit note's PDF is printed from.
func CreditNoteHTML(w io.Writer, cn billing.CreditNote) error {
	return drawHTML(w, creditNotePage(cn))
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

// creditNotePage lays out a credit note as an A4 page like an invoice's:
// the issuer (name, address, tax id, bank details), the customer, the
// credit note's number and date, the invoice it credits, the reason, the
// credited lines, the credited taxes and the total. Everything comes from
// the frozen credit note; its date is its own, so the same credit note
// draws the same bytes.
func creditNotePage(cn billing.CreditNote) page {
	title := creditNoteTitle(cn)
	heading := "CREDIT NOTE"
	if cn.Void() {
		heading = "VOID CREDIT NOTE"
	}
	footer := title
	if cn.Issuer.Name != "" {
		footer = cn.Issuer.Name + "  ·  " + title
	}
	p := page{
		Title: title, Footer: footer, Heading: heading, Issuer: issuerOf(cn.Issuer),
		PartyLabel: "Credit to", Party: customerLines(cn.Customer),
		Facts: []fact{
			{"Credit note number", cn.Number},
			{"Issued", cn.IssueDate.Time().Format("2 January 2006")},
			{"Credits invoice", cn.InvoiceNumber},
			{"Invoice period", cn.Period.String()},
			{"Currency", cn.Currency},
		},
		Reason: cn.Reason, BankLabel: "Bank details", Bank: bankLines(cn.Issuer.BankDetails), LegalNote: cn.TaxNote,
	}
	cols := []column{{Label: "Line", Width: "10%"}, {Label: "Description"}, {Label: "Quantity", Num: true}, {Label: "Amount " + cn.Currency, Num: true}}
	t := table{Title: "Credited", Columns: cols}
	for _, l := range cn.Lines {
		line, qty := "", ""
		if l.InvoiceLine > 0 {
			line = strconv.Itoa(l.InvoiceLine)
		}
		if l.Quantity > 0 {
			qty = groupThousands(l.Quantity)
		}
		r := newRow("", cols, line, l.Description, qty, money(l.Amount))
		if line == "" { // keep the columns: an amount not tied to a line has no number
			r = row{Cells: []cell{{Span: 1}, {Text: l.Description, Span: 1}, {Text: qty, Span: 1, Num: true}, {Text: money(l.Amount), Span: 1, Num: true}}}
		}
		t.Groups = append(t.Groups, []row{r})
	}
	p.Tables = []table{t}
	p.Totals = []total{{Label: "Subtotal", Amount: money(cn.Subtotal)}}
	for _, tl := range cn.TaxLines {
		p.Totals = append(p.Totals, total{Label: taxLineText(tl), Amount: money(tl.Tax)})
	}
	p.Totals = append(p.Totals, total{Label: "Total credited " + cn.Currency, Amount: money(cn.Total), Grand: true})
	if cn.Void() {
		p.Banner = fmt.Sprintf("This credit note is VOID: %s", cn.VoidReason)
	}
	p.Notes = []string{creditNoteEffect(cn)}
	return p
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
	return fmt.Sprintf("This credit note reduces what invoice %s asks for by %s %s.", cn.InvoiceNumber, money(cn.Total), cn.Currency)
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
