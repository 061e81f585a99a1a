package main

import (
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/shopspring/decimal"
	"github.com/spf13/cobra"

	"postage/notify"
)

func init() { extraCommands = append(extraCommands, newWebhooksCmd, newAlertsCmd) }

func newWebhooksCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "webhooks",
		Short: "Register webhook endpoints, read their deliveries, send deliveries again",
		Long: `Webhook endpoints receive postage's events (invoice.finalized, invoice.voided,
invoice.paid, invoice.overdue, credit_note.created, usage.threshold_reached) as
signed HTTPS POSTs, delivered at least once from an outbox in PostgreSQL and
retried with exponential back-off for three days. The signing secret is shown
once, when an endpoint is created or its secret rotated. Serving processes
deliver (notify.deliver); these commands manage what they deliver. See
docs/NOTIFICATIONS.md.`,
		Example: `  postage webhooks create --url https://erp.example.com/hooks/postage --events invoice.finalized,invoice.voided
  postage webhooks create --customer acme-1 --url https://acme.example/hooks --events '*'
  postage webhooks deliveries we_01jc3v2q8m4x7k9d0a5b6n1r2t --status failed
  postage webhooks resend 1042`,
	}
	cmd.AddCommand(newWebhooksCreateCmd(g), newWebhooksListCmd(g), newWebhooksSetEnabledCmd(g, false), newWebhooksSetEnabledCmd(g, true),
		newWebhooksRotateCmd(g), newWebhooksDeleteCmd(g), newWebhooksDeliveriesCmd(g), newWebhooksAttemptsCmd(g), newWebhooksResendCmd(g))
	return cmd
}

func eventTypes(s string) []notify.EventType {
	var out []notify.EventType
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, notify.EventType(p))
		}
	}
	return out
}

func newWebhooksCreateCmd(g *globalFlags) *cobra.Command {
	var n notify.NewEndpoint
	var events string
	cmd := &cobra.Command{
		Use:   "create --url URL --events TYPES",
		Short: "Register an endpoint and print its signing secret (shown only this once)",
		Example: `  postage webhooks create --url https://erp.example.com/hooks/postage --events invoice.finalized,invoice.voided,invoice.paid
  postage webhooks create --customer acme-1 --url https://acme.example/hooks --events '*' --description "Acme's ERP"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			n.EventTypes = eventTypes(events)
			if err := n.Validate(); err != nil {
				return usageError{err}
			}
			a, err := g.openApp(cmd.Context())
			if err != nil {
				return err
			}
			defer a.Close()
			e, err := a.Webhooks.CreateEndpoint(cmd.Context(), n, "")
			if err != nil {
				return err
			}
			whose := "every customer's events"
			if e.CustomerID != "" {
				whose = e.CustomerID + "'s events"
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "created endpoint %s for %s (%s); its signing secret is not shown again:\n", e.ID, whose, typesText(e.EventTypes))
			fmt.Fprintln(cmd.OutOrStdout(), e.Secret)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&n.URL, "url", "", "where events are posted: https://, or http:// to an allowed loopback address (required)")
	fl.StringVar(&events, "events", "", `event types, comma-separated, or '*' for every type (required)`)
	fl.StringVar(&n.CustomerID, "customer", "", "only this customer's events (default: every customer's)")
	fl.StringVar(&n.Description, "description", "", "what the endpoint is for")
	return cmd
}

func typesText(ts []notify.EventType) string {
	s := make([]string, len(ts))
	for i, t := range ts {
		s[i] = string(t)
	}
	return strings.Join(s, ",")
}

func newWebhooksListCmd(g *globalFlags) *cobra.Command {
	var customer string
	var page pageFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List webhook endpoints (never their secrets)",
		Example: `  postage webhooks list
  postage webhooks list --customer acme-1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, err := g.openApp(cmd.Context())
			if err != nil {
				return err
			}
			defer a.Close()
			return pageList[notify.Endpoint]{
				fetch: func(limit int, cursor string) ([]notify.Endpoint, string, error) {
					return a.Webhooks.Endpoints(cmd.Context(), customer, "", notify.Page{Limit: limit, Cursor: cursor})
				},
				header: "ID\tCUSTOMER\tSTATUS\tEVENTS\tURL",
				row: func(e notify.Endpoint) []any {
					status := "enabled"
					if !e.Enabled {
						status = "disabled"
					}
					return []any{e.ID, orDash(e.CustomerID), status, typesText(e.EventTypes), e.URL}
				},
			}.write(cmd, page)
		},
	}
	cmd.Flags().StringVar(&customer, "customer", "", "only this customer's endpoints")
	page.register(cmd, false)
	return cmd
}

