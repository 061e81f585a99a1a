// Package app wires postage together from its configuration: database
// connections, stores, the HTTP server and background jobs. cmd/postage
// stays thin by calling into it.
package app

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"postage/billing"
	billingpg "postage/billing/pgstore"
	"postage/internal/auth"
	"postage/internal/cache"
	"postage/internal/config"
	"postage/internal/db"
	"postage/internal/httpapi"
	"postage/internal/pdfrender"
	"postage/metering"
	"postage/notify"
	"postage/pricing/pgstore"
	"postage/web"
)

// Version is the build's version, set with -ldflags at build time.
var Version = "dev"

// App is a wired postage: connections and the stores built on them.
type App struct {
	Config config.Config
	Log    *slog.Logger
	Now    func() time.Time
	PG     *pgxpool.Pool
	CH     driver.Conn
	// Cluster is the connection to the ClickHouse cluster ([clickhouse]
	// cluster; CH is then its DDL connection), nil on one server.
	Cluster  *db.ClickHouseCluster
	Registry *prometheus.Registry

	Keys      *auth.Store
	Customers *billingpg.CustomerStore
	// KeyCache authenticates API keys from memory, re-verified every 10 s
	// and served while PostgreSQL is down; PhoneCache does the same for the
	// webhook's phone-number ids (docs/RELIABILITY.md).
	KeyCache   *auth.Cached
	PhoneCache *cache.Phones

	// Metering: the usage reads (Usage), the event pipeline (Ingester)
	// and, on one server, the ClickHouse event store (Events) and the
	// sealer of its usage rollups (Sealer, run by StartJobs in serving
	// processes). On a cluster ([clickhouse] cluster) Events and Sealer
	// are nil: Usage fans out over the shards' stores, Ingester routes
	// events to their customer's shard, whose writer (holding the shard's
	// lease) runs the shard's ingester and sealer (shards.go).
	Usage        metering.Usage
	Events       *metering.CHStore
	Ingester     Ingest
	Sealer       *metering.Sealer
	MeterMetrics *metering.Metrics
	Pricing      *pgstore.Store

	// Billing: the invoice ledger and the runs that make invoices
	// (internal/app/billing.go).
	Invoices *billingpg.InvoiceStore
	Billing  *billing.Runner
	// Finance: tax rates, and accounts receivable (payments, credit
	// notes, aging) beside the frozen invoices.
	Taxes       *billingpg.TaxStore
	Receivables *billingpg.ReceivableStore
	Accounts    *billing.Accounts
	// PDF prints invoices', credit notes' and quotes' PDFs (one headless
	// Chromium, started on first use, closed when idle).
	PDF *pdfrender.Printer

	// Notifications: the webhooks' outbox (the invoice ledger emits into
	// it), the service behind the API and CLI, the dispatcher and the
	// usage alert evaluator (internal/app/notify.go).
	Outbox      *notify.Outbox
	NotifyStore *notify.PGStore
	Webhooks    *notify.Service
	Dispatcher  *notify.Dispatcher
	Alerts      *notify.Evaluator

	shards    *shardSet // on a cluster
	conflicts func(ctx context.Context, month time.Time, limit int) ([]metering.Key, error)

	closers []func()
}

// NewLogger builds the slog logger the configuration asks for.
func NewLogger(c config.Log) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: lvl}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

