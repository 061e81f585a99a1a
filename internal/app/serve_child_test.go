package app

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"postage/internal/config"
	"postage/internal/httpapi"
)

// serveChildEnv, when set in the environment of this test binary, makes it
// a `postage serve` process (serveChild) instead of running tests: tests
// start several of them on the same databases.
const serveChildEnv = "POSTAGE_TEST_SERVE"

// ServeChildConfig is what a serve child is configured with (JSON in
// serveChildEnv).
type ServeChildConfig struct {
	PGDSN, Database, Cluster, IndexDir string
	Addrs, ZooKeeper                   []string
	// Advertise: the child advertises its URL ([http] advertise_url), so
	// the others forward it its shards' events.
	Advertise bool
	// WriteShards is [clickhouse] write_shards.
	WriteShards []int
	// AppSecret is [whatsapp] app_secret.
	AppSecret string
}

// serveChild serves the API on a free loopback port, prints "URL <url>" on
// stdout once it listens, and serves until killed or interrupted.
func serveChild() {
	var sc ServeChildConfig
	if err := json.Unmarshal([]byte(os.Getenv(serveChildEnv)), &sc); err != nil {
		fmt.Fprintln(os.Stderr, "serve child:", err)
		os.Exit(2)
	}
	ln, err := httpapi.Listen("127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "serve child:", err)
		os.Exit(1)
	}
	cfg := config.Default()
	cfg.HTTP.Addr = ln.Addr().String()
	if sc.Advertise {
		cfg.HTTP.AdvertiseURL = "http://" + ln.Addr().String()
	}
	cfg.ClickHouse.WriteShards = sc.WriteShards
	cfg.WhatsApp.AppSecret = sc.AppSecret
	cfg.Postgres.DSN = sc.PGDSN
	cfg.ClickHouse.Addr, cfg.ClickHouse.Addrs = sc.Addrs[0], sc.Addrs[1:]
	cfg.ClickHouse.Database, cfg.ClickHouse.Cluster, cfg.ClickHouse.ZooKeeper = sc.Database, sc.Cluster, sc.ZooKeeper
	cfg.ClickHouse.ZooKeeperSessionTimeout.Duration = 4e9
	cfg.Ingest.IndexDir = sc.IndexDir
	cfg.Dev.Demo = false
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	a, err := Open(ctx, cfg, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "serve child:", err)
		os.Exit(1)
	}
	defer a.Close()
	if err := a.ServeOn(ctx, ln, func(url string) { fmt.Println("URL", url) }); err != nil {
		fmt.Fprintln(os.Stderr, "serve child:", err)
		os.Exit(1)
	}
}
