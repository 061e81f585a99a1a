// Command postage-bench measures postage's goals against raw baselines run
// in the same command and writes the figures to docs/BENCHMARKS.md. It is a
// separate binary so that benchmark tooling (table truncation, /proc
// parsing, profiling hooks) never ships in the server.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"postage/internal/app"
	"postage/internal/config"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRoot().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "postage-bench: "+strings.Join(strings.Fields(err.Error()), " "))
		var ue usageError
		if errors.As(err, &ue) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// usageError marks a wrong command line (exit status 2).
type usageError struct{ error }

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "postage-bench",
		Short: "Benchmarks of postage's goals, each against a baseline measured in the same run",
		Example: `  make bench                      # every benchmark
  postage-bench ingest --help
  postage-bench invoices --customers 50000 --events 30000000
  postage-bench usage --fill-rows 100000000
  postage-bench cluster --customers 2000 --events 1000000`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w (see %s --help)", err, c.CommandPath())}
	})
	root.AddCommand(newIngestCmd(), newInvoicesCmd(), newMarginCmd(), newUsageCmd(), newClusterCmd(), newServeCmd())
	return root
}

// newServeCmd is the server child the ingest benchmark measures: exactly
// `postage serve` (the same app.Open and Serve), configured from the
// environment, plus net/http/pprof on a loopback address when
// POSTAGE_PPROF_ADDR is set, so profiles can be taken of the server without
// the production binary carrying the hook.
func newServeCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "serve",
		Short:  "Serve like `postage serve` (configured by POSTAGE_* variables), with pprof for profiling",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load("", os.Environ())
			if err != nil {
				return err
			}
			if err := startPprof(); err != nil {
				return err
			}
			a, err := app.Open(cmd.Context(), cfg, app.NewLogger(cfg.Log))
			if err != nil {
				return err
			}
			defer a.Close()
			return a.Serve(cmd.Context(), func(string) {})
		},
	}
}
