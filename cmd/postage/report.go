package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"postage/pricing"
	"postage/reports"
)

func init() { extraCommands = append(extraCommands, newReportCmd) }

// tabular is a report that can print itself as a table.
type tabular interface{ Table() reports.Table }

func newReportCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "report",
		Short: "Revenue, usage trends, top customers, unbilled usage and the month-to-date forecast",
		Long: `report prints the tables finance and sales read, as aligned text or, with
--format csv, as CSV. Money is rated from exact monthly usage with each
customer's card, per currency (docs/REPORTS.md).`,
		Example: `  postage report revenue --from 2026-08 --to 2026-10 --group-by customer
  postage report usage --from 2026-10-01 --to 2026-11-01 --window day --group-by category --format csv
  postage report top-customers --from 2026-08 --to 2026-10 --limit 20
  postage report unbilled --from 2026-08 --to 2026-11
  postage report forecast
  postage report margin --month 2026-10 --group-by line`,
	}
	var asCSV bool
	var format string
	cmd.PersistentFlags().StringVar(&format, "format", "table", "table or csv")
	cmd.PersistentFlags().BoolVar(&asCSV, "csv", false, "print CSV (the same as --format csv)")
	_ = cmd.PersistentFlags().MarkHidden("csv") // the old spelling: --format csv is the one flag

	// run opens the app, builds the report and prints it.
	run := func(cmd *cobra.Command, build func(ctx context.Context, svc *reports.Service) (tabular, string, error)) error {
		a, err := g.openApp(cmd.Context())
		if err != nil {
			return err
		}
		defer a.Close()
		svc := a.Reports()
		bar := newProgress(cmd.OutOrStdout(), cmd.ErrOrStderr())
		svc.Progress = bar.update
		if asCSV {
			format = "csv"
			fmt.Fprintln(cmd.ErrOrStderr(), "postage: --csv is now --format csv")
		}
		if format != "table" && format != "text" && format != "csv" {
			return usageError{fmt.Errorf("--format %q: want table or csv", format)}
		}
		rep, summary, err := build(cmd.Context(), svc)
		bar.finish()
		if err != nil {
			return err
		}
		t := rep.Table()
		if tt, ok := rep.(totaled); ok && format != "csv" {
			t.Rows = append(t.Rows, tt.TotalRows()...)
		}
		return printReport(cmd.OutOrStdout(), t, summary, format == "csv")
	}
	monthFlags := func(c *cobra.Command, from, to *string) {
		c.Flags().StringVar(from, "from", "", "first month, YYYY-MM (default: two months before --to)")
		c.Flags().StringVar(to, "to", "", "last month, YYYY-MM, inclusive (default: the last complete month)")
	}

	var from, to, groupBy, customer string
	revenue := &cobra.Command{
		Use:   "revenue",
		Short: "Revenue by month, customer, market, country or category",
		Example: `  postage report revenue
  postage report revenue --from 2026-08 --to 2026-10 --group-by country --format csv`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, t, err := monthRange(from, to, 0)
			if err != nil {
				return err
			}
			return run(cmd, func(ctx context.Context, svc *reports.Service) (tabular, string, error) {
				rep, err := svc.Revenue(ctx, reports.RevenueQuery{From: f, To: t, GroupBy: groupBy, CustomerID: customer})
				if err != nil {
					return nil, "", err
				}
				return revenueTable{rep}, "", nil
			})
		},
	}
	monthFlags(revenue, &from, &to)
	revenue.Flags().StringVar(&groupBy, "group-by", "month", "month, customer, market, country or category")
	revenue.Flags().StringVar(&customer, "customer", "", "only this customer")

	var window, start, end string
	usage := &cobra.Command{
		Use:   "usage",
		Short: "Usage trend per day or month, optionally by category or country",
		Example: `  postage report usage --from 2026-10-01 --to 2026-11-01
  postage report usage --from 2026-08-01 --to 2026-11-01 --window month --group-by country --format csv`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			now := time.Now().UTC()
			tomorrow := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC).AddDate(0, 0, 1)
			q := reports.SeriesQuery{From: tomorrow.AddDate(0, 0, -30), To: tomorrow, Window: reports.SeriesWindow(window), GroupBy: groupBy, CustomerID: customer}
			for _, p := range []struct {
				v   string
				dst *time.Time
				n   string
			}{{start, &q.From, "--from"}, {end, &q.To, "--to"}} {
				if p.v == "" {
					continue
				}
				t, err := parseTime(p.v)
				if err != nil {
					return usageError{fmt.Errorf("%s: %w", p.n, err)}
				}
				*p.dst = t
			}
			return run(cmd, func(ctx context.Context, svc *reports.Service) (tabular, string, error) {
				rep, err := svc.UsageTrend(ctx, q)
				if err != nil {
					return nil, "", err
				}
				var n int64
				for _, k := range rep.Totals {
					n += k.Quantity
				}
				return rep, fmt.Sprintf("%d messages in %d points", n, len(rep.Points)), nil
			})
		},
	}
	usage.Flags().StringVar(&start, "from", "", "start, YYYY-MM-DD or RFC 3339 (default: 30 days ago)")
	usage.Flags().StringVar(&end, "to", "", "end (exclusive), YYYY-MM-DD or RFC 3339 (default: tomorrow)")
	usage.Flags().StringVar(&window, "window", "day", "day or month")
	usage.Flags().StringVar(&groupBy, "group-by", "", "category or country")
	usage.Flags().StringVar(&customer, "customer", "", "only this customer")

	var by string
	var limit int
	top := &cobra.Command{
		Use:   "top-customers",
		Short: "Customers ranked by rated amount or quantity",
		Example: `  postage report top-customers --limit 20
  postage report top-customers --from 2026-08 --to 2026-10 --by quantity --format csv`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, t, err := monthRange(from, to, 0)
			if err != nil {
				return err
			}
			return run(cmd, func(ctx context.Context, svc *reports.Service) (tabular, string, error) {
				rep, err := svc.TopCustomers(ctx, reports.TopQuery{From: f, To: t, By: by, Limit: limit})
				return rep, "", err
			})
		},
	}
	monthFlags(top, &from, &to)
	top.Flags().StringVar(&by, "by", "amount", "amount or quantity")
	top.Flags().IntVar(&limit, "limit", 10, "how many customers (1-1000)")

	unbilled := &cobra.Command{
		Use:   "unbilled",
		Short: "Usage no invoice bills: unknown customers, no rate card, unratable usage",
		Example: `  postage report unbilled
  postage report unbilled --from 2026-08 --to 2026-11 --format csv`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, t, err := monthRange(from, to, 1)
			if err != nil {
				return err
			}
			return run(cmd, func(ctx context.Context, svc *reports.Service) (tabular, string, error) {
				rep, err := svc.Unbilled(ctx, f, t)
				if err != nil {
					return nil, "", err
				}
				return rep, fmt.Sprintf("%d unbilled messages of %d customer ids", rep.Totals.Quantity, rep.Totals.Customers), nil
			})
		},
	}
	unbilled.Flags().StringVar(&from, "from", "", "first month, YYYY-MM (default: three months before --to)")
	unbilled.Flags().StringVar(&to, "to", "", "last month, YYYY-MM (default: the running month)")

	var month string
	forecast := &cobra.Command{
		Use:   "forecast",
		Short: "Month-to-date revenue per customer and its projection to the whole month",
		Example: `  postage report forecast
  postage report forecast --month 2026-11 --format csv`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var m pricing.Month
			if month != "" {
				var err error
				if m, err = pricing.ParseMonth(month); err != nil {
					return usageError{fmt.Errorf("--month: %w", err)}
				}
			}
			return run(cmd, func(ctx context.Context, svc *reports.Service) (tabular, string, error) {
				rep, err := svc.Forecast(ctx, reports.ForecastQuery{Month: m, CustomerID: customer})
				if err != nil {
					return nil, "", err
				}
				s := fmt.Sprintf("%s, %s of the month elapsed (%s)", rep.Month, rep.ElapsedFraction, rep.Method)
				for _, t := range rep.Totals {
					s += fmt.Sprintf("\n%s: %s to date, %s projected (%d customers)", t.Currency, t.AmountToDate, t.ProjectedAmount, t.Customers)
				}
				return rep, s, nil
			})
		},
	}
	forecast.Flags().StringVar(&month, "month", "", "YYYY-MM (default: the running month)")
	forecast.Flags().StringVar(&customer, "customer", "", "only this customer")

	cmd.AddCommand(revenue, usage, top, unbilled, forecast)
	cmd.AddCommand(newMarginCmds(run)...)
	return cmd
}

