package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"postage/internal/config"
	"postage/internal/localdb"
	"postage/notify"
)

// Managed is a private ClickHouse and PostgreSQL pair under a data
// directory, as `postage dev` (and so `make run`) runs them.
type Managed struct {
	Dir string
	PG  *localdb.Postgres
	CH  *localdb.ClickHouse
}

// runInfo is written to <data>/run.json while `postage dev` runs, so other
// postage commands (customers, apikeys, usage...) find the managed servers.
type runInfo struct {
	PID         int    `json:"pid"`
	URL         string `json:"url"`
	PostgresDSN string `json:"postgres_dsn"`
	ClickHouse  string `json:"clickhouse_addr"`
}

const pgDatabase = "postage"

// StartManaged starts (or restarts, reusing data) both servers under dir and
// returns cfg pointed at them.
func StartManaged(ctx context.Context, cfg config.Config, log *slog.Logger) (*Managed, config.Config, error) {
	dir, err := filepath.Abs(cfg.Dev.DataDir)
	if err != nil {
		return nil, cfg, fmt.Errorf("data dir: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, cfg, fmt.Errorf("create data dir %s: %w", dir, err)
	}
	if info, ok := readRunInfo(dir); ok && processAlive(info.PID) && info.PID != os.Getpid() {
		return nil, cfg, fmt.Errorf("another `postage dev` (pid %d) is already using %s at %s: stop it first (Ctrl-C in its terminal)", info.PID, dir, info.URL)
	}
	if cfg, err = devNotify(cfg, dir, true); err != nil {
		return nil, cfg, err
	}
	m := &Managed{Dir: dir}
	type pgRes struct {
		s   *localdb.Postgres
		err error
	}
	pgc := make(chan pgRes, 1)
	go func() {
		s, err := localdb.StartPostgres(ctx, localdb.PostgresOptions{Dir: filepath.Join(dir, "postgres"), Logger: log})
		pgc <- pgRes{s, err}
	}()
	ch, chErr := localdb.StartClickHouse(ctx, localdb.ClickHouseOptions{Dir: filepath.Join(dir, "clickhouse"), Logger: log})
	r := <-pgc
	m.PG, m.CH = r.s, ch
	if err := errors.Join(r.err, chErr); err != nil {
		m.Stop()
		return nil, cfg, err
	}
	if err := m.PG.EnsureDatabase(ctx, pgDatabase); err != nil {
		m.Stop()
		return nil, cfg, err
	}
	cfg.Postgres.DSN = m.PG.DSN(pgDatabase)
	cfg.ClickHouse.Addr = m.CH.Addr()
	return m, cfg, nil
}

// WriteRunInfo records where the running servers are, for other commands.
func (m *Managed) WriteRunInfo(cfg config.Config, url string) error {
	b, _ := json.MarshalIndent(runInfo{PID: os.Getpid(), URL: url, PostgresDSN: cfg.Postgres.DSN, ClickHouse: cfg.ClickHouse.Addr}, "", "  ")
	return os.WriteFile(filepath.Join(m.Dir, "run.json"), b, 0o600)
}

// Stop stops both servers cleanly and removes run.json.
func (m *Managed) Stop() {
	if m == nil {
		return
	}
	_ = os.Remove(filepath.Join(m.Dir, "run.json"))
	if m.CH != nil {
		_ = m.CH.Stop()
	}
	if m.PG != nil {
		_ = m.PG.Stop()
	}
}

// UseRunning points cfg at the servers of a running `postage dev` when no
// database is configured, so CLI commands work next to `make run`.
func UseRunning(cfg config.Config) config.Config {
	if cfg.Postgres.DSN != "" && len(cfg.ClickHouse.Addresses()) > 0 {
		return cfg
	}
	dir, err := filepath.Abs(cfg.Dev.DataDir)
	if err != nil {
		return cfg
	}
	info, ok := readRunInfo(dir)
	if !ok || !processAlive(info.PID) {
		return cfg
	}
	if cfg.Postgres.DSN == "" {
		cfg.Postgres.DSN = info.PostgresDSN
	}
	if len(cfg.ClickHouse.Addresses()) == 0 {
		cfg.ClickHouse.Addr = info.ClickHouse
	}
	cfg, _ = devNotify(cfg, dir, false)
	return cfg
}

// devNotifyKeyFile keeps the webhook secret key of `postage dev` (0600).
const devNotifyKeyFile = "webhook-secret-key"

// devNotify makes webhooks work on one machine when nothing is
// configured: the key that seals endpoint secrets is kept under the data
// directory (made on the first start when create is set), and receivers
// on loopback addresses are allowed.
func devNotify(cfg config.Config, dir string, create bool) (config.Config, error) {
	if cfg.Notify.SecretKey == "" {
		path := filepath.Join(dir, devNotifyKeyFile)
		b, err := os.ReadFile(path)
		switch {
		case err == nil:
			cfg.Notify.SecretKey = strings.TrimSpace(string(b))
		case create && errors.Is(err, os.ErrNotExist):
			key := notify.NewKey()
			if err := os.WriteFile(path, []byte(key+"\n"), 0o600); err != nil {
				return cfg, fmt.Errorf("save the webhook secret key: %w", err)
			}
			cfg.Notify.SecretKey = key
		case create:
			return cfg, fmt.Errorf("read the webhook secret key: %w", err)
		}
	}
	if len(cfg.Notify.AllowNetworks) == 0 {
		cfg.Notify.AllowNetworks = []string{"127.0.0.0/8", "::1/128"}
	}
	return cfg, nil
}

func readRunInfo(dir string) (runInfo, bool) {
	var info runInfo
	b, err := os.ReadFile(filepath.Join(dir, "run.json"))
	if err != nil || json.Unmarshal(b, &info) != nil {
		return info, false
	}
	return info, true
}

func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	// Signal 0 checks that the process exists; on Unix FindProcess always
	// succeeds. (Managed servers run on Linux only.)
	p, err := os.FindProcess(pid)
	return err == nil && p.Signal(syscall.Signal(0)) == nil
}

// StartLocal is what `postage dev` and the benchmarks share: it starts the
// managed servers under cfg.Dev.DataDir, opens the app on them, migrates
// and seeds. Stop the app (Close) and then the servers (Stop) when done.
func StartLocal(ctx context.Context, cfg config.Config, log *slog.Logger) (*Managed, *App, error) {
	m, cfg, err := StartManaged(ctx, cfg, log)
	if err != nil {
		return nil, nil, err
	}
	a, err := Open(ctx, cfg, log)
	if err != nil {
		m.Stop()
		return nil, nil, err
	}
	if err = a.Migrate(ctx); err == nil {
		err = a.Seed(ctx)
	}
	if err != nil {
		a.Close()
		m.Stop()
		return nil, nil, err
	}
	return m, a, nil
}
