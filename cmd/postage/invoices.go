package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"postage"
	"postage/billing"
	"postage/internal/app"
	"postage/pricing"
	"postage/reports"
)

func init() { extraCommands = append(extraCommands, newInvoicesCmd) }

func newInvoicesCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "invoices",
		Short: "Run invoice periods, finalize, void and reissue, list and show invoices",
		Long: `Invoices are made by runs: a run of a period creates or refreshes a draft for
every customer with usage in that month, and finalizes the drafts whose grace
period has ended. The scheduler of "postage serve" runs the previous month at
02:00 UTC on the 1st and sweeps due drafts hourly; these commands do the same
by hand. See docs/BILLING.md.`,
		Example: `  postage invoices run --period 2026-10
  postage invoices list --period 2026-10 --status draft
  postage invoices finalize --due
  postage invoices void in_3kq7x2v5m1b9c8d4e6f0a2h7j5 --reason "wrong billing address"
  postage invoices balance in_3kq7x2v5m1b9c8d4e6f0a2h7j5
  postage invoices aging --format csv > aging.csv`,
	}
	cmd.AddCommand(newInvoicesRunCmd(g), newInvoicesFinalizeCmd(g), newInvoicesVoidCmd(g), newInvoicesListCmd(g),
		newInvoicesShowCmd(g), newInvoicesRunsCmd(g), newInvoicesUnbilledCmd(g))
	cmd.AddCommand(newReceivablesCmds(g)...)
	return cmd
}

func newInvoicesRunCmd(g *globalFlags) *cobra.Command {
	var period string
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Create or refresh the drafts of a past month and finalize those past grace",
		Example: `  postage invoices run --period 2026-10
  postage invoices run            # the previous month`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, err := g.openApp(cmd.Context())
			if err != nil {
				return err
			}
			defer a.Close()
			m := pricing.MonthOf(a.Now()).Prev()
			if period != "" {
				if m, err = pricing.ParseMonth(period); err != nil {
					return usageError{err}
				}
			}
			p := newProgress(cmd.OutOrStdout(), cmd.ErrOrStderr())
			a.Billing.Progress = func(done, total int) { p.update("rating customers", done, total) }
			run, err := a.Billing.Run(cmd.Context(), billing.RunRequest{Period: m, Trigger: billing.TriggerManual, Wait: true})
			p.finish()
			if err != nil {
				return err
			}
			live, err := a.Billing.Invoices.LiveInvoices(cmd.Context(), m)
			if err != nil {
				return err
			}
			writeRunSummary(cmd.OutOrStdout(), run, live)
			if run.Unbilled > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "unbilled usage: postage invoices unbilled --period %s\n", run.Period)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&period, "period", "", "month to run, YYYY-MM (default: the previous month)")
	return cmd
}

func newInvoicesFinalizeCmd(g *globalFlags) *cobra.Command {
	var due bool
	cmd := &cobra.Command{
		Use:     "finalize [INVOICE_ID...]",
		Aliases: []string{"approve"},
		Short:   "Finalize (approve) drafts now, assigning numbers, or with --due every draft past its grace period",
		Example: `  postage invoices finalize in_3kq7x2v5m1b9c8d4e6f0a2h7j5
  postage invoices approve in_3kq7x2v5m1b9c8d4e6f0a2h7j5
  postage invoices finalize --due`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if due == (len(args) > 0) {
				return usageError{fmt.Errorf("give invoice ids or --due (not both)")}
			}
			a, err := g.openApp(cmd.Context())
			if err != nil {
				return err
			}
			defer a.Close()
			if due {
				runs, err := a.Billing.Sweep(cmd.Context())
				for _, r := range runs {
					fmt.Fprintf(cmd.OutOrStdout(), "run %d of %s %s: %d finalized\n", r.ID, r.Period, r.Status, r.Finalized)
				}
				if len(runs) == 0 && err == nil {
					fmt.Fprintln(cmd.OutOrStdout(), "no draft is past its grace period")
				}
				return err
			}
			for _, arg := range args {
				id, err := invoiceIDOf(cmd.Context(), a, arg)
				if err != nil {
					return err
				}
				inv, err := a.Billing.Approve(cmd.Context(), id)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "finalized %s as %s (%s %s)\n", inv.ID, inv.Number, inv.Total, inv.Currency)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&due, "due", false, "finalize every draft whose grace period has ended (what the hourly sweep does)")
	return cmd
}