func newWebhooksSetEnabledCmd(g *globalFlags, enable bool) *cobra.Command {
	use, short := "disable ENDPOINT_ID", "Disable an endpoint: it gets no new event, its pending deliveries pause"
	if enable {
		use, short = "enable ENDPOINT_ID", "Enable an endpoint: its paused deliveries are sent"
	}
	return &cobra.Command{
		Use: use, Short: short, Args: cobra.ExactArgs(1),
		Example: "  postage webhooks " + strings.Fields(use)[0] + " we_01jc3v2q8m4x7k9d0a5b6n1r2t",
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := g.openApp(cmd.Context())
			if err != nil {
				return err
			}
			defer a.Close()
			e, err := a.Webhooks.UpdateEndpoint(cmd.Context(), args[0], "", notify.EndpointUpdate{Enabled: &enable})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%sd %s\n", strings.Fields(use)[0], e.ID)
			return nil
		},
	}
}

func newWebhooksRotateCmd(g *globalFlags) *cobra.Command {
	var keep string
	cmd := &cobra.Command{
		Use:   "rotate-secret ENDPOINT_ID",
		Short: "Give an endpoint a new signing secret (printed once); the old one keeps signing for --keep-previous",
		Example: `  postage webhooks rotate-secret we_01jc3v2q8m4x7k9d0a5b6n1r2t
  postage webhooks rotate-secret we_01jc3v2q8m4x7k9d0a5b6n1r2t --keep-previous 0s   # the old secret stops at once`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r := notify.RotateRequest{PreviousSecretValidFor: keep}
			if _, err := r.Duration(); err != nil {
				return usageError{err}
			}
			a, err := g.openApp(cmd.Context())
			if err != nil {
				return err
			}
			defer a.Close()
			e, err := a.Webhooks.RotateSecret(cmd.Context(), args[0], "", r)
			if err != nil {
				return err
			}
			until := "the old secret no longer signs"
			if e.PreviousSecretExpiresAt != nil {
				until = "the old secret also signs until " + e.PreviousSecretExpiresAt.Format(time.RFC3339)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "rotated %s (%s); the new secret is not shown again:\n", e.ID, until)
			fmt.Fprintln(cmd.OutOrStdout(), e.Secret)
			return nil
		},
	}
	cmd.Flags().StringVar(&keep, "keep-previous", "24h", "how long requests also carry a signature with the old secret, 0s to 168h")
	return cmd
}

func newWebhooksDeleteCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use: "delete ENDPOINT_ID", Short: "Delete an endpoint and its deliveries", Args: cobra.ExactArgs(1),
		Example: `  postage webhooks delete we_01jc3v2q8m4x7k9d0a5b6n1r2t`,
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := g.openApp(cmd.Context())
			if err != nil {
				return err
			}
			defer a.Close()
			if err := a.Webhooks.DeleteEndpoint(cmd.Context(), args[0], ""); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "deleted", args[0])
			return nil
		},
	}
}

func timeOrDash(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05")
}

