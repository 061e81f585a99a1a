package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"postage"
	"postage/billing"
	"postage/internal/app"
	"postage/reports"
)

func init() {
	extraCommands = append(extraCommands, newPaymentsCmd, newRefundsCmd, newCreditNotesCmd, newTaxesCmd)
}

// Receivables commands of `postage invoices` (added by newInvoicesCmd).
func newReceivablesCmds(g *globalFlags) []*cobra.Command {
	return []*cobra.Command{newInvoicesBalanceCmd(g), newInvoicesUncollectibleCmd(g), newInvoicesReceivablesCmd(g), newInvoicesAgingCmd(g)}
}

func newInvoicesBalanceCmd(g *globalFlags) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "balance INVOICE",
		Short: "What a finalized invoice owes: total, paid, credited, refunded, balance, due date and payment status",
		Example: `  postage invoices balance in_3kq7x2v5m1b9c8d4e6f0a2h7j5
  postage invoices balance in_3kq7x2v5m1b9c8d4e6f0a2h7j5 --format json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(format, "text", "json"); err != nil {
				return err
			}
			a, err := g.openApp(cmd.Context())
			if err != nil {
				return err
			}
			defer a.Close()
			id, err := invoiceIDOf(cmd.Context(), a, args[0])
			if err != nil {
				return err
			}
			r, err := a.Accounts.Receivable(cmd.Context(), id)
			if err != nil {
				return err
			}
			if format == "json" {
				return invoiceJSON(cmd.OutOrStdout(), r)
			}
			return writeTextTable(cmd.OutOrStdout(), receivableColumns, receivableRow, []billing.Receivable{r})
		},
	}
	cmd.Flags().StringVar(&format, "format", "text", "text or json")
	return cmd
}

func newInvoicesUncollectibleCmd(g *globalFlags) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:     "uncollectible INVOICE --reason TEXT",
		Short:   "Write a finalized invoice's balance off as uncollectible (a payment that arrives later is still recorded)",
		Example: `  postage invoices uncollectible in_3kq7x2v5m1b9c8d4e6f0a2h7j5 --reason "customer insolvent, claim filed"`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(reason) == "" {
				return usageError{fmt.Errorf("--reason is required")}
			}
			a, err := g.openApp(cmd.Context())
			if err != nil {
				return err
			}
			defer a.Close()
			id, err := invoiceIDOf(cmd.Context(), a, args[0])
			if err != nil {
				return err
			}
			r, err := a.Accounts.MarkUncollectible(cmd.Context(), id, reason)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "invoice %s written off: %s %s uncollectible\n", r.Number, r.Balance, r.Currency)
			return nil
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why (required, kept with the invoice)")
	return cmd
}

func newInvoicesReceivablesCmd(g *globalFlags) *cobra.Command {
	var customer, status string
	var page pageFlags
	var outstanding bool
	cmd := &cobra.Command{
		Use:   "receivables",
		Short: "What finalized invoices owe, newest issue first, with their payment status as of today",
		Example: `  postage invoices receivables --status overdue
  postage invoices receivables --customer acme-1 --outstanding --format json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := page.check(); err != nil {
				return err
			}
			f := billing.ReceivableFilter{CustomerID: customer, Status: billing.PaymentStatus(status), Outstanding: outstanding}
			if err := f.Validate(); err != nil {
				return usageError{err}
			}
			a, err := g.openApp(cmd.Context())
			if err != nil {
				return err
			}
			defer a.Close()
			return pageList[billing.Receivable]{
				fetch: func(limit int, cursor string) ([]billing.Receivable, string, error) {
					return a.Accounts.Receivables(cmd.Context(), f, billing.Page{Limit: limit, Cursor: cursor})
				},
				header: receivableColumns,
				row:    receivableRow,
				csv:    tableCSV(receivablesTable),
			}.write(cmd, page)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&customer, "customer", "", "only this customer")
	fl.StringVar(&status, "status", "", "open, partially_paid, paid, overdue or uncollectible")
	fl.BoolVar(&outstanding, "outstanding", false, "only invoices with a balance left")
	page.register(cmd, true)
	return cmd
}