func newInvoicesVoidCmd(g *globalFlags) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "void INVOICE --reason TEXT",
		Short: "Void a finalized invoice (by id or number) and reissue it as a new draft",
		Example: `  postage invoices void in_3kq7x2v5m1b9c8d4e6f0a2h7j5 --reason "wrong billing address"
  postage invoices void PST-2026-000099 --reason "wrong billing address"`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if reason == "" {
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
			voided, re, err := a.Billing.Void(cmd.Context(), id, reason)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "voided %s (%s); reissued as draft %s (%s %s), finalizes after %s\n",
				voided.ID, voided.Number, re.ID, re.Total, re.Currency, re.FinalizeAfter.Format("2006-01-02 15:04Z"))
			return nil
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why the invoice is void (required, kept on the invoice)")
	return cmd
}

func newInvoicesListCmd(g *globalFlags) *cobra.Command {
	var period, status, customer string
	var page pageFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List invoices, newest period first",
		Example: `  postage invoices list --period 2026-10 --status draft
  postage invoices list --customer acme-1 --format json
  postage invoices list --period 2026-10 --format csv > invoices-2026-10.csv   # every invoice of the month`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := page.check(); err != nil {
				return err
			}
			f := billing.InvoiceFilter{Status: billing.Status(status), CustomerID: customer}
			if period != "" {
				m, err := pricing.ParseMonth(period)
				if err != nil {
					return usageError{err}
				}
				f.Period = m
			}
			if err := f.Validate(); err != nil {
				return usageError{err}
			}
			a, err := g.openApp(cmd.Context())
			if err != nil {
				return err
			}
			defer a.Close()
			return pageList[billing.Invoice]{
				fetch: func(limit int, cursor string) ([]billing.Invoice, string, error) {
					return a.Invoices.List(cmd.Context(), f, billing.Page{Limit: limit, Cursor: cursor})
				},
				// FINALIZED is when a finalized or void invoice was numbered;
				// FINALIZES AFTER is when a draft's grace period ends. Each
				// column says one thing, "-" where it does not apply.
				header: "ID\tNUMBER\tPERIOD\tCUSTOMER\tSTATUS\tTOTAL\tCURRENCY\tFINALIZED\tFINALIZES AFTER",
				row: func(inv billing.Invoice) []any {
					finalized, after := "-", "-"
					if inv.FinalizedAt != nil {
						finalized = inv.FinalizedAt.UTC().Format("2006-01-02 15:04")
					}
					if inv.Status == billing.StatusDraft {
						after = inv.FinalizeAfter.UTC().Format("2006-01-02 15:04")
					}
					return []any{inv.ID, orDash(inv.Number), inv.Period, inv.CustomerID, inv.Status, inv.Total, inv.Currency, finalized, after}
				},
				csv: reports.InvoiceCSV,
			}.write(cmd, page)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&period, "period", "", "only this month, YYYY-MM")
	fl.StringVar(&status, "status", "", "draft, finalized or void")
	fl.StringVar(&customer, "customer", "", "only this customer")
	page.register(cmd, true)
	return cmd
}

