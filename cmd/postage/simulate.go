package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"postage/pricing"
	"postage/reports"
)

func init() { extraCommands = append(extraCommands, newSimulateCmd) }

func newSimulateCmd(g *globalFlags) *cobra.Command {
	var (
		req                    reports.SimulationRequest
		from, to, customers    string
		asCSV, breakdown, noOv bool
		limit                  int
		format                 string
	)
	cmd := &cobra.Command{
		Use:   "simulate",
		Short: "Re-rate real past usage under a proposed rate card: current vs proposed revenue per customer",
		Long: `simulate re-rates the exact monthly usage of past months (one ClickHouse
aggregate query per month) under a proposed card — another card such as
meta-2026-01, or a draft version of a card — and compares it with what each
customer's own card charges. It prints the book totals, the breakdown by the
proposed card's market and category, and the customers sorted by the change
(biggest increase first). With --format csv it prints one CSV row per
customer (or per market and category with --breakdown). docs/REPORTS.md
explains the method.`,
		Example: `  postage simulate --card meta-2026-01 --from 2026-08 --to 2026-10
  postage simulate --card launch --version 3 --from 2026-10 --to 2026-10 --customers acme-1,globex
  postage simulate --card meta-2026-01 --from 2026-08 --to 2026-10 --format csv > impact.csv
  postage simulate --card meta-2026-01 --from 2026-08 --to 2026-10 --breakdown --format csv`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if asCSV {
				format = "csv"
				fmt.Fprintln(cmd.ErrOrStderr(), "postage: --csv is now --format csv")
			}
			switch format {
			case "table", "text":
			case "csv":
				asCSV = true
			default:
				return usageError{fmt.Errorf("--format %q: want table or csv", format)}
			}
			if req.From, err = pricing.ParseMonth(from); err != nil {
				return usageError{fmt.Errorf("--from: %w", err)}
			}
			if req.To, err = pricing.ParseMonth(to); err != nil {
				return usageError{fmt.Errorf("--to: %w", err)}
			}
			if customers != "" {
				for _, c := range strings.Split(customers, ",") {
					if c = strings.TrimSpace(c); c != "" {
						req.Customers = append(req.Customers, c)
					}
				}
			}
			if noOv {
				f := false
				req.KeepOverrides = &f
			}
			a, err := g.openApp(cmd.Context())
			if err != nil {
				return err
			}
			defer a.Close()
			svc := a.Reports()
			bar := newProgress(cmd.OutOrStdout(), cmd.ErrOrStderr())
			svc.Progress = bar.update
			sim, err := svc.Simulate(cmd.Context(), req)
			bar.finish()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			switch {
			case asCSV && breakdown:
				return sim.BreakdownTable().WriteCSV(out)
			case asCSV:
				return sim.Table().WriteCSV(out)
			}
			return printSimulation(out, sim, breakdown, limit)
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.CardID, "card", "", "proposed rate card id (required)")
	f.IntVar(&req.Version, "version", 0, "version of the card, a draft allowed (default: the active version in effect each month)")
	f.StringVar(&from, "from", "", "first month, YYYY-MM (required)")
	f.StringVar(&to, "to", "", "last month, YYYY-MM, inclusive (required)")
	f.StringVar(&customers, "customers", "", "comma-separated customer ids (default: every customer with usage)")
	f.BoolVar(&noOv, "no-overrides", false, "rate the proposed card without the customers' discounts and custom prices")
	f.StringVar(&format, "format", "table", "table or csv")
	f.BoolVar(&asCSV, "csv", false, "print CSV (the same as --format csv)")
	_ = f.MarkHidden("csv") // the old spelling: --format csv is the one flag
	f.BoolVar(&breakdown, "breakdown", false, "show the breakdown by market and category (with --format csv: print it instead of customers)")
	f.IntVar(&limit, "limit", 25, "customers shown in the text output (CSV has all)")
	_ = cmd.MarkFlagRequired("card")
	_ = cmd.MarkFlagRequired("from")
	_ = cmd.MarkFlagRequired("to")
	return cmd
}

func printSimulation(w io.Writer, sim *reports.Simulation, breakdown bool, limit int) error {
	versions := make([]string, len(sim.Versions))
	for i, v := range sim.Versions {
		versions[i] = fmt.Sprint(v)
	}
	fmt.Fprintf(w, "Proposed card %s (version %s), %s to %s, %d customers, %d ms\n\n", sim.CardID, strings.Join(versions, ", "), sim.From, sim.To, len(sim.Customers), sim.ElapsedMS)
	tot := reports.Table{Header: []string{"currency", "customers", "quantity", "current", "proposed", "difference", "percent"}}
	for _, t := range sim.Totals {
		p := ""
		if t.Percent != nil {
			p = t.Percent.StringFixed(2) + "%"
		}
		tot.Rows = append(tot.Rows, []string{t.Currency, fmt.Sprint(t.Customers), fmt.Sprint(t.Quantity), t.Current, t.Proposed, t.Difference, p})
	}
	if err := tot.WriteText(w); err != nil {
		return err
	}
	if breakdown {
		fmt.Fprintln(w)
		if err := sim.BreakdownTable().WriteText(w); err != nil {
			return err
		}
	}
	fmt.Fprintln(w)
	t := sim.Table()
	more := 0
	if limit > 0 && len(t.Rows) > limit {
		more = len(t.Rows) - limit
		t.Rows = t.Rows[:limit]
	}
	if err := t.WriteText(w); err != nil {
		return err
	}
	if more > 0 {
		fmt.Fprintf(w, "… and %d more customers (--limit, or --format csv for all)\n", more)
	}
	return nil
}

// progress is a progress bar on stderr, shown only when stdout is a
// terminal (so piped CSV output and scripts see no bar).
type progress struct {
	mu    sync.Mutex
	w     io.Writer
	on    bool
	bar   *progressbar.ProgressBar
	phase string
}

func newProgress(stdout, stderr io.Writer) *progress {
	f, ok := stdout.(*os.File)
	return &progress{w: stderr, on: ok && term.IsTerminal(int(f.Fd()))}
}

// update is a reports.Service Progress callback.
func (p *progress) update(phase string, done, total int) {
	if !p.on {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar == nil || p.phase != phase {
		if p.bar != nil {
			_ = p.bar.Finish()
		}
		p.phase = phase
		p.bar = progressbar.NewOptions(total, progressbar.OptionSetWriter(p.w), progressbar.OptionSetDescription(phase),
			progressbar.OptionShowCount(), progressbar.OptionClearOnFinish(), progressbar.OptionThrottle(100_000_000))
	}
	_ = p.bar.Set(done)
}

func (p *progress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil {
		_ = p.bar.Finish()
		p.bar = nil
	}
}
