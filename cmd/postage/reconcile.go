package main

import (
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"postage/pricing"
	"postage/reconcile"
	"postage/reports"
)

func init() { extraCommands = append(extraCommands, newReconcileCmd) }

func newReconcileCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "reconcile",
		Short: "Reconcile a month with the upstream's usage-and-cost report (Meta's pricing analytics)",
		Long: `reconcile imports the upstream's report of a month (Meta's WhatsApp pricing
analytics: per phone number, day or half hour, country, category and pricing
type, the volume of messages and their cost; CSV or the Graph API's JSON),
compares it with postage's own count and cost per customer, day, market and
category, and lists every difference with its likely cause. A month whose
difference exceeds the tolerance ([reconcile] tolerance_percent) holds the
finalization of its invoices until finance accepts the difference, which is
recorded with who, when and why (docs/RECONCILIATION.md).`,
		Example: `  postage reconcile import 2026-10 meta-pricing-2026-10.csv
  postage reconcile import 2026-10 pricing_analytics.json --by "ana (finance)"
  postage reconcile show 2026-10
  postage reconcile show 2026-10 --differences --cause not_metered --format csv > not-metered.csv
  postage reconcile compare 2026-10
  postage reconcile accept 2026-10 --reason "Meta counted 40 test sends; ticket 1234"`,
	}
	defaultBy := ""
	if u, err := user.Current(); err == nil {
		defaultBy = "cli:" + u.Username
	}
	open := func(cmd *cobra.Command) (*reconcile.Service, func(), error) {
		a, err := g.openApp(cmd.Context())
		if err != nil {
			return nil, nil, err
		}
		return a.Reconcile(), a.Close, nil
	}
	month := func(s string) (pricing.Month, error) {
		m, err := pricing.ParseMonth(s)
		if err != nil {
			return m, usageError{fmt.Errorf("month %q: want YYYY-MM", s)}
		}
		return m, nil
	}

	var format, currency, by string
	imp := &cobra.Command{
		Use:   "import <month> <file>",
		Short: "Import the upstream's report of a month and compare it",
		Example: `  postage reconcile import 2026-10 meta-2026-10.csv
  postage reconcile import 2026-10 export.json --format json --currency USD`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := month(args[0])
			if err != nil {
				return err
			}
			f := format
			if f == "" {
				switch strings.ToLower(filepath.Ext(args[1])) {
				case ".json":
					f = reconcile.FormatJSON
				default:
					f = reconcile.FormatCSV
				}
			}
			file, err := os.Open(args[1])
			if err != nil {
				return err
			}
			defer file.Close()
			svc, done, err := open(cmd)
			if err != nil {
				return err
			}
			defer done()
			rec, err := svc.Import(cmd.Context(), reconcile.ImportRequest{Month: m, Format: f, Currency: currency, Source: filepath.Base(args[1]), By: by, Body: file})
			if err != nil {
				printRowErrors(cmd, args[1], err)
				return err
			}
			return printReconciliation(cmd.OutOrStdout(), rec)
		},
	}
	imp.Flags().StringVar(&format, "format", "", "csv or json (default: from the file's extension)")
	imp.Flags().StringVar(&currency, "currency", "", "the currency of the file's costs (default: the cost card's)")
	imp.Flags().StringVar(&by, "by", defaultBy, "who imports it, for the record")

	var diffs, asCSV bool
	var cause, customer, outFormat string
	show := &cobra.Command{
		Use:   "show <month>",
		Short: "Show a month's reconciliation, or its differences",
		Example: `  postage reconcile show 2026-10
  postage reconcile show 2026-10 --differences --customer acme-1
  postage reconcile show 2026-10 --differences --format csv`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := month(args[0])
			if err != nil {
				return err
			}
			if asCSV {
				outFormat = "csv"
				fmt.Fprintln(cmd.ErrOrStderr(), "postage: --csv is now --format csv")
			}
			if outFormat != "table" && outFormat != "text" && outFormat != "csv" {
				return usageError{fmt.Errorf("--format %q: want table or csv", outFormat)}
			}
			if !diffs && outFormat == "csv" {
				return usageError{fmt.Errorf("--format csv prints differences: add --differences")}
			}
			svc, done, err := open(cmd)
			if err != nil {
				return err
			}
			defer done()
			if !diffs {
				rec, err := svc.Get(cmd.Context(), m)
				if err != nil {
					return err
				}
				return printReconciliation(cmd.OutOrStdout(), rec)
			}
			ds, _, err := svc.Differences(cmd.Context(), m, reconcile.DiffFilter{Cause: reconcile.Cause(cause), Customer: customer})
			if err != nil {
				return err
			}
			return printReport(cmd.OutOrStdout(), reconcile.DifferencesTable(ds), fmt.Sprintf("%d differences", len(ds)), outFormat == "csv")
		},
	}
	show.Flags().BoolVar(&diffs, "differences", false, "list the differences (one per customer, day, market, category and cause)")
	show.Flags().StringVar(&cause, "cause", "", "only differences of this cause")
	show.Flags().StringVar(&customer, "customer", "", "only differences of this customer")
	show.Flags().StringVar(&outFormat, "format", "table", "table or csv (the differences)")
	show.Flags().BoolVar(&asCSV, "csv", false, "print the differences as CSV (the same as --format csv)")
	_ = show.Flags().MarkHidden("csv") // the old spelling: --format csv is the one flag

	compare := &cobra.Command{
		Use:     "compare <month>",
		Short:   "Compare the month's latest report again with postage's usage as it is now",
		Example: `  postage reconcile compare 2026-10`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := month(args[0])
			if err != nil {
				return err
			}
			svc, done, err := open(cmd)
			if err != nil {
				return err
			}
			defer done()
			rec, err := svc.Compare(cmd.Context(), m)
			if err != nil {
				return err
			}
			return printReconciliation(cmd.OutOrStdout(), rec)
		},
	}

	var reason string
	accept := &cobra.Command{
		Use:   "accept <month> --reason <why>",
		Short: "Accept the month's difference (recorded with who, when and why), releasing its hold",
		Example: `  postage reconcile accept 2026-10 --reason "Meta's report lacks the 31st; support ticket 1234"
  postage reconcile accept 2026-10 --reason "test sends" --by "ana (finance)"`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := month(args[0])
			if err != nil {
				return err
			}
			if strings.TrimSpace(reason) == "" {
				return usageError{fmt.Errorf("--reason is required: say why the difference is accepted")}
			}
			svc, done, err := open(cmd)
			if err != nil {
				return err
			}
			defer done()
			rec, err := svc.Accept(cmd.Context(), m, by, reason)
			if err != nil {
				return err
			}
			return printReconciliation(cmd.OutOrStdout(), rec)
		},
	}
	accept.Flags().StringVar(&reason, "reason", "", "why the difference is accepted (required)")
	accept.Flags().StringVar(&by, "by", defaultBy, "who accepts it, for the record")

	cmd.AddCommand(imp, show, compare, accept)
	return cmd
}