func newInvoicesShowCmd(g *globalFlags) *cobra.Command {
	var show showFlags
	cmd := &cobra.Command{
		Use:   "show INVOICE",
		Short: "Show one invoice (by id or number) as text, JSON, CSV or PDF",
		Example: `  postage invoices show in_3kq7x2v5m1b9c8d4e6f0a2h7j5
  postage invoices show PST-2026-000001 --format pdf -o PST-2026-000001.pdf`,
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
			id, err := invoiceIDOf(cmd.Context(), a, args[0])
			if err != nil {
				return err
			}
			inv, err := a.Invoices.Get(cmd.Context(), id)
			if err != nil {
				return err
			}
			// The same document the API serves: a finalized invoice's is
			// drawn once and kept byte for byte.
			return show.write(cmd, inv,
				func(f billing.Format) ([]byte, error) { return a.Billing.Document(cmd.Context(), inv, f) },
				func(w io.Writer) error { return writeInvoiceText(w, inv) })
		},
	}
	show.register(cmd)
	return cmd
}

func newInvoicesRunsCmd(g *globalFlags) *cobra.Command {
	var period string
	cmd := &cobra.Command{
		Use:     "runs",
		Short:   "List recent invoice runs (scheduled, manual, sweeps), newest first",
		Example: `  postage invoices runs --period 2026-10`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var m pricing.Month
			if period != "" {
				var err error
				if m, err = pricing.ParseMonth(period); err != nil {
					return usageError{err}
				}
			}
			a, err := g.openApp(cmd.Context())
			if err != nil {
				return err
			}
			defer a.Close()
			runs, err := a.Invoices.Runs(cmd.Context(), m, 50)
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "ID\tPERIOD\tTRIGGER\tSTATUS\tSTARTED\tCUSTOMERS\tCREATED\tREFRESHED\tFINALIZED\tUNBILLED\tERROR")
			for _, r := range runs {
				fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\n", r.ID, r.Period, r.Trigger, r.Status, r.StartedAt.UTC().Format("2006-01-02 15:04:05"),
					r.Customers, r.Created, r.Refreshed, r.Finalized, r.Unbilled, r.Error)
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVar(&period, "period", "", "only this month, YYYY-MM")
	return cmd
}

func newInvoicesUnbilledCmd(g *globalFlags) *cobra.Command {
	var period string
	cmd := &cobra.Command{
		Use:     "unbilled --period YYYY-MM",
		Short:   "Usage the last run of a month could not bill (unknown customers, no rate card)",
		Example: `  postage invoices unbilled --period 2026-10`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := pricing.ParseMonth(period)
			if err != nil {
				return usageError{err}
			}
			a, err := g.openApp(cmd.Context())
			if err != nil {
				return err
			}
			defer a.Close()
			rows, err := a.Invoices.Unbilled(cmd.Context(), m)
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "CUSTOMER\tREASON\tCOUNTRY\tCATEGORY\tQUANTITY\tDETAIL")
			for _, r := range rows {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\n", r.CustomerID, r.Reason, r.Country, r.Category, r.Quantity, r.Detail)
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVar(&period, "period", "", "the month, YYYY-MM (required)")
	return cmd
}

func writeInvoiceText(w io.Writer, inv billing.Invoice) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "invoice\t%s\nnumber\t%s\nstatus\t%s\ncustomer\t%s (%s)\nperiod\t%s\ncard\t%s v%d\nusage up to\t%s\n",
		inv.ID, orDash(inv.Number), inv.Status, inv.Customer.Name, inv.CustomerID, inv.Period, inv.CardID, inv.CardVersion, inv.UsageCutoff.Format("2006-01-02 15:04:05Z"))
	if inv.Replaces != "" {
		fmt.Fprintf(tw, "replaces\t%s\n", inv.Replaces)
	}
	if inv.Status == billing.StatusVoid {
		fmt.Fprintf(tw, "void\t%s (replaced by %s)\n", inv.VoidReason, inv.ReplacedBy)
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "LINE\tKIND\tMONTH\tMARKET\tCATEGORY\tQUANTITY\tUNIT PRICE\tLIST\tDISCOUNT\tAMOUNT")
	for i, l := range inv.Lines {
		unit := l.UnitPrice.String()
		if l.Free {
			unit = "free"
		} else if l.Kind == billing.KindAdjustment {
			unit = ""
		}
		cat := l.Category
		if len(l.MessageCategories) > 0 {
			cat += " (" + strings.Join(l.MessageCategories, ", ") + ")"
		}
		list, disc := "", ""
		if !l.Discount.IsZero() {
			disc = l.Discount.String() + "%"
			if !l.ListAmount.IsZero() || !l.DiscountAmount.IsZero() {
				list, disc = l.ListAmount.String(), "-"+l.DiscountAmount.String()+" ("+disc+")"
			}
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", i+1, l.Kind, l.Period, l.Market, cat, l.Quantity, unit, list, disc, l.Amount)
	}
	fmt.Fprintf(tw, "\t\t\t\t\t\t\t\tsubtotal\t%s\n\t\t\t\t\t\t\t\tadjustments\t%s\n", inv.Subtotal, inv.Adjustments)
	for _, t := range inv.TaxLines {
		fmt.Fprintf(tw, "\t\t\t\t\t\t\t\t%s %s%% %s\t%s\n", t.Name, t.Rate, t.Jurisdiction, t.Tax)
	}
	fmt.Fprintf(tw, "\t\t\t\t\t\t\t\ttotal %s\t%s\n", inv.Currency, inv.Total)
	if inv.TaxNote != "" {
		fmt.Fprintf(tw, "\n%s\n", inv.TaxNote)
	}
	if inv.DueDate != nil {
		fmt.Fprintf(tw, "\nissued %s, due %s (%d days)\n", inv.IssueDate, inv.DueDate, inv.PaymentTermsDays)
	}
	return tw.Flush()
}

