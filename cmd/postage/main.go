// Command postage is the one binary of the postage metering and billing
// service: the API server, the managed development setup, migrations and
// the operator's command line. It only parses flags, wires and runs.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"postage"
	"postage/internal/app"
	"postage/internal/config"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRoot().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "postage: "+oneLine(err))
		var ue usageError
		if errors.As(err, &ue) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// usageError marks a wrong command line (exit status 2).
type usageError struct{ error }

// oneLine flattens an error (errors.Join puts problems on separate lines)
// into the single line the CLI prints, showing internal details: the CLI
// user is the operator.
func oneLine(err error) string {
	var pe *postage.Error
	msg := err.Error()
	if errors.As(err, &pe) && pe.Code != postage.EINTERNAL && msg == pe.Error() {
		msg = pe.Message
	}
	return strings.Join(strings.Fields(strings.ReplaceAll(msg, "\n", "; ")), " ")
}

// globalFlags are shared by every command.
type globalFlags struct {
	configPath string
}

func newRoot() *cobra.Command {
	g := &globalFlags{}
	root := &cobra.Command{
		Use:   "postage",
		Short: "Usage metering and billing for per-message pricing",
		Long: `postage meters sent-message events into ClickHouse, prices them with exact
decimal arithmetic, and produces monthly invoices, behind an HTTP API, this
command line and a dashboard.`,
		Example: `  make run                                  # private databases under ./data, demo data, API + dashboard
  postage serve --config postage.toml       # production, against external databases
  postage customers create acme-1 --name "Acme Ltd" --currency USD
  postage apikeys create --name acme-dashboard --role customer --customer acme-1`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w (see %s --help)", err, c.CommandPath())}
	})
	root.PersistentFlags().StringVar(&g.configPath, "config", os.Getenv("POSTAGE_CONFIG"), "TOML config file (see config.example.toml); POSTAGE_* variables override it")
	root.AddCommand(
		newServeCmd(g), newDevCmd(g), newMigrateCmd(g), newAPIKeysCmd(g), newCustomersCmd(g), newVersionCmd(),
	)
	for _, add := range extraCommands {
		root.AddCommand(add(g))
	}
	strictUsage(root)
	return root
}

// strictUsage makes every wrong command line an error with exit status 2:
// an unknown subcommand (cobra would print help and exit 0) or wrong
// arguments, each as one line that points at --help.
func strictUsage(cmd *cobra.Command) {
	if cmd.HasSubCommands() && cmd.Run == nil && cmd.RunE == nil {
		cmd.Args = cobra.ArbitraryArgs
		cmd.RunE = func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				_ = c.Help()
				return usageError{fmt.Errorf("%s needs a subcommand (see %s --help)", c.CommandPath(), c.CommandPath())}
			}
			return usageError{fmt.Errorf("unknown command %q for %s (see %s --help)", args[0], c.CommandPath(), c.CommandPath())}
		}
	} else if args := cmd.Args; args != nil {
		cmd.Args = func(c *cobra.Command, a []string) error {
			if err := args(c, a); err != nil {
				return usageError{fmt.Errorf("%s: %w (see %s --help)", c.CommandPath(), err, c.CommandPath())}
			}
			return nil
		}
	}
	for _, sub := range cmd.Commands() {
		strictUsage(sub)
	}
}

// extraCommands lets each domain's command file add itself in an init
// function, so main.go does not change when a command is added.
var extraCommands []func(*globalFlags) *cobra.Command

// load reads the configuration; for commands other than serve/dev, an
// unset database falls back to the running `make run` servers.
func (g *globalFlags) load() (config.Config, error) {
	cfg, err := config.Load(g.configPath, os.Environ())
	if err != nil {
		return cfg, err
	}
	return cfg, nil
}

// openApp loads config and connects to the databases of a configured
// deployment or of a running `make run`.
func (g *globalFlags) openApp(ctx context.Context) (*app.App, error) {
	cfg, err := g.load()
	if err != nil {
		return nil, err
	}
	cfg = app.UseRunning(cfg)
	// A command prints what it did; the info lines the server logs (an
	// invoice run's summary) would say it twice on stderr.
	logc := cfg.Log
	if logc.Level == "info" {
		logc.Level = "warn"
	}
	a, err := app.Open(ctx, cfg, app.NewLogger(logc))
	if err == nil && clock != nil {
		a.Now = clock
	}
	return a, err
}

// clock replaces the wall clock of the commands' app when set (tests
// inject one).
var clock func() time.Time

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(cmd.OutOrStdout(), "postage", app.Version)
			return nil
		},
	}
}
