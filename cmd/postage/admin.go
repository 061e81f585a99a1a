package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"postage/billing"
	"postage/internal/auth"
	"postage/pricing"
)

func newAPIKeysCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "apikeys", Short: "Create, list and revoke API keys"}
	var n auth.NewKey
	var role string
	create := &cobra.Command{
		Use:   "create",
		Short: "Create an API key and print its secret (shown only this once)",
		Example: `  postage apikeys create --name finance-team --role finance
  postage apikeys create --name acme-dashboard --role customer --customer acme-1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, err := g.openApp(cmd.Context())
			if err != nil {
				return err
			}
			defer a.Close()
			n.Role = auth.Role(role)
			k, token, err := a.Keys.Create(cmd.Context(), n)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "created key %s (%s); store the secret now, it is not shown again:\n", k.ID, k.Role)
			fmt.Fprintln(cmd.OutOrStdout(), token)
			return nil
		},
	}
	create.Flags().StringVar(&n.Name, "name", "", "what the key is for (required)")
	create.Flags().StringVar(&role, "role", "", "admin, finance, sales, ingest or customer (required)")
	create.Flags().StringVar(&n.CustomerID, "customer", "", "customer id, for role customer")
	list := &cobra.Command{
		Use: "list", Short: "List API keys (without secrets)", Args: cobra.NoArgs,
		Example: `  postage apikeys list`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, err := g.openApp(cmd.Context())
			if err != nil {
				return err
			}
			defer a.Close()
			keys, err := a.Keys.List(cmd.Context())
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "ID\tNAME\tROLE\tCUSTOMER\tCREATED\tSTATUS")
			for _, k := range keys {
				status := "active"
				if k.RevokedAt != nil {
					status = "revoked " + k.RevokedAt.UTC().Format("2006-01-02")
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Name, k.Role, k.CustomerID, k.CreatedAt.UTC().Format("2006-01-02 15:04"), status)
			}
			return w.Flush()
		},
	}
	revoke := &cobra.Command{
		Use: "revoke KEY_ID", Short: "Revoke an API key at once", Args: cobra.ExactArgs(1),
		Example: `  postage apikeys revoke 3k9x0q2m7a1b`,
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := g.openApp(cmd.Context())
			if err != nil {
				return err
			}
			defer a.Close()
			if err := a.Keys.Revoke(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "revoked", args[0])
			return nil
		},
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}

func newCustomersCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "customers", Short: "Create, list, show and update customers"}
	var c billing.Customer
	create := &cobra.Command{
		Use:   "create ID",
		Short: "Create a customer (ID is the business's own external id)",
		Example: `  postage customers create 104567890123456 --name "Acme Ltd" --currency USD --country GB
  postage customers create acme-1 --name "Acme Ltd" --phone-number-id 106540352242922
  postage customers create acme-shop-2 --name "Acme Shop 2" --parent acme-group   # a portfolio member from this month`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := g.openApp(cmd.Context())
			if err != nil {
				return err
			}
			defer a.Close()
			c.ID = args[0]
			out, err := a.Customers.Create(cmd.Context(), c)
			if err != nil {
				return err
			}
			pns, _ := cmd.Flags().GetStringSlice("phone-number-id")
			for _, pn := range pns {
				if _, err := a.Customers.AddPhoneNumber(cmd.Context(), out.ID, pn); err != nil {
					return err
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "created customer %s (%s, %s)\n", out.ID, out.Name, out.Currency)
			return nil
		},
	}
	create.Flags().StringVar(&c.Name, "name", "", "legal name (required)")
	create.Flags().StringVar(&c.Currency, "currency", "USD", "billing currency, ISO 4217")
	create.Flags().StringVar(&c.Country, "country", "", "country of registration, ISO 3166-1 alpha-2")
	create.Flags().StringVar(&c.Email, "email", "", "billing email")
	create.Flags().StringSlice("phone-number-id", nil, "WhatsApp phone-number id(s) to attribute webhooks to this customer")
	create.Flags().StringVar(&c.ParentID, "parent", "", "parent account: a portfolio member sharing the parent's tier counts, from this month")
	create.Flags().BoolVar(&c.Consolidated, "consolidated", false, "a parent account that gets one invoice for its members, from this month")
	create.Flags().StringVar(&c.TaxID, "tax-id", "", "VAT or tax registration number")
	create.Flags().StringVar((*string)(&c.TaxStatus), "tax-status", "taxable", "taxable, exempt or reverse_charge (needs --tax-id)")
	create.Flags().StringVar(&c.TaxCountry, "tax-country", "", "country whose tax rates apply (default: --country)")
	create.Flags().StringVar(&c.TaxRegion, "tax-region", "", "ISO 3166-2 subdivision whose rates apply too, e.g. CA-QC")

	var limit int
	var cursor string
	list := &cobra.Command{
		Use: "list", Short: "List customers", Args: cobra.NoArgs,
		Example: `  postage customers list --limit 50
  postage customers list --cursor acme-1`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, err := g.openApp(cmd.Context())
			if err != nil {
				return err
			}
			defer a.Close()
			list, next, err := a.Customers.List(cmd.Context(), billing.Page{Limit: limit, Cursor: cursor})
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "ID\tNAME\tCURRENCY\tCOUNTRY\tCREATED")
			for _, c := range list {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", c.ID, c.Name, c.Currency, c.Country, c.CreatedAt.UTC().Format("2006-01-02"))
			}
			if err := w.Flush(); err != nil {
				return err
			}
			if next != "" {
				fmt.Fprintf(cmd.ErrOrStderr(), "more: postage customers list --cursor %s\n", next)
			}
			return nil
		},
	}
	list.Flags().IntVar(&limit, "limit", 100, "page size, 1-1000")
	list.Flags().StringVar(&cursor, "cursor", "", "continue after this customer id")

	get := &cobra.Command{
		Use: "get ID", Short: "Show a customer", Args: cobra.ExactArgs(1),
		Example: `  postage customers get acme-1`,
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := g.openApp(cmd.Context())
			if err != nil {
				return err
			}
			defer a.Close()
			c, err := a.Customers.Get(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			pns, err := a.Customers.PhoneNumbers(cmd.Context(), c.ID)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "id:        %s\nname:      %s\ncurrency:  %s\ncountry:   %s\nemail:     %s\ncreated:   %s\n", c.ID, c.Name, c.Currency, c.Country, c.Email, c.CreatedAt.UTC().Format("2006-01-02 15:04:05Z"))
			if c.ParentID != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "parent:    %s\n", c.ParentID)
			}
			if c.Consolidated {
				fmt.Fprintf(cmd.OutOrStdout(), "invoice:   consolidated (one invoice for its members)\n")
			}
			terms := "default"
			if c.PaymentTermsDays != nil {
				terms = fmt.Sprintf("%d days", *c.PaymentTermsDays)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "tax:       %s, id %s, jurisdictions %s\nterms:     %s\n", c.TaxStatus, orDash(c.TaxID), orDash(strings.Join(c.TaxJurisdictions(), ", ")), terms)
			if c.Address != nil {
				fmt.Fprintf(cmd.OutOrStdout(), "address:   %s\n", strings.Join(c.Address.Lines(), ", "))
			}
			for _, p := range pns {
				fmt.Fprintf(cmd.OutOrStdout(), "phone id:  %s\n", p.PhoneNumberID)
			}
			return nil
		},
	}
	var u struct {
		name, currency, country, email, taxID, taxStatus, taxCountry, taxRegion string
		terms                                                                   int
		addr                                                                    billing.Address
	}
	update := &cobra.Command{
		Use: "update ID", Short: "Change a customer's fields", Args: cobra.ExactArgs(1),
		Example: `  postage customers update acme-1 --name "Acme Group Ltd" --country DE
  postage customers update acme-1 --tax-status reverse_charge --tax-id DE123456789 --payment-terms-days 14
  postage customers update acme-1 --address-line1 "Hauptstraße 1" --postal-code 10115 --city Berlin --address-country DE`,
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := g.openApp(cmd.Context())
			if err != nil {
				return err
			}
			defer a.Close()
			var up billing.CustomerUpdate
			set := func(flag string, v *string, dst **string) {
				if cmd.Flags().Changed(flag) {
					*dst = v
				}
			}
			set("name", &u.name, &up.Name)
			set("currency", &u.currency, &up.Currency)
			set("country", &u.country, &up.Country)
			set("email", &u.email, &up.Email)
			set("tax-id", &u.taxID, &up.TaxID)
			set("tax-country", &u.taxCountry, &up.TaxCountry)
			set("tax-region", &u.taxRegion, &up.TaxRegion)
			if cmd.Flags().Changed("tax-status") {
				ts := billing.TaxStatus(u.taxStatus)
				up.TaxStatus = &ts
			}
			if cmd.Flags().Changed("payment-terms-days") {
				up.PaymentTermsDays = &u.terms
			}
			for _, f := range []string{"address-line1", "address-line2", "city", "postal-code", "region", "address-country"} {
				if cmd.Flags().Changed(f) {
					up.Address = &u.addr
				}
			}
			if up.Address != nil {
				// Keep the parts of the address not given.
				cur, err := a.Customers.Get(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				if cur.Address != nil {
					merged := *cur.Address
					for f, dst := range map[string]*string{"address-line1": &merged.Line1, "address-line2": &merged.Line2, "city": &merged.City,
						"postal-code": &merged.PostalCode, "region": &merged.Region, "address-country": &merged.Country} {
						if cmd.Flags().Changed(f) {
							v, _ := cmd.Flags().GetString(f)
							*dst = v
						}
					}
					up.Address = &merged
				}
			}
			c, err := a.Customers.Update(cmd.Context(), args[0], up)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "updated customer %s\n", c.ID)
			return nil
		},
	}
	update.Flags().StringVar(&u.name, "name", "", "legal name")
	update.Flags().StringVar(&u.currency, "currency", "", "billing currency")
	update.Flags().StringVar(&u.country, "country", "", "country of registration")
	update.Flags().StringVar(&u.email, "email", "", "billing email")
	update.Flags().StringVar(&u.taxID, "tax-id", "", "VAT or tax registration number")
	update.Flags().StringVar(&u.taxStatus, "tax-status", "", "taxable, exempt or reverse_charge")
	update.Flags().StringVar(&u.taxCountry, "tax-country", "", "country whose tax rates apply")
	update.Flags().StringVar(&u.taxRegion, "tax-region", "", "ISO 3166-2 subdivision whose rates apply too")
	update.Flags().IntVar(&u.terms, "payment-terms-days", 0, "days after issue an invoice is due (0: on issue)")
	update.Flags().StringVar(&u.addr.Line1, "address-line1", "", "postal address, first line")
	update.Flags().StringVar(&u.addr.Line2, "address-line2", "", "postal address, second line")
	update.Flags().StringVar(&u.addr.City, "city", "", "postal address, city")
	update.Flags().StringVar(&u.addr.PostalCode, "postal-code", "", "postal address, postal code")
	update.Flags().StringVar(&u.addr.Region, "region", "", "postal address, region or state")
	update.Flags().StringVar(&u.addr.Country, "address-country", "", "postal address, ISO 3166-1 country")
	cmd.AddCommand(create, list, get, update, newPortfolioCmd(g))
	return cmd
}

