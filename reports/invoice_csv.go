package reports

import (
	"io"
	"strconv"
	"strings"
	"time"

	"postage/billing"
)

// InvoiceCSVHeader are the columns of invoice CSV files: one row per
// invoice line (an invoice without lines has one row with empty line
// columns), the invoice's own columns repeated on each, so the file sorts
// and pivots in any spreadsheet. Columns are only ever added at the end.
// message_categories names the categories a line's messages were sent
// with when the card bills them as its category ("marketing;utility" on a
// line of notification); list_amount and discount_amount are set on
// discounted lines (list − discount = amount).
var InvoiceCSVHeader = []string{
	"invoice_id", "number", "status", "customer_id", "customer_name", "period", "currency",
	"card_id", "card_version", "line_kind", "line_period", "market", "countries", "category", "free",
	"quantity", "unit_price", "average_price", "discount_percent", "amount",
	"invoice_subtotal", "invoice_adjustments", "invoice_total",
	"usage_cutoff", "finalized_at", "voided_at", "void_reason", "replaces", "replaced_by",
	"pricing_type", "description", "message_categories", "list_amount", "discount_amount", "member", "unbilled_reason", "exchange_rates",
	"invoice_tax", "tax_rate", "taxable_amount", "issue_date", "due_date", "payment_terms_days", "customer_tax_id", "customer_tax_status",
}

// InvoiceCSV writes invoices as CSV (InvoiceCSVHeader): one invoice for
// its .csv download, or every invoice of a period for the export.
// Money is a decimal string with the currency's minor-unit decimals. On a
// consolidated invoice each line names its member; usage the invoice does
// not bill follows its lines as rows of kind "unbilled" (no amount, the
// reason and its detail); the exchange rates cost-plus lines used are on
// every row ("USD/EUR 2026-02 0.9231", separated by ";").
// Each tax line is a row of its own (line_kind "tax": market is the
// jurisdiction, category the tax's name, amount the tax, with tax_rate
// and taxable_amount).
func InvoiceCSV(w io.Writer, invs []billing.Invoice) error {
	t := Table{Header: InvoiceCSVHeader}
	for _, inv := range invs {
		base := []string{inv.ID, inv.Number, string(inv.Status), inv.CustomerID, inv.Customer.Name, inv.Period.String(), inv.Currency,
			inv.CardID, strconv.Itoa(inv.CardVersion)}
		tail := []string{inv.Subtotal.String(), inv.Adjustments.String(), inv.Total.String(),
			csvTime(&inv.UsageCutoff), csvTime(inv.FinalizedAt), csvTime(inv.VoidedAt), inv.VoidReason, inv.Replaces, inv.ReplacedBy}
		var fx []string
		for _, x := range inv.ExchangeRates {
			fx = append(fx, x.From+"/"+x.To+" "+x.Month.String()+" "+x.Rate.String())
		}
		rates := strings.Join(fx, ";")
		terms := func(rate, taxable string) []string {
			return []string{inv.Tax.String(), rate, taxable, csvDate(inv.IssueDate), csvDate(inv.DueDate), strconv.Itoa(inv.PaymentTermsDays),
				inv.Customer.TaxID, string(inv.Customer.TaxStatus)}
		}
		if len(inv.Lines) == 0 && len(inv.Unbilled) == 0 && len(inv.TaxLines) == 0 {
			t.Rows = append(t.Rows, concat(base, make([]string, 11), tail, make([]string, 7), []string{rates}, terms("", "")))
			continue
		}
		for _, l := range inv.Lines {
			var cs []string
			for _, c := range l.Countries {
				cs = append(cs, c.Country+":"+strconv.FormatInt(c.Quantity, 10))
			}
			unit, discount := "", ""
			if l.Kind == billing.KindUsage {
				unit = l.UnitPrice.String()
				if l.Free {
					// 0.00, as money reads (a document frozen before unit
					// prices were money says "0")
					unit = billing.NewMoney(l.UnitPrice.Decimal, inv.MinorUnits).String()
				}
			}
			if !l.Discount.IsZero() {
				discount = l.Discount.String()
			}
			line := []string{l.Kind, l.Period.String(), l.Market, strings.Join(cs, ";"), l.Category, strconv.FormatBool(l.Free),
				strconv.FormatInt(l.Quantity, 10), unit, strconv.FormatBool(l.Average), discount, l.Amount.String()}
			list, disc := "", ""
			if !l.ListAmount.IsZero() || !l.DiscountAmount.IsZero() {
				list, disc = l.ListAmount.String(), l.DiscountAmount.String()
			}
			t.Rows = append(t.Rows, concat(base, line, tail, []string{l.PricingType, l.Description, strings.Join(l.MessageCategories, ";"), list, disc, l.Member, "", rates}, terms("", "")))
		}
		for _, u := range inv.Unbilled {
			line := []string{"unbilled", u.Period.String(), "", u.Country + ":" + strconv.FormatInt(u.Quantity, 10), u.Category, "false",
				strconv.FormatInt(u.Quantity, 10), "", "false", "", ""}
			t.Rows = append(t.Rows, concat(base, line, tail, []string{"", u.Detail, "", "", "", u.Member, u.Reason, rates}, terms("", "")))
		}
		for _, tl := range inv.TaxLines {
			line := []string{"tax", "", tl.Jurisdiction, "", tl.Name, "", "", "", "", "", tl.Tax.String()}
			t.Rows = append(t.Rows, concat(base, line, tail, []string{"", inv.TaxNote, "", "", "", "", "", rates}, terms(tl.Rate.String(), tl.TaxableAmount.String())))
		}
	}
	return t.WriteCSV(w)
}

func csvDate(d *billing.Date) string {
	if d == nil {
		return ""
	}
	return d.String()
}

func concat(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func csvTime(t *time.Time) string {
	if t == nil || t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}