func newWebhooksDeliveriesCmd(g *globalFlags) *cobra.Command {
	var status string
	var page pageFlags
	cmd := &cobra.Command{
		Use:   "deliveries ENDPOINT_ID",
		Short: "An endpoint's deliveries, newest first",
		Example: `  postage webhooks deliveries we_01jc3v2q8m4x7k9d0a5b6n1r2t
  postage webhooks deliveries we_01jc3v2q8m4x7k9d0a5b6n1r2t --status failed`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if status != "" && !notify.DeliveryStatus(status).Valid() {
				return usageError{fmt.Errorf("--status %q: pending, succeeded, failed or paused", status)}
			}
			a, err := g.openApp(cmd.Context())
			if err != nil {
				return err
			}
			defer a.Close()
			return pageList[notify.Delivery]{
				fetch: func(limit int, cursor string) ([]notify.Delivery, string, error) {
					return a.Webhooks.Deliveries(cmd.Context(), args[0], "", notify.DeliveryStatus(status), notify.Page{Limit: limit, Cursor: cursor})
				},
				header: "DELIVERY\tEVENT\tTYPE\tCUSTOMER\tSTATUS\tATTEMPTS\tLAST ATTEMPT\tLAST RESULT\tNEXT ATTEMPT",
				row: func(d notify.Delivery) []any {
					return []any{d.ID, d.EventID, d.EventType, d.CustomerID, d.Status, d.Attempts,
						timeOrDash(d.LastAttemptAt), orDash(result(d.LastStatusCode, d.LastError)), timeOrDash(d.NextAttemptAt)}
				},
			}.write(cmd, page)
		},
	}
	cmd.Flags().StringVar(&status, "status", "", "only pending, succeeded, failed or paused deliveries")
	page.register(cmd, false)
	return cmd
}

// result is an attempt's outcome in one short phrase.
func result(code int, errText string) string {
	switch {
	case errText != "":
		return oneLine(fmt.Errorf("%s", errText))
	case code != 0:
		return "HTTP " + strconv.Itoa(code)
	}
	return ""
}

func deliveryID(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, usageError{fmt.Errorf("delivery id %q: a positive number (see postage webhooks deliveries)", s)}
	}
	return id, nil
}

func newWebhooksAttemptsCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:     "attempts DELIVERY_ID",
		Short:   "A delivery's attempt log: when, the answer's status, duration, error and the start of the answer",
		Example: `  postage webhooks attempts 1042`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := deliveryID(args[0])
			if err != nil {
				return err
			}
			a, err := g.openApp(cmd.Context())
			if err != nil {
				return err
			}
			defer a.Close()
			d, err := a.Webhooks.Delivery(cmd.Context(), id, "")
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "delivery %d of event %s (%s) to %s: %s after %d attempts; retried until %s\n",
				d.ID, d.EventID, d.EventType, d.EndpointID, d.Status, d.Attempts, d.RetryUntil.Format("2006-01-02 15:04:05"))
			w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "ATTEMPT\tAT\tRESULT\tDURATION\tANSWER")
			for _, at := range d.AttemptLog {
				answer := strings.Join(strings.Fields(at.Response), " ")
				if len(answer) > 80 {
					answer = answer[:77] + "..."
				}
				fmt.Fprintf(w, "%d\t%s\t%s\t%dms\t%s\n", at.Attempt, at.At.Format("2006-01-02 15:04:05"), orDash(result(at.StatusCode, at.Error)), at.DurationMS, orDash(answer))
			}
			return w.Flush()
		},
	}
}

func newWebhooksResendCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "resend DELIVERY_ID...",
		Short: "Send deliveries again, whatever their status: due now, with a new retry window",
		Example: `  postage webhooks resend 1042
  postage webhooks resend 1042 1043 1050`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var ids []int64
			for _, s := range args {
				id, err := deliveryID(s)
				if err != nil {
					return err
				}
				ids = append(ids, id)
			}
			a, err := g.openApp(cmd.Context())
			if err != nil {
				return err
			}
			defer a.Close()
			for _, id := range ids {
				d, err := a.Webhooks.Resend(cmd.Context(), id, "")
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "delivery %d of %s queued: the serving processes send it now\n", d.ID, d.EventID)
			}
			return nil
		},
	}
}

func newAlertsCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "alerts",
		Short: "Set usage alerts on customers' month-to-date messages or bill",
		Long: `An alert fires usage.threshold_reached (to the webhook endpoints that want it)
once per calendar month, the first time the customer's month-to-date messages or
bill reaches its threshold. Serving processes evaluate alerts every
notify.alert_interval; "postage alerts check" does one pass now. See
docs/NOTIFICATIONS.md.`,
		Example: `  postage alerts create acme-1 --messages 100000
  postage alerts create acme-1 --amount 2500.00
  postage alerts list acme-1`,
	}
	cmd.AddCommand(newAlertsCreateCmd(g), newAlertsListCmd(g), newAlertsDeleteCmd(g), newAlertsCheckCmd(g))
	return cmd
}

func newAlertsCreateCmd(g *globalFlags) *cobra.Command {
	var messages, amount string
	cmd := &cobra.Command{
		Use:   "create CUSTOMER_ID (--messages N | --amount AMOUNT)",
		Short: "Alert when the customer's month-to-date messages or bill (in its currency) reaches a threshold",
		Example: `  postage alerts create acme-1 --messages 100000
  postage alerts create acme-1 --amount 2500.00`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (messages == "") == (amount == "") {
				return usageError{fmt.Errorf("give --messages or --amount (one)")}
			}
			n := notify.NewAlert{Metric: notify.MetricMessages}
			v := messages
			if amount != "" {
				n.Metric, v = notify.MetricAmount, amount
			}
			d, err := decimal.NewFromString(v)
			if err != nil {
				return usageError{fmt.Errorf("--%s %q: not a number", n.Metric, v)}
			}
			n.Threshold = d
			a, err := g.openApp(cmd.Context())
			if err != nil {
				return err
			}
			defer a.Close()
			al, err := a.Webhooks.CreateAlert(cmd.Context(), args[0], n)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "created alert %s: %s when %s's month-to-date %s reaches %s\n", al.ID, notify.UsageThresholdReached, al.CustomerID, al.Metric, alertThreshold(al))
			return nil
		},
	}
	cmd.Flags().StringVar(&messages, "messages", "", "a number of messages")
	cmd.Flags().StringVar(&amount, "amount", "", "an amount in the customer's currency, e.g. 2500.00")
	return cmd
}

func alertThreshold(a notify.Alert) string {
	if a.Metric == notify.MetricAmount {
		return a.Threshold.String() + " " + a.Currency
	}
	return a.Threshold.String() + " messages"
}

func newAlertsListCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use: "list CUSTOMER_ID", Short: "A customer's alerts and the month each last fired", Args: cobra.ExactArgs(1),
		Example: `  postage alerts list acme-1`,
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := g.openApp(cmd.Context())
			if err != nil {
				return err
			}
			defer a.Close()
			list, err := a.Webhooks.Alerts(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "ID\tMETRIC\tTHRESHOLD\tLAST FIRED")
			for _, al := range list {
				last := "-"
				if al.FiredPeriod != nil {
					last = al.FiredPeriod.String() + " (" + timeOrDash(al.FiredAt) + ")"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", al.ID, al.Metric, alertThreshold(al), last)
			}
			return w.Flush()
		},
	}
}

func newAlertsDeleteCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use: "delete CUSTOMER_ID ALERT_ID", Short: "Delete an alert", Args: cobra.ExactArgs(2),
		Example: `  postage alerts delete acme-1 al_01jc3v2q8m4x7k9d0a5b6n1r2t`,
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := g.openApp(cmd.Context())
			if err != nil {
				return err
			}
			defer a.Close()
			if err := a.Webhooks.DeleteAlert(cmd.Context(), args[0], args[1]); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "deleted", args[1])
			return nil
		},
	}
}

func newAlertsCheckCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:     "check",
		Short:   "Evaluate every alert now (what serving processes do every notify.alert_interval)",
		Example: `  postage alerts check`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, err := g.openApp(cmd.Context())
			if err != nil {
				return err
			}
			defer a.Close()
			n, ran, err := a.Alerts.Evaluate(cmd.Context())
			if err != nil {
				return err
			}
			if !ran {
				fmt.Fprintln(cmd.OutOrStdout(), "another process is evaluating alerts right now; nothing done")
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d alerts fired\n", n)
			return nil
		},
	}
}
