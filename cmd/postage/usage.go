package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"postage"
	"postage/metering"
)

func init() { extraCommands = append(extraCommands, newUsageCmd) }

func newUsageCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "usage",
		Short: "Exact metered usage: one customer's, or a month's summary",
		Long: `Usage is read from ClickHouse with the same exact, deduplicated queries as
GET /api/v1/customers/{id}/usage and GET /api/v1/usage/summary. Windows and
months are UTC; ranges are [from, to).`,
	}
	var from, to, window, groupBy, format string
	customer := &cobra.Command{
		Use:   "customer ID",
		Short: "One customer's usage by hour, day or month",
		Example: `  postage usage customer acme-1                                  # this month, by day
  postage usage customer acme-1 --from 2026-10-01 --to 2026-11-01 --window day --group-by country,category
  postage usage customer acme-1 --window month --format csv > acme-usage.csv`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			q, err := usageQueryFlags(args[0], from, to, window, groupBy)
			if err != nil {
				return usageError{err}
			}
			a, err := g.openApp(cmd.Context())
			if err != nil {
				return err
			}
			defer a.Close()
			// An id that is no customer is a typo far more often than
			// usage nobody bills (postage usage summary lists that).
			if _, err := a.Customers.Get(cmd.Context(), q.CustomerID); err != nil {
				if postage.ErrorCode(err) == postage.ENOTFOUND {
					return postage.Errorf(postage.ENOTFOUND, "no customer %q (postage customers list shows them; usage of ids that are no customer: postage usage summary)", q.CustomerID)
				}
				return err
			}
			rows, err := a.Usage.Usage(cmd.Context(), q)
			if err != nil {
				return err
			}
			return printUsage(cmd.OutOrStdout(), format, usageTimeColumn(q.Window), q.GroupBy, rows)
		},
	}
	customer.Flags().StringVar(&from, "from", "", "start, YYYY-MM-DD or RFC 3339 (default: first of this month, UTC)")
	customer.Flags().StringVar(&to, "to", "", "end, exclusive (default: one month after --from)")
	customer.Flags().StringVar(&window, "window", "day", "hour, day or month")
	customer.Flags().StringVar(&groupBy, "group-by", "", "comma list of country, category")
	customer.Flags().StringVar(&format, "format", "table", "table, csv or json")

	var period, sumGroup, sumFormat string
	summary := &cobra.Command{
		Use:   "summary",
		Short: "Every customer's usage in a calendar month",
		Example: `  postage usage summary --period 2026-10
  postage usage summary --period 2026-10 --group-by customer,category --format csv`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := metering.SummaryQuery{Month: metering.MonthStart(time.Now())}
			if period != "" {
				t, err := time.Parse("2006-01", period)
				if err != nil {
					return usageError{fmt.Errorf("--period %q: want YYYY-MM", period)}
				}
				q.Month = t
			}
			dims, err := metering.ParseDimensions(sumGroup, metering.ByCustomer, metering.ByCountry, metering.ByCategory)
			if err != nil {
				return usageError{fmt.Errorf("--group-by: %w", err)}
			}
			if len(dims) == 0 {
				dims = []metering.Dimension{metering.ByCustomer}
			}
			q.GroupBy = dims
			a, err := g.openApp(cmd.Context())
			if err != nil {
				return err
			}
			defer a.Close()
			rows, err := a.Usage.Summary(cmd.Context(), q)
			if err != nil {
				return err
			}
			return printUsage(cmd.OutOrStdout(), sumFormat, timeColumn{"MONTH", "2006-01"}, dims, rows)
		},
	}
	summary.Flags().StringVar(&period, "period", "", "month, YYYY-MM (default: this month, UTC)")
	summary.Flags().StringVar(&sumGroup, "group-by", "customer", "comma list of customer, country, category")
	summary.Flags().StringVar(&sumFormat, "format", "table", "table, csv or json")
	var cperiod string
	var climit int
	conflicts := &cobra.Command{
		Use:   "conflicts",
		Short: "Events of a month stored with two payloads by racing replicas (until merges collapse them)",
		Long: `Lists (customer, id) pairs stored with more than one payload: only concurrent
first inserts of one id with different payloads on two API replicas produce
them. Usage reads count one of the rows (the greatest payload hash), so
totals are exact; this list is for following up with the customer. Background
merges collapse such rows, after which they no longer show here.`,
		Example: `  postage usage conflicts --period 2026-10`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			month := metering.MonthStart(time.Now())
			if cperiod != "" {
				t, err := time.Parse("2006-01", cperiod)
				if err != nil {
					return usageError{fmt.Errorf("--period %q: want YYYY-MM", cperiod)}
				}
				month = t
			}
			a, err := g.openApp(cmd.Context())
			if err != nil {
				return err
			}
			defer a.Close()
			keys, err := a.Conflicts(cmd.Context(), month, climit)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "CUSTOMER\tID")
			for _, k := range keys {
				fmt.Fprintf(tw, "%s\t%s\n", k.CustomerID, k.ID)
			}
			return tw.Flush()
		},
	}
	conflicts.Flags().StringVar(&cperiod, "period", "", "month, YYYY-MM (default: this month, UTC)")
	conflicts.Flags().IntVar(&climit, "limit", 1000, "most pairs to list")
	cmd.AddCommand(customer, summary, conflicts)
	return cmd
}