// printReconciliation prints a reconciliation's summary.
func printReconciliation(w io.Writer, r *reconcile.Reconciliation) error {
	cur := r.Currency
	fmt.Fprintf(w, "%s: %s", r.Month, strings.ReplaceAll(string(r.Status), "_", " "))
	fmt.Fprintf(w, " (gross difference %d messages, %s %s; tolerance %s%%)\n", r.GrossMessages, r.GrossAmount, cur, r.TolerancePercent)
	fmt.Fprintf(w, "report %d: %s, %d data points (%s), imported %s by %s\n", r.Report.ID, orDash(r.Report.Source), r.Report.DataPoints,
		orDash(r.Report.Granularity), r.Report.ImportedAt.Format("2006-01-02T15:04:05Z"), r.Report.ImportedBy)
	fmt.Fprintf(w, "compared %s with cost card %s version %d\n\n", r.ComparedAt.Format("2006-01-02T15:04:05Z"), r.CostCard.CardID, r.CostCard.Version)
	t := reports.Table{Header: []string{"", "messages", "cost"}}
	t.Rows = append(t.Rows,
		[]string{"postage", strconv.FormatInt(r.PostageMessages, 10), r.PostageCost.String() + " " + cur},
		[]string{"upstream", strconv.FormatInt(r.UpstreamMessages, 10), r.UpstreamCost.String() + " " + cur},
		[]string{"difference", strconv.FormatInt(r.Messages, 10), r.Amount.String() + " " + cur})
	if err := t.WriteText(w); err != nil {
		return err
	}
	fmt.Fprintln(w)
	if len(r.Causes) == 0 {
		fmt.Fprintln(w, "no differences")
	} else {
		c := reports.Table{Header: []string{"cause", "lines", "messages", "amount"}}
		for _, x := range r.Causes {
			c.Rows = append(c.Rows, []string{string(x.Cause), strconv.Itoa(x.Lines), strconv.FormatInt(x.Messages, 10), x.Amount.String() + " " + cur})
		}
		if err := c.WriteText(w); err != nil {
			return err
		}
		fmt.Fprintf(w, "%d differences of %d customers: postage reconcile show %s --differences\n", r.Lines, r.Customers, r.Month)
	}
	for _, u := range r.Unmapped {
		fmt.Fprintf(w, "phone number id %s has no customer: %d messages (%s %s) upstream, %d metered\n", u.PhoneNumberID, u.UpstreamMessages, u.UpstreamCost, cur, u.PostageMessages)
	}
	for _, a := range r.Acceptances {
		fmt.Fprintf(w, "accepted %s by %s (%d messages, %s %s): %s\n", a.At.Format("2006-01-02T15:04:05Z"), a.By, a.GrossMessages, a.GrossAmount, cur, a.Reason)
	}
	if r.Status == reconcile.StatusHeld {
		fmt.Fprintf(w, "the month's invoices are not finalized until the difference is accepted: postage reconcile accept %s --reason \"...\"\n", r.Month)
	}
	return nil
}