func newPortfolioCmd(g *globalFlags) *cobra.Command {
	var parent, from string
	var consolidated, none bool
	cmd := &cobra.Command{
		Use:   "portfolio ID [--parent PARENT | --none] [--consolidated] [--from YYYY-MM]",
		Short: "Show a customer's portfolio, or set its parent account or consolidated invoice from a later month",
		Long: `Members of a portfolio (customers with the same parent account) share one
tier count per market and category per month; a parent set to consolidated
gets one invoice with a section per member. A setting applies from the 1st
of a later month (default: next month): the month in progress never changes.
Without flags, the customer's settings are listed.`,
		Example: `  postage customers portfolio acme-shop-1
  postage customers portfolio acme-shop-1 --parent acme-group
  postage customers portfolio acme-group --consolidated --from 2027-01
  postage customers portfolio acme-shop-1 --none --from 2027-03`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			set := cmd.Flags().Changed("parent") || none || consolidated
			if parent != "" && none {
				return usageError{fmt.Errorf("--parent and --none exclude each other")}
			}
			var m pricing.Month
			if from != "" {
				var err error
				if m, err = pricing.ParseMonth(from); err != nil {
					return usageError{fmt.Errorf("--from: %w", err)}
				}
			}
			a, err := g.openApp(cmd.Context())
			if err != nil {
				return err
			}
			defer a.Close()
			if set {
				if m.IsZero() {
					m = pricing.MonthOf(a.Now()).Next()
				}
				ps, err := a.Customers.SetPortfolio(cmd.Context(), billing.PortfolioSetting{CustomerID: args[0], ParentID: parent, Consolidated: consolidated, EffectiveFrom: m})
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "from %s: %s\n", ps.EffectiveFrom, portfolioText(ps))
				return nil
			}
			hist, err := a.Customers.PortfolioHistory(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "FROM\tSETTING")
			for _, ps := range hist {
				fmt.Fprintf(w, "%s\t%s\n", ps.EffectiveFrom, portfolioText(ps))
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVar(&parent, "parent", "", "the parent account")
	cmd.Flags().BoolVar(&none, "none", false, "no parent (leave the portfolio)")
	cmd.Flags().BoolVar(&consolidated, "consolidated", false, "for a parent: one invoice with a section per member")
	cmd.Flags().StringVar(&from, "from", "", "first month the setting applies to, YYYY-MM (default: next month)")
	return cmd
}

func portfolioText(ps billing.PortfolioSetting) string {
	switch {
	case ps.ParentID != "":
		return "member of " + ps.ParentID
	case ps.Consolidated:
		return "parent account, one consolidated invoice for its members"
	}
	return "no parent; its members (if any) are invoiced each on its own"
}