// receivableColumns and receivableRow are a receivable as a text row.
const receivableColumns = "INVOICE\tNUMBER\tCUSTOMER\tCURRENCY\tTOTAL\tPAID\tCREDITED\tREFUNDED\tBALANCE\tISSUED\tDUE\tSTATUS\tDAYS PAST DUE"

func receivableRow(r billing.Receivable) []any {
	return []any{r.InvoiceID, r.Number, r.CustomerID, r.Currency, r.Total, r.Paid, r.Credited, r.Refunded, r.Balance, r.IssueDate, r.DueDate, r.Status, r.DaysPastDue}
}

func newInvoicesAgingCmd(g *globalFlags) *cobra.Command {
	var customer, format string
	cmd := &cobra.Command{
		Use:   "aging",
		Short: "Accounts-receivable aging as of today: current, 1-30, 31-60, 61-90, over 90 days past due, per customer and in total",
		Example: `  postage invoices aging
  postage invoices aging --format csv > aging.csv
  postage invoices aging --customer acme-1 --format json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat(format, "text", "json", "csv"); err != nil {
				return err
			}
			a, err := g.openApp(cmd.Context())
			if err != nil {
				return err
			}
			defer a.Close()
			rep, err := a.Accounts.Aging(cmd.Context(), customer)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			switch format {
			case "json":
				return invoiceJSON(out, rep)
			case "csv":
				return reports.AgingCSV(out, rep)
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
			fmt.Fprintf(out, "aging as of %s\n", rep.AsOf)
			fmt.Fprintln(tw, "CUSTOMER\tCURRENCY\tCURRENT\t1-30\t31-60\t61-90\tOVER 90\tTOTAL\tINVOICES\t")
			row := func(who string, r billing.AgingRow) {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t\n", who, r.Currency, r.Current, r.Days1To30, r.Days31To60, r.Days61To90, r.Over90, r.Total, r.Invoices)
			}
			for _, r := range rep.Customers {
				row(r.CustomerID, r)
			}
			for _, r := range rep.Totals {
				row("TOTAL", r)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&customer, "customer", "", "only this customer")
	cmd.Flags().StringVar(&format, "format", "text", "text, json or csv")
	return cmd
}

func newPaymentsCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "payments",
		Short: "Record payments against finalized invoices and list them",
		Long: `A payment is money received against one finalized invoice, in its currency,
never more than its balance. It is recorded once and never changes; the
invoice's balance and payment status follow from it. See docs/BILLING.md.`,
		Example: `  postage payments record in_3kq7x2v5m1b9c8d4e6f0a2h7j5 --amount 120.00 --currency USD --date 2026-11-20 --method bank_transfer --reference "SEPA 4471"
  postage payments list --customer acme-1`,
	}
	cmd.AddCommand(moneyCmds(g, moneyCLI{
		noun: "payment", moved: "received", detail: "against a finalized invoice",
		example: `  postage payments record in_3kq7x2v5m1b9c8d4e6f0a2h7j5 --amount 120.00 --currency USD --date 2026-11-20 --method bank_transfer --reference "SEPA 4471"
  postage payments record in_3kq7x2v5m1b9c8d4e6f0a2h7j5 --amount 15 --currency USD --date 2026-11-21 --method card --idempotency-key stripe-ch_3P   # safe to run twice`,
		listExample: `  postage payments list --customer acme-1
  postage payments list --invoice in_3kq7x2v5m1b9c8d4e6f0a2h7j5 --format json`,
		record: func(ctx context.Context, a *app.App, invoiceID string, in billing.NewPayment) (billing.Payment, billing.Receivable, bool, error) {
			return a.Accounts.RecordPayment(ctx, invoiceID, in)
		},
		list: func(ctx context.Context, a *app.App, f billing.PaymentFilter, p billing.Page) ([]billing.Payment, string, error) {
			return a.Accounts.Payments(ctx, f, p)
		},
	})...)
	return cmd
}

func newRefundsCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "refunds",
		Short: "Record refunds paid back outside postage and list them",
		Long: `A refund is money paid back to a customer (by bank transfer, through the card
processor) against a finalized invoice that owes the customer money: a credit
note issued after payment leaves a negative balance. A refund is in the
invoice's currency, never more than the customer is owed, recorded once and
never changed; the balance goes back toward zero. See docs/BILLING.md.`,
		Example: `  postage refunds record in_3kq7x2v5m1b9c8d4e6f0a2h7j5 --amount 25.00 --currency USD --date 2026-11-20 --method bank_transfer --reference "SEPA 9912"
  postage refunds list --customer acme-1`,
	}
	cmd.AddCommand(moneyCmds(g, moneyCLI{
		noun: "refund", moved: "paid back", detail: "against a finalized invoice that owes the customer money",
		example: `  postage refunds record in_3kq7x2v5m1b9c8d4e6f0a2h7j5 --amount 25.00 --currency USD --date 2026-11-20 --method bank_transfer --reference "SEPA 9912"
  postage refunds record in_3kq7x2v5m1b9c8d4e6f0a2h7j5 --amount 5 --currency USD --date 2026-11-21 --method card --idempotency-key stripe-re_3P   # safe to run twice`,
		listExample: `  postage refunds list --customer acme-1
  postage refunds list --invoice in_3kq7x2v5m1b9c8d4e6f0a2h7j5 --format csv`,
		record: func(ctx context.Context, a *app.App, invoiceID string, in billing.NewPayment) (billing.Payment, billing.Receivable, bool, error) {
			f, r, existing, err := a.Accounts.RecordRefund(ctx, invoiceID, billing.NewRefund(in))
			return billing.Payment(f), r, existing, err
		},
		list: func(ctx context.Context, a *app.App, f billing.PaymentFilter, p billing.Page) ([]billing.Payment, string, error) {
			refunds, next, err := a.Accounts.Refunds(ctx, billing.RefundFilter(f), p)
			list := make([]billing.Payment, len(refunds))
			for i, r := range refunds {
				list[i] = billing.Payment(r)
			}
			return list, next, err
		},
	})...)
	return cmd
}

// moneyCLI is what differs between the payments and the refunds commands:
// money received against an invoice, or paid back against it.
type moneyCLI struct {
	noun, moved, detail  string // "payment", "received", "against a finalized invoice"
	example, listExample string
	record               func(ctx context.Context, a *app.App, invoiceID string, in billing.NewPayment) (billing.Payment, billing.Receivable, bool, error)
	list                 func(ctx context.Context, a *app.App, f billing.PaymentFilter, p billing.Page) ([]billing.Payment, string, error)
}

