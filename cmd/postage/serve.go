package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"postage/internal/app"
	"postage/internal/auth"
	"postage/internal/config"
	"postage/internal/httpapi"
)

func newServeCmd(g *globalFlags) *cobra.Command {
	var migrate bool
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the API against configured ClickHouse and PostgreSQL (production)",
		Example: `  postage serve --config /etc/postage/postage.toml
  POSTAGE_POSTGRES_DSN=postgres://postage@db/postage POSTAGE_CLICKHOUSE_ADDR=ch:9000 postage serve --migrate`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			log := app.NewLogger(cfg.Log)
			a, err := app.Open(cmd.Context(), cfg, log)
			if err != nil {
				return err
			}
			defer a.Close()
			if migrate {
				if err := a.Migrate(cmd.Context()); err != nil {
					return err
				}
			}
			return a.Serve(cmd.Context(), func(url string) {
				log.Info("serving", "url", url, "version", app.Version)
			})
		},
	}
	cmd.Flags().BoolVar(&migrate, "migrate", false, "apply database migrations before serving")
	return cmd
}

func newDevCmd(g *globalFlags) *cobra.Command {
	var dataDir, addr string
	var demo bool
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Start private ClickHouse and PostgreSQL under ./data, migrate, seed and serve (what `make run` does)",
		Long: `dev runs a complete postage on one machine: it starts its own ClickHouse and
PostgreSQL under the data directory on free loopback ports, migrates them,
seeds the default rate cards, creates a demo admin API key on first start
(kept in <data>/demo-admin-key), optionally loads demo traffic, and serves the
API and dashboard. Ctrl-C stops everything cleanly; the next start reuses the data.`,
		Example: `  postage dev
  postage dev --data /tmp/postage-data --addr 127.0.0.1:9090 --demo=false`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("data") {
				cfg.Dev.DataDir = dataDir
			}
			if cmd.Flags().Changed("addr") {
				cfg.HTTP.Addr = addr
			}
			if cmd.Flags().Changed("demo") {
				cfg.Dev.Demo = demo
			}
			return runDev(cmd, cfg)
		},
	}
	cmd.Flags().StringVar(&dataDir, "data", "data", "directory for the managed databases")
	cmd.Flags().StringVar(&addr, "addr", "127.0.0.1:8080", "HTTP listen address")
	cmd.Flags().BoolVar(&demo, "demo", true, "fill a fresh installation with demo customers, traffic and invoices")
	return cmd
}

func runDev(cmd *cobra.Command, cfg config.Config) error {
	ctx := cmd.Context()
	out := cmd.OutOrStdout()
	if cfg.Log.Requests == "" {
		// Request lines would scroll the address and key off the terminal.
		cfg.Log.Requests = "debug"
	}
	log := app.NewLogger(cfg.Log)
	// Check the port before starting databases, so a port in use fails fast.
	if ln, err := httpapi.Listen(cfg.HTTP.Addr); err != nil {
		return err
	} else {
		ln.Close()
	}
	fmt.Fprintf(out, "Starting private ClickHouse and PostgreSQL under %s/ ...\n", cfg.Dev.DataDir)
	m, a, err := app.StartLocal(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer m.Stop()
	defer a.Close()
	key, err := demoAdminKey(ctx, a, m.Dir)
	if err != nil {
		return err
	}
	keysFile := filepath.Join(m.Dir, "demo-customer-keys")
	if cfg.Dev.Demo {
		if err := a.LoadDemoWith(ctx, out, app.DemoOptions{Key: func(id, name, token string) error {
			return appendLine(keysFile, fmt.Sprintf("%s (%s): %s", name, id, token))
		}}); err != nil {
			return err
		}
	}
	return a.Serve(ctx, func(url string) {
		_ = m.WriteRunInfo(a.Config, url)
		fmt.Fprintf(out, `
postage is running.

  Dashboard & API:  %s
  Admin API key:    %s
  Try:              curl -H "Authorization: Bearer %s" %s/api/v1/customers
  Data:             %s (kept between runs)
%s
Press Ctrl-C to stop postage and both databases.%s
`, url, key, key, url, m.Dir, demoKeysText(keysFile), requestsNote(a.Config))
	})
}

// requestsNote says where the request log lines went when they are at
// debug level and the log does not show them.
func requestsNote(cfg config.Config) string {
	if cfg.Log.Requests == "debug" && cfg.Log.Level != "debug" {
		return "\nRequests are logged at debug level: POSTAGE_LOG_LEVEL=debug shows them."
	}
	return ""
}

// appendLine adds a line to a file only its owner may read (it holds API
// keys), creating it if needed.
func appendLine(path, line string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintln(f, line); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// demoKeysText lists the demo customers' keys saved when the demo data
// was loaded, for the start banner ("" when there are none).
func demoKeysText(path string) string {
	b, err := os.ReadFile(path)
	if err != nil || len(strings.TrimSpace(string(b))) == 0 {
		return ""
	}
	s := "\n  Customer API keys (each sees only its own customer):\n"
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		s += "    " + l + "\n"
	}
	return s + "  (kept in " + path + ")\n"
}

// demoAdminKey returns the demo admin key, creating it on the first start
// only. The token is kept in a 0600 file under the data directory (the
// database stores only its hash), so later starts can print it again.
func demoAdminKey(ctx context.Context, a *app.App, dir string) (string, error) {
	path := filepath.Join(dir, "demo-admin-key")
	if b, err := os.ReadFile(path); err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	n, err := a.Keys.CountByRole(ctx, auth.RoleAdmin)
	if err != nil {
		return "", err
	}
	if n > 0 {
		return "(an admin key exists; its secret was shown when it was made — create another with `postage apikeys create --role admin`)", nil
	}
	_, token, err := a.Keys.Create(ctx, auth.NewKey{Name: "demo admin", Role: auth.RoleAdmin})
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("save demo admin key: %w", err)
	}
	return token, nil
}

func newMigrateCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "migrate",
		Short: "Apply ClickHouse and PostgreSQL migrations (idempotent)",
		Example: `  postage migrate --config postage.toml
  POSTAGE_POSTGRES_DSN=... POSTAGE_CLICKHOUSE_ADDR=... postage migrate`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg, err := g.load(); err == nil && cfg.ClickHouse.Cluster != "" {
				if err := app.MigrateCluster(cmd.Context(), cfg); err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), "migrations applied on cluster", cfg.ClickHouse.Cluster)
				return nil
			}
			a, err := g.openApp(cmd.Context())
			if err != nil {
				return err
			}
			defer a.Close()
			if err := a.Migrate(cmd.Context()); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "migrations applied")
			return nil
		},
	}
}