func usageQueryFlags(customer, from, to, window, groupBy string) (metering.UsageQuery, error) {
	return metering.ParseUsageQuery(metering.UsageParams{Customer: customer, From: from, To: to, Window: window, GroupBy: groupBy}, time.Now(), 0)
}

// timeColumn is how a usage table shows its rows' time in text: the
// column's name and the time layout.
type timeColumn struct{ name, layout string }

// usageTimeColumn shows a window's start as precisely as the window.
func usageTimeColumn(w metering.Window) timeColumn {
	switch w {
	case metering.Hour:
		return timeColumn{"HOUR", "2006-01-02 15:04"}
	case metering.Month:
		return timeColumn{"MONTH", "2006-01"}
	}
	return timeColumn{"DAY", "2006-01-02"}
}

// printUsage writes usage rows. CSV and JSON keep the API's columns
// (start as RFC 3339, quantity, events); the text table names them for a
// reader (the window's time, MESSAGES: the quantity sent, EVENTS: how
// many events carried them) and ends with a total row.
func printUsage(w io.Writer, format string, tc timeColumn, dims []metering.Dimension, rows []metering.UsageRow) error {
	has := map[metering.Dimension]bool{}
	for _, d := range dims {
		has[d] = true
	}
	var dimNames []string
	for _, d := range []metering.Dimension{metering.ByCustomer, metering.ByCountry, metering.ByCategory} {
		if has[d] {
			dimNames = append(dimNames, string(d))
		}
	}
	record := func(r metering.UsageRow, start string) []string {
		rec := []string{start}
		if has[metering.ByCustomer] {
			rec = append(rec, r.CustomerID)
		}
		if has[metering.ByCountry] {
			rec = append(rec, r.Country)
		}
		if has[metering.ByCategory] {
			rec = append(rec, r.Category)
		}
		return append(rec, strconv.FormatUint(r.Quantity, 10), strconv.FormatUint(r.Events, 10))
	}
	switch format {
	case "csv":
		cw := csv.NewWriter(w)
		_ = cw.Write(append(append([]string{"start"}, dimNames...), "quantity", "events"))
		for _, r := range rows {
			_ = cw.Write(record(r, r.Start.Format(time.RFC3339)))
		}
		cw.Flush()
		return cw.Error()
	case "json":
		if rows == nil {
			rows = []metering.UsageRow{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	case "table", "text", "":
		if len(rows) == 0 {
			fmt.Fprintln(w, "no usage in this range")
			return nil
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		head := append([]string{tc.name}, dimNames...)
		for i := 1; i < len(head); i++ {
			head[i] = strings.ToUpper(head[i])
		}
		head = append(head, "MESSAGES", "EVENTS")
		fmt.Fprintln(tw, strings.Join(head, "\t"))
		var total metering.UsageRow
		for _, r := range rows {
			fmt.Fprintln(tw, strings.Join(record(r, r.Start.UTC().Format(tc.layout)), "\t"))
			total.Quantity += r.Quantity
			total.Events += r.Events
		}
		blank := make([]string, len(dimNames))
		fmt.Fprintln(tw, strings.Join(append(append([]string{"TOTAL"}, blank...), strconv.FormatUint(total.Quantity, 10), strconv.FormatUint(total.Events, 10)), "\t"))
		return tw.Flush()
	}
	return usageError{fmt.Errorf("--format %q: want table, csv or json", format)}
}