// Open connects to both databases and builds the stores. It does not
// migrate; call Migrate for that.
func Open(ctx context.Context, cfg config.Config, log *slog.Logger) (*App, error) {
	if cfg.Postgres.DSN == "" {
		return nil, fmt.Errorf("no PostgreSQL configured: set [postgres] dsn or POSTAGE_POSTGRES_DSN, or start the managed servers with `make run`")
	}
	addrs := cfg.ClickHouse.Addresses()
	if len(addrs) == 0 {
		return nil, fmt.Errorf("no ClickHouse configured: set [clickhouse] addr or POSTAGE_CLICKHOUSE_ADDR, or start the managed servers with `make run`")
	}
	a := &App{Config: cfg, Log: log, Now: time.Now, Registry: prometheus.NewRegistry()}
	a.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	pg, err := db.OpenPostgres(ctx, cfg.Postgres.DSN)
	if err != nil {
		return nil, err
	}
	a.PG = pg
	a.closers = append(a.closers, pg.Close)
	chOpts := db.ClickHouseOptions{
		Addr: addrs[0], Addrs: addrs[1:], Database: cfg.ClickHouse.Database,
		Username: cfg.ClickHouse.Username, Password: cfg.ClickHouse.Password,
		Cluster: cfg.ClickHouse.Cluster,
	}
	if cfg.ClickHouse.Cluster != "" {
		c, err := db.OpenClickHouseCluster(ctx, chOpts)
		if err != nil {
			a.Close()
			return nil, err
		}
		a.Cluster, a.CH = c, c.DDL
		a.closers = append(a.closers, func() { _ = c.Close() })
	} else {
		ch, err := db.OpenClickHouse(ctx, chOpts)
		if err != nil {
			a.Close()
			return nil, err
		}
		a.CH = ch
		a.closers = append(a.closers, func() { _ = ch.Close() })
	}
	a.Keys = auth.NewStore(pg)
	a.Customers = billingpg.NewCustomerStore(pg)
	now := func() time.Time { return a.Now() }
	a.KeyCache = auth.NewCached(a.Keys, 0, now, log)
	a.PhoneCache = cache.NewPhones(a.Customers, 0, now, log)
	for name, stats := range map[string]func() cache.Stats{"api_keys": a.KeyCache.Stats, "phone_numbers": a.PhoneCache.Stats} {
		a.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "postage_cache_stale_answers_total", ConstLabels: prometheus.Labels{"cache": name},
			Help: "Answers served from a stale cache entry because PostgreSQL did not answer (an outage).",
		}, func() float64 { return float64(stats().Stale) }))
	}
	cctx, stopCaches := context.WithCancel(context.Background())
	go a.KeyCache.Run(cctx)
	go a.PhoneCache.Run(cctx)
	a.closers = append(a.closers, stopCaches)
	a.MeterMetrics = metering.NewMetrics(a.Registry)
	// The ingester opens (and locks) its key index only when it starts
	// serving (Serve) or first ingests: CLI commands that open the app next
	// to a running server never touch it. On a cluster the same holds for
	// the shards' leases.
	if a.Cluster != nil {
		if err := a.openShards(cfg, a.Cluster); err != nil {
			a.Close()
			return nil, err
		}
	} else {
		a.Events = metering.NewCHStore(a.CH)
		a.Events.SetSealedCache(uint64(cfg.Usage.CacheBytes))
		a.Usage = a.Events
		a.conflicts = a.Events.Conflicts
		icfg := a.ingesterConfig(cfg)
		icfg.IndexDir = IndexDir(cfg)
		icfg.IndexOwner = "clickhouse://" + cfg.ClickHouse.Addr + "/" + cfg.ClickHouse.Database
		a.Ingester = metering.NewIngester(a.Events, icfg)
		// The seal delay (metering.DefaultSealDelay) exceeds the ingester's
		// flush timeout (30 s) plus the clock skew allowed between replicas.
		a.Sealer = metering.NewSealer(a.Events, a.sealerConfig())
	}
	a.closers = append(a.closers, a.Ingester.Close)
	a.Pricing = pgstore.New(pg)
	a.Pricing.Now = func() time.Time { return a.Now() }
	if err := a.openBilling(); err != nil {
		a.Close()
		return nil, err
	}
	if err := a.openNotify(); err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

// ingesterConfig is the configuration of an ingester (of the server, or of
// one shard) but for its key index's directory and owner.
func (a *App) ingesterConfig(cfg config.Config) metering.IngesterConfig {
	return metering.IngesterConfig{
		MaxBatch: cfg.Ingest.FlushSize, MaxDelay: cfg.Ingest.FlushInterval.Duration,
		QueueEvents: cfg.Ingest.QueueSize, QueueBytes: cfg.Ingest.QueueBytes,
		IndexMemory: cfg.Ingest.IndexMemory,
		Metrics:     a.MeterMetrics, Log: a.Log, Now: func() time.Time { return a.Now() },
		// The key index must remember keys longer than the oldest event
		// accepted, or a re-send of an old event would count again.
		Lookback: max(metering.DefaultLookback, cfg.Ingest.Horizon.Duration+31*24*time.Hour),
	}
}

// sealerConfig is the configuration of the usage rollups' sealers.
func (a *App) sealerConfig() metering.SealerConfig {
	return metering.SealerConfig{Now: func() time.Time { return a.Now() }, Log: a.Log}
}

// SealOnce runs one pass of the usage rollups' sealer (of every shard this
// process owns on a cluster).
func (a *App) SealOnce(ctx context.Context) (metering.SealResult, error) {
	if a.shards != nil {
		return a.shards.sealOnce(ctx, a.sealerConfig())
	}
	return a.Sealer.SealOnce(ctx)
}

// Conflicts lists up to limit events of the month stored more than once
// (an audit, empty while the key index's invariant holds), over every
// shard on a cluster.
func (a *App) Conflicts(ctx context.Context, month time.Time, limit int) ([]metering.Key, error) {
	return a.conflicts(ctx, month, limit)
}

