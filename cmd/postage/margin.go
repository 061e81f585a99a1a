package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"postage/pricing"
	"postage/reports"
)

// reportRunner opens the app, builds a report and prints it (newReportCmd's
// run: --format, progress bar).
type reportRunner func(cmd *cobra.Command, build func(ctx context.Context, svc *reports.Service) (tabular, string, error)) error

// newMarginCmds are `report margin` and `report margin-simulation`.
func newMarginCmds(run reportRunner) []*cobra.Command {
	var month, groupBy, customer string
	margin := &cobra.Command{
		Use:   "margin",
		Short: "Revenue minus upstream cost by customer, market, category or line, month to date and projected",
		Long: `margin rates each customer's usage at its own card (revenue, as invoiced) and
at the cost card in effect (the upstream's prices: postage costcards), for
the month to date and its projection to the whole month, and prints revenue,
cost and margin; a negative margin is flagged. Customers billed in another
currency than the cost card's without an exchange rate for the month, or
whose usage the cost card cannot rate, are listed as not comparable; usage
nobody is billed for is listed at its cost.`,
		Example: `  postage report margin
  postage report margin --month 2026-10 --group-by line --format csv
  postage report margin --group-by market`,
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
				rep, err := svc.Margin(ctx, reports.MarginQuery{Month: m, GroupBy: groupBy, CustomerID: customer})
				if err != nil {
					return nil, "", err
				}
				return rep, marginSummary(rep), nil
			})
		},
	}
	margin.Flags().StringVar(&month, "month", "", "YYYY-MM (default: the running month)")
	margin.Flags().StringVar(&groupBy, "group-by", "customer", "customer, market, category or line")
	margin.Flags().StringVar(&customer, "customer", "", "only this customer")

	var req reports.MarginSimulationRequest
	var from, to, customers string
	sim := &cobra.Command{
		Use:   "margin-simulation",
		Short: "What a proposed cost card version (an upstream price change) does to margin",
		Example: `  postage report margin-simulation --version 2
  postage report margin-simulation --card meta-2026-01 --version 2 --from 2026-08 --to 2026-10 --format csv`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if from != "" {
				if req.From, err = pricing.ParseMonth(from); err != nil {
					return usageError{fmt.Errorf("--from: %w", err)}
				}
			}
			if to != "" {
				if req.To, err = pricing.ParseMonth(to); err != nil {
					return usageError{fmt.Errorf("--to: %w", err)}
				}
			}
			if req.From.IsZero() != req.To.IsZero() {
				return usageError{fmt.Errorf("give both --from and --to, or neither (the last complete month)")}
			}
			for _, c := range strings.Split(customers, ",") {
				if c = strings.TrimSpace(c); c != "" {
					req.Customers = append(req.Customers, c)
				}
			}
			return run(cmd, func(ctx context.Context, svc *reports.Service) (tabular, string, error) {
				s, err := svc.SimulateMargin(ctx, req)
				if err != nil {
					return nil, "", err
				}
				var b strings.Builder
				fmt.Fprintf(&b, "Cost card %s version %d against %s, %s to %s", s.CardID, s.ProposedVersion, currentCards(s.Current), s.From, s.To)
				for _, t := range s.Totals {
					fmt.Fprintf(&b, "\n%s: revenue %s → %s; cost %s → %s; margin %s → %s (%s); %d customers negative, %d turning negative",
						t.Currency, t.Revenue, t.ProposedRevenue, t.CurrentCost, t.ProposedCost, t.CurrentMargin, t.ProposedMargin, t.Difference, t.Negative, t.TurnsNegative)
				}
				return s, b.String(), nil
			})
		},
	}
	sim.Flags().StringVar(&req.CardID, "card", "", "the cost card of the proposed version (default: the one in effect in --to)")
	sim.Flags().IntVar(&req.Version, "version", 0, "the proposed version (a draft is allowed; required)")
	sim.Flags().StringVar(&from, "from", "", "first month, YYYY-MM (default: the last complete month)")
	sim.Flags().StringVar(&to, "to", "", "last month, YYYY-MM, inclusive")
	sim.Flags().StringVar(&customers, "customers", "", "only these customers, comma separated")
	return []*cobra.Command{margin, sim}
}

// marginSummary is the text printed under a margin table.
func marginSummary(rep *reports.MarginReport) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s, %s of the month elapsed; cost card %s version %d", rep.Month, rep.ElapsedFraction, rep.CostCard.CardID, rep.CostCard.Version)
	for _, t := range rep.Totals {
		fmt.Fprintf(&b, "\n%s: revenue %s, cost %s, margin %s to date (projected %s); %d negative rows",
			t.Currency, t.Revenue, t.Cost, t.Margin, t.ProjectedMargin, t.NegativeRows)
	}
	for _, x := range rep.NotComparable {
		fmt.Fprintf(&b, "\nnot comparable: %s (%s): %s", x.CustomerID, x.Reason, x.Detail)
	}
	for _, x := range rep.Unbilled {
		fmt.Fprintf(&b, "\nunbilled: %s (%s), %d messages costing %s %s", x.CustomerID, x.Reason, x.Quantity, x.Cost, x.CostCurrency)
	}
	return b.String()
}

// currentCards names the cost card versions in effect over a simulation's months.
func currentCards(cs []reports.MarginCard) string {
	var parts []string
	for _, c := range cs {
		parts = append(parts, fmt.Sprintf("%s version %d", c.CardID, c.Version))
	}
	return strings.Join(parts, ", then ")
}
