package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"postage"
	"postage/pricing"
)

func init() { extraCommands = append(extraCommands, newRateCardsCmd) }

func newRateCardsCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ratecards",
		Short: "List, export, import and activate rate cards",
		Long: `Rate cards hold the per-market, per-category prices. A card has versions:
drafts can be edited (import creates one), activation fixes a draft from the
1st of a later month on and never changes an earlier month. The CSV format is
described in docs/PRICING.md.`,
	}

	list := &cobra.Command{
		Use:   "list [CARD]",
		Short: "List rate cards, or the versions of one card",
		Example: `  postage ratecards list
  postage ratecards list launch`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := g.openApp(cmd.Context())
			if err != nil {
				return err
			}
			defer a.Close()
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			if len(args) == 0 {
				cards, err := a.Pricing.ListCards(cmd.Context())
				if err != nil {
					return err
				}
				fmt.Fprintln(w, "ID\tNAME\tCURRENCY\tROUNDING\tKIND\tDEFAULT")
				for _, c := range cards {
					dflt := ""
					if c.Default {
						dflt = "default"
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", c.ID, c.Name, c.Currency, c.Rounding, c.Kind, dflt)
				}
				return w.Flush()
			}
			if _, err := a.Pricing.GetCard(cmd.Context(), args[0]); err != nil {
				return err
			}
			vs, err := a.Pricing.ListVersions(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintln(w, "VERSION\tSTATUS\tEFFECTIVE FROM\tMARKETS\tCATEGORIES\tNOTE")
			for _, v := range vs {
				markets := map[string]bool{v.DefaultMarket: true}
				for _, m := range v.Countries {
					markets[m] = true
				}
				fmt.Fprintf(w, "%d\t%s\t%s\t%d\t%d\t%s\n", v.Number, v.Status, v.EffectiveFrom, len(markets), len(v.Categories), v.Note)
			}
			return w.Flush()
		},
	}

	var version int
	var month, out string
	export := &cobra.Command{
		Use:   "export CARD",
		Short: "Write a card version as CSV (default: the version in effect this month)",
		Example: `  postage ratecards export launch > launch.csv
  postage ratecards export meta-2026-01 --version 1 -o meta.csv
  postage ratecards export launch --month 2027-01`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := g.openApp(cmd.Context())
			if err != nil {
				return err
			}
			defer a.Close()
			// "No version in effect" would mislead about a card that
			// does not exist at all.
			if _, err := a.Pricing.GetCard(cmd.Context(), args[0]); err != nil {
				return err
			}
			var v *pricing.Version
			switch {
			case version != 0:
				v, err = a.Pricing.GetVersion(cmd.Context(), args[0], version)
			default:
				m := pricing.MonthOf(time.Now())
				if month != "" {
					if m, err = pricing.ParseMonth(month); err != nil {
						return usageError{err}
					}
				}
				v, err = a.Pricing.VersionFor(cmd.Context(), args[0], m)
			}
			if err != nil {
				return err
			}
			var b bytes.Buffer
			if err := pricing.EncodeCSV(&b, v); err != nil {
				return err
			}
			if out == "" || out == "-" {
				_, err = cmd.OutOrStdout().Write(b.Bytes())
				return err
			}
			if err := os.WriteFile(out, b.Bytes(), 0o644); err != nil {
				return fmt.Errorf("write %s: %w", out, err)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s version %d (%s) to %s\n", v.CardID, v.Number, v.Status, out)
			return nil
		},
	}
	export.Flags().IntVar(&version, "version", 0, "version number (drafts included)")
	export.Flags().StringVar(&month, "month", "", "the version in effect in this month, YYYY-MM (default: this month)")
	export.Flags().StringVarP(&out, "output", "o", "", "file to write (default: stdout)")

	var create bool
	var card pricing.RateCard
	imp := &cobra.Command{
		Use:   "import CARD FILE",
		Short: "Create a draft version of CARD from a CSV file ('-' reads stdin)",
		Long: `Import reads a version in the CSV format of docs/PRICING.md and stores it as a
new draft of CARD. An invalid file is rejected whole; every problem is
listed with its row and column. Activate the draft with 'ratecards activate'.`,
		Example: `  postage ratecards import launch launch-2027.csv
  postage ratecards import acme-special acme.csv --create --name "Acme special" --currency EUR
  postage ratecards import acme-cost-plus plus.csv --create --name "Acme cost plus"   # cost_plus rows, docs/PRICING.md
  postage ratecards import meta-2027 meta-2027.csv --create --name "Meta 2027" --kind cost
  postage ratecards export launch | sed 's/0.0887/0.0850/' | postage ratecards import launch -`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var r io.Reader = cmd.InOrStdin()
			if args[1] != "-" {
				f, err := os.Open(args[1])
				if err != nil {
					return err
				}
				defer f.Close()
				r = f
			}
			v, err := pricing.DecodeCSV(r)
			if err != nil {
				printRowErrors(cmd, args[1], err)
				return err
			}
			a, err := g.openApp(cmd.Context())
			if err != nil {
				return err
			}
			defer a.Close()
			if create {
				card.ID = args[0]
				if card.Currency == "" {
					card.Currency = v.Currency
				}
				if err := a.Pricing.CreateCard(cmd.Context(), card); err != nil {
					return err
				}
			}
			v.CardID, v.Number = args[0], 0
			d, err := a.Pricing.CreateDraft(cmd.Context(), v)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "imported %s as draft version %d of %s; activate it with: postage ratecards activate %s %d --from YYYY-MM\n",
				args[1], d.Number, d.CardID, d.CardID, d.Number)
			return nil
		},
	}
	imp.Flags().BoolVar(&create, "create", false, "create the card first")
	imp.Flags().StringVar(&card.Name, "name", "", "with --create: the card's name")
	imp.Flags().StringVar(&card.Currency, "currency", "", "with --create: the card's currency (default: the file's)")
	imp.Flags().StringVar((*string)(&card.Rounding), "rounding", "half_even", "with --create: half_even or half_up")
	imp.Flags().StringVar((*string)(&card.Kind), "kind", "selling", "with --create: selling, or cost (the upstream's prices)")

	var from string
	activate := &cobra.Command{
		Use:     "activate CARD VERSION --from YYYY-MM",
		Short:   "Activate a draft from the 1st of a month (after this month and the card's latest activation)",
		Example: `  postage ratecards activate launch 2 --from 2027-01`,
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := strconv.Atoi(args[1])
			if err != nil {
				return usageError{fmt.Errorf("version %q is not a number", args[1])}
			}
			m, err := pricing.ParseMonth(from)
			if err != nil {
				return usageError{fmt.Errorf("--from: %w", err)}
			}
			a, err := g.openApp(cmd.Context())
			if err != nil {
				return err
			}
			defer a.Close()
			v, err := a.Pricing.Activate(cmd.Context(), args[0], n, m)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s version %d is active from %s\n", v.CardID, v.Number, v.EffectiveFrom.Start().Format("2006-01-02"))
			return nil
		},
	}
	activate.Flags().StringVar(&from, "from", "", "first month the version applies to, YYYY-MM (required)")
	_ = activate.MarkFlagRequired("from")

	cmd.AddCommand(list, export, imp, activate)
	return cmd
}

// printRowErrors lists a rejected CSV file's problems, one per line, before
// the command's one-line error.
func printRowErrors(cmd *cobra.Command, file string, err error) {
	var pe *postage.Error
	if !errors.As(err, &pe) {
		return
	}
	rows, _ := pe.Detail.([]pricing.RowError)
	for _, r := range rows {
		if r.Row == 0 {
			fmt.Fprintf(cmd.ErrOrStderr(), "%s: %s\n", file, r.Message)
		} else {
			fmt.Fprintf(cmd.ErrOrStderr(), "%s:%d: %s: %s\n", file, r.Row, r.Column, r.Message)
		}
	}
}