// totaled is a report whose text table ends with total rows.
type totaled interface{ TotalRows() [][]string }

// revenueTable prints the revenue report with a total row per currency
// (the CSV is the API's, without them).
type revenueTable struct{ *reports.RevenueReport }

// TotalRows returns one "TOTAL" row per currency, in the table's columns.
func (r revenueTable) TotalRows() [][]string {
	var rows [][]string
	for _, t := range r.Totals {
		rows = append(rows, []string{"TOTAL", "", t.Currency, fmt.Sprint(t.Quantity), t.Amount, fmt.Sprint(t.Customers)})
	}
	return rows
}

// monthRange parses --from/--to; by default the three months ending
// `ahead` months after the last complete month.
func monthRange(from, to string, ahead int) (pricing.Month, pricing.Month, error) {
	t := pricing.MonthOf(time.Now()).Prev()
	for range ahead {
		t = t.Next()
	}
	if to != "" {
		m, err := pricing.ParseMonth(to)
		if err != nil {
			return t, t, usageError{fmt.Errorf("--to: %w", err)}
		}
		t = m
	}
	f := t.Prev().Prev()
	if from != "" {
		m, err := pricing.ParseMonth(from)
		if err != nil {
			return f, t, usageError{fmt.Errorf("--from: %w", err)}
		}
		f = m
	}
	return f, t, nil
}

func parseTime(s string) (time.Time, error) {
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return t, fmt.Errorf("%q: want YYYY-MM-DD or an RFC 3339 time", s)
	}
	return t.UTC(), nil
}

func printReport(w io.Writer, t reports.Table, summary string, asCSV bool) error {
	if asCSV {
		return t.WriteCSV(w)
	}
	if len(t.Rows) == 0 {
		fmt.Fprintln(w, "nothing to report in this range")
		return nil
	}
	if err := withoutEmptyColumns(t).WriteText(w); err != nil {
		return err
	}
	if summary != "" {
		fmt.Fprintln(w)
		fmt.Fprintln(w, summary)
	}
	return nil
}

// withoutEmptyColumns drops the columns no row fills (a revenue report by
// month has no names), so every column printed says something.
func withoutEmptyColumns(t reports.Table) reports.Table {
	var keep []int
	for i := range t.Header {
		for _, r := range t.Rows {
			if i < len(r) && r[i] != "" {
				keep = append(keep, i)
				break
			}
		}
	}
	out := reports.Table{Header: make([]string, len(keep))}
	for j, i := range keep {
		out.Header[j] = t.Header[i]
	}
	for _, r := range t.Rows {
		row := make([]string, len(keep))
		for j, i := range keep {
			if i < len(r) {
				row[j] = r[i]
			}
		}
		out.Rows = append(out.Rows, row)
	}
	return out
}