// invoiceIDOf resolves what a person typed to name an invoice: its id
// (in_…) or its number (PST-2026-000099).
func invoiceIDOf(ctx context.Context, a *app.App, arg string) (string, error) {
	if strings.HasPrefix(arg, "in_") {
		return arg, nil
	}
	list, _, err := a.Invoices.List(ctx, billing.InvoiceFilter{Number: arg}, billing.Page{Limit: 1})
	if err != nil {
		return "", err
	}
	if len(list) == 0 {
		return "", postage.Errorf(postage.ENOTFOUND, "no invoice has the id or number %q (ids start with in_; postage invoices list shows both)", arg)
	}
	return list[0].ID, nil
}

// writeRunSummary says what a run found and did, one fact a line.
func writeRunSummary(w io.Writer, run billing.Run, live map[string]billing.LiveInvoice) {
	var drafts, final int
	for _, l := range live {
		if l.Status == billing.StatusDraft {
			drafts++
		} else {
			final++
		}
	}
	fmt.Fprintf(w, "run %d of %s %s, counting usage up to %s:\n", run.ID, run.Period, run.Status, cutoffText(run.UsageCutoff))
	plural := func(n int, one, many string) string {
		if n == 1 {
			return "1 " + one
		}
		return fmt.Sprintf("%d %s", n, many)
	}
	if run.Customers == 0 {
		fmt.Fprintln(w, "  no draft to create or refresh: no customer has usage of the month without a finalized invoice")
	} else {
		fmt.Fprintf(w, "  %s to draft: %d drafts created, %d refreshed, %d unchanged\n",
			plural(run.Customers, "customer", "customers"), run.Created, run.Refreshed, run.Unchanged)
	}
	if run.Finalized > 0 {
		fmt.Fprintf(w, "  %s finalized (grace period over)\n", plural(run.Finalized, "draft", "drafts"))
	}
	fmt.Fprintf(w, "  the period now has %s and %s (finalized invoices never change; late usage goes on the next invoice)\n",
		plural(final, "finalized invoice", "finalized invoices"), plural(drafts, "draft", "drafts"))
	if run.Unbilled > 0 {
		fmt.Fprintf(w, "  %s unbilled (unknown customers, no rate card)\n", plural(run.Unbilled, "usage row", "usage rows"))
	}
}

func invoiceJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func cutoffText(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}