// MigrateCluster brings the schemas of PostgreSQL and of the ClickHouse
// cluster cfg.ClickHouse.Cluster up to date (db.MigrateCluster). It is what
// `postage migrate` does when a cluster is configured.
func MigrateCluster(ctx context.Context, cfg config.Config) error {
	if cfg.Postgres.DSN == "" {
		return fmt.Errorf("no PostgreSQL configured: set [postgres] dsn or POSTAGE_POSTGRES_DSN")
	}
	addrs := cfg.ClickHouse.Addresses()
	if cfg.ClickHouse.Cluster == "" || len(addrs) == 0 {
		return fmt.Errorf("no ClickHouse cluster configured: set [clickhouse] cluster and addrs")
	}
	pg, err := db.OpenPostgres(ctx, cfg.Postgres.DSN)
	if err != nil {
		return err
	}
	defer pg.Close()
	c, err := db.OpenClickHouseCluster(ctx, db.ClickHouseOptions{
		Addr: addrs[0], Addrs: addrs[1:], Database: cfg.ClickHouse.Database,
		Username: cfg.ClickHouse.Username, Password: cfg.ClickHouse.Password,
		Cluster: cfg.ClickHouse.Cluster,
	})
	if err != nil {
		return err
	}
	defer c.Close()
	return db.MigrateCluster(ctx, pg, c)
}

// IndexDir is the directory of the ingester's key index: [ingest]
// index_dir, or <[dev] data_dir>/index when that is empty.
func IndexDir(cfg config.Config) string {
	if cfg.Ingest.IndexDir != "" {
		return cfg.Ingest.IndexDir
	}
	return filepath.Join(cfg.Dev.DataDir, "index")
}

// Migrate brings both databases' schemas up to date.
func (a *App) Migrate(ctx context.Context) error {
	if a.Cluster != nil {
		if err := db.MigrateCluster(ctx, a.PG, a.Cluster); err != nil {
			return err
		}
	} else if err := db.Migrate(ctx, a.PG, a.CH, a.Config.ClickHouse.Database); err != nil {
		return err
	}
	// Invoices finalized before finalization froze them are frozen once,
	// with the configured issuer (docs/BILLING.md).
	if _, err := a.Billing.FreezeFinalized(ctx); err != nil {
		return fmt.Errorf("freeze finalized invoices: %w", err)
	}
	return nil
}

// Server builds the HTTP API on the app's stores.
func (a *App) Server() *httpapi.Server {
	return httpapi.New(httpapi.Deps{
		Config:    a.Config,
		Log:       a.Log,
		Registry:  a.Registry,
		Auth:      a.KeyCache,
		Keys:      a.Keys,
		Customers: a.Customers,
		Pricing:   httpapi.PricingDeps{Store: a.Pricing, PDF: a.PDF},
		Reports:   httpapi.ReportsDeps{Reports: a.Reports()},
		Reconcile: httpapi.ReconcileDeps{Service: a.Reconcile()},
		Billing:   httpapi.BillingDeps{Runner: a.Billing, Invoices: a.Invoices, Accounts: a.Accounts, Taxes: a.Taxes},
		Notify:    httpapi.NotifyDeps{Webhooks: a.Webhooks},
		Now:       a.Now,
		Version:   Version,
		Metering: httpapi.MeteringDeps{
			Rules: &metering.Rules{
				Now: func() time.Time { return a.Now() }, Horizon: a.Config.Ingest.Horizon.Duration,
				FutureSkew: a.Config.Ingest.FutureSkew.Duration, Categories: a.Config.Ingest.Categories,
				MaxBatchLen: a.Config.Ingest.MaxBatch, BillableStatus: a.Config.WhatsApp.BillableStatus,
			},
			Ingester: a.Ingester,
			Usage:    a.Usage,
			Phones:   a.PhoneCache,
			Metrics:  a.MeterMetrics,
			Router:   a.router(),
		},
		Dashboard: web.Handler(),
		Ready: []httpapi.ReadyCheck{
			{Name: "postgres", Check: func(ctx context.Context) error { return a.PG.Ping(ctx) }},
			{Name: "clickhouse", Check: func(ctx context.Context) error { return a.CH.Ping(ctx) }},
			// Last: it may wait (for the rest of the check's time) while
			// the key index opens.
			{Name: "key index", Check: a.Ingester.WaitReady},
		},
	})
}

// router is the API's event router: the shards on a cluster, nil on one
// server.
func (a *App) router() httpapi.EventRouter {
	if a.shards == nil {
		return nil
	}
	return a.shards
}

// Close releases connections in reverse order of opening.
func (a *App) Close() {
	for i := len(a.closers) - 1; i >= 0; i-- {
		a.closers[i]()
	}
	a.closers = nil
}

// Serve serves the API and the background jobs on the configured address
// until ctx ends; started is told the URL once the listener is open.
func (a *App) Serve(ctx context.Context, started func(url string)) error {
	ln, err := httpapi.Listen(a.Config.HTTP.Addr)
	if err != nil {
		return err
	}
	return a.ServeOn(ctx, ln, started)
}

// ServeOn is Serve on a listener already open (a process that must know
// its port before Open, to advertise it).
func (a *App) ServeOn(ctx context.Context, ln net.Listener, started func(url string)) error {
	a.Ingester.Start() // open and catch up the key index before the first request
	srv := a.Server()
	stopJobs, err := a.StartJobs(ctx)
	if err != nil {
		ln.Close()
		return err
	}
	defer stopJobs()
	started("http://" + ln.Addr().String())
	return srv.ListenAndServe(ctx, ln)
}