// moneyCmds returns a kind's record and list commands.
func moneyCmds(g *globalFlags, m moneyCLI) []*cobra.Command {
	var in billing.NewPayment
	var method string
	record := &cobra.Command{
		Use:     "record INVOICE --amount AMOUNT --currency CODE --date YYYY-MM-DD --method METHOD",
		Short:   "Record a " + m.noun + " " + m.detail,
		Example: m.example,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			in.Method = billing.PaymentMethod(method)
			a, err := g.openApp(cmd.Context())
			if err != nil {
				return err
			}
			defer a.Close()
			id, err := invoiceIDOf(cmd.Context(), a, args[0])
			if err != nil {
				return err
			}
			p, r, existing, err := m.record(cmd.Context(), a, id, in)
			if err != nil {
				return err
			}
			verb := "recorded"
			if existing {
				verb = "already recorded"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s %s of %s %s on invoice %s: balance %s %s, %s\n", verb, m.noun, p.ID, p.Amount, p.Currency, p.InvoiceNumber, r.Balance, r.Currency, r.Status)
			return nil
		},
	}
	fl := record.Flags()
	fl.StringVar(&in.Amount, "amount", "", "amount "+m.moved+", a decimal (required)")
	fl.StringVar(&in.Currency, "currency", "", "the invoice's currency, ISO 4217 (required)")
	fl.StringVar(&in.Date, "date", "", "day the money was "+m.moved+", YYYY-MM-DD (required)")
	fl.StringVar(&method, "method", "bank_transfer", "bank_transfer, card, direct_debit, cash, check or other")
	fl.StringVar(&in.Reference, "reference", "", "the bank's or processor's reference")
	fl.StringVar(&in.IdempotencyKey, "idempotency-key", "", "records the "+m.noun+" once however often the command runs")

	var invoice, customer string
	var page pageFlags
	list := &cobra.Command{
		Use:     "list",
		Short:   "List " + m.noun + "s, newest first",
		Example: m.listExample,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := page.check(); err != nil {
				return err
			}
			a, err := g.openApp(cmd.Context())
			if err != nil {
				return err
			}
			defer a.Close()
			f := billing.PaymentFilter{CustomerID: customer, InvoiceID: invoice}
			return pageList[billing.Payment]{
				fetch: func(limit int, cursor string) ([]billing.Payment, string, error) {
					return m.list(cmd.Context(), a, f, billing.Page{Limit: limit, Cursor: cursor})
				},
				header: strings.ToUpper(m.noun) + "\tINVOICE\tNUMBER\tCUSTOMER\tAMOUNT\tCURRENCY\tDATE\tMETHOD\tREFERENCE",
				row: func(v billing.Payment) []any {
					return []any{v.ID, v.InvoiceID, v.InvoiceNumber, v.CustomerID, v.Amount, v.Currency, v.Date, v.Method, v.Reference}
				},
				csv: tableCSV(moneyTable),
			}.write(cmd, page)
		},
	}
	lf := list.Flags()
	lf.StringVar(&invoice, "invoice", "", "only this invoice")
	lf.StringVar(&customer, "customer", "", "only this customer")
	page.register(list, true)
	return []*cobra.Command{record, list}
}

func newCreditNotesCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "creditnotes",
		Short: "Issue credit notes against finalized invoices, list and show them",
		Long: `A credit note corrects part of a finalized invoice: whole lines, part of a
line's quantity, or an amount, never more than is left to credit. It is
numbered on its own (CN-2026-000001), reduces the invoice's balance and never
changes. An invoice issued in error as a whole (wrong customer, wrong card) is
voided and reissued instead: postage invoices void. See docs/BILLING.md.`,
		Example: `  postage creditnotes create in_3kq7x2v5m1b9c8d4e6f0a2h7j5 --reason "duplicate sends on 3 Oct" --line 2:1500
  postage creditnotes create in_3kq7x2v5m1b9c8d4e6f0a2h7j5 --reason "goodwill" --amount 25.00
  postage creditnotes show CN-2026-000001 --format pdf -o CN-2026-000001.pdf`,
	}
	var req billing.CreditNoteRequest
	var lines, lineAmounts []string
	var amount, description string
	create := &cobra.Command{
		Use:   "create INVOICE --reason TEXT (--line N[:QUANTITY] | --line-amount N=AMOUNT | --amount AMOUNT)...",
		Short: "Issue a credit note against a finalized invoice",
		Long: `Lines are numbered from 1 in the order of the invoice's lines (postage
invoices show INVOICE). --line N credits what is left of line N; --line
N:Q credits Q of its units at the line's average price; --line-amount N=A
credits A off line N; --amount A credits A off the invoice as a whole.
Amounts are net: the credit note adds the invoice's tax.`,
		Example: `  postage creditnotes create in_3kq7x2v5m1b9c8d4e6f0a2h7j5 --reason "country mis-rated" --line 3
  postage creditnotes create in_3kq7x2v5m1b9c8d4e6f0a2h7j5 --reason "duplicate sends" --line 2:1500 --line-amount 4=2.50
  postage creditnotes create in_3kq7x2v5m1b9c8d4e6f0a2h7j5 --reason "SLA credit, October" --amount 25.00 --description "SLA credit"`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req.Lines = nil
			for _, l := range lines {
				n, q, hasQ := strings.Cut(l, ":")
				line, err := strconv.Atoi(n)
				if err != nil || line < 1 {
					return usageError{fmt.Errorf("--line %q: a line number from 1, optionally :QUANTITY", l)}
				}
				item := billing.CreditItem{Line: line}
				if hasQ {
					if item.Quantity, err = strconv.ParseInt(q, 10, 64); err != nil || item.Quantity < 1 {
						return usageError{fmt.Errorf("--line %q: the quantity after ':' must be a whole number from 1", l)}
					}
				}
				req.Lines = append(req.Lines, item)
			}
			for _, l := range lineAmounts {
				n, amt, ok := strings.Cut(l, "=")
				line, err := strconv.Atoi(n)
				if !ok || err != nil || line < 1 {
					return usageError{fmt.Errorf("--line-amount %q: LINE=AMOUNT, e.g. 2=5.00", l)}
				}
				req.Lines = append(req.Lines, billing.CreditItem{Line: line, Amount: amt})
			}
			if amount != "" {
				req.Lines = append(req.Lines, billing.CreditItem{Amount: amount, Description: description})
			}
			if len(req.Lines) == 0 {
				return usageError{fmt.Errorf("say what to credit: --line, --line-amount or --amount")}
			}
			if err := req.Validate(); err != nil {
				return usageError{err}
			}
			a, err := g.openApp(cmd.Context())
			if err != nil {
				return err
			}
			defer a.Close()
			id, err := invoiceIDOf(cmd.Context(), a, args[0])
			if err != nil {
				return err
			}
			cn, existing, err := a.Accounts.IssueCreditNote(cmd.Context(), id, req)
			if err != nil {
				return err
			}
			verb := "issued"
			if existing {
				verb = "already issued"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s credit note %s (%s) for invoice %s: %s %s (%s net, %s tax)\n", verb, cn.Number, cn.ID, cn.InvoiceNumber, cn.Total, cn.Currency, cn.Subtotal, cn.Tax)
			return nil
		},
	}
	cf := create.Flags()
	cf.StringVar(&req.Reason, "reason", "", "why (required, printed on the credit note)")
	cf.StringArrayVar(&lines, "line", nil, "credit invoice line N (from 1), or N:QUANTITY of its units; repeatable")
	cf.StringArrayVar(&lineAmounts, "line-amount", nil, "credit AMOUNT off invoice line N: N=AMOUNT; repeatable")
	cf.StringVar(&amount, "amount", "", "credit this net amount off the invoice as a whole")
	cf.StringVar(&description, "description", "", "what --amount is for (printed on its line)")
	cf.StringVar(&req.IdempotencyKey, "idempotency-key", "", "issues the credit note once however often the command runs")

	var invoice, customer string
	var page pageFlags
	list := &cobra.Command{
		Use:   "list",
		Short: "List credit notes, newest first",
		Example: `  postage creditnotes list --customer acme-1
  postage creditnotes list --invoice in_3kq7x2v5m1b9c8d4e6f0a2h7j5 --format json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := page.check(); err != nil {
				return err
			}
			a, err := g.openApp(cmd.Context())
			if err != nil {
				return err
			}
			defer a.Close()
			f := billing.CreditNoteFilter{CustomerID: customer, InvoiceID: invoice}
			return pageList[billing.CreditNote]{
				fetch: func(limit int, cursor string) ([]billing.CreditNote, string, error) {
					return a.Accounts.CreditNotes(cmd.Context(), f, billing.Page{Limit: limit, Cursor: cursor})
				},
				header: "NUMBER\tID\tINVOICE\tCUSTOMER\tISSUED\tNET\tTAX\tTOTAL\tCURRENCY\tSTATUS\tREASON",
				row: func(v billing.CreditNote) []any {
					status := "issued"
					if v.Void() {
						status = "void"
					}
					return []any{v.Number, v.ID, v.InvoiceNumber, v.CustomerID, v.IssueDate, v.Subtotal, v.Tax, v.Total, v.Currency, status, v.Reason}
				},
				csv: tableCSV(creditNotesTable),
			}.write(cmd, page)
		},
	}
	lf := list.Flags()
	lf.StringVar(&invoice, "invoice", "", "only this invoice")
	lf.StringVar(&customer, "customer", "", "only this customer")
	page.register(list, true)

	var show showFlags
	showCmd := &cobra.Command{
		Use:   "show ID_OR_NUMBER",
		Short: "Show a credit note as text, JSON, CSV or PDF",
		Example: `  postage creditnotes show CN-2026-000001
  postage creditnotes show CN-2026-000001 --format pdf -o CN-2026-000001.pdf`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := show.check(); err != nil {
				return err
			}
			a, err := g.openApp(cmd.Context())
			if err != nil {
				return err
			}
			defer a.Close()
			cn, err := a.Accounts.CreditNote(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return show.write(cmd, cn,
				func(f billing.Format) ([]byte, error) { return a.Accounts.CreditNoteDocument(cmd.Context(), cn, f) },
				func(w io.Writer) error { return writeCreditNoteText(w, cn) })
		},
	}
	show.register(showCmd)

	var voidReason string
	voidCmd := &cobra.Command{
		Use:   "void ID_OR_NUMBER --reason TEXT",
		Short: "Void a credit note: it keeps its number, says VOID, and no longer reduces its invoice",
		Long: `A void credit note keeps its number (the numbering stays gapless) and its
documents say VOID; its total no longer reduces the invoice, whose balance
goes back up by it, and what it credited can be credited again. Refused when
the money it let the customer be owed was refunded (postage refunds).`,
		Example: `  postage creditnotes void CN-2026-000001 --reason "credited the wrong invoice"`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(voidReason) == "" {
				return usageError{fmt.Errorf("--reason is required")}
			}
			a, err := g.openApp(cmd.Context())
			if err != nil {
				return err
			}
			defer a.Close()
			cn, r, err := a.Accounts.VoidCreditNote(cmd.Context(), args[0], voidReason)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "voided credit note %s (%s %s) of invoice %s: balance %s %s, %s\n", cn.Number, cn.Total, cn.Currency, cn.InvoiceNumber, r.Balance, r.Currency, r.Status)
			return nil
		},
	}
	voidCmd.Flags().StringVar(&voidReason, "reason", "", "why (required, printed on the void credit note)")
	cmd.AddCommand(create, list, showCmd, voidCmd)
	return cmd
}

// writeCreditNoteText writes a credit note as text.
func writeCreditNoteText(out io.Writer, cn billing.CreditNote) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "credit note\t%s (%s)\ninvoice\t%s (%s)\ncustomer\t%s (%s)\nissued\t%s\nreason\t%s\n", cn.Number, cn.ID, cn.InvoiceNumber, cn.InvoiceID,
		cn.Customer.Name, cn.CustomerID, cn.IssueDate, cn.Reason)
	if cn.Void() {
		fmt.Fprintf(tw, "VOID\tsince %s: %s\n", cn.VoidedAt.UTC().Format(billing.DateLayout), cn.VoidReason)
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "LINE\tDESCRIPTION\tQUANTITY\tAMOUNT")
	for _, l := range cn.Lines {
		line, qty := "-", ""
		if l.InvoiceLine > 0 {
			line = strconv.Itoa(l.InvoiceLine)
		}
		if l.Quantity > 0 {
			qty = strconv.FormatInt(l.Quantity, 10)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", line, l.Description, qty, l.Amount)
	}
	fmt.Fprintf(tw, "\t\tsubtotal\t%s\n", cn.Subtotal)
	for _, t := range cn.TaxLines {
		fmt.Fprintf(tw, "\t\t%s %s%%\t%s\n", t.Name, t.Rate, t.Tax)
	}
	fmt.Fprintf(tw, "\t\ttotal %s\t%s\n", cn.Currency, cn.Total)
	return tw.Flush()
}

func newTaxesCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "taxes",
		Short: "Tax rates by jurisdiction and date",
		Long: `Tax rates are kept by jurisdiction (an ISO 3166-1 country such as DE, or an
ISO 3166-2 subdivision such as CA-QC) over a range of days. Two rates of one
jurisdiction never overlap: end the old one (postage taxes end) before the
new one starts. A customer's tax status, tax id, country and region are set
with postage customers update. See docs/BILLING.md, "Taxes".`,
		Example: `  postage taxes add --jurisdiction DE --name VAT --rate 19 --from 2007-01-01
  postage taxes end txr_… --to 2027-01-01
  postage taxes list --jurisdiction DE`,
	}
	var jurisdiction string
	list := &cobra.Command{
		Use:     "list",
		Short:   "List tax rates by jurisdiction and start",
		Example: `  postage taxes list --jurisdiction DE`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, err := g.openApp(cmd.Context())
			if err != nil {
				return err
			}
			defer a.Close()
			rates, err := a.Taxes.TaxRates(cmd.Context(), strings.ToUpper(jurisdiction))
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tJURISDICTION\tNAME\tRATE %\tFROM\tUNTIL")
			for _, r := range rates {
				to := "-"
				if r.EffectiveTo != nil {
					to = r.EffectiveTo.String()
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Jurisdiction, r.Name, r.Rate, r.EffectiveFrom, to)
			}
			return tw.Flush()
		},
	}
	list.Flags().StringVar(&jurisdiction, "jurisdiction", "", "only this jurisdiction")

	var in billing.NewTaxRate
	add := &cobra.Command{
		Use:   "add --jurisdiction CODE --name NAME --rate PERCENT --from YYYY-MM-DD [--to YYYY-MM-DD]",
		Short: "Add a tax rate; one overlapping another of its jurisdiction is refused",
		Example: `  postage taxes add --jurisdiction DE --name VAT --rate 19 --from 2007-01-01
  postage taxes add --jurisdiction CA-QC --name QST --rate 9.975 --from 2013-01-01`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			in.Jurisdiction = strings.ToUpper(in.Jurisdiction)
			r, err := in.Parse()
			if err != nil {
				return usageError{err}
			}
			a, err := g.openApp(cmd.Context())
			if err != nil {
				return err
			}
			defer a.Close()
			out, err := a.Taxes.CreateTaxRate(cmd.Context(), r)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "added tax rate %s: %s %s%% in %s from %s\n", out.ID, out.Name, out.Rate, out.Jurisdiction, out.EffectiveFrom)
			return nil
		},
	}
	af := add.Flags()
	af.StringVar(&in.Jurisdiction, "jurisdiction", "", "ISO 3166-1 country (DE) or 3166-2 subdivision (CA-QC)")
	af.StringVar(&in.Name, "name", "", "what invoices call the tax (VAT, GST)")
	af.StringVar(&in.Rate, "rate", "", "percentage, e.g. 19 or 9.975")
	af.StringVar(&in.EffectiveFrom, "from", "", "first day it applies, YYYY-MM-DD")
	af.StringVar(&in.EffectiveTo, "to", "", "first day it no longer applies (default: open-ended)")

	var to string
	var open bool
	end := &cobra.Command{
		Use:   "end TAX_RATE_ID (--to YYYY-MM-DD | --open)",
		Short: "End a tax rate on a day (the first day it no longer applies), or make it open-ended again",
		Example: `  postage taxes end txr_… --to 2027-01-01
  postage taxes end txr_… --open`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if open == (to != "") {
				return usageError{fmt.Errorf("give --to YYYY-MM-DD or --open")}
			}
			var end *billing.Date
			if to != "" {
				d, err := billing.ParseDate(to)
				if err != nil {
					return usageError{err}
				}
				end = &d
			}
			a, err := g.openApp(cmd.Context())
			if err != nil {
				return err
			}
			defer a.Close()
			r, err := a.Taxes.SetTaxRateEnd(cmd.Context(), args[0], end)
			if err != nil {
				return err
			}
			until := "open-ended"
			if r.EffectiveTo != nil {
				until = "until " + r.EffectiveTo.String()
			}
			fmt.Fprintf(cmd.OutOrStdout(), "tax rate %s: %s %s%% in %s from %s, %s\n", r.ID, r.Name, r.Rate, r.Jurisdiction, r.EffectiveFrom, until)
			return nil
		},
	}
	end.Flags().StringVar(&to, "to", "", "first day the rate no longer applies")
	end.Flags().BoolVar(&open, "open", false, "make the rate open-ended")
	cmd.AddCommand(list, add, end)
	return cmd
}

// checkFormat refuses a --format value not among allowed.
func checkFormat(format string, allowed ...string) error {
	for _, a := range allowed {
		if format == a {
			return nil
		}
	}
	return usageError{postage.Errorf(postage.EINVALID, "--format %q: %s", format, strings.Join(allowed, ", "))}
}

// receivablesTable is the receivables as CSV rows (the text columns, named
// as the JSON fields are).
func receivablesTable(list []billing.Receivable) reports.Table {
	t := reports.Table{Header: []string{"invoice_id", "number", "customer_id", "customer_name", "currency", "total", "paid", "credited", "refunded", "balance",
		"issue_date", "due_date", "status", "days_past_due", "settled_on", "uncollectible_reason"}}
	for _, r := range list {
		settled := ""
		if r.SettledOn != nil {
			settled = r.SettledOn.String()
		}
		t.Rows = append(t.Rows, []string{r.InvoiceID, r.Number, r.CustomerID, r.CustomerName, r.Currency, r.Total.String(), r.Paid.String(), r.Credited.String(),
			r.Refunded.String(), r.Balance.String(), r.IssueDate.String(), r.DueDate.String(), string(r.Status), strconv.Itoa(r.DaysPastDue), settled, r.UncollectibleReason})
	}
	return t
}

// moneyTable is payments or refunds as CSV rows.
func moneyTable(list []billing.Payment) reports.Table {
	t := reports.Table{Header: []string{"id", "invoice_id", "invoice_number", "customer_id", "amount", "currency", "date", "method", "reference", "created_at"}}
	for _, p := range list {
		t.Rows = append(t.Rows, []string{p.ID, p.InvoiceID, p.InvoiceNumber, p.CustomerID, p.Amount.String(), p.Currency, p.Date.String(), string(p.Method),
			p.Reference, p.CreatedAt.UTC().Format(time.RFC3339)})
	}
	return t
}

// creditNotesTable is the credit notes as CSV rows (one per credit note;
// `creditnotes show --format csv` has one's lines).
func creditNotesTable(list []billing.CreditNote) reports.Table {
	t := reports.Table{Header: []string{"number", "id", "invoice_id", "invoice_number", "customer_id", "issue_date", "subtotal", "tax", "total", "currency", "reason",
		"voided_at", "void_reason"}}
	for _, c := range list {
		voided := ""
		if c.Void() {
			voided = c.VoidedAt.UTC().Format(time.RFC3339)
		}
		t.Rows = append(t.Rows, []string{c.Number, c.ID, c.InvoiceID, c.InvoiceNumber, c.CustomerID, c.IssueDate.String(), c.Subtotal.String(), c.Tax.String(),
			c.Total.String(), c.Currency, c.Reason, voided, c.VoidReason})
	}
	return t
}
