package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/shopspring/decimal"
	"github.com/spf13/cobra"

	"postage/pricing"
)

func init() { extraCommands = append(extraCommands, newCostCardsCmd, newFXRatesCmd) }

func newCostCardsCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "costcards",
		Short: "Show or schedule the cost card (the upstream's prices) in effect per month",
		Long: `A cost card holds the upstream's prices (what Meta charges per message).
One cost card is in effect per month: it rates usage at cost, for margins,
reconciliation and cost-plus prices. A new upstream price list is a new
version of the cost card (postage ratecards import/activate); another card
is scheduled here, from a later month.`,
	}
	list := &cobra.Command{
		Use:     "list",
		Short:   "List the schedule: which cost card from which month",
		Example: `  postage costcards list`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, err := g.openApp(cmd.Context())
			if err != nil {
				return err
			}
			defer a.Close()
			list, err := a.Pricing.CostCards(cmd.Context())
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "FROM\tCOST CARD")
			for _, p := range list {
				fmt.Fprintf(w, "%s\t%s\n", p.EffectiveFrom, p.CardID)
			}
			return w.Flush()
		},
	}
	var from string
	set := &cobra.Command{
		Use:   "set CARD --from YYYY-MM",
		Short: "Make a cost card the one in effect from a later month",
		Example: `  postage ratecards import meta-2027 meta-2027.csv --create --name "Meta 2027" --kind cost
  postage ratecards activate meta-2027 1 --from 2027-01
  postage costcards set meta-2027 --from 2027-01`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := pricing.ParseMonth(from)
			if err != nil {
				return usageError{fmt.Errorf("--from: %w", err)}
			}
			a, err := g.openApp(cmd.Context())
			if err != nil {
				return err
			}
			defer a.Close()
			if err := a.Pricing.SetCostCard(cmd.Context(), args[0], m); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s is the cost card from %s\n", args[0], m.Start().Format("2006-01-02"))
			return nil
		},
	}
	set.Flags().StringVar(&from, "from", "", "first month, YYYY-MM (required; after the current month)")
	_ = set.MarkFlagRequired("from")
	cmd.AddCommand(list, set)
	return cmd
}

func newFXRatesCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "fxrates",
		Short: "Record and list the monthly exchange rates cost-plus prices use",
		Long: `A customer priced cost-plus in another currency than the cost card's needs
the month's exchange rate: units of TO for one unit of FROM, recorded once
per month and never changed. A month without its own rate is not billed
(reason no_exchange_rate), never rated with another month's rate.`,
	}
	var from, to string
	list := &cobra.Command{
		Use:   "list",
		Short: "List recorded rates",
		Example: `  postage fxrates list
  postage fxrates list --from USD --to EUR`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, err := g.openApp(cmd.Context())
			if err != nil {
				return err
			}
			defer a.Close()
			list, err := a.Pricing.ExchangeRates(cmd.Context(), from, to)
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "FROM\tTO\tMONTH\tRATE\tSOURCE")
			for _, x := range list {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", x.From, x.To, x.Month, x.Rate, x.Source)
			}
			return w.Flush()
		},
	}
	list.Flags().StringVar(&from, "from", "", "only rates from this currency")
	list.Flags().StringVar(&to, "to", "", "only rates to this currency")
	var source string
	set := &cobra.Command{
		Use:   "set FROM TO YYYY-MM RATE",
		Short: "Record a month's rate: RATE units of TO for one unit of FROM",
		Example: `  postage fxrates set USD EUR 2026-10 0.9231 --source "ECB monthly average"
  postage fxrates set USD JPY 2026-10 151.37`,
		Args: cobra.ExactArgs(4),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := pricing.ParseMonth(args[2])
			if err != nil {
				return usageError{err}
			}
			r, err := decimal.NewFromString(args[3])
			if err != nil {
				return usageError{fmt.Errorf("rate %q is not a decimal number", args[3])}
			}
			a, err := g.openApp(cmd.Context())
			if err != nil {
				return err
			}
			defer a.Close()
			x, err := a.Pricing.SetExchangeRate(cmd.Context(), pricing.ExchangeRate{From: args[0], To: args[1], Month: m, Rate: r, Source: source})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "1 %s = %s %s in %s\n", x.From, x.Rate, x.To, x.Month)
			return nil
		},
	}
	set.Flags().StringVar(&source, "source", "", "where the rate comes from")
	cmd.AddCommand(list, set)
	return cmd
}
